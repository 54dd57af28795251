//! Update semantics shared by every surface: a field absent from the request is left alone,
//! `null` clears it, `""` as a display name clears it, and any field that is unknown or
//! read-only is refused by name. The parser reads native field names; an adapter renames its
//! own wire names to these first and back again in errors. What each field is, and where it
//! goes on a user, is declared once in `fields.rs`.

use chrono::NaiveDate;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{DomainError, FieldError};
use crate::fields::{self, Input, Kind, USER_FIELDS, UserField};
use crate::ids::TeamId;
use crate::user::{Role, User, UserStatus};
use crate::validate::{self, Image, ImageLimits, Invalid};

/// One field of a partial update.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// Not in the request: unchanged.
    #[default]
    Absent,
    /// Explicit `null` (or `""` where that means the same): cleared.
    Clear,
    Set(T),
}

impl<T> Field<T> {
    pub fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Self::Absent => Field::Absent,
            Self::Clear => Field::Clear,
            Self::Set(v) => Field::Set(f(v)),
        }
    }
}

/// The new avatar: a link, or an image to store.
#[derive(Debug, Clone, PartialEq)]
pub enum AvatarInput {
    Url(String),
    Image(Image),
}

/// Limits the parser applies; the defaults are the native API's, and a contract may narrow them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub display_name_max: usize,
    pub image: ImageLimits,
    pub metadata_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let display_name_max = match fields::known("display_name").kind {
            Kind::DisplayName { max } => max,
            _ => 256,
        };
        Self { display_name_max, image: ImageLimits::default(), metadata_max_bytes: 64 * 1024 }
    }
}

/// A validated partial update of a user, in native terms: the fields it changes, in the order
/// of [`USER_FIELDS`] (which is also the order they are applied in).
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    changes: Vec<(&'static UserField, Field<Input>)>,
}

/// Collects per-field errors while parsing, so that one response names every bad field.
struct Parser<'a> {
    errors: Vec<FieldError>,
    limits: &'a Limits,
    today: NaiveDate,
}

