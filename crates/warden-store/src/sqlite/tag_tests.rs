//! The migration that adds the tag table to a SQLite database an older Warden wrote (the
//! tag methods themselves are tested on every backend in `crate::contract`).

use std::collections::BTreeMap;

use super::*;

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_database_without_the_tag_table_is_migrated_and_keeps_its_functions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    {
        // The schema as it was before tags: every migration but the last.
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        for step in &META_MIGRATIONS[..META_MIGRATIONS.len() - 1] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION - 1)
            .unwrap();
        conn.execute(
            "INSERT INTO functions (name, next_version) VALUES ('old', 1)",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let v: i64 = lock(&store.reader)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(store.get_tags(&name("old")).unwrap(), Some(BTreeMap::new()));
    store
        .replace_tags(&name("old"), &tags(&[("k", "v")]))
        .unwrap();
    assert_eq!(
        store.get_tags(&name("old")).unwrap(),
        Some(tags(&[("k", "v")]))
    );
}
