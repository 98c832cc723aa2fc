use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use super::*;

fn query(name: &str) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(0x1234)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// An upstream on loopback that answers every A query with 192.0.2.7.
async fn upstream() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .add_queries(q.queries().to_vec());
            let asked = q.queries()[0].name().clone();
            if asked.to_ascii() == "alias.example." {
                // A redirection into a blocked domain.
                r.add_answer(Record::from_rdata(
                    asked.clone(),
                    60,
                    RData::CNAME(hickory_proto::rr::rdata::CNAME(
                        Name::from_ascii("www.blocked.example.").unwrap(),
                    )),
                ));
            }
            r.add_answer(Record::from_rdata(
                asked,
                60,
                RData::A(Ipv4Addr::new(192, 0, 2, 7).into()),
            ));
            socket.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
        }
    });
    addr
}

struct BlockExample;

impl Policy for BlockExample {
    fn decide(&self, vpc_id: &str, qname: &str) -> Decision {
        if vpc_id == "vpc-1" && qname.trim_end_matches('.').ends_with("blocked.example") {
            Decision::Block {
                rule: "no-blocked".into(),
                nxdomain: true,
            }
        } else {
            Decision::Allow { alerted_by: None }
        }
    }
}

fn client(vpc: Option<&str>) -> Client {
    Client {
        function: "f".into(),
        instance: "i-1".into(),
        vpc_id: vpc.map(str::to_owned),
    }
}

fn wait_for(log: &QueryLog, n: usize) -> Vec<QueryRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = log.recent(Some("f"), 100).unwrap();
        if r.len() >= n || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn queries_are_forwarded_blocked_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = QueryLog::open(&dir.path().join("dns.db")).unwrap();
    let up = upstream().await;
    let resolver = Resolver::new(vec![up], Some(Arc::new(BlockExample)), log.clone());

    let answer = resolver
        .answer(&client(Some("vpc-1")), &query("db.example."))
        .await
        .unwrap();
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.id(), 0x1234);
    assert_eq!(m.answers().len(), 1);

    let blocked = resolver
        .answer(&client(Some("vpc-1")), &query("x.blocked.example."))
        .await
        .unwrap();
    let m = Message::from_vec(&blocked).unwrap();
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(m.answers().is_empty());

    // A name redirected (CNAME) into a blocked domain is blocked too.
    let redirected = resolver
        .answer(&client(Some("vpc-1")), &query("alias.example."))
        .await
        .unwrap();
    let m = Message::from_vec(&redirected).unwrap();
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(m.answers().is_empty());

    // Another VPC's rules do not apply.
    let other = resolver
        .answer(&client(Some("vpc-2")), &query("x.blocked.example."))
        .await
        .unwrap();
    assert_eq!(Message::from_vec(&other).unwrap().answers().len(), 1);

    let records = wait_for(&log, 4);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].name, "db.example.");
    assert_eq!(records[0].answers, ["192.0.2.7"]);
    assert_eq!(records[0].action, "ALLOW");
    assert_eq!(records[1].action, "BLOCK");
    assert_eq!(records[1].rule, "no-blocked");
    assert_eq!(records[1].vpc_id, "vpc-1");
    assert_eq!(
        (records[2].name.as_str(), records[2].action.as_str()),
        ("alias.example.", "BLOCK")
    );
    assert_eq!(records[3].vpc_id, "vpc-2");
}

#[tokio::test]
async fn bad_queries_get_formerr_or_nothing_and_a_dead_upstream_servfail() {
    let dir = tempfile::tempdir().unwrap();
    let log = QueryLog::open(&dir.path().join("dns.db")).unwrap();
    // Nothing listens on this upstream: the query is refused at once.
    let dead = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let resolver = Resolver::new(vec![dead_addr], None, log);
    assert_eq!(resolver.answer(&client(None), b"short").await, None);
    let mut garbage = vec![0xab, 0xcd];
    garbage.extend([0xff; 20]);
    let r = resolver.answer(&client(None), &garbage).await.unwrap();
    let m = Message::from_vec(&r).unwrap();
    assert_eq!((m.id(), m.response_code()), (0xabcd, ResponseCode::FormErr));
    let r = resolver
        .answer(&client(None), &query("a.example."))
        .await
        .unwrap();
    assert_eq!(
        Message::from_vec(&r).unwrap().response_code(),
        ResponseCode::ServFail
    );
    // A response sent to the resolver is not answered.
    let mut response = Message::from_vec(&query("a.example.")).unwrap();
    response.set_message_type(MessageType::Response);
    assert_eq!(
        resolver
            .answer(&client(None), &response.to_vec().unwrap())
            .await,
        None
    );
}

#[test]
fn nameservers_come_from_resolv_conf() {
    let conf = "# comment\nnameserver 10.0.0.2\nsearch x\nnameserver ::1\nnameserver bad\n";
    assert_eq!(
        nameservers(conf),
        vec![
            "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
}

proptest! {
    /// Whatever bytes an instance sends, the resolver answers or stays silent: it never
    /// panics, and an answer always carries the query's id.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = QueryLog::open(&dir.path().join("dns.db")).unwrap();
        let resolver = Resolver::new(Vec::new(), None, log);
        if let Some(r) = rt.block_on(resolver.answer(&client(None), &bytes)) {
            prop_assert_eq!(&r[..2], &bytes[..2]);
        }
    }
}

/// Nodes sharing a store keep one query log: what one node's resolver logged, another
/// node reads, newest last, filtered by function.
#[test]
fn nodes_sharing_a_store_read_each_others_queries() {
    let url = warden_testservers::Postgres::shared()
        .fresh_database()
        .unwrap();
    let pool = || {
        warden_postgres::Pool::open(
            &url,
            &warden_postgres::Options::default(),
            &[crate::POSTGRES_TRACK],
        )
        .unwrap()
    };
    let (a, b) = (
        QueryLog::open_shared(pool()).unwrap(),
        QueryLog::open_shared(pool()).unwrap(),
    );
    let record = |function: &str, name: &str, time_ms: i64| QueryRecord {
        time_ms,
        function: function.into(),
        instance: "i-1".into(),
        vpc_id: "vpc-1".into(),
        name: name.into(),
        query_type: "A".into(),
        action: "BLOCK".into(),
        rule: "rslvr-frr-1".into(),
        response_code: "Non-Existent Domain".into(),
        answers: vec!["10.0.0.1".into(), "alias.example.".into()],
    };
    a.record(record("f", "one.example.", 1));
    assert_eq!(wait_for(&b, 1).len(), 1);
    b.record(record("f", "two.example.", 2));
    b.record(record("g", "other.example.", 3));
    let seen = wait_for(&a, 2);
    assert_eq!(
        seen.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["one.example.", "two.example."]
    );
    assert_eq!(seen[0], record("f", "one.example.", 1));
    assert_eq!(a.recent(None, 10).unwrap().len(), 3);
    assert_eq!(a.recent(Some("f"), 1).unwrap()[0].name, "two.example.");
}
