-- The observation queue (gateway windows, posture reports): measurements, not audit facts, so outside the
-- hash chain and pruned by age and count. AUTOINCREMENT: a position is never reused, even after a prune
-- emptied the table, so a consumer's cursor never points at a newer observation than it handled.
CREATE TABLE observations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX observations_at ON observations (at);

-- Each consumer's cursor in the queue with its state at that cursor, written together.
CREATE TABLE observation_cursors (
    consumer TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state BLOB NOT NULL
) WITHOUT ROWID;
