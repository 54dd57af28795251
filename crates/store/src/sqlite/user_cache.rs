//! SQLite on a file: the users `find_user_for_session` has just read, kept for their session's
//! next request.
//!
//! `GET /me` is one indexed read, and on SQLite most of that read is not the lookup but the
//! read transaction around it (the shared lock, the WAL snapshot check) and decoding the row
//! (BENCHMARKS.md, "the GET /me profile"). A user read for a session is therefore kept here,
//! and served again while nothing can have changed it:
//!
//! - **No write in this process has touched the user since.** Every `Store` write that changes
//!   what `find_user_for_session` returns (the user's row, or any of their sessions, which the
//!   row's `active_sessions` counts) bumps the user's stamp after its commit and before it
//!   returns: the writer thread does it for the writes it commits (`writer.rs`), the other
//!   writes hold a [`Touching`] guard whose drop does it. An entry keeps the stamp read
//!   *before* its row was read, so a write that commits during the read outdates it too.
//!   Stamps are striped by user id: a bump outdates the users of one stripe, and a write that
//!   touches users it cannot name (deleting a team, a replayed code) bumps every stripe.
//! - **No session of the user has expired since** (`valid_until`: the earliest expiry among
//!   their live sessions, this one included), measured on the service's clock.
//! - **It is younger than `max_age`.** That bounds how long a write made by another process on
//!   the same file (the `tessera user …` commands while `tessera serve` runs) goes unseen.
//!
//! A user's own change (`PATCH /me`) does not empty their session's entry but replaces it with
//! the user the write committed ([`UserCache::touch_keeping`]), so the session's next request
//! (the next `PATCH`, or the `GET` after it) needs no read either. The entry must still have
//! been current when the write's bump came, and hold the version the write started from; the
//! committed row is then exactly what a read would return.
//!
//! PostgreSQL has no such cache: several instances share it, and none could see another's
//! writes at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tessera_core::user::User;
use tessera_core::{SessionId, TenantId, UserId};

use crate::sql::Touch;

/// Stripes of stamps; a power of two. A write outdates 1/STRIPES of the cached users.
const STRIPES: usize = 1024;
/// Shards of the map, so that two request threads rarely share a lock.
const SHARDS: usize = 16;
/// Entries per shard. 16 × 1024 users at a few hundred bytes each is a few MB.
const SHARD_CAPACITY: usize = 1024;

pub(crate) struct UserCache {
    max_age: Duration,
    stamps: Box<[AtomicU64]>,
    shards: Box<[RwLock<HashMap<SessionId, Entry>>]>,
}

struct Entry {
    user: User,
    stamp: u64,
    valid_until_ms: i64,
    read_at: Instant,
}

/// A user a write committed through one of their sessions, to keep for that session's next
/// read instead of reading it again ([`UserCache::touch_keeping`]).
pub(crate) struct Kept {
    pub session: SessionId,
    /// The version the write replaced.
    pub from_version: i64,
    pub user: User,
}

/// Held across a write; outdates what it touched when dropped (after the commit).
pub(crate) struct Touching<'a> {
    cache: Option<&'a UserCache>,
    what: Touch,
}

impl Drop for Touching<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache {
            cache.touch(self.what);
        }
    }
}

impl UserCache {
    /// `None` when `max_age` is zero: the cache is off.
    pub(crate) fn new(max_age: Duration) -> Option<Self> {
        (!max_age.is_zero()).then(|| Self {
            max_age,
            stamps: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        })
    }

    /// The cached user for `session`, if it belongs to `tenant` and `user` and is still current.
    pub(crate) fn get(&self, tenant: TenantId, user: UserId, session: SessionId, now: DateTime<Utc>) -> Option<User> {
        let shard = self.shard(session).read().unwrap_or_else(PoisonError::into_inner);
        let e = shard.get(&session)?;
        let current = e.user.id == user
            && e.user.tenant_id == tenant
            && e.stamp == self.stamp(user)
            && now.timestamp_millis() < e.valid_until_ms
            && e.read_at.elapsed() < self.max_age;
        current.then(|| e.user.clone())
    }

    /// The user's stamp now: read it before reading the user, and give it to `put`.
    pub(crate) fn stamp(&self, user: UserId) -> u64 {
        self.stamps[stripe(user)].load(Ordering::SeqCst)
    }

