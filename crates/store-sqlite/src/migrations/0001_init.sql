-- Devices. The whole record is not stored here but in the event log: `doc_seq` is the event whose `after`
-- holds the device's current record (every change to a device appends such an event, in the same
-- transaction). So the record is written once, not twice, and is itself covered by the hash chain. The other
-- columns are copies kept for lookups and filters, written from the same record in the same statement.
-- `num` is an alias of the rowid (stable across VACUUM): events refer to devices by it, so that the index of
-- events by device grows at its end during an import instead of at random places (ids are random UUIDs).
CREATE TABLE devices (
    num      INTEGER PRIMARY KEY,
    id       BLOB NOT NULL UNIQUE,
    state    TEXT NOT NULL,
    class    TEXT NOT NULL,
    zone     TEXT,
    vendor   TEXT,
    mac      TEXT,
    serial   TEXT,
    cert_fp  TEXT,
    revision INTEGER NOT NULL,
    doc_seq  INTEGER NOT NULL
);
CREATE INDEX devices_state ON devices (state);
CREATE INDEX devices_mac ON devices (mac) WHERE mac IS NOT NULL;
CREATE INDEX devices_serial ON devices (serial) WHERE serial IS NOT NULL;
CREATE INDEX devices_cert_fp ON devices (cert_fp) WHERE cert_fp IS NOT NULL;

-- The event log, one hash chain in `seq` order. `device_num` names the device (devices.num); the device's
-- UUID, which the chain hash covers, is read back through it, so editing it breaks the chain too.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    device_num INTEGER REFERENCES devices (num),
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    before    TEXT,
    after     TEXT,
    reason    TEXT,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE INDEX events_device ON events (device_num, seq) WHERE device_num IS NOT NULL;

-- The position and hash of the last event, written with every append: detects a removed tail.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);

-- Operators' API tokens: the secret's SHA-256 only, never the secret.
CREATE TABLE tokens (
    id          BLOB PRIMARY KEY,
    operator    TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
