//! LookupEvents: filters, newest first, pages, and tokens that cannot be misused.

use super::*;
use crate::event::EncodedEvent;
use crate::test_support::{fresh, on_both_backends, sample_event, Backend, Fresh, T0};

fn reader_with(backend: Backend, n: u64) -> (Fresh, AuditReader) {
    let fresh = fresh(backend);
    let mut log = fresh.store.writer().unwrap();
    let events: Vec<_> = (0..n)
        .map(|i| EncodedEvent::new(&sample_event(i)).unwrap())
        .collect();
    log.append_batch(&events).unwrap();
    let reader = fresh.store.reader().unwrap();
    (fresh, reader)
}

on_both_backends!(
    filters_by_each_attribute_newest_first,
    time_range_and_pages,
    refuses_bad_tokens_and_parameters,
);

fn seqs(page: &LookupPage) -> Vec<u64> {
    page.events.iter().map(|e| e.seq).collect()
}

fn query(attribute: LookupAttribute) -> LookupQuery {
    LookupQuery {
        attribute: Some(attribute),
        ..LookupQuery::default()
    }
}

fn filters_by_each_attribute_newest_first(backend: Backend) {
    let (_dir, reader) = reader_with(backend, 12);
    let all = reader.lookup(&LookupQuery::default()).unwrap();
    assert_eq!(seqs(&all), (0..12).rev().collect::<Vec<_>>());
    assert_eq!(all.next_token, None);
    assert_eq!(all.events[0].event, sample_event(11));
    assert_eq!(
        all.events[0].raw,
        String::from_utf8(
            EncodedEvent::new(&sample_event(11))
                .unwrap()
                .bytes()
                .to_vec()
        )
        .unwrap()
    );

    let check = |a: LookupAttribute, expected: Vec<u64>| {
        assert_eq!(
            seqs(&reader.lookup(&query(a.clone())).unwrap()),
            expected,
            "{a:?}"
        );
    };
    check(LookupAttribute::EventId(sample_event(4).event_id), vec![4]);
    check(
        LookupAttribute::EventName("GetFunction20150331v2".into()),
        vec![11, 9, 7, 5, 3, 1],
    );
    check(
        LookupAttribute::Username("alice".into()),
        vec![10, 8, 6, 4, 2, 0],
    );
    check(
        LookupAttribute::Username("deploy".into()),
        vec![11, 9, 7, 5, 3, 1],
    );
    check(
        LookupAttribute::PrincipalArn("arn:aws:iam::123456789012:user/alice".into()),
        vec![10, 8, 6, 4, 2, 0],
    );
    check(
        LookupAttribute::AccessKeyId("ASIADEPLOY".into()),
        vec![11, 9, 7, 5, 3, 1],
    );
    check(LookupAttribute::ReadOnly(false), vec![10, 8, 6, 4, 2, 0]);
    check(
        LookupAttribute::ResourceName("arn:aws:lambda:us-east-1:123456789012:function:f2".into()),
        vec![7, 2],
    );
    check(
        LookupAttribute::EventSource("lambda.amazonaws.com".into()),
        (0..12).rev().collect(),
    );
    check(
        LookupAttribute::EventSource("kms.amazonaws.com".into()),
        vec![],
    );
}

fn time_range_and_pages(backend: Backend) {
    let (_dir, reader) = reader_with(backend, 30);
    let mut q = LookupQuery {
        start_ms: Some(T0 + 5_000),
        end_ms: Some(T0 + 24_000),
        max_results: Some(7),
        ..LookupQuery::default()
    };
    let mut got = Vec::new();
    loop {
        let page = reader.lookup(&q).unwrap();
        assert!(page.events.len() <= 7);
        got.extend(seqs(&page));
        match page.next_token {
            Some(t) => q.next_token = Some(t),
            None => break,
        }
    }
    assert_eq!(got, (5..=24).rev().collect::<Vec<_>>());
}

fn refuses_bad_tokens_and_parameters(backend: Backend) {
    let (_dir, reader) = reader_with(backend, 10);
    let q = LookupQuery {
        max_results: Some(3),
        ..LookupQuery::default()
    };
    let token = reader.lookup(&q).unwrap().next_token.unwrap();
    let bad = |next_token: &str, attribute: Option<LookupAttribute>| {
        let q = LookupQuery {
            attribute,
            max_results: Some(3),
            next_token: Some(next_token.to_owned()),
            ..LookupQuery::default()
        };
        reader.lookup(&q).unwrap_err().to_string()
    };
    let message = "the next token is invalid or belongs to another query";
    assert_eq!(bad("garbage!", None), message);
    assert_eq!(bad("", None), message);
    let mut tampered = token.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    assert_eq!(bad(&String::from_utf8(tampered).unwrap(), None), message);
    assert_eq!(bad(&token, Some(LookupAttribute::ReadOnly(true))), message);
    // The same query may change its page size.
    let q = LookupQuery {
        max_results: Some(50),
        next_token: Some(token),
        ..LookupQuery::default()
    };
    assert_eq!(seqs(&reader.lookup(&q).unwrap()), vec![6, 5, 4, 3, 2, 1, 0]);

    let q = LookupQuery {
        max_results: Some(51),
        ..LookupQuery::default()
    };
    assert_eq!(
        reader.lookup(&q).unwrap_err().to_string(),
        "max results must be between 1 and 50, not 51"
    );
    let q = LookupQuery {
        start_ms: Some(2),
        end_ms: Some(1),
        ..LookupQuery::default()
    };
    assert_eq!(
        reader.lookup(&q).unwrap_err().to_string(),
        "the start time must not be after the end time"
    );
}
