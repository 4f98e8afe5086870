-- How far each reader of the event log got (the change feed's durable cursors): one row per consumer.
CREATE TABLE consumer_cursors (
    consumer text PRIMARY KEY,
    seq bigint NOT NULL
);

-- The change feed's wake-up: every statement that moves the chain head notifies `vouch_events` listeners.
-- PostgreSQL delivers it at commit (and never for a rolled-back append) and folds repeats within one
-- transaction, so a bulk import costs one notification.
CREATE FUNCTION vouch_announce_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vouch_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_head_announce AFTER UPDATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION vouch_announce_append();
