//! A user's email addresses, the single-use tokens mailed to prove one or to recover the
//! account, and the messages that carry them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::{TenantId, UserId};

/// One of a user's addresses. Exactly one is the primary (the user's `primary_email`, the one
/// sign-in and recovery use); an address belongs to at most one user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// Stored lower-case.
    pub email: String,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
}

/// What a mailed token lets its holder do, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves that the holder receives mail at `email`.
    VerifyEmail,
    /// Sets a new password without the old one.
    ResetPassword,
    /// Undoes a change of the primary address away from `email`, and ends every session.
    RevertEmail,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::RevertEmail => "revert_email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::VerifyEmail, Self::ResetPassword, Self::RevertEmail].into_iter().find(|p| p.as_str() == s)
    }
}

/// A mailed token as stored: only its hash, whom it is for and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailToken {
    /// SHA-256 of the token; the token itself exists only in the message.
    pub hash: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub purpose: TokenPurpose,
    /// The address the token is about: the one to verify, the one a reset was mailed to, or
    /// the primary address a revert puts back.
    pub email: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A message queued in the outbox, in the transaction of the change it tells of, with the
/// token it carries (stored hashed beside it): both exist if and only if the change does.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub token: Option<MailToken>,
    pub created_at: DateTime<Utc>,
}

/// A queued message claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub struct DueMail {
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
}

/// Text made safe for HTML content and double-quoted attributes: the messages' HTML part, and
/// the hosted pages.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
