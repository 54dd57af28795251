//! The native error body `{code, message, details?, notices?}` and the single place where a
//! domain error becomes an HTTP status. 5xx bodies are generic; the cause travels with the
//! response as [`Untold`] and is logged by one middleware, inside the request's span (which
//! carries the request id).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tessera_core::{DomainError, FieldError};
use utoipa::ToSchema;

/// Every native error looks like this.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `validation_failed`, `tenant_mismatch`, `precondition_failed`.
    pub code: &'static str,
    /// For people; may change between versions.
    pub message: String,
    /// More context: for validation errors, `fields` lists each rejected field with its code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    /// Notices of the policies that decided a denial.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

#[derive(Debug)]
pub enum ApiError {
    Domain(DomainError),
    /// An error of the HTTP layer itself (bad header, bad JSON, unknown route...).
    Http {
        status: StatusCode,
        code: &'static str,
        message: String,
        details: Option<Value>,
    },
}

impl ApiError {
    pub fn http(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Http { status, code, message: message.into(), details: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::http(StatusCode::BAD_REQUEST, code, message)
    }

    /// The status and body of this error, for wire formats that wrap it differently.
    pub fn parts(&self) -> (StatusCode, ErrorBody) {
        match self {
            Self::Http { status, code, message, details } => {
                (*status, ErrorBody { code, message: message.clone(), details: details.clone(), notices: Vec::new() })
            }
            Self::Domain(e) => domain_parts(e),
        }
    }
}

/// `{"fields": [{field, code, message}, …]}`: how every error names the fields it refuses.
fn fields_detail(fields: &[FieldError]) -> Option<Value> {
    let fields: Vec<Value> =
        fields.iter().map(|f| json!({"field": f.field, "code": f.code, "message": f.message})).collect();
    (!fields.is_empty()).then(|| json!({ "fields": fields }))
}

fn domain_parts(e: &DomainError) -> (StatusCode, ErrorBody) {
    let body = |code, message: String, details, notices| ErrorBody { code, message, details, notices };
    match e {
        DomainError::Validation(fields) => {
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            (
                StatusCode::BAD_REQUEST,
                body(
                    "validation_failed",
                    format!("invalid fields: {}", names.join(", ")),
                    fields_detail(fields),
                    Vec::new(),
                ),
            )
        }
        DomainError::NotFound(what) => {
            (StatusCode::NOT_FOUND, body("not_found", format!("{what} not found"), None, Vec::new()))
        }
        DomainError::Conflict { field } => (
            StatusCode::CONFLICT,
            body(
                "conflict",
                format!("{field} is already taken"),
                fields_detail(&[FieldError::new(*field, "already_taken", "is already taken")]),
                Vec::new(),
            ),
        ),
        DomainError::Forbidden { reason, fields, notices } => {
            (StatusCode::FORBIDDEN, body("forbidden", reason.to_string(), fields_detail(fields), notices.clone()))
        }
        DomainError::TenantMismatch => (
            StatusCode::FORBIDDEN,
            body(
                "tenant_mismatch",
                "the credential belongs to a different tenant than X-Tenant-ID".into(),
                None,
                Vec::new(),
            ),
        ),
        DomainError::Unauthenticated(why) => {
            (StatusCode::UNAUTHORIZED, body("unauthenticated", (*why).to_owned(), None, Vec::new()))
        }
        DomainError::MfaRequired { mfa_token, methods } => (
            StatusCode::UNAUTHORIZED,
            body(
                "mfa_required",
                "a second factor is required: POST /v1/auth/mfa with this mfa_token and a code, or answer \
                 POST /v1/auth/passkey/options (with this mfa_token) with a passkey"
                    .into(),
                Some(json!({ "mfa_token": mfa_token, "methods": methods })),
                Vec::new(),
            ),
        ),
        DomainError::EmailUnverified => (
            StatusCode::FORBIDDEN,
            body(
                "email_unverified",
                "the account's email address is not verified yet: follow the link mailed to it".into(),
                None,
                Vec::new(),
            ),
        ),
        DomainError::TokenExpired => (
            StatusCode::UNAUTHORIZED,
            body("token_expired", "the access token has expired; refresh it".into(), None, Vec::new()),
        ),
        DomainError::Suspended { reason, ends_at } => (
            StatusCode::FORBIDDEN,
            body(
                "suspended",
                format!("the account is suspended: {reason}"),
                Some(json!({"reason": reason, "ends_at": ends_at})),
                Vec::new(),
            ),
        ),
        DomainError::PreconditionFailed => (
            StatusCode::PRECONDITION_FAILED,
            body(
                "precondition_failed",
                "the user was changed since you read it; read it again and retry".into(),
                None,
                Vec::new(),
            ),
        ),
        DomainError::RateLimited { retry_after_seconds } => (
            StatusCode::TOO_MANY_REQUESTS,
            body(
                "rate_limited",
                format!("too many attempts; try again in {retry_after_seconds} s"),
                Some(json!({"retry_after_seconds": retry_after_seconds})),
                Vec::new(),
            ),
        ),
        DomainError::HookRejected { message } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            body("hook_rejected", format!("the update was refused: {message}"), None, Vec::new()),
        ),
        DomainError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            body("unavailable", "the service is briefly unavailable; try again".into(), None, Vec::new()),
        ),
        DomainError::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, body("internal", "internal error".into(), None, Vec::new()))
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::Domain(e)
    }
}

