-- A tenant's own Cedar policies, evaluated with the built-in ones (crates/core/src/policy.rs).
CREATE TABLE tenant_policies (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
