//! Update semantics shared by every surface (SPEC §2): a field absent from the request is left
//! alone, `null` clears it, `""` as a display name clears it, and any field that is unknown or
//! read-only is refused by name. The parser reads native field names; an adapter renames its
//! own wire names to these first and back again in errors.

use chrono::NaiveDate;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{DomainError, FieldError};
use crate::ids::TeamId;
use crate::user::{Avatar, User, UserStatus};
use crate::validate::{self, GeoPoint, Image, ImageLimits, Invalid};

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

    /// Applies the field to an optional slot.
    fn apply_to(self, slot: &mut Option<T>) -> bool {
        match self {
            Self::Absent => false,
            Self::Clear => slot.take().is_some(),
            Self::Set(v) => {
                *slot = Some(v);
                true
            }
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
        Self { display_name_max: 256, image: ImageLimits::default(), metadata_max_bytes: 64 * 1024 }
    }
}

/// A validated partial update of a user, in native terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub username: Field<String>,
    pub primary_email: Field<String>,
    pub primary_email_verified: Field<bool>,
    pub status: Field<UserStatus>,
    pub display_name: Field<String>,
    pub name: Field<String>,
    pub first_name: Field<String>,
    pub last_name: Field<String>,
    pub bio: Field<String>,
    pub company: Field<String>,
    pub job_title: Field<String>,
    pub avatar: Field<AvatarInput>,
    pub phone_number: Field<String>,
    pub locale: Field<String>,
    pub timezone: Field<String>,
    pub birthdate: Field<NaiveDate>,
    pub location: Field<GeoPoint>,
    pub is_active: Field<bool>,
    pub is_onboarded: Field<bool>,
    pub is_superuser: Field<bool>,
    pub password_expired: Field<bool>,
    pub organization_id: Field<Uuid>,
    pub selected_team_id: Field<TeamId>,
    pub client_metadata: Field<Map<String, Value>>,
    pub client_read_only_metadata: Field<Map<String, Value>>,
    pub server_metadata: Field<Map<String, Value>>,
    pub secure_metadata: Field<Map<String, Value>>,
}

/// Fields every user object shows but nobody writes through an update.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "id",
    "tenant_id",
    "version",
    "auth_provider",
    "is_service_account",
    "is_anonymous",
    "has_password",
    "totp_enabled",
    "created_at",
    "signed_up_at",
    "updated_at",
    "active_sessions",
    "suspensions",
    "deletion_scheduled_at",
    "oauth_provider",
    "oauth_id",
];

/// The profile fields that `PUT /v1/me/profile` replaces as a whole.
pub const PROFILE_FIELDS: &[&str] = &[
    "display_name",
    "name",
    "first_name",
    "last_name",
    "bio",
    "company",
    "job_title",
    "avatar_url",
    "phone_number",
    "locale",
    "timezone",
    "birthdate",
    "location",
];

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
    fn string<T>(
        &mut self,
        field: &str,
        v: &Value,
        check: impl FnOnce(&str) -> Result<Option<T>, Invalid>,
    ) -> Field<T> {
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

    fn text(&mut self, field: &str, v: &Value, min: usize, max: usize) -> Field<String> {
        self.string(field, v, |s| validate::text(s, min, max))
    }

    fn boolean(&mut self, field: &str, v: &Value) -> Field<bool> {
        match v {
            Value::Bool(b) => Field::Set(*b),
            _ => {
                self.fail(field, ("invalid_type", "must be true or false".into()));
                Field::Absent
            }
        }
    }

    fn metadata(&mut self, field: &str, v: &Value) -> Field<Map<String, Value>> {
        if v.is_null() {
            return Field::Clear;
        }
        match validate::metadata(v, self.limits.metadata_max_bytes) {
            Ok(m) => Field::Set(m),
            Err(e) => {
                self.fail(field, e);
                Field::Absent
            }
        }
    }

    fn uuid<T>(&mut self, field: &str, v: &Value, wrap: impl FnOnce(Uuid) -> T) -> Field<T> {
        self.string(field, v, |s| match Uuid::parse_str(s.trim()) {
            Ok(u) => Ok(Some(wrap(u))),
            Err(_) => Err(("invalid_format", "must be a UUID".into())),
        })
    }
}

