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
