//! The advisory database kept in SQLite (`advisories.db`), so that a server starts with
//! the advisories it had. An update is imported into memory first, then written here in
//! one transaction ([`AdvisoryStore::replace`]): a reader of the file sees the old set or
//! the new one, never a mix, and the server swaps its in-memory [`AdvisoryDb`] without a
//! restart.
//!
//! Each advisory is stored as the JSON record it was imported from, not in a format of
//! ours, so a newer build reading an older file parses what the source said.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::error::store;
use crate::{AdvisoryDb, Error, ImportLimits, ImportReport};

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE advisories (
    id TEXT PRIMARY KEY,
    modified TEXT,
    document TEXT NOT NULL
) STRICT;
"#];

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
