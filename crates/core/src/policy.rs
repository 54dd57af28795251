//! The field policy, on Cedar: who may change which field of which user.
//!
//! Every surface asks `PolicyEngine::authorize_update` before a change is stored. The built-in
//! policies (`default_policies.cedar`) express SPEC §1's rules; a tenant may add its own Cedar
//! policies, which are evaluated together with them (a tenant `forbid` always wins; a tenant
//! `permit` cannot lift a built-in `forbid`). A denial names each refused field with the
//! `@code` of the deciding policy, and lists the deciding policies' `@notice`s.

use std::str::FromStr;
use std::sync::LazyLock;

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    Request, RestrictedExpression,
};

use crate::error::{DomainError, FieldError};
use crate::user::User;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user, editing its own account through a self-service API.
    SelfService,
    /// The tenant's backend, holding the server key.
    Server,
}

/// The built-in policies' source.
pub const DEFAULT_POLICIES: &str = include_str!("default_policies.cedar");

pub const NOTICE_SERVICE_ACCOUNT: &str = "Service accounts cannot update themselves; use the server API.";
pub const NOTICE_SERVER_ONLY: &str = "This field is written only by the tenant's server.";
pub const NOTICE_IDP_MANAGED: &str = "This field is managed by the identity provider and is read-only.";
pub const NOTICE_ADMIN_USERNAME: &str = "The reserved admin username cannot be changed.";

/// Where an update comes from, for policies that care.
#[derive(Debug, Clone, Copy)]
pub struct UpdateContext<'a> {
    /// `native` or a seed contract's name (`stack-auth`, `zenml`, `bird`, `jitsudo`, `replyke`).
    pub surface: &'a str,
    /// Server-only fields the surface's contract lets the user write for itself.
    pub granted_by_contract: &'a [&'a str],
}

impl Default for UpdateContext<'_> {
    fn default() -> Self {
        Self { surface: "native", granted_by_contract: &[] }
    }
}

/// Parses policies, giving each the id of its `@id` annotation (prefixed), or a numbered one.
fn parse_policies(src: &str, prefix: &str) -> Result<Vec<Policy>, String> {
    let set = PolicySet::from_str(src).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, p) in set.policies().enumerate() {
        let name = p.annotation("id").map_or_else(|| format!("policy{i}"), |s| s.to_string());
        out.push(p.new_id(PolicyId::new(format!("{prefix}{name}"))));
    }
    Ok(out)
}

static DEFAULTS: LazyLock<PolicySet> = LazyLock::new(|| {
    let mut set = PolicySet::new();
    #[allow(clippy::expect_used, reason = "the built-in policies are checked by the unit tests")]
    for p in parse_policies(DEFAULT_POLICIES, "").expect("the built-in policies parse") {
        set.add(p).expect("built-in policy ids are unique");
    }
    set
});

/// A tenant's compiled policies: the built-in ones plus its own.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    set: PolicySet,
}

impl Default for PolicyEngine {
    fn default() -> Self {
        Self { set: DEFAULTS.clone() }
    }
}

impl PolicyEngine {
    /// The built-in policies plus a tenant's. Tenant policies' ids get a `tenant.` prefix, so
    /// they can never replace a built-in one. A parse error is returned with Cedar's message.
    pub fn with_tenant_policies(src: &str) -> Result<Self, DomainError> {
        let mut set = DEFAULTS.clone();
        if !src.trim().is_empty() {
            let policies = parse_policies(src, "tenant.").map_err(|e| {
                DomainError::field("source", "invalid_policy", format!("the policies do not parse: {e}"))
            })?;
            for p in policies {
                set.add(p).map_err(|e| DomainError::field("source", "invalid_policy", e.to_string()))?;
            }
        }
        Ok(Self { set })
    }

