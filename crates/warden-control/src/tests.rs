//! Unit tests of the core over a real SQLite store and blob store in a temporary
//! directory, with a role directory, a caller, a keyring and a code check that record what
//! they are asked: every command emits exactly one change event, a refused command emits
//! none, and the role step, the keyring and the code chain run where they must.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use warden_store::blobs::BlobStore;
use warden_store::{SqliteStore, Store};
use warden_types::change::{Change, ChangeEvent, ChangeObserver};
use warden_types::*;

use crate::commands::*;
use crate::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/exec";

/// Roles `exec` (trusts Lambda) and `untrusted`; names resolve ignoring case.
struct Roles;
impl RoleDirectory for Roles {
    fn canonical_role(&self, arn: &str) -> Option<String> {
        let name = arn.rsplit('/').next()?.to_ascii_lowercase();
        ["exec", "untrusted"]
            .contains(&name.as_str())
            .then(|| format!("arn:aws:iam::123456789012:role/{name}"))
    }
    fn trusts_lambda(&self, canonical_arn: &str) -> bool {
        canonical_arn.ends_with("/exec")
    }
}

/// A caller allowed to pass exactly the roles in `allowed`; records what it was asked.
struct TestCaller {
    allowed: Vec<String>,
    asked: Mutex<Vec<String>>,
}
impl TestCaller {
    fn may(roles: &[&str]) -> Self {
        Self {
            allowed: roles.iter().map(|r| (*r).to_owned()).collect(),
            asked: Mutex::new(Vec::new()),
        }
    }
}
impl Caller for TestCaller {
    fn principal(&self) -> Option<&str> {
        Some("arn:aws:iam::123456789012:user/tester")
    }
    /// Keys in `allowed` too (by ARN); any other is denied.
    fn may_use_key(&self, key_arn: &str) -> Result<(), ControlError> {
        self.asked.lock().unwrap().push(key_arn.to_owned());
        if self.allowed.iter().any(|k| k == key_arn) {
            Ok(())
        } else {
            Err(ControlError::KmsAccessDenied(format!(
                "not allowed {key_arn}"
            )))
        }
    }
    fn may_pass_role(&self, role_arn: &str) -> PassRole {
        self.asked.lock().unwrap().push(role_arn.to_owned());
        if self.allowed.iter().any(|r| r == role_arn) {
            PassRole::Allowed
        } else {
            PassRole::Denied
        }
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<ChangeEvent>>);
impl ChangeObserver for Recorder {
    fn on_change(&self, event: &ChangeEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}
impl Recorder {
    fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .map(|e| e.change)
            .collect()
    }
}

/// Refuses packages holding a file named `forbidden`.
struct NoForbiddenFile;
impl CodeCheck for NoForbiddenFile {
    fn name(&self) -> &'static str {
        "no-forbidden-file"
    }
    fn check(&self, intake: &mut Intake<'_>) -> Result<(), CodeRefusal> {
        match intake.tree() {
            Some(t) if t.join("forbidden").exists() => Err(CodeRefusal::Refused {
                check: "no-forbidden-file",
                message: "the package holds `forbidden`".into(),
            }),
            Some(_) => Ok(()),
            None => Err(CodeRefusal::Internal("not unpacked".into())),
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    kms: warden_kms::Kms,
    control: Control,
    store: Arc<dyn Store>,
    events: Arc<Recorder>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("warden.db")).unwrap());

