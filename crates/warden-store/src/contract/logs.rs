//! The contract of [`crate::LogStore`] on every backend.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use warden_types::FunctionName;

use super::Fixture;
use crate::{
    Cursor, EventRange, LogGroup, LogRecord, LogRetention, LogSource, Scan, Store, StoredEvent,
    StreamQuery,
};

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

fn log_line(f: &str, ts: i64, msg: &str, source: LogSource) -> LogRecord {
    LogRecord {
        seq: -7,
        function: name(f),
        timestamp_ms: ts,
        request_id: Some("req".into()),
        stream: None,
        message: msg.to_owned(),
        source,
    }
}

fn retention(max_age_ms: i64, max_bytes: u64) -> LogRetention {
    LogRetention {
        max_age_ms,
        max_bytes,
    }
}

/// Appends `lines` lines of about 1 KB to `f`, in batches like the log writer's.
fn fill_logs(store: &dyn Store, f: &str, first: usize, lines: usize) {
    let body = "x".repeat(1000);
    for chunk in (first..first + lines).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| log_line(f, *i as i64, &format!("{i} {body}"), LogSource::Function))
            .collect();
        store.append_logs(&batch).unwrap();
    }
}

fn scan(store: &dyn Store, range: &EventRange<'_>) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    store
        .scan_events(range, &mut |e| {
            out.push(StoredEvent::from(e));
            Scan::Continue
        })
        .unwrap();
    out
}

fn messages(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.message.as_str()).collect()
}

fn streams(prefix: &str) -> StreamQuery<'_> {
    StreamQuery {
        prefix,
        limit: 10,
        ..StreamQuery::default()
    }
}

fn whole(group: &LogGroup) -> EventRange<'_> {
    EventRange {
        group,
        stream: None,
        start_ms: None,
        end_ms: None,
        cursor: Cursor::After(0),
    }
}

fn group_names(store: &dyn Store, prefix: &str, pattern: &str) -> Vec<String> {
    store
        .list_log_groups(prefix, pattern, None, 100)
        .unwrap()
        .into_iter()
        .map(|g| g.group.name())
        .collect()
}

fn logs_are_ordered_per_function_and_resume_after_seq(f: &Fixture) {
    let store = &*f.store;
    let line = |f: &str, msg: &str| log_line(f, 42, msg, LogSource::Function);
    store
        .append_logs(&[line("f", "one"), line("g", "other"), line("f", "two")])
        .unwrap();
    store.append_logs(&[]).unwrap();
    store.append_logs(&[line("f", "three")]).unwrap();

    let all = store.read_logs(&name("f"), 0, 100).unwrap();
    let messages: Vec<_> = all.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["one", "two", "three"]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(all[0].seq > 0, "input seq is ignored");
    assert_eq!(all[0].request_id.as_deref(), Some("req"));
    assert_eq!(all[0].timestamp_ms, 42);
    assert_eq!(all[0].function, name("f"));
    assert_eq!(all[0].stream, None);

    let rest = store.read_logs(&name("f"), all[0].seq, 1).unwrap();
    assert_eq!(rest.len(), 1, "the limit holds");
    assert_eq!(rest[0].message, "two");
    let rest = store.read_logs(&name("f"), all[2].seq, 10).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        store.read_logs(&name("g"), 0, 10).unwrap()[0].message,
        "other"
    );
    assert!(store.read_logs(&name("nobody"), 0, 10).unwrap().is_empty());
}

fn logs_keep_who_wrote_them(f: &Fixture) {
    let store = &*f.store;
    store
        .append_logs(&[
            log_line("f", 1, "START RequestId: r", LogSource::Platform),
            log_line("f", 2, "REPORT RequestId: forged", LogSource::Function),
        ])
        .unwrap();
    let sources: Vec<_> = store
        .read_logs(&name("f"), 0, 10)
        .unwrap()
        .into_iter()
        .map(|r| (r.message, r.source))
        .collect();
    assert_eq!(
        sources,
        [
            ("START RequestId: r".to_owned(), LogSource::Platform),
            ("REPORT RequestId: forged".to_owned(), LogSource::Function)
        ]
    );
}

