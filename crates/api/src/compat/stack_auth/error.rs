//! Stack's known errors: `{code, error, details}` with the code repeated in
//! `x-stack-known-error` and its `x-hexclave-known-error` twin (the SDK before its rename reads
//! only the first, after it the second first). Stack's SDK rebuilds each error from its
//! `details`, so every known error carries the object its class reads, `{}` when it reads
//! nothing, and only concrete codes are sent. An answer that is not a known error (a server
//! fault, a rate limit) goes without the header, and the SDK retries it.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_core::{DomainError, FieldError};

use crate::error::{ApiError, Untold};

pub(super) struct StackError {
    status: StatusCode,
    /// `None` for an answer that is not one of Stack's known errors.
    code: Option<&'static str>,
    error: String,
    details: Box<Value>,
    /// Seconds, for a rate limit.
    retry_after: Option<u64>,
    /// Boxed, as `details` is, to keep every `Result` of this adapter small.
    untold: Option<Box<Untold>>,
}

impl StackError {
    pub(super) fn new(status: StatusCode, code: &'static str, error: impl Into<String>) -> Self {
        Self {
            status,
            code: Some(code),
            error: error.into(),
            details: Box::new(json!({})),
            retry_after: None,
            untold: None,
        }
    }

    pub(super) fn code(&self) -> Option<&'static str> {
        self.code
    }

    pub(super) fn with(mut self, details: Value) -> Self {
        *self.details = details;
        self
    }

    /// `SCHEMA_ERROR`: `details.message` for the SDK, `details.fields` naming each field.
    pub(super) fn schema(message: impl Into<String>, fields: &[FieldError]) -> Self {
        let message = message.into();
        let fields: Vec<Value> =
            fields.iter().map(|f| json!({"field": f.field, "code": f.code, "message": f.message})).collect();
        Self::new(StatusCode::BAD_REQUEST, "SCHEMA_ERROR", message.clone())
            .with(json!({"message": message, "fields": fields}))
    }

    pub(super) fn schema_field(field: &str, code: &'static str, message: &'static str) -> Self {
        Self::schema(format!("{field} {message}"), &[FieldError::new(field, code, message)])
    }

    pub(super) fn project_not_found(project: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "PROJECT_NOT_FOUND", "no project with this id")
            .with(json!({"project_id": project}))
    }

    pub(super) fn user_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "USER_NOT_FOUND", "no such user")
    }

    pub(super) fn refresh_token_not_found() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED",
            "the refresh token is unknown, or its session has ended",
        )
    }

    /// A refusal because the account is suspended, disabled or deactivated.
    fn restricted(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "RESTRICTED_USER_NOT_ALLOWED", message)
            .with(json!({"restricted_reason": {"type": "restricted_by_administrator"}}))
    }
}

impl From<ApiError> for StackError {
    fn from(e: ApiError) -> Self {
        let untold = e.untold();
        let mut out = match &e {
            ApiError::Domain(d) => from_domain(d, &e),
            ApiError::Http { .. } => {
                let (status, body) = e.parts();
                match body.code {
                    "payload_too_large" | "invalid_json" | "unsupported_media_type" => {
                        Self::new(StatusCode::BAD_REQUEST, "BODY_PARSING_ERROR", body.message.clone())
                            .with(json!({"message": body.message}))
                    }
                    _ => unknown(status, body.message),
                }
            }
        };
        out.untold = untold.map(Box::new);
        out
    }
}

impl From<DomainError> for StackError {
    fn from(e: DomainError) -> Self {
        ApiError::Domain(e).into()
    }
}

/// An answer Stack has no code for: a server fault, a rate limit.
fn unknown(status: StatusCode, message: String) -> StackError {
    StackError { status, code: None, error: message, details: Box::new(json!({})), retry_after: None, untold: None }
}

fn from_domain(d: &DomainError, e: &ApiError) -> StackError {
    let message = e.parts().1.message;
    let not_a_member = |fields: &[FieldError]| fields.iter().any(|f| f.code == "not_a_member");
    match d {
        DomainError::Validation(fields) | DomainError::Forbidden { fields, .. } if not_a_member(fields) => {
            StackError::new(StatusCode::NOT_FOUND, "TEAM_MEMBERSHIP_NOT_FOUND", message)
                .with(json!({"team_id": null, "user_id": null}))
        }
        DomainError::Validation(fields) => StackError::schema(message, fields),
        // An action the account may not take at all (disabled, or a service account deleting
        // itself), or a field the access type or a policy may not write.
        DomainError::Forbidden { fields, .. } if fields.is_empty() => StackError::restricted(message),
        DomainError::Forbidden { fields, .. } => StackError::schema(message, fields),
        DomainError::HookRejected { .. } => StackError::schema(message, &[]),
        DomainError::Conflict { field: "primary_email" | "email" } => {
            StackError::new(StatusCode::CONFLICT, "USER_EMAIL_ALREADY_EXISTS", message)
                .with(json!({"email": null, "would_work_if_email_was_verified": false}))
        }
        DomainError::Conflict { field } => {
            StackError::schema(message, &[FieldError::new(*field, "already_taken", "is already taken")])
        }
        DomainError::NotFound("user") => StackError::user_not_found(),
        DomainError::NotFound("team") => {
            StackError::new(StatusCode::NOT_FOUND, "TEAM_NOT_FOUND", message).with(json!({"team_id": null}))
        }
        DomainError::NotFound(_) => StackError::schema(message, &[]),
        DomainError::Unauthenticated(_) => {
            StackError::new(StatusCode::UNAUTHORIZED, "UNPARSABLE_ACCESS_TOKEN", "the access token is not valid")
        }
        DomainError::TokenExpired => {
            StackError::new(StatusCode::UNAUTHORIZED, "ACCESS_TOKEN_EXPIRED", "the access token has expired")
                .with(json!({"expired_at_millis": null, "project_id": null, "user_id": null, "refresh_token_id": null}))
        }
        DomainError::Suspended { .. } => StackError::restricted(message),
        DomainError::RateLimited { retry_after_seconds } => {
            StackError { retry_after: Some(*retry_after_seconds), ..unknown(StatusCode::TOO_MANY_REQUESTS, message) }
        }
        _ => {
            let (status, body) = e.parts();
            unknown(status, body.message)
        }
    }
}

impl IntoResponse for StackError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error, "details": *self.details});
        let mut res = match self.code {
            Some(code) => {
                body["code"] = json!(code);
                let mut res = (self.status, axum::Json(body)).into_response();
                let value = HeaderValue::from_static(code);
                res.headers_mut().insert("x-stack-known-error", value.clone());
                res.headers_mut().insert("x-hexclave-known-error", value);
                res
            }
            None => {
                body["code"] = json!(if self.status.is_server_error() { "INTERNAL_ERROR" } else { "REQUEST_REFUSED" });
                (self.status, axum::Json(body)).into_response()
            }
        };
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        Untold::attach(self.untold.map(|u| *u), res)
    }
}
