-- Stored policies: every version of every policy, never updated or deleted. A change of text or mode, or a
-- removal, writes the next version in the same transaction as its event; the latest version of an id is its
-- current state (`removed`: not in the active set). Ids compare byte-wise (COLLATE "C"), as Vouch orders
-- them, whatever the database's locale.
CREATE TABLE policy_versions (
    id      text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    text    text NOT NULL,
    mode    text NOT NULL,
    removed boolean NOT NULL,
    author  text NOT NULL,
    at      bigint NOT NULL,
    PRIMARY KEY (id, version)
);

-- Bumped by every transaction that writes a policy version: policy engines in any process compare it to know
-- when to recompile.
CREATE TABLE policy_state (
    id         int PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL
);
INSERT INTO policy_state (id, generation) VALUES (1, 0);

-- Operators' second factors (TOTP), one per token: the secret sealed by the server, never in the clear.
-- Accepting a code moves `last_step` forward, never back: a code is accepted once.
CREATE TABLE operator_mfa (
    token_id      bytea PRIMARY KEY REFERENCES tokens (id),
    sealed_secret bytea NOT NULL,
    confirmed     boolean NOT NULL,
    last_step     bigint NOT NULL
);
