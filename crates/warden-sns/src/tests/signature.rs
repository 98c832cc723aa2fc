//! Signatures checked the way a subscriber checks them, independently of the signing code:
//! the string to sign is rebuilt from the delivered JSON in the field order AWS documents,
//! the public key is dug out of the served certificate's DER by hand, and aws-lc-rs
//! verifies SHA256withRSA over them.

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use serde_json::Value;

use super::{call, create_topic, open};
use crate::Sns;

/// The string to sign of a delivered message, per AWS's documentation: for a Notification,
/// Message, MessageId, Subject (if present), Timestamp, TopicArn, Type; for the two
/// confirmations, Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type. Each
/// as `name\nvalue\n`.
fn string_to_sign(message: &Value) -> Vec<u8> {
    let fields: &[&str] = if message["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut out = String::new();
    for name in fields {
        match message.get(*name).and_then(Value::as_str) {
            Some(value) => {
                out.push_str(name);
                out.push('\n');
                out.push_str(value);
                out.push('\n');
            }
            None => assert!(*name == "Subject", "{name} missing from {message}"),
        }
    }
    out.into_bytes()
}

/// One DER element: (tag, the whole element, its content, what follows it).
fn der(input: &[u8]) -> (u8, &[u8], &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = if input[1] < 0x80 {
        (usize::from(input[1]), 2)
    } else {
        let n = usize::from(input[1] & 0x7f);
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (
        tag,
        &input[..header + len],
        &input[header..header + len],
        &input[header + len..],
    )
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64")
}

/// The certificate's (tbsCertificate, signature, RSAPublicKey).
fn certificate_parts(cert: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (tag, _, content, _) = der(cert);
    assert_eq!(tag, 0x30, "Certificate is a SEQUENCE");
    let (_, tbs_whole, tbs, rest) = der(content);
    let (_, _, _, rest) = der(rest); // signatureAlgorithm
    let (bit_tag, _, signature, _) = der(rest);
    assert_eq!(bit_tag, 0x03);
    let mut fields = tbs;
    let (tag, _, _, after) = der(fields);
    if tag == 0xa0 {
        fields = after; // [0] version
    }
    // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    for expected in [0x02, 0x30, 0x30, 0x30, 0x30] {
        let (tag, _, _, after) = der(fields);
        assert_eq!(tag, expected);
        fields = after;
    }
    let (tag, _, spki, _) = der(fields);
    assert_eq!(tag, 0x30);
    let (_, _, _, rest) = der(spki); // algorithm
    let (tag, _, key_bits, _) = der(rest);
    assert_eq!(tag, 0x03);
    assert_eq!(key_bits[0], 0, "no unused bits");
    (
        tbs_whole.to_vec(),
        signature[1..].to_vec(),
        key_bits[1..].to_vec(),
    )
}

fn public_key(sns: &Sns) -> Vec<u8> {
    certificate_parts(&pem_to_der(sns.signing_cert_pem())).2
}

fn verify(sns: &Sns, message: &Value, signature_field: &str) {
    assert_eq!(message["SignatureVersion"], "2");
    let signature = base64::engine::general_purpose::STANDARD
        .decode(message[signature_field].as_str().expect("Signature"))
        .expect("base64 signature");
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key(sns))
        .verify(&string_to_sign(message), &signature)
        .expect("the signature verifies against the served certificate");
}

/// Verifies an http delivery's JSON body.
pub(crate) fn verify_http_body(sns: &Sns, body: &Value) {
    assert_eq!(body["SigningCertURL"], sns.signing_cert_url());
    verify(sns, body, "Signature");
}

/// Verifies the `Sns` object of a Lambda event record.
pub(crate) fn verify_lambda_record(sns: &Sns, record: &Value) {
    assert_eq!(record["SigningCertUrl"], sns.signing_cert_url());
    verify(sns, record, "Signature");
}

#[test]
fn the_certificate_is_self_signed_over_the_signing_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sns = open(dir.path());
    let pem = sns.signing_cert_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    let (tbs, signature, key) = certificate_parts(&pem_to_der(pem));
    assert_eq!(
        key,
        sns.signer.public_key(),
        "the certificate holds the signing key"
    );
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key)
        .verify(&tbs, &signature)
        .expect("self-signed with SHA256withRSA");
    let modulus_bits = {
        let (_, _, seq, _) = der(&key);
        let (_, _, modulus, _) = der(seq);
        let significant = modulus.iter().skip_while(|b| **b == 0).count();
        significant * 8
    };
    assert_eq!(modulus_bits, 2048, "RSA-2048");
}

#[test]
fn signatures_cover_every_documented_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sns = open(dir.path());
    let fields = crate::signing::Signed::Notification {
        message: "hello",
        message_id: "id-1",
        subject: Some("subject"),
        timestamp: "2026-12-04T12:00:00.000Z",
        topic_arn: "arn:aws:sns:us-east-1:123456789012:t",
    };
    let signature = sns.signer.sign(&fields).expect("sign");
    let mut message = serde_json::json!({
        "Type": "Notification",
        "MessageId": "id-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
        "Subject": "subject",
        "Message": "hello",
        "Timestamp": "2026-12-04T12:00:00.000Z",
        "SignatureVersion": "2",
        "Signature": signature,
    });
    verify(&sns, &message, "Signature");
    assert_eq!(
        String::from_utf8(string_to_sign(&message)).expect("utf-8"),
        "Message\nhello\nMessageId\nid-1\nSubject\nsubject\nTimestamp\n2026-12-04T12:00:00.000Z\n\
         TopicArn\narn:aws:sns:us-east-1:123456789012:t\nType\nNotification\n"
    );
    for field in ["Message", "MessageId", "Subject", "Timestamp", "TopicArn"] {
        let mut tampered = message.clone();
        tampered[field] = Value::String("changed".into());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(signature.as_bytes())
            .expect("b64");
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key(&sns))
                .verify(&string_to_sign(&tampered), &bytes)
                .is_err(),
            "{field} is covered"
        );
    }
    message["Type"] = Value::String("SubscriptionConfirmation".into());
    let confirmation = crate::signing::Signed::Confirmation {
        kind: "SubscriptionConfirmation",
        message: "hello",
        message_id: "id-1",
        subscribe_url: "http://x/?Action=ConfirmSubscription",
        timestamp: "2026-12-04T12:00:00.000Z",
        token: "tok",
        topic_arn: "arn:aws:sns:us-east-1:123456789012:t",
    };
    message["SubscribeURL"] = Value::String("http://x/?Action=ConfirmSubscription".into());
    message["Token"] = Value::String("tok".into());
    message["Signature"] = Value::String(sns.signer.sign(&confirmation).expect("sign"));
    verify(&sns, &message, "Signature");
}

#[test]
fn another_store_has_another_key() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let (sa, sb) = (open(a.path()), open(b.path()));
    assert_ne!(public_key(&sa), public_key(&sb));
    let topic = create_topic(&sa, "t");
    call(&sa, "DeleteTopic", &[("TopicArn", &topic)]).expect("delete");
}
