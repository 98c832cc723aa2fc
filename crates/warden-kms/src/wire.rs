//! KMS's output shapes (JSON 1.1 members, as the service model names them).

use serde_json::{json, Value};

use crate::service::{Alias, Key};
use crate::store::KeyManager;

/// Epoch seconds with milliseconds, as KMS writes timestamps.
pub fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// A key's `KeyMetadata`.
pub fn key_metadata(key: &Key, account: &str) -> Value {
    let r = &key.record;
    let mut v = json!({
        "AWSAccountId": account,
        "KeyId": r.id.to_string(),
        "Arn": key.arn,
        "CreationDate": seconds(r.created_ms),
        "Enabled": r.state == crate::store::KeyState::Enabled,
        "Description": r.description,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": r.state.as_str(),
        "Origin": "AWS_KMS",
        "KeyManager": match r.manager { KeyManager::Customer => "CUSTOMER", KeyManager::Aws => "AWS" },
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": false,
    });
    if let Some(d) = r.deletion_ms {
        v["DeletionDate"] = seconds(d);
    }
    if let Some(days) = r.pending_window_days {
        v["PendingDeletionWindowInDays"] = json!(days);
    }
    v
}

/// One entry of `ListAliases`.
pub fn alias_entry(alias: &Alias, arn: &str) -> Value {
    json!({
        "AliasName": alias.name,
        "AliasArn": arn,
        "TargetKeyId": alias.key.to_string(),
        "CreationDate": seconds(alias.created_ms),
        "LastUpdatedDate": seconds(alias.updated_ms),
    })
}

/// A key's tags as `[{TagKey, TagValue}]`.
pub fn tags(key: &Key) -> Value {
    Value::Array(
        key.record
            .tags
            .iter()
            .map(|(k, v)| json!({ "TagKey": k, "TagValue": v }))
            .collect(),
    )
}
