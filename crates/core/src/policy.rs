//! The field policy, on Cedar: who may change which field of which user.
//!
//! Every surface asks `PolicyEngine::authorize_update` before a change is stored. The built-in
//! policies (`default_policies.cedar`) express who may write which field (as `fields.rs` declares); a tenant may add its own Cedar
//! policies, which are evaluated together with them (a tenant `forbid` always wins; a tenant
//! `permit` cannot lift a built-in `forbid`). A denial names each refused field with the
//! `@code` of the deciding policy, and lists the deciding policies' `@notice`s.

use std::str::FromStr;
use std::sync::{LazyLock, PoisonError, RwLock};

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    Request, RestrictedExpression,
};

use crate::error::{DomainError, FieldError};
use crate::ids::{TenantId, UserId};
use crate::user::{AuthProvider, User};

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
pub const NOTICE_ROLE: &str = "A user's role is given by the tenant's server or an administrator, never by the user.";

/// Where an update comes from, for policies that care.
#[derive(Debug, Clone, Copy)]
pub struct UpdateContext<'a> {
    /// `native` or a foreign contract's name (`stack-auth`, `zenml`, `bird`, `jitsudo`, `replyke`).
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
pub struct PolicyEngine {
    set: PolicySet,
    /// Answers already given, by the whole of their question. Cedar's decision is a function
    /// of the request, the entities and the policy set alone, and the key holds every input
    /// those are built from, so an answer found here is the one Cedar would give. One
    /// evaluation was 16 % of the CPU of `PATCH /me` (BENCHMARKS.md), and a user who saves
    /// the same fields again (preferences kept in `client_metadata`) asks the same question.
    answers: RwLock<HashMap<Question, Option<Refusal>>>,
}

/// The most answers an engine keeps. A few hundred bytes each; when full, it starts over.
const MAX_ANSWERS: usize = 4096;

/// Everything one field's decision is computed from (`PolicyEngine::evaluate`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question {
    actor: Actor,
    tenant: TenantId,
    user: UserId,
    auth_provider: AuthProvider,
    is_service_account: bool,
    is_anonymous: bool,
    /// Lower-cased; empty without one, as the policies see it.
    username: String,
    field: String,
    surface: String,
    granted_by_contract: bool,
}

/// Why a field was refused: the deciding policy's `@code` and first `@notice`, and every
/// `@notice` of the deciding policies, in order.
#[derive(Debug, Clone)]
struct Refusal {
    code: &'static str,
    message: String,
    notices: Vec<String>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine").field("set", &self.set).finish_non_exhaustive()
    }
}

impl Default for PolicyEngine {
    fn default() -> Self {
        Self::new(DEFAULTS.clone())
    }
}

