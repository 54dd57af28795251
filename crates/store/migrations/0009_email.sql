-- Every address of every user, the primary among them (the user's `primary_email`, of which
-- this row is the indexed twin, kept in step by the user write). One address, one user per
-- tenant: the unique index holds it across primary and other addresses alike.
CREATE TABLE user_emails (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Lower-case.
    email TEXT NOT NULL,
    verified BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_emails_email ON user_emails (tenant_id, email);
CREATE INDEX user_emails_user ON user_emails (user_id, created_at);
-- The primary addresses of the users already there; the user's id is a unique id for them.
INSERT INTO user_emails (id, tenant_id, user_id, email, verified, created_at)
    SELECT id, tenant_id, id, primary_email, primary_email_verified, created_at FROM users WHERE primary_email IS NOT NULL;

-- Tokens mailed to users, by the SHA-256 of the token: the token itself is only in the
-- message. Each is used once (`used_at`) and only before `expires_at`.
CREATE TABLE mail_tokens (
    hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    email TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX mail_tokens_expires ON mail_tokens (expires_at);

-- The mail outbox: a message is written in the transaction of the change it tells of, and
-- delivered by whichever instance claims it. Once sent (or given up on), its bodies, which
-- hold the token's link, are dropped; the row stays until the purge, for the record.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT,
    html_body TEXT,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX mail_outbox_created ON mail_outbox (created_at);
