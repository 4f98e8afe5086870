-- The observation queue (gateway windows, posture reports): measurements, not audit facts, so outside the
-- hash chain and pruned by age and count. Appends take an advisory lock, so positions commit in order and a
-- consumer reading after one never misses an earlier one committed later.
CREATE TABLE observations (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at bigint NOT NULL,
    body text NOT NULL
);
CREATE INDEX observations_at ON observations (at);

-- Each consumer's cursor in the queue with its state at that cursor, written together.
CREATE TABLE observation_cursors (
    consumer text PRIMARY KEY,
    seq bigint NOT NULL,
    state bytea NOT NULL
);
