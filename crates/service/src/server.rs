//! Operations of the tenant's server (server key) and of the operator (root key): tenants,
//! users, suspensions, teams and memberships.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tessera_auth::secret::{hash_secret, random_token};
use tessera_core::events::{By, Event};
use tessera_core::oauth::{GrantType, OAuthClient};
use tessera_core::patch::{Limits, UserPatch};
use tessera_core::tenant::{Tenant, TenantSettings};
use tessera_core::user::{AuthProvider, Suspension, Team, User};
use tessera_core::{DomainError, FieldError, SuspensionId, TeamId, TenantId, UserId, validate};
use tessera_store::{ImageBlob, NewUser, UserFilter};

use crate::me::Extras;
use crate::oauth::CreatedOAuthClient;
use crate::{Result, Service, store_err};

/// A new tenant with its secrets, which are shown this once.
#[derive(Debug)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub server_key: String,
}

#[derive(Debug, Clone)]
pub struct NewSuspension {
    pub reason: String,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_by: String,
    /// Who suspends, as the activity trail records it.
    pub by: By,
}

/// Team fields as given by the server; absent ones are left alone on update.
#[derive(Debug, Clone, Default)]
pub struct TeamInput {
    pub display_name: Option<String>,
    pub profile_image_url: Option<Option<String>>,
    pub client_metadata: Option<Map<String, Value>>,
    pub client_read_only_metadata: Option<Map<String, Value>>,
    pub server_metadata: Option<Map<String, Value>>,
}

/// Fields `POST /v1/users` takes that an update does not.
const CREATE_ONLY: &[&str] =
    &["password", "is_service_account", "is_anonymous", "auth_provider", "oauth_provider", "oauth_id"];

impl Service {
    pub async fn create_tenant(&self, name: &str) -> Result<CreatedTenant> {
        let name = validate::name(name, 1, 100).map_err(|(c, m)| DomainError::field("name", c, m))?.unwrap_or_default();
        let server_key = random_token("tsr_sk_", 32);
        let tenant = Tenant {
            id: TenantId::new(),
            name,
            publishable_key: random_token("tsr_pk_", 24),
            settings: TenantSettings::default(),
            created_at: self.now(),
        };
        self.store.insert_tenant(&tenant, &hash_secret(&server_key)).await.map_err(store_err)?;
        Ok(CreatedTenant { tenant, server_key })
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.store.list_tenants().await.map_err(store_err)
    }