    /// Decides whether `actor` may change `fields` of `user`. On denial, every refused field is
    /// named (with the deciding policy's `@code`) and the notices are listed once each.
    pub fn authorize_update(
        &self,
        actor: Actor,
        user: &User,
        fields: &[&str],
        ctx: UpdateContext<'_>,
    ) -> Result<(), DomainError> {
        // Built directly rather than parsed from JSON: on `PATCH /me` the JSON route was a
        // third of the policy check's cost (BENCHMARKS.md).
        let user_uid = uid(&USER_TYPE, &user.id.to_string());
        let principal = match actor {
            Actor::SelfService => user_uid.clone(),
            Actor::Server => uid(&SERVER_TYPE, &user.tenant_id.to_string()),
        };
        let attrs = HashMap::from([
            ("auth_provider".to_owned(), RestrictedExpression::new_string(user.auth_provider.as_str().to_owned())),
            ("is_service_account".to_owned(), RestrictedExpression::new_bool(user.is_service_account)),
            ("is_anonymous".to_owned(), RestrictedExpression::new_bool(user.is_anonymous)),
            (
                "username".to_owned(),
                RestrictedExpression::new_string(user.username.as_deref().unwrap_or("").to_lowercase()),
            ),
        ]);
        let entities = Entity::new(user_uid.clone(), attrs, HashSet::new())
            .map_err(|e| DomainError::Internal(format!("policy entities: {e}").into()))
            .and_then(|me| {
                let server = Entity::new_no_attrs(uid(&SERVER_TYPE, &user.tenant_id.to_string()), HashSet::new());
                Entities::from_entities([me, server], None)
                    .map_err(|e| DomainError::Internal(format!("policy entities: {e}").into()))
            })?;
        let authorizer = Authorizer::new();
        let mut denied = Vec::new();
        let mut notices: Vec<String> = Vec::new();
        for &field in fields {
            let context = Context::from_pairs([
                ("field".to_owned(), RestrictedExpression::new_string(field.to_owned())),
                ("surface".to_owned(), RestrictedExpression::new_string(ctx.surface.to_owned())),
                (
                    "granted_by_contract".to_owned(),
                    RestrictedExpression::new_bool(ctx.granted_by_contract.contains(&field)),
                ),
            ])
            .map_err(|e| DomainError::Internal(format!("policy context: {e}").into()))?;
            let request = Request::new(principal.clone(), UPDATE_ACTION.clone(), user_uid.clone(), context, None)
                .map_err(|e| DomainError::Internal(format!("policy request: {e}").into()))?;
            let response = authorizer.is_authorized(&request, &self.set, &entities);
            if response.decision() == Decision::Allow {
                continue;
            }
            let deciding: Vec<&Policy> = response.diagnostics().reason().filter_map(|id| self.set.policy(id)).collect();
            let code = deciding
                .iter()
                .find_map(|p| p.annotation("code"))
                .map_or("forbidden_by_policy".to_owned(), |c| c.to_string());
            let first_notice = deciding.iter().find_map(|p| p.annotation("notice")).map(|n| n.to_string());
            for notice in deciding.iter().filter_map(|p| p.annotation("notice")) {
                if !notices.iter().any(|n| n == notice) {
                    notices.push(notice.to_string());
                }
            }
            let message = first_notice.unwrap_or_else(|| "no policy permits this change".to_owned());
            denied.push(FieldError { field: field.to_owned(), code: intern_code(&code), message: message.into() });
        }
        if denied.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Forbidden { reason: "you may not change these fields".into(), fields: denied, notices })
        }
    }
}

/// Field error codes are `&'static str`; the built-in ones map to themselves, and any code a
/// tenant's policy names is reported as `forbidden_by_policy` (its notice carries the detail).
fn intern_code(code: &str) -> &'static str {
    match code {
        "server_only" => "server_only",
        "idp_managed" => "idp_managed",
        "service_account" => "service_account",
        "reserved" => "reserved",
        _ => "forbidden_by_policy",
    }
}

static USER_TYPE: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("User"));
static SERVER_TYPE: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("Server"));
static UPDATE_ACTION: LazyLock<EntityUid> = LazyLock::new(|| uid(&type_name("Action"), "update"));

