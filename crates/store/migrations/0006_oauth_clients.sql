-- OAuth 2.0 clients, confidential and public, and the authorization codes they redeem. A client
-- allowed `client_credentials` acts as its own service-account user (`user_id`), so the
-- service-account credentials of 0004 become clients of that kind.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- JSON arrays of strings.
    redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    is_public BOOLEAN NOT NULL,
    -- SHA-256 of the secret (random, high-entropy, shown once); NULL for public clients.
    secret_hash TEXT,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id, created_at);
CREATE INDEX oauth_clients_user ON oauth_clients (user_id) WHERE user_id IS NOT NULL;

INSERT INTO oauth_clients (client_id, tenant_id, name, redirect_uris, grant_types, is_public, secret_hash, user_id, created_at)
SELECT c.client_id, c.tenant_id, COALESCE(u.username, 'service account'), '[]', '["client_credentials"]', FALSE,
       c.secret_hash, c.user_id, c.created_at
FROM service_account_credentials c JOIN users u ON u.id = c.user_id;

DROP TABLE service_account_credentials;

-- Single-use: `used_at` is set by the redemption that wins; a later redemption finds it set and
-- revokes `session_id`, the session the first one started (RFC 6749 §4.1.2).
CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The grant as JSON: redirect URI, PKCE challenge, nonce, scope, auth time.
    grant_data TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    session_id TEXT
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

-- The client a session was granted to (NULL for first-party sign-ins): its refresh token is
-- then bound to that client.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
