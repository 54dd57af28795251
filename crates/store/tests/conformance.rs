//! The conformance suite of the `Store` trait: one set of stories, each run against SQLite and
//! against PostgreSQL, so that both backends are held to the same behaviour.
//!
//! Every story is an `async fn(Arc<dyn Store>)` that gets a freshly migrated, empty database.
//! `conformance!` at the bottom turns each story into two tests, `sqlite::<story>` and
//! `postgres::<story>`, on databases from `tessera-testkit`: SQLite in a temporary directory,
//! PostgreSQL on the server `TEST_DATABASE_URL` names (`scripts/pg-test-server` starts one), each
//! test on a database of its own that is dropped afterwards. The PostgreSQL tests are ignored by
//! default, so a run without a server reports them as skipped rather than passed.
//!
//! Timestamps come from `now()`, truncated to milliseconds, because that is the precision the
//! store keeps; anything finer would make exact round-trip comparisons fail for the wrong reason.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use tessera_core::events::{Activity, ActivityFilter, By};
use tessera_core::oauth::{AuthorizationGrant, GrantType, OAuthClient};
use tessera_core::tenant::{Tenant, TenantSettings};
use tessera_core::user::{AuthProvider, Avatar, Metadata, Profile, Session, Suspension, Team, User, UserStatus};
use tessera_core::validate::{GeoPoint, ImageKind};
use tessera_core::{SessionId, SuspensionId, TeamId, TenantId, UserId};
use tessera_store::{
    ImageBlob, Login, NewUser, Redemption, RevokeSessions, Rotation, SigningKeyRecord, Store, StoreError, UserFilter,
    UserWrite, constraints,
};
use uuid::Uuid;

type DynStore = Arc<dyn Store>;

// ---------------------------------------------------------------------------------------------
// Harness: one fresh database per test.
// ---------------------------------------------------------------------------------------------

mod harness {
    use std::sync::Arc;

    use tessera_store::{ConnectOptions, Store};
    use tessera_testkit::TestDatabase;

    /// A fresh, migrated store on `db`, which outlives it.
    pub async fn open(db: &TestDatabase) -> Arc<dyn Store> {
        let store = tessera_store::connect(&ConnectOptions {
            url: db.url.clone(),
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_secs(10),
            sqlite_sync_full: false,
            user_cache_max_age: std::time::Duration::from_secs(60),
        })
        .await
        .expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        store
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures and assertions shared by the stories.
// ---------------------------------------------------------------------------------------------

/// The current time at the store's precision (milliseconds).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("the current time is in range")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected a JSON object, got {other}"),
    }
}

async fn new_tenant(store: &DynStore) -> Tenant {
    let id = TenantId::new();
    let tenant = Tenant {
        id,
        name: format!("tenant {id}"),
        publishable_key: format!("pk_{}", id.0.simple()),
        settings: TenantSettings::default(),
        created_at: now(),
    };
    store.insert_tenant(&tenant, &server_key_hash(&tenant)).await.expect("insert tenant");
    tenant
}

fn server_key_hash(tenant: &Tenant) -> String {
    format!("skh_{}", tenant.id.0.simple())
}

/// A local user with an email and a username, not yet stored.
fn person(tenant: TenantId, email: &str, username: &str) -> User {
    let mut user = User::new(tenant, now());
    user.primary_email = Some(email.to_owned());
    user.username = Some(username.to_owned());
    user
}

/// Inserts `user` with no password and no secure metadata.
async fn try_insert(store: &DynStore, user: &User, new_image: Option<ImageBlob<'_>>) -> Result<(), StoreError> {
    let empty = Map::new();
    store.insert_user(NewUser { user, password_hash: None, secure_metadata: &empty, new_image, records: &[] }).await
}

/// The event of an erasure (no endpoint exists in these stories, so it is never written).
fn erased_event(tenant: TenantId, user: UserId) -> Vec<tessera_core::events::Record> {
    let data = format!(r#"{{"user":{{"id":"{user}"}}}}"#);
    vec![tessera_core::events::Record::Event(tessera_core::events::Event::new(
        tenant,
        "user.deleted",
        data,
        Utc::now(),
    ))]
}

async fn insert(store: &DynStore, user: &User) {
    try_insert(store, user, None).await.expect("insert user");
}

async fn insert_person(store: &DynStore, tenant: TenantId, email: &str, username: &str) -> User {
    let user = person(tenant, email, username);
    insert(store, &user).await;
    user
}

async fn find(store: &DynStore, user: &User) -> User {
    store.find_user(user.tenant_id, user.id, now()).await.expect("find user").expect("the user exists")
}

/// The next version of `user`, as a caller builds it before `update_user`.
fn next_version(user: &User) -> User {
    let mut next = user.clone();
    next.version += 1;
    next.updated_at = now();
    next
}

async fn update(store: &DynStore, user: &User, expected_version: i64) {
    store.update_user(UserWrite::new(user, expected_version, now())).await.expect("update user");
}

fn session_for(user: &User, created_at: DateTime<Utc>, ttl: Duration) -> Session {
    Session {
        id: SessionId::new(),
        tenant_id: user.tenant_id,
        user_id: user.id,
        created_at,
        last_refreshed_at: created_at,
        expires_at: created_at + ttl,
        revoked_at: None,
        user_agent: Some("conformance-suite/1".to_owned()),
        ip_address: Some("127.0.0.1".to_owned()),
        client_id: Some("tsr_ci_app".to_owned()),
    }
}

/// Starts a 30-day session for `user` whose refresh token hashes to `refresh_hash`.
async fn start_session(store: &DynStore, user: &User, refresh_hash: &str) -> Session {
    let session = session_for(user, now(), Duration::days(30));
    store.insert_session(&session, refresh_hash, &[]).await.expect("insert session");
    session
}

fn team_in(tenant: TenantId, name: &str) -> Team {
    Team {
        id: TeamId::new(),
        tenant_id: tenant,
        display_name: name.to_owned(),
        profile_image_url: None,
        client_metadata: Map::new(),
        client_read_only_metadata: Map::new(),
        server_metadata: Map::new(),
        created_at: now(),
    }
}

async fn new_team(store: &DynStore, tenant: TenantId, name: &str) -> Team {
    let team = team_in(tenant, name);
    store.insert_team(&team, &[]).await.expect("insert team");
    team
}

#[track_caller]
fn assert_conflict<T: Debug>(result: Result<T, StoreError>, expected: &str) {
    match result {
        Err(StoreError::Conflict { constraint }) => {
            assert_eq!(constraint, expected, "conflict on the wrong constraint")
        }
        other => panic!("expected Conflict {{ constraint: {expected} }}, got {other:?}"),
    }
}

fn rotated(rotation: Rotation) -> Session {
    match rotation {
        Rotation::Rotated(session) => session,
        other => panic!("expected Rotated, got {other:?}"),
    }
}

fn filter(limit: u32) -> UserFilter {
    UserFilter { limit, ..UserFilter::default() }
}

fn ids(users: &[User]) -> Vec<UserId> {
    users.iter().map(|u| u.id).collect()
}

fn sorted(mut ids: Vec<UserId>) -> Vec<UserId> {
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// Stories: instance values, signing keys, migrations.
// ---------------------------------------------------------------------------------------------

async fn moving_the_activity_inbox_takes_every_entry_however_many(store: DynStore) {
    // More than one move's worth (SQLite moves a thousand at a time), read before and after
    // the move: the same entries, newest first, each once.
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "ada@example.com", "ada").await;
    let start = now();
    let mut written = Vec::new();
    for i in 0..2_500 {
        let at = start + Duration::milliseconds(i);
        let entry = Activity::new(tenant.id, user.id, "user.updated", By::User, at).with_details(json!({"i": i}));
        store.insert_activity(&entry).await.expect("insert an entry");
        written.push(entry.id);
    }
    written.reverse();
    let filter = ActivityFilter { user_id: Some(user.id), limit: 10_000, ..ActivityFilter::default() };
    let ids = |entries: Vec<Activity>| entries.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_activity(tenant.id, &filter).await.expect("list the entries")),
        written,
        "read from the inbox"
    );
    store.move_activity().await.expect("move the inbox");
    assert_eq!(
        ids(store.list_activity(tenant.id, &filter).await.expect("list the entries")),
        written,
        "read after the move"
    );
    let entry = Activity::new(tenant.id, user.id, "user.updated", By::User, start + Duration::seconds(5));
    store.insert_activity(&entry).await.expect("insert an entry");
    store.move_activity().await.expect("move the inbox");
    let after = ids(store.list_activity(tenant.id, &filter).await.expect("list the entries"));
    assert_eq!((after.len(), after[0]), (written.len() + 1, entry.id), "a later entry moves too");
}

async fn migrating_twice_is_harmless_and_the_store_answers_ping(store: DynStore) {
    store.migrate().await.expect("a second migration run is a no-op");
    store.ping().await.expect("ping");
}

async fn instance_value_is_stored_once_and_never_overwritten(store: DynStore) {
    assert_eq!(store.find_instance_value("root_key_hash").await.expect("find"), None);
    assert!(store.insert_instance_value("root_key_hash", "first").await.expect("insert"));
    assert!(!store.insert_instance_value("root_key_hash", "second").await.expect("insert again"));
    assert_eq!(store.find_instance_value("root_key_hash").await.expect("find").as_deref(), Some("first"));
    assert!(store.insert_instance_value("other", "x").await.expect("insert another key"));
}

async fn signing_keys_are_listed_oldest_first_and_retired_once(store: DynStore) {
    let t0 = now();
    let key = |kid: &str, created_at| SigningKeyRecord {
        kid: kid.to_owned(),
        alg: "EdDSA".to_owned(),
        private_key: format!("private-{kid}"),
        public_key: format!("public-{kid}"),
        created_at,
        retired_at: None,
    };
    store.insert_signing_key(&key("new", t0)).await.expect("insert new key");
    store.insert_signing_key(&key("old", t0 - Duration::days(90))).await.expect("insert old key");

    let keys = store.list_signing_keys().await.expect("list");
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["old", "new"]);
    let old = &keys[0];
    assert_eq!(
        (old.alg.as_str(), old.private_key.as_str(), old.public_key.as_str()),
        ("EdDSA", "private-old", "public-old")
    );
    assert_eq!(old.created_at, t0 - Duration::days(90));
    assert!(keys.iter().all(|k| k.retired_at.is_none()));

    let retired_at = t0 + Duration::minutes(1);
    store.retire_signing_key("old", retired_at).await.expect("retire");
    // Retiring again must not move the retirement time: verification windows are counted from it.
    store.retire_signing_key("old", retired_at + Duration::hours(1)).await.expect("retire again");
    let keys = store.list_signing_keys().await.expect("list");
    assert_eq!(keys[0].retired_at, Some(retired_at));
    assert_eq!(keys[1].retired_at, None);
}

// ---------------------------------------------------------------------------------------------
// Stories: tenants.
// ---------------------------------------------------------------------------------------------

async fn tenant_is_found_by_id_server_key_hash_and_publishable_key(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let _other = new_tenant(&store).await;

    assert_eq!(store.find_tenant(tenant.id).await.expect("find").as_ref(), Some(&tenant));
    assert_eq!(store.find_tenant_by_server_key(&server_key_hash(&tenant)).await.expect("find").as_ref(), Some(&tenant));
    assert_eq!(
        store.find_tenant_by_publishable_key(&tenant.publishable_key).await.expect("find").as_ref(),
        Some(&tenant)
    );

    assert_eq!(store.find_tenant(TenantId::new()).await.expect("find"), None);
    assert_eq!(store.find_tenant_by_server_key("skh_unknown").await.expect("find"), None);
    // The publishable key identifies a tenant, but it is not its server key.
    assert_eq!(store.find_tenant_by_server_key(&tenant.publishable_key).await.expect("find"), None);
    assert_eq!(store.find_tenant_by_publishable_key("pk_unknown").await.expect("find"), None);
}