    pub async fn update_tenant_settings(&self, tenant_id: TenantId, body: &Map<String, Value>) -> Result<Tenant> {
        let mut tenant = (*self.tenant(tenant_id).await?).clone();
        let current = serde_json::to_value(&tenant.settings).map_err(DomainError::internal)?;
        let mut merged = current.clone();
        let mut errors = Vec::new();
        for (k, v) in body {
            if current.get(k).is_none() {
                errors.push(FieldError::new(k.clone(), "unknown_field", "no such setting"));
                continue;
            }
            // Each value is tried alone, so a wrong type is reported under its own name.
            let mut alone = current.clone();
            alone[k] = v.clone();
            if serde_json::from_value::<TenantSettings>(alone).is_err() {
                errors.push(match (k.as_str(), v) {
                    ("signing_algorithm", Value::String(_)) => {
                        FieldError::new(k.clone(), "invalid_choice", "must be EdDSA, ES256 or RS256")
                    }
                    _ => FieldError::new(k.clone(), "invalid_type", "has the wrong type"),
                });
            }
            merged[k] = v.clone();
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let settings: TenantSettings = serde_json::from_value(merged).map_err(DomainError::internal)?;
        settings.check()?;
        // The key exists before any token needs it.
        self.ensure_signing_key(settings.signing_algorithm).await?;
        tenant.settings = settings;
        self.store.update_tenant(&tenant).await.map_err(store_err)?;
        self.tenants.invalidate(&tenant_id).await;
        Ok(tenant)
    }

    /// Creates a user from the server side: any field of the user plus the creation-only ones.
    pub async fn create_user(&self, tenant_id: TenantId, body: &Map<String, Value>) -> Result<User> {
        let tenant = self.tenant(tenant_id).await?;
        let now = self.now();
        let mut user = User::new(tenant_id, now);
        let mut errors = Vec::new();
        let mut password = None;
        let mut rest = Map::new();
        for (k, v) in body {
            let bad_type = |errors: &mut Vec<FieldError>, what: &'static str| {
                errors.push(FieldError::new(k.clone(), "invalid_type", what));
            };
            match (k.as_str(), v) {
                ("password", Value::String(p)) => password = Some(p.clone()),
                ("password" | "oauth_provider" | "oauth_id", Value::Null) => {}
                ("is_service_account", Value::Bool(b)) => user.is_service_account = *b,
                ("is_anonymous", Value::Bool(b)) => user.is_anonymous = *b,
                ("auth_provider", Value::String(s)) => match AuthProvider::parse(s) {
                    Some(p) => user.auth_provider = p,
                    None => {
                        errors.push(FieldError::new("auth_provider", "invalid_value", "must be local, oidc or saml"))
                    }
                },
                ("oauth_provider", Value::String(s)) => user.profile.oauth_provider = Some(s.clone()),
                ("oauth_id", Value::String(s)) => user.profile.oauth_id = Some(s.clone()),
                (k, _) if CREATE_ONLY.contains(&k) => bad_type(&mut errors, "has the wrong type"),
                _ => {
                    rest.insert(k.clone(), v.clone());
                }
            }
        }
        let limits = Limits {
            image: tenant.settings.image_limits(),
            metadata_max_bytes: tenant.settings.metadata_max_bytes,
            ..Limits::default()
        };
        let patch = match UserPatch::parse(&rest, &limits, now.date_naive()) {
            Ok(p) => Some(p),
            Err(DomainError::Validation(mut e)) => {
                errors.append(&mut e);
                None
            }
            Err(other) => return Err(other),
        };
        if let Some(p) = &password {
            let inputs: Vec<&str> = rest.get("primary_email").and_then(Value::as_str).into_iter().collect();
            if let Err((c, m)) = validate::password(p, &inputs) {
                errors.push(FieldError::new("password", c, m));
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let Some(patch) = patch else { return Err(DomainError::Validation(errors)) };
        if patch.selected_team().is_present() {
            return Err(DomainError::field("selected_team_id", "not_a_member", "a new user is in no team yet"));
        }
        let applied = patch.apply(&mut user);
        let hash = match password {
            Some(p) => Some(self.hasher.hash(p).await.map_err(DomainError::internal)?),
            None => None,
        };
        user.has_password = hash.is_some();
        let secure = match applied.secure_metadata {
            tessera_core::patch::Field::Set(m) => m,
            _ => Map::new(),
        };
        let image = applied.new_image.as_ref().map(|i| ImageBlob {
            hash: i.hash_str(),
            content_type: i.kind.content_type(),
            bytes: &i.bytes,
        });
        let records = self.user_created(&user, By::Server, None).await?;
        self.store
            .insert_user(NewUser {
                user: &user,
                password_hash: hash.as_deref(),
                secure_metadata: &secure,
                new_image: image,
                records: &records,
            })
            .await
            .map_err(store_err)?;
        Ok(user)
    }

    /// Creates a service account: a `client_credentials` client named after it, whose user
    /// has the username (the secret is shown once).
    pub async fn create_service_account(&self, tenant_id: TenantId, username: &str) -> Result<CreatedOAuthClient> {
        self.tenant(tenant_id).await?;
        let username = validate::username(username.trim()).map_err(|(c, m)| DomainError::field("username", c, m))?;
        let now = self.now();
        let mut user = User::new(tenant_id, now);
        user.username = Some(username.clone());
        user.is_service_account = true;
        user.status = tessera_core::user::UserStatus::Active;
        let client = OAuthClient {
            client_id: random_token("tsr_ci_", 16),
            tenant_id,
            name: username,
            redirect_uris: Vec::new(),
            grant_types: vec![GrantType::ClientCredentials],
            is_public: false,
            user_id: Some(user.id),
            created_at: now,
        };
        self.insert_client(client, Some(user)).await
    }

    pub async fn get_user(&self, tenant_id: TenantId, id: UserId) -> Result<User> {
        self.store.find_user(tenant_id, id, self.now()).await.map_err(store_err)?.ok_or(DomainError::NotFound("user"))
    }

    pub async fn list_users(&self, tenant_id: TenantId, mut filter: UserFilter) -> Result<Vec<User>> {
        filter.limit = filter.limit.clamp(1, 200);
        self.store.list_users(tenant_id, &filter, self.now()).await.map_err(store_err)
    }

    /// Erases a user now (the server's or an administrator's decision; no grace period).
    pub async fn delete_user(&self, tenant_id: TenantId, id: UserId, by: By) -> Result<()> {
        let now = self.now();
        let records = crate::webhooks::erasure(tenant_id, id, by, now);
        if self.store.delete_user(tenant_id, id, &records).await.map_err(store_err)? {
            self.store.delete_unreferenced_images().await.map_err(store_err)?;
            Ok(())
        } else {
            Err(DomainError::NotFound("user"))
        }
    }

    /// Suspends a user: sign-in and every authenticated call are refused while it lasts.
    pub async fn suspend_user(&self, tenant_id: TenantId, id: UserId, s: NewSuspension) -> Result<Suspension> {
        let reason =
            validate::text(&s.reason, 1, 500).map_err(|(c, m)| DomainError::field("reason", c, m))?.unwrap_or_default();
        let now = self.now();
        if s.ends_at.is_some_and(|e| e <= now) {
            return Err(DomainError::field("ends_at", "in_past", "must be in the future"));
        }
        let suspension = Suspension {
            id: SuspensionId::new(),
            reason,
            starts_at: now,
            ends_at: s.ends_at,
            created_by: s.created_by,
        };
        let added = suspension.clone();
        self.modify_user(
            tenant_id,
            id,
            move |u| {
                u.suspensions.push(added.clone());
                Ok(())
            },
            Extras { event: Some("user.suspended"), by: s.by, ..Extras::default() },
        )
        .await?;
        Ok(suspension)
    }

    /// Ends a suspension now; it stays in the user's history.
    pub async fn lift_suspension(
        &self,
        tenant_id: TenantId,
        id: UserId,
        suspension: SuspensionId,
        by: By,
    ) -> Result<User> {
        let now = self.now();
        self.modify_user(
            tenant_id,
            id,
            move |u| {
                let s =
                    u.suspensions.iter_mut().find(|s| s.id == suspension).ok_or(DomainError::NotFound("suspension"))?;
                if s.is_active(now) {
                    s.ends_at = Some(now);
                }
                Ok(())
            },
            Extras { event: Some("user.unsuspended"), by, ..Extras::default() },
        )
        .await
    }

    pub async fn create_team(&self, tenant_id: TenantId, input: TeamInput) -> Result<Team> {
        let mut team = Team {
            id: TeamId::new(),
            tenant_id,
            display_name: String::new(),
            profile_image_url: None,
            client_metadata: Map::new(),
            client_read_only_metadata: Map::new(),
            server_metadata: Map::new(),
            created_at: self.now(),
        };
        if input.display_name.is_none() {
            return Err(DomainError::field("display_name", "required", "a team needs a display name"));
        }
        self.apply_team_input(&mut team, input).await?;
        let events = self.events(tenant_id, "team.created", || self.team_event("team.created", &team)).await?;
        self.store.insert_team(&team, &events).await.map_err(store_err)?;
        Ok(team)
    }

    pub async fn update_team(&self, tenant_id: TenantId, id: TeamId, input: TeamInput) -> Result<Team> {
        let mut team = self.get_team(tenant_id, id).await?;
        self.apply_team_input(&mut team, input).await?;
        let events = self.events(tenant_id, "team.updated", || self.team_event("team.updated", &team)).await?;
        self.store.update_team(&team, &events).await.map_err(|e| match e {
            tessera_store::StoreError::NotFound => DomainError::NotFound("team"),
            other => store_err(other),
        })?;
        Ok(team)
    }

    async fn apply_team_input(&self, team: &mut Team, input: TeamInput) -> Result<()> {
        let max = self.tenant(team.tenant_id).await?.settings.metadata_max_bytes;
        let mut errors = Vec::new();
        if let Some(name) = input.display_name {
            match validate::name(&name, 1, 256) {
                Ok(Some(n)) => team.display_name = n,
                Ok(None) => {}
                Err((c, m)) => errors.push(FieldError::new("display_name", c, m)),
            }
        }
        if let Some(url) = input.profile_image_url {
            match url.map(|u| validate::https_url(&u)).transpose() {
                Ok(u) => team.profile_image_url = u,
                Err((c, m)) => errors.push(FieldError::new("profile_image_url", c, m)),
            }
        }
        for (name, value, slot) in [
            ("client_metadata", input.client_metadata, &mut team.client_metadata),
            ("client_read_only_metadata", input.client_read_only_metadata, &mut team.client_read_only_metadata),
            ("server_metadata", input.server_metadata, &mut team.server_metadata),
        ] {
            if let Some(m) = value {
                match validate::metadata(&Value::Object(m), max) {
                    Ok(m) => *slot = m,
                    Err((c, msg)) => errors.push(FieldError::new(name, c, msg)),
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(DomainError::Validation(errors)) }
    }

    pub async fn get_team(&self, tenant_id: TenantId, id: TeamId) -> Result<Team> {
        self.store.find_team(tenant_id, id).await.map_err(store_err)?.ok_or(DomainError::NotFound("team"))
    }

    pub async fn list_teams(&self, tenant_id: TenantId) -> Result<Vec<Team>> {
        self.store.list_teams(tenant_id).await.map_err(store_err)
    }

    pub async fn delete_team(&self, tenant_id: TenantId, id: TeamId) -> Result<()> {
        let now = self.now();
        let data = || json!({"team": {"id": id}}).to_string();
        let events =
            self.events(tenant_id, "team.deleted", || Event::new(tenant_id, "team.deleted", data(), now)).await?;
        if self.store.delete_team(tenant_id, id, now, &events).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("team"))
        }
    }

    pub async fn add_member(&self, tenant_id: TenantId, team: TeamId, user: UserId) -> Result<()> {
        let now = self.now();
        let data = || json!({"team_id": team, "user_id": user}).to_string();
        let events = self
            .events(tenant_id, "team.member_added", || Event::new(tenant_id, "team.member_added", data(), now))
            .await?;
        self.store.add_member(tenant_id, team, user, now, &events).await.map_err(|e| match e {
            tessera_store::StoreError::NotFound => DomainError::NotFound("team or user"),
            other => store_err(other),
        })
    }

    pub async fn remove_member(&self, tenant_id: TenantId, team: TeamId, user: UserId) -> Result<()> {
        let now = self.now();
        let data = || json!({"team_id": team, "user_id": user}).to_string();
        let events = self
            .events(tenant_id, "team.member_removed", || Event::new(tenant_id, "team.member_removed", data(), now))
            .await?;
        if self.store.remove_member(tenant_id, team, user, now, &events).await.map_err(store_err)? {
            Ok(())
        } else {
            Err(DomainError::NotFound("membership"))
        }
    }

    pub async fn team_members(&self, tenant_id: TenantId, team: TeamId) -> Result<Vec<UserId>> {
        self.get_team(tenant_id, team).await?;
        self.store.list_team_members(tenant_id, team).await.map_err(store_err)
    }
}
