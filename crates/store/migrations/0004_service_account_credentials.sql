-- OAuth2 client credentials of service accounts; the secret is stored as SHA-256 (it is random
-- and high-entropy, shown once at creation).
CREATE TABLE service_account_credentials (
    client_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX service_account_credentials_user ON service_account_credentials (user_id);
