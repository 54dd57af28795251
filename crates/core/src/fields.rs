//! The user's fields, each declared once: its native name, what it holds (which decides how it
//! is parsed, checked and described), whether `PUT /v1/me/profile` replaces it, who may write it
//! and who may see it, and where it lives on a [`User`].
//!
//! Everything else is derived from [`USER_FIELDS`]: the update parser and `apply`
//! (`patch.rs`), the field list the policy engine judges, the `PUT` replacement, the native
//! view and its OpenAPI schema, the update schema, and the account page's input limits.
//! Adding a field means adding one entry here (and its slot on `User`); the compiler and the
//! tests point at anything else.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ids::TeamId;
use crate::patch::{Applied, AvatarInput, Field};
use crate::user::{AuthProvider, Avatar, Role, Suspension, User, UserStatus};
use crate::validate::GeoPoint;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text of `min..=max` characters, trimmed; `null` clears it.
    Text { min: usize, max: usize },
    /// A person's name, as `Text`, refusing the characters that could make it pass for another
    /// (`validate::name`).
    Name { min: usize, max: usize },
    /// The display name: up to `max` characters (a contract may narrow it); `""` clears it. A
    /// name, so with `Name`'s rule.
    DisplayName { max: usize },
    /// 1–50 of `[a-zA-Z0-9_-@.]`, unique per tenant regardless of case; `admin` is reserved.
    Username,
    /// An email address, stored lower-case.
    Email,
    /// An https URL, or a base64 image stored by Tessera.
    Avatar,
    /// E.164, normalised.
    Phone,
    /// A BCP 47 tag, canonicalised.
    Locale,
    /// An IANA time zone.
    Timezone,
    /// `YYYY-MM-DD`, not in the future.
    Birthdate,
    /// `{longitude, latitude}` or a GeoJSON Point, in range.
    Location,
    /// `true` or `false`.
    Flag,
    /// A UUID; `null` clears it.
    Uuid,
    /// The account status: one of [`UserStatus`]'s names.
    Status,
    /// The user's role: one of [`Role`]'s names.
    Role,
    /// A JSON object within the tenant's metadata size limit; `null` empties it.
    Metadata,
    // Kinds only ever read.
    /// An id (a UUID, never null).
    Id,
    /// A non-negative count.
    Count,
    /// An instant.
    Timestamp,
    /// An instant, or null.
    OptionalTimestamp,
    /// Text or null.
    OptionalText,
    /// One of a fixed set of names.
    Label(&'static [&'static str]),
    /// The active suspensions.
    Suspensions,
}

impl Kind {
    /// The most characters a text field takes.
    pub fn max_chars(self) -> Option<usize> {
        match self {
            Self::Text { max, .. } | Self::Name { max, .. } | Self::DisplayName { max } => Some(max),
            Self::Username => Some(crate::validate::USERNAME_MAX),
            _ => None,
        }
    }

    /// The fewest characters a text field takes, when it has a lower bound.
    pub fn min_chars(self) -> Option<usize> {
        match self {
            Self::Text { min, .. } | Self::Name { min, .. } if min > 0 => Some(min),
            Self::Username => Some(1),
            _ => None,
        }
    }

    /// Whether the field may read as `null`.
    pub fn nullable(self) -> bool {
        !matches!(
            self,
            Self::Flag
                | Self::Status
                | Self::Metadata
                | Self::Id
                | Self::Count
                | Self::Timestamp
                | Self::Label(_)
                | Self::Suspensions
        )
    }
}

/// Who may write a field, before the tenant's own policies (the default policies say the same;
/// a unit test of the policy engine holds them to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Nobody: shown, never written by an update.
    Nobody,
    /// The user (and the server).
    User,
    /// The tenant's server only.
    Server,
}

/// Who may read a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Everyone,
    /// The tenant's server only.
    Server,
    /// Nobody: write-only (`secure_metadata`).
    Nobody,
}

/// A parsed, valid value on its way into a user.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Flag(bool),
    Date(NaiveDate),
    Point(GeoPoint),
    Uuid(Uuid),
    Status(UserStatus),
    Role(Role),
    Metadata(Map<String, Value>),
    Avatar(AvatarInput),
}

