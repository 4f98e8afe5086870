-- Second factors as a bank keeps them: tries counted before they are checked, a backoff after wrong codes,
-- a lock until an administrator resets it, and the permission to enroll a (new) factor.
ALTER TABLE operator_mfa ADD COLUMN failures bigint NOT NULL DEFAULT 0;
ALTER TABLE operator_mfa ADD COLUMN retry_at bigint;      -- Unix microseconds
ALTER TABLE operator_mfa ADD COLUMN enroll_until bigint;  -- Unix microseconds