impl Parser<'_> {
    fn fail(&mut self, field: &str, (code, message): Invalid) {
        self.errors.push(FieldError::new(field, code, message));
    }

    /// A nullable string field run through `check`; `check` returning `None` clears.
    fn string(
        &mut self,
        field: &str,
        v: &Value,
        check: impl FnOnce(&str) -> Result<Option<Input>, Invalid>,
    ) -> Field<Input> {
        match v {
            Value::Null => Field::Clear,
            Value::String(s) => match check(s) {
                Ok(Some(t)) => Field::Set(t),
                Ok(None) => Field::Clear,
                Err(e) => {
                    self.fail(field, e);
                    Field::Absent
                }
            },
            _ => {
                self.fail(field, ("invalid_type", "must be a string or null".into()));
                Field::Absent
            }
        }
    }

    fn text(&mut self, field: &str, v: &Value, min: usize, max: usize) -> Field<Input> {
        self.string(field, v, |s| Ok(validate::text(s, min, max)?.map(Input::Text)))
    }

    fn name(&mut self, field: &str, v: &Value, min: usize, max: usize) -> Field<Input> {
        self.string(field, v, |s| Ok(validate::name(s, min, max)?.map(Input::Text)))
    }

    fn boolean(&mut self, field: &str, v: &Value) -> Field<Input> {
        match v {
            Value::Bool(b) => Field::Set(Input::Flag(*b)),
            _ => {
                self.fail(field, ("invalid_type", "must be true or false".into()));
                Field::Absent
            }
        }
    }

    fn metadata(&mut self, field: &str, v: &Value) -> Field<Input> {
        if v.is_null() {
            return Field::Clear;
        }
        match validate::metadata(v, self.limits.metadata_max_bytes) {
            Ok(m) => Field::Set(Input::Metadata(m)),
            Err(e) => {
                self.fail(field, e);
                Field::Absent
            }
        }
    }

    fn uuid(&mut self, field: &str, v: &Value) -> Field<Input> {
        self.string(field, v, |s| match Uuid::parse_str(s.trim()) {
            Ok(u) => Ok(Some(Input::Uuid(u))),
            Err(_) => Err(("invalid_format", "must be a UUID".into())),
        })
    }

    fn avatar(&mut self, field: &str, v: &Value) -> Field<Input> {
        let image_limits = self.limits.image;
        self.string(field, v, |s| {
            let avatar = if s.trim().is_empty() {
                return Ok(None);
            } else if s.trim_start().starts_with("https://") {
                AvatarInput::Url(validate::https_url(s)?)
            } else if s.trim_start().starts_with("http://") {
                return Err(("invalid_url", "must be an https URL or a base64 image".into()));
            } else {
                AvatarInput::Image(validate::image_base64(s, image_limits)?)
            };
            Ok(Some(Input::Avatar(avatar)))
        })
    }

    fn location(&mut self, field: &str, v: &Value) -> Field<Input> {
        if v.is_null() {
            return Field::Clear;
        }
        match validate::location(v) {
            Ok(g) => Field::Set(Input::Point(g)),
            Err(errs) => {
                for (suffix, e) in errs {
                    self.fail(&format!("{field}{suffix}"), e);
                }
                Field::Absent
            }
        }
    }

    /// One writable field's value, checked by its kind.
    fn value(&mut self, f: &UserField, v: &Value) -> Field<Input> {
        let k = f.name;
        let today = self.today;
        match f.kind {
            Kind::Text { min, max } => self.text(k, v, min, max),
            Kind::Name { min, max } => self.name(k, v, min, max),
            Kind::DisplayName { max } => self.name(k, v, 0, max.min(self.limits.display_name_max)),
            Kind::Username => self.string(k, v, |s| validate::username(s.trim()).map(|s| Some(Input::Text(s)))),
            Kind::Email => self.string(k, v, |s| validate::email(s).map(|s| Some(Input::Text(s)))),
            Kind::Avatar => self.avatar(k, v),
            Kind::Phone => self.string(k, v, |s| validate::phone_number(s).map(|s| Some(Input::Text(s)))),
            Kind::Locale => self.string(k, v, |s| validate::locale(s).map(|s| Some(Input::Text(s)))),
            Kind::Timezone => self.string(k, v, |s| validate::timezone(s).map(|s| Some(Input::Text(s)))),
            Kind::Birthdate => self.string(k, v, |s| validate::birthdate(s, today).map(|d| Some(Input::Date(d)))),
            Kind::Location => self.location(k, v),
            Kind::Flag => self.boolean(k, v),
            Kind::Uuid => self.uuid(k, v),
            Kind::Status => match v.as_str().and_then(UserStatus::parse) {
                Some(s) => Field::Set(Input::Status(s)),
                None => {
                    self.fail(k, ("invalid_value", "must be one of pending, active, disabled".into()));
                    Field::Absent
                }
            },
            Kind::Role => match v.as_str().and_then(Role::parse) {
                Some(r) => Field::Set(Input::Role(r)),
                None => {
                    self.fail(k, ("invalid_value", "must be one of member, admin".into()));
                    Field::Absent
                }
            },
            Kind::Metadata => self.metadata(k, v),
            Kind::Id
            | Kind::Count
            | Kind::Timestamp
            | Kind::OptionalTimestamp
            | Kind::OptionalText
            | Kind::Label(_)
            | Kind::Suspensions => {
                self.fail(k, ("read_only", "this field cannot be written".into()));
                Field::Absent
            }
        }
    }
}

impl UserPatch {
    /// Parses a JSON object of native field names. Every bad, unknown or read-only field is
    /// reported, not just the first.
    pub fn parse(body: &Map<String, Value>, limits: &Limits, today: NaiveDate) -> Result<Self, DomainError> {
        let mut p = Parser { errors: Vec::new(), limits, today };
        let mut changes = Vec::with_capacity(body.len());
        for (key, v) in body {
            match fields::field(key) {
                Some(f) if f.is_writable() => {
                    let value = p.value(f, v);
                    if value.is_present() {
                        changes.push((f, value));
                    }
                }
                Some(_) => p.fail(key, ("read_only", "this field cannot be written".into())),
                None if fields::OTHER_READ_ONLY_NAMES.contains(&key.as_str()) => {
                    p.fail(key, ("read_only", "this field cannot be written".into()))
                }
                None => p.fail(key, ("unknown_field", "no such field".into())),
            }
        }
        if !p.errors.is_empty() {
            return Err(DomainError::Validation(p.errors));
        }
        changes.sort_by_key(|(f, _)| position(f));
        Ok(Self { changes })
    }

    /// `PUT` semantics for the profile: every profile field the request leaves out is cleared.
    pub fn replacing_profile(mut self) -> Self {
        for f in USER_FIELDS.iter().filter(|f| f.profile) {
            if !self.changes.iter().any(|(c, _)| std::ptr::eq(*c, f)) {
                self.changes.push((f, Field::Clear));
            }
        }
        self.changes.sort_by_key(|(f, _)| position(f));
        self
    }