/// Lines hold any text: NUL characters, other scripts, nothing at all, a lot.
fn lines_keep_any_text_they_hold(f: &Fixture) {
    let store = &*f.store;
    let texts = [
        "nul \0 inside".to_owned(),
        "ünïcødé ✓ 日本語 🦀".to_owned(),
        String::new(),
        "y".repeat(300_000),
    ];
    let mut lines: Vec<_> = texts
        .iter()
        .map(|t| log_line("f", 1, t, LogSource::Function))
        .collect();
    lines[0].request_id = None;
    store.append_logs(&lines).unwrap();
    let app = LogGroup::Custom("app".into());
    store.create_log_group(&app, 0).unwrap();
    store
        .append_events(&app, "s", &[(1, "event \0 with nul".into())], 2)
        .unwrap();

    let read = store.read_logs(&name("f"), 0, 10).unwrap();
    let read_texts: Vec<_> = read.iter().map(|r| r.message.clone()).collect();
    assert_eq!(read_texts, texts);
    assert_eq!(read[0].request_id, None);
    assert_eq!(
        messages(&scan(store, &whole(&LogGroup::Function(name("f"))))),
        texts.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(messages(&scan(store, &whole(&app))), ["event \0 with nul"]);
}

/// Batches of every size a backend may split differently (one line, a few, just under and
/// over its statement sizes) keep every field of every line, in the order given.
fn batches_of_any_size_keep_every_line_in_order(f: &Fixture) {
    let store = &*f.store;
    let mut sent = Vec::new();
    for size in [1_i64, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 85, 129] {
        let batch: Vec<LogRecord> = (0..size)
            .map(|i| {
                let n = sent.len() as i64 + i;
                let mut line = log_line("f", 5000 - n, &format!("{size}:{i}"), LogSource::Function);
                if n % 3 == 0 {
                    line.source = LogSource::Platform;
                }
                line.stream = (n % 2 == 0).then(|| format!("s{}", n % 7));
                line.request_id = (n % 5 != 0).then(|| format!("r{n}"));
                line
            })
            .collect();
        store.append_logs(&batch).unwrap();
        sent.extend(batch);
    }
    let read = store.read_logs(&name("f"), 0, 10_000).unwrap();
    let fields = |r: &LogRecord| {
        (
            r.message.clone(),
            r.timestamp_ms,
            r.request_id.clone(),
            r.stream.clone(),
            r.source,
        )
    };
    assert_eq!(
        read.iter().map(fields).collect::<Vec<_>>(),
        sent.iter().map(fields).collect::<Vec<_>>()
    );
    assert!(read.windows(2).all(|w| w[0].seq < w[1].seq));
}

/// One batch spread over several functions and streams keeps its order everywhere: each
/// function's lines, each stream's events, and the seqs of the whole batch.
fn a_batch_across_functions_and_streams_keeps_its_order(f: &Fixture) {
    let store = &*f.store;
    let functions = ["f", "g", "h"];
    let batch: Vec<LogRecord> = (0..600)
        .map(|i: i64| {
            let mut line = log_line(
                functions[(i % 3) as usize],
                // Timestamps out of order, as instances' clocks and flushes make them.
                1000 + (i * 7919) % 600,
                &format!("line {i}"),
                if i % 11 == 0 {
                    LogSource::Platform
                } else {
                    LogSource::Function
                },
            );
            line.stream = (i % 4 != 0).then(|| format!("stream-{}", i % 5));
            line.request_id = (i % 2 == 0).then(|| format!("r{i}"));
            line
        })
        .collect();
    store.append_logs(&batch).unwrap();

    let mut everything = Vec::new();
    for function in functions {
        let read = store.read_logs(&name(function), 0, 1000).unwrap();
        let expected: Vec<&LogRecord> = batch
            .iter()
            .filter(|r| r.function.as_str() == function)
            .collect();
        assert_eq!(read.len(), expected.len());
        for (got, want) in read.iter().zip(&expected) {
            assert_eq!(
                (
                    &got.message,
                    got.timestamp_ms,
                    &got.request_id,
                    &got.stream,
                    got.source
                ),
                (
                    &want.message,
                    want.timestamp_ms,
                    &want.request_id,
                    &want.stream,
                    want.source
                )
            );
        }
        assert!(read.windows(2).all(|w| w[0].seq < w[1].seq));
        everything.extend(read);

        let group = LogGroup::Function(name(function));
        for s in 0..5 {
            let stream = format!("stream-{s}");
            let events = scan(
                store,
                &EventRange {
                    stream: Some(&stream),
                    ..whole(&group)
                },
            );
            let want: Vec<&str> = expected
                .iter()
                .filter(|r| r.stream.as_deref() == Some(stream.as_str()))
                .map(|r| r.message.as_str())
                .collect();
            assert_eq!(messages(&events), want, "{function} {stream}");
            let info = store
                .list_log_streams(&group, &streams(&stream))
                .unwrap()
                .into_iter()
                .find(|i| i.name == stream);
            if want.is_empty() {
                assert!(info.is_none());
                continue;
            }
            let info = info.unwrap();
            let times = expected
                .iter()
                .filter(|r| r.stream.as_deref() == Some(stream.as_str()))
                .map(|r| r.timestamp_ms);
            assert_eq!(info.first_event_ms, times.clone().min());
            assert_eq!(info.last_event_ms, times.max());
            let newest = batch.iter().map(|r| r.timestamp_ms).max();
            assert_eq!(info.created_ms, newest.unwrap());
            assert_eq!(info.last_ingestion_ms, newest);
        }
        // The group was made at the function's first line of the batch.
        let first = expected[0].timestamp_ms;
        assert_eq!(store.log_group(&group).unwrap().unwrap().created_ms, first);
    }
    everything.sort_by_key(|r| r.seq);
    let in_seq_order: Vec<_> = everything.iter().map(|r| r.message.as_str()).collect();
    let appended: Vec<_> = batch.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(in_seq_order, appended, "seqs follow the batch's order");
}

fn prune_logs_drops_expired_lines_only(f: &Fixture) {
    let store = &*f.store;
    let line = |ts: i64| log_line("f", ts, &ts.to_string(), LogSource::Function);
    store.append_logs(&[line(1), line(5), line(9)]).unwrap();
    // At time 15 with a 10 ms retention, lines before 5 are expired.
    let report = store.prune_logs(&retention(10, u64::MAX), 15).unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(report.evicted, 0);
    let left: Vec<_> = store
        .read_logs(&name("f"), 0, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.timestamp_ms)
        .collect();
    assert_eq!(left, [5, 9]);
}

/// Expiry in more than one batch of deletes.
fn prune_logs_expires_more_lines_than_one_batch(f: &Fixture) {
    let store = &*f.store;
    fill_logs(store, "f", 0, 5000);
    fill_logs(store, "g", 0, 100);
    let report = store.prune_logs(&retention(100, u64::MAX), 4600).unwrap();
    assert_eq!(report.expired, 4500 + 100);
    assert_eq!(report.evicted, 0);
    let left = store.read_logs(&name("f"), 0, 10_000).unwrap();
    assert_eq!(left.len(), 500);
    assert!(left[0].message.starts_with("4500 "));
    assert!(store.read_logs(&name("g"), 0, 10).unwrap().is_empty());
}

fn prune_logs_keeps_the_newest_lines_under_the_size_cap(f: &Fixture) {
    let store = &*f.store;
    fill_logs(store, "f", 0, 8000);
    let cap = 1024 * 1024;
    let report = store.prune_logs(&retention(i64::MAX, cap), 0).unwrap();
    assert_eq!(report.expired, 0);
    assert!(report.evicted > 6000, "{report:?}");
    assert!(report.bytes_before > 8_000_000, "{report:?}");
    assert!(report.bytes_after <= cap, "{report:?}");
    let left = store.read_logs(&name("f"), 0, 100_000).unwrap();
    assert!(!left.is_empty());
    assert_eq!(left.len() as u64, 8000 - report.evicted);
    assert!(
        left.last().unwrap().message.starts_with("7999 "),
        "the newest line stays"
    );
    assert!(
        left.first()
            .unwrap()
            .message
            .split(' ')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 6000,
        "the oldest lines went first"
    );
    // Under the cap, nothing more goes, and the size is what the last pass left.
    let again = store.prune_logs(&retention(i64::MAX, cap), 0).unwrap();
    assert_eq!((again.expired, again.evicted), (0, 0));
    assert_eq!(again.bytes_before, report.bytes_after);
    assert_eq!(again.bytes_after, report.bytes_after);
}

fn a_functions_lines_make_its_log_group_and_streams(f: &Fixture) {
    let store = &*f.store;
    let mut a = log_line("f", 10, "one", LogSource::Function);
    a.stream = Some("2026/12/04/[$LATEST]aaa".into());
    let mut b = log_line("f", 30, "two", LogSource::Platform);
    b.stream = Some("2026/12/04/[$LATEST]aaa".into());
    let mut c = log_line("f", 20, "three", LogSource::Function);
    c.stream = Some("2026/12/04/[$LATEST]bbb".into());
    store.append_logs(&[a, b, c]).unwrap();

    let group = LogGroup::from_name("/aws/lambda/f");
    assert_eq!(group, LogGroup::Function(name("f")));
    let info = store.log_group(&group).unwrap().unwrap();
    assert_eq!((info.created_ms, info.retention_days), (10, None));
    assert_eq!(info.group, group);
    let streams = store.list_log_streams(&group, &streams("")).unwrap();
    let spans: Vec<_> = streams
        .iter()
        .map(|s| (s.name.as_str(), s.first_event_ms, s.last_event_ms))
        .collect();
    assert_eq!(
        spans,
        [
            ("2026/12/04/[$LATEST]aaa", Some(10), Some(30)),
            ("2026/12/04/[$LATEST]bbb", Some(20), Some(20))
        ]
    );
    let only_b = EventRange {
        stream: Some("2026/12/04/[$LATEST]bbb"),
        ..whole(&group)
    };
    let events = scan(store, &only_b);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "three");
    assert_eq!(
        events[0].ingestion_ms, 20,
        "a function line is stored when made"
    );
    assert_eq!(events[0].request_id.as_deref(), Some("req"));
    // The platform line keeps saying who wrote it.
    let all = scan(store, &whole(&group));
    assert_eq!(all[1].source, LogSource::Platform);
    // Backwards from the end, newest first.
    let back = scan(
        store,
        &EventRange {
            cursor: Cursor::Before(i64::MAX),
            ..whole(&group)
        },
    );
    assert_eq!(messages(&back), ["three", "two", "one"]);
    // A time window is half open.
    let window = scan(
        store,
        &EventRange {
            start_ms: Some(20),
            end_ms: Some(30),
            ..whole(&group)
        },
    );
    assert_eq!(messages(&window), ["three"]);
    // Later lines widen a stream's span and move its last ingestion.
    let mut d = log_line("f", 5, "four", LogSource::Function);
    d.stream = Some("2026/12/04/[$LATEST]bbb".into());
    store.append_logs(&[d]).unwrap();
    let bbb = &store
        .list_log_streams(&group, &self::streams("2026/12/04/[$LATEST]b"))
        .unwrap()[0];
    assert_eq!(
        (
            bbb.created_ms,
            bbb.first_event_ms,
            bbb.last_event_ms,
            bbb.last_ingestion_ms
        ),
        (30, Some(5), Some(20), Some(5)),
        "made when its first batch was (the batch's newest line)"
    );
    // The group keeps the time of its first line.
    assert_eq!(store.log_group(&group).unwrap().unwrap().created_ms, 10);
}

