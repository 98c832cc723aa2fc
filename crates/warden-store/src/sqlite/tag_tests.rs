//! Unit tests of the tag methods of [`Store`] on [`SqliteStore`], and of the migration that
//! adds the tag table to a database an older Warden wrote.

use std::collections::BTreeMap;

use super::*;

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

fn latest(function: &str) -> FunctionVersion {
    FunctionVersion {
        name: name(function),
        version: LATEST.to_owned(),
        runtime: "python3.12".to_owned(),
        handler: "app.handler".to_owned(),
        role: "arn:aws:iam::000000000000:role/r".to_owned(),
        description: String::new(),
        timeout_seconds: 3,
        memory_mb: 128,
        ephemeral_storage_mb: 512,
        environment: BTreeMap::new(),
        sealed_environment: None,
        kms_key_arn: None,
        environment_error: None,
        code_sha256: "sha".to_owned(),
        code_size: 10,
        revision_id: "r1".to_owned(),
        last_modified_ms: 1,
        architectures: vec!["x86_64".to_owned()],
        layers: Vec::new(),
        opt_sha256: None,
        logging: Default::default(),
        vpc_config: None,
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn tags_are_created_with_the_function_replaced_and_deleted_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("warden.db")).unwrap();
    assert_eq!(store.get_tags(&name("f")).unwrap(), None);
    store
        .create_tagged_function(&latest("f"), &tags(&[("team", "a"), ("env", "dev")]))
        .unwrap();
    assert_eq!(
        store.get_tags(&name("f")).unwrap(),
        Some(tags(&[("env", "dev"), ("team", "a")]))
    );
    // The name is taken whether or not the first function had tags.
    assert!(matches!(
        store.create_tagged_function(&latest("f"), &BTreeMap::new()),
        Err(StoreError::AlreadyExists(_))
    ));
    store.create_function(&latest("plain")).unwrap();
    assert_eq!(
        store.get_tags(&name("plain")).unwrap(),
        Some(BTreeMap::new())
    );

    store
        .replace_tags(&name("f"), &tags(&[("team", "b")]))
        .unwrap();
    assert_eq!(
        store.get_tags(&name("f")).unwrap(),
        Some(tags(&[("team", "b")]))
    );
    assert!(matches!(
        store.replace_tags(&name("nobody"), &tags(&[("k", "v")])),
        Err(StoreError::NotFound(_))
    ));

    // Deleting the function deletes its tags; a function created later under the same
    // name does not inherit them.
    assert!(store.delete_function(&name("f"), None).unwrap());
    assert_eq!(store.get_tags(&name("f")).unwrap(), None);
    store.create_function(&latest("f")).unwrap();
    assert_eq!(store.get_tags(&name("f")).unwrap(), Some(BTreeMap::new()));
    let rows: i64 = lock(&store.reader)
        .query_row("SELECT count(*) FROM function_tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
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
