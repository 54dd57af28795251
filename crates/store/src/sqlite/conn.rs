//! rusqlite, for the statements SQLite runs without sqlx (the inline reads and the writer
//! thread): binding `Param`s, reading its rows as `Columns`, running `Steps`, and its errors as
//! the store's.

use std::sync::LazyLock;

use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, Statement, ToSql};

use crate::sql::{OnNone, Param, Steps, conflict_name, impl_columns};
use crate::{Result, StoreError};

impl_columns!(rusqlite::Row<'_>, get, map_err);

/// `steps` in order, each as its `OnNone` says; the caller's transaction (the writer group's
/// savepoint) makes them all or nothing.
pub(crate) fn run_steps(conn: &Connection, steps: Steps) -> Result<u64> {
    let mut events = 0;
    for step in steps {
        let n = if step.is_query {
            usize::from(returns_row(conn, step.sql, &step.params)?)
        } else {
            execute(conn, step.sql, &step.params)?
        };
        if step.writes_event {
            events += n as u64;
        }
        if n == 0 {
            match step.on_none {
                OnNone::GoOn => {}
                OnNone::Fail(error) => return Err(error()),
                OnNone::Ask { sql, params, found, missing } => {
                    return Err(if returns_row(conn, sql, &params)? { found() } else { missing() });
                }
            }
        }
    }
    Ok(events)
}

/// One statement; the rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: &[Param]) -> Result<usize> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    bind(&mut stmt, params)?;
    stmt.raw_execute().map_err(map_err)
}

/// Whether the query returns a row.
pub(crate) fn returns_row(conn: &Connection, sql: &str, params: &[Param]) -> Result<bool> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    bind(&mut stmt, params)?;
    Ok(stmt.raw_query().next().map_err(map_err)?.is_some())
}

/// `$n` placeholders are named parameters to SQLite, numbered by first appearance rather than
/// by `n`; they are bound by name.
pub(crate) fn bind(stmt: &mut Statement<'_>, params: &[Param]) -> Result<()> {
    static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| (1..=32).map(|n| format!("${n}")).collect());
    for (name, param) in NAMES.iter().zip(params) {
        if let Some(index) = stmt.parameter_index(name).map_err(map_err)? {
            stmt.raw_bind_parameter(index, param).map_err(map_err)?;
        }
    }
    Ok(())
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Param::Text(v) => v.to_sql(),
            Param::Int(v) => v.to_sql(),
            Param::Bool(v) => v.to_sql(),
            Param::Bytes(v) => v.to_sql(),
        }
    }
}

/// rusqlite's errors as the store's: a unique violation is a `Conflict`, as sqlx's are.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, message)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict { constraint: conflict_name(message.as_deref().unwrap_or_default()) }
        }
        _ => StoreError::Other(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Step;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, v BIGINT); INSERT INTO t VALUES ('a', 1);").unwrap();
        conn
    }

    /// The versioned UPDATE's shape: zero rows asks whether the row exists.
    fn versioned(id: &str, version: i64) -> Step {
        let why = OnNone::Ask {
            sql: "SELECT 1 FROM t WHERE id = $1",
            params: vec![Param::text(id)],
            found: || StoreError::Stale,
            missing: || StoreError::NotFound,
        };
        Step::change(
            "UPDATE t SET v = $2 + 1 WHERE id = $1 AND v = $2",
            vec![Param::text(id), Param::Int(Some(version))],
            why,
        )
    }

    #[test]
    fn a_change_that_changes_nothing_fails_as_its_question_answers() {
        let conn = table();
        assert!(matches!(run_steps(&conn, vec![versioned("a", 5)]), Err(StoreError::Stale)));
        assert!(matches!(run_steps(&conn, vec![versioned("b", 1)]), Err(StoreError::NotFound)));
        assert!(run_steps(&conn, vec![versioned("a", 1)]).is_ok());
        assert!(run_steps(&conn, vec![versioned("a", 2)]).is_ok(), "the first write moved the version on");
    }

    #[test]
    fn a_required_row_that_is_missing_fails_before_the_steps_after_it() {
        let conn = table();
        let missing = || StoreError::Conflict { constraint: "test" };
        let steps = vec![
            Step::require("SELECT 1 FROM t WHERE id = $1", vec![Param::text("b")], missing),
            Step::execute("DELETE FROM t", vec![]),
        ];
        assert!(matches!(run_steps(&conn, steps), Err(StoreError::Conflict { constraint: "test" })));
        assert!(returns_row(&conn, "SELECT 1 FROM t WHERE id = $1", &[Param::text("a")]).unwrap());
    }
}
