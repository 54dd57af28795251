//! Tessera's domain: users, tenants, teams, sessions and suspensions, the validation of every
//! field, the update semantics shared by every surface, and the field policy.
//!
//! Nothing here knows HTTP or SQL; wire formats live in `tessera-api`, storage in `tessera-store`.

pub mod clock;
pub mod error;
pub mod events;
pub mod federation;
pub mod fields;
pub mod ids;
pub mod keys;
pub mod mail;
pub mod oauth;
pub mod passkey;
pub mod patch;
pub mod policy;
pub mod tenant;
pub mod user;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{DomainError, FieldError};
pub use ids::{SessionId, SuspensionId, TeamId, TenantId, UserId};
