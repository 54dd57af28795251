//! One typed `Settings`, layered: defaults → TOML file → `TESSERA_*` environment (`__` nests)
//! → command-line flags. Secrets may come from files (`*_file`), and never print in `Debug`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where to listen (`TESSERA_LISTEN`).
    pub listen: String,
    /// `sqlite://FILE` (the default, created on first start) or `postgres://...`
    /// (`TESSERA_DATABASE_URL`). A bare path means a SQLite file.
    pub database_url: String,
    pub database_url_file: Option<PathBuf>,
    /// The operator's key (`TESSERA_ROOT_KEY`). When unset, the stored one is used; on the
    /// very first start one is generated, stored (hashed) and printed once.
    #[serde(skip_serializing)]
    pub root_key: Option<SecretString>,
    pub root_key_file: Option<PathBuf>,
    /// The URL clients reach Tessera at; default `http://{listen}`.
    pub public_url: Option<String>,
    pub db_max_connections: u32,
    /// PostgreSQL: how long a request waits for a database connection before it is answered
    /// `503 unavailable` (all connections busy, or the server down and being reconnected to).
    pub db_acquire_timeout_ms: u64,
    /// SQLite: fsync every commit (survives power loss, not just a crash of the process).
    pub sqlite_sync_full: bool,
    /// SQLite: how long a user read for a session may be served from memory; 0 turns it off.
    /// This process's own writes are seen at once; the bound is for other processes' writes.
    pub sqlite_user_cache_ms: u64,
    /// argon2id hashes at once; default: the number of CPUs.
    pub hash_concurrency: Option<usize>,
    /// How often erasure of accounts past their deletion grace period runs.
    pub purge_interval_seconds: u64,
    /// `text` or `json`.
    pub log_format: String,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace_seconds: u64,
    /// A client must send its request headers within this time, or the connection is closed
    /// (slow-header clients, "slowloris", cannot hold connections open).
    pub header_read_timeout_seconds: u64,
    /// A whole request, body included, must be read and answered within this time, or it gets
    /// `408` (slow-body clients cannot hold a request open).
    pub request_timeout_seconds: u64,
    /// Where each foreign contract is mounted (`TESSERA_COMPAT__BIRD=/bird`, or a `[compat]` table).
    pub compat: tessera_api::compat::Prefixes,
    /// Calls Tessera makes to URLs tenants configure (an `[outbound]` table).
    pub outbound: OutboundSettings,
    /// Delivery of events to the tenants' webhook endpoints (a `[webhooks]` table).
    pub webhooks: WebhookSettings,
    /// Mail out: verification, recovery and change notices (a `[mail]` table).
    pub mail: MailSettings,
    /// Passkeys: the WebAuthn relying party (a `[webauthn]` table).
    pub webauthn: WebauthnSettings,
    /// The proxies (addresses or CIDR blocks) whose `X-Forwarded-For` or `Forwarded` header
    /// names the client (`TESSERA_TRUSTED_PROXIES='["10.0.0.0/8"]'`); none by default, so
    /// that those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// Minutes the tenants' console stays open without a request
    /// (`TESSERA_CONSOLE_IDLE_MINUTES`); then its admin signs in again.
    pub console_idle_minutes: u64,
}

/// Who passkeys are made for: one RP ID for the deployment, and the origins they are used from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnSettings {
    /// The RP ID (`TESSERA_WEBAUTHN__RP_ID`): a domain name, which passkeys are bound to for
    /// good. Default: the host of `public_url` (`localhost` when that is a loopback address).
    pub rp_id: Option<String>,
    /// The origins pages using passkeys run on (`TESSERA_WEBAUTHN__ORIGINS='["https://app.example.com"]'`),
    /// each on the RP ID or a subdomain of it. Default: the origin of `public_url` (and the
    /// same on `localhost` when that is a loopback address).
    #[serde(deserialize_with = "one_or_many")]
    pub origins: Vec<String>,
}

