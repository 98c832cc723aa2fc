use proptest::prelude::*;

use super::eval::{natural_cmp, SortVal};
use super::*;

const T0: i64 = 1_714_564_800_000; // 2024-05-01 12:00:00.000 UTC
const GROUP: &str = "/aws/lambda/orders";

/// An owned event, for building test inputs.
#[derive(Clone)]
struct Line {
    ts: i64,
    message: String,
    platform: bool,
    stream: &'static str,
}

fn line(ts: i64, message: &str) -> Line {
    Line {
        ts,
        message: message.to_owned(),
        platform: false,
        stream: "s1",
    }
}

fn platform(ts: i64, message: &str) -> Line {
    Line {
        platform: true,
        ..line(ts, message)
    }
}

fn events(lines: &[Line]) -> impl Iterator<Item = Event<'_>> {
    lines.iter().map(|l| Event {
        timestamp_ms: l.ts,
        ingestion_ms: l.ts + 5,
        account_id: "123456789012",
        log_group: GROUP,
        log_stream: l.stream,
        message: &l.message,
        platform: l.platform,
    })
}

fn run(query: &str, lines: &[Line]) -> QueryOutput {
    let q = parse_query(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    q.run(events(lines), None).unwrap()
}

fn rows(query: &str, lines: &[Line]) -> Vec<Vec<(String, String)>> {
    run(query, lines).rows
}

/// The values of one field across rows.
fn column(rows: &[Vec<(String, String)>], field: &str) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.iter()
                .find(|(f, _)| f == field)
                .map_or_else(|| "<none>".to_owned(), |(_, v)| v.clone())
        })
        .collect()
}

fn err(query: &str) -> QueryError {
    match parse_query(query) {
        Ok(q) => panic!("{query} parsed: {q:?}"),
        Err(e) => e,
    }
}

