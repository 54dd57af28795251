-- One migration tree for both backends: only types and syntax that SQLite and PostgreSQL read
-- alike (TEXT, BIGINT, BOOLEAN, BYTEA, partial indexes). Timestamps are milliseconds since the
-- Unix epoch, ids are hyphenated UUID text. Never edit an applied migration; add a new one.

CREATE TABLE instance_values (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    server_key_hash TEXT NOT NULL,
    publishable_key TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX tenants_server_key ON tenants (server_key_hash);
CREATE UNIQUE INDEX tenants_publishable_key ON tenants (publishable_key);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    username TEXT,
    username_lower TEXT,
    primary_email TEXT,
    primary_email_verified BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    auth_provider TEXT NOT NULL,
    is_service_account BOOLEAN NOT NULL,
    is_anonymous BOOLEAN NOT NULL,
    password_hash TEXT,
    totp_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    selected_team_id TEXT,
    avatar_hash TEXT,
    -- Profile fields, the three readable metadata tiers and suspensions, as one JSON document:
    -- one row holds everything GET /me returns.
    profile TEXT NOT NULL,
    -- Write-only; read by no query that serves a response.
    secure_metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deletion_due_at BIGINT
);
-- Emails are stored lower-case, so this index is case-insensitive uniqueness.
CREATE UNIQUE INDEX users_email ON users (tenant_id, primary_email);
CREATE UNIQUE INDEX users_username ON users (tenant_id, username_lower);
CREATE INDEX users_tenant ON users (tenant_id, id);
CREATE INDEX users_deletion_due ON users (deletion_due_at) WHERE deletion_due_at IS NOT NULL;
CREATE INDEX users_avatar ON users (avatar_hash) WHERE avatar_hash IS NOT NULL;

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_refreshed_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    user_agent TEXT,
    ip_address TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, expires_at);

CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    doc TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX teams_tenant ON teams (tenant_id, id);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE images (
    hash TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