/// A list, or one string for a list of one (an environment variable holding a single origin).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Where mail goes and how long its links work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `smtp://host:port` (plain, for a local relay), `smtp+starttls://host:port`,
    /// `smtps://host:port` (TLS from the start), each with an optional `user:password@`, or
    /// `file:DIR` (each message an `.eml` file). Default: `file:` the `mail` directory beside
    /// the SQLite database (`TESSERA_MAIL__TRANSPORT`).
    pub transport: Option<String>,
    /// The sender (`TESSERA_MAIL__FROM`): `Name <address>` or an address.
    pub from: String,
    /// The SMTP user and password, when not in the URL; each may come from a file.
    pub user: Option<String>,
    pub user_file: Option<PathBuf>,
    #[serde(skip_serializing)]
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    /// Seconds to wait after each failed attempt before the next; after the last, the
    /// message is given up. Soon at first, then hourly for three days, by default.
    pub retry_schedule_seconds: Vec<u64>,
    /// How long a verification link works (default 24 hours).
    pub verify_ttl_seconds: u64,
    /// How long a password-reset link works (default 30 minutes).
    pub reset_ttl_seconds: u64,
    /// How long the link that undoes a change of primary address works (default 7 days).
    pub revert_ttl_seconds: u64,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: None,
            from: "Tessera <no-reply@localhost>".into(),
            user: None,
            user_file: None,
            password: None,
            password_file: None,
            retry_schedule_seconds: tessera_service::mail::default_retry_schedule(),
            verify_ttl_seconds: 24 * 3600,
            reset_ttl_seconds: 30 * 60,
            revert_ttl_seconds: 7 * 24 * 3600,
        }
    }
}

/// Delivery of events to webhook endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Seconds to wait after each failed attempt before the next
    /// (`TESSERA_WEBHOOKS__RETRY_SCHEDULE_SECONDS='[0,5,300]'`); after the last, the delivery has
    /// failed. Standard Webhooks' schedule by default, jittered by up to 10 %.
    pub retry_schedule_seconds: Vec<u64>,
    /// How long delivered events are kept (`TESSERA_WEBHOOKS__RETENTION_SECONDS`), 7 days by default.
    pub retention_seconds: u64,
    /// How long an endpoint has to answer an attempt (`TESSERA_WEBHOOKS__TIMEOUT_SECONDS`), 1–60,
    /// 15 by default.
    pub timeout_seconds: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_schedule_seconds: tessera_service::webhooks::DEFAULT_RETRY_SCHEDULE.to_vec(),
            retention_seconds: 7 * 24 * 3600,
            timeout_seconds: 15,
        }
    }
}

/// Calls Tessera makes to URLs tenants configure: the pre-update hook.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundSettings {
    /// Let them reach loopback, private, link-local and other non-public addresses
    /// (`TESSERA_OUTBOUND__ALLOW_PRIVATE_TARGETS=true`). For tests and local development; off,
    /// a tenant cannot make Tessera call into the network it runs in.
    pub allow_private_targets: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://tessera.db".into(),
            database_url_file: None,
            root_key: None,
            root_key_file: None,
            public_url: None,
            db_max_connections: 16,
            db_acquire_timeout_ms: 10_000,
            sqlite_sync_full: false,
            sqlite_user_cache_ms: 1000,
            hash_concurrency: None,
            purge_interval_seconds: 60,
            log_format: "text".into(),
            shutdown_grace_seconds: 30,
            header_read_timeout_seconds: 10,
            request_timeout_seconds: 30,
            compat: tessera_api::compat::Prefixes::default(),
            outbound: OutboundSettings::default(),
            webhooks: WebhookSettings::default(),
            mail: MailSettings::default(),
            webauthn: WebauthnSettings::default(),
            trusted_proxies: Vec::new(),
            console_idle_minutes: 30,
        }
    }
}

