//! Mail out: the transport (`mail.transport`), the messages Tessera writes, and the delivery
//! round every instance runs. A message is queued in the outbox by the change that makes it
//! (`Record::Mail`); a round claims due messages, sends each, and records the outcome, with
//! the next attempt on the retry schedule, so a mail server that is down delays mail and
//! loses none. Delivery never runs on a request.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tessera_core::mail::{DueMail, Mail, MailToken, escape_html as escape};
use tessera_core::tenant::Tenant;
use tessera_store::MailOutcome;

use crate::{Result, Service, store_err};

/// Messages one round claims at most.
const BATCH: u32 = 32;
/// How long one attempt may take before its claim lapses and another worker may try.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const LEASE_MARGIN: Duration = Duration::from_secs(15);
/// The longest wait between two attempts, whatever the schedule says.
const MAX_RETRY_WAIT_SECONDS: u64 = 30 * 24 * 3600;

/// Seconds to wait after each failed attempt before the next: soon at first, then hourly for
/// three days; after the last the message is given up.
pub fn default_retry_schedule() -> Vec<u64> {
    let mut s = vec![10, 30, 60, 300, 900, 1800];
    s.extend(std::iter::repeat_n(3600, 66));
    s
}

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    /// Each message as an `.eml` file in this directory (the embedded default).
    Files(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files(dir) => write!(f, "file:{}", dir.display()),
            Self::Smtp(_) => f.write_str("smtp"),
        }
    }
}

impl Transport {
    /// `smtp://host:port` (plain), `smtp+starttls://…`, `smtps://…` (TLS from the start), each
    /// with an optional `user:password@` (or `credentials`, which win), or `file:DIR`.
    /// `hello` is the name Tessera greets the server with.
    pub fn parse(spec: &str, credentials: Option<(String, String)>, hello: &str) -> std::result::Result<Self, String> {
        if let Some(dir) = spec.strip_prefix("file:") {
            let dir = dir.strip_prefix("//").unwrap_or(dir);
            if dir.is_empty() {
                return Err("mail.transport file: needs a directory".into());
            }
            return Ok(Self::Files(PathBuf::from(dir)));
        }
        let url = url::Url::parse(spec).map_err(|e| format!("mail.transport is not a URL: {e}"))?;
        let host = url.host_str().ok_or("mail.transport has no host")?.to_owned();
        let builder = match url.scheme() {
            "smtp" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).port(url.port().unwrap_or(25)),
            "smtp+starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| format!("mail.transport: {e}"))?
                .port(url.port().unwrap_or(587)),
            "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| format!("mail.transport: {e}"))?
                .port(url.port().unwrap_or(465)),
            other => {
                return Err(format!("mail.transport: unknown scheme {other} (smtp, smtp+starttls, smtps or file)"));
            }
        };
        let from_url = (!url.username().is_empty()).then(|| {
            let decode = |s: &str| percent_decode(s);
            (decode(url.username()), decode(url.password().unwrap_or("")))
        });
        let mut builder = builder.timeout(Some(ATTEMPT_TIMEOUT)).hello_name(ClientId::Domain(hello.to_owned()));
        if let Some((user, password)) = credentials.or(from_url) {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self::Smtp(builder.build()))
    }

    async fn send(&self, id: uuid::Uuid, message: Message) -> std::result::Result<(), Failure> {
        match self {
            Self::Files(dir) => {
                let bytes = message.formatted();
                let dir = dir.clone();
                let written = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    // Written whole, then renamed: a reader never sees half a message.
                    let part = dir.join(format!(".{id}.eml.part"));
                    std::fs::write(&part, bytes)?;
                    std::fs::rename(&part, dir.join(format!("{id}.eml")))
                })
                .await;
                match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(Failure::Retry(format!("writing the message: {e}"))),
                    Err(_) => Err(Failure::Retry("the write was cut off".into())),
                }
            }
            Self::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Ok(()),
                // The server refused for good (an unknown mailbox, say): retrying cannot help.
                Err(e) if e.is_permanent() => Err(Failure::GiveUp(e.to_string())),
                Err(e) => Err(Failure::Retry(e.to_string())),
            },
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

enum Failure {
    Retry(String),
    GiveUp(String),
}