    let runtimes = warden_runtimes::RuntimeTable::from_entries([
        (
            "provided.al2023".to_owned(),
            warden_runtimes::Availability::Native,
        ),
        (
            "python3.12".to_owned(),
            warden_runtimes::Availability::Missing("no Python 3.12 here".into()),
        ),
    ]);
    let kms = warden_kms::Kms::open(
        dir.path(),
        warden_kms::MasterKey::generate().unwrap(),
        "123456789012",
        "us-east-1",
    )
    .unwrap();
    kms.ensure_aws_managed_keys().unwrap();
    let blobs = Arc::new(
        BlobStore::open(
            &dir.path().join("blobs"),
            &dir.path().join("mem"),
            warden_kms::envelope::CodeSealer::new(kms.clone()),
        )
        .unwrap(),
    );
    let mut seams = Seams::new(
        Arc::new(Roles),
        Arc::new(runtimes),
        warden_kms::envelope::KmsKeyring::new(kms.clone()),
    );
    seams.code_checks.push(Arc::new(NoForbiddenFile));
    let control = Control::new(
        ControlConfig {
            account: AccountId::new("123456789012").unwrap(),
            region: Region::new("us-east-1").unwrap(),
            account_concurrency: 1000,
        },
        Arc::clone(&store),
        blobs,
        seams,
    );
    let events = Arc::new(Recorder::default());
    control.subscribe(events.clone());
    Fixture {
        _dir: dir,
        kms,
        control,
        store,
        events,
    }
}

fn zip(files: &[&str]) -> ZipPackage {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::write(dir.path().join(f), f.as_bytes()).unwrap();
    }
    ZipPackage(warden_package::zip_directory(dir.path(), &mut |_, _| {}).unwrap())
}

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

fn create(n: &str, role: &str) -> CreateFunction {
    CreateFunction {
        name: name(n),
        runtime: Runtime::new("provided.al2023").unwrap(),
        role: RoleArn::new(role).unwrap(),
        handler: None,
        description: Description::default(),
        timeout: Timeout::DEFAULT,
        memory: MemorySize::DEFAULT,
        ephemeral_storage: EphemeralStorage::DEFAULT,
        environment: Environment::new(BTreeMap::from([("TOKEN".into(), "s3cret".into())])).unwrap(),
        architecture: Architecture::host(),
        code: zip(&["bootstrap"]),
        publish: false,
        tags: Tags::new(BTreeMap::from([("team".into(), "a".into())])).unwrap(),
        layers: Vec::new(),
        logging: Default::default(),
        vpc_config: None,
        code_signing_config_arn: None,
        kms_key_arn: None,
    }
}

