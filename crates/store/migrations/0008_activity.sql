-- The activity trail: what happened to each account, who did it, and from where for sign-ins.
-- A user reads its own entries; the tenant's audit log reads them all. Ids are UUIDv7, so
-- ordering by id is ordering by time and a time bound is an id bound: both indexes serve the
-- keyset pages, the filters and the retention purge. `user_id` has no foreign key: the entry
-- that records an erasure outlives the user (erasing a user deletes its other entries).
CREATE TABLE activity (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    ip_address TEXT,
    user_agent TEXT,
    -- JSON object: field names, sign-in methods; never values of secret fields.
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, id)
);
CREATE INDEX activity_tenant ON activity (tenant_id, id);

-- Entries land here first, in the transaction of their change: a table without indexes, only
-- ever appended to, so that a change pays one cheap insert. A background job on every instance
-- moves them into `activity` in batches, sorted, so that each user's index page is written once
-- per batch rather than once per change. Reads look at both tables.
CREATE TABLE activity_inbox (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    ip_address TEXT,
    user_agent TEXT,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