/// A scan longer than any page a backend reads at once: every event once, in order, both
/// ways, from any cursor, filtered by stream and time, and resumable where it stopped.
fn a_long_scan_reads_every_event_once_in_order_both_ways(f: &Fixture) {
    let store = &*f.store;
    let lines: Vec<_> = (0..3000)
        .map(|i: i64| {
            let mut l = log_line("f", i, &i.to_string(), LogSource::Function);
            l.stream = Some(format!("s{}", i % 3));
            l
        })
        .collect();
    for chunk in lines.chunks(700) {
        store.append_logs(chunk).unwrap();
    }
    let group = LogGroup::Function(name("f"));
    let all = scan(store, &whole(&group));
    let numbers = |events: &[StoredEvent]| -> Vec<i64> {
        events.iter().map(|e| e.message.parse().unwrap()).collect()
    };
    assert_eq!(numbers(&all), (0..3000).collect::<Vec<_>>());
    let back = scan(
        store,
        &EventRange {
            cursor: Cursor::Before(i64::MAX),
            ..whole(&group)
        },
    );
    assert_eq!(numbers(&back), (0..3000).rev().collect::<Vec<_>>());

    // From the middle, each way.
    let middle = all[1234].seq;
    let after = scan(
        store,
        &EventRange {
            cursor: Cursor::After(middle),
            ..whole(&group)
        },
    );
    assert_eq!(numbers(&after), (1235..3000).collect::<Vec<_>>());
    let before = scan(
        store,
        &EventRange {
            cursor: Cursor::Before(middle),
            ..whole(&group)
        },
    );
    assert_eq!(numbers(&before), (0..1234).rev().collect::<Vec<_>>());

    // One stream, in a time window.
    let window = scan(
        store,
        &EventRange {
            stream: Some("s1"),
            start_ms: Some(100),
            end_ms: Some(2900),
            ..whole(&group)
        },
    );
    let want: Vec<i64> = (100..2900).filter(|i| i % 3 == 1).collect();
    assert_eq!(numbers(&window), want);
    assert!(window.iter().all(|e| e.stream.as_deref() == Some("s1")));
    let window_back = scan(
        store,
        &EventRange {
            stream: Some("s1"),
            start_ms: Some(100),
            end_ms: Some(2900),
            cursor: Cursor::Before(i64::MAX),
            ..whole(&group)
        },
    );
    assert_eq!(
        numbers(&window_back),
        want.iter().rev().copied().collect::<Vec<_>>()
    );
    assert!(scan(
        store,
        &EventRange {
            stream: Some("missing"),
            ..whole(&group)
        }
    )
    .is_empty());

    // Stopped after 1500 events, then resumed after the last one seen: the rest, once.
    let mut first = Vec::new();
    store
        .scan_events(&whole(&group), &mut |e| {
            first.push(StoredEvent::from(e));
            if first.len() == 1500 {
                Scan::Stop
            } else {
                Scan::Continue
            }
        })
        .unwrap();
    assert_eq!(first.len(), 1500);
    let rest = scan(
        store,
        &EventRange {
            cursor: Cursor::After(first.last().unwrap().seq),
            ..whole(&group)
        },
    );
    first.extend(rest);
    assert_eq!(numbers(&first), (0..3000).collect::<Vec<_>>());
}