#[tokio::test]
async fn every_command_emits_exactly_one_event_and_refusals_none() {
    let f = fixture();
    let me = TestCaller::may(&[ROLE]);
    let c = &f.control;
    let created = c.create_function(create("f", ROLE), &me).await.unwrap();
    assert_eq!(created.handler, "bootstrap");
    assert_eq!(
        f.events.take(),
        [Change::FunctionCreated { published: None }]
    );

    // A refused command changes nothing and tells nobody.
    assert!(matches!(
        c.create_function(create("f", ROLE), &me).await,
        Err(ControlError::Conflict(m)) if m == "Function already exist: f"
    ));
    assert!(f.events.take().is_empty());

    let updated = c
        .update_function_code(
            UpdateFunctionCode {
                name: name("f"),
                code: zip(&["bootstrap", "extra"]),
                architecture: None,
                publish: true,
                dry_run: false,
                revision_id: None,
            },
            &me,
        )
        .await
        .unwrap();
    assert_eq!(updated.version, "1");
    assert_eq!(
        f.events.take(),
        [Change::CodeUpdated {
            published: Some("1".into())
        }]
    );
    // A dry run changes nothing.
    c.update_function_code(
        UpdateFunctionCode {
            name: name("f"),
            code: zip(&["bootstrap", "other"]),
            architecture: None,
            publish: false,
            dry_run: true,
            revision_id: None,
        },
        &me,
    )
    .await
    .unwrap();
    assert!(f.events.take().is_empty());

    c.update_function_configuration(
        UpdateFunctionConfiguration {
            name: name("f"),
            change: ConfigurationChange {
                memory: Some(MemorySize::new(256).unwrap()),
                ..Default::default()
            },
            revision_id: None,
        },
        &me,
    )
    .await
    .unwrap();
    assert_eq!(f.events.take(), [Change::ConfigurationUpdated]);
    let published = c
        .publish_version(
            PublishVersion {
                name: name("f"),
                code_sha256: None,
                description: None,
                revision_id: None,
            },
            &me,
        )
        .await
        .unwrap();
    assert_eq!(
        f.events.take(),
        [Change::VersionPublished {
            version: published.version.clone()
        }]
    );
    c.create_alias(
        CreateAlias {
            function: name("f"),
            name: AliasName::new("live").unwrap(),
            function_version: "1".into(),
            description: Description::default(),
            routing: Some(Routing::new(&published.version, 0.5).unwrap()),
        },
        &me,
    )
    .await
    .unwrap();
    c.update_alias(
        UpdateAlias {
            function: name("f"),
            name: AliasName::new("live").unwrap(),
            function_version: None,
            description: None,
            routing: Some(None),
            revision_id: None,
        },
        &me,
    )
    .await
    .unwrap();
    c.delete_alias(
        DeleteAlias {
            function: name("f"),
            name: AliasName::new("live").unwrap(),
        },
        &me,
    )
    .await
    .unwrap();
    assert_eq!(
        f.events.take(),
        [
            Change::AliasCreated {
                alias: "live".into()
            },
            Change::AliasUpdated {
                alias: "live".into()
            },
            Change::AliasDeleted {
                alias: "live".into()
            }
        ]
    );
    c.add_permission(
        AddPermission {
            function: name("f"),
            statement_id: StatementId::new("s1").unwrap(),
            action: "lambda:InvokeFunction".into(),
            principal: "*".into(),
            source_arn: None,
            source_account: None,
            principal_org_id: None,
            function_url_auth_type: None,
            revision_id: None,
        },
        &me,
    )
    .await
    .unwrap();
    c.remove_permission(
        RemovePermission {
            function: name("f"),
            statement_id: "s1".into(),
            revision_id: None,
        },
        &me,
    )
    .await
    .unwrap();
    c.set_concurrency(
        SetConcurrency {
            function: name("f"),
            reserved: Some(5),
        },
        &me,
    )
    .await
    .unwrap();
    c.tag_function(
        TagFunction {
            function: name("f"),
            tags: Tags::new(BTreeMap::from([("env".into(), "dev".into())])).unwrap(),
        },
        &me,
    )
    .await
    .unwrap();
    c.untag_function(
        UntagFunction {
            function: name("f"),
            keys: vec!["team".into()],
        },
        &me,
    )
    .await
    .unwrap();
    c.delete_function(
        DeleteFunction {
            name: name("f"),
            version: Some(1),
        },
        &me,
    )
    .await
    .unwrap();
    c.delete_function(
        DeleteFunction {
            name: name("f"),
            version: None,
        },
        &me,
    )
    .await
    .unwrap();
    assert_eq!(
        f.events.take(),
        [
            Change::PolicyChanged,
            Change::PolicyChanged,
            Change::ConcurrencyChanged { reserved: Some(5) },
            Change::TagsChanged,
            Change::TagsChanged,
            Change::VersionDeleted {
                version: "1".into()
            },
            Change::FunctionDeleted,
        ]
    );
    // The actor is recorded.
    c.create_function(create("g", ROLE), &me).await.unwrap();
    let event = f.events.0.lock().unwrap().pop().unwrap();
    assert_eq!(
        event.actor.as_deref(),
        Some("arn:aws:iam::123456789012:user/tester")
    );
}

