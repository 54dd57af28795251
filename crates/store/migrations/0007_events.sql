-- The outbox: a change worth telling a tenant's applications about writes its event here, and
-- one delivery per endpoint that wants it, in the transaction of the change itself. An event
-- no endpoint wants is not written.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    -- JSON: the server view of the object, never secrets.
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

-- A tenant's webhook endpoints. The secret signs each delivery; after a rotation the previous
-- one signs beside it until `previous_secret_until`.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- JSON array of event types; empty means every type.
    event_types TEXT NOT NULL,
    description TEXT,
    enabled BOOLEAN NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

-- One event for one endpoint: its state and its last attempt. `next_attempt_at` is when the
-- next attempt is due while `status` is `pending`; a worker claiming the row pushes it past
-- the attempt's own deadline, so no other worker makes the same attempt.
CREATE TABLE webhook_deliveries (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    status TEXT NOT NULL,
    next_attempt_at BIGINT,
    response_status BIGINT,
    error TEXT,
    attempted_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