impl UserPatch {
    /// Parses a JSON object of native field names. Every bad, unknown or read-only field is
    /// reported, not just the first.
    pub fn parse(body: &Map<String, Value>, limits: &Limits, today: NaiveDate) -> Result<Self, DomainError> {
        let mut p = Parser { errors: Vec::new(), limits, today };
        let mut patch = Self::default();
        for (key, v) in body {
            let k = key.as_str();
            match k {
                "username" => patch.username = p.string(k, v, |s| validate::username(s.trim()).map(Some)),
                "primary_email" => patch.primary_email = p.string(k, v, |s| validate::email(s).map(Some)),
                "primary_email_verified" => patch.primary_email_verified = p.boolean(k, v),
                "status" => {
                    patch.status = match v.as_str().and_then(UserStatus::parse) {
                        Some(s) => Field::Set(s),
                        None => {
                            p.fail(k, ("invalid_value", "must be one of pending, active, disabled".into()));
                            Field::Absent
                        }
                    }
                }
                "display_name" => patch.display_name = p.text(k, v, 0, limits.display_name_max),
                "name" => patch.name = p.text(k, v, 1, 50),
                "company" => patch.company = p.text(k, v, 1, 50),
                "job_title" => patch.job_title = p.text(k, v, 1, 50),
                "first_name" => patch.first_name = p.text(k, v, 0, 100),
                "last_name" => patch.last_name = p.text(k, v, 0, 100),
                "bio" => patch.bio = p.text(k, v, 0, 300),
                "avatar_url" => {
                    let image_limits = limits.image;
                    patch.avatar = p.string(k, v, |s| {
                        if s.trim().is_empty() {
                            Ok(None)
                        } else if s.trim_start().starts_with("https://") {
                            validate::https_url(s).map(|u| Some(AvatarInput::Url(u)))
                        } else if s.trim_start().starts_with("http://") {
                            Err(("invalid_url", "must be an https URL or a base64 image".into()))
                        } else {
                            validate::image_base64(s, image_limits).map(|i| Some(AvatarInput::Image(i)))
                        }
                    })
                }
                "phone_number" => patch.phone_number = p.string(k, v, |s| validate::phone_number(s).map(Some)),
                "locale" => patch.locale = p.string(k, v, |s| validate::locale(s).map(Some)),
                "timezone" => patch.timezone = p.string(k, v, |s| validate::timezone(s).map(Some)),
                "birthdate" => {
                    let today = p.today;
                    patch.birthdate = p.string(k, v, |s| validate::birthdate(s, today).map(Some))
                }
                "location" => {
                    patch.location = if v.is_null() {
                        Field::Clear
                    } else {
                        match validate::location(v) {
                            Ok(g) => Field::Set(g),
                            Err(errs) => {
                                for (suffix, e) in errs {
                                    p.fail(&format!("location{suffix}"), e);
                                }
                                Field::Absent
                            }
                        }
                    }
                }
                "is_active" => patch.is_active = p.boolean(k, v),
                "is_onboarded" => patch.is_onboarded = p.boolean(k, v),
                "is_superuser" => patch.is_superuser = p.boolean(k, v),
                "password_expired" => patch.password_expired = p.boolean(k, v),
                "organization_id" => patch.organization_id = p.uuid(k, v, |u| u),
                "selected_team_id" => patch.selected_team_id = p.uuid(k, v, TeamId),
                "client_metadata" => patch.client_metadata = p.metadata(k, v),
                "client_read_only_metadata" => patch.client_read_only_metadata = p.metadata(k, v),
                "server_metadata" => patch.server_metadata = p.metadata(k, v),
                "secure_metadata" => patch.secure_metadata = p.metadata(k, v),
                _ if READ_ONLY_FIELDS.contains(&k) => p.fail(k, ("read_only", "this field cannot be written".into())),
                _ => p.fail(k, ("unknown_field", "no such field".into())),
            }
        }
        if p.errors.is_empty() { Ok(patch) } else { Err(DomainError::Validation(p.errors)) }
    }