impl PolicyEngine {
    fn new(set: PolicySet) -> Self {
        Self { set, answers: RwLock::new(HashMap::new()) }
    }

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
        Ok(Self::new(set))
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
        let mut denied = Vec::new();
        let mut notices: Vec<String> = Vec::new();
        for &field in fields {
            let question = Question {
                actor,
                tenant: user.tenant_id,
                user: user.id,
                auth_provider: user.auth_provider,
                is_service_account: user.is_service_account,
                is_anonymous: user.is_anonymous,
                username: user.username.as_deref().unwrap_or("").to_lowercase(),
                field: field.to_owned(),
                surface: ctx.surface.to_owned(),
                granted_by_contract: ctx.granted_by_contract.contains(&field),
            };
            let known = self.answers.read().unwrap_or_else(PoisonError::into_inner).get(&question).cloned();
            let answer = match known {
                Some(answer) => answer,
                None => {
                    let answer = self.evaluate(&question)?;
                    let mut answers = self.answers.write().unwrap_or_else(PoisonError::into_inner);
                    if answers.len() >= MAX_ANSWERS {
                        answers.clear();
                    }
                    answers.insert(question, answer.clone());
                    answer
                }
            };
            let Some(refusal) = answer else { continue };
            for notice in refusal.notices {
                if !notices.contains(&notice) {
                    notices.push(notice);
                }
            }
            denied.push(FieldError { field: field.to_owned(), code: refusal.code, message: refusal.message.into() });
        }
        if denied.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Forbidden { reason: "you may not change these fields".into(), fields: denied, notices })
        }
    }

    /// Asks Cedar. The request and entities are built directly rather than parsed from JSON:
    /// on `PATCH /me` the JSON route was a third of the policy check's cost (BENCHMARKS.md).
    fn evaluate(&self, q: &Question) -> Result<Option<Refusal>, DomainError> {
        let internal =
            |what: &str, e: &dyn std::fmt::Display| DomainError::Internal(format!("policy {what}: {e}").into());
        let user_uid = uid(&USER_TYPE, &q.user.to_string());
        let server_uid = uid(&SERVER_TYPE, &q.tenant.to_string());
        let principal = match q.actor {
            Actor::SelfService => user_uid.clone(),
            Actor::Server => server_uid.clone(),
        };
        let attrs = HashMap::from([
            ("auth_provider".to_owned(), RestrictedExpression::new_string(q.auth_provider.as_str().to_owned())),
            ("is_service_account".to_owned(), RestrictedExpression::new_bool(q.is_service_account)),
            ("is_anonymous".to_owned(), RestrictedExpression::new_bool(q.is_anonymous)),
            ("username".to_owned(), RestrictedExpression::new_string(q.username.clone())),
        ]);
        let me = Entity::new(user_uid.clone(), attrs, HashSet::new()).map_err(|e| internal("entities", &e))?;
        let server = Entity::new_no_attrs(server_uid, HashSet::new());
        let entities = Entities::from_entities([me, server], None).map_err(|e| internal("entities", &e))?;
        let context = Context::from_pairs([
            ("field".to_owned(), RestrictedExpression::new_string(q.field.clone())),
            ("surface".to_owned(), RestrictedExpression::new_string(q.surface.clone())),
            ("granted_by_contract".to_owned(), RestrictedExpression::new_bool(q.granted_by_contract)),
        ])
        .map_err(|e| internal("context", &e))?;
        let request = Request::new(principal, UPDATE_ACTION.clone(), user_uid, context, None)
            .map_err(|e| internal("request", &e))?;
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        if response.decision() == Decision::Allow {
            return Ok(None);
        }
        let deciding: Vec<&Policy> = response.diagnostics().reason().filter_map(|id| self.set.policy(id)).collect();
        let code = deciding.iter().find_map(|p| p.annotation("code")).unwrap_or("forbidden_by_policy");
        let mut notices: Vec<String> = Vec::new();
        for notice in deciding.iter().filter_map(|p| p.annotation("notice")) {
            if !notices.iter().any(|n| n == notice) {
                notices.push(notice.to_owned());
            }
        }
        let message = notices.first().cloned().unwrap_or_else(|| "no policy permits this change".to_owned());
        Ok(Some(Refusal { code: intern_code(code), message, notices }))
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
        "role_not_self_assigned" => "role_not_self_assigned",
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

    /// The field table says who may write each field; the built-in policies decide it. They
    /// must agree, or the API's description would promise what the policy refuses.
    #[test]
    fn the_built_in_policies_let_the_user_write_exactly_the_fields_the_table_says() {
        use crate::fields::{USER_FIELDS, Writer};
        for f in USER_FIELDS.iter().filter(|f| f.is_writable()) {
            let by_user = authorize_update(Actor::SelfService, &user(), &[f.name]).is_ok();
            assert_eq!(by_user, f.writer == Writer::User, "{}", f.name);
            assert!(authorize_update(Actor::Server, &user(), &[f.name]).is_ok(), "{}", f.name);
        }
    }

    #[test]
    fn the_built_in_policies_parse_and_carry_the_published_notices() {
        for n in [NOTICE_SERVICE_ACCOUNT, NOTICE_SERVER_ONLY, NOTICE_IDP_MANAGED, NOTICE_ADMIN_USERNAME, NOTICE_ROLE] {
            assert!(DEFAULT_POLICIES.contains(n), "{n}");
        }
        assert_eq!(DEFAULTS.policies().count(), 8);
    }

    #[test]
    fn a_user_never_gives_itself_a_role() {
        let (fields, notices) = denial(authorize_update(Actor::SelfService, &user(), &["role"]));
        assert_eq!((fields, notices), (vec!["role:role_not_self_assigned".to_owned()], vec![NOTICE_ROLE.to_owned()]));
        assert!(authorize_update(Actor::Server, &user(), &["role"]).is_ok());
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

    #[test]
    fn a_kept_answer_is_only_given_to_the_same_question() {
        // A policy about one user by id, and one about a username: the answers for that
        // user, and for that name, must not be given to anyone else (or to them after a rename).
        let (frozen, other) = (user(), user());
        let engine = PolicyEngine::with_tenant_policies(&format!(
            r#"forbid (principal, action, resource == User::"{}") when {{ context.field == "bio" }};
               forbid (principal, action, resource) when {{ resource.username == "mallory" && context.field == "bio" }};"#,
            frozen.id
        ))
        .unwrap();
        let ctx = UpdateContext::default();
        for _ in 0..2 {
            assert!(engine.authorize_update(Actor::SelfService, &frozen, &["bio"], ctx).is_err());
            assert!(engine.authorize_update(Actor::SelfService, &other, &["bio"], ctx).is_ok());
        }
        let mut renamed = other.clone();
        renamed.username = Some("Mallory".into());
        let (fields, _) = denial(engine.authorize_update(Actor::SelfService, &renamed, &["bio"], ctx));
        assert_eq!(fields, ["bio:forbidden_by_policy"]);
        assert!(engine.authorize_update(Actor::SelfService, &other, &["bio"], ctx).is_ok());
    }
}
