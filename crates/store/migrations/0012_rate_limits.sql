-- The brute-force windows, when several instances share this database (PostgreSQL): one row a
-- counted thing (an account's failed sign-ins, a client address's attempts, …) by the SHA-256
-- of its key, so that no address or email is stored here. A window that has ended starts again
-- at its next event; ended ones are deleted by the purge job.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    hits BIGINT NOT NULL,
    ends_at BIGINT NOT NULL
);
CREATE INDEX rate_limits_ends ON rate_limits (ends_at);