    /// The native names of the fields this patch would change, for the policy to judge.
    pub fn fields(&self) -> Vec<&'static str> {
        self.changes.iter().map(|(f, _)| f.name).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The change to the selected team, which must be checked against the memberships.
    pub fn selected_team(&self) -> Field<TeamId> {
        match self.changes.iter().find(|(f, _)| f.name == "selected_team_id") {
            Some((_, Field::Set(Input::Uuid(id)))) => Field::Set(TeamId(*id)),
            Some((_, Field::Clear)) => Field::Clear,
            _ => Field::Absent,
        }
    }

    /// Applies the patch to `user`. Returns what must be stored beside the user row: a new
    /// avatar image, and the secure-metadata change (which is never part of `User`).
    pub fn apply(self, user: &mut User) -> Applied {
        let mut applied = Applied::default();
        for (f, value) in self.changes {
            f.apply(user, value, &mut applied);
        }
        applied
    }
}

/// Where a field stands in [`USER_FIELDS`].
fn position(f: &UserField) -> usize {
    USER_FIELDS.iter().position(|g| std::ptr::eq(g, f)).unwrap_or(usize::MAX)
}

/// What `UserPatch::apply` hands back for the store.
#[derive(Debug, Default)]
pub struct Applied {
    pub new_image: Option<Image>,
    pub secure_metadata: Field<Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use serde_json::json;

    fn parse(v: Value) -> Result<UserPatch, DomainError> {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        UserPatch::parse(v.as_object().unwrap(), &Limits::default(), today)
    }

    fn field_codes(e: DomainError) -> Vec<(String, &'static str)> {
        match e {
            DomainError::Validation(fs) => fs.into_iter().map(|f| (f.field, f.code)).collect(),
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn absent_fields_stay_null_clears_and_empty_display_name_clears() {
        let mut user = User::new(TenantId::new(), chrono::Utc::now());
        user.profile.bio = Some("old bio".into());
        user.profile.display_name = Some("Old".into());
        user.profile.locale = Some("fr".into());
        parse(json!({"display_name": "", "bio": null})).unwrap().apply(&mut user);
        assert_eq!(user.profile.display_name, None);
        assert_eq!(user.profile.bio, None);
        assert_eq!(user.profile.locale.as_deref(), Some("fr"));
    }

    #[test]
    fn every_bad_unknown_and_read_only_field_is_named() {
        let errs = field_codes(
            parse(json!({"locale": "!!", "timezone": "Nowhere/City", "nope": 1, "id": "x", "name": ""})).unwrap_err(),
        );
        let mut got: Vec<_> = errs.iter().map(|(f, c)| format!("{f}:{c}")).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "id:read_only",
                "locale:invalid_locale",
                "name:too_short",
                "nope:unknown_field",
                "timezone:invalid_timezone"
            ]
        );
    }

    #[test]
    fn wrong_json_types_are_refused() {
        let errs =
            field_codes(parse(json!({"display_name": 5, "is_onboarded": "yes", "client_metadata": [1]})).unwrap_err());
        assert_eq!(errs.len(), 3);
        assert!(errs.iter().all(|(_, c)| *c == "invalid_type"));
    }

    #[test]
    fn changing_the_email_leaves_it_unverified() {
        let mut user = User::new(TenantId::new(), chrono::Utc::now());
        user.primary_email = Some("a@example.com".into());
        user.primary_email_verified = true;
        parse(json!({"primary_email": "A@example.com"})).unwrap().apply(&mut user);
        assert!(user.primary_email_verified, "same address, case aside: still verified");
        parse(json!({"primary_email": "b@example.com"})).unwrap().apply(&mut user);
        assert!(!user.primary_email_verified);
    }

    #[test]
    fn put_profile_clears_what_it_leaves_out_but_not_identity_or_metadata() {
        let mut user = User::new(TenantId::new(), chrono::Utc::now());
        user.username = Some("ada".into());
        user.profile.bio = Some("bio".into());
        user.metadata.client.insert("k".into(), json!(1));
        parse(json!({"display_name": "Ada"})).unwrap().replacing_profile().apply(&mut user);
        assert_eq!(user.profile.display_name.as_deref(), Some("Ada"));
        assert_eq!(user.profile.bio, None);
        assert_eq!(user.username.as_deref(), Some("ada"));
        assert_eq!(user.metadata.client.get("k"), Some(&json!(1)));
    }

    #[test]
    fn fields_lists_exactly_the_present_ones() {
        let p = parse(json!({"bio": null, "server_metadata": {}, "avatar_url": "https://example.com/a.png"})).unwrap();
        assert_eq!(p.fields(), ["bio", "avatar_url", "server_metadata"]);
    }
}