#[allow(clippy::expect_used, reason = "a constant, valid type name; the unit tests parse every one")]
fn type_name(name: &str) -> EntityTypeName {
    EntityTypeName::from_str(name).expect("a valid Cedar type name")
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

/// The built-in policies alone, for callers with no tenant policies.
pub fn authorize_update(actor: Actor, user: &User, fields: &[&str]) -> Result<(), DomainError> {
    PolicyEngine::default().authorize_update(actor, user, fields, UpdateContext::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use crate::user::AuthProvider;

    fn user() -> User {
        User::new(TenantId::new(), chrono::Utc::now())
    }

    fn denial(r: Result<(), DomainError>) -> (Vec<String>, Vec<String>) {
        match r {
            Err(DomainError::Forbidden { fields, notices, .. }) => {
                (fields.iter().map(|f| format!("{}:{}", f.field, f.code)).collect(), notices)
            }
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn the_built_in_policies_parse_and_carry_the_published_notices() {
        for n in [NOTICE_SERVICE_ACCOUNT, NOTICE_SERVER_ONLY, NOTICE_IDP_MANAGED, NOTICE_ADMIN_USERNAME] {
            assert!(DEFAULT_POLICIES.contains(n), "{n}");
        }
        assert_eq!(DEFAULTS.policies().count(), 7);
    }

    #[test]
    fn users_edit_their_own_profile_but_not_server_tiers() {
        assert!(authorize_update(Actor::SelfService, &user(), &["display_name", "client_metadata"]).is_ok());
        let (fields, notices) =
            denial(authorize_update(Actor::SelfService, &user(), &["server_metadata", "bio", "secure_metadata"]));
        assert_eq!(fields, ["server_metadata:server_only", "secure_metadata:server_only"]);
        assert_eq!(notices, [NOTICE_SERVER_ONLY]);
    }

    #[test]
    fn a_contract_may_grant_a_server_only_field() {
        let ctx = UpdateContext { surface: "replyke", granted_by_contract: &["secure_metadata"] };
        assert!(
            PolicyEngine::default().authorize_update(Actor::SelfService, &user(), &["secure_metadata"], ctx).is_ok()
        );
    }

    #[test]
    fn idp_managed_fields_are_read_only_for_external_users() {
        let mut u = user();
        u.auth_provider = AuthProvider::Saml;
        assert_eq!(denial(authorize_update(Actor::SelfService, &u, &["first_name"])).0, ["first_name:idp_managed"]);
        assert!(authorize_update(Actor::SelfService, &u, &["display_name"]).is_ok());
        assert!(authorize_update(Actor::Server, &u, &["first_name"]).is_ok());
    }

    #[test]
    fn service_accounts_cannot_self_update_and_admin_keeps_its_name() {
        let mut sa = user();
        sa.is_service_account = true;
        let (_, notices) = denial(authorize_update(Actor::SelfService, &sa, &["display_name"]));
        assert_eq!(notices, [NOTICE_SERVICE_ACCOUNT]);
        let mut admin = user();
        admin.username = Some("Admin".into());
        assert_eq!(denial(authorize_update(Actor::SelfService, &admin, &["username"])).0, ["username:reserved"]);
        assert!(authorize_update(Actor::SelfService, &admin, &["bio"]).is_ok());
    }

    #[test]
    fn the_admin_account_is_not_self_editable_through_zenml_only() {
        let mut admin = user();
        admin.username = Some("admin".into());
        let zenml = UpdateContext { surface: "zenml", granted_by_contract: &[] };
        let (fields, _) = denial(PolicyEngine::default().authorize_update(Actor::SelfService, &admin, &["bio"], zenml));
        assert_eq!(fields, ["bio:reserved"]);
        assert!(authorize_update(Actor::SelfService, &admin, &["bio"]).is_ok(), "other surfaces only keep the name");
    }

    #[test]
    fn tenant_policies_add_forbids_with_their_notices_but_cannot_lift_built_in_ones() {
        let engine = PolicyEngine::with_tenant_policies(
            r#"@id("frozen-bio") @notice("Bios are frozen during the audit.")
               forbid (principal is User, action == Action::"update", resource) when { context.field == "bio" };
               @id("let-users-write-server-metadata")
               permit (principal is User, action, resource);"#,
        )
        .unwrap();
        let ctx = UpdateContext::default();
        let (fields, notices) =
            denial(engine.authorize_update(Actor::SelfService, &user(), &["bio", "server_metadata"], ctx));
        assert_eq!(fields, ["bio:forbidden_by_policy", "server_metadata:server_only"]);
        assert_eq!(notices, ["Bios are frozen during the audit.", NOTICE_SERVER_ONLY]);
        assert!(
            engine.authorize_update(Actor::Server, &user(), &["bio"], ctx).is_ok(),
            "the tenant's forbid names User only"
        );
        assert!(PolicyEngine::with_tenant_policies("permit (principal").is_err());
    }
}
