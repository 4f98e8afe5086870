-- Stored policies: every version of every policy, never updated or deleted. A change of text or mode, or a
-- removal, writes the next version in the same transaction as its event; the latest version of an id is its
-- current state (`removed` = 1: not in the active set).
CREATE TABLE policy_versions (
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    text    TEXT NOT NULL,
    mode    TEXT NOT NULL,
    removed INTEGER NOT NULL,
    author  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);

-- Bumped by every transaction that writes a policy version: policy engines in any process compare it to know
-- when to recompile.
CREATE TABLE policy_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO policy_state (id, generation) VALUES (1, 0);

-- Operators' second factors (TOTP), one per token: the secret sealed by the server, never in the clear.
-- Accepting a code moves `last_step` forward, never back: a code is accepted once.
CREATE TABLE operator_mfa (
    token_id      BLOB PRIMARY KEY REFERENCES tokens (id),
    sealed_secret BLOB NOT NULL,
    confirmed     INTEGER NOT NULL,
    last_step     INTEGER NOT NULL
);