fn oauth_client(tenant: TenantId, id: &str, user: Option<UserId>) -> OAuthClient {
    OAuthClient {
        client_id: id.to_owned(),
        tenant_id: tenant,
        name: format!("client {id}"),
        redirect_uris: vec!["https://app.example.com/cb".into(), "http://localhost:9/cb".into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        is_public: false,
        user_id: user,
        created_at: now(),
    }
}

async fn a_service_account_is_stored_with_its_credentials_atomically(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let mut bot = person(tenant.id, "bot@example.com", "bot");
    bot.is_service_account = true;
    let empty = Map::new();
    let new =
        || Some(NewUser { user: &bot, password_hash: None, secure_metadata: &empty, new_image: None, records: &[] });
    let mut client = oauth_client(tenant.id, "tsr_ci_one", Some(bot.id));
    client.grant_types = vec![GrantType::ClientCredentials];
    store.insert_oauth_client(&client, Some("hash-one"), new()).await.expect("insert");
    let (found, hash) = store.find_oauth_client("tsr_ci_one").await.expect("find").expect("present");
    assert_eq!((found, hash.as_deref()), (client.clone(), Some("hash-one")));
    assert_eq!(find(&store, &bot).await.id, bot.id);
    assert!(store.find_oauth_client("tsr_ci_none").await.expect("find").is_none());
    // The same user again: the user insert fails, so no second client is left behind.
    let second = oauth_client(tenant.id, "tsr_ci_two", Some(bot.id));
    assert!(store.insert_oauth_client(&second, Some("hash-two"), new()).await.is_err());
    assert!(store.find_oauth_client("tsr_ci_two").await.expect("find").is_none(), "all or nothing");
    store.delete_user(tenant.id, bot.id, &[]).await.expect("delete");
    assert!(store.find_oauth_client("tsr_ci_one").await.expect("find").is_none(), "the client goes with the account");
}

async fn oauth_clients_are_listed_per_tenant_and_deleted_with_their_service_user(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let other = new_tenant(&store).await;
    let mut public = oauth_client(tenant.id, "tsr_ci_pub", None);
    public.is_public = true;
    store.insert_oauth_client(&public, None, None).await.expect("insert public");
    let bot = person(tenant.id, "bot@example.com", "bot");
    let empty = Map::new();
    let machine = oauth_client(tenant.id, "tsr_ci_bot", Some(bot.id));
    let new = NewUser { user: &bot, password_hash: None, secure_metadata: &empty, new_image: None, records: &[] };
    store.insert_oauth_client(&machine, Some("h"), Some(new)).await.expect("insert machine");
    store.insert_oauth_client(&oauth_client(other.id, "tsr_ci_other", None), Some("h"), None).await.expect("insert");

    let ids: Vec<String> =
        store.list_oauth_clients(tenant.id).await.expect("list").into_iter().map(|c| c.client_id).collect();
    assert_eq!(BTreeSet::from_iter(ids), BTreeSet::from(["tsr_ci_pub".to_owned(), "tsr_ci_bot".to_owned()]));
    let (found, hash) = store.find_oauth_client("tsr_ci_pub").await.expect("find").expect("present");
    assert!(found.is_public && hash.is_none());

    assert!(!store.delete_oauth_client(other.id, "tsr_ci_bot").await.expect("delete"), "not across tenants");
    assert!(store.delete_oauth_client(tenant.id, "tsr_ci_bot").await.expect("delete"));
    assert!(store.find_oauth_client("tsr_ci_bot").await.expect("find").is_none());
    assert!(store.find_user(tenant.id, bot.id, now()).await.expect("find").is_none(), "its user goes too");
    assert!(!store.delete_oauth_client(tenant.id, "tsr_ci_bot").await.expect("delete again"));
}

fn grant_for(user: &User, client: &str, expires_at: DateTime<Utc>) -> AuthorizationGrant {
    AuthorizationGrant {
        tenant_id: user.tenant_id,
        client_id: client.to_owned(),
        user_id: user.id,
        redirect_uri: "https://app.example.com/cb".into(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        nonce: Some("n-0S6_WzA2Mj".into()),
        scope: "openid email".into(),
        auth_time: now().timestamp(),
        expires_at,
    }
}

async fn an_authorization_code_is_redeemed_once_and_its_replay_revokes_the_session(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "ann@example.com", "ann").await;
    store.insert_oauth_client(&oauth_client(tenant.id, "tsr_ci_app", None), Some("h"), None).await.expect("client");
    let grant = grant_for(&user, "tsr_ci_app", now() + Duration::seconds(60));
    store.insert_authorization_code("code-hash", &grant).await.expect("insert code");

    let session = session_for(&user, now(), Duration::days(30));
    match store.redeem_authorization_code("code-hash", session.id, now()).await.expect("redeem") {
        Redemption::Redeemed(g) => assert_eq!(g, grant),
        other => panic!("expected the grant, got {other:?}"),
    }
    store.insert_session(&session, "rt-hash", &[]).await.expect("session");
    assert!(store.find_user_for_session(tenant.id, user.id, session.id, now()).await.expect("find").is_some());

    let other_session = SessionId::new();
    assert!(matches!(
        store.redeem_authorization_code("code-hash", other_session, now()).await.expect("replay"),
        Redemption::Replayed
    ));
    assert!(
        store.find_user_for_session(tenant.id, user.id, session.id, now()).await.expect("find").is_none(),
        "the replay revoked what the code issued"
    );
    assert!(matches!(
        store.redeem_authorization_code("no-such-code", other_session, now()).await.expect("unknown"),
        Redemption::Invalid
    ));
}

async fn an_expired_authorization_code_is_invalid_and_purged(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "ann@example.com", "ann").await;
    store.insert_oauth_client(&oauth_client(tenant.id, "tsr_ci_app", None), Some("h"), None).await.expect("client");
    let expires = now() + Duration::seconds(60);
    store.insert_authorization_code("old", &grant_for(&user, "tsr_ci_app", expires)).await.expect("insert code");
    let later = expires + Duration::seconds(1);
    assert!(matches!(
        store.redeem_authorization_code("old", SessionId::new(), later).await.expect("redeem"),
        Redemption::Invalid
    ));
    assert_eq!(store.delete_expired_codes(expires).await.expect("purge"), 0, "not before it expires");
    assert_eq!(store.delete_expired_codes(later).await.expect("purge"), 1);
    assert!(matches!(
        store.redeem_authorization_code("old", SessionId::new(), now()).await.expect("redeem"),
        Redemption::Invalid
    ));
}

async fn concurrent_redemptions_of_one_code_redeem_exactly_once(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "ann@example.com", "ann").await;
    store.insert_oauth_client(&oauth_client(tenant.id, "tsr_ci_app", None), Some("h"), None).await.expect("client");
    store
        .insert_authorization_code("race", &grant_for(&user, "tsr_ci_app", now() + Duration::seconds(60)))
        .await
        .expect("insert code");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.redeem_authorization_code("race", SessionId::new(), now()).await })
        })
        .collect();
    let mut redeemed = 0;
    for t in tasks {
        if let Redemption::Redeemed(_) = t.await.expect("join").expect("redeem") {
            redeemed += 1;
        }
    }
    assert_eq!(redeemed, 1);
}

async fn recovery_codes_are_replaced_whole_and_each_used_once(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "r@example.com", "r").await;
    store.replace_recovery_codes(user.id, &["h1".into(), "h2".into()]).await.expect("set");
    assert!(store.use_recovery_code(user.id, "h1", now()).await.expect("use"));
    assert!(!store.use_recovery_code(user.id, "h1", now()).await.expect("reuse"), "once only");
    assert!(!store.use_recovery_code(user.id, "nope", now()).await.expect("unknown"));
    store.replace_recovery_codes(user.id, &["h3".into()]).await.expect("replace");
    assert!(!store.use_recovery_code(user.id, "h2", now()).await.expect("old"), "replaced codes are gone");
    assert!(store.use_recovery_code(user.id, "h3", now()).await.expect("new"));
}

async fn tenant_policies_are_replaced_whole_and_kept_per_tenant(store: DynStore) {
    let a = new_tenant(&store).await;
    let b = new_tenant(&store).await;
    assert_eq!(store.find_tenant_policies(a.id).await.expect("find"), "", "none yet");
    store.put_tenant_policies(a.id, "forbid (principal, action, resource);", Utc::now()).await.expect("put");
    store.put_tenant_policies(a.id, "permit (principal, action, resource);", Utc::now()).await.expect("replace");
    assert_eq!(store.find_tenant_policies(a.id).await.expect("find"), "permit (principal, action, resource);");
    assert_eq!(store.find_tenant_policies(b.id).await.expect("find"), "");
}

async fn tenants_are_listed_and_name_and_settings_updates_persist(store: DynStore) {
    let first = new_tenant(&store).await;
    let second = new_tenant(&store).await;
    let listed: BTreeSet<TenantId> = store.list_tenants().await.expect("list").iter().map(|t| t.id).collect();
    assert_eq!(listed, BTreeSet::from([first.id, second.id]));

    let mut changed = first.clone();
    changed.name = "renamed".to_owned();
    changed.settings.deletion_grace_seconds = 3600;
    changed.settings.metadata_max_bytes = 1024;
    changed.settings.access_token_ttl_seconds = 300;
    store.update_tenant(&changed).await.expect("update tenant");
    assert_eq!(store.find_tenant(first.id).await.expect("find").as_ref(), Some(&changed));
    assert_eq!(
        store.find_tenant(second.id).await.expect("find").as_ref(),
        Some(&second),
        "the other tenant is untouched"
    );

    let mut missing = changed.clone();
    missing.id = TenantId::new();
    assert!(matches!(store.update_tenant(&missing).await, Err(StoreError::NotFound)));
}

async fn tenant_keys_are_unique_across_tenants(store: DynStore) {
    let existing = new_tenant(&store).await;

    let mut same_server_key = existing.clone();
    same_server_key.id = TenantId::new();
    same_server_key.publishable_key = "pk_fresh".to_owned();
    assert_conflict(store.insert_tenant(&same_server_key, &server_key_hash(&existing)).await, constraints::TENANT_KEY);

    let mut same_publishable_key = existing.clone();
    same_publishable_key.id = TenantId::new();
    assert_conflict(store.insert_tenant(&same_publishable_key, "skh_fresh").await, constraints::TENANT_KEY);

    assert_eq!(store.list_tenants().await.expect("list").len(), 1, "neither conflicting tenant was stored");
}

// ---------------------------------------------------------------------------------------------
// Stories: users.
// ---------------------------------------------------------------------------------------------

async fn user_round_trips_every_field(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let team = new_team(&store, tenant.id, "Analytical Engines").await;
    let t0 = now();

    let mut user = User::new(tenant.id, t0 - Duration::hours(1));
    user.username = Some("Ada_L".to_owned());
    user.primary_email = Some("ada@example.com".to_owned());
    user.primary_email_verified = true;
    user.status = UserStatus::Active;
    user.auth_provider = AuthProvider::Oidc;
    user.has_password = true;
    user.totp_enabled = true;
    user.profile = Profile {
        display_name: Some("Ada".to_owned()),
        name: Some("Ada Lovelace".to_owned()),
        first_name: Some("Ada".to_owned()),
        last_name: Some("Lovelace".to_owned()),
        bio: Some("Wrote the first program; it has a \"loop\".\nSecond line, ünïcödé.".to_owned()),
        company: Some("Analytical Engines Ltd".to_owned()),
        job_title: Some("Programmer".to_owned()),
        avatar: Some(Avatar::Url { url: "https://img.example.com/ada.png".to_owned() }),
        phone_number: Some("+442071234567".to_owned()),
        locale: Some("en-GB".to_owned()),
        timezone: Some("Europe/London".to_owned()),
        birthdate: NaiveDate::from_ymd_opt(1815, 12, 10),
        // Binary fractions, so the comparison is exact whatever the float parser does.
        location: Some(GeoPoint { longitude: -0.125, latitude: 51.5 }),
        is_active: true,
        is_onboarded: true,
        is_superuser: false,
        password_expired: true,
        organization_id: Some(Uuid::new_v4()),
        selected_team_id: Some(team.id),
        oauth_provider: Some("github".to_owned()),
        oauth_id: Some("12345".to_owned()),
    };
    user.metadata = Metadata {
        client: object(json!({"theme": "dark", "nested": {"list": [1, 2.5, null, true]}})),
        client_read_only: object(json!({"plan": "pro"})),
        server: object(json!({"crm_id": 42})),
    };
    user.suspensions = vec![
        Suspension {
            id: SuspensionId::new(),
            reason: "spam".to_owned(),
            starts_at: t0 - Duration::days(10),
            ends_at: Some(t0 - Duration::days(3)),
            created_by: "admin@example.com".to_owned(),
        },
        Suspension {
            id: SuspensionId::new(),
            reason: "under review".to_owned(),
            starts_at: t0 - Duration::hours(2),
            ends_at: None,
            created_by: "server".to_owned(),
        },
    ];
    user.updated_at = t0;
    user.deletion_due_at = Some(t0 + Duration::days(7));

    store
        .insert_user(NewUser {
            user: &user,
            password_hash: Some("$argon2id$v=19$hash"),
            secure_metadata: &object(json!({"ssn": "secret"})),
            new_image: None,
            records: &[],
        })
        .await
        .expect("insert user");

    assert_eq!(find(&store, &user).await, user);

    let mut service = User::new(tenant.id, t0);
    service.is_service_account = true;
    service.status = UserStatus::Disabled;
    let mut anonymous = User::new(tenant.id, t0);
    anonymous.is_anonymous = true;
    anonymous.auth_provider = AuthProvider::Saml;
    for other in [&service, &anonymous] {
        insert(&store, other).await;
        assert_eq!(&find(&store, other).await, other, "a user without email or username round-trips too");
    }
}

