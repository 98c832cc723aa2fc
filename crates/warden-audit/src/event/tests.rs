//! The event's JSON against CloudTrail's spelling, redaction, and the index values.

use serde_json::json;

use super::*;
use crate::test_support::{sample_event, T0};

#[test]
fn serialises_with_cloudtrail_names() {
    let event = sample_event(1);
    let v = serde_json::to_value(&event).unwrap();
    for key in [
        "eventVersion",
        "userIdentity",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "requestParameters",
        "responseElements",
        "requestID",
        "eventID",
        "readOnly",
        "resources",
        "eventType",
        "managementEvent",
        "recipientAccountId",
        "eventCategory",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["eventVersion"], "1.11");
    assert_eq!(v["eventTime"], "2024-05-01T00:00:01Z");
    assert_eq!(v["userIdentity"]["type"], "AssumedRole");
    assert_eq!(
        v["userIdentity"]["sessionContext"]["sessionIssuer"]["type"],
        "Role"
    );
    assert_eq!(
        v["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"],
        "false"
    );
    assert_eq!(v["resources"][0]["ARN"], event.resources[0].arn);
    assert_eq!(v["resources"][0]["type"], "AWS::Lambda::Function");
    // Absent errors are left out, as CloudTrail does; absent parameters are `null`.
    assert!(v.get("errorCode").is_none());
    assert_eq!(v["responseElements"], Value::Null);
    assert_eq!(sample_event(0).user_identity.kind, IdentityType::IamUser);
    let v0 = serde_json::to_value(sample_event(0)).unwrap();
    assert_eq!(v0["userIdentity"]["type"], "IAMUser");
    let back: CloudTrailEvent = serde_json::from_value(v).unwrap();
    assert_eq!(back, event);
}

#[test]
fn reads_a_cloudtrail_record_written_elsewhere() {
    let raw = json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "Root", "principalId": "123456789012",
            "arn": "arn:aws:iam::123456789012:root", "accountId": "123456789012"},
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": "DeleteFunction20150331",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.1",
        "userAgent": "console",
        "errorCode": "ResourceNotFoundException",
        "errorMessage": "Function not found",
        "requestParameters": {"functionName": "gone"},
        "responseElements": null,
        "requestID": "r",
        "eventID": "e",
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3"}
    });
    let event: CloudTrailEvent = serde_json::from_value(raw).unwrap();
    assert_eq!(event.user_identity.kind, IdentityType::Root);
    assert_eq!(event.user_identity.lookup_name().as_deref(), Some("root"));
    assert_eq!(
        event.error_code.as_deref(),
        Some("ResourceNotFoundException")
    );
    assert!(event.resources.is_empty());
}

#[test]
fn redacts_what_cloudtrail_omits() {
    let mut params = json!({
        "FunctionName": "f",
        "Environment": {"Variables": {"DB_PASSWORD": "hunter2"}},
        "Code": {"ZipFile": "UEsDBA==", "S3Bucket": "b"},
        "nested": [{"secretString": "s3cr3t", "name": "ok"}],
        "Payload": null,
        "environment": {"variables": {"K": "V"}, "error": null}
    });
    redact(&mut params, DEFAULT_REDACTIONS);
    assert_eq!(
        params,
        json!({
            "FunctionName": "f",
            "Environment": {"Variables": HIDDEN},
            "Code": {"ZipFile": HIDDEN, "S3Bucket": "b"},
            "nested": [{"secretString": HIDDEN, "name": "ok"}],
            "Payload": null,
            "environment": {"variables": HIDDEN, "error": null}
        })
    );
    // A dotted rule needs the whole path: `Variables` alone is kept elsewhere.
    let mut other = json!({"Variables": {"a": 1}});
    redact(&mut other, DEFAULT_REDACTIONS);
    assert_eq!(other, json!({"Variables": {"a": 1}}));
}

#[test]
fn event_times() {
    assert_eq!(event_time(T0), "2024-05-01T00:00:00Z");
    assert_eq!(parse_event_time("2024-05-01T00:00:00Z").unwrap(), T0);
    assert_eq!(
        parse_event_time("2024-05-01T02:00:00.250+02:00").unwrap(),
        T0 + 250
    );
    assert_eq!(
        parse_event_time("yesterday").unwrap_err().to_string(),
        "the event time `yesterday` is not an RFC 3339 time"
    );
}

#[test]
fn index_values_come_from_the_event() {
    let role = EventIndex::of(&sample_event(3)).unwrap();
    assert_eq!(role.username.as_deref(), Some("deploy"));
    assert_eq!(
        role.principal_arn.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/ci/deploy")
    );
    assert_eq!(role.access_key_id.as_deref(), Some("ASIADEPLOY"));
    assert!(role.read_only);
    assert_eq!(role.time_ms, T0 + 3000);
    assert_eq!(
        role.resources,
        vec!["arn:aws:lambda:us-east-1:123456789012:function:f3".to_owned()]
    );
    let encoded = EncodedEvent::new(&sample_event(3)).unwrap();
    let again = EncodedEvent::from_bytes(encoded.bytes().to_vec()).unwrap();
    assert_eq!(again, encoded);
    assert!(matches!(
        EncodedEvent::from_bytes(b"{}".to_vec()),
        Err(Error::DecodeEvent(_))
    ));
}
