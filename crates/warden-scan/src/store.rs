//! The advisory database kept in SQLite (`advisories.db`), so that a server starts with
//! the advisories it had. An update is imported into memory first, then written here in
//! one transaction ([`AdvisoryStore::replace`]): a reader of the file sees the old set or
//! the new one, never a mix, and the server swaps its in-memory [`AdvisoryDb`] without a
//! restart.
//!
//! The same file keeps the accepted advisories (table `accepted`, one row per advisory
//! and function, `''` standing for every function), at most
//! [`MAX_ACCEPTANCES`](crate::accept::MAX_ACCEPTANCES) of them; importing advisories
//! leaves them alone.
//!
//! Each advisory is stored as the JSON record it was imported from, not in a format of
//! ours, so a newer build reading an older file parses what the source said.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::accept::{format_day, parse_day, Acceptance, MAX_ACCEPTANCES};
use crate::error::store;
use crate::{AdvisoryDb, Error, ImportLimits, ImportReport};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE advisories (
    id TEXT PRIMARY KEY,
    modified TEXT,
    document TEXT NOT NULL
) STRICT;
"#,
    r#"
CREATE TABLE accepted (
    advisory_id TEXT NOT NULL,
    function TEXT NOT NULL,
    until TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (advisory_id, function)
) STRICT;
"#,
];

/// Advisories in a SQLite file.
#[derive(Debug)]
pub struct AdvisoryStore {
    conn: Mutex<Connection>,
}

impl AdvisoryStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<AdvisoryStore, Error> {
        let db = warden_sqlite::open(
            path,
            &warden_sqlite::Options {
                // Advisories can always be imported again: a commit lost to a power cut
                // costs an update, not data.
                synchronous: warden_sqlite::Synchronous::Normal,
                migrations: MIGRATIONS,
                incremental_vacuum: true,
            },
        )
        .map_err(store("opening the advisory store"))?;
        drop(db.reader);
        Ok(AdvisoryStore {
            conn: Mutex::new(db.writer),
        })
    }

    /// Replaces every stored advisory with those of `db`, in one transaction.
    pub fn replace(&self, db: &AdvisoryDb) -> Result<(), Error> {
        let mut conn = warden_sqlite::lock(&self.conn);
        let tx = warden_sqlite::immediate(&mut conn).map_err(store("updating advisories"))?;
        tx.execute("DELETE FROM advisories", [])
            .map_err(store("updating advisories"))?;
        {
            let mut insert = tx
                .prepare("INSERT INTO advisories (id, modified, document) VALUES (?1, ?2, ?3)")
                .map_err(store("updating advisories"))?;
            for advisory in db.iter() {
                insert
                    .execute(params![advisory.id, advisory.modified, advisory.raw])
                    .map_err(store("updating advisories"))?;
            }
        }
        tx.commit().map_err(store("updating advisories"))
    }

    /// Loads every stored advisory through the same checks as an import; a stored record
    /// this build no longer reads is reported under its id, not fatal.
    pub fn load(&self, limits: &ImportLimits) -> Result<(AdvisoryDb, ImportReport), Error> {
        let conn = warden_sqlite::lock(&self.conn);
        let mut stmt = conn
            .prepare("SELECT id, document FROM advisories ORDER BY id")
            .map_err(store("reading advisories"))?;
        let mut rows = stmt.query([]).map_err(store("reading advisories"))?;
        let mut builder = crate::advisory::DbBuilder::new(limits);
        while let Some(row) = rows.next().map_err(store("reading advisories"))? {
            let id: String = row.get(0).map_err(store("reading advisories"))?;
            let document: String = row.get(1).map_err(store("reading advisories"))?;
            builder.add(&id, document.as_bytes())?;
        }
        Ok(builder.finish())
    }
}

