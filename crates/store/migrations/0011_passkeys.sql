-- A user's passkeys (WebAuthn credentials). `credential_id` is how an assertion names its
-- credential (base64url); one id is one passkey of the tenant. `credential` is the relying
-- party's record of it (public key, signature counter, flags) as JSON, never shown.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    sign_count BIGINT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backup_state BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX passkeys_credential ON passkeys (tenant_id, credential_id);
CREATE INDEX passkeys_user ON passkeys (user_id, created_at);

-- A WebAuthn ceremony between its options and the browser's answer: found by the SHA-256 of
-- the id handed to the client, used once, short-lived. `user_id` binds a registration or a
-- second-factor assertion to its user; a username-less sign-in has none.
CREATE TABLE passkey_ceremonies (
    hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id TEXT,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires_at);