fn custom_groups_hold_their_own_streams_and_events_apart_from_functions(f: &Fixture) {
    let store = &*f.store;
    let app = LogGroup::from_name("app");
    // A custom group named like a function stays apart from that function's group.
    let f_named = LogGroup::from_name("f");
    assert_eq!(f_named, LogGroup::Custom("f".into()));
    assert!(store.create_log_group(&app, 5).unwrap());
    assert!(!store.create_log_group(&app, 6).unwrap(), "it exists");
    assert_eq!(store.log_group(&app).unwrap().unwrap().created_ms, 5);
    assert!(store.create_log_group(&f_named, 5).unwrap());
    // The function's own group, made by its lines below, is not counted.
    assert_eq!(store.custom_log_group_count().unwrap(), 2);
    assert!(store.create_log_stream(&app, "s1", 7).unwrap());
    assert!(!store.create_log_stream(&app, "s1", 8).unwrap());
    store
        .append_events(&app, "s1", &[(100, "a".into()), (90, "b".into())], 200)
        .unwrap();
    store.append_events(&app, "s1", &[], 300).unwrap();
    store
        .append_logs(&[log_line("f", 1, "function line", LogSource::Function)])
        .unwrap();
    assert_eq!(store.custom_log_group_count().unwrap(), 2);

    let events = scan(store, &whole(&app));
    let got: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.message.as_str(),
                e.timestamp_ms,
                e.ingestion_ms,
                e.stream.as_deref(),
                e.source,
                e.request_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a", 100, 200, Some("s1"), LogSource::Function, None),
            ("b", 90, 200, Some("s1"), LogSource::Function, None)
        ]
    );
    assert!(scan(store, &whole(&f_named)).is_empty());
    let stream = &store.list_log_streams(&app, &streams("s")).unwrap()[0];
    assert_eq!(
        (
            stream.created_ms,
            stream.first_event_ms,
            stream.last_event_ms,
            stream.last_ingestion_ms
        ),
        (7, Some(90), Some(100), Some(200))
    );

    let names = group_names(store, "", "");
    assert_eq!(names, ["/aws/lambda/f", "app", "f"]);
    let page: Vec<_> = store
        .list_log_groups("", "", Some("/aws/lambda/f"), 1)
        .unwrap()
        .into_iter()
        .map(|g| g.group.name())
        .collect();
    assert_eq!(page, ["app"]);
    assert_eq!(group_names(store, "/aws/", "").len(), 1);
    assert_eq!(
        group_names(store, "", "LAMB"),
        ["/aws/lambda/f"],
        "a pattern ignores case"
    );

    store.create_log_stream(&app, "s0", 9).unwrap();
    let newest_first: Vec<_> = store
        .list_log_streams(
            &app,
            &StreamQuery {
                by_last_event: true,
                descending: true,
                ..streams("")
            },
        )
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(newest_first, ["s1", "s0"]);
    let oldest_first: Vec<_> = store
        .list_log_streams(
            &app,
            &StreamQuery {
                by_last_event: true,
                ..streams("")
            },
        )
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        oldest_first,
        ["s0", "s1"],
        "a stream without events by its creation"
    );
    let second: Vec<_> = store
        .list_log_streams(
            &app,
            &StreamQuery {
                offset: 1,
                ..streams("")
            },
        )
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(second, ["s1"]);
    let by_name_descending: Vec<_> = store
        .list_log_streams(
            &app,
            &StreamQuery {
                descending: true,
                limit: 1,
                ..streams("")
            },
        )
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(by_name_descending, ["s1"]);
    assert!(store.delete_log_stream(&app, "s1").unwrap());
    assert!(!store.delete_log_stream(&app, "s1").unwrap());
    assert!(scan(store, &whole(&app)).is_empty());
    assert!(store.delete_log_group(&app).unwrap());
    assert!(!store.delete_log_group(&app).unwrap());
    assert!(store.log_group(&app).unwrap().is_none());
    assert!(store
        .list_log_streams(&app, &streams(""))
        .unwrap()
        .is_empty());
    assert_eq!(store.custom_log_group_count().unwrap(), 1);
    // The function's lines were not touched.
    assert_eq!(store.read_logs(&name("f"), 0, 10).unwrap().len(), 1);
}