impl AdvisoryStore {
    /// Records `acceptance`, replacing one for the same advisory and function. Refused
    /// with [`Error::TooManyAcceptances`] when it would be one more than
    /// [`MAX_ACCEPTANCES`].
    pub fn accept(&self, acceptance: &Acceptance) -> Result<(), Error> {
        const CONTEXT: &str = "accepting an advisory";
        let mut conn = warden_sqlite::lock(&self.conn);
        let tx = warden_sqlite::immediate(&mut conn).map_err(store(CONTEXT))?;
        let function = acceptance.function.as_deref().unwrap_or("");
        let exists: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM accepted WHERE advisory_id = ?1 AND function = ?2",
                params![acceptance.advisory_id, function],
                |r| r.get(0),
            )
            .map_err(store(CONTEXT))?;
        let count: i64 = tx
            .query_row("SELECT COUNT(*) FROM accepted", [], |r| r.get(0))
            .map_err(store(CONTEXT))?;
        if exists == 0 && usize::try_from(count).unwrap_or(usize::MAX) >= MAX_ACCEPTANCES {
            return Err(Error::TooManyAcceptances {
                limit: MAX_ACCEPTANCES,
            });
        }
        tx.execute(
            "INSERT OR REPLACE INTO accepted (advisory_id, function, until, reason) VALUES (?1, ?2, ?3, ?4)",
            params![
                acceptance.advisory_id,
                function,
                format_day(acceptance.until),
                acceptance.reason
            ],
        )
        .map_err(store(CONTEXT))?;
        tx.commit().map_err(store(CONTEXT))
    }

    /// Removes the acceptance of `advisory_id` for `function` (`None`: the one for every
    /// function); whether there was one.
    pub fn revoke(&self, advisory_id: &str, function: Option<&str>) -> Result<bool, Error> {
        let conn = warden_sqlite::lock(&self.conn);
        let removed = conn
            .execute(
                "DELETE FROM accepted WHERE advisory_id = ?1 AND function = ?2",
                params![advisory_id, function.unwrap_or("")],
            )
            .map_err(store("revoking an accepted advisory"))?;
        Ok(removed > 0)
    }

    /// Every acceptance, expired ones included, by advisory then function. A row that no
    /// longer reads as a day is left out with a warning in the result's second list.
    pub fn acceptances(&self) -> Result<(Vec<Acceptance>, Vec<String>), Error> {
        const CONTEXT: &str = "reading accepted advisories";
        let conn = warden_sqlite::lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT advisory_id, function, until, reason FROM accepted ORDER BY advisory_id, function",
            )
            .map_err(store(CONTEXT))?;
        let mut rows = stmt.query([]).map_err(store(CONTEXT))?;
        let (mut out, mut unreadable) = (Vec::new(), Vec::new());
        while let Some(row) = rows.next().map_err(store(CONTEXT))? {
            let advisory_id: String = row.get(0).map_err(store(CONTEXT))?;
            let function: String = row.get(1).map_err(store(CONTEXT))?;
            let until: String = row.get(2).map_err(store(CONTEXT))?;
            let reason: String = row.get(3).map_err(store(CONTEXT))?;
            match parse_day(&until) {
                Ok(until) => out.push(Acceptance {
                    advisory_id,
                    function: (!function.is_empty()).then_some(function),
                    until,
                    reason,
                }),
                Err(_) => unreadable.push(advisory_id),
            }
        }
        Ok((out, unreadable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"id": "A-1", "modified": "2024-01-01T00:00:00Z", "unknown_field": [1],
        "affected": [{"package": {"ecosystem": "npm", "name": "a"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}]}]}"#;
    const B: &str = r#"{"id": "B-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "b"},
        "versions": ["1.0"]}]}"#;

    #[test]
    fn replace_then_load_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("advisories.db");
        let limits = ImportLimits::default();
        let (db, _) =
            AdvisoryDb::import_documents([("a.json", A), ("b.json", B)], &limits).expect("import");
        let store = AdvisoryStore::open(&path).expect("open");
        store.replace(&db).expect("replace");
        drop(store);

        let store = AdvisoryStore::open(&path).expect("reopen");
        let (loaded, report) = store.load(&limits).expect("load");
        assert_eq!(report.loaded, 2);
        assert!(report.malformed.is_empty());
        // The record is kept as imported, fields this build ignores included.
        let raw = loaded.get("A-1").map(|a| a.raw.clone()).expect("A-1");
        assert_eq!(raw, A);

        // An update replaces the whole set.
        let (smaller, _) = AdvisoryDb::import_documents([("b.json", B)], &limits).expect("import");
        store.replace(&smaller).expect("replace");
        let (loaded, _) = store.load(&limits).expect("load");
        let ids: Vec<_> = loaded.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["B-1"]);
    }

    #[test]
    fn acceptances_survive_a_reopen_and_an_import_and_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("advisories.db");
        let today = time::macros::date!(2026 - 12 - 04);
        let store = AdvisoryStore::open(&path).expect("open");
        let all = Acceptance::new("A-1", None, "2026-12-31", "no fix yet", today).expect("ok");
        let one =
            Acceptance::new("A-1", Some("f".into()), "2026-12-10", "f only", today).expect("ok");
        store.accept(&all).expect("accept");
        store.accept(&one).expect("accept");
        let (db, _) =
            AdvisoryDb::import_documents([("b.json", B)], &ImportLimits::default()).expect("db");
        store.replace(&db).expect("replace");
        drop(store);

        let store = AdvisoryStore::open(&path).expect("reopen");
        let (list, unreadable) = store.acceptances().expect("list");
        assert!(unreadable.is_empty());
        assert_eq!(list, vec![all.clone(), one]);
        assert!(store.revoke("A-1", Some("f")).expect("revoke"));
        assert!(!store.revoke("A-1", Some("f")).expect("revoke"));
        assert_eq!(store.acceptances().expect("list").0, vec![all.clone()]);

        // Full: a new acceptance is refused, replacing an existing one is not.
        {
            let mut conn = store.conn.lock().expect("lock");
            let tx = conn.transaction().expect("tx");
            for i in 1..MAX_ACCEPTANCES {
                tx.execute(
                    "INSERT INTO accepted VALUES (?1, '', '2026-12-31', 'r')",
                    params![format!("X-{i}")],
                )
                .expect("insert");
            }
            tx.commit().expect("commit");
        }
        let more = Acceptance::new("B-1", None, "2026-12-31", "r", today).expect("ok");
        assert!(matches!(
            store.accept(&more),
            Err(Error::TooManyAcceptances {
                limit: MAX_ACCEPTANCES
            })
        ));
        store.accept(&all).expect("a replacement fits");
    }

    #[test]
    fn a_stored_record_that_no_longer_reads_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("advisories.db");
        let store = AdvisoryStore::open(&path).expect("open");
        {
            let conn = store.conn.lock().expect("lock");
            conn.execute(
                "INSERT INTO advisories (id, document) VALUES ('BAD-1', '{\"id\": 1}')",
                [],
            )
            .expect("insert");
        }
        let (db, report) = store.load(&ImportLimits::default()).expect("load");
        assert!(db.is_empty());
        assert_eq!(report.malformed[0].path, "BAD-1");
    }
}