    /// Keeps `user`, read for `session` after `stamp` was taken, until `valid_until_ms`.
    pub(crate) fn put(&self, session: SessionId, stamp: u64, valid_until_ms: i64, user: &User) {
        let mut shard = self.shard(session).write().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&session) {
            shard.retain(|_, e| e.read_at.elapsed() < self.max_age);
            if shard.len() >= SHARD_CAPACITY {
                // Every entry is young: the working set is larger than the cache. Starting
                // over costs one read per session, and keeps the bound without an LRU list.
                shard.clear();
            }
        }
        shard.insert(session, Entry { user: user.clone(), stamp, valid_until_ms, read_at: Instant::now() });
    }

    pub(crate) fn touching(cache: Option<&UserCache>, what: Touch) -> Touching<'_> {
        Touching { cache, what }
    }

    pub(crate) fn touch(&self, what: Touch) {
        match what {
            Touch::User(user) => {
                self.stamps[stripe(user)].fetch_add(1, Ordering::SeqCst);
            }
            Touch::All => {
                for s in &*self.stamps {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// `touch` for a write that committed `kept.user`: if the entry of the session it was made
    /// through was current until this bump and held the version the write replaced, it holds
    /// the committed user from now on. What the row does not hold (the live sessions, whether
    /// there is a password) stays as the entry had it, since only the row changed.
    pub(crate) fn touch_keeping(&self, kept: Kept) {
        let Kept { session, from_version, mut user } = kept;
        let before = self.stamps[stripe(user.id)].fetch_add(1, Ordering::SeqCst);
        let mut shard = self.shard(session).write().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = shard.get_mut(&session)
            && e.stamp == before
            && e.user.id == user.id
            && e.user.version == from_version
        {
            user.active_sessions = e.user.active_sessions;
            user.has_password = e.user.has_password;
            e.user = user;
            e.stamp = before + 1;
        }
    }

    fn shard(&self, session: SessionId) -> &RwLock<HashMap<SessionId, Entry>> {
        // The low bits of a UUIDv7 are random.
        &self.shards[session.0.as_u128() as usize % SHARDS]
    }
}

fn stripe(user: UserId) -> usize {
    user.0.as_u128() as usize % STRIPES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> UserCache {
        UserCache::new(Duration::from_secs(60)).expect("on")
    }

    /// A cache, the time, and one user with one session.
    fn one_user() -> (UserCache, DateTime<Utc>, User, SessionId) {
        let now = Utc::now();
        (cache(), now, User::new(TenantId::new(), now), SessionId::new())
    }

    #[test]
    fn a_write_to_the_user_outdates_the_entry_and_only_the_users_of_its_stripe() {
        let c = cache();
        let now = Utc::now();
        let (a, b) = (User::new(TenantId::new(), now), User::new(TenantId::new(), now));
        let (sa, sb) = (SessionId::new(), SessionId::new());
        let until = now.timestamp_millis() + 60_000;
        c.put(sa, c.stamp(a.id), until, &a);
        c.put(sb, c.stamp(b.id), until, &b);
        assert!(c.get(a.tenant_id, a.id, sa, now).is_some());
        drop(UserCache::touching(Some(&c), Touch::User(a.id)));
        assert!(c.get(a.tenant_id, a.id, sa, now).is_none(), "a write to a outdates a");
        assert_eq!(c.get(b.tenant_id, b.id, sb, now).is_some(), stripe(a.id) != stripe(b.id));
        drop(UserCache::touching(Some(&c), Touch::All));
        assert!(c.get(b.tenant_id, b.id, sb, now).is_none(), "a write to everyone outdates b");
    }

    #[test]
    fn a_stamp_taken_before_a_concurrent_write_is_already_outdated() {
        let (c, now, u, s) = one_user();
        let stamp = c.stamp(u.id);
        // The write commits and returns while the row (now old) is being read.
        drop(UserCache::touching(Some(&c), Touch::User(u.id)));
        c.put(s, stamp, now.timestamp_millis() + 60_000, &u);
        assert!(c.get(u.tenant_id, u.id, s, now).is_none());
    }

    #[test]
    fn an_entry_ends_with_the_first_session_expiry_and_answers_only_its_own_user() {
        let (c, now, u, s) = one_user();
        c.put(s, c.stamp(u.id), now.timestamp_millis() + 1_000, &u);
        assert!(c.get(u.tenant_id, u.id, s, now).is_some());
        assert!(c.get(u.tenant_id, u.id, s, now + chrono::Duration::seconds(1)).is_none());
        assert!(c.get(u.tenant_id, UserId::new(), s, now).is_none());
        assert!(c.get(TenantId::new(), u.id, s, now).is_none());
    }

    #[test]
    fn a_write_through_the_session_keeps_what_it_committed_only_over_the_version_it_replaced() {
        let (c, now, u, s) = one_user();
        let until = now.timestamp_millis() + 60_000;
        let mut cached = u.clone();
        cached.active_sessions = 2;
        c.put(s, c.stamp(u.id), until, &cached);
        let mut next = u.clone();
        next.version = u.version + 1;
        next.profile.display_name = Some("Kept".into());
        c.touch_keeping(Kept { session: s, from_version: u.version, user: next.clone() });
        let got = c.get(u.tenant_id, u.id, s, now).expect("kept");
        assert_eq!(got.profile.display_name.as_deref(), Some("Kept"));
        assert_eq!((got.version, got.active_sessions), (next.version, 2), "the sessions as the entry had them");

        // Replacing a version the entry does not hold (another write came between) only outdates.
        let mut other = next.clone();
        other.version = next.version + 5;
        c.touch_keeping(Kept { session: s, from_version: u.version, user: other });
        assert!(c.get(u.tenant_id, u.id, s, now).is_none());
    }

    #[test]
    fn a_write_through_the_session_keeps_nothing_over_an_entry_already_outdated() {
        let (c, now, u, s) = one_user();
        c.put(s, c.stamp(u.id), now.timestamp_millis() + 60_000, &u);
        // A session of the user was revoked: the entry's count is stale, and must stay unused.
        c.touch(Touch::User(u.id));
        let mut next = u.clone();
        next.version = u.version + 1;
        c.touch_keeping(Kept { session: s, from_version: u.version, user: next });
        assert!(c.get(u.tenant_id, u.id, s, now).is_none());
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let c = cache();
        let now = Utc::now();
        let u = User::new(TenantId::new(), now);
        for _ in 0..(SHARDS * SHARD_CAPACITY * 3) {
            c.put(SessionId::new(), 0, i64::MAX, &u);
        }
        let held: usize = c.shards.iter().map(|s| s.read().unwrap().len()).sum();
        assert!(held <= SHARDS * SHARD_CAPACITY, "{held} entries");
    }

    #[test]
    fn a_zero_max_age_turns_it_off() {
        assert!(UserCache::new(Duration::ZERO).is_none());
    }
}
