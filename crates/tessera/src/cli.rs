//! The command line: `serve`, `migrate`, `tenant`, `user`, `keys`, `openapi`, each with human
//! output or `--json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tessera_core::events::By;
use tessera_core::{SystemClock, TenantId, UserId};
use tessera_service::{NewSuspension, Service};
use tessera_store::UserFilter;

use crate::config::{Overrides, Settings};
use crate::server;

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "Tessera: self-hosted user accounts")]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL (overrides TESSERA_DATABASE_URL and the file).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (overrides TESSERA_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth 2.0 / OpenID Connect clients.
    #[command(subcommand, name = "oauth-client")]
    OauthClient(OauthClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Look at webhook endpoints and their deliveries, and deliver again.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List a tenant's webhook endpoints.
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Show an endpoint's deliveries, newest first.
    Deliveries {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        endpoint: uuid::Uuid,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Queue a new attempt of one event for one endpoint, due now.
    Redeliver {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        endpoint: uuid::Uuid,
        #[arg(long)]
        event: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its server key (shown once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List a tenant's users.
    List {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        email: Option<String>,
    },
    /// Show one user.
    Get {
        #[arg(long)]
        tenant: TenantId,
        id: UserId,
    },
    /// Create a user; the password is read from TESSERA_USER_PASSWORD if set.
    Create {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, env = "TESSERA_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Erase a user now.
    Delete {
        #[arg(long)]
        tenant: TenantId,
        id: UserId,
    },
    /// Suspend a user until lifted.
    Suspend {
        #[arg(long)]
        tenant: TenantId,
        id: UserId,
        #[arg(long)]
        reason: String,
    },
    /// Give a user a role: `admin` (runs the tenant's users from the console) or `member`.
    SetRole {
        #[arg(long)]
        tenant: TenantId,
        id: UserId,
        #[arg(value_parser = ["member", "admin"])]
        role: String,
    },
    /// Lift a user's suspension now: the one named, or every active one.
    LiftSuspension {
        #[arg(long)]
        tenant: TenantId,
        id: UserId,
        /// The suspension (as `suspend` printed it); without it, all of the user's active ones.
        #[arg(long)]
        suspension: Option<tessera_core::SuspensionId>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OauthClientCommand {
    /// Register a client and print its id and secret (shown once; public clients have none).
    Create {
        #[arg(long)]
        tenant: TenantId,
        /// Shown to people on the consent page.
        #[arg(long)]
        name: String,
        /// An exact redirect URI; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// authorization_code, refresh_token or client_credentials; repeat for several.
        #[arg(long = "grant-type", default_values_t = ["authorization_code".to_owned(), "refresh_token".to_owned()])]
        grant_types: Vec<String>,
        /// A public client (browser or native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
    },
    /// List a tenant's clients.
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Delete a client.
    Delete {
        #[arg(long)]
        tenant: TenantId,
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key; the old one keeps verifying until its tokens expire.
    Rotate,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    // Colour codes only for a person at a terminal: a file, a pipe or journald gets plain lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if settings.log_format == "json" { builder.json().try_init() } else { builder.try_init() };
}

fn print(json_mode: bool, value: Value, human: impl FnOnce() -> String) {
    if json_mode {
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        println!("{}", human());
    }
}

async fn admin_service(settings: &Settings) -> anyhow::Result<Arc<Service>> {
    let store = server::open_store(settings).await?;
    let (service, generated) =
        server::build_service(settings, store, Arc::new(SystemClock), settings.public_url(), None).await?;
    if let Some(key) = generated {
        eprintln!("Generated the operator root key (shown once, store it safely): {key}");
    }
    Ok(service)
}

fn user_json(u: &tessera_core::user::User) -> Value {
    json!({
        "id": u.id, "tenant_id": u.tenant_id, "username": u.username, "primary_email": u.primary_email,
        "display_name": u.profile.display_name, "status": u.status.as_str(), "is_service_account": u.is_service_account,
        "is_anonymous": u.is_anonymous, "active_sessions": u.active_sessions, "version": u.version,
        "created_at": u.created_at, "deletion_scheduled_at": u.deletion_due_at, "role": u.role.as_str(),
        "suspensions": u.active_suspensions(chrono::Utc::now())
            .map(|s| json!({"id": s.id, "reason": s.reason, "ends_at": s.ends_at}))
            .collect::<Vec<_>>(),
    })
}

fn user_line(u: &tessera_core::user::User) -> String {
    format!(
        "{}  {}  {}  {}",
        u.id,
        u.primary_email.as_deref().unwrap_or("-"),
        u.username.as_deref().unwrap_or("-"),
        u.status.as_str()
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let settings =
        Settings::load(cli.config.as_deref(), &Overrides { listen, database_url: cli.database_url.clone() })?;
    let j = cli.json;
    match cli.command {
        Command::Serve { .. } => {
            init_logging(&settings);
            let running = server::start(&settings, Arc::new(SystemClock)).await?;
            if let Some(key) = &running.generated_root_key {
                println!("Generated the operator root key (shown once, store it safely): {key}");
            }
            println!("Tessera listening on http://{}", running.addr);
            running.run_until(shutdown_signal(), Duration::from_secs(settings.shutdown_grace_seconds)).await;
        }
        Command::Migrate => {
            server::open_store(&settings).await?;
            print(j, json!({"migrated": true}), || "database is up to date".into());
        }
        Command::Openapi => {
            println!("{}", tessera_api::openapi().to_pretty_json().context("rendering the OpenAPI document")?);
        }
        Command::Tenant(TenantCommand::Create { name }) => {
            let service = admin_service(&settings).await?;
            let created = service.create_tenant(&name).await.map_err(err)?;
            let t = &created.tenant;
            print(
                j,
                json!({"id": t.id, "name": t.name, "server_key": created.server_key, "publishable_key": t.publishable_key}),
                || {
                    format!(
                        "tenant {}\n  name:            {}\n  server key:      {} (shown once)\n  publishable key: {}",
                        t.id, t.name, created.server_key, t.publishable_key
                    )
                },
            );
        }
        Command::Tenant(TenantCommand::List) => {
            let service = admin_service(&settings).await?;
            let tenants = service.list_tenants().await.map_err(err)?;
            print(
                j,
                json!(
                    tenants
                        .iter()
                        .map(|t| json!({"id": t.id, "name": t.name, "created_at": t.created_at}))
                        .collect::<Vec<_>>()
                ),
                || tenants.iter().map(|t| format!("{}  {}", t.id, t.name)).collect::<Vec<_>>().join("\n"),
            );
        }
        Command::User(cmd) => {
            let service = admin_service(&settings).await?;
            user_command(&service, cmd, j).await?;
        }
        Command::OauthClient(cmd) => {
            let service = admin_service(&settings).await?;
            oauth_client_command(&service, cmd, j).await?;
        }
        Command::Webhooks(cmd) => {
            let service = admin_service(&settings).await?;
            webhooks_command(&service, cmd, j).await?;
        }
        Command::Keys(KeysCommand::Rotate) => {
            let service = admin_service(&settings).await?;
            let kids = service.rotate_signing_key().await.map_err(err)?;
            print(j, json!({"active_kids": kids}), || {
                format!(
                    "new signing keys {} are active; running servers pick them up within 30 seconds",
                    kids.join(", ")
                )
            });
        }
    }
    Ok(())
}

/// A domain error as the CLI reports it, naming each rejected field.
fn err(e: tessera_core::DomainError) -> anyhow::Error {
    match e {
        tessera_core::DomainError::Validation(fields) => anyhow::anyhow!(
            "invalid: {}",
            fields.iter().map(|f| format!("{} ({}: {})", f.field, f.code, f.message)).collect::<Vec<_>>().join("; ")
        ),
        // Kept as the error itself, so that `{:#}` also prints its cause (an internal error's).
        other => anyhow::Error::new(other),
    }
}

fn client_json(c: &tessera_core::oauth::OAuthClient) -> serde_json::Value {
    json!({
        "client_id": c.client_id, "name": c.name, "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(), "public": c.is_public,
        "user_id": c.user_id,
    })
}

async fn oauth_client_command(service: &Service, cmd: OauthClientCommand, j: bool) -> anyhow::Result<()> {
    match cmd {
        OauthClientCommand::Create { tenant, name, redirect_uris, grant_types, public } => {
            let new = tessera_service::oauth::NewOAuthClient { name, redirect_uris, grant_types, public };
            let created = service.create_oauth_client(tenant, new).await.map_err(err)?;
            let mut v = client_json(&created.client);
            v["client_secret"] = json!(created.client_secret);
            let c = &created.client;
            print(j, v, || match &created.client_secret {
                Some(secret) => {
                    format!("client {}\n  name:   {}\n  secret: {secret} (shown once)", c.client_id, c.name)
                }
                None => format!("public client {}\n  name:   {}", c.client_id, c.name),
            });
        }
        OauthClientCommand::List { tenant } => {
            let clients = service.list_oauth_clients(tenant).await.map_err(err)?;
            print(j, json!(clients.iter().map(client_json).collect::<Vec<_>>()), || {
                clients.iter().map(|c| format!("{}  {}", c.client_id, c.name)).collect::<Vec<_>>().join("\n")
            });
        }
        OauthClientCommand::Delete { tenant, client_id } => {
            service.delete_oauth_client(tenant, &client_id).await.map_err(err)?;
            print(j, json!({"deleted": client_id}), || format!("deleted client {client_id}"));
        }
    }
    Ok(())
}

async fn webhooks_command(service: &Service, cmd: WebhooksCommand, j: bool) -> anyhow::Result<()> {
    match cmd {
        WebhooksCommand::List { tenant } => {
            let all = service.list_webhooks(tenant).await.map_err(err)?;
            let as_json = |w: &tessera_core::events::WebhookEndpoint| {
                json!({"id": w.id, "url": w.url, "event_types": w.event_types, "description": w.description,
                    "enabled": w.enabled, "created_at": w.created_at})
            };
            print(j, json!(all.iter().map(as_json).collect::<Vec<_>>()), || {
                let line = |w: &tessera_core::events::WebhookEndpoint| {
                    let types =
                        if w.event_types.is_empty() { "every type".to_owned() } else { w.event_types.join(",") };
                    let state = if w.enabled { "enabled" } else { "disabled" };
                    format!("{}  {}  {state}  {types}", w.id, w.url)
                };
                all.iter().map(line).collect::<Vec<_>>().join("\n")
            });
        }
        WebhooksCommand::Deliveries { tenant, endpoint, limit } => {
            let page = service.list_deliveries(tenant, endpoint, None, limit.clamp(1, 200)).await.map_err(err)?;
            let as_json = |d: &tessera_core::events::Delivery| {
                json!({"event_id": d.event_id, "type": d.kind, "attempt": d.attempts, "status": d.status.as_str(),
                    "response_status": d.response_status, "error": d.error, "attempted_at": d.attempted_at,
                    "next_attempt_at": d.next_attempt_at})
            };
            print(j, json!(page.iter().map(as_json).collect::<Vec<_>>()), || {
                let line = |d: &tessera_core::events::Delivery| {
                    let answer = d.response_status.map_or_else(|| "-".to_owned(), |s| s.to_string());
                    let why = d.error.as_deref().unwrap_or("");
                    format!(
                        "{}  {}  {}  attempt {}  {answer}  {why}",
                        d.event_id,
                        d.kind,
                        d.status.as_str(),
                        d.attempts
                    )
                };
                page.iter().map(line).collect::<Vec<_>>().join("\n")
            });
        }
        WebhooksCommand::Redeliver { tenant, endpoint, event } => {
            service.redeliver(tenant, endpoint, event).await.map_err(err)?;
            print(j, json!({"queued": event}), || format!("queued event {event} for endpoint {endpoint}"));
        }
    }
    Ok(())
}

async fn user_command(service: &Service, cmd: UserCommand, j: bool) -> anyhow::Result<()> {
    match cmd {
        UserCommand::List { tenant, limit, email } => {
            let users =
                service.list_users(tenant, UserFilter { email, limit, ..Default::default() }).await.map_err(err)?;
            print(j, json!(users.iter().map(user_json).collect::<Vec<_>>()), || {
                users.iter().map(user_line).collect::<Vec<_>>().join("\n")
            });
        }
        UserCommand::Get { tenant, id } => {
            let u = service.get_user(tenant, id).await.map_err(err)?;
            print(j, user_json(&u), || serde_json::to_string_pretty(&user_json(&u)).unwrap_or_default());
        }
        UserCommand::Create { tenant, email, username, password } => {
            let mut body = serde_json::Map::new();
            body.insert("primary_email".into(), json!(email));
            if let Some(u) = username {
                body.insert("username".into(), json!(u));
            }
            if let Some(p) = password {
                body.insert("password".into(), json!(p));
            }
            let u = service.create_user(tenant, &body).await.map_err(err)?;
            print(j, user_json(&u), || format!("created {}", user_line(&u)));
        }
        UserCommand::Delete { tenant, id } => {
            service.delete_user(tenant, id, By::Server).await.map_err(err)?;
            print(j, json!({"deleted": id}), || format!("erased user {id}"));
        }
        UserCommand::Suspend { tenant, id, reason } => {
            let s = service
                .suspend_user(
                    tenant,
                    id,
                    NewSuspension { reason, ends_at: None, created_by: "cli".into(), by: By::Server },
                )
                .await
                .map_err(err)?;
            print(j, json!({"suspension_id": s.id, "user_id": id}), || {
                format!("suspended user {id} (suspension {})", s.id)
            });
        }
        UserCommand::SetRole { tenant, id, role } => {
            let mut body = serde_json::Map::new();
            body.insert("role".into(), json!(role));
            let opts = tessera_service::UpdateOptions { surface: "cli", ..Default::default() };
            let u = service.update_user(tenant, id, &body, &opts).await.map_err(err)?;
            print(j, user_json(&u), || format!("user {id} is now {}", u.role.as_str()));
        }
        UserCommand::LiftSuspension { tenant, id, suspension } => {
            let ids = match suspension {
                Some(s) => vec![s],
                None => {
                    let user = service.get_user(tenant, id).await.map_err(err)?;
                    user.active_suspensions(service.now()).map(|s| s.id).collect()
                }
            };
            for s in &ids {
                service.lift_suspension(tenant, id, *s, By::Server).await.map_err(err)?;
            }
            print(j, json!({"user_id": id, "lifted": ids}), || match ids.as_slice() {
                [] => format!("user {id} has no active suspension; nothing lifted"),
                ids => ids.iter().map(|s| format!("lifted suspension {s} of user {id}")).collect::<Vec<_>>().join("\n"),
            });
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