/// A field's value as a user holds it, for a view to render in its own wire format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shown<'a> {
    Null,
    Text(&'a str),
    Flag(bool),
    Count(i64),
    Uuid(Uuid),
    Date(NaiveDate),
    Time(DateTime<Utc>),
    Point(GeoPoint),
    Avatar(&'a Avatar),
    Metadata(&'a Map<String, Value>),
    /// Every suspension; the view shows the active ones.
    Suspensions(&'a [Suspension]),
}

/// Writes a parsed change into the user; `Applied` takes what is stored beside the row.
type Apply = fn(&mut User, Field<Input>, &mut Applied);

/// One field of a user.
#[derive(Debug)]
pub struct UserField {
    /// The native wire name.
    pub name: &'static str,
    pub kind: Kind,
    /// Replaced as a whole by `PUT /v1/me/profile`.
    pub profile: bool,
    pub writer: Writer,
    pub reader: Reader,
    /// What a client should know beyond the kind's rule, for the API's description.
    pub doc: &'static str,
    read: fn(&User) -> Shown<'_>,
    apply: Option<Apply>,
}

impl UserField {
    pub fn read<'u>(&self, user: &'u User) -> Shown<'u> {
        (self.read)(user)
    }

    pub fn is_writable(&self) -> bool {
        self.apply.is_some()
    }

    pub(crate) fn apply(&self, user: &mut User, value: Field<Input>, applied: &mut Applied) {
        if let Some(apply) = self.apply {
            apply(user, value, applied);
        }
    }
}

/// The field of this native name.
pub fn field(name: &str) -> Option<&'static UserField> {
    USER_FIELDS.iter().find(|f| f.name == name)
}

/// The field of this native name, for code that names a field it knows exists.
///
/// # Panics
/// If no field has that name: a typo in Tessera's own code, caught by its tests.
pub fn known(name: &str) -> &'static UserField {
    field(name).unwrap_or_else(|| panic!("no user field is named {name}"))
}

fn text(v: &Option<String>) -> Shown<'_> {
    v.as_deref().map_or(Shown::Null, Shown::Text)
}

fn time(v: Option<DateTime<Utc>>) -> Shown<'static> {
    v.map_or(Shown::Null, Shown::Time)
}

fn uuid(v: Option<Uuid>) -> Shown<'static> {
    v.map_or(Shown::Null, Shown::Uuid)
}

/// `Field<Input>` into an optional slot of the value `unwrap` takes out of the input.
fn into<T>(value: Field<Input>, slot: &mut Option<T>, unwrap: fn(Input) -> Option<T>) {
    match value {
        Field::Absent => {}
        Field::Clear => *slot = None,
        Field::Set(v) => {
            if let Some(v) = unwrap(v) {
                *slot = Some(v);
            }
        }
    }
}

fn text_into(value: Field<Input>, slot: &mut Option<String>) {
    into(value, slot, |v| if let Input::Text(s) = v { Some(s) } else { None });
}

fn flag_into(value: Field<Input>, slot: &mut bool) {
    if let Field::Set(Input::Flag(b)) = value {
        *slot = b;
    }
}

fn metadata_into(value: Field<Input>, slot: &mut Map<String, Value>) {
    match value {
        Field::Absent => {}
        Field::Clear => slot.clear(),
        Field::Set(Input::Metadata(m)) => *slot = m,
        Field::Set(_) => {}
    }
}