#[tokio::test]
async fn every_role_change_passes_the_role_step_on_the_canonical_arn() {
    let f = fixture();
    let c = &f.control;
    // Denied on the canonical ARN, however the request spells it.
    let narrow = TestCaller::may(&[]);
    let spelled = "arn:aws:iam::123456789012:role/EXEC";
    let e = c
        .create_function(create("f", spelled), &narrow)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ControlError::PassRoleDenied { role, .. } if role == ROLE),
        "{e}"
    );
    assert_eq!(*narrow.asked.lock().unwrap(), [ROLE]);
    assert_eq!(f.store.get_version(&name("f"), LATEST).unwrap(), None);

    // Allowed: the canonical ARN is stored.
    let me = TestCaller::may(&[ROLE]);
    let created = c.create_function(create("f", spelled), &me).await.unwrap();
    assert_eq!(created.role, ROLE);

    // An update with a role runs the same step; without one it asks nothing.
    let update = |role: Option<&str>| UpdateFunctionConfiguration {
        name: name("f"),
        change: ConfigurationChange {
            role: role.map(|r| RoleArn::new(r).unwrap()),
            timeout: Some(Timeout::new(9).unwrap()),
            ..Default::default()
        },
        revision_id: None,
    };
    let e = c
        .update_function_configuration(update(Some(spelled)), &narrow)
        .await
        .unwrap_err();
    assert!(matches!(e, ControlError::PassRoleDenied { .. }), "{e}");
    let asked_before = narrow.asked.lock().unwrap().len();
    c.update_function_configuration(update(None), &narrow)
        .await
        .unwrap();
    assert_eq!(narrow.asked.lock().unwrap().len(), asked_before);

    // A role that does not trust Lambda, or does not exist, cannot be assumed.
    let untrusted = "arn:aws:iam::123456789012:role/untrusted";
    let anyone = TestCaller::may(&[untrusted, "arn:aws:iam::123456789012:role/nobody"]);
    for role in [untrusted, "arn:aws:iam::123456789012:role/nobody"] {
        let e = c
            .update_function_configuration(update(Some(role)), &anyone)
            .await
            .unwrap_err();
        assert!(matches!(e, ControlError::RoleNotAssumable), "{role}: {e}");
    }
    let stored = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
    assert_eq!(stored.role, ROLE);
    assert_eq!(stored.timeout_seconds, 9);
}

#[tokio::test]
async fn the_keyring_seals_what_is_stored_and_opens_what_is_shown() {
    let f = fixture();
    let me = TestCaller::may(&[ROLE]);
    let shown = f
        .control
        .create_function(create("f", ROLE), &me)
        .await
        .unwrap();
    assert_eq!(shown.environment["TOKEN"], "s3cret");
    let stored = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
    assert!(
        stored.environment.is_empty(),
        "no variable is stored in the clear"
    );
    let sealed = stored.sealed_environment.as_ref().unwrap();
    assert!(!sealed.ciphertext.contains("s3cret"));
    let lambda_key = f.kms.resolve("alias/aws/lambda").unwrap();
    assert_eq!(sealed.key_arn, lambda_key.arn);
    let r = FunctionRef {
        name: name("f"),
        qualifier: None,
    };
    let view = f.control.get_function(&r).await.unwrap();
    assert_eq!(view.configuration.environment["TOKEN"], "s3cret");
    assert_eq!(view.tags.as_map()["team"], "a");
}