/// The mail settings the service needs.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: Transport,
    /// The sender, `Name <address>` or an address.
    pub from: Mailbox,
    pub retry_schedule: Vec<u64>,
    /// How long a verification link works.
    pub verify_ttl: chrono::Duration,
    /// How long a password-reset link works.
    pub reset_ttl: chrono::Duration,
    /// How long the link that undoes a change of primary address works.
    pub revert_ttl: chrono::Duration,
    /// How long sent messages are kept (without their bodies) before they are forgotten.
    pub retention: chrono::Duration,
}

impl MailConfig {
    /// The defaults, with `transport` and `from`.
    pub fn new(transport: Transport, from: Mailbox) -> Self {
        Self {
            transport,
            from,
            retry_schedule: default_retry_schedule(),
            verify_ttl: chrono::Duration::hours(24),
            reset_ttl: chrono::Duration::minutes(30),
            revert_ttl: chrono::Duration::days(7),
            retention: chrono::Duration::days(7),
        }
    }
}

/// What one round of mail delivery did.
#[derive(Debug, Default, Clone, Copy)]
pub struct MailRound {
    pub sent: usize,
    pub failed: usize,
    pub claimed: usize,
}

impl MailRound {
    /// It claimed a whole batch: more may be due.
    pub fn is_full(&self) -> bool {
        self.claimed >= BATCH as usize
    }
}

/// What a message says, before it is dressed as text and HTML.
pub(crate) enum Letter<'a> {
    Verify {
        email: &'a str,
    },
    Reset,
    /// To the address that was the primary until the change.
    PrimaryChanged {
        new: Option<&'a str>,
    },
    /// To an account's address, when someone tried to sign up with it.
    SignUpAttempted,
}

impl Service {
    /// A message to `to` from the tenant, carrying `token` (whose secret half is `secret`) as
    /// the link to `page` on the tenant's hosted pages.
    pub(crate) fn letter(
        &self,
        tenant: &Tenant,
        to: &str,
        letter: Letter<'_>,
        token: Option<(String, MailToken)>,
        now: DateTime<Utc>,
    ) -> Mail {
        let name = tenant.name.as_str();
        let link = token.as_ref().map(|(secret, t)| {
            let page = match t.purpose {
                tessera_core::mail::TokenPurpose::VerifyEmail => "verify-email",
                tessera_core::mail::TokenPurpose::ResetPassword => "reset-password",
                tessera_core::mail::TokenPurpose::RevertEmail => "revert-email",
            };
            format!("{}/oidc/{}/{page}?token={secret}", self.config.public_url, tenant.id)
        });
        let page = |p: &str| format!("{}/oidc/{}/{p}", self.config.public_url, tenant.id);
        let link = match letter {
            Letter::SignUpAttempted => page("sign-in"),
            _ => link.unwrap_or_default(),
        };
        let (subject, lines, action) = match letter {
            Letter::SignUpAttempted => (
                format!("Someone tried to create a {name} account with your address"),
                vec![
                    format!("Someone tried to create a new {name} account with this address, which has one already."),
                    format!(
                        "If it was you, sign in instead. Forgot your password? Reset it here: {}",
                        page("reset-password")
                    ),
                    "If it was not you, ignore this message: nothing has changed.".to_owned(),
                ],
                "Sign in",
            ),
            Letter::Verify { email } => (
                format!("Confirm your email address for {name}"),
                vec![format!("Please confirm that {email} is your address for your {name} account.")],
                "Confirm the address",
            ),
            Letter::Reset => (
                format!("Reset your {name} password"),
                vec![
                    format!("Someone asked to reset the password of your {name} account."),
                    "If it was not you, ignore this message: your password stays as it is.".to_owned(),
                ],
                "Choose a new password",
            ),
            Letter::PrimaryChanged { new } => (
                format!("The email address of your {name} account was changed"),
                vec![
                    match new {
                        Some(new) => format!("The email address of your {name} account was changed to {new}."),
                        None => format!("The email address of your {name} account was removed."),
                    },
                    format!(
                        "If you did not make this change, use the link below within {} days: it puts this \
                         address back and signs the account out everywhere.",
                        self.mail_config().revert_ttl.num_days()
                    ),
                ],
                "Undo the change",
            ),
        };
        let text = format!("{}\n\n{action}: {link}\n\n— {name}\n", lines.join("\n\n"));
        let paragraphs: String = lines.iter().map(|l| format!("<p>{}</p>", escape(l))).collect();
        let html = format!(
            "<!doctype html><html><body style=\"font-family: sans-serif\">{paragraphs}\
             <p><a href=\"{}\">{}</a></p><p>— {}</p></body></html>",
            escape(&link),
            escape(action),
            escape(name)
        );
        Mail {
            id: uuid::Uuid::now_v7(),
            tenant_id: tenant.id,
            to: to.to_owned(),
            subject,
            text,
            html,
            token: token.map(|(_, t)| t),
            created_at: now,
        }
    }

