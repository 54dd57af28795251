//! Test databases for Tessera's two test suites (the store conformance suite and the
//! integration-test binary): a fresh, empty database per test, on SQLite or on PostgreSQL, gone
//! when the test is over.
//!
//! PostgreSQL is used when `TEST_DATABASE_URL` names an admin database on a server the tests may
//! create databases on (`scripts/pg-test-server` starts one). Tests that exist only for
//! PostgreSQL are marked `#[ignore = …]`, so that a run without a server reports them as
//! skipped; `scripts/test` runs them with `--run-ignored all` in its PostgreSQL half. Such a test
//! run without `TEST_DATABASE_URL` fails ([`TestDatabase::postgres`] panics): it never passes
//! without having tested anything.

use sqlx::Connection;
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL admin database.
pub const POSTGRES_URL_VAR: &str = "TEST_DATABASE_URL";

/// The PostgreSQL admin URL, when the environment configures one.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty())
}

/// A database of its own for one test: its URL, and what removes it afterwards.
pub struct TestDatabase {
    pub url: String,
    place: Place,
}

enum Place {
    /// The file lives in this directory, removed on drop.
    Sqlite(#[allow(dead_code, reason = "held so that the directory outlives the database")] TempDir),
    /// A database on the admin URL's server, dropped on drop.
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// PostgreSQL when `TEST_DATABASE_URL` is set, SQLite otherwise: for the tests that run on
    /// whichever backend the suite is run against.
    pub async fn from_env() -> Self {
        match postgres_admin_url() {
            Some(_) => Self::postgres().await,
            None => Self::sqlite(),
        }
    }

    /// A SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = TempDir::new().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        Self { url, place: Place::Sqlite(dir) }
    }

    /// A new database on the PostgreSQL server of `TEST_DATABASE_URL`.
    ///
    /// # Panics
    /// When `TEST_DATABASE_URL` is not set: a PostgreSQL test must fail, not pass, on a run
    /// that has no server.
    pub async fn postgres() -> Self {
        let Some(admin_url) = postgres_admin_url() else {
            panic!("{POSTGRES_URL_VAR} is not set: this test needs a PostgreSQL server (see scripts/pg-test-server)");
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
        // CREATE DATABASE cannot run inside a transaction, so it is sent on its own.
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create the test database");
        admin.close().await.expect("close the admin connection");
        let url = database_url(&admin_url, &name);
        Self { url, place: Place::Postgres { admin_url, name } }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres { .. })
    }
}

impl Drop for TestDatabase {
    /// Drops a PostgreSQL database, on a thread of its own (drop cannot await, and it may run
    /// inside the test's runtime). `WITH (FORCE)` ends the connections of pools that close
    /// lazily. A failure is reported, never raised: a panic in drop would hide the test's own.
    fn drop(&mut self) {
        let Place::Postgres { admin_url, name } = &self.place else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
                admin.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.url);
        }
    }
}

/// `admin_url` with its database replaced by `database`, keeping any query string.
pub fn database_url(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let server = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_is_replaced_and_the_query_kept() {
        assert_eq!(database_url("postgres://u@h:5/postgres", "t_1"), "postgres://u@h:5/t_1");
        assert_eq!(
            database_url("postgres://u@h:5/postgres?sslmode=disable", "t_1"),
            "postgres://u@h:5/t_1?sslmode=disable"
        );
        assert_eq!(database_url("postgres://u@h:5", "t_1"), "postgres://u@h:5/t_1");
    }
}
