//! The pre-update validation hook (Replyke's `validateUserUpdated`, offered on every surface):
//! before an update is stored, the tenant's hook gets the user as it is and the requested
//! change, signed as Standard Webhooks prescribe, and answers `{"valid": true}` to let it
//! through. Anything else refuses it; a hook that does not answer in time refuses it too,
//! unless the tenant chose to fail open.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tessera_core::DomainError;
use tessera_core::tenant::HookSettings;
use tessera_core::user::User;

use crate::Result;
use crate::outbound::Outbound;

/// The most of a hook's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The signing key: `whsec_` + base64 per Standard Webhooks, else the secret's own bytes.
fn signing_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(&signing_key(secret)).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// What the hook sees of the user: everything the tenant's server may read, and nothing more.
fn user_json(u: &User) -> Value {
    json!({
        "id": u.id, "tenant_id": u.tenant_id, "version": u.version, "username": u.username,
        "primary_email": u.primary_email, "primary_email_verified": u.primary_email_verified,
        "status": u.status.as_str(), "auth_provider": u.auth_provider.as_str(),
        "is_service_account": u.is_service_account, "is_anonymous": u.is_anonymous,
        "profile": u.profile, "client_metadata": u.metadata.client,
        "client_read_only_metadata": u.metadata.client_read_only, "server_metadata": u.metadata.server,
        "created_at": u.created_at, "updated_at": u.updated_at,
    })
}

/// A hook that cannot be asked (timeout, unreachable, or an address outbound calls may not
/// reach) follows the tenant's choice: the update goes through only with `fail_open`.
fn unreachable(hook: &HookSettings, error: &str, why: &'static str) -> Result<()> {
    tracing::warn!(hook = %hook.url, error, fail_open = hook.fail_open, "{why}");
    if hook.fail_open { Ok(()) } else { Err(refused(why)) }
}

fn refused(message: impl Into<String>) -> DomainError {
    DomainError::HookRejected { message: message.into() }
}

/// Asks the hook. `Ok` lets the update through.
pub async fn ask(
    outbound: &Outbound,
    hook: &HookSettings,
    surface: &str,
    before: &User,
    change: &Map<String, Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let timestamp = now.timestamp();
    let payload = json!({
        "type": "user.pre_update",
        "timestamp": now,
        "data": {"tenant_id": before.tenant_id, "surface": surface, "user": user_json(before), "update": change},
    });
    let body = serde_json::to_vec(&payload).map_err(DomainError::internal)?;
    let request = match outbound.post(&hook.url) {
        Ok(r) => r,
        Err(e) => return unreachable(hook, &e.to_string(), "the validation hook's address is not a public one"),
    };
    let request = request
        .timeout(Duration::from_millis(hook.timeout_ms))
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(&hook.secret, &id, timestamp, &body))
        .body(body);
    let answer = async {
        let res = request.send().await?;
        let status = res.status();
        let mut bytes = Vec::new();
        let mut res = res;
        while let Some(chunk) = res.chunk().await? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_ANSWER_BYTES {
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, bytes))
    };
    let (status, bytes) = match answer.await {
        Ok(a) => a,
        Err(e) => {
            let why = if e.is_timeout() {
                "the validation hook did not answer in time"
            } else if crate::outbound::refused_in(&e) {
                "the validation hook's address is not a public one"
            } else {
                "the validation hook could not be reached"
            };
            return unreachable(hook, &e.to_string(), why);
        }
    };
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(&bytes).ok();
    match parsed {
        Some(m) if status.is_success() && m.get("valid") == Some(&Value::Bool(true)) => Ok(()),
        Some(m) if m.get("valid") == Some(&Value::Bool(false)) => {
            let message = m.get("message").and_then(Value::as_str).map(|s| s.chars().take(500).collect::<String>());
            Err(refused(message.unwrap_or_else(|| "refused by the validation hook".into())))
        }
        _ => {
            tracing::warn!(hook = %hook.url, %status, "the validation hook gave an answer that is not {{\"valid\": true}}");
            Err(refused("the validation hook gave an invalid answer"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks reference vector.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
