//! The domain error: what went wrong in terms a user of any surface understands. Each wire
//! format maps it to its own status and body in exactly one place.

use std::borrow::Cow;

/// One rejected field: its name (as the caller spelled it, after any adapter renaming) and a
/// stable machine code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: Cow<'static, str>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { field: field.into(), code, message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was broken; `field` names the field whose value is taken.
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// The field policy or an account rule refused the change. `fields` names each refused
    /// field; `notices` carries the deciding policies' notices.
    #[error("forbidden: {reason}")]
    Forbidden { reason: Cow<'static, str>, fields: Vec<FieldError>, notices: Vec<String> },
    #[error("the credential belongs to another tenant")]
    TenantMismatch,
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The tenant requires a verified primary address before sign-in, and this account's is
    /// not verified yet.
    #[error("the email address is not verified")]
    EmailUnverified,
    #[error("the access token has expired")]
    TokenExpired,
    /// The password was right; the second factor is still to come, with this challenge.
    #[error("a second factor is required")]
    MfaRequired { mfa_token: String, methods: Vec<&'static str> },
    #[error("the account is suspended")]
    Suspended { reason: String, ends_at: Option<chrono::DateTime<chrono::Utc>> },
    #[error("the resource was changed since it was read")]
    PreconditionFailed,
    /// Too many attempts; try again after this many seconds.
    #[error("too many attempts")]
    RateLimited { retry_after_seconds: u64 },
    /// The tenant's pre-update validation hook refused the change (or could not be asked).
    #[error("refused by the validation hook: {message}")]
    HookRejected { message: String },
    /// The database could not be reached (down, restarting, or out of connections): nothing
    /// was changed, and the same request may succeed in a moment.
    #[error("the service is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DomainError {
    pub fn field(field: impl Into<String>, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden { reason: reason.into(), fields: Vec::new(), notices: Vec::new() }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;