/// Flags that override everything else; `None` leaves the layer below in force.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Settings {
    /// Loads the layers. `config` is the TOML file (`--config` or `TESSERA_CONFIG`); a missing
    /// file named explicitly is an error, not silently skipped.
    pub fn load(config: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config {
            anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(Env::prefixed("TESSERA_").ignore(&["config", "log", "user_password"]).split("__"))
            .merge(Serialized::globals(overrides));
        let mut s: Settings = fig.extract().context("invalid configuration")?;
        if let Some(path) = &s.root_key_file {
            let key =
                std::fs::read_to_string(path).with_context(|| format!("reading root_key_file {}", path.display()))?;
            s.root_key = Some(SecretString::from(key.trim().to_owned()));
        }
        if let Some(path) = &s.database_url_file {
            s.database_url = std::fs::read_to_string(path)
                .with_context(|| format!("reading database_url_file {}", path.display()))?
                .trim()
                .into();
        }
        if let Some(path) = &s.mail.user_file {
            let user =
                std::fs::read_to_string(path).with_context(|| format!("reading mail.user_file {}", path.display()))?;
            s.mail.user = Some(user.trim().to_owned());
        }
        if let Some(path) = &s.mail.password_file {
            let password = std::fs::read_to_string(path)
                .with_context(|| format!("reading mail.password_file {}", path.display()))?;
            s.mail.password = Some(SecretString::from(password.trim_end_matches(['\n', '\r']).to_owned()));
        }
        s.validate()?;
        s.mail_config()?;
        s.relying_party(&s.public_url())?;
        Ok(s)
    }

    /// Where mail goes: the configured transport, or the `mail` directory beside the SQLite
    /// database (the working directory's, on PostgreSQL).
    pub fn mail_transport(&self) -> String {
        if let Some(t) = self.mail.transport.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            return t.to_owned();
        }
        let url = self.store_url();
        let dir = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|file| Path::new(file.split('?').next().unwrap_or(file)).parent().map(Path::to_path_buf))
            .and_then(|parent| parent)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        format!("file:{}", dir.join("mail").display())
    }

    /// The service's mail settings, checked.
    pub fn mail_config(&self) -> anyhow::Result<tessera_service::mail::MailConfig> {
        use tessera_service::mail::{MailConfig, Transport};
        let m = &self.mail;
        let credentials = match (&m.user, &m.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.expose_secret().to_owned())),
            (None, None) => None,
            _ => anyhow::bail!("mail.user and mail.password go together"),
        };
        let public = url::Url::parse(&self.public_url()).ok();
        let hello = public.as_ref().and_then(|u| u.host_str()).unwrap_or("localhost").to_owned();
        let transport = Transport::parse(&self.mail_transport(), credentials, &hello).map_err(anyhow::Error::msg)?;
        let from = m.from.parse().with_context(|| format!("mail.from = {:?} is not an address", m.from))?;
        let seconds = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000).max(1));
        Ok(MailConfig {
            retry_schedule: m.retry_schedule_seconds.clone(),
            verify_ttl: seconds(m.verify_ttl_seconds),
            reset_ttl: seconds(m.reset_ttl_seconds),
            revert_ttl: seconds(m.revert_ttl_seconds),
            ..MailConfig::new(transport, from)
        })
    }

    /// The WebAuthn relying party for Tessera reached at `public_url`, checked: its RP ID must
    /// be a domain name and every origin on it.
    pub fn relying_party(&self, public_url: &str) -> anyhow::Result<tessera_auth::webauthn::RelyingParty> {
        let public =
            url::Url::parse(public_url).with_context(|| format!("public_url = {public_url:?} is not a URL"))?;
        let loopback = match public.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        };
        let w = &self.webauthn;
        let rp_id = match (&w.rp_id, loopback) {
            (Some(id), _) => id.trim().to_owned(),
            (None, true) => "localhost".to_owned(),
            (None, false) => public.host_str().unwrap_or_default().to_owned(),
        };
        let mut origins = Vec::new();
        for o in &w.origins {
            let url = url::Url::parse(o).with_context(|| format!("webauthn.origins: {o:?} is not an origin"))?;
            origins.push(url);
        }
        if origins.is_empty() {
            origins.push(url::Url::parse(&public.origin().ascii_serialization())?);
            if loopback {
                let port = public.port().map(|p| format!(":{p}")).unwrap_or_default();
                origins.push(url::Url::parse(&format!("{}://localhost{port}", public.scheme()))?);
            }
        }
        tessera_auth::webauthn::RelyingParty::new(&rp_id, &origins).map_err(|e| {
            anyhow::anyhow!(
                "passkeys cannot work with this configuration: {e}. Set public_url to a URL on a domain name, \
                 or set webauthn.rp_id (TESSERA_WEBAUTHN__RP_ID) and webauthn.origins (TESSERA_WEBAUTHN__ORIGINS)"
            )
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("listen = {:?} is not an address:port", self.listen))?;
        anyhow::ensure!(matches!(self.log_format.as_str(), "text" | "json"), "log_format must be text or json");
        // An empty URL (`TESSERA_DATABASE_URL=` in a unit file, say) would open SQLite's private
        // temporary database, a different one for each connection: migrated on one, missing
        // on the next ("no such table" at start-up).
        let db = self.database_url.trim();
        anyhow::ensure!(
            !db.is_empty() && db != "sqlite://" && db != "sqlite:",
            "database_url is empty: set it to a file path, sqlite://<path> or postgres://…"
        );
        let c = &self.compat;
        for prefix in [&c.stack_auth, &c.zenml, &c.bird, &c.jitsudo, &c.replyke] {
            anyhow::ensure!(
                prefix.starts_with('/') && prefix.len() > 1 && !prefix.ends_with('/') && !prefix.starts_with("/v1"),
                "compat prefix {prefix:?} must start with / (not end with one) and stay out of /v1"
            );
        }
        if let Some(k) = &self.root_key {
            anyhow::ensure!(k.expose_secret().len() >= 16, "the root key must be at least 16 characters");
        }
        self.trusted_proxies()?;
        Ok(())
    }

    /// The trusted proxies, parsed.
    pub fn trusted_proxies(&self) -> anyhow::Result<tessera_api::proxies::TrustedProxies> {
        tessera_api::proxies::TrustedProxies::parse(&self.trusted_proxies).map_err(anyhow::Error::msg)
    }

    /// The database URL in the form the store takes.
    pub fn store_url(&self) -> String {
        let url = self.database_url.trim();
        if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_owned()
        } else {
            format!("sqlite://{url}")
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_environment_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndatabase_url = \"file.db\"\npurge_interval_seconds = 5\n")
            .unwrap();
        let s = Settings::load(Some(&file), &Overrides { listen: Some("127.0.0.1:9001".into()), ..Default::default() })
            .unwrap();
        assert_eq!(s.listen, "127.0.0.1:9001");
        assert_eq!(s.store_url(), "sqlite://file.db");
        assert_eq!(s.purge_interval_seconds, 5);
        assert_eq!(Settings::default().store_url(), "sqlite://tessera.db");
    }

    #[test]
    #[allow(clippy::result_large_err, reason = "the closure returns figment's own error type")]
    fn the_webauthn_settings_come_from_the_environment_as_one_origin_or_a_list() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA_PUBLIC_URL", "https://id.example.com");
            jail.set_env("TESSERA_WEBAUTHN__RP_ID", "example.com");
            jail.set_env("TESSERA_WEBAUTHN__ORIGINS", r#"["https://id.example.com","https://app.example.com"]"#);
            let s = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.webauthn.rp_id.as_deref(), Some("example.com"));
            assert_eq!(s.webauthn.origins, ["https://id.example.com", "https://app.example.com"]);
            jail.set_env("TESSERA_WEBAUTHN__ORIGINS", "https://app.example.com");
            let s = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.webauthn.origins, ["https://app.example.com"]);
            assert_eq!(s.relying_party(&s.public_url()).map_err(|e| e.to_string())?.rp_id(), "example.com");
            Ok(())
        });
    }

    #[test]
    fn a_missing_named_file_and_a_bad_address_are_errors() {
        assert!(Settings::load(Some(Path::new("/nonexistent/tessera.toml")), &Overrides::default()).is_err());
        assert!(Settings::load(None, &Overrides { listen: Some("nope".into()), ..Default::default() }).is_err());
        for empty in ["", " ", "sqlite://"] {
            let e = Settings::load(None, &Overrides { database_url: Some(empty.into()), ..Default::default() })
                .unwrap_err();
            assert!(e.to_string().contains("database_url is empty"), "{e}");
        }
    }

    #[test]
    fn mail_goes_beside_the_database_unless_told_and_a_bad_transport_stops_the_start() {
        let s = Settings { database_url: "sqlite:///var/lib/tessera/t.db".into(), ..Settings::default() };
        assert_eq!(s.mail_transport(), "file:/var/lib/tessera/mail");
        assert_eq!(Settings::default().mail_transport(), "file:./mail");
        for good in
            ["smtp://127.0.0.1:2525", "smtps://u:p%40ss@mail.example.com", "smtp+starttls://mail.example.com:587"]
        {
            let s = Settings {
                mail: MailSettings { transport: Some(good.into()), ..MailSettings::default() },
                ..Settings::default()
            };
            assert!(s.mail_config().is_ok(), "{good}");
        }
        for (bad, says) in
            [("imap://mail.example.com", "unknown scheme"), ("file:", "needs a directory"), ("smtp://", "no host")]
        {
            let s = Settings {
                mail: MailSettings { transport: Some(bad.into()), ..MailSettings::default() },
                ..Settings::default()
            };
            let e = s.mail_config().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let s = Settings {
            mail: MailSettings { from: "not an address".into(), ..MailSettings::default() },
            ..Settings::default()
        };
        assert!(s.mail_config().unwrap_err().to_string().contains("mail.from"));
        let half = MailSettings { user: Some("u".into()), ..MailSettings::default() };
        assert!(Settings { mail: half, ..Settings::default() }.mail_config().is_err(), "a user without a password");
    }

    #[test]
    fn secrets_do_not_print() {
        let mail =
            MailSettings { password: Some(SecretString::from("smtp-secret-pw".to_owned())), ..MailSettings::default() };
        let s = Settings {
            root_key: Some(SecretString::from("super-secret-root-key".to_owned())),
            mail,
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("super-secret-root-key"));
        assert!(!format!("{s:?}").contains("smtp-secret-pw"));
    }
}