#[tokio::test]
async fn a_customer_key_needs_the_callers_permission_and_its_state_shows() {
    let f = fixture();
    let key = f.kms.create_key(warden_kms::NewKey::default()).unwrap();
    let mut command = create("f", ROLE);
    command.kms_key_arn = Some(key.arn.clone());
    // Not allowed to use the key: refused, nothing stored, nobody told.
    let denied = TestCaller::may(&[ROLE]);
    assert!(matches!(
        f.control.create_function(command.clone(), &denied).await,
        Err(ControlError::KmsAccessDenied(_))
    ));
    assert!(f.store.get_version(&name("f"), LATEST).unwrap().is_none());
    assert!(f.events.take().is_empty());
    let me = TestCaller::may(&[ROLE, &key.arn]);
    let shown = f.control.create_function(command, &me).await.unwrap();
    assert_eq!(shown.kms_key_arn.as_deref(), Some(key.arn.as_str()));
    let stored = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
    assert_eq!(stored.sealed_environment.unwrap().key_arn, key.arn);
    // A disabled key: the variables are not shown, the reason is.
    f.kms.set_enabled(&key.arn, false).unwrap();
    let r = FunctionRef {
        name: name("f"),
        qualifier: None,
    };
    let view = f.control.get_function(&r).await.unwrap();
    assert!(view.configuration.environment.is_empty());
    assert_eq!(
        view.configuration.environment_error.unwrap().code,
        "KMSDisabledException"
    );
    // Back to aws/lambda: the variables move with the key (opened under the old one).
    f.kms.set_enabled(&key.arn, true).unwrap();
    let moved = f
        .control
        .update_function_configuration(
            UpdateFunctionConfiguration {
                name: name("f"),
                change: ConfigurationChange {
                    kms_key_arn: Some(None),
                    ..Default::default()
                },
                revision_id: None,
            },
            &me,
        )
        .await
        .unwrap();
    assert_eq!(moved.kms_key_arn, None);
    assert_eq!(moved.environment["TOKEN"], "s3cret");
    let stored = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
    let lambda_key = f.kms.resolve("alias/aws/lambda").unwrap();
    assert_eq!(stored.sealed_environment.unwrap().key_arn, lambda_key.arn);
}

