//! The activity trail: what happened to an account, read by its user and, for the whole
//! tenant, by the audit log. Entries of changes are written by the changes themselves (in
//! their transactions); a failed sign-in, which changes nothing, writes its own.

use chrono::Duration;
use serde_json::json;
use tessera_core::events::{Activity, ActivityFilter, By, SIGN_IN_FAILED, activity_types};
use tessera_core::{DomainError, TenantId, UserId};
use uuid::Uuid;

use crate::{ClientInfo, Principal, Result, Service, store_err};

/// The most entries one page holds.
pub const MAX_PAGE: u32 = 200;

impl Service {
    /// The caller's own trail, newest first, a page at a time.
    pub async fn my_activity(&self, who: &Principal, before: Option<Uuid>, limit: u32) -> Result<Vec<Activity>> {
        let filter = ActivityFilter { user_id: Some(who.user.id), before, limit, ..ActivityFilter::default() };
        self.audit(who.tenant_id(), filter).await
    }

    /// The tenant's audit log: every user's trail, newest first, as `filter` narrows it.
    pub async fn audit(&self, tenant: TenantId, mut filter: ActivityFilter) -> Result<Vec<Activity>> {
        if let Some(kind) = &filter.kind
            && !activity_types().any(|t| t == kind)
        {
            let msg = format!("must be one of {}", activity_types().collect::<Vec<_>>().join(", "));
            return Err(DomainError::field("type", "invalid_value", msg));
        }
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since > until
        {
            return Err(DomainError::field("since", "invalid_range", "must not be later than until"));
        }
        filter.limit = filter.limit.clamp(1, MAX_PAGE);
        self.store.list_activity(tenant, &filter).await.map_err(store_err)
    }

    /// Records a failed sign-in against an existing account (`method`: what failed). The
    /// sign-in's answer does not wait on it going wrong: a failure here is logged, not returned.
    pub(crate) async fn sign_in_failed(&self, tenant: TenantId, user: UserId, method: &str, client: &ClientInfo) {
        self.sign_in_refused(tenant, user, json!({ "method": method }), client).await;
    }

    /// Records a failed sign-in with `details` saying how and why.
    pub(crate) async fn sign_in_refused(
        &self,
        tenant: TenantId,
        user: UserId,
        details: serde_json::Value,
        client: &ClientInfo,
    ) {
        let entry = Activity::new(tenant, user, SIGN_IN_FAILED, By::User, self.now())
            .with_details(details)
            .from_client(client.ip_address.as_deref(), client.user_agent.as_deref());
        if let Err(e) = self.store.insert_activity(&entry).await {
            tracing::error!(error = %e, "could not record a failed sign-in");
        }
    }

    /// Moves the entries written since the last move to where the reads' indexes are; run by a
    /// background job every moment.
    pub async fn move_activity(&self) -> Result<()> {
        self.store.move_activity().await.map_err(store_err)
    }

    /// Forgets each tenant's entries older than its retention; run by the background job.
    pub async fn purge_activity(&self) -> Result<u64> {
        self.move_activity().await?;
        let now = self.now();
        let mut forgotten = 0;
        for tenant in self.store.list_tenants().await.map_err(store_err)? {
            let before = now - Duration::days(i64::from(tenant.settings.activity_retention_days));
            forgotten += self.store.purge_activity(tenant.id, before).await.map_err(store_err)?;
        }
        Ok(forgotten)
    }
}
