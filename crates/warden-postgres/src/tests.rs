use std::sync::atomic::{AtomicUsize, Ordering};

use warden_testservers::Postgres;

use super::*;

fn fresh() -> String {
    Postgres::shared().fresh_database().unwrap()
}

const ONE: &[Migration] = &[Migration::additive(
    "CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
)];

const TWO: &[Migration] = &[
    Migration::additive("CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"),
    Migration::additive("ALTER TABLE things ADD COLUMN note TEXT"),
];

const BREAKING: &[Migration] = &[
    Migration::additive("CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"),
    Migration::additive("ALTER TABLE things ADD COLUMN note TEXT"),
    Migration {
        sql: "ALTER TABLE things DROP COLUMN name",
        breaks_older_builds: true,
    },
];

fn track(migrations: &'static [Migration]) -> Track {
    Track {
        name: "things",
        migrations,
    }
}

fn schema(url: &str) -> (i64, i64) {
    let mut c = postgres::Client::connect(url, NoTls).unwrap();
    let r = c
        .query_one(
            "SELECT version, compatible_from FROM warden_schema WHERE track = 'things'",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

#[test]
fn the_password_never_shows_in_a_redacted_url() {
    assert_eq!(
        redacted("postgres://warden:s3cr@t@db.internal:5432/warden"),
        "postgres://warden:***@db.internal:5432/warden"
    );
    assert_eq!(
        redacted("postgres://warden@db/warden"),
        "postgres://warden@db/warden"
    );
    assert_eq!(redacted("host=db user=w"), "host=db user=w");
}

#[test]
fn a_bad_url_is_refused_without_its_password() {
    let e = Pool::open(
        "postgres://u:hunter2@127.0.0.1:1/db?sslmode=require",
        &Options::default(),
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = Pool::open(
        "postgres://u:hunter2@127.0.0.1:1/db?nonsense=1",
        &Options::default(),
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, Error::BadUrl { .. }), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn a_wrong_password_is_a_connect_error_that_does_not_repeat_it() {
    let url = fresh().replacen("@127.0.0.1", "x@127.0.0.1", 1);
    let e = Pool::open(&url, &Options::default(), &[]).unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(!e.to_string().contains(password), "{e}");
}

#[test]
fn migrations_apply_once_and_record_the_version() {
    let url = fresh();
    let pool = Pool::open(&url, &Options::default(), &[track(ONE)]).unwrap();
    drop(pool);
    assert_eq!(schema(&url), (1, 0));
    // Opening again applies nothing (the CREATE TABLE would fail if it ran twice).
    Pool::open(&url, &Options::default(), &[track(ONE)]).unwrap();
    Pool::open(&url, &Options::default(), &[track(TWO)]).unwrap();
    assert_eq!(schema(&url), (2, 0));
}

#[test]
fn an_older_build_uses_an_additively_newer_schema_but_not_a_broken_one() {
    let url = fresh();
    Pool::open(&url, &Options::default(), &[track(TWO)]).unwrap();
    // A build that knows one step opens a schema at version 2 whose steps were additive.
    Pool::open(&url, &Options::default(), &[track(ONE)]).unwrap();
    assert_eq!(
        schema(&url),
        (2, 0),
        "an older build never moves the version back"
    );
    Pool::open(&url, &Options::default(), &[track(BREAKING)]).unwrap();
    assert_eq!(schema(&url), (3, 3));
    let e = Pool::open(&url, &Options::default(), &[track(TWO)]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::SchemaTooNew {
                found: 3,
                compatible_from: 3,
                supported: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn nodes_starting_together_migrate_once() {
    let url = fresh();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                Pool::open(&url, &Options::default(), &[track(TWO)]).map(drop)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(schema(&url), (2, 0));
}

#[test]
fn run_answers_from_any_thread_and_bounds_the_connections() {
    let url = fresh();
    let pool = Pool::open(
        &url,
        &Options {
            connections: 2,
            ..Options::default()
        },
        &[track(ONE)],
    )
    .unwrap();
    let handles: Vec<_> = (0..8i64)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                pool.run(move |c| -> Result<u64, Error> {
                    let s = c
                        .prepare("INSERT INTO things (id, name) VALUES ($1, $2)")
                        .map_err(Error::at("preparing"))?;
                    c.client()
                        .execute(&s, &[&i, &format!("t{i}")])
                        .map_err(Error::at("inserting"))
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), 1);
    }
    let (count, backends) = pool
        .run(|c| -> Result<(i64, i64), Error> {
            let n = c
                .client()
                .query_one("SELECT count(*) FROM things", &[])
                .map_err(Error::at("counting"))?
                .get(0);
            let b = c
                .client()
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'warden' AND datname = current_database()",
                    &[],
                )
                .map_err(Error::at("counting backends"))?
                .get(0);
            Ok((n, b))
        })
        .unwrap();
    assert_eq!(count, 8);
    assert_eq!(backends, 2);
}

#[test]
fn a_connection_the_server_closed_is_opened_again() {
    let url = fresh();
    let pool = Pool::open(
        &url,
        &Options {
            connections: 1,
            ..Options::default()
        },
        &[],
    )
    .unwrap();
    let pid = |pool: &Pool| -> i32 {
        pool.run(|c| -> Result<i32, Error> {
            Ok(c.client()
                .query_one("SELECT pg_backend_pid()", &[])
                .map_err(Error::at("pid"))?
                .get(0))
        })
        .unwrap()
    };
    let before = pid(&pool);
    let mut admin = postgres::Client::connect(&url, NoTls).unwrap();
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&before])
        .unwrap();
    // The terminated connection fails the first job that uses it or is noticed closed;
    // either way a later job runs on a new connection.
    let mut after = None;
    for _ in 0..3 {
        let r = pool.run(|c| -> Result<i32, Error> {
            Ok(c.client()
                .query_one("SELECT pg_backend_pid()", &[])
                .map_err(Error::at("pid"))?
                .get(0))
        });
        if let Ok(p) = r {
            after = Some(p);
            break;
        }
    }
    assert!(after.is_some_and(|p| p != before));
}

#[test]
fn a_panicking_job_loses_its_answer_but_not_the_pool() {
    let pool = Pool::open(
        &fresh(),
        &Options {
            connections: 1,
            ..Options::default()
        },
        &[],
    )
    .unwrap();
    let r: Result<(), Error> = pool.run(|_| panic!("a bug in a store"));
    assert!(matches!(r, Err(Error::Closed)));
    let r: Result<i32, Error> = pool.run(|c| {
        Ok(c.client()
            .query_one("SELECT 7", &[])
            .map_err(Error::at("select"))?
            .get(0))
    });
    assert_eq!(r.unwrap(), 7);
}

#[test]
fn serialization_failures_are_retried() {
    let url = fresh();
    let pool = Pool::open(
        &url,
        &Options {
            connections: 4,
            ..Options::default()
        },
        &[track(ONE)],
    )
    .unwrap();
    pool.run(|c| -> Result<(), Error> {
        c.client()
            .execute("INSERT INTO things (id, name) VALUES (0, '0')", &[])
            .map_err(Error::at("seed"))?;
        Ok(())
    })
    .unwrap();
    // Serializable read-modify-write increments from several connections at once: some
    // fail with a serialization failure and must be run again, none may be lost.
    static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    pool.run(|c| {
                        c.transaction(|tx| -> Result<(), postgres::Error> {
                            ATTEMPTS.fetch_add(1, Ordering::Relaxed);
                            tx.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")?;
                            let n: String = tx
                                .query_one("SELECT name FROM things WHERE id = 0", &[])?
                                .get(0);
                            let next = (n.parse::<i64>().unwrap_or(0) + 1).to_string();
                            tx.execute("UPDATE things SET name = $1 WHERE id = 0", &[&next])?;
                            Ok(())
                        })
                        .map_err(Error::at("incrementing"))
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let n: String = pool
        .run(|c| -> Result<String, Error> {
            Ok(c.client()
                .query_one("SELECT name FROM things WHERE id = 0", &[])
                .map_err(Error::at("read"))?
                .get(0))
        })
        .unwrap();
    assert_eq!(n, "40");
    assert!(ATTEMPTS.load(Ordering::Relaxed) >= 40);
}

fn count_things(pool: &Pool) -> i64 {
    pool.run(|c| -> Result<i64, Error> {
        Ok(c.client()
            .query_one("SELECT count(*) FROM things", &[])
            .map_err(Error::at("count"))?
            .get(0))
    })
    .unwrap()
}

const INSERT_THING: &str = "INSERT INTO things (id, name) VALUES ($1, $2)";
const COUNT_THINGS: &str = "SELECT count(*) FROM things";
const REMOTE: &[&str] = &[INSERT_THING, COUNT_THINGS];

#[test]
fn a_remote_transaction_sees_its_writes_commits_them_and_rolls_back_when_dropped() {
    let pool = Pool::open(
        &fresh(),
        &Options {
            connections: 2,
            ..Options::default()
        },
        &[track(ONE)],
    )
    .unwrap();
    let mut remote = pool.begin(REMOTE).unwrap();
    remote
        .run("insert", |tx, s| tx.execute(&s[0], &[&1i64, &"one"]))
        .unwrap();
    let inside: i64 = remote
        .run("count", |tx, s| Ok(tx.query_one(&s[1], &[])?.get(0)))
        .unwrap();
    assert_eq!(inside, 1);
    // Not visible outside before the commit.
    assert_eq!(count_things(&pool), 0);
    remote.commit().unwrap();
    assert_eq!(count_things(&pool), 1);

    let mut dropped = pool.begin(REMOTE).unwrap();
    dropped
        .run("insert", |tx, s| tx.execute(&s[0], &[&2i64, &"two"]))
        .unwrap();
    drop(dropped);
    assert_eq!(count_things(&pool), 1);

    // A failed step aborts the transaction; its connection is clean for the next job.
    let mut failing = pool.begin(REMOTE).unwrap();
    let e = failing
        .run("insert a duplicate", |tx, s| {
            tx.execute(&s[0], &[&1i64, &"again"])
        })
        .unwrap_err();
    assert!(e.as_postgres().is_some_and(is_unique_violation), "{e}");
    assert!(failing
        .run("insert after the failure", |tx, s| tx
            .execute(&s[0], &[&3i64, &"three"]))
        .is_err());
    drop(failing);
    assert_eq!(count_things(&pool), 1);
    let r: Result<(), Error> = pool.transact(REMOTE, |remote| {
        remote.run("insert", |tx, s| tx.execute(&s[0], &[&3i64, &"three"]))?;
        Ok(())
    });
    r.unwrap();
    assert_eq!(count_things(&pool), 2);
}

#[test]
fn a_remote_transaction_is_run_again_after_a_serialization_failure() {
    let pool = Pool::open(
        &fresh(),
        &Options {
            connections: 4,
            ..Options::default()
        },
        &[track(ONE)],
    )
    .unwrap();
    pool.run(|c| -> Result<(), Error> {
        c.client()
            .execute("INSERT INTO things (id, name) VALUES (0, '0')", &[])
            .map_err(Error::at("seed"))?;
        Ok(())
    })
    .unwrap();
    const READ: &str = "SELECT name FROM things WHERE id = 0";
    const WRITE: &str = "UPDATE things SET name = $1 WHERE id = 0";
    const STATEMENTS: &[&str] = &[READ, WRITE];
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    // The decision (the next value) is made on this thread, between the
                    // read and the write.
                    let r: Result<(), Error> = pool.transact(STATEMENTS, |remote| {
                        remote.run("isolation", |tx, _| {
                            tx.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                        })?;
                        let n: String =
                            remote.run("read", |tx, s| Ok(tx.query_one(&s[0], &[])?.get(0)))?;
                        let next = (n.parse::<i64>().unwrap_or(0) + 1).to_string();
                        remote.run("write", move |tx, s| tx.execute(&s[1], &[&next]))?;
                        Ok(())
                    });
                    r.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let n: String = pool
        .run(|c| -> Result<String, Error> {
            Ok(c.client()
                .query_one("SELECT name FROM things WHERE id = 0", &[])
                .map_err(Error::at("read"))?
                .get(0))
        })
        .unwrap();
    assert_eq!(n, "40");
}

#[test]
fn shared_records_move_their_generation_and_writers_decide_from_the_latest_state() {
    use crate::records::SharedRecords;
    let url = fresh();
    let a = SharedRecords::open(&url, 2, "things").unwrap();
    let b = SharedRecords::open(&url, 2, "things").unwrap();
    let other = SharedRecords::open(&url, 1, "other").unwrap();
    let g0 = b.generation().unwrap();
    let mut w = a.begin().unwrap();
    assert_eq!(w.generation(), g0);
    w.put("counter", "n", "0".into()).unwrap();
    w.put("doomed", "x", "1".into()).unwrap();
    // Not visible before the commit.
    assert!(b.load().unwrap().records.is_empty());
    let g1 = w.commit().unwrap();
    assert_eq!(g1, g0 + 1);
    assert_eq!(b.generation().unwrap(), g1);
    let loaded = b.load().unwrap();
    assert_eq!(loaded.generation, g1);
    assert_eq!(loaded.records.len(), 2);
    // Namespaces are apart.
    assert!(other.load().unwrap().records.is_empty());
    assert_eq!(other.generation().unwrap(), 0);
    // A dropped write changes nothing, generation included.
    let mut w = b.begin().unwrap();
    w.delete("doomed", "x").unwrap();
    drop(w);
    assert_eq!(a.load().unwrap().records.len(), 2);
    assert_eq!(a.generation().unwrap(), g1);
    // Writers of several nodes each read, decide and write: none is lost.
    let nodes: Vec<SharedRecords> = (0..4)
        .map(|_| SharedRecords::open(&url, 1, "things").unwrap())
        .collect();
    std::thread::scope(|scope| {
        for node in &nodes {
            scope.spawn(move || {
                for _ in 0..10 {
                    let mut w = node.begin().unwrap();
                    let now = w.load().unwrap();
                    let n: i64 = now
                        .records
                        .iter()
                        .find(|r| r.kind == "counter")
                        .unwrap()
                        .text
                        .parse()
                        .unwrap();
                    w.put("counter", "n", (n + 1).to_string()).unwrap();
                    w.commit().unwrap();
                }
            });
        }
    });
    let last = a.load().unwrap();
    assert_eq!(last.generation, g1 + 40);
    let n = last.records.iter().find(|r| r.kind == "counter").unwrap();
    assert_eq!(n.text, "40");
}

#[test]
fn a_replica_installs_another_nodes_change_once_and_not_its_own() {
    use crate::records::{Replica, SharedRecords};
    let url = fresh();
    let pool = || {
        Pool::open(
            &url,
            &Options {
                connections: 1,
                ..Options::default()
            },
            &[crate::records::TRACK],
        )
        .unwrap()
    };
    let (mut mine, first) = Replica::open(pool(), "things").unwrap();
    assert!(first.records.is_empty());
    let other = SharedRecords::on(pool(), "things").unwrap();
    let installed = |replica: &mut Replica| {
        let mut seen = None;
        let moved = replica
            .refresh(
                |e| e,
                |s| {
                    seen = Some(s.records.len());
                    Ok(())
                },
            )
            .unwrap();
        (moved, seen)
    };
    assert_eq!(installed(&mut mine), (false, None));
    // Another node's write: installed once.
    let mut w = other.begin().unwrap();
    w.put("thing", "a", "1".into()).unwrap();
    w.commit().unwrap();
    assert_eq!(installed(&mut mine), (true, Some(1)));
    assert_eq!(installed(&mut mine), (false, None));
    // A write of this replica's: its memory is current, nothing to install before or
    // after it.
    let w = mine.begin(|e| e, |_| panic!("memory is current")).unwrap();
    mine.commit(w).unwrap();
    assert_eq!(installed(&mut mine), (false, None));
    // Behind another node's write, a write of this replica's installs it first.
    let mut w = other.begin().unwrap();
    w.put("thing", "b", "2".into()).unwrap();
    w.commit().unwrap();
    let mut seen = None;
    let w = mine
        .begin(
            |e| e,
            |s| {
                seen = Some(s.records.len());
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(seen, Some(2));
    drop(w);
    assert_eq!(
        installed(&mut mine),
        (false, None),
        "the write read it already"
    );
}

/// A caller on an async worker does not hold the worker's other tasks while it waits for
/// PostgreSQL: with a single worker, the query below can only finish if a task queued
/// behind it runs meanwhile (its job waits for that task's message).
#[test]
fn waiting_on_an_async_worker_lets_the_workers_other_tasks_run() {
    let pool = Pool::open(&fresh(), &Options::default(), &[]).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (tell, told) = mpsc::sync_channel::<()>(1);
    let heard = runtime.block_on(async move {
        let (started, is_started) = tokio::sync::oneshot::channel::<()>();
        let query = tokio::spawn(async move {
            let _ = started.send(());
            pool.run(move |_conn| {
                Ok::<_, Error>(told.recv_timeout(Duration::from_secs(30)).is_ok())
            })
        });
        is_started.await.unwrap();
        tokio::spawn(async move {
            let _ = tell.send(());
        });
        query.await.unwrap().unwrap()
    });
    assert!(
        heard,
        "the task queued behind the query never ran while it waited"
    );
}

/// Every other place a caller may wait from works as before: a blocking-pool thread, the
/// thread that drives a runtime, a current-thread runtime and a plain thread.
#[test]
fn waiting_works_from_every_kind_of_thread() {
    let pool = Pool::open(&fresh(), &Options::default(), &[]).unwrap();
    let one = |pool: &Pool| {
        pool.run(|conn| {
            conn.client()
                .query_one("SELECT 1::BIGINT", &[])
                .map(|r| r.get::<_, i64>(0))
                .map_err(Error::at("selecting"))
        })
        .unwrap()
    };
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let p = pool.clone();
    assert_eq!(
        multi.block_on(async move { tokio::task::spawn_blocking(move || one(&p)).await.unwrap() }),
        1
    );
    let p = pool.clone();
    assert_eq!(multi.block_on(async move { one(&p) }), 1);
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let p = pool.clone();
    assert_eq!(current.block_on(async move { one(&p) }), 1);
    let p = pool.clone();
    assert_eq!(
        current
            .block_on(async move { tokio::task::spawn_blocking(move || one(&p)).await.unwrap() }),
        1
    );
    assert_eq!(std::thread::spawn(move || one(&pool)).join().unwrap(), 1);
}