impl ApiError {
    /// The cause the client is not told, if any: it goes to the log instead ([`Untold`]).
    pub fn untold(&self) -> Option<Untold> {
        match self {
            Self::Domain(e) => Untold::of(e),
            Self::Http { .. } => None,
        }
    }
}

/// The cause of a failure the client is not told (an internal error's, an outage's). Whatever
/// surface renders such an error attaches it to the response ([`Untold::attach`]), and one
/// middleware logs it, inside the request's span ([`Untold::log`], called by
/// `metrics::track`): no error type logs on its own, so none can forget to.
#[derive(Debug, Clone)]
pub struct Untold {
    /// The database was out of reach: a warning, since clients are told to retry.
    outage: bool,
    cause: std::sync::Arc<str>,
}

impl Untold {
    pub fn of(e: &DomainError) -> Option<Self> {
        match e {
            DomainError::Internal(cause) => Some(Self { outage: false, cause: cause.to_string().into() }),
            DomainError::Unavailable(cause) => Some(Self { outage: true, cause: cause.to_string().into() }),
            _ => None,
        }
    }

    /// `res` carrying `untold` for the logging middleware.
    pub fn attach(untold: Option<Self>, mut res: Response) -> Response {
        if let Some(untold) = untold {
            res.extensions_mut().insert(untold);
        }
        res
    }

    /// Logs the cause a response carries, if it carries one.
    pub(crate) fn log(res: &Response) {
        match res.extensions().get::<Self>() {
            Some(Self { outage: true, cause }) => tracing::warn!(error = %cause, "database unavailable"),
            Some(Self { outage: false, cause }) => tracing::error!(error = %cause, "internal error"),
            None => {}
        }
    }
}

/// Seconds after which a request refused because the database was unreachable may be tried
/// again: a restart or failover takes about that long.
const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        let retry_after = match &self {
            Self::Domain(DomainError::RateLimited { retry_after_seconds }) => Some(*retry_after_seconds),
            Self::Domain(DomainError::Unavailable(_)) => Some(UNAVAILABLE_RETRY_AFTER_SECONDS),
            _ => None,
        };
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Untold::attach(self.untold(), res)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<tessera_service::oauth::ProtocolError> for ApiError {
    fn from(e: tessera_service::oauth::ProtocolError) -> Self {
        use tessera_service::oauth::ProtocolError;
        match e {
            ProtocolError::Domain(d) => Self::Domain(d),
            ProtocolError::Protocol { error: "invalid_client", description } => {
                Self::http(StatusCode::UNAUTHORIZED, "invalid_client", description)
            }
            ProtocolError::Protocol { error, description } => Self::bad_request(error, description),
        }
    }
}
