//! The field policy: who may change which field of which user.
//!
//! Every surface asks `authorize_update` before a change is stored. The rules are SPEC §1's
//! defaults; each denial carries the notice of the rule that decided it.

use crate::error::{DomainError, FieldError};
use crate::user::User;
use crate::validate::is_reserved_username;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user, editing its own account through a self-service API.
    SelfService,
    /// The tenant's backend, holding the server key.
    Server,
}

/// Fields only the tenant's server may write.
pub const SERVER_ONLY_FIELDS: &[&str] = &[
    "client_read_only_metadata",
    "server_metadata",
    "secure_metadata",
    "primary_email_verified",
    "status",
    "is_active",
    "is_superuser",
    "password_expired",
    "organization_id",
];

/// Fields an external identity provider owns for `oidc`/`saml` users.
pub const IDP_MANAGED_FIELDS: &[&str] = &["first_name", "last_name", "primary_email", "username"];

pub const NOTICE_SERVICE_ACCOUNT: &str = "Service accounts cannot update themselves; use the server API.";
pub const NOTICE_SERVER_ONLY: &str = "This field is written only by the tenant's server.";
pub const NOTICE_IDP_MANAGED: &str = "This field is managed by the identity provider and is read-only.";
pub const NOTICE_ADMIN_USERNAME: &str = "The reserved admin username cannot be changed.";

/// Decides whether `actor` may change `fields` of `user`. On denial, every refused field is
/// named and the notices of the deciding rules are listed once each.
pub fn authorize_update(actor: Actor, user: &User, fields: &[&str]) -> Result<(), DomainError> {
    if actor == Actor::Server {
        return Ok(());
    }
    if user.is_service_account {
        return Err(DomainError::Forbidden {
            reason: "service accounts cannot update themselves".into(),
            fields: Vec::new(),
            notices: vec![NOTICE_SERVICE_ACCOUNT.to_owned()],
        });
    }
    let mut denied = Vec::new();
    let mut notices: Vec<String> = Vec::new();
    let mut deny = |field: &str, code: &'static str, notice: &'static str| {
        denied.push(FieldError::new(field, code, notice));
        if !notices.iter().any(|n| n == notice) {
            notices.push(notice.to_owned());
        }
    };
    for &field in fields {
        if SERVER_ONLY_FIELDS.contains(&field) {
            deny(field, "server_only", NOTICE_SERVER_ONLY);
        } else if user.auth_provider.is_external() && IDP_MANAGED_FIELDS.contains(&field) {
            deny(field, "idp_managed", NOTICE_IDP_MANAGED);
        } else if field == "username" && user.username.as_deref().is_some_and(is_reserved_username) {
            deny(field, "reserved", NOTICE_ADMIN_USERNAME);
        }
    }
    if denied.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Forbidden { reason: "you may not change these fields".into(), fields: denied, notices })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use crate::user::AuthProvider;

    fn user() -> User {
        User::new(TenantId::new(), chrono::Utc::now())
    }

    #[test]
    fn users_edit_their_own_profile_but_not_server_tiers() {
        assert!(authorize_update(Actor::SelfService, &user(), &["display_name", "client_metadata"]).is_ok());
        let Err(DomainError::Forbidden { fields, notices, .. }) =
            authorize_update(Actor::SelfService, &user(), &["server_metadata", "bio", "secure_metadata"])
        else {
            panic!("expected a denial")
        };
        assert_eq!(fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["server_metadata", "secure_metadata"]);
        assert_eq!(notices, [NOTICE_SERVER_ONLY]);
    }

    #[test]
    fn idp_managed_fields_are_read_only_for_external_users() {
        let mut u = user();
        u.auth_provider = AuthProvider::Saml;
        assert!(authorize_update(Actor::SelfService, &u, &["first_name"]).is_err());
        assert!(authorize_update(Actor::SelfService, &u, &["display_name"]).is_ok());
        assert!(authorize_update(Actor::Server, &u, &["first_name"]).is_ok());
    }

    #[test]
    fn service_accounts_cannot_self_update_and_admin_keeps_its_name() {
        let mut sa = user();
        sa.is_service_account = true;
        assert!(authorize_update(Actor::SelfService, &sa, &["display_name"]).is_err());
        let mut admin = user();
        admin.username = Some("admin".into());
        assert!(authorize_update(Actor::SelfService, &admin, &["username"]).is_err());
        assert!(authorize_update(Actor::SelfService, &admin, &["bio"]).is_ok());
    }
}