async fn email_is_unique_per_tenant_ignoring_case(store: DynStore) {
    let tenant = new_tenant(&store).await;
    insert_person(&store, tenant.id, "ann@example.com", "ann").await;

    for (i, taken) in ["ann@example.com", "ANN@Example.COM"].into_iter().enumerate() {
        let duplicate = person(tenant.id, taken, &format!("ann_{i}"));
        assert_conflict(try_insert(&store, &duplicate, None).await, constraints::USER_EMAIL);
        assert_eq!(store.find_user(tenant.id, duplicate.id, now()).await.expect("find"), None);
    }

    // An email given in mixed case is stored lower-case, so sign-in finds it in any case and a
    // later lower-case duplicate is refused too.
    let mixed = insert_person(&store, tenant.id, "Zoe@Example.COM", "zoe").await;
    assert_eq!(find(&store, &mixed).await.primary_email.as_deref(), Some("zoe@example.com"));
    let found = store.find_user_credentials(tenant.id, Login::Email("ZOE@example.com"), now()).await.expect("find");
    assert_eq!(found.map(|c| c.user.id), Some(mixed.id));
    let duplicate = person(tenant.id, "zoe@example.com", "zoe_2");
    assert_conflict(try_insert(&store, &duplicate, None).await, constraints::USER_EMAIL);
}

async fn username_is_unique_per_tenant_ignoring_case(store: DynStore) {
    let tenant = new_tenant(&store).await;
    insert_person(&store, tenant.id, "bob@example.com", "Bob").await;

    for (i, taken) in ["Bob", "bob", "BOB"].into_iter().enumerate() {
        let duplicate = person(tenant.id, &format!("bob{i}@example.com"), taken);
        assert_conflict(try_insert(&store, &duplicate, None).await, constraints::USER_USERNAME);
    }
    // The username keeps the case it was given; only its uniqueness ignores case.
    let listed = store.list_users(tenant.id, &filter(10), now()).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].username.as_deref(), Some("Bob"));
}

async fn same_email_and_username_are_allowed_in_another_tenant(store: DynStore) {
    let first = new_tenant(&store).await;
    let second = new_tenant(&store).await;
    let a = insert_person(&store, first.id, "cy@example.com", "cy").await;
    let b = insert_person(&store, second.id, "cy@example.com", "cy").await;
    assert_eq!(find(&store, &a).await.tenant_id, first.id);
    assert_eq!(find(&store, &b).await.tenant_id, second.id);
}

async fn update_to_a_taken_email_or_username_is_a_conflict_and_changes_nothing(store: DynStore) {
    let tenant = new_tenant(&store).await;
    insert_person(&store, tenant.id, "taken@example.com", "taken").await;
    let user = insert_person(&store, tenant.id, "free@example.com", "free").await;

    let mut next = next_version(&user);
    next.primary_email = Some("TAKEN@example.com".to_owned());
    assert_conflict(store.update_user(UserWrite::new(&next, user.version, now())).await, constraints::USER_EMAIL);

    let mut next = next_version(&user);
    next.username = Some("Taken".to_owned());
    assert_conflict(store.update_user(UserWrite::new(&next, user.version, now())).await, constraints::USER_USERNAME);

    assert_eq!(find(&store, &user).await, user);
}

async fn find_user_of_another_tenant_returns_none(store: DynStore) {
    let home = new_tenant(&store).await;
    let elsewhere = new_tenant(&store).await;
    let user = insert_person(&store, home.id, "dee@example.com", "dee").await;
    store
        .update_user(UserWrite {
            password_hash: Some("hash"),
            ..UserWrite::new(&next_version(&user), user.version, now())
        })
        .await
        .expect("set a password");
    let session = start_session(&store, &user, "dee-refresh").await;

    assert_eq!(store.find_user(elsewhere.id, user.id, now()).await.expect("find"), None);
    assert_eq!(store.find_user_for_session(elsewhere.id, user.id, session.id, now()).await.expect("find"), None);
    assert_eq!(store.find_password_hash(elsewhere.id, user.id).await.expect("find"), None);
    assert_eq!(store.find_secure_metadata(elsewhere.id, user.id).await.expect("find"), None);
    assert!(
        store
            .find_user_credentials(elsewhere.id, Login::Email("dee@example.com"), now())
            .await
            .expect("find")
            .is_none()
    );
    assert!(store.list_users(elsewhere.id, &filter(10), now()).await.expect("list").is_empty());
    assert!(store.list_sessions(elsewhere.id, user.id, now()).await.expect("list").is_empty());
    assert!(!store.revoke_session(elsewhere.id, user.id, session.id, now(), &[]).await.expect("revoke"));
    assert!(!store.delete_user(elsewhere.id, user.id, &[]).await.expect("delete"));
    assert!(store.find_user(home.id, user.id, now()).await.expect("find").is_some(), "the user survived");
}

async fn update_with_expected_version_succeeds(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "eve@example.com", "eve").await;

    let mut next = next_version(&user);
    next.username = Some("Eve_2".to_owned());
    next.primary_email = Some("eve2@example.com".to_owned());
    next.status = UserStatus::Active;
    next.profile.bio = Some("updated".to_owned());
    next.metadata.client = object(json!({"k": "v"}));
    next.deletion_due_at = Some(now() + Duration::days(1));
    store.update_user(UserWrite::between(&user, &next, now())).await.expect("update user");
    assert_eq!(find(&store, &user).await, next);

    // The old username and email are free again.
    insert_person(&store, tenant.id, "eve@example.com", "eve").await;

    let mut third = next_version(&next);
    third.deletion_due_at = None;
    third.profile.bio = None;
    update(&store, &third, next.version).await;
    assert_eq!(find(&store, &user).await, third, "fields can be cleared again");
}

async fn update_with_stale_version_is_rejected_and_changes_nothing(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "fay@example.com", "fay").await;
    let session = start_session(&store, &user, "fay-refresh").await;
    let winner = next_version(&user);
    update(&store, &winner, user.version).await;

    // A second writer that read the same version as the first.
    let mut loser = next_version(&user);
    loser.profile.display_name = Some("lost update".to_owned());
    let never_stored = object(json!({"never": "stored"}));
    let write = UserWrite {
        password_hash: Some("never-stored"),
        secure_metadata: Some(&never_stored),
        revoke_sessions: Some(RevokeSessions { except: None }),
        ..UserWrite::new(&loser, user.version, now())
    };
    assert!(matches!(store.update_user(write).await, Err(StoreError::Stale)));

    let mut expected = winner.clone();
    expected.active_sessions = 1;
    assert_eq!(find(&store, &user).await, expected);
    assert_eq!(store.find_password_hash(tenant.id, user.id).await.expect("find"), None);
    assert_eq!(store.find_secure_metadata(tenant.id, user.id).await.expect("find"), Some(Map::new()));
    assert!(store.find_user_for_session(tenant.id, user.id, session.id, now()).await.expect("find").is_some());

    // A version from the future is just as stale.
    let mut ahead = next_version(&winner);
    ahead.version += 5;
    assert!(matches!(
        store.update_user(UserWrite::new(&ahead, winner.version + 5, now())).await,
        Err(StoreError::Stale)
    ));
}

/// Writes that arrive together (SQLite commits them as one group) still succeed or fail each on
/// its own: a stale, conflicting or missing-user write changes nothing and costs the others
/// nothing.
async fn concurrent_user_writes_commit_or_fail_each_on_its_own(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(insert_person(&store, tenant.id, &format!("u{i}@example.com"), &format!("u{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut next = next_version(user);
        next.profile.display_name = Some(format!("written {i}"));
        // Every third write expects a version the user no longer has; one takes a taken email.
        let expected = if i % 3 == 2 { user.version + 7 } else { user.version };
        if i == 4 {
            next.primary_email = Some("u0@example.com".to_owned());
        }
        let store = Arc::clone(&store);
        // Each write also stores an image, so a failed one has something to roll back.
        let hash = format!("{i:064x}");
        tasks.push(tokio::spawn(async move {
            let image = ImageBlob { hash: &hash, content_type: "image/png", bytes: b"png" };
            store.update_user(UserWrite { new_image: Some(image), ..UserWrite::new(&next, expected, now()) }).await
        }));
    }
    let ghost = next_version(&person(tenant.id, "ghost@example.com", "ghost"));
    let ghost_store = Arc::clone(&store);
    let ghost_task = tokio::spawn(async move { ghost_store.update_user(UserWrite::new(&ghost, 1, now())).await });

    for (i, (task, user)) in tasks.into_iter().zip(&users).enumerate() {
        let outcome = task.await.expect("the write task");
        let stored = find(&store, user).await;
        match i {
            4 => assert!(
                matches!(outcome, Err(StoreError::Conflict { constraint: constraints::USER_EMAIL })),
                "{i}: {outcome:?}"
            ),
            _ if i % 3 == 2 => assert!(matches!(outcome, Err(StoreError::Stale)), "{i}: {outcome:?}"),
            _ => {
                assert!(outcome.is_ok(), "{i}: {outcome:?}");
                assert_eq!(stored.profile.display_name.as_deref(), Some(format!("written {i}").as_str()));
                assert_eq!(stored.version, user.version + 1);
                continue;
            }
        }
        assert_eq!(stored, *user, "{i}: a failed write changed the user");
        let image = store.find_image(&format!("{i:064x}")).await.expect("find image");
        assert!(image.is_none(), "{i}: a failed write stored its image");
    }
    assert!(matches!(ghost_task.await.expect("the write task"), Err(StoreError::NotFound)));
}

async fn update_of_a_missing_user_is_not_found(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let ghost = person(tenant.id, "ghost@example.com", "ghost");
    assert!(matches!(
        store.update_user(UserWrite::new(&next_version(&ghost), ghost.version, now())).await,
        Err(StoreError::NotFound)
    ));

    // A user of one tenant written as if it were another tenant's is missing there.
    let other = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "gus@example.com", "gus").await;
    let mut moved = next_version(&user);
    moved.tenant_id = other.id;
    assert!(matches!(store.update_user(UserWrite::new(&moved, user.version, now())).await, Err(StoreError::NotFound)));
    assert_eq!(find(&store, &user).await, user);
}

async fn update_requiring_membership_of_a_team_the_user_is_not_in_is_a_conflict_and_writes_nothing(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "hal@example.com", "hal").await;
    let session = start_session(&store, &user, "hal-refresh").await;
    let team = new_team(&store, tenant.id, "Not Hal's").await;
    let colleague = insert_person(&store, tenant.id, "ida@example.com", "ida").await;
    store.add_member(tenant.id, team.id, colleague.id, now(), &[]).await.expect("add someone else");

    let mut next = next_version(&user);
    next.profile.selected_team_id = Some(team.id);
    next.profile.display_name = Some("must not be written".to_owned());
    let must_not_be_written = object(json!({"must_not": "be written"}));
    let write = UserWrite {
        require_membership: Some(team.id),
        password_hash: Some("must-not-be-written"),
        secure_metadata: Some(&must_not_be_written),
        new_image: Some(ImageBlob { hash: "hal-image", content_type: "image/png", bytes: b"png" }),
        revoke_sessions: Some(RevokeSessions { except: None }),
        ..UserWrite::new(&next, user.version, now())
    };
    assert_conflict(store.update_user(write).await, constraints::TEAM_MEMBERSHIP);

    let mut expected = user.clone();
    expected.active_sessions = 1;
    assert_eq!(find(&store, &user).await, expected, "nothing of the write was applied");
    assert_eq!(store.find_secure_metadata(tenant.id, user.id).await.expect("find"), Some(Map::new()));
    assert_eq!(store.find_password_hash(tenant.id, user.id).await.expect("find"), None);
    assert_eq!(store.find_image("hal-image").await.expect("find"), None);
    assert!(store.find_user_for_session(tenant.id, user.id, session.id, now()).await.expect("find").is_some());
}

