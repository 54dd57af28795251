-- The other identity providers a tenant's users may sign in with. The client secret is kept
-- as it is given (the provider's token endpoint needs it), and never shown again.
CREATE TABLE identity_providers (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    -- JSON array of scopes.
    scopes TEXT NOT NULL,
    issuer TEXT,
    web_base_url TEXT,
    api_base_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, slug)
);

-- Who a user is at a provider: the provider's slug and the subject it says. One subject of a
-- provider is one user of the tenant.
CREATE TABLE user_identities (
    tenant_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- A sign-in through a provider, between the redirect to it and its answer: found by the hash
-- of the `state` sent, bound to the browser that started it (the hash of a cookie's value),
-- used once, and short-lived. It keeps what the answer is checked against (the nonce) and
-- what the code is redeemed with (the PKCE verifier).
CREATE TABLE federation_states (
    hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    -- Set when a signed-in user links the provider rather than signs in through it.
    link_user_id TEXT,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX federation_states_expires ON federation_states (expires_at);