/// Listings compare names byte by byte, whatever the database's own collation, and
/// prefixes and patterns are plain text.
fn groups_and_streams_list_in_byte_order(f: &Fixture) {
    let store = &*f.store;
    for g in ["b", "B", "_x", "a_c", "abc", "a%c", "Zed"] {
        store
            .create_log_group(&LogGroup::Custom(g.into()), 1)
            .unwrap();
    }
    assert_eq!(
        group_names(store, "", ""),
        ["B", "Zed", "_x", "a%c", "a_c", "abc", "b"]
    );
    assert_eq!(group_names(store, "a_", ""), ["a_c"]);
    assert_eq!(group_names(store, "a%", ""), ["a%c"]);
    assert_eq!(group_names(store, "", "_"), ["_x", "a_c"]);
    assert_eq!(group_names(store, "", "%"), ["a%c"]);
    assert_eq!(group_names(store, "", "b"), ["B", "abc", "b"]);
    assert_eq!(group_names(store, "", "ZE"), ["Zed"]);
    let after: Vec<_> = store
        .list_log_groups("", "", Some("_x"), 2)
        .unwrap()
        .into_iter()
        .map(|g| g.group.name())
        .collect();
    assert_eq!(after, ["a%c", "a_c"]);

    let group = LogGroup::Custom("b".into());
    for s in ["s_2", "S1", "s%1", "s12"] {
        store.create_log_stream(&group, s, 1).unwrap();
    }
    let listed = |prefix: &str| -> Vec<String> {
        store
            .list_log_streams(&group, &streams(prefix))
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(listed(""), ["S1", "s%1", "s12", "s_2"]);
    assert_eq!(listed("s_"), ["s_2"]);
    assert_eq!(listed("s%"), ["s%1"]);
    assert_eq!(listed("s"), ["s%1", "s12", "s_2"]);
}

fn a_groups_retention_deletes_its_old_events_at_once_and_on_every_prune(f: &Fixture) {
    let store = &*f.store;
    let app = LogGroup::Custom("app".into());
    let other = LogGroup::Custom("other".into());
    let day = 24 * 3600 * 1000;
    let now = 100 * day;
    for g in [&app, &other] {
        store.create_log_group(g, 0).unwrap();
        store.create_log_stream(g, "s", 0).unwrap();
        store
            .append_events(
                g,
                "s",
                &[(now - 3 * day, "old".into()), (now, "new".into())],
                now,
            )
            .unwrap();
    }
    assert!(store.set_log_retention(&app, Some(1), now).unwrap());
    let left: Vec<_> = scan(store, &whole(&app))
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(left, ["new"]);
    assert_eq!(
        scan(store, &whole(&other)).len(),
        2,
        "other groups keep theirs"
    );
    assert_eq!(
        store.log_group(&app).unwrap().unwrap().retention_days,
        Some(1)
    );
    assert!(!store
        .set_log_retention(&LogGroup::Custom("missing".into()), Some(1), now)
        .unwrap());

    // Later, the pruner applies it to what has aged since.
    let report = store
        .prune_logs(&retention(i64::MAX / 2, u64::MAX), now + 2 * day)
        .unwrap();
    assert_eq!(report.expired, 1);
    assert!(scan(store, &whole(&app)).is_empty());
    assert!(
        store
            .list_log_streams(&app, &streams(""))
            .unwrap()
            .is_empty(),
        "a stream whose events all expired goes"
    );
    assert_eq!(scan(store, &whole(&other)).len(), 2);
    assert!(store.set_log_retention(&app, None, now).unwrap());
    assert_eq!(store.log_group(&app).unwrap().unwrap().retention_days, None);
}

/// A function's group is deleted with every line (more than one batch of them), and its
/// next line makes it anew.
fn deleting_a_functions_group_deletes_its_lines_and_a_new_line_makes_it_again(f: &Fixture) {
    let store = &*f.store;
    let mut lines: Vec<_> = (0..4500)
        .map(|i| log_line("f", 10 + i, "x", LogSource::Function))
        .collect();
    lines[0].stream = Some("s".into());
    for chunk in lines.chunks(1000) {
        store.append_logs(chunk).unwrap();
    }
    store
        .append_logs(&[log_line("g", 1, "g's", LogSource::Function)])
        .unwrap();
    let group = LogGroup::Function(name("f"));
    assert!(store.delete_log_group(&group).unwrap());
    assert!(store.read_logs(&name("f"), 0, 10).unwrap().is_empty());
    assert!(store.log_group(&group).unwrap().is_none());
    assert!(store
        .list_log_streams(&group, &streams(""))
        .unwrap()
        .is_empty());
    assert_eq!(store.read_logs(&name("g"), 0, 10).unwrap().len(), 1);

    store
        .append_logs(&[log_line("f", 7, "again", LogSource::Function)])
        .unwrap();
    assert_eq!(store.log_group(&group).unwrap().unwrap().created_ms, 7);
    assert_eq!(messages(&scan(store, &whole(&group))), ["again"]);
}

fn a_scan_stops_when_told(f: &Fixture) {
    let store = &*f.store;
    let lines: Vec<_> = (0..10)
        .map(|i| log_line("f", i, &i.to_string(), LogSource::Function))
        .collect();
    store.append_logs(&lines).unwrap();
    let group = LogGroup::Function(name("f"));
    let mut seen = 0;
    store
        .scan_events(&whole(&group), &mut |_| {
            seen += 1;
            if seen == 3 {
                Scan::Stop
            } else {
                Scan::Continue
            }
        })
        .unwrap();
    assert_eq!(seen, 3);
}

/// Lines survive reopening the store, and a second store on the same data sees the
/// first's lines and continues their order.
fn logs_outlive_the_store_and_a_second_store_continues_them(f: &Fixture) {
    f.store
        .append_logs(&[log_line("f", 1, "first", LogSource::Platform)])
        .unwrap();
    let app = LogGroup::Custom("app".into());
    f.store.create_log_group(&app, 3).unwrap();
    f.store.set_log_retention(&app, Some(7), 3).unwrap();
    let second = f.reopen();
    second
        .append_logs(&[log_line("f", 2, "second", LogSource::Function)])
        .unwrap();
    for store in [&f.store, &second] {
        let read = store.read_logs(&name("f"), 0, 10).unwrap();
        let got: Vec<_> = read
            .iter()
            .map(|r| (r.message.as_str(), r.source))
            .collect();
        assert_eq!(
            got,
            [
                ("first", LogSource::Platform),
                ("second", LogSource::Function)
            ]
        );
        let info = store.log_group(&app).unwrap().unwrap();
        assert_eq!((info.created_ms, info.retention_days), (3, Some(7)));
    }
}

/// Writers on two stores (two nodes) append to one function at once while a reader tails
/// it by `read_logs` after the last seq it saw: no line is lost, none is read twice, each
/// writer's lines keep their order, and the tail misses nothing (a line that appeared
/// behind a seq the reader had passed would be lost to it).
fn concurrent_writers_on_two_stores_lose_no_line_and_a_tail_misses_none(f: &Fixture) {
    const WRITERS_PER_STORE: usize = 3;
    const BATCHES: usize = 60;
    const LINES: usize = 5;
    let stores: [Arc<dyn Store>; 2] = [f.store.clone(), f.reopen()];
    let done = Arc::new(AtomicBool::new(false));
    let tail = {
        let store = stores[0].clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen: Vec<LogRecord> = Vec::new();
            let mut after = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_logs(&name("f"), after, 50).unwrap();
                if let Some(last) = page.last() {
                    after = last.seq;
                }
                let empty = page.is_empty();
                seen.extend(page);
                if finished && empty {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..2 * WRITERS_PER_STORE)
        .map(|w| {
            let store = stores[w % 2].clone();
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let batch: Vec<_> = (0..LINES)
                        .map(|i| {
                            let mut l = log_line(
                                "f",
                                b as i64,
                                &format!("{w} {b} {i}"),
                                LogSource::Function,
                            );
                            l.stream = Some(format!("writer-{w}"));
                            l
                        })
                        .collect();
                    store.append_logs(&batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let tailed = tail.join().unwrap();

    let total = 2 * WRITERS_PER_STORE * BATCHES * LINES;
    let all = stores[1].read_logs(&name("f"), 0, 100_000).unwrap();
    assert_eq!(all.len(), total, "no line lost");
    let unique: BTreeSet<_> = all.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(unique.len(), total, "no line twice");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    for w in 0..2 * WRITERS_PER_STORE {
        let own: Vec<(usize, usize)> = all
            .iter()
            .filter(|r| r.message.starts_with(&format!("{w} ")))
            .map(|r| {
                let mut parts = r.message.split(' ').skip(1);
                (
                    parts.next().unwrap().parse().unwrap(),
                    parts.next().unwrap().parse().unwrap(),
                )
            })
            .collect();
        let in_order: Vec<_> = (0..BATCHES)
            .flat_map(|b| (0..LINES).map(move |i| (b, i)))
            .collect();
        assert_eq!(own, in_order, "writer {w}'s lines in its order");
        assert!(all
            .iter()
            .filter(|r| r.message.starts_with(&format!("{w} ")))
            .all(|r| r.stream.as_deref() == Some(format!("writer-{w}").as_str())));
    }
    let tailed_seqs: Vec<i64> = tailed.iter().map(|r| r.seq).collect();
    let all_seqs: Vec<i64> = all.iter().map(|r| r.seq).collect();
    let missed: Vec<_> = all_seqs
        .iter()
        .filter(|s| !tailed_seqs.contains(s))
        .collect();
    assert!(
        missed.is_empty(),
        "the tail missed the lines of seqs {missed:?}"
    );
    assert_eq!(
        tailed_seqs, all_seqs,
        "the tail saw each line once, in order"
    );
}

contract_tests!(
    logs_are_ordered_per_function_and_resume_after_seq,
    logs_keep_who_wrote_them,
    lines_keep_any_text_they_hold,
    a_batch_across_functions_and_streams_keeps_its_order,
    batches_of_any_size_keep_every_line_in_order,
    prune_logs_drops_expired_lines_only,
    prune_logs_expires_more_lines_than_one_batch,
    prune_logs_keeps_the_newest_lines_under_the_size_cap,
    a_functions_lines_make_its_log_group_and_streams,
    a_long_scan_reads_every_event_once_in_order_both_ways,
    custom_groups_hold_their_own_streams_and_events_apart_from_functions,
    groups_and_streams_list_in_byte_order,
    a_groups_retention_deletes_its_old_events_at_once_and_on_every_prune,
    deleting_a_functions_group_deletes_its_lines_and_a_new_line_makes_it_again,
    a_scan_stops_when_told,
    logs_outlive_the_store_and_a_second_store_continues_them,
    concurrent_writers_on_two_stores_lose_no_line_and_a_tail_misses_none,
);
