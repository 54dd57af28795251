//! The native API under `/v1`: auth, the current user, the activity trail and audit log, the
//! tenant's server API and the operator's tenant API.

pub mod activity;
pub mod auth;
pub mod emails;
pub mod me;
pub mod operator;
pub mod passkeys;
pub mod server;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_core::user::User;

use crate::AppState;
use crate::views::{Audience, UserView};

/// A user as the response body, with its version as the `ETag`.
pub fn user_response(state: &AppState, user: &User, audience: Audience, status: StatusCode) -> Response {
    let view = UserView::new(user, audience, &state.public_url, state.service.now());
    let mut res = (status, axum::Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&user.etag()) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}
