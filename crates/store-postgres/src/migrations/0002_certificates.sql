-- Certificates issued or imported.
CREATE TABLE certificates (
    serial      bytea PRIMARY KEY,
    device_id   uuid NOT NULL REFERENCES devices (id),
    fingerprint bytea NOT NULL UNIQUE,
    not_before  bigint NOT NULL,
    not_after   bigint NOT NULL,
    revoked_at  bigint,
    reason      smallint,
    der         bytea NOT NULL,
    CHECK ((revoked_at IS NULL) = (reason IS NULL))
);
CREATE INDEX certificates_device ON certificates (device_id, not_before);
CREATE INDEX certificates_expiry ON certificates (not_after) WHERE revoked_at IS NULL;
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

-- One-time enrollment tokens: the secret's SHA-256 only.
CREATE TABLE enrollment_tokens (
    id          bytea PRIMARY KEY,
    device_id   uuid NOT NULL REFERENCES devices (id),
    secret_hash bytea NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    used_at     bigint
);

-- Bumped by every revocation, hold and release: CRL and OCSP caches in any process compare it to know when
-- their answers went stale.
CREATE TABLE pki_state (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    revocation_generation BIGINT NOT NULL
);
INSERT INTO pki_state (id, revocation_generation) VALUES (1, 0);