fn lambda_log() -> Vec<Line> {
    vec![
        platform(T0, "START RequestId: r1 Version: $LATEST"),
        line(T0 + 10, "2024-05-01T12:00:00.010Z\tr1\tINFO\tprocessing order 7"),
        line(T0 + 20, r#"{"level":"ERROR","latency":250,"user":{"id":7,"tier":"gold"},"items":[{"sku":"a"},{"sku":"b"}],"@odd":"at","ok":true}"#),
        platform(T0 + 30, "END RequestId: r1"),
        platform(
            T0 + 31,
            "REPORT RequestId: r1\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size: 128 MB\tMax Memory Used: 70 MB\tInit Duration: 150.50 ms\t",
        ),
        platform(T0 + 60_000, "START RequestId: r2 Version: $LATEST"),
        line(T0 + 60_010, r#"{"level":"INFO","latency":40,"user":{"id":8,"tier":"free"}}"#),
        platform(T0 + 60_020, "END RequestId: r2"),
        platform(
            T0 + 60_021,
            "REPORT RequestId: r2\tDuration: 12.00 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 71 MB\t",
        ),
        // A function forging a platform line gets no Lambda fields.
        line(T0 + 60_030, "REPORT RequestId: forged\tDuration: 99999 ms"),
    ]
}

// ---- defaults ----

#[test]
fn default_output_is_timestamp_and_message_newest_first() {
    let out = run("filter @message like 'RequestId'", &lambda_log());
    assert_eq!(
        out.rows[0],
        [
            (
                "@timestamp".to_owned(),
                "2024-05-01 12:01:00.030".to_owned()
            ),
            (
                "@message".to_owned(),
                "REPORT RequestId: forged\tDuration: 99999 ms".to_owned()
            ),
        ]
    );
    assert_eq!(out.rows.len(), 7);
    let times = column(&out.rows, "@timestamp");
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    assert_eq!(out.statistics.records_scanned, 10.0);
    assert_eq!(out.statistics.records_matched, 7.0);
    let bytes: usize = lambda_log().iter().map(|l| l.message.len()).sum();
    assert_eq!(out.statistics.bytes_scanned, bytes as f64);
}

#[test]
fn system_fields() {
    let lines = vec![line(T0 + 1, "hello")];
    let r = rows(
        "fields @timestamp, @ingestionTime, @message, @logStream, @log, @nothing",
        &lines,
    );
    assert_eq!(
        r,
        [vec![
            (
                "@timestamp".to_owned(),
                "2024-05-01 12:00:00.001".to_owned()
            ),
            (
                "@ingestionTime".to_owned(),
                "2024-05-01 12:00:00.006".to_owned()
            ),
            ("@message".to_owned(), "hello".to_owned()),
            ("@logStream".to_owned(), "s1".to_owned()),
            ("@log".to_owned(), format!("123456789012:{GROUP}")),
        ]]
    );
    let q = parse_query("fields @log").unwrap();
    let event = Event {
        timestamp_ms: 0,
        ingestion_ms: 0,
        account_id: "",
        log_group: "g",
        log_stream: "s",
        message: "m",
        platform: false,
    };
    let out = q.run([event], None).unwrap();
    assert_eq!(out.rows, [vec![("@log".to_owned(), "g".to_owned())]]);
}

#[test]
fn limits_default_cap_and_query() {
    let lines: Vec<Line> = (0..2500).map(|i| line(T0 + i, "x")).collect();
    assert_eq!(rows("fields @message", &lines).len(), DEFAULT_LIMIT);
    assert_eq!(rows("fields @message | limit 5", &lines).len(), 5);
    let q = parse_query("fields @message | limit 20").unwrap();
    assert_eq!(q.run(events(&lines), Some(7)).unwrap().rows.len(), 7);
    assert_eq!(q.run(events(&lines), Some(70)).unwrap().rows.len(), 20);
    let q = parse_query("fields @message").unwrap();
    assert_eq!(q.run(events(&lines), Some(2000)).unwrap().rows.len(), 2000);
    assert_eq!(q.run(events(&lines), Some(0)).unwrap().rows.len(), 1);
    assert_eq!(q.limit(), None);
    // The newest rows are kept, whatever order they arrive in.
    let newest = rows("fields @timestamp | limit 3", &lines);
    assert_eq!(
        column(&newest, "@timestamp"),
        [
            "2024-05-01 12:00:02.499",
            "2024-05-01 12:00:02.498",
            "2024-05-01 12:00:02.497"
        ]
    );
    let mut reversed = lines.clone();
    reversed.reverse();
    assert_eq!(rows("fields @timestamp | limit 3", &reversed), newest);
}

// ---- fields and discovery ----

#[test]
fn json_fields_are_flattened() {
    let r = rows(
        "filter ispresent(level) | fields level, latency, user.id, user.tier, items.1.sku, @@odd, ok, missing",
        &lambda_log(),
    );
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[1],
        [
            ("level".to_owned(), "ERROR".to_owned()),
            ("latency".to_owned(), "250".to_owned()),
            ("user.id".to_owned(), "7".to_owned()),
            ("user.tier".to_owned(), "gold".to_owned()),
            ("items.1.sku".to_owned(), "b".to_owned()),
            ("@@odd".to_owned(), "at".to_owned()),
            ("ok".to_owned(), "true".to_owned()),
        ]
    );
}

#[test]
fn embedded_json_counts_in_lambda_groups_only() {
    let lines = vec![line(
        T0,
        "2024-05-01T12:00:00Z\tr1\tINFO\t{\"a\": 1, \"b\": \"x\"} tail",
    )];
    assert_eq!(column(&rows("fields a", &lines), "a"), ["1"]);
    let q = parse_query("fields a").unwrap();
    let event = Event {
        timestamp_ms: T0,
        ingestion_ms: T0,
        account_id: "1",
        log_group: "/app/other",
        log_stream: "s",
        message: &lines[0].message,
        platform: false,
    };
    assert_eq!(q.run([event], None).unwrap().rows, [Vec::new()]);
}

#[test]
fn json_fields_are_capped_at_one_hundred() {
    let object: Vec<String> = (0..150).map(|i| format!("\"f{i}\": {i}")).collect();
    let lines = vec![line(T0, &format!("{{{}}}", object.join(",")))];
    let names: Vec<String> = (0..150).map(|i| format!("f{i}")).collect();
    let r = rows(&format!("fields {}", names.join(", ")), &lines);
    assert_eq!(r[0].len(), record::MAX_JSON_FIELDS);
}

#[test]
fn lambda_fields_come_from_platform_lines() {
    let r = rows(
        "filter @type = 'REPORT' | fields @requestId, @duration, @billedDuration, @memorySize, @maxMemoryUsed, @initDuration",
        &lambda_log(),
    );
    assert_eq!(
        r,
        [
            vec![
                ("@requestId".to_owned(), "r2".to_owned()),
                ("@duration".to_owned(), "12".to_owned()),
                ("@billedDuration".to_owned(), "13".to_owned()),
                ("@memorySize".to_owned(), "128000000".to_owned()),
                ("@maxMemoryUsed".to_owned(), "71000000".to_owned()),
            ],
            vec![
                ("@requestId".to_owned(), "r1".to_owned()),
                ("@duration".to_owned(), "102.25".to_owned()),
                ("@billedDuration".to_owned(), "103".to_owned()),
                ("@memorySize".to_owned(), "128000000".to_owned()),
                ("@maxMemoryUsed".to_owned(), "70000000".to_owned()),
                ("@initDuration".to_owned(), "150.5".to_owned()),
            ],
        ]
    );
    let starts = rows(
        "filter @type in ['START', 'END'] | fields @type, @requestId | sort @timestamp asc",
        &lambda_log(),
    );
    assert_eq!(column(&starts, "@type"), ["START", "END", "START", "END"]);
    assert_eq!(column(&starts, "@requestId"), ["r1", "r1", "r2", "r2"]);
    assert!(rows("filter @requestId = 'forged'", &lambda_log()).is_empty());
}

#[test]
fn computed_fields_feed_later_commands() {
    let r = rows(
        "filter @type = 'REPORT' | fields @duration / 1000 as seconds, @maxMemoryUsed / @memorySize * 100 as pct_used | filter seconds > 0.05 | display seconds, pct_used",
        &lambda_log(),
    );
    assert_eq!(
        r,
        [vec![
            ("seconds".to_owned(), "0.10225".to_owned()),
            ("pct_used".to_owned(), "54.6875".to_owned())
        ]]
    );
    let unnamed = rows(
        "filter ispresent(latency) | fields latency * 2 | sort @timestamp asc",
        &lambda_log(),
    );
    assert_eq!(column(&unnamed, "latency * 2"), ["500", "80"]);
}

// ---- filter expressions ----

#[test]
fn filter_operators() {
    let lines: Vec<Line> = [
        r#"{"n": 1, "s": "alpha", "t": "Exception thrown"}"#,
        r#"{"n": 2, "s": "beta"}"#,
        r#"{"n": 3, "s": "gamma", "t": "fine"}"#,
        r#"{"n": "4", "s": "delta"}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| line(T0 + i as i64, m))
    .collect();
    let ns = |q: &str| {
        let mut v = column(&rows(&format!("{q} | fields n | sort n"), &lines), "n");
        v.sort();
        v
    };
    assert_eq!(ns("filter n = 2"), ["2"]);
    assert_eq!(ns("filter n != 2"), ["1", "3", "4"]);
    assert_eq!(ns("filter n > 2"), ["3", "4"]);
    assert_eq!(ns("filter n >= 2 and n < 4"), ["2", "3"]);
    assert_eq!(ns("filter n <= 1 or s = 'delta'"), ["1", "4"]);
    assert_eq!(ns("filter not (n = 1 or n = 2)"), ["3", "4"]);
    assert_eq!(ns("filter (n = 1 or n = 2) and not s = \"beta\""), ["1"]);
    assert_eq!(ns("filter n + 1 = 3"), ["2"]);
    assert_eq!(ns("filter n * 2 - 1 > 4"), ["3", "4"]);
    assert_eq!(ns("filter n / 2 = 1"), ["2"]);
    assert_eq!(ns("filter n % 2 = 1"), ["1", "3"]);
    assert_eq!(ns("filter 2 ^ n = 8"), ["3"]);
    assert_eq!(ns("filter -n < -2"), ["3", "4"]);
    assert_eq!(ns("filter s like 'lt'"), ["4"]);
    assert_eq!(ns("filter s like /^[ab]/"), ["1", "2"]);
    assert_eq!(ns("filter s =~ /a$/"), ["1", "2", "3", "4"]);
    assert_eq!(ns("filter s not like /mm/"), ["1", "2", "4"]);
    assert_eq!(ns("filter t like /(?i)exception/"), ["1"]);
    assert_eq!(ns("filter s in ['beta', 'gamma']"), ["2", "3"]);
    assert_eq!(ns("filter n in [1, 4]"), ["1", "4"]);
    assert_eq!(ns("filter n not in [1, 4]"), ["2", "3"]);
    assert_eq!(ns("filter ispresent(t)"), ["1", "3"]);
    assert_eq!(ns("filter not ispresent(t)"), ["2", "4"]);
    // Comparisons with a missing field are false, both ways.
    assert_eq!(ns("filter t = 'fine'"), ["3"]);
    assert_eq!(ns("filter t != 'fine'"), ["1"]);
    assert_eq!(ns("filter s > 'beta'"), ["3", "4"]);
    assert_eq!(ns("where n = 1"), ["1"]);
    assert_eq!(ns("filter `n` = 1"), ["1"]);
    assert_eq!(ns("FILTER n = 1 AND s LIKE 'al'"), ["1"]);
}

// ---- sort ----

#[test]
fn natural_order_is_insights_order() {
    let expected = [
        "!:",
        "#",
        "*%04",
        "0#",
        "5A",
        "111A",
        "2345_",
        "@",
        "@_",
        "A",
        "A9876fghj",
        "a12345hfh",
        "0",
        "01",
        "1",
        "2",
        "3",
    ];
    let mut shuffled: Vec<SortVal> = expected
        .iter()
        .rev()
        .map(|s| match crate::number::parse_number(s) {
            Some(n) => SortVal::Num(n),
            None => SortVal::Text((*s).to_owned()),
        })
        .collect();
    shuffled.sort_by(natural_cmp);
    let got: Vec<String> = shuffled
        .iter()
        .map(|v| match v {
            SortVal::Text(s) => s.clone(),
            SortVal::Num(n) => n.to_string(),
        })
        .collect();
    assert_eq!(
        got,
        [
            "!:",
            "#",
            "*%04",
            "0#",
            "5A",
            "111A",
            "2345_",
            "@",
            "@_",
            "A",
            "A9876fghj",
            "a12345hfh",
            "0",
            "1",
            "1",
            "2",
            "3"
        ]
    );
}

#[test]
fn sort_directions_and_missing_values() {
    let lines: Vec<Line> = [
        r#"{"v": 10}"#,
        r#"{"v": 9}"#,
        "{}",
        r#"{"v": "x"}"#,
        r#"{"v": 100}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| line(T0 + i as i64, m))
    .collect();
    let order = |q: &str| column(&rows(q, &lines), "v");
    assert_eq!(
        order("fields v | sort v"),
        ["x", "9", "10", "100", "<none>"]
    );
    assert_eq!(
        order("fields v | sort v asc"),
        ["x", "9", "10", "100", "<none>"]
    );
    assert_eq!(
        order("fields v | sort v desc"),
        ["100", "10", "9", "x", "<none>"]
    );
    assert_eq!(order("fields v | sort v desc | limit 2"), ["100", "10"]);
    assert_eq!(
        order("fields v | sort ispresent(v) desc, @timestamp asc"),
        ["10", "9", "x", "100", "<none>"]
    );
}

// ---- stats ----

#[test]
fn stats_without_groups() {
    let r = rows(
        "filter @type = 'REPORT' | stats count(*), avg(@duration), sum(@billedDuration), min(@duration), max(@duration), pct(@duration, 50), count_distinct(@requestId) as ids",
        &lambda_log(),
    );
    assert_eq!(
        r,
        [vec![
            ("count(*)".to_owned(), "2".to_owned()),
            ("avg(@duration)".to_owned(), "57.125".to_owned()),
            ("sum(@billedDuration)".to_owned(), "116".to_owned()),
            ("min(@duration)".to_owned(), "12".to_owned()),
            ("max(@duration)".to_owned(), "102.25".to_owned()),
            ("pct(@duration, 50)".to_owned(), "12".to_owned()),
            ("ids".to_owned(), "2".to_owned()),
        ]]
    );
    // Nothing matched: counts are zero and the other aggregates have no value.
    let none = rows(
        "filter @type = 'NOPE' | stats count(*) as n, avg(@duration)",
        &lambda_log(),
    );
    assert_eq!(none, [vec![("n".to_owned(), "0".to_owned())]]);
    let out = run("filter @type = 'REPORT' | stats count(*)", &lambda_log());
    assert_eq!(out.statistics.records_matched, 2.0);
    assert_eq!(out.statistics.records_scanned, 10.0);
}

#[test]
fn stats_by_field_and_bin() {
    let lines: Vec<Line> = (0..600)
        .map(|i| {
            line(
                T0 + i * 1_000,
                &format!(
                    r#"{{"status": {}, "ms": {}}}"#,
                    [200, 404, 500][(i % 3) as usize],
                    i
                ),
            )
        })
        .collect();
    let r = rows("stats count(*) as n, max(ms) by status", &lines);
    assert_eq!(column(&r, "status"), ["200", "404", "500"]);
    assert_eq!(column(&r, "n"), ["200", "200", "200"]);
    assert_eq!(column(&r, "max(ms)"), ["597", "598", "599"]);
    let r = rows("stats count(*) by bin(5m)", &lines);
    assert_eq!(
        r,
        [
            vec![
                ("bin(5m)".to_owned(), "2024-05-01 12:00:00.000".to_owned()),
                ("count(*)".to_owned(), "300".to_owned())
            ],
            vec![
                ("bin(5m)".to_owned(), "2024-05-01 12:05:00.000".to_owned()),
                ("count(*)".to_owned(), "300".to_owned())
            ],
        ]
    );
    let r = rows(
        "stats count(*) as n by bin(1h) as hour, status | sort status desc | limit 2",
        &lines,
    );
    assert_eq!(column(&r, "hour"), ["2024-05-01 12:00:00.000"; 2]);
    assert_eq!(column(&r, "status"), ["500", "404"]);
    let r = rows(
        "stats count(*) as n by status | filter status != 404 | sort n desc, status asc",
        &lines,
    );
    assert_eq!(column(&r, "status"), ["200", "500"]);
    let r = rows(
        "stats count(*) by status | sort count(*) desc, status desc | display status",
        &lines,
    );
    assert_eq!(r[0], [("status".to_owned(), "500".to_owned())]);
    let r = rows(
        "stats sum(ms) as total by status | fields total / 1000 as k | display status, k",
        &lines,
    );
    assert_eq!(column(&r, "k"), ["59.7", "59.9", "60.1"]);
    let r = rows("stats count(*) by bin(30s), bin(1d)", &lines);
    assert_eq!(r.len(), 20);
    assert_eq!(column(&r, "bin(1d)")[0], "2024-05-01 00:00:00.000");
}

#[test]
fn stats_on_missing_and_text_values() {
    let lines: Vec<Line> = [
        r#"{"k": "a", "v": "x"}"#,
        r#"{"v": "y"}"#,
        r#"{"k": "a", "v": 3}"#,
        r#"{"k": "b"}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| line(T0 + i as i64, m))
    .collect();
    let r = rows(
        "stats count(*) as n, count(v) as c, min(v), max(v), sum(v), count_distinct(v) as d by k",
        &lines,
    );
    assert_eq!(column(&r, "k"), ["a", "<none>", "b"]);
    assert_eq!(column(&r, "n"), ["2", "1", "1"]);
    assert_eq!(column(&r, "c"), ["2", "1", "0"]);
    // Numbers win over text for min and max; text alone is compared as text.
    assert_eq!(column(&r, "min(v)"), ["3", "y", "<none>"]);
    assert_eq!(column(&r, "max(v)"), ["3", "y", "<none>"]);
    assert_eq!(column(&r, "sum(v)"), ["3", "<none>", "<none>"]);
    assert_eq!(column(&r, "d"), ["2", "1", "0"]);
    let r = rows(
        "stats min(@timestamp) as first, max(@timestamp) as last",
        &lines,
    );
    assert_eq!(column(&r, "first"), ["2024-05-01 12:00:00.000"]);
    assert_eq!(column(&r, "last"), ["2024-05-01 12:00:00.003"]);
}

#[test]
fn percentiles_and_distinct_counts_at_scale() {
    let lines: Vec<Line> = (0..20_000)
        .map(|i| {
            line(
                T0 + i,
                &format!(r#"{{"v": {}, "id": "u{}"}}"#, i % 10_000, i % 5_000),
            )
        })
        .collect();
    let r = rows(
        "stats pct(v, 50) as p50, pct(v, 95) as p95, pct(v, 100) as top, count_distinct(id) as ids",
        &lines,
    );
    let num = |name: &str| column(&r, name)[0].parse::<f64>().unwrap();
    assert!((num("p50") - 5_000.0).abs() < 500.0, "{}", num("p50"));
    assert!((num("p95") - 9_500.0).abs() < 300.0, "{}", num("p95"));
    assert!(num("top") <= 9_999.0);
    assert!(
        (num("ids") - 5_000.0).abs() < 5_000.0 * 0.1,
        "{}",
        num("ids")
    );
    // Exact while small.
    let small: Vec<Line> = (1..=20)
        .map(|i| line(T0 + i, &format!(r#"{{"v": {i}}}"#)))
        .collect();
    let r = rows(
        "stats pct(v, 95) as p, pct(v, 0) as p0, count_distinct(v) as d",
        &small,
    );
    assert_eq!(column(&r, "p"), ["19"]);
    assert_eq!(column(&r, "p0"), ["1"]);
    assert_eq!(column(&r, "d"), ["20"]);
}

#[test]
fn stats_groups_are_capped() {
    let lines: Vec<Line> = (0..(MAX_GROUPS as i64 + 1))
        .map(|i| line(T0 + i, &format!(r#"{{"k": {i}}}"#)))
        .collect();
    let q = parse_query("stats count(*) by k").unwrap();
    assert_eq!(
        q.run(events(&lines), None),
        Err(ExecError::TooManyGroups { max: MAX_GROUPS })
    );
    let fits = parse_query("stats count(*) by k | limit 3").unwrap();
    assert_eq!(fits.run(events(&lines[1..]), None).unwrap().rows.len(), 3);
}

// ---- syntax ----

#[test]
fn newlines_and_comments_separate_commands() {
    let q = "# top errors\nfields @timestamp, @message\nfilter @message like /ERROR/ # inline\n| sort @timestamp desc\nlimit 20";
    let lines = vec![line(T0, "an ERROR"), line(T0 + 1, "fine")];
    assert_eq!(rows(q, &lines).len(), 1);
    let q = parse_query("filter a = 1\n  and b = 2").unwrap();
    assert!(!q.is_stats());
    assert_eq!(
        parse_query("stats count(*)").map(|q| q.is_stats()),
        Ok(true)
    );
    assert_eq!(
        parse_query("fields a, b as c | display c")
            .unwrap()
            .output_fields(),
        ["c"]
    );
}

#[test]
fn unsupported_commands_are_named_with_their_place() {
    for (query, name, line, column) in [
        ("parse @message '* *' as a, b", "parse", 1, 1),
        ("fields a | dedup a", "dedup", 1, 12),
        ("fields a\n| unmask(@message)", "unmask", 2, 3),
        ("pattern @message", "pattern", 1, 1),
        ("frobnicate", "frobnicate", 1, 1),
        ("fields a\nparse x", "parse", 2, 1),
    ] {
        assert_eq!(
            err(query),
            QueryError::UnsupportedCommand {
                name: name.to_owned(),
                line,
                column
            },
            "{query}"
        );
    }
    assert!(err("dedup x")
        .to_string()
        .starts_with("Unsupported command 'dedup' at line 1, position 1"));
}

#[test]
fn unsupported_functions_are_named() {
    let name = |q: &str| match err(q) {
        QueryError::UnsupportedFunction { name, .. } => name,
        e => panic!("{q}: {e}"),
    };
    assert_eq!(name("fields abs(x)"), "abs");
    assert_eq!(name("filter strlen(@message) > 3"), "strlen");
    assert_eq!(name("stats stddev(x)"), "stddev");
    assert_eq!(name("stats latest(@message) by x"), "latest");
    assert!(matches!(
        err("filter count(*) > 1"),
        QueryError::Misplaced { .. }
    ));
    assert!(matches!(
        err("fields bin(5m)"),
        QueryError::Misplaced { .. }
    ));
}

#[test]
fn malformed_queries_are_refused() {
    assert_eq!(err(""), QueryError::Empty);
    assert_eq!(err("  # only a comment\n"), QueryError::Empty);
    for q in [
        "fields",
        "filter",
        "filter a =",
        "filter (a = 1",
        "filter a = 1)",
        "fields a b",
        "fields a |",
        "| fields a",
        "sort",
        "stats",
        "stats count",
        "stats count(*) by",
        "stats pct(x)",
        "stats pct(x, y)",
        "stats count(*) by bin(x)",
        "filter a in 1",
        "filter a in [1, ]",
        "filter a like 3",
        "display 3",
        "fields a as",
        "filter and",
        "limit",
        "limit x",
    ] {
        assert!(
            matches!(
                err(q),
                QueryError::Unexpected { .. } | QueryError::InvalidValue { .. }
            ),
            "{q}: {}",
            err(q)
        );
    }
    for q in ["limit 0", "limit 10001", "limit 2.5", "limit -1"] {
        assert!(matches!(err(q), QueryError::InvalidValue { .. }), "{q}");
    }
    for q in [
        "stats pct(x, 101)",
        "stats count(*) by bin(5x)",
        "stats count(*) by bin(1mo)",
        "stats count(*) by bin(0m)",
        "stats count(*) by bin(1.5m)",
    ] {
        assert!(
            matches!(err(q), QueryError::InvalidValue { .. }),
            "{q}: {}",
            err(q)
        );
    }
    assert!(matches!(
        err("filter a = 'open"),
        QueryError::Unterminated { .. }
    ));
    assert!(matches!(
        err("filter a like /open"),
        QueryError::Unterminated { .. }
    ));
    assert!(matches!(
        err("fields `open"),
        QueryError::Unterminated { .. }
    ));
    assert!(matches!(
        err("filter a like /(/"),
        QueryError::InvalidRegex { .. }
    ));
    assert!(matches!(
        err("filter a like /a{1000}{1000}/"),
        QueryError::InvalidRegex { .. }
    ));
    assert!(matches!(err("filter a ! b"), QueryError::Unexpected { .. }));
    let e = err("fields a\n| filter b = $x");
    assert_eq!(
        e,
        QueryError::Unexpected {
            found: "character '$'".to_owned(),
            expected: "a command, a name, a value or an operator".to_owned(),
            line: 2,
            column: 14
        }
    );
}

#[test]
fn commands_must_come_in_a_supported_order() {
    for q in [
        "sort a | filter b = 1",
        "limit 5 | fields a",
        "sort a | stats count(*)",
        "stats count(*) | stats count(*)",
        "sort a | sort b",
        "limit 1 | limit 2",
        "stats count(*) | limit 2 | filter x = 1",
    ] {
        assert!(
            matches!(err(q), QueryError::Misplaced { .. }),
            "{q}: {}",
            err(q)
        );
    }
    assert!(parse_query("filter a = 1 | sort a | limit 2 | display a").is_ok());
    assert!(
        parse_query("filter a = 1 | stats count(*) by a | filter a = 2 | sort a | limit 1").is_ok()
    );
}

#[test]
fn length_and_depth_are_bounded() {
    let long = format!("filter a = '{}'", "x".repeat(MAX_QUERY_CHARS));
    assert!(matches!(err(&long), QueryError::TooLong { .. }));
    let ok = format!("filter {}a = 1{}", "(".repeat(32), ")".repeat(32));
    assert!(parse_query(&ok).is_ok());
    for deep in [
        format!("filter {}a = 1{}", "(".repeat(33), ")".repeat(33)),
        format!("filter {}a", "not ".repeat(40)),
        format!("filter {}1 = 1", "-".repeat(40)),
        format!("filter a = {}", vec!["1"; 40].join(" + ")),
        format!("filter a = {}", vec!["2"; 40].join(" ^ ")),
        format!("filter {}", "(".repeat(5_000)),
    ] {
        assert!(
            matches!(err(&deep), QueryError::TooDeep { .. }),
            "{}",
            &deep[..40]
        );
    }
    // Long `and`/`or` chains are flat, not deep.
    let wide = format!("filter {}", vec!["a = 1"; 500].join(" or "));
    assert!(parse_query(&wide).is_ok());
}

// ---- properties ----

fn query_strategy() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "fields",
        "filter",
        "stats",
        "sort",
        "limit",
        "display",
        "parse",
        "by",
        "as",
        "bin(5m)",
        "count(*)",
        "avg(",
        "pct(",
        "ispresent(",
        "and",
        "or",
        "not",
        "like",
        "in",
        "asc",
        "desc",
        "|",
        ",",
        "(",
        ")",
        "[",
        "]",
        "=",
        "!=",
        "<",
        ">=",
        "=~",
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "'s'",
        "\"t\"",
        "/re/",
        "`q`",
        "@message",
        "@timestamp",
        "a",
        "b.c",
        "1",
        "2.5",
        "5m",
        "\n",
        " ",
        "#c\n",
        "10000",
    ]);
    prop::collection::vec(atoms, 0..30).prop_map(|parts| parts.join(" "))
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(query in ".{0,300}") {
        if let Ok(q) = parse_query(&query) {
            let lines = lambda_log();
            let _ = q.run(events(&lines), Some(10));
        }
    }

    #[test]
    fn grammar_shaped_queries_never_panic(query in query_strategy()) {
        match parse_query(&query) {
            Ok(q) => {
                let lines = lambda_log();
                let _ = q.run(events(&lines), None);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn limit_and_sort_agree_with_a_full_sort(
        values in prop::collection::vec(0i64..50, 0..200),
        limit in 1usize..30,
    ) {
        let lines: Vec<Line> = values
            .iter()
            .enumerate()
            .map(|(i, v)| line(T0 + i as i64, &format!(r#"{{"v": {v}}}"#)))
            .collect();
        let got = column(&rows(&format!("fields v | sort v desc | limit {limit}"), &lines), "v");
        let mut want = values.clone();
        want.sort_by(|a, b| b.cmp(a));
        want.truncate(limit);
        let want: Vec<String> = want.iter().map(ToString::to_string).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn what_a_query_keeps_is_bounded_in_bytes() {
    // Twenty messages of 1 MiB: more than MAX_RESULT_BYTES kept as rows, or as groups.
    let lines: Vec<Line> = (0..20)
        .map(|i| line(T0 + i, &format!("{i} {}", "x".repeat(1024 * 1024))))
        .collect();
    for query in ["fields @message | limit 100", "stats count(*) by @message"] {
        let q = parse_query(query).unwrap();
        assert_eq!(
            q.run(events(&lines), None).unwrap_err(),
            ExecError::ResultsTooLarge {
                max: MAX_RESULT_BYTES
            },
            "{query}"
        );
    }
    // Kept rows give their bytes back when they are pushed out: the best 5 fit.
    let q = parse_query("fields @message | sort @timestamp desc | limit 5").unwrap();
    assert_eq!(q.run(events(&lines), None).unwrap().rows.len(), 5);
}
