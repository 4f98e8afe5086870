-- Devices: `doc` is the whole record (the source of truth); the other columns are copies kept for lookups and
-- filters, written from the same record in the same statement.
CREATE TABLE devices (
    id       uuid PRIMARY KEY,
    state    text NOT NULL,
    class    text NOT NULL,
    zone     text,
    vendor   text,
    mac      text,
    serial   text,
    cert_fp  text,
    revision bigint NOT NULL,
    doc      jsonb NOT NULL
);
CREATE INDEX devices_state ON devices (state, id);
CREATE INDEX devices_mac ON devices (mac) WHERE mac IS NOT NULL;
CREATE INDEX devices_serial ON devices (serial) WHERE serial IS NOT NULL;
CREATE INDEX devices_cert_fp ON devices (cert_fp) WHERE cert_fp IS NOT NULL;

-- The event log, one hash chain in `seq` order. before/after are text, not jsonb: the hash covers their
-- exact bytes, which jsonb would normalise.
CREATE TABLE events (
    seq       bigint PRIMARY KEY,
    at        bigint NOT NULL,
    device_id uuid,
    actor     text NOT NULL,
    action    text NOT NULL,
    before    text,
    after     text,
    reason    text,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL
);
CREATE INDEX events_device ON events (device_id, seq) WHERE device_id IS NOT NULL;

-- The position and hash of the last event. Every write transaction locks this row first: it serialises
-- appends to the chain (and so cannot deadlock with any other lock order).
CREATE TABLE audit_head (
    id   int PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Operators' API tokens: the secret's SHA-256 only, never the secret.
CREATE TABLE tokens (
    id          bytea PRIMARY KEY,
    operator    text NOT NULL,
    role        text NOT NULL,
    secret_hash bytea NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint,
    revoked_at  bigint
);