    /// `PUT` semantics for the profile: every profile field the request leaves out is cleared.
    pub fn replacing_profile(mut self) -> Self {
        macro_rules! clear_absent {
            ($($f:ident),*) => {$(
                if !self.$f.is_present() { self.$f = Field::Clear; }
            )*};
        }
        clear_absent!(
            display_name,
            name,
            first_name,
            last_name,
            bio,
            company,
            job_title,
            avatar,
            phone_number,
            locale,
            timezone,
            birthdate,
            location
        );
        self
    }

    /// The native names of the fields this patch would change, for the policy to judge.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! present {
            ($($f:ident => $name:literal),* $(,)?) => {$(
                if self.$f.is_present() { out.push($name); }
            )*};
        }
        present!(
            username => "username", primary_email => "primary_email",
            primary_email_verified => "primary_email_verified", status => "status",
            display_name => "display_name", name => "name", first_name => "first_name",
            last_name => "last_name", bio => "bio", company => "company", job_title => "job_title",
            avatar => "avatar_url", phone_number => "phone_number", locale => "locale",
            timezone => "timezone", birthdate => "birthdate", location => "location",
            is_active => "is_active", is_onboarded => "is_onboarded", is_superuser => "is_superuser",
            password_expired => "password_expired", organization_id => "organization_id",
            selected_team_id => "selected_team_id", client_metadata => "client_metadata",
            client_read_only_metadata => "client_read_only_metadata",
            server_metadata => "server_metadata", secure_metadata => "secure_metadata",
        );
        out
    }

    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// Applies the patch to `user`. Returns what must be stored beside the user row: a new
    /// avatar image, and the secure-metadata change (which is never part of `User`).
    pub fn apply(self, user: &mut User) -> Applied {
        let p = &mut user.profile;
        if let Field::Set(email) = &self.primary_email
            && user.primary_email.as_deref() != Some(email.as_str())
        {
            // A new address has not been proven to belong to the user.
            user.primary_email_verified = false;
        }
        if matches!(self.primary_email, Field::Clear) {
            user.primary_email_verified = false;
        }
        self.primary_email.apply_to(&mut user.primary_email);
        self.username.apply_to(&mut user.username);
        if let Field::Set(v) = self.primary_email_verified {
            user.primary_email_verified = v && user.primary_email.is_some();
        }
        if let Field::Set(s) = self.status {
            user.status = s;
        }
        self.display_name.apply_to(&mut p.display_name);
        self.name.apply_to(&mut p.name);
        self.first_name.apply_to(&mut p.first_name);
        self.last_name.apply_to(&mut p.last_name);
        self.bio.apply_to(&mut p.bio);
        self.company.apply_to(&mut p.company);
        self.job_title.apply_to(&mut p.job_title);
        let mut new_image = None;
        match self.avatar {
            Field::Absent => {}
            Field::Clear => p.avatar = None,
            Field::Set(AvatarInput::Url(url)) => p.avatar = Some(Avatar::Url { url }),
            Field::Set(AvatarInput::Image(img)) => {
                p.avatar = Some(Avatar::Stored { hash: img.hash(), kind: img.kind });
                new_image = Some(img);
            }
        }
        self.phone_number.apply_to(&mut p.phone_number);
        self.locale.apply_to(&mut p.locale);
        self.timezone.apply_to(&mut p.timezone);
        self.birthdate.apply_to(&mut p.birthdate);
        self.location.apply_to(&mut p.location);
        for (field, slot) in [
            (self.is_active, &mut p.is_active),
            (self.is_onboarded, &mut p.is_onboarded),
            (self.is_superuser, &mut p.is_superuser),
            (self.password_expired, &mut p.password_expired),
        ] {
            if let Field::Set(v) = field {
                *slot = v;
            }
        }
        self.organization_id.apply_to(&mut p.organization_id);
        self.selected_team_id.apply_to(&mut p.selected_team_id);
        for (field, slot) in [
            (self.client_metadata, &mut user.metadata.client),
            (self.client_read_only_metadata, &mut user.metadata.client_read_only),
            (self.server_metadata, &mut user.metadata.server),
        ] {
            match field {
                Field::Absent => {}
                Field::Clear => slot.clear(),
                Field::Set(m) => *slot = m,
            }
        }
        Applied { new_image, secure_metadata: self.secure_metadata }
    }
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