async fn update_requiring_membership_of_a_team_the_user_is_in_succeeds(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "jo@example.com", "jo").await;
    let team = new_team(&store, tenant.id, "Jo's").await;
    store.add_member(tenant.id, team.id, user.id, now(), &[]).await.expect("add member");

    let mut next = next_version(&user);
    next.profile.selected_team_id = Some(team.id);
    store
        .update_user(UserWrite { require_membership: Some(team.id), ..UserWrite::new(&next, user.version, now()) })
        .await
        .expect("select a team the user belongs to");
    assert_eq!(find(&store, &user).await.profile.selected_team_id, Some(team.id));
}

async fn secure_metadata_is_readable_only_through_find_secure_metadata(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = person(tenant.id, "kim@example.com", "kim");
    let secret = object(json!({"api_token": "s3cret", "nested": {"n": 1}}));
    store
        .insert_user(NewUser {
            user: &user,
            password_hash: None,
            secure_metadata: &secret,
            new_image: None,
            records: &[],
        })
        .await
        .expect("insert user");

    assert_eq!(store.find_secure_metadata(tenant.id, user.id).await.expect("find"), Some(secret.clone()));
    // No read that serves a response carries it.
    let found = find(&store, &user).await;
    let readable = serde_json::to_string(&(&found.profile, &found.metadata)).expect("serialise");
    assert!(!readable.contains("s3cret"), "secure metadata leaked into the user: {readable}");
    let listed = store.list_users(tenant.id, &filter(10), now()).await.expect("list");
    let readable = serde_json::to_string(&(&listed[0].profile, &listed[0].metadata)).expect("serialise");
    assert!(!readable.contains("s3cret"), "secure metadata leaked into the listing: {readable}");

    // A write without secure metadata keeps it ...
    let mut next = next_version(&user);
    next.metadata.server = object(json!({"visible": true}));
    update(&store, &next, user.version).await;
    assert_eq!(store.find_secure_metadata(tenant.id, user.id).await.expect("find"), Some(secret));

    // ... and a write with it replaces it whole.
    let replaced = object(json!({"rotated": "t2"}));
    let third = next_version(&next);
    store
        .update_user(UserWrite { secure_metadata: Some(&replaced), ..UserWrite::new(&third, next.version, now()) })
        .await
        .expect("update secure metadata");
    assert_eq!(store.find_secure_metadata(tenant.id, user.id).await.expect("find"), Some(replaced));
    assert_eq!(find(&store, &user).await, third);
}

async fn password_hash_is_set_by_a_write_and_kept_when_a_write_has_none(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "lee@example.com", "lee").await;
    assert!(!find(&store, &user).await.has_password);
    assert_eq!(store.find_password_hash(tenant.id, user.id).await.expect("find"), None);

    let mut with_password = next_version(&user);
    with_password.has_password = true;
    store
        .update_user(UserWrite { password_hash: Some("hash-1"), ..UserWrite::new(&with_password, user.version, now()) })
        .await
        .expect("set password");
    assert_eq!(store.find_password_hash(tenant.id, user.id).await.expect("find").as_deref(), Some("hash-1"));
    assert!(find(&store, &user).await.has_password);

    let mut renamed = next_version(&with_password);
    renamed.profile.display_name = Some("Lee".to_owned());
    update(&store, &renamed, with_password.version).await;
    assert_eq!(store.find_password_hash(tenant.id, user.id).await.expect("find").as_deref(), Some("hash-1"), "kept");
    assert_eq!(find(&store, &user).await, renamed);

    let changed = next_version(&renamed);
    store
        .update_user(UserWrite { password_hash: Some("hash-2"), ..UserWrite::new(&changed, renamed.version, now()) })
        .await
        .expect("change password");
    assert_eq!(store.find_password_hash(tenant.id, user.id).await.expect("find").as_deref(), Some("hash-2"));
}

async fn credentials_are_found_by_email_or_username_ignoring_case(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let mut user = person(tenant.id, "max@example.com", "MaxPower");
    user.has_password = true;
    store
        .insert_user(NewUser {
            user: &user,
            password_hash: Some("max-hash"),
            secure_metadata: &Map::new(),
            new_image: None,
            records: &[],
        })
        .await
        .expect("insert user");
    start_session(&store, &user, "max-refresh").await;
    let mut expected = user.clone();
    expected.active_sessions = 1;

    for login in [
        Login::Email("max@example.com"),
        Login::Email("MAX@Example.com"),
        Login::Username("maxpower"),
        Login::Username("MAXPOWER"),
    ] {
        let found = store.find_user_credentials(tenant.id, login, now()).await.expect("find").expect("found");
        assert_eq!(found.user, expected, "{login:?}");
        assert_eq!(found.password_hash.as_deref(), Some("max-hash"), "{login:?}");
    }
    assert!(
        store
            .find_user_credentials(tenant.id, Login::Email("nobody@example.com"), now())
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        store
            .find_user_credentials(tenant.id, Login::Username("max@example.com"), now())
            .await
            .expect("find")
            .is_none()
    );
}

async fn delete_user_removes_the_user_and_reports_whether_it_existed(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "ned@example.com", "ned").await;
    let keep = insert_person(&store, tenant.id, "ola@example.com", "ola").await;
    let session = start_session(&store, &user, "ned-refresh").await;

    assert!(store.delete_user(tenant.id, user.id, &[]).await.expect("delete"));
    assert!(!store.delete_user(tenant.id, user.id, &[]).await.expect("delete again"));
    assert_eq!(store.find_user(tenant.id, user.id, now()).await.expect("find"), None);
    assert_eq!(store.find_session_by_refresh("ned-refresh", now()).await.expect("find"), None);
    assert!(store.list_sessions(tenant.id, user.id, now()).await.expect("list").is_empty());
    assert!(!store.revoke_session(tenant.id, user.id, session.id, now(), &[]).await.expect("revoke"));
    assert_eq!(find(&store, &keep).await, keep);
    // The email and username are free again.
    insert_person(&store, tenant.id, "ned@example.com", "ned").await;
}

// ---------------------------------------------------------------------------------------------
// Stories: sessions.
// ---------------------------------------------------------------------------------------------

async fn live_sessions_are_listed_newest_first_and_counted_on_the_user(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "pam@example.com", "pam").await;
    let other = insert_person(&store, tenant.id, "quin@example.com", "quin").await;
    let t0 = now();

    let older = session_for(&user, t0 - Duration::hours(2), Duration::days(1));
    let mut newer = session_for(&user, t0 - Duration::hours(1), Duration::days(1));
    newer.user_agent = None;
    newer.ip_address = None;
    let expired = session_for(&user, t0 - Duration::days(2), Duration::days(1));
    let mut revoked = session_for(&user, t0 - Duration::hours(3), Duration::days(1));
    revoked.revoked_at = Some(t0 - Duration::minutes(5));
    let others = session_for(&other, t0, Duration::days(1));
    for (session, hash) in [
        (&older, "h-older"),
        (&newer, "h-newer"),
        (&expired, "h-expired"),
        (&revoked, "h-revoked"),
        (&others, "h-other"),
    ] {
        store.insert_session(session, hash, &[]).await.expect("insert session");
    }

    let listed = store.list_sessions(tenant.id, user.id, t0).await.expect("list");
    assert_eq!(listed, vec![newer.clone(), older.clone()]);
    assert_eq!(store.find_user(tenant.id, user.id, t0).await.expect("find").expect("found").active_sessions, 2);
    assert_eq!(store.find_user(tenant.id, other.id, t0).await.expect("find").expect("found").active_sessions, 1);

    // Counted at the `now` given: a day later both have expired.
    let later = t0 + Duration::days(1);
    assert!(store.list_sessions(tenant.id, user.id, later).await.expect("list").is_empty());
    assert_eq!(store.find_user(tenant.id, user.id, later).await.expect("find").expect("found").active_sessions, 0);
}

async fn find_user_for_session_returns_none_after_revocation_expiry_or_for_anothers_session(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "rae@example.com", "rae").await;
    let other = insert_person(&store, tenant.id, "sid@example.com", "sid").await;
    let t0 = now();
    let session = session_for(&user, t0, Duration::hours(1));
    store.insert_session(&session, "rae-refresh", &[]).await.expect("insert session");
    let others = start_session(&store, &other, "sid-refresh").await;

    let found =
        store.find_user_for_session(tenant.id, user.id, session.id, t0).await.expect("find").expect("live session");
    let mut expected = user.clone();
    expected.active_sessions = 1;
    assert_eq!(found, expected);

    // Expiry is exclusive and measured at the `now` passed in.
    let just_before = session.expires_at - Duration::milliseconds(1);
    assert!(store.find_user_for_session(tenant.id, user.id, session.id, just_before).await.expect("find").is_some());
    assert_eq!(
        store.find_user_for_session(tenant.id, user.id, session.id, session.expires_at).await.expect("find"),
        None
    );

    // A session of someone else, or one that does not exist, does not authenticate this user.
    assert_eq!(store.find_user_for_session(tenant.id, user.id, others.id, t0).await.expect("find"), None);
    assert_eq!(store.find_user_for_session(tenant.id, user.id, SessionId::new(), t0).await.expect("find"), None);

    assert!(store.revoke_session(tenant.id, user.id, session.id, t0, &[]).await.expect("revoke"));
    assert!(
        !store.revoke_session(tenant.id, user.id, session.id, t0, &[]).await.expect("revoke again"),
        "already revoked"
    );
    assert_eq!(store.find_user_for_session(tenant.id, user.id, session.id, t0).await.expect("find"), None);
    assert!(
        store.find_user_for_session(tenant.id, other.id, others.id, t0).await.expect("find").is_some(),
        "others unaffected"
    );
    // Revoking through the wrong user does nothing.
    assert!(!store.revoke_session(tenant.id, user.id, others.id, t0, &[]).await.expect("revoke"));
}

