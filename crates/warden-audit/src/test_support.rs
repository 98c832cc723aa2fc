//! Events for the unit tests.

use serde_json::json;

use crate::event::{
    event_time, CloudTrailEvent, IdentityType, Resource, SessionAttributes, SessionContext,
    SessionIssuer, UserIdentity, EVENT_VERSION,
};

/// The 1st of May 2024, midnight UTC.
pub(crate) const T0: i64 = 1_714_521_600_000;

/// Event `i`: a second after event `i - 1`; alternately an IAM user's write and an assumed
/// role's read, naming function `f{i % 5}`.
pub(crate) fn sample_event(i: u64) -> CloudTrailEvent {
    let time = T0 + i64::try_from(i).unwrap_or(0) * 1000;
    let function = format!("arn:aws:lambda:us-east-1:123456789012:function:f{}", i % 5);
    let (identity, name, read_only) = if i & 1 == 0 {
        (
            UserIdentity {
                kind: IdentityType::IamUser,
                principal_id: Some("AIDAEXAMPLE".into()),
                arn: Some("arn:aws:iam::123456789012:user/alice".into()),
                account_id: Some("123456789012".into()),
                access_key_id: Some("AKIAALICE".into()),
                user_name: Some("alice".into()),
                session_context: None,
                invoked_by: None,
            },
            "UpdateFunctionConfiguration20150331v2",
            false,
        )
    } else {
        (
            UserIdentity {
                kind: IdentityType::AssumedRole,
                principal_id: Some("AROAEXAMPLE:deploy".into()),
                arn: Some("arn:aws:sts::123456789012:assumed-role/ci/deploy".into()),
                account_id: Some("123456789012".into()),
                access_key_id: Some("ASIADEPLOY".into()),
                user_name: None,
                session_context: Some(SessionContext {
                    session_issuer: Some(SessionIssuer {
                        kind: "Role".into(),
                        principal_id: "AROAEXAMPLE".into(),
                        arn: "arn:aws:iam::123456789012:role/ci".into(),
                        account_id: "123456789012".into(),
                        user_name: "ci".into(),
                    }),
                    attributes: SessionAttributes {
                        creation_date: event_time(T0),
                        mfa_authenticated: "false".into(),
                    },
                }),
                invoked_by: None,
            },
            "GetFunction20150331v2",
            true,
        )
    };
    CloudTrailEvent {
        event_version: EVENT_VERSION.into(),
        user_identity: identity,
        event_time: event_time(time),
        event_source: "lambda.amazonaws.com".into(),
        event_name: name.into(),
        aws_region: "us-east-1".into(),
        source_ip_address: "192.0.2.7".into(),
        user_agent: "aws-cli/2.15".into(),
        error_code: None,
        error_message: None,
        request_parameters: Some(json!({"functionName": function, "n": i})),
        response_elements: None,
        additional_event_data: None,
        request_id: format!("req-{i}"),
        event_id: format!("00000000-0000-4000-8000-{i:012}"),
        read_only,
        resources: vec![Resource {
            arn: function,
            account_id: "123456789012".into(),
            kind: "AWS::Lambda::Function".into(),
        }],
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: "123456789012".into(),
        event_category: "Management".into(),
    }
}

/// The stores a test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A new, empty store, and the directory it (or the test) may use.
pub(crate) struct Fresh {
    pub(crate) store: crate::Store,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn fresh(backend: Backend) -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let store = match backend {
        Backend::Sqlite => crate::Store::Sqlite(dir.path().join("audit.db")),
        Backend::Postgres => {
            let url = warden_testservers::Postgres::shared()
                .fresh_database()
                .unwrap();
            crate::postgres::open(&url, 2).unwrap()
        }
    };
    Fresh { store, dir }
}

/// One test per backend for each function named, each given its [`Backend`].
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(crate::test_support::Backend::Sqlite);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(crate::test_support::Backend::Postgres);
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;