/// Every field a user shows or takes, in the order the native view lists them.
pub static USER_FIELDS: &[UserField] = &[
    UserField {
        name: "id",
        kind: Kind::Id,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Uuid(u.id.0),
        apply: None,
    },
    UserField {
        name: "tenant_id",
        kind: Kind::Id,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Uuid(u.tenant_id.0),
        apply: None,
    },
    UserField {
        name: "username",
        kind: Kind::Username,
        profile: false,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "Of `[a-zA-Z0-9_-@.]`, unique per tenant regardless of case; `admin` is reserved.",
        read: |u| text(&u.username),
        apply: Some(|u, v, _| text_into(v, &mut u.username)),
    },
    UserField {
        name: "primary_email",
        kind: Kind::Email,
        profile: false,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "Stored lower-case; a change leaves it unverified.",
        read: |u| text(&u.primary_email),
        apply: Some(|u, v, _| {
            match &v {
                // A new address has not been proven to belong to the user.
                Field::Set(Input::Text(email)) if u.primary_email.as_deref() != Some(email.as_str()) => {
                    u.primary_email_verified = false;
                }
                Field::Clear => u.primary_email_verified = false,
                _ => {}
            }
            text_into(v, &mut u.primary_email);
        }),
    },
    UserField {
        name: "primary_email_verified",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Everyone,
        doc: "Only an address the user has can be verified.",
        read: |u| Shown::Flag(u.primary_email_verified),
        // After `primary_email` (the table's order is the order of `apply`).
        apply: Some(|u, v, _| {
            if let Field::Set(Input::Flag(b)) = v {
                u.primary_email_verified = b && u.primary_email.is_some();
            }
        }),
    },
    UserField {
        name: "display_name",
        kind: Kind::DisplayName { max: 256 },
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "`\"\"` clears it.",
        read: |u| text(&u.profile.display_name),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.display_name)),
    },
    UserField {
        name: "name",
        kind: Kind::Name { min: 1, max: 50 },
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.name),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.name)),
    },
    UserField {
        name: "first_name",
        kind: Kind::Name { min: 0, max: 100 },
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.first_name),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.first_name)),
    },
    UserField {
        name: "last_name",
        kind: Kind::Name { min: 0, max: 100 },
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.last_name),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.last_name)),
    },
    UserField {
        name: "bio",
        kind: Kind::Text { min: 0, max: 300 },
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.bio),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.bio)),
    },
    UserField {
        name: "company",
        kind: Kind::Text { min: 1, max: 50 },
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.company),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.company)),
    },
    UserField {
        name: "job_title",
        kind: Kind::Text { min: 1, max: 50 },
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.job_title),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.job_title)),
    },
    UserField {
        name: "avatar_url",
        kind: Kind::Avatar,
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "An https URL, or a base64 PNG/JPEG/GIF/WebP image (bare or as a data URI), which Tessera stores.",
        read: |u| u.profile.avatar.as_ref().map_or(Shown::Null, Shown::Avatar),
        apply: Some(|u, v, applied| match v {
            Field::Absent => {}
            Field::Clear => u.profile.avatar = None,
            Field::Set(Input::Avatar(AvatarInput::Url(url))) => u.profile.avatar = Some(Avatar::Url { url }),
            Field::Set(Input::Avatar(AvatarInput::Image(img))) => {
                u.profile.avatar = Some(Avatar::Stored { hash: img.hash(), kind: img.kind });
                applied.new_image = Some(img);
            }
            Field::Set(_) => {}
        }),
    },
    UserField {
        name: "phone_number",
        kind: Kind::Phone,
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "E.164, e.g. `+14155552671`.",
        read: |u| text(&u.profile.phone_number),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.phone_number)),
    },
    UserField {
        name: "locale",
        kind: Kind::Locale,
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "A BCP 47 tag, e.g. `en-GB`.",
        read: |u| text(&u.profile.locale),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.locale)),
    },
    UserField {
        name: "timezone",
        kind: Kind::Timezone,
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "An IANA zone, e.g. `Europe/Paris`.",
        read: |u| text(&u.profile.timezone),
        apply: Some(|u, v, _| text_into(v, &mut u.profile.timezone)),
    },
    UserField {
        name: "birthdate",
        kind: Kind::Birthdate,
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "`YYYY-MM-DD`, not in the future.",
        read: |u| u.profile.birthdate.map_or(Shown::Null, Shown::Date),
        apply: Some(|u, v, _| {
            into(v, &mut u.profile.birthdate, |v| if let Input::Date(d) = v { Some(d) } else { None })
        }),
    },
    UserField {
        name: "location",
        kind: Kind::Location,
        profile: true,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "`{longitude, latitude}` in range; shown as a GeoJSON Point.",
        read: |u| u.profile.location.map_or(Shown::Null, Shown::Point),
        apply: Some(|u, v, _| {
            into(v, &mut u.profile.location, |v| if let Input::Point(p) = v { Some(p) } else { None })
        }),
    },
    UserField {
        name: "status",
        kind: Kind::Status,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Everyone,
        doc: "`pending` (default), `active` or `disabled`.",
        read: |u| Shown::Text(u.status.as_str()),
        apply: Some(|u, v, _| {
            if let Field::Set(Input::Status(s)) = v {
                u.status = s;
            }
        }),
    },
    UserField {
        name: "role",
        kind: Kind::Role,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Server,
        doc: "`member` (default) or `admin`: an admin runs the tenant's users from the console. Given by the server, \
              the CLI or another admin; never by the user.",
        read: |u| Shown::Text(u.role.as_str()),
        apply: Some(|u, v, _| {
            if let Field::Set(Input::Role(r)) = v {
                u.role = r;
            }
        }),
    },
    UserField {
        name: "is_active",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.profile.is_active),
        apply: Some(|u, v, _| flag_into(v, &mut u.profile.is_active)),
    },
    UserField {
        name: "is_onboarded",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.profile.is_onboarded),
        apply: Some(|u, v, _| flag_into(v, &mut u.profile.is_onboarded)),
    },
    UserField {
        name: "is_superuser",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.profile.is_superuser),
        apply: Some(|u, v, _| flag_into(v, &mut u.profile.is_superuser)),
    },
    UserField {
        name: "is_service_account",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.is_service_account),
        apply: None,
    },
    UserField {
        name: "is_anonymous",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.is_anonymous),
        apply: None,
    },
    UserField {
        name: "auth_provider",
        kind: Kind::Label(AuthProvider::NAMES),
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "`local`, `oidc` or `saml`.",
        read: |u| Shown::Text(u.auth_provider.as_str()),
        apply: None,
    },
    UserField {
        name: "oauth_provider",
        kind: Kind::OptionalText,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.oauth_provider),
        apply: None,
    },
    UserField {
        name: "oauth_id",
        kind: Kind::OptionalText,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| text(&u.profile.oauth_id),
        apply: None,
    },
    UserField {
        name: "organization_id",
        kind: Kind::Uuid,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Everyone,
        doc: "",
        read: |u| uuid(u.profile.organization_id),
        apply: Some(|u, v, _| {
            into(v, &mut u.profile.organization_id, |v| if let Input::Uuid(id) = v { Some(id) } else { None })
        }),
    },
    UserField {
        name: "selected_team_id",
        kind: Kind::Uuid,
        profile: false,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "Must name a team the user belongs to.",
        read: |u| uuid(u.profile.selected_team_id.map(|t| t.0)),
        apply: Some(|u, v, _| {
            into(v, &mut u.profile.selected_team_id, |v| if let Input::Uuid(id) = v { Some(TeamId(id)) } else { None })
        }),
    },
    UserField {
        name: "password_expired",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.profile.password_expired),
        apply: Some(|u, v, _| flag_into(v, &mut u.profile.password_expired)),
    },
    UserField {
        name: "has_password",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.has_password),
        apply: None,
    },
    UserField {
        name: "totp_enabled",
        kind: Kind::Flag,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Flag(u.totp_enabled),
        apply: None,
    },
    UserField {
        name: "client_metadata",
        kind: Kind::Metadata,
        profile: false,
        writer: Writer::User,
        reader: Reader::Everyone,
        doc: "Read and written by the user.",
        read: |u| Shown::Metadata(&u.metadata.client),
        apply: Some(|u, v, _| metadata_into(v, &mut u.metadata.client)),
    },
    UserField {
        name: "client_read_only_metadata",
        kind: Kind::Metadata,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Everyone,
        doc: "Read by the user, written by the server.",
        read: |u| Shown::Metadata(&u.metadata.client_read_only),
        apply: Some(|u, v, _| metadata_into(v, &mut u.metadata.client_read_only)),
    },
    UserField {
        name: "server_metadata",
        kind: Kind::Metadata,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Server,
        doc: "Read and written by the server only.",
        read: |u| Shown::Metadata(&u.metadata.server),
        apply: Some(|u, v, _| metadata_into(v, &mut u.metadata.server)),
    },
    UserField {
        name: "secure_metadata",
        kind: Kind::Metadata,
        profile: false,
        writer: Writer::Server,
        reader: Reader::Nobody,
        doc: "Written by the server, never returned.",
        // Not part of `User`: the change travels beside the row (`Applied`), into its own column.
        read: |_| Shown::Null,
        apply: Some(|_, v, applied| {
            applied.secure_metadata = v.map(|v| if let Input::Metadata(m) = v { m } else { Map::new() })
        }),
    },
    UserField {
        name: "suspensions",
        kind: Kind::Suspensions,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "Active suspensions.",
        read: |u| Shown::Suspensions(&u.suspensions),
        apply: None,
    },
    UserField {
        name: "active_sessions",
        kind: Kind::Count,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "Live sessions.",
        read: |u| Shown::Count(u.active_sessions),
        apply: None,
    },
    UserField {
        name: "version",
        kind: Kind::Count,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "Bumped by every change; also the `ETag`.",
        read: |u| Shown::Count(u.version),
        apply: None,
    },
    UserField {
        name: "created_at",
        kind: Kind::Timestamp,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Time(u.created_at),
        apply: None,
    },
    UserField {
        name: "updated_at",
        kind: Kind::Timestamp,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "",
        read: |u| Shown::Time(u.updated_at),
        apply: None,
    },
    UserField {
        name: "deletion_scheduled_at",
        kind: Kind::OptionalTimestamp,
        profile: false,
        writer: Writer::Nobody,
        reader: Reader::Everyone,
        doc: "When the account will be erased, if its deletion is scheduled.",
        read: |u| time(u.deletion_due_at),
        apply: None,
    },
];

/// Names that some surfaces show but no update may write: refused as `read_only` rather than
/// `unknown_field`.
pub const OTHER_READ_ONLY_NAMES: &[&str] = &["signed_up_at"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_only_writable_fields_have_writers() {
        let mut names: Vec<&str> = USER_FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a field is declared twice");
        for f in USER_FIELDS {
            assert_eq!(f.is_writable(), f.writer != Writer::Nobody, "{}", f.name);
            assert!(!f.profile || f.writer == Writer::User, "{}: a profile field the user cannot write", f.name);
        }
    }

    #[test]
    fn the_username_limit_is_the_validators() {
        assert_eq!(known("username").kind.max_chars(), Some(crate::validate::USERNAME_MAX));
    }
}