/// `GET /me`'s read may be answered from memory on SQLite (`user_cache.rs`): every write that
/// changes what it returns must be seen by the very next read, and so must time passing a
/// session's expiry. Each step reads first, so that the read after the write could be a stale
/// copy if the write failed to outdate it.
async fn every_write_a_session_read_depends_on_is_seen_by_the_next_read(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "uma@example.com", "uma").await;
    let t0 = now();
    let session = start_session(&store, &user, "uma-1").await;
    let read = |at: DateTime<Utc>| {
        let store = store.clone();
        async move { store.find_user_for_session(tenant.id, user.id, session.id, at).await.expect("find") }
    };
    assert_eq!(read(t0).await.expect("live").active_sessions, 1);

    // A change to the user.
    let mut renamed = next_version(&user);
    renamed.profile.display_name = Some("Uma".into());
    update(&store, &renamed, user.version).await;
    assert_eq!(read(t0).await.expect("live").profile.display_name.as_deref(), Some("Uma"));

    // A change the user makes through the session being read, which a store may keep for its next read:
    // that read is still exactly what the store holds, whatever the change touched.
    let current = read(t0).await.expect("live");
    let mut own = next_version(&current);
    own.profile.display_name = Some("Uma B".into());
    own.profile.bio = Some("kept".into());
    own.metadata.client = object(json!({ "theme": "dark" }));
    let write = UserWrite { through_session: Some(session.id), ..UserWrite::new(&own, current.version, t0) };
    store.update_user(write).await.expect("own update");
    let fresh = store.find_user(tenant.id, user.id, t0).await.expect("find").expect("exists");
    assert_eq!(fresh.profile.bio.as_deref(), Some("kept"));
    assert_eq!(read(t0).await, Some(fresh));

    // Another session starts, then ends by revocation; a third ends by expiring.
    let second = start_session(&store, &user, "uma-2").await;
    assert_eq!(read(t0).await.expect("live").active_sessions, 2);
    assert!(store.revoke_session(tenant.id, user.id, second.id, t0, &[]).await.expect("revoke"));
    assert_eq!(read(t0).await.expect("live").active_sessions, 1);
    let short = session_for(&user, t0, Duration::minutes(1));
    store.insert_session(&short, "uma-3", &[]).await.expect("insert session");
    assert_eq!(read(t0).await.expect("live").active_sessions, 2);
    assert_eq!(read(t0 + Duration::minutes(1)).await.expect("live").active_sessions, 1, "expired on its own");

    // The selected team, cleared by leaving it, then by its deletion.
    let team = new_team(&store, tenant.id, "Crew").await;
    for step in ["leave", "delete"] {
        store.add_member(tenant.id, team.id, user.id, t0, &[]).await.expect("add member");
        let current = read(t0).await.expect("live");
        let mut selecting = next_version(&current);
        selecting.profile.selected_team_id = Some(team.id);
        update(&store, &selecting, current.version).await;
        assert_eq!(read(t0).await.expect("live").profile.selected_team_id, Some(team.id));
        if step == "leave" {
            assert!(store.remove_member(tenant.id, team.id, user.id, t0, &[]).await.expect("remove"));
        } else {
            assert!(store.delete_team(tenant.id, team.id, t0, &[]).await.expect("delete team"));
        }
        assert_eq!(read(t0).await.expect("live").profile.selected_team_id, None, "after {step}");
    }

    // A refresh token used twice revokes its session.
    rotated(store.rotate_refresh_token("uma-1", "uma-1b", t0).await.expect("rotate"));
    assert!(read(t0).await.is_some(), "a rotation keeps the session");
    assert!(matches!(store.rotate_refresh_token("uma-1", "uma-1c", t0).await.expect("reuse"), Rotation::Reused));
    assert_eq!(read(t0).await, None, "reuse revoked it");

    // A password change ends the other sessions in the same write.
    let kept = start_session(&store, &user, "uma-4").await;
    let gone = start_session(&store, &user, "uma-5").await;
    let find_in = |s: SessionId| {
        let store = store.clone();
        async move { store.find_user_for_session(tenant.id, user.id, s, t0).await.expect("find") }
    };
    let current = find_in(gone.id).await.expect("live");
    let mut write = UserWrite::new(&current, current.version, t0);
    let changed = next_version(&current);
    write.user = &changed;
    write.password_hash = Some("new-hash");
    write.revoke_sessions = Some(RevokeSessions { except: Some(kept.id) });
    let live = store.list_sessions(tenant.id, user.id, t0).await.expect("list");
    let ending: Vec<SessionId> = live.iter().map(|s| s.id).filter(|&s| s != kept.id).collect();
    assert!(ending.contains(&gone.id));
    write.ending_sessions = &ending;
    store.update_user(write).await.expect("password change");
    assert_eq!(find_in(gone.id).await, None);
    assert!(find_in(kept.id).await.is_some());

    // Deletion, by the user and by the purge.
    assert!(store.delete_user(tenant.id, user.id, &[]).await.expect("delete"));
    assert_eq!(find_in(kept.id).await, None);
    let mut leaving = person(tenant.id, "vic@example.com", "vic");
    leaving.deletion_due_at = Some(t0);
    insert(&store, &leaving).await;
    let last = start_session(&store, &leaving, "vic-1").await;
    assert!(store.find_user_for_session(tenant.id, leaving.id, last.id, t0).await.expect("find").is_some());
    assert_eq!(store.purge_due_users(t0, 10, &erased_event).await.expect("purge").len(), 1);
    assert_eq!(store.find_user_for_session(tenant.id, leaving.id, last.id, t0).await.expect("find"), None);

    // A service account, deleted with its client.
    let bot = person(tenant.id, "bot@example.com", "bot");
    let empty = Map::new();
    let new = NewUser { user: &bot, password_hash: None, secure_metadata: &empty, new_image: None, records: &[] };
    store
        .insert_oauth_client(&oauth_client(tenant.id, "tsr_ci_bot", Some(bot.id)), Some("h"), Some(new))
        .await
        .expect("client");
    let bots = start_session(&store, &bot, "bot-1").await;
    assert!(store.find_user_for_session(tenant.id, bot.id, bots.id, t0).await.expect("find").is_some());
    assert!(store.delete_oauth_client(tenant.id, "tsr_ci_bot").await.expect("delete client"));
    assert_eq!(store.find_user_for_session(tenant.id, bot.id, bots.id, t0).await.expect("find"), None);
}

/// Many session reads at once (on PostgreSQL they are answered together, by one statement):
/// each must get exactly what a read on its own gets, whatever the others in its statement
/// asked: a live session, a revoked one, another tenant's id, a clock past the expiry.
async fn concurrent_session_reads_each_get_their_own_answer(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let elsewhere = new_tenant(&store).await;
    let t0 = now();
    let mut asks = Vec::new();
    for i in 0..16 {
        let user = insert_person(&store, tenant.id, &format!("p{i}@example.com"), &format!("p{i}")).await;
        let live = start_session(&store, &user, &format!("p{i}-live")).await;
        let gone = start_session(&store, &user, &format!("p{i}-gone")).await;
        assert!(store.revoke_session(tenant.id, user.id, gone.id, t0, &[]).await.expect("revoke"));
        asks.push((tenant.id, user.id, live.id, t0, true));
        asks.push((tenant.id, user.id, gone.id, t0, false));
        asks.push((elsewhere.id, user.id, live.id, t0, false));
        asks.push((tenant.id, user.id, live.id, live.expires_at, false));
    }
    let reads: Vec<_> = asks
        .iter()
        .map(|&(t, u, s, at, _)| {
            let store = store.clone();
            tokio::spawn(async move { store.find_user_for_session(t, u, s, at).await.expect("find") })
        })
        .collect();
    for (read, &(t, u, s, at, live)) in reads.into_iter().zip(&asks) {
        let together = read.await.expect("read task");
        assert_eq!(together.as_ref().map(|user| (user.id, user.active_sessions)), live.then_some((u, 1)));
        assert_eq!(together, store.find_user_for_session(t, u, s, at).await.expect("find alone"));
    }
}

/// A request is cancelled when its client hangs up, which drops the store call it was
/// awaiting. A write that had begun must still finish whole, and be seen by the next read of
/// the user (on SQLite, answered from memory unless the write outdated it after its commit).
async fn a_write_whose_caller_stops_waiting_finishes_and_is_seen(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let team = new_team(&store, tenant.id, "Crew").await;
    let user = insert_person(&store, tenant.id, "wes@example.com", "wes").await;
    let session = start_session(&store, &user, "wes-1").await;
    let read = || async {
        store.find_user_for_session(tenant.id, user.id, session.id, now()).await.expect("find").expect("live")
    };
    // Each round is a race (the write may also finish within the one poll it gets), so many.
    for _ in 0..32 {
        store.add_member(tenant.id, team.id, user.id, now(), &[]).await.expect("add member");
        let current = read().await;
        let mut selecting = next_version(&current);
        selecting.profile.selected_team_id = Some(team.id);
        update(&store, &selecting, current.version).await;
        assert_eq!(read().await.profile.selected_team_id, Some(team.id));

        // Polled once, so the write has begun, then dropped. The cached copy lives 60 s in
        // this harness, so a change seen within 10 s was outdated by the write itself.
        let leaving = store.remove_member(tenant.id, team.id, user.id, now(), &[]);
        let _ = tokio::time::timeout(std::time::Duration::ZERO, leaving).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while read().await.profile.selected_team_id.is_some() {
            assert!(std::time::Instant::now() < deadline, "the removal was never seen");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(store.list_user_teams(tenant.id, user.id).await.expect("list").is_empty());
    }
}

async fn user_write_revoking_sessions_keeps_only_the_excepted_one(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "tess@example.com", "tess").await;
    let bystander = insert_person(&store, tenant.id, "uma@example.com", "uma").await;
    let keep = start_session(&store, &user, "tess-1").await;
    let drop_a = start_session(&store, &user, "tess-2").await;
    let drop_b = start_session(&store, &user, "tess-3").await;
    let theirs = start_session(&store, &bystander, "uma-1").await;

    let mut next = next_version(&user);
    next.has_password = true;
    // The revocation ends the sessions the caller listed (and wrote records for), or none: a
    // live session missing from the list makes the write stale, and it changes nothing.
    let missing_one = UserWrite {
        password_hash: Some("new-hash"),
        revoke_sessions: Some(RevokeSessions { except: Some(keep.id) }),
        ending_sessions: &[drop_a.id],
        ..UserWrite::new(&next, user.version, now())
    };
    assert!(matches!(store.update_user(missing_one).await, Err(StoreError::Stale)));
    assert_eq!(store.list_sessions(tenant.id, user.id, now()).await.expect("list").len(), 3);
    assert_eq!(find(&store, &user).await.version, user.version);
    let write = UserWrite {
        password_hash: Some("new-hash"),
        revoke_sessions: Some(RevokeSessions { except: Some(keep.id) }),
        ending_sessions: &[drop_a.id, drop_b.id],
        ..UserWrite::new(&next, user.version, now())
    };
    store.update_user(write).await.expect("change password");

    let t = now();
    let live: Vec<SessionId> =
        store.list_sessions(tenant.id, user.id, t).await.expect("list").iter().map(|s| s.id).collect();
    assert_eq!(live, vec![keep.id]);
    for gone in [&drop_a, &drop_b] {
        assert_eq!(store.find_user_for_session(tenant.id, user.id, gone.id, t).await.expect("find"), None);
    }
    assert!(store.find_user_for_session(tenant.id, user.id, keep.id, t).await.expect("find").is_some());
    assert!(store.find_user_for_session(tenant.id, bystander.id, theirs.id, t).await.expect("find").is_some());
    assert_eq!(find(&store, &user).await.active_sessions, 1);

    // Without an exception every session of the user ends.
    let last = next_version(&next);
    store
        .update_user(UserWrite {
            revoke_sessions: Some(RevokeSessions { except: None }),
            ending_sessions: &[keep.id],
            ..UserWrite::new(&last, next.version, now())
        })
        .await
        .expect("revoke all");
    assert!(store.list_sessions(tenant.id, user.id, now()).await.expect("list").is_empty());
    assert_eq!(store.list_sessions(tenant.id, bystander.id, now()).await.expect("list").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Stories: refresh tokens.
// ---------------------------------------------------------------------------------------------

async fn refresh_token_rotates_once_and_its_reuse_revokes_the_session(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "vic@example.com", "vic").await;
    let session = start_session(&store, &user, "rt-1").await;

    let t1 = now() + Duration::minutes(1);
    let after = rotated(store.rotate_refresh_token("rt-1", "rt-2", t1).await.expect("rotate"));
    assert_eq!(after.id, session.id);
    assert_eq!(after.last_refreshed_at, t1);
    assert_eq!(store.find_session_by_refresh("rt-2", t1).await.expect("find").map(|s| s.last_refreshed_at), Some(t1));

    // The next token rotates in turn.
    let t2 = t1 + Duration::minutes(1);
    assert_eq!(rotated(store.rotate_refresh_token("rt-2", "rt-3", t2).await.expect("rotate")).id, session.id);

    // Presenting a used token again is reuse: the whole session ends.
    let t3 = t2 + Duration::minutes(1);
    assert!(matches!(store.rotate_refresh_token("rt-1", "rt-x", t3).await.expect("rotate"), Rotation::Reused));
    assert_eq!(store.find_user_for_session(tenant.id, user.id, session.id, t3).await.expect("find"), None);
    assert!(store.list_sessions(tenant.id, user.id, t3).await.expect("list").is_empty());
    assert_eq!(store.find_session_by_refresh("rt-3", t3).await.expect("find"), None);
    // Even the session's current token no longer rotates.
    assert!(matches!(store.rotate_refresh_token("rt-3", "rt-4", t3).await.expect("rotate"), Rotation::Invalid));
}

async fn unknown_refresh_token_is_invalid_and_changes_nothing(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "wes@example.com", "wes").await;
    let session = start_session(&store, &user, "wes-refresh").await;

    assert!(matches!(
        store.rotate_refresh_token("no-such-token", "next", now()).await.expect("rotate"),
        Rotation::Invalid
    ));
    assert_eq!(store.find_session_by_refresh("no-such-token", now()).await.expect("find"), None);
    assert_eq!(store.find_session_by_refresh("next", now()).await.expect("find"), None, "no token was issued");
    assert_eq!(store.list_sessions(tenant.id, user.id, now()).await.expect("list"), vec![session]);
}

