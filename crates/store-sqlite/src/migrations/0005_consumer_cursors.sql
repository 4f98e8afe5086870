-- How far each reader of the event log got (the change feed's durable cursors): one row per consumer.
CREATE TABLE consumer_cursors (
    consumer TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