#[tokio::test]
async fn a_package_a_code_check_refuses_is_neither_stored_nor_referenced() {
    let f = fixture();
    let me = TestCaller::may(&[ROLE]);
    let mut bad = create("f", ROLE);
    bad.code = zip(&["bootstrap", "forbidden"]);
    let e = f.control.create_function(bad, &me).await.unwrap_err();
    assert!(
        matches!(
            &e,
            ControlError::CodeRefused {
                check: "no-forbidden-file",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(f.store.get_version(&name("f"), LATEST).unwrap(), None);
    assert!(f.events.take().is_empty());
    // Not a zip at all: the standard chain refuses it first.
    let mut garbage = create("f", ROLE);
    garbage.code = ZipPackage(b"not a zip".to_vec());
    assert!(matches!(
        f.control.create_function(garbage, &me).await,
        Err(ControlError::InvalidZip(_))
    ));
}

#[tokio::test]
async fn reservations_leave_the_account_its_unreserved_minimum_and_tags_their_limit() {
    let f = fixture();
    let me = TestCaller::may(&[ROLE]);
    let c = &f.control;
    c.create_function(create("a", ROLE), &me).await.unwrap();
    c.create_function(create("b", ROLE), &me).await.unwrap();
    let set = |n: &str, r: u32| SetConcurrency {
        function: name(n),
        reserved: Some(r),
    };
    c.set_concurrency(set("a", 850), &me).await.unwrap();
    // 1000 - 850 - 51 leaves 99, below the minimum of 100.
    assert!(matches!(
        c.set_concurrency(set("b", 51), &me).await,
        Err(ControlError::Invalid(m)) if m.contains("[100]")
    ));
    c.set_concurrency(set("b", 50), &me).await.unwrap();
    // Changing a's own reservation counts it once.
    c.set_concurrency(set("a", 850), &me).await.unwrap();
    let settings = c.account_settings().await.unwrap();
    assert_eq!(settings.unreserved_concurrency, 100);
    assert_eq!(settings.function_count, 2);

    let many: BTreeMap<String, String> = (0..49).map(|i| (format!("k{i}"), "v".into())).collect();
    c.tag_function(
        TagFunction {
            function: name("a"),
            tags: Tags::new(many).unwrap(),
        },
        &me,
    )
    .await
    .unwrap();
    // `team` plus 49 is the limit; one more is refused and nothing changes.
    let e = c
        .tag_function(
            TagFunction {
                function: name("a"),
                tags: Tags::new(BTreeMap::from([("extra".into(), "v".into())])).unwrap(),
            },
            &me,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, ControlError::Config(ConfigError::Tags(_))),
        "{e}"
    );
    assert_eq!(c.list_tags(&name("a")).await.unwrap().len(), 50);
    assert!(matches!(
        c.list_tags(&name("nobody")).await,
        Err(ControlError::NotFound(m)) if m.ends_with(":function:nobody")
    ));
}

#[tokio::test]
async fn a_runtime_this_host_cannot_serve_is_refused_before_anything_is_stored() {
    let f = fixture();
    let me = TestCaller::may(&[ROLE]);
    let c = &f.control;
    let mut python = create("py", ROLE);
    python.runtime = Runtime::new("python3.12").unwrap();
    python.handler = Some(warden_types::Handler::new("app.handler").unwrap());
    let refused = c.create_function(python, &me).await;
    assert!(
        matches!(&refused, Err(ControlError::Invalid(m))
            if m == "The runtime python3.12 is not available on this Warden host: no Python 3.12 here"),
        "{refused:?}"
    );
    assert!(f.store.get_version(&name("py"), LATEST).unwrap().is_none());
    assert!(f.events.take().is_empty());

    // Nor can an existing function be moved to it.
    c.create_function(create("f", ROLE), &me).await.unwrap();
    f.events.take();
    let moved = c
        .update_function_configuration(
            UpdateFunctionConfiguration {
                name: name("f"),
                change: ConfigurationChange {
                    runtime: Some(Runtime::new("python3.12").unwrap()),
                    ..Default::default()
                },
                revision_id: None,
            },
            &me,
        )
        .await;
    assert!(matches!(moved, Err(ControlError::Invalid(_))), "{moved:?}");
    let stored = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
    assert_eq!(stored.runtime, "provided.al2023");
    assert!(f.events.take().is_empty());
}

#[tokio::test]
async fn layer_permissions_are_bounded_guarded_by_revision_and_grant_only_reading() {
    use crate::layers::{AddLayerPermission, PublishLayerVersion, MAX_LAYER_POLICY_BYTES};
    use warden_types::layer::LayerName;
    let f = fixture();
    let c = &f.control;
    let layer = LayerName::new("shared").unwrap();
    let published = c
        .publish_layer_version(PublishLayerVersion {
            name: layer.clone(),
            description: Description::default(),
            compatible_runtimes: vec!["python3.12".into()],
            compatible_architectures: vec![],
            license_info: None,
            code: zip(&["python"]),
        })
        .await
        .unwrap();
    assert_eq!(published.version, 1);
    let add = |sid: String, action: &str, revision: Option<String>| AddLayerPermission {
        name: layer.clone(),
        version: 1,
        statement_id: warden_types::StatementId::new(&sid).unwrap(),
        action: action.into(),
        principal: "*".into(),
        revision_id: revision,
    };
    let refused = c
        .add_layer_permission(add("w".into(), "lambda:DeleteLayerVersion", None))
        .await;
    assert!(
        matches!(refused, Err(ControlError::Invalid(_))),
        "{refused:?}"
    );

    let (_, first) = c
        .add_layer_permission(add("a".into(), "lambda:GetLayerVersion", None))
        .await
        .unwrap();
    // A stale revision is refused; the current one is accepted.
    let stale = c
        .add_layer_permission(add(
            "b".into(),
            "lambda:GetLayerVersion",
            Some("stale".into()),
        ))
        .await;
    assert!(
        matches!(stale, Err(ControlError::RevisionMismatch)),
        "{stale:?}"
    );
    c.add_layer_permission(add("b".into(), "lambda:GetLayerVersion", Some(first)))
        .await
        .unwrap();

    // Statements are added until the policy would pass its size limit, which is refused.
    let mut n = 0;
    let refusal = loop {
        let sid = format!("{n:0>90}");
        match c
            .add_layer_permission(add(sid, "lambda:GetLayerVersion", None))
            .await
        {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1000, "the policy grew without bound");
    };
    assert!(
        refusal.to_string().contains("bigger than the limit"),
        "{refusal}"
    );
    let policy = c.get_layer_policy(&layer, 1).await.unwrap();
    assert!(policy.document.len() <= MAX_LAYER_POLICY_BYTES);
}

#[tokio::test]
async fn layer_versions_are_listed_a_page_at_a_time_with_their_filters() {
    use crate::layers::PublishLayerVersion;
    use warden_types::layer::LayerName;
    let f = fixture();
    let c = &f.control;
    let layer = LayerName::new("many").unwrap();
    // 250 versions; only some of the oldest declare python3.12, so finding them takes the
    // store more than one page.
    for i in 0..250u64 {
        let runtimes = if i < 30 && i % 3 == 0 {
            vec!["python3.12".into()]
        } else {
            vec![]
        };
        c.publish_layer_version(PublishLayerVersion {
            name: layer.clone(),
            description: Description::default(),
            compatible_runtimes: runtimes,
            compatible_architectures: vec![],
            license_info: None,
            code: zip(&["python"]),
        })
        .await
        .unwrap();
    }
    let python = || Some("python3.12".to_owned());
    let (page, next) = c
        .list_layer_versions(&layer, python(), None, None, 4)
        .await
        .unwrap();
    let versions: Vec<u64> = page.iter().map(|v| v.version).collect();
    assert_eq!(versions, [28, 25, 22, 19]);
    assert_eq!(next, Some(19));
    let (rest, next) = c
        .list_layer_versions(&layer, python(), None, next, 50)
        .await
        .unwrap();
    let versions: Vec<u64> = rest.iter().map(|v| v.version).collect();
    assert_eq!(versions, [16, 13, 10, 7, 4, 1]);
    assert_eq!(next, None);
    let (all, next) = c
        .list_layer_versions(&layer, None, None, None, 50)
        .await
        .unwrap();
    assert_eq!((all.len(), next), (50, Some(201)));
    // ListLayers finds the newest matching version beyond the store's first page.
    let (layers, _) = c.list_layers(python(), None, None, 10).await.unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].version, 28);
}