async fn refresh_token_of_an_expired_session_is_invalid(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "xia@example.com", "xia").await;
    let session = session_for(&user, now(), Duration::hours(1));
    store.insert_session(&session, "xia-refresh", &[]).await.expect("insert session");
    assert!(matches!(
        store.rotate_refresh_token("xia-refresh", "next", session.expires_at).await.expect("rotate"),
        Rotation::Invalid
    ));
    assert_eq!(
        store.find_session_by_refresh("next", session.created_at).await.expect("find"),
        None,
        "no token was issued"
    );
}

async fn find_session_by_refresh_finds_the_live_session_without_using_the_token(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "yan@example.com", "yan").await;
    let session = session_for(&user, now(), Duration::hours(1));
    store.insert_session(&session, "yan-refresh", &[]).await.expect("insert session");

    for _ in 0..2 {
        assert_eq!(
            store.find_session_by_refresh("yan-refresh", session.created_at).await.expect("find").as_ref(),
            Some(&session)
        );
    }
    assert_eq!(store.find_session_by_refresh("yan-refresh", session.expires_at).await.expect("find"), None, "expired");
    // Looking the token up did not use it.
    let t1 = session.created_at + Duration::minutes(1);
    rotated(store.rotate_refresh_token("yan-refresh", "yan-2", t1).await.expect("rotate"));

    assert!(store.revoke_session(tenant.id, user.id, session.id, t1, &[]).await.expect("revoke"));
    assert_eq!(store.find_session_by_refresh("yan-2", t1).await.expect("find"), None, "revoked");
}

