-- Certificates issued or imported. `device_num` names the device (devices.num).
CREATE TABLE certificates (
    serial      BLOB PRIMARY KEY,
    device_num  INTEGER NOT NULL REFERENCES devices (num),
    fingerprint BLOB NOT NULL UNIQUE,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    revoked_at  INTEGER,
    reason      INTEGER,
    der         BLOB NOT NULL,
    CHECK ((revoked_at IS NULL) = (reason IS NULL))
);
CREATE INDEX certificates_device ON certificates (device_num, not_before);
CREATE INDEX certificates_expiry ON certificates (not_after) WHERE revoked_at IS NULL;
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

-- One-time enrollment tokens: the secret's SHA-256 only.
CREATE TABLE enrollment_tokens (
    id          BLOB PRIMARY KEY,
    device_num  INTEGER NOT NULL REFERENCES devices (num),
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

-- Bumped by every revocation, hold and release: CRL and OCSP caches in any process compare it to know when
-- their answers went stale.
CREATE TABLE pki_state (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    revocation_generation BIGINT NOT NULL
);
INSERT INTO pki_state (id, revocation_generation) VALUES (1, 0);