#[tokio::test]
async fn environment_findings_are_recorded_by_name_and_replaced() {
    let f = fixture();
    let n = name("f");
    assert_eq!(f.control.environment_findings(&n).await.unwrap(), None);
    let findings = [(
        "DB_PASSWORD".to_owned(),
        "a value in a variable named like a secret".to_owned(),
    )];
    f.control
        .record_environment_findings(&n, &findings)
        .await
        .unwrap();
    let stored: serde_json::Value =
        serde_json::from_str(&f.control.environment_findings(&n).await.unwrap().unwrap()).unwrap();
    assert_eq!(stored[0]["variable"], "DB_PASSWORD");
    f.control
        .record_environment_findings(&n, &[])
        .await
        .unwrap();
    assert_eq!(
        f.control.environment_findings(&n).await.unwrap().as_deref(),
        Some("[]")
    );
}

#[tokio::test]
async fn environments_stored_in_plain_text_are_sealed_and_still_shown() {
    let f = fixture();
    let me = TestCaller::may(&[ROLE]);
    f.control
        .create_function(create("f", ROLE), &me)
        .await
        .unwrap();
    // What an older Warden wrote: the variables in the clear.
    let mut old = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
    old.sealed_environment = None;
    old.environment = BTreeMap::from([("TOKEN".into(), "s3cret".into())]);
    f.store.update_latest(&old, None).unwrap();
    assert_eq!(f.control.seal_plaintext_environments().await.unwrap(), 1);
    let stored = f.store.get_version(&name("f"), LATEST).unwrap().unwrap();
    assert!(stored.environment.is_empty());
    assert!(stored.sealed_environment.is_some());
    let r = FunctionRef {
        name: name("f"),
        qualifier: None,
    };
    let view = f.control.get_function(&r).await.unwrap();
    assert_eq!(view.configuration.environment["TOKEN"], "s3cret");
    assert_eq!(f.control.seal_plaintext_environments().await.unwrap(), 0);
}