async fn concurrent_rotations_of_one_token_rotate_exactly_once(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "zed@example.com", "zed").await;
    // Several rounds, because a race that is lost only sometimes is still a race.
    for round in 0..8 {
        let old = format!("race-{round}");
        let session = start_session(&store, &user, &old).await;
        let (new_a, new_b) = (format!("{old}-a"), format!("{old}-b"));
        let t = now();
        let (a, b) =
            tokio::join!(store.rotate_refresh_token(&old, &new_a, t), store.rotate_refresh_token(&old, &new_b, t));
        let outcomes = [a.expect("rotate a"), b.expect("rotate b")];
        let winners = outcomes.iter().filter(|o| matches!(o, Rotation::Rotated(_))).count();
        let reused = outcomes.iter().filter(|o| matches!(o, Rotation::Reused)).count();
        assert_eq!((winners, reused), (1, 1), "round {round}: {outcomes:?}");
        // The loser is a reuse, so the session it belonged to is revoked.
        assert_eq!(store.find_user_for_session(tenant.id, user.id, session.id, t).await.expect("find"), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Stories: images.
// ---------------------------------------------------------------------------------------------

fn stored_avatar(hash: &str) -> Option<Avatar> {
    Some(Avatar::Stored { hash: hash.to_owned(), kind: ImageKind::Png })
}

async fn images_are_stored_content_addressed_with_the_user_write(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let png = b"\x89PNG\r\n\x1a\n\0\0binary".as_slice();

    let mut first = person(tenant.id, "abe@example.com", "abe");
    first.profile.avatar = stored_avatar("sha256-one");
    let one = ImageBlob { hash: "sha256-one", content_type: "image/png", bytes: png };
    try_insert(&store, &first, Some(one)).await.expect("insert user with image");
    assert_eq!(store.find_image("sha256-one").await.expect("find"), Some(("image/png".to_owned(), png.to_vec())));
    assert_eq!(find(&store, &first).await, first);

    // The same content stored again by another user is the same image, not a conflict.
    let mut second = person(tenant.id, "bea@example.com", "bea");
    second.profile.avatar = stored_avatar("sha256-one");
    try_insert(&store, &second, Some(one)).await.expect("insert user with the same image");

    // An update stores its new image with the user.
    let mut next = next_version(&second);
    next.profile.avatar = stored_avatar("sha256-two");
    store
        .update_user(UserWrite {
            new_image: Some(ImageBlob { hash: "sha256-two", content_type: "image/webp", bytes: b"RIFF-webp" }),
            ..UserWrite::new(&next, second.version, now())
        })
        .await
        .expect("update avatar");
    assert_eq!(
        store.find_image("sha256-two").await.expect("find"),
        Some(("image/webp".to_owned(), b"RIFF-webp".to_vec()))
    );
    assert_eq!(find(&store, &second).await, next);
    assert_eq!(store.find_image("sha256-missing").await.expect("find"), None);
}

async fn delete_unreferenced_images_removes_only_images_no_user_refers_to(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let blob = |hash| ImageBlob { hash, content_type: "image/png", bytes: b"png" };

    let mut shared_a = person(tenant.id, "cal@example.com", "cal");
    shared_a.profile.avatar = stored_avatar("shared");
    let mut shared_b = person(tenant.id, "dot@example.com", "dot");
    shared_b.profile.avatar = stored_avatar("shared");
    let mut changing = person(tenant.id, "eli@example.com", "eli");
    changing.profile.avatar = stored_avatar("old");
    for (user, hash) in [(&shared_a, "shared"), (&shared_b, "shared"), (&changing, "old")] {
        try_insert(&store, user, Some(blob(hash))).await.expect("insert user with image");
    }
    let mut next = next_version(&changing);
    next.profile.avatar = stored_avatar("new");
    store
        .update_user(UserWrite { new_image: Some(blob("new")), ..UserWrite::new(&next, changing.version, now()) })
        .await
        .expect("replace avatar");
    assert!(store.delete_user(tenant.id, shared_a.id, &[]).await.expect("delete one of two users sharing an image"));

    assert_eq!(store.delete_unreferenced_images().await.expect("collect"), 1);
    assert_eq!(store.find_image("old").await.expect("find"), None, "the replaced avatar is gone");
    assert!(store.find_image("shared").await.expect("find").is_some(), "still used by the other user");
    assert!(store.find_image("new").await.expect("find").is_some());
    assert_eq!(store.delete_unreferenced_images().await.expect("collect again"), 0);

    // A user whose avatar becomes a URL lets the stored image go.
    let mut by_url = next_version(&next);
    by_url.profile.avatar = Some(Avatar::Url { url: "https://img.example.com/eli.png".to_owned() });
    update(&store, &by_url, next.version).await;
    assert_eq!(store.delete_unreferenced_images().await.expect("collect"), 1);
    assert_eq!(store.find_image("new").await.expect("find"), None);
}

// ---------------------------------------------------------------------------------------------
// Stories: scheduled deletion.
// ---------------------------------------------------------------------------------------------

async fn purge_erases_only_users_whose_deletion_is_due_and_their_sessions(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let other_tenant = new_tenant(&store).await;
    let t0 = now();
    let with_due = |tenant: TenantId, email: &str, due: Option<DateTime<Utc>>| {
        let mut user = person(tenant, email, email.split('@').next().unwrap_or(email));
        user.deletion_due_at = due;
        user
    };
    let overdue = with_due(tenant.id, "fin@example.com", Some(t0 - Duration::seconds(1)));
    let due_now = with_due(other_tenant.id, "gil@example.com", Some(t0));
    let not_yet = with_due(tenant.id, "hub@example.com", Some(t0 + Duration::hours(1)));
    let never = with_due(tenant.id, "ivy@example.com", None);
    for user in [&overdue, &due_now, &not_yet, &never] {
        insert(&store, user).await;
    }
    let doomed_session = start_session(&store, &overdue, "fin-refresh").await;
    start_session(&store, &not_yet, "hub-refresh").await;

    // The limit bounds each batch.
    let first_batch = store.purge_due_users(t0, 1, &erased_event).await.expect("purge");
    assert_eq!(first_batch.len(), 1);
    let second_batch = store.purge_due_users(t0, 100, &erased_event).await.expect("purge");
    let purged: BTreeSet<(TenantId, UserId)> = first_batch.into_iter().chain(second_batch).collect();
    assert_eq!(purged, BTreeSet::from([(overdue.tenant_id, overdue.id), (due_now.tenant_id, due_now.id)]));
    assert!(store.purge_due_users(t0, 100, &erased_event).await.expect("purge").is_empty(), "nothing left to purge");

    for gone in [&overdue, &due_now] {
        assert_eq!(store.find_user(gone.tenant_id, gone.id, t0).await.expect("find"), None);
    }
    for kept in [&not_yet, &never] {
        assert!(store.find_user(kept.tenant_id, kept.id, t0).await.expect("find").is_some());
    }
    // The erased user's session went with it; the others' did not.
    assert!(store.list_sessions(tenant.id, overdue.id, t0).await.expect("list").is_empty());
    assert_eq!(store.find_session_by_refresh("fin-refresh", t0).await.expect("find"), None);
    assert!(!store.revoke_session(tenant.id, overdue.id, doomed_session.id, t0, &[]).await.expect("revoke"));
    assert!(matches!(store.rotate_refresh_token("fin-refresh", "next", t0).await.expect("rotate"), Rotation::Invalid));
    assert!(store.find_session_by_refresh("hub-refresh", t0).await.expect("find").is_some());
}

// ---------------------------------------------------------------------------------------------
// Stories: teams.
// ---------------------------------------------------------------------------------------------

async fn team_round_trips_and_is_listed_and_updated_within_its_tenant(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let other = new_tenant(&store).await;
    let mut team = team_in(tenant.id, "Red");
    team.profile_image_url = Some("https://img.example.com/red.png".to_owned());
    team.client_metadata = object(json!({"colour": "red"}));
    team.client_read_only_metadata = object(json!({"tier": 2}));
    team.server_metadata = object(json!({"billing": {"id": "cus_1"}}));
    store.insert_team(&team, &[]).await.expect("insert team");
    let blue = new_team(&store, tenant.id, "Blue").await;
    let foreign = new_team(&store, other.id, "Foreign").await;

    assert_eq!(store.find_team(tenant.id, team.id).await.expect("find").as_ref(), Some(&team));
    assert_eq!(store.find_team(other.id, team.id).await.expect("find"), None, "not visible from another tenant");
    let listed: BTreeSet<TeamId> = store.list_teams(tenant.id).await.expect("list").iter().map(|t| t.id).collect();
    assert_eq!(listed, BTreeSet::from([team.id, blue.id]));
    assert_eq!(store.list_teams(other.id).await.expect("list"), vec![foreign.clone()]);

    let mut renamed = team.clone();
    renamed.display_name = "Crimson".to_owned();
    renamed.profile_image_url = None;
    renamed.server_metadata = Map::new();
    store.update_team(&renamed, &[]).await.expect("update team");
    assert_eq!(store.find_team(tenant.id, team.id).await.expect("find").as_ref(), Some(&renamed));

    let mut missing = renamed.clone();
    missing.id = TeamId::new();
    assert!(matches!(store.update_team(&missing, &[]).await, Err(StoreError::NotFound)));
    let mut hijack = foreign.clone();
    hijack.tenant_id = tenant.id;
    hijack.display_name = "hijacked".to_owned();
    assert!(
        matches!(store.update_team(&hijack, &[]).await, Err(StoreError::NotFound)),
        "a team is updated only within its tenant"
    );
    assert_eq!(store.find_team(other.id, foreign.id).await.expect("find").as_ref(), Some(&foreign));
}

async fn deleting_a_team_clears_it_as_selected_team_and_bumps_those_users_versions(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let team = new_team(&store, tenant.id, "Doomed").await;
    let survivor_team = new_team(&store, tenant.id, "Survivor").await;
    let selecting = insert_person(&store, tenant.id, "jan@example.com", "jan").await;
    let member_only = insert_person(&store, tenant.id, "kai@example.com", "kai").await;
    let elsewhere = insert_person(&store, tenant.id, "lux@example.com", "lux").await;
    for user in [&selecting, &member_only] {
        store.add_member(tenant.id, team.id, user.id, now(), &[]).await.expect("add member");
    }
    store.add_member(tenant.id, survivor_team.id, elsewhere.id, now(), &[]).await.expect("add member");
    let mut selected = next_version(&selecting);
    selected.profile.selected_team_id = Some(team.id);
    update(&store, &selected, selecting.version).await;
    let mut selected_elsewhere = next_version(&elsewhere);
    selected_elsewhere.profile.selected_team_id = Some(survivor_team.id);
    update(&store, &selected_elsewhere, elsewhere.version).await;

    let at = now() + Duration::seconds(5);
    assert!(store.delete_team(tenant.id, team.id, at, &[]).await.expect("delete team"));
    assert!(!store.delete_team(tenant.id, team.id, at, &[]).await.expect("delete again"));

    let after = find(&store, &selecting).await;
    assert_eq!(after.profile.selected_team_id, None);
    assert_eq!(after.version, selected.version + 1, "a cleared selection is a change to the user");
    assert_eq!(after.updated_at, at);
    assert_eq!(find(&store, &member_only).await, member_only, "users who had not selected it are untouched");
    assert_eq!(find(&store, &elsewhere).await, selected_elsewhere);

    assert_eq!(store.find_team(tenant.id, team.id).await.expect("find"), None);
    assert!(store.list_team_members(tenant.id, team.id).await.expect("list").is_empty());
    assert!(store.list_user_teams(tenant.id, member_only.id).await.expect("list").is_empty());
    assert_eq!(store.list_user_teams(tenant.id, elsewhere.id).await.expect("list"), vec![survivor_team]);
    // A writer holding the old version now sees it as stale.
    assert!(matches!(
        store.update_user(UserWrite::new(&next_version(&selected), selected.version, now())).await,
        Err(StoreError::Stale)
    ));
}

async fn delete_team_of_another_tenant_deletes_nothing(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let other = new_tenant(&store).await;
    let team = new_team(&store, tenant.id, "Ours").await;
    assert!(!store.delete_team(other.id, team.id, now(), &[]).await.expect("delete"));
    assert!(store.find_team(tenant.id, team.id).await.expect("find").is_some());
}

async fn add_member_is_idempotent_and_memberships_list_both_ways(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let red = new_team(&store, tenant.id, "Red").await;
    let blue = new_team(&store, tenant.id, "Blue").await;
    let mia = insert_person(&store, tenant.id, "mia@example.com", "mia").await;
    let nia = insert_person(&store, tenant.id, "nia@example.com", "nia").await;
    let loner = insert_person(&store, tenant.id, "oz@example.com", "oz").await;

    store.add_member(tenant.id, red.id, mia.id, now(), &[]).await.expect("add");
    store.add_member(tenant.id, red.id, mia.id, now(), &[]).await.expect("adding again is not an error");
    store.add_member(tenant.id, red.id, nia.id, now(), &[]).await.expect("add");
    store.add_member(tenant.id, blue.id, mia.id, now(), &[]).await.expect("add");

    assert_eq!(store.list_team_members(tenant.id, red.id).await.expect("list"), sorted(vec![mia.id, nia.id]));
    assert_eq!(store.list_team_members(tenant.id, blue.id).await.expect("list"), vec![mia.id]);
    let mut mias_teams = vec![red.clone(), blue.clone()];
    mias_teams.sort_by_key(|t| t.id);
    assert_eq!(store.list_user_teams(tenant.id, mia.id).await.expect("list"), mias_teams);
    assert_eq!(store.list_user_teams(tenant.id, nia.id).await.expect("list"), vec![red.clone()]);
    assert!(store.list_user_teams(tenant.id, loner.id).await.expect("list").is_empty());

    // Membership is not a change to the user.
    assert_eq!(find(&store, &mia).await, mia);
}

async fn add_member_across_tenants_is_not_found(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let other = new_tenant(&store).await;
    let team = new_team(&store, tenant.id, "Ours").await;
    let foreign_team = new_team(&store, other.id, "Theirs").await;
    let user = insert_person(&store, tenant.id, "pia@example.com", "pia").await;
    let foreigner = insert_person(&store, other.id, "quy@example.com", "quy").await;

    for (as_tenant, team_id, user_id) in [
        (tenant.id, team.id, foreigner.id),
        (tenant.id, foreign_team.id, user.id),
        (other.id, team.id, foreigner.id),
        (other.id, foreign_team.id, user.id),
        (tenant.id, TeamId::new(), user.id),
        (tenant.id, team.id, UserId::new()),
    ] {
        let result = store.add_member(as_tenant, team_id, user_id, now(), &[]).await;
        assert!(matches!(result, Err(StoreError::NotFound)), "{team_id:?} + {user_id:?} as {as_tenant:?}: {result:?}");
    }
    assert!(store.list_team_members(tenant.id, team.id).await.expect("list").is_empty());
    assert!(store.list_team_members(other.id, foreign_team.id).await.expect("list").is_empty());
    assert!(store.list_user_teams(other.id, foreigner.id).await.expect("list").is_empty());
}

async fn remove_member_clears_the_selected_team_and_reports_whether_it_removed(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let selected_team = new_team(&store, tenant.id, "Selected").await;
    let other_team = new_team(&store, tenant.id, "Other").await;
    let user = insert_person(&store, tenant.id, "ros@example.com", "ros").await;
    for team in [&selected_team, &other_team] {
        store.add_member(tenant.id, team.id, user.id, now(), &[]).await.expect("add member");
    }
    let mut selecting = next_version(&user);
    selecting.profile.selected_team_id = Some(selected_team.id);
    update(&store, &selecting, user.version).await;

    // Leaving a team that is not the selected one leaves the user as it was.
    assert!(store.remove_member(tenant.id, other_team.id, user.id, now(), &[]).await.expect("remove"));
    assert_eq!(find(&store, &user).await, selecting);
    assert_eq!(store.list_user_teams(tenant.id, user.id).await.expect("list"), vec![selected_team.clone()]);

    let at = now() + Duration::seconds(5);
    assert!(store.remove_member(tenant.id, selected_team.id, user.id, at, &[]).await.expect("remove"));
    let after = find(&store, &user).await;
    assert_eq!(after.profile.selected_team_id, None);
    assert_eq!(after.version, selecting.version + 1);
    assert_eq!(after.updated_at, at);
    assert!(store.list_user_teams(tenant.id, user.id).await.expect("list").is_empty());
    assert!(store.list_team_members(tenant.id, selected_team.id).await.expect("list").is_empty());

    assert!(!store.remove_member(tenant.id, selected_team.id, user.id, at, &[]).await.expect("remove again"));
    assert!(store.find_team(tenant.id, selected_team.id).await.expect("find").is_some(), "the team itself stays");
}

// ---------------------------------------------------------------------------------------------
// Stories: listing users.
// ---------------------------------------------------------------------------------------------

async fn list_users_filters_by_email_username_status_and_flags(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let other = new_tenant(&store).await;
    let mut active = person(tenant.id, "sam@example.com", "Sam");
    active.status = UserStatus::Active;
    let pending = person(tenant.id, "tia@example.com", "tia");
    let mut anonymous = User::new(tenant.id, now());
    anonymous.is_anonymous = true;
    let mut service = User::new(tenant.id, now());
    service.is_service_account = true;
    service.status = UserStatus::Active;
    for user in [&active, &pending, &anonymous, &service] {
        insert(&store, user).await;
    }
    insert_person(&store, other.id, "sam@example.com", "Sam").await;
    start_session(&store, &active, "sam-refresh").await;

    let tenant_id = tenant.id;
    let list = |f: UserFilter| {
        let store = store.clone();
        async move { store.list_users(tenant_id, &f, now()).await.expect("list") }
    };
    let mut expected_active = active.clone();
    expected_active.active_sessions = 1;

    assert_eq!(sorted(ids(&list(filter(100)).await)), sorted(vec![active.id, pending.id, anonymous.id, service.id]));
    assert_eq!(
        list(UserFilter { email: Some("SAM@example.com".to_owned()), ..filter(100) }).await,
        vec![expected_active.clone()]
    );
    assert_eq!(
        list(UserFilter { username: Some("sAM".to_owned()), ..filter(100) }).await,
        vec![expected_active.clone()]
    );
    assert!(list(UserFilter { email: Some("nobody@example.com".to_owned()), ..filter(100) }).await.is_empty());
    assert_eq!(
        sorted(ids(&list(UserFilter { status: Some("active".to_owned()), ..filter(100) }).await)),
        sorted(vec![active.id, service.id])
    );
    assert_eq!(
        sorted(ids(&list(UserFilter { status: Some("pending".to_owned()), ..filter(100) }).await)),
        sorted(vec![pending.id, anonymous.id])
    );
    assert_eq!(ids(&list(UserFilter { is_anonymous: Some(true), ..filter(100) }).await), vec![anonymous.id]);
    assert_eq!(
        sorted(ids(&list(UserFilter { is_anonymous: Some(false), ..filter(100) }).await)),
        sorted(vec![active.id, pending.id, service.id])
    );
    assert_eq!(ids(&list(UserFilter { is_service_account: Some(true), ..filter(100) }).await), vec![service.id]);
    assert_eq!(
        ids(&list(UserFilter { status: Some("active".to_owned()), is_service_account: Some(false), ..filter(100) })
            .await),
        vec![active.id],
        "filters combine"
    );
    assert!(
        list(UserFilter { status: Some("active".to_owned()), is_anonymous: Some(true), ..filter(100) })
            .await
            .is_empty()
    );
}

async fn keyset_pagination_visits_every_user_exactly_once_in_id_order(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let other = new_tenant(&store).await;
    let mut inserted = Vec::new();
    for i in 0..11 {
        // Random (v4) ids, so that id order is not insertion order.
        let mut user = person(tenant.id, &format!("page{i}@example.com"), &format!("page{i}"));
        user.id = UserId(Uuid::new_v4());
        insert(&store, &user).await;
        inserted.push(user.id);
        insert_person(&store, other.id, &format!("page{i}@example.com"), &format!("page{i}")).await;
    }

    let mut visited = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list_users(tenant.id, &UserFilter { after, ..filter(4) }, now()).await.expect("list page");
        assert!(page.len() <= 4, "a page never exceeds its limit");
        pages += 1;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        visited.extend(ids(&page));
        assert!(pages <= 10, "pagination does not terminate: {visited:?}");
    }
    assert_eq!(visited, sorted(inserted), "every user once, in id order");
    assert_eq!(pages, 4, "three full-or-partial pages and one empty page");
}

// ---------------------------------------------------------------------------------------------
// Every story, run against each backend.
// ---------------------------------------------------------------------------------------------

macro_rules! conformance {
    ($($story:ident),+ $(,)?) => {
        /// The stories against SQLite, each on its own database file.
        mod sqlite {
            $(
                #[tokio::test]
                async fn $story() {
                    let db = tessera_testkit::TestDatabase::sqlite();
                    super::$story(crate::harness::open(&db).await).await;
                }
            )+
        }

        /// The stories against PostgreSQL, each on a database of its own, dropped afterwards.
        /// They need `TEST_DATABASE_URL`: without it they are reported as skipped (ignored),
        /// and fail if run anyway.
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL: set TEST_DATABASE_URL and pass --run-ignored all"]
                async fn $story() {
                    let db = tessera_testkit::TestDatabase::postgres().await;
                    let store = crate::harness::open(&db).await;
                    super::$story(store.clone()).await;
                    store.close().await;
                }
            )+
        }
    };
}