    pub(crate) fn mail_config(&self) -> &MailConfig {
        &self.config.mail
    }

    /// One round of delivery: claims due messages, sends them (on the background runtime,
    /// when there is one), and records each outcome with its next attempt.
    pub async fn send_due_mail(&self) -> Result<MailRound> {
        let config = self.mail_config();
        let now = self.now();
        let lease = now + chrono::Duration::from_std(ATTEMPT_TIMEOUT + LEASE_MARGIN).unwrap_or_default();
        let due = self.store.claim_mail(BATCH, now, lease).await.map_err(store_err)?;
        let mut round = MailRound { claimed: due.len(), ..MailRound::default() };
        if due.is_empty() {
            return Ok(round);
        }
        let sends = due.into_iter().map(|m| {
            let transport = config.transport.clone();
            let from = config.from.clone();
            let attempt = async move {
                let id = m.id;
                let sent = match message(&from, &m) {
                    Ok(message) => transport.send(id, message).await,
                    Err(e) => Err(Failure::GiveUp(e)),
                };
                (m, sent)
            };
            async move {
                match &self.config.background {
                    Some(jobs) => jobs.spawn(attempt).await.map_err(|_| ()),
                    None => Ok(attempt.await),
                }
            }
        });
        let results = futures_util::future::join_all(sends).await;
        let at = self.now();
        let mut outcomes = Vec::with_capacity(results.len());
        // An attempt whose task died is not in `results`: its claim lapses, and it is made again.
        for (m, sent) in results.into_iter().flatten() {
            let finished = |sent: bool, error: Option<String>| MailOutcome {
                id: m.id,
                done: true,
                sent,
                error,
                at,
                next_attempt_at: None,
            };
            let outcome = match sent {
                Ok(()) => finished(true, None),
                Err(Failure::GiveUp(why)) => finished(false, Some(why)),
                Err(Failure::Retry(why)) => match config.retry_schedule.get((m.attempt as usize).saturating_sub(1)) {
                    Some(&wait) => MailOutcome {
                        done: false,
                        next_attempt_at: Some(at + chrono::Duration::seconds(wait.min(MAX_RETRY_WAIT_SECONDS) as i64)),
                        ..finished(false, Some(why))
                    },
                    None => finished(false, Some(why)),
                },
            };
            use std::sync::atomic::Ordering::Relaxed;
            let counter = match (&outcome.sent, &outcome.done) {
                (true, _) => &self.mail_counts.delivered,
                (false, false) => &self.mail_counts.retrying,
                (false, true) => &self.mail_counts.failed,
            };
            counter.fetch_add(1, Relaxed);
            if outcome.sent {
                round.sent += 1;
            } else {
                // The message's id, never its recipient or its link.
                tracing::warn!(mail = %m.id, attempt = m.attempt, error = outcome.error.as_deref().unwrap_or(""), "mail not sent");
                round.failed += 1;
            }
            outcomes.push(outcome);
        }
        self.store.record_mail(&outcomes).await.map_err(store_err)?;
        Ok(round)
    }

    /// Messages waiting to be sent, for the metrics.
    pub async fn pending_mail(&self) -> Result<u64> {
        self.store.pending_mail().await.map_err(store_err)
    }

    /// Forgets sent messages past their retention and tokens past their expiry.
    pub(crate) async fn purge_mail(&self) -> Result<()> {
        let now = self.now();
        self.store.purge_mail(now - self.mail_config().retention).await.map_err(store_err)?;
        self.store.purge_mail_tokens(now).await.map_err(store_err)?;
        Ok(())
    }
}

/// The message as sent: plain text and HTML alternatives.
fn message(from: &Mailbox, m: &DueMail) -> std::result::Result<Message, String> {
    let to: Mailbox = m.to.parse().map_err(|e| format!("the recipient is not an address: {e}"))?;
    Message::builder()
        .message_id(Some(format!("<{}@tessera>", m.id)))
        .from(from.clone())
        .to(to)
        .subject(m.subject.as_str())
        .multipart(MultiPart::alternative_plain_html(m.text.clone(), m.html.clone()))
        .map_err(|e| e.to_string())
}