fn address(user: &User, email: &str, verified: bool) -> tessera_core::mail::EmailAddress {
    tessera_core::mail::EmailAddress {
        id: Uuid::now_v7(),
        tenant_id: user.tenant_id,
        user_id: user.id,
        email: email.to_owned(),
        verified,
        created_at: now(),
    }
}

fn emails_of(list: &[tessera_core::mail::EmailAddress]) -> Vec<(&str, bool)> {
    list.iter().map(|a| (a.email.as_str(), a.verified)).collect()
}

async fn a_users_addresses_follow_the_primary_and_no_address_has_two_users(store: DynStore) {
    let tenant = new_tenant(&store).await;
    let ann = insert_person(&store, tenant.id, "ann@example.com", "ann").await;
    let bob = insert_person(&store, tenant.id, "bob@example.com", "bob").await;
    let listed = store.list_emails(tenant.id, ann.id).await.expect("list");
    assert_eq!(emails_of(&listed), [("ann@example.com", false)], "the primary is one of the addresses");

    store.insert_email(&address(&bob, "extra@example.com", true), &[]).await.expect("add");
    assert_conflict(store.insert_email(&address(&ann, "EXTRA@example.com", false), &[]).await, constraints::USER_EMAIL);
    assert_conflict(store.insert_email(&address(&ann, "bob@example.com", false), &[]).await, constraints::USER_EMAIL);

    // A primary that is another user's other address is refused, and nothing changes.
    let mut taken = next_version(&ann);
    taken.primary_email = Some("extra@example.com".to_owned());
    assert_conflict(store.update_user(UserWrite::between(&ann, &taken, now())).await, constraints::USER_EMAIL);
    assert_eq!(find(&store, &ann).await, ann);

    // A new primary replaces the old one among the addresses, and frees it.
    let mut moved = next_version(&ann);
    moved.primary_email = Some("ann2@example.com".to_owned());
    moved.primary_email_verified = true;
    store.update_user(UserWrite::between(&ann, &moved, now())).await.expect("update user");
    let listed = store.list_emails(tenant.id, ann.id).await.expect("list");
    assert_eq!(emails_of(&listed), [("ann2@example.com", true)]);
    store.insert_email(&address(&bob, "ann@example.com", false), &[]).await.expect("the old address is free");

    // One that is kept stays as another address; only the user's others can be removed.
    let mut switched = next_version(&moved);
    switched.primary_email = Some("ann3@example.com".to_owned());
    switched.primary_email_verified = false;
    let write = UserWrite {
        addresses: Some(tessera_store::AddressSync { before: Some("ann2@example.com"), keep_before: true }),
        ..UserWrite::new(&switched, moved.version, now())
    };
    store.update_user(write).await.expect("update user");
    let listed = store.list_emails(tenant.id, ann.id).await.expect("list");
    assert_eq!(emails_of(&listed), [("ann2@example.com", true), ("ann3@example.com", false)]);
    let primary_id = listed[1].id;
    assert!(!store.delete_email(tenant.id, ann.id, primary_id, &[]).await.expect("delete"), "not the primary");
    assert!(store.delete_email(tenant.id, ann.id, listed[0].id, &[]).await.expect("delete"));
    assert!(!store.delete_email(tenant.id, bob.id, listed[0].id, &[]).await.expect("delete"), "nor another's");

    // Erasing a user frees every address it had.
    assert!(store.delete_user(tenant.id, bob.id, &[]).await.expect("delete"));
    store.insert_email(&address(&ann, "extra@example.com", false), &[]).await.expect("freed by the erasure");
}

fn letter(
    user: &User,
    purpose: tessera_core::mail::TokenPurpose,
    expires_at: DateTime<Utc>,
) -> tessera_core::mail::Mail {
    let id = Uuid::now_v7();
    tessera_core::mail::Mail {
        id,
        tenant_id: user.tenant_id,
        to: user.primary_email.clone().unwrap_or_default(),
        subject: "subject".into(),
        text: "text".into(),
        html: "<p>html</p>".into(),
        token: Some(tessera_core::mail::MailToken {
            hash: format!("hash-{id}"),
            tenant_id: user.tenant_id,
            user_id: user.id,
            purpose,
            email: user.primary_email.clone().unwrap_or_default(),
            expires_at,
            created_at: now(),
        }),
        created_at: now(),
    }
}

async fn a_mailed_token_is_used_once_with_its_write_and_never_after_it_expires(store: DynStore) {
    use tessera_core::events::Record;
    use tessera_core::mail::TokenPurpose;
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "tia@example.com", "tia").await;
    let mail = letter(&user, TokenPurpose::ResetPassword, now() + Duration::minutes(30));
    let hash = mail.token.as_ref().expect("a token").hash.clone();
    store.insert_records(&[Record::Mail(mail)]).await.expect("queue");

    let found = store.find_mail_token(&hash, now()).await.expect("find").expect("usable now");
    assert_eq!((found.user_id, found.purpose), (user.id, TokenPurpose::ResetPassword));
    assert!(store.find_mail_token(&hash, now() + Duration::minutes(31)).await.expect("find").is_none(), "expired");

    let next = next_version(&user);
    let write =
        UserWrite { use_token: Some(&hash), password_hash: Some("new"), ..UserWrite::new(&next, user.version, now()) };
    store.update_user(write).await.expect("the first use");
    assert!(store.find_mail_token(&hash, now()).await.expect("find").is_none(), "used");
    let again = next_version(&next);
    let write = UserWrite {
        use_token: Some(&hash),
        password_hash: Some("other"),
        ..UserWrite::new(&again, next.version, now())
    };
    assert_conflict(store.update_user(write).await, constraints::MAIL_TOKEN);
    assert_eq!(find(&store, &user).await.version, next.version, "the second write did not happen");
    assert_eq!(store.find_password_hash(tenant.id, user.id).await.expect("hash").as_deref(), Some("new"));
}

async fn queued_mail_is_claimed_by_one_worker_at_a_time_until_it_is_sent(store: DynStore) {
    use tessera_core::events::Record;
    let tenant = new_tenant(&store).await;
    let user = insert_person(&store, tenant.id, "una@example.com", "una").await;
    let records: Vec<Record> = (0..3)
        .map(|_| Record::Mail(letter(&user, tessera_core::mail::TokenPurpose::VerifyEmail, now() + Duration::days(1))))
        .collect();
    store.insert_records(&records).await.expect("queue");
    assert_eq!(store.pending_mail().await.expect("count"), 3);

    let t0 = now();
    let lease = t0 + Duration::seconds(45);
    let claimed = store.claim_mail(10, t0, lease).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|m| m.attempt == 1 && m.text == "text" && m.to == "una@example.com"));
    assert!(store.claim_mail(10, t0, lease).await.expect("claim").is_empty(), "leased to the first worker");

    let at = t0 + Duration::seconds(1);
    let outcome = |m: &tessera_core::mail::DueMail, sent: bool| tessera_store::MailOutcome {
        id: m.id,
        done: sent,
        sent,
        error: (!sent).then(|| "refused".to_owned()),
        at,
        next_attempt_at: (!sent).then(|| at + Duration::seconds(10)),
    };
    let outcomes = vec![outcome(&claimed[0], true), outcome(&claimed[1], true), outcome(&claimed[2], false)];
    store.record_mail(&outcomes).await.expect("record");
    assert_eq!(store.pending_mail().await.expect("count"), 1);
    assert!(store.claim_mail(10, at + Duration::seconds(5), lease).await.expect("claim").is_empty(), "not due yet");
    let retried = store.claim_mail(10, at + Duration::seconds(10), lease).await.expect("claim");
    assert_eq!((retried.len(), retried[0].id, retried[0].attempt), (1, claimed[2].id, 2));

    // Sent messages are forgotten after their retention; the pending one is kept.
    assert_eq!(store.purge_mail(now() + Duration::days(8)).await.expect("purge"), 2);
    assert_eq!(store.pending_mail().await.expect("count"), 1);
}

conformance! {
    a_users_addresses_follow_the_primary_and_no_address_has_two_users,
    a_mailed_token_is_used_once_with_its_write_and_never_after_it_expires,
    queued_mail_is_claimed_by_one_worker_at_a_time_until_it_is_sent,
    concurrent_user_writes_commit_or_fail_each_on_its_own,
    moving_the_activity_inbox_takes_every_entry_however_many,
    recovery_codes_are_replaced_whole_and_each_used_once,
    a_service_account_is_stored_with_its_credentials_atomically,
    oauth_clients_are_listed_per_tenant_and_deleted_with_their_service_user,
    an_authorization_code_is_redeemed_once_and_its_replay_revokes_the_session,
    an_expired_authorization_code_is_invalid_and_purged,
    concurrent_redemptions_of_one_code_redeem_exactly_once,
    tenant_policies_are_replaced_whole_and_kept_per_tenant,
    migrating_twice_is_harmless_and_the_store_answers_ping,
    instance_value_is_stored_once_and_never_overwritten,
    signing_keys_are_listed_oldest_first_and_retired_once,
    tenant_is_found_by_id_server_key_hash_and_publishable_key,
    tenants_are_listed_and_name_and_settings_updates_persist,
    tenant_keys_are_unique_across_tenants,
    user_round_trips_every_field,
    email_is_unique_per_tenant_ignoring_case,
    username_is_unique_per_tenant_ignoring_case,
    same_email_and_username_are_allowed_in_another_tenant,
    update_to_a_taken_email_or_username_is_a_conflict_and_changes_nothing,
    find_user_of_another_tenant_returns_none,
    update_with_expected_version_succeeds,
    update_with_stale_version_is_rejected_and_changes_nothing,
    update_of_a_missing_user_is_not_found,
    update_requiring_membership_of_a_team_the_user_is_not_in_is_a_conflict_and_writes_nothing,
    update_requiring_membership_of_a_team_the_user_is_in_succeeds,
    secure_metadata_is_readable_only_through_find_secure_metadata,
    password_hash_is_set_by_a_write_and_kept_when_a_write_has_none,
    credentials_are_found_by_email_or_username_ignoring_case,
    delete_user_removes_the_user_and_reports_whether_it_existed,
    live_sessions_are_listed_newest_first_and_counted_on_the_user,
    find_user_for_session_returns_none_after_revocation_expiry_or_for_anothers_session,
    every_write_a_session_read_depends_on_is_seen_by_the_next_read,
    a_write_whose_caller_stops_waiting_finishes_and_is_seen,
    concurrent_session_reads_each_get_their_own_answer,
    user_write_revoking_sessions_keeps_only_the_excepted_one,
    refresh_token_rotates_once_and_its_reuse_revokes_the_session,
    unknown_refresh_token_is_invalid_and_changes_nothing,
    refresh_token_of_an_expired_session_is_invalid,
    find_session_by_refresh_finds_the_live_session_without_using_the_token,
    concurrent_rotations_of_one_token_rotate_exactly_once,
    images_are_stored_content_addressed_with_the_user_write,
    delete_unreferenced_images_removes_only_images_no_user_refers_to,
    purge_erases_only_users_whose_deletion_is_due_and_their_sessions,
    team_round_trips_and_is_listed_and_updated_within_its_tenant,
    deleting_a_team_clears_it_as_selected_team_and_bumps_those_users_versions,
    delete_team_of_another_tenant_deletes_nothing,
    add_member_is_idempotent_and_memberships_list_both_ways,
    add_member_across_tenants_is_not_found,
    remove_member_clears_the_selected_team_and_reports_whether_it_removed,
    list_users_filters_by_email_username_status_and_flags,
    keyset_pagination_visits_every_user_exactly_once_in_id_order,
}
