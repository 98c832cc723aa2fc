//! The findings' store: SQLite (`DATA_DIR/findings.db`), or PostgreSQL shared by the nodes
//! of a deployment (`crate::postgres`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use rusqlite::{params, Connection, OptionalExtension};

/// The most findings one page holds.
pub const MAX_RESULTS: u32 = 100;
/// The most findings kept; past it, archived (resolved) findings go, oldest first.
pub const MAX_FINDINGS: i64 = 100_000;

const MIGRATIONS: &[&str] = &["
CREATE TABLE finding (
    id TEXT PRIMARY KEY,
    control_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    remediation TEXT NOT NULL,
    workflow TEXT NOT NULL,
    record_state TEXT NOT NULL,
    compliance TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    note_text TEXT,
    note_by TEXT,
    note_ms INTEGER
);
CREATE INDEX finding_by_control ON finding (control_id);
"];

/// Why a findings operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or migrating the database failed.
    #[error("opening the findings at `{}`: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A read or write of the shared store (PostgreSQL) failed.
    #[error("the findings store failed while {context}: {source}")]
    Shared {
        /// What was being done.
        context: &'static str,
        /// What went wrong (never the connection's password).
        #[source]
        source: warden_postgres::Error,
    },
    /// A read or write failed.
    #[error("the findings store failed while {context}: {source}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// What went wrong.
        #[source]
        source: warden_sqlite::Error,
    },
    /// A page token this store did not hand out.
    #[error("the next token is invalid")]
    InvalidNextToken,
    /// A page size outside `1..=MAX_RESULTS`.
    #[error("MaxResults must be between 1 and {MAX_RESULTS}, not {0}")]
    InvalidMaxResults(u32),
    /// Suppressing without saying why.
    #[error("suppressing a finding needs a Note saying why")]
    SuppressWithoutNote,
}

fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::Store {
        context,
        source: warden_sqlite::sqlite(context)(e),
    }
}

/// Where a finding is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    /// Not yet looked at.
    New,
    /// Someone was told.
    Notified,
    /// Accepted, with a reason.
    Suppressed,
    /// Fixed (the control passes), or closed by hand.
    Resolved,
}

impl Workflow {
    /// Security Hub's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Workflow::New => "NEW",
            Workflow::Notified => "NOTIFIED",
            Workflow::Suppressed => "SUPPRESSED",
            Workflow::Resolved => "RESOLVED",
        }
    }

    /// From Security Hub's name.
    pub fn parse(s: &str) -> Option<Workflow> {
        Some(match s {
            "NEW" => Workflow::New,
            "NOTIFIED" => Workflow::Notified,
            "SUPPRESSED" => Workflow::Suppressed,
            "RESOLVED" => Workflow::Resolved,
            _ => return None,
        })
    }
}

/// One control failing on one resource, as an evaluation saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The control (`Lambda.1`).
    pub control_id: String,
    /// The resource's type (`AwsLambdaFunction`).
    pub resource_type: String,
    /// The resource's ARN.
    pub resource_id: String,
    /// `INFORMATIONAL`, `LOW`, `MEDIUM`, `HIGH` or `CRITICAL`.
    pub severity: String,
    /// The control's title.
    pub title: String,
    /// What is wrong with this resource.
    pub description: String,
    /// How to fix it.
    pub remediation: String,
}

impl Observed {
    /// The finding's id: the control and the resource.
    pub fn id(&self) -> String {
        finding_id(&self.control_id, &self.resource_id)
    }
}

fn finding_id(control: &str, resource: &str) -> String {
    format!("warden/{control}/{resource}")
}

/// A kept finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was observed (its latest text).
    pub observed: Observed,
    /// Its id.
    pub id: String,
    /// Its workflow status.
    pub workflow: Workflow,
    /// `ACTIVE` or `ARCHIVED`.
    pub record_state: String,
    /// `FAILED` or `PASSED`.
    pub compliance: String,
    /// When first seen (epoch ms).
    pub first_seen_ms: i64,
    /// When last seen failing (epoch ms).
    pub last_seen_ms: i64,
    /// When last changed (epoch ms).
    pub updated_ms: i64,
    /// The note (text, author, time) of the last workflow change by hand.
    pub note: Option<(String, String, i64)>,
}

/// What a reconciliation changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Ids of findings new (or opened again) in this evaluation.
    pub opened: Vec<String>,
    /// Ids of findings resolved by this evaluation.
    pub resolved: Vec<String>,
}

/// A GetFindings field Warden filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `Id`.
    Id,
    /// `GeneratorId` and `ComplianceSecurityControlId`: the control.
    Control,
    /// `SeverityLabel`.
    Severity,
    /// `WorkflowStatus`.
    Workflow,
    /// `RecordState`.
    RecordState,
    /// `ComplianceStatus`.
    Compliance,
    /// `ResourceType`.
    ResourceType,
    /// `ResourceId`.
    ResourceId,
    /// `Title`.
    Title,
}

impl Field {
    pub(crate) fn column(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Control => "control_id",
            Field::Severity => "severity",
            Field::Workflow => "workflow",
            Field::RecordState => "record_state",
            Field::Compliance => "compliance",
            Field::ResourceType => "resource_type",
            Field::ResourceId => "resource_id",
            Field::Title => "title",
        }
    }
}

/// A string filter's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `EQUALS`.
    Equals,
    /// `PREFIX`.
    Prefix,
    /// `NOT_EQUALS`.
    NotEquals,
}

/// One filter: values of one field are ORed (an `EQUALS`/`PREFIX` list) or all excluded
/// (`NOT_EQUALS`); fields are ANDed, as GetFindings combines them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The field.
    pub field: Field,
    /// `(comparison, value)` pairs.
    pub values: Vec<(Comparison, String)>,
}

/// The findings.
#[derive(Debug)]
pub struct FindingStore {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite {
        writer: Box<Mutex<Connection>>,
        reader: Box<Mutex<Connection>>,
    },
    Postgres(warden_postgres::Pool),
}

const COLUMNS: &str = "id, control_id, resource_type, resource_id, severity, title, description, remediation, workflow, record_state, compliance, first_seen_ms, last_seen_ms, updated_ms, note_text, note_by, note_ms";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Finding> {
    let workflow: String = r.get(8)?;
    let note_text: Option<String> = r.get(14)?;
    let note_by: Option<String> = r.get(15)?;
    let note_ms: Option<i64> = r.get(16)?;
    Ok(Finding {
        id: r.get(0)?,
        observed: Observed {
            control_id: r.get(1)?,
            resource_type: r.get(2)?,
            resource_id: r.get(3)?,
            severity: r.get(4)?,
            title: r.get(5)?,
            description: r.get(6)?,
            remediation: r.get(7)?,
        },
        workflow: Workflow::parse(&workflow).unwrap_or(Workflow::New),
        record_state: r.get(9)?,
        compliance: r.get(10)?,
        first_seen_ms: r.get(11)?,
        last_seen_ms: r.get(12)?,
        updated_ms: r.get(13)?,
        note: match (note_text, note_by, note_ms) {
            (Some(t), Some(b), Some(m)) => Some((t, b, m)),
            _ => None,
        },
    })
}

impl FindingStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let options = warden_sqlite::Options {
            synchronous: warden_sqlite::Synchronous::Full,
            migrations: MIGRATIONS,
            incremental_vacuum: false,
        };
        let conns = warden_sqlite::open(path, &options).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(FindingStore {
            backend: Backend::Sqlite {
                writer: Box::new(Mutex::new(conns.writer)),
                reader: Box::new(Mutex::new(conns.reader)),
            },
        })
    }

    /// Opens the findings in the PostgreSQL database at `url`, shared with the other
    /// nodes, with a pool of `connections`.
    pub fn open_postgres(url: &str, connections: usize) -> Result<Self, Error> {
        Ok(FindingStore {
            backend: Backend::Postgres(crate::postgres::open(url, connections)?),
        })
    }

    /// [`FindingStore::open_postgres`] on a pool other stores share, opened with
    /// [`crate::POSTGRES_TRACK`] among its tracks.
    pub fn open_shared(pool: warden_postgres::Pool) -> Self {
        FindingStore {
            backend: Backend::Postgres(pool),
        }
    }

    /// Takes one evaluation's observations of `controls` (see the crate's documentation).
    pub fn reconcile(
        &self,
        controls: &[&str],
        observed: &[Observed],
        now_ms: i64,
    ) -> Result<Reconciled, Error> {
        let writer = match &self.backend {
            Backend::Sqlite { writer, .. } => writer,
            Backend::Postgres(pool) => {
                return crate::postgres::reconcile(pool, controls, observed, now_ms)
            }
        };
        let mut conn = warden_sqlite::lock(writer);
        let tx = warden_sqlite::immediate(&mut conn).map_err(store("reconciling findings"))?;
        let mut out = Reconciled::default();
        let mut seen = std::collections::HashSet::new();
        for o in observed {
            let id = o.id();
            if !seen.insert(id.clone()) {
                continue;
            }
            let existing: Option<String> = tx
                .query_row("SELECT workflow FROM finding WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(store("reading a finding"))?;
            match existing.as_deref().and_then(Workflow::parse) {
                None => {
                    tx.execute(
                        "INSERT INTO finding (id, control_id, resource_type, resource_id, severity, title, description, remediation, workflow, record_state, compliance, first_seen_ms, last_seen_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'NEW', 'ACTIVE', 'FAILED', ?9, ?9, ?9)",
                        params![id, o.control_id, o.resource_type, o.resource_id, o.severity, o.title, o.description, o.remediation, now_ms],
                    )
                    .map_err(store("storing a finding"))?;
                    out.opened.push(id);
                }
                Some(Workflow::Resolved) => {
                    tx.execute(
                        "UPDATE finding SET severity = ?2, title = ?3, description = ?4, remediation = ?5, workflow = 'NEW', record_state = 'ACTIVE', compliance = 'FAILED', last_seen_ms = ?6, updated_ms = ?6 WHERE id = ?1",
                        params![id, o.severity, o.title, o.description, o.remediation, now_ms],
                    )
                    .map_err(store("opening a finding again"))?;
                    out.opened.push(id);
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE finding SET severity = ?2, title = ?3, description = ?4, remediation = ?5, record_state = 'ACTIVE', compliance = 'FAILED', last_seen_ms = ?6 WHERE id = ?1",
                        params![id, o.severity, o.title, o.description, o.remediation, now_ms],
                    )
                    .map_err(store("refreshing a finding"))?;
                }
            }
        }
        for control in controls {
            let mut stmt = tx
                .prepare("SELECT id FROM finding WHERE control_id = ?1 AND compliance = 'FAILED'")
                .map_err(store("reading findings"))?;
            let ids: Vec<String> = stmt
                .query_map([control], |r| r.get(0))
                .map_err(store("reading findings"))?
                .collect::<Result<_, _>>()
                .map_err(store("reading findings"))?;
            drop(stmt);
            for id in ids.into_iter().filter(|id| !seen.contains(id)) {
                tx.execute(
                    "UPDATE finding SET workflow = CASE WHEN workflow = 'SUPPRESSED' THEN 'SUPPRESSED' ELSE 'RESOLVED' END, record_state = 'ARCHIVED', compliance = 'PASSED', updated_ms = ?2 WHERE id = ?1",
                    params![id, now_ms],
                )
                .map_err(store("resolving a finding"))?;
                out.resolved.push(id);
            }
        }
        // Bounded: findings of resources long gone (a caller churning names) are forgotten,
        // the oldest archived first, past MAX_FINDINGS.
        let count: i64 = tx
            .query_row("SELECT COUNT(*) FROM finding", [], |r| r.get(0))
            .map_err(store("counting findings"))?;
        if count > MAX_FINDINGS {
            tx.execute(
                "DELETE FROM finding WHERE id IN (SELECT id FROM finding WHERE record_state = 'ARCHIVED' ORDER BY updated_ms LIMIT ?1)",
                [count - MAX_FINDINGS],
            )
            .map_err(store("bounding findings"))?;
        }
        tx.commit().map_err(store("committing findings"))?;
        Ok(out)
    }

    /// Sets the workflow status of each finding in `ids`, with a note; returns the ids not
    /// found. Suppressing needs a note.
    pub fn set_workflow(
        &self,
        ids: &[String],
        workflow: Option<Workflow>,
        note: Option<(&str, &str)>,
        now_ms: i64,
    ) -> Result<Vec<String>, Error> {
        if workflow == Some(Workflow::Suppressed) && note.is_none() {
            return Err(Error::SuppressWithoutNote);
        }
        let writer = match &self.backend {
            Backend::Sqlite { writer, .. } => writer,
            Backend::Postgres(pool) => {
                return crate::postgres::set_workflow(pool, ids, workflow, note, now_ms)
            }
        };
        let mut conn = warden_sqlite::lock(writer);
        let tx = warden_sqlite::immediate(&mut conn).map_err(store("updating findings"))?;
        let mut missing = Vec::new();
        for id in ids {
            let changed = tx
                .execute(
                    "UPDATE finding SET workflow = COALESCE(?2, workflow), note_text = COALESCE(?3, note_text), note_by = COALESCE(?4, note_by), note_ms = CASE WHEN ?3 IS NULL THEN note_ms ELSE ?5 END, updated_ms = ?5 WHERE id = ?1",
                    params![
                        id,
                        workflow.map(Workflow::as_str),
                        note.map(|n| n.0),
                        note.map(|n| n.1),
                        now_ms
                    ],
                )
                .map_err(store("updating a finding"))?;
            if changed == 0 {
                missing.push(id.clone());
            }
        }
        tx.commit().map_err(store("committing findings"))?;
        Ok(missing)
    }

    /// One page of the findings `filters` select, newest change first.
    pub fn query(
        &self,
        filters: &[Filter],
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<(Vec<Finding>, Option<String>), Error> {
        let limit = match max_results {
            None => MAX_RESULTS,
            Some(n) if (1..=MAX_RESULTS).contains(&n) => n,
            Some(n) => return Err(Error::InvalidMaxResults(n)),
        };
        let offset: i64 = match next_token {
            None => 0,
            Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("f1:").and_then(|n| n.parse().ok()))
                .ok_or(Error::InvalidNextToken)?,
        };
        let reader = match &self.backend {
            Backend::Sqlite { reader, .. } => reader,
            Backend::Postgres(pool) => {
                let mut out = crate::postgres::query(pool, filters, i64::from(limit) + 1, offset)?;
                let next = next_page(&mut out, limit, offset);
                return Ok((out, next));
            }
        };
        let mut sql = format!("SELECT {COLUMNS} FROM finding WHERE 1");
        let mut args: Vec<String> = Vec::new();
        for f in filters {
            let column = f.field.column();
            let mut any = Vec::new();
            for (cmp, value) in &f.values {
                args.push(value.clone());
                let n = args.len();
                match cmp {
                    Comparison::Equals => any.push(format!("{column} = ?{n}")),
                    Comparison::Prefix => {
                        any.push(format!("substr({column}, 1, length(?{n})) = ?{n}"))
                    }
                    Comparison::NotEquals => {
                        sql.push_str(&format!(" AND {column} != ?{n}"));
                    }
                }
            }
            if !any.is_empty() {
                sql.push_str(&format!(" AND ({})", any.join(" OR ")));
            }
        }
        sql.push_str(&format!(
            " ORDER BY updated_ms DESC, id LIMIT {} OFFSET {offset}",
            i64::from(limit) + 1
        ));
        let conn = warden_sqlite::lock(reader);
        let mut stmt = conn.prepare(&sql).map_err(store("querying findings"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), from_row)
            .map_err(store("querying findings"))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(store("querying findings"))?);
        }
        let next = next_page(&mut out, limit, offset);
        Ok((out, next))
    }
}

/// Cuts `out` (read one past `limit`) to the page and returns the next page's token.
fn next_page(out: &mut Vec<Finding>, limit: u32, offset: i64) -> Option<String> {
    if out.len() > limit as usize {
        out.truncate(limit as usize);
        Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("f1:{}", offset + i64::from(limit))),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of each backend: a temporary SQLite file, or a database of its own in a
    /// real PostgreSQL server the tests start.
    #[derive(Clone, Copy)]
    enum Kind {
        Sqlite,
        Postgres,
    }

    struct Opened {
        store: FindingStore,
        url: Option<String>,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for Opened {
        type Target = FindingStore;
        fn deref(&self) -> &FindingStore {
            &self.store
        }
    }

    fn open(kind: Kind) -> Opened {
        let dir = tempfile::tempdir().unwrap();
        match kind {
            Kind::Sqlite => Opened {
                store: FindingStore::open(&dir.path().join("findings.db")).unwrap(),
                url: None,
                _dir: dir,
            },
            Kind::Postgres => {
                let url = warden_testservers::Postgres::shared()
                    .fresh_database()
                    .unwrap();
                Opened {
                    store: FindingStore::open_postgres(&url, 2).unwrap(),
                    url: Some(url),
                    _dir: dir,
                }
            }
        }
    }

    macro_rules! on_both_backends {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[test]
                    fn $name() {
                        super::$name(super::open(super::Kind::Sqlite));
                    }
                )*
            }
            mod postgres {
                $(
                    #[test]
                    fn $name() {
                        super::$name(super::open(super::Kind::Postgres));
                    }
                )*
            }
        };
    }

    on_both_backends!(
        findings_open_resolve_reopen_and_stay_suppressed,
        queries_filter_and_page,
    );

    #[test]
    fn nodes_reconciling_at_once_open_a_failure_once() {
        let first = open(Kind::Postgres);
        let url = first.url.clone().unwrap();
        let nodes: Vec<FindingStore> = (0..4)
            .map(|_| FindingStore::open_postgres(&url, 1).unwrap())
            .collect();
        let opened: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|n| {
                    scope.spawn(move || {
                        n.reconcile(&["Lambda.1"], &[fail("Lambda.1", "f")], 1)
                            .unwrap()
                            .opened
                            .len()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(opened, 1);
        let (all, _) = first.query(&[], None, None).unwrap();
        assert_eq!(all.len(), 1);
    }

    fn fail(control: &str, resource: &str) -> Observed {
        Observed {
            control_id: control.into(),
            resource_type: "AwsLambdaFunction".into(),
            resource_id: resource.into(),
            severity: "HIGH".into(),
            title: format!("{control} title"),
            description: "d".into(),
            remediation: "r".into(),
        }
    }

    fn workflow(s: &FindingStore, control: &str, resource: &str) -> (Workflow, String) {
        let (found, _) = s
            .query(
                &[Filter {
                    field: Field::Id,
                    values: vec![(Comparison::Equals, finding_id(control, resource))],
                }],
                None,
                None,
            )
            .unwrap();
        (found[0].workflow, found[0].compliance.clone())
    }

    fn findings_open_resolve_reopen_and_stay_suppressed(s: Opened) {
        let r = s
            .reconcile(
                &["Lambda.1", "Lambda.2"],
                &[fail("Lambda.1", "f"), fail("Lambda.2", "f")],
                1,
            )
            .unwrap();
        assert_eq!(r.opened.len(), 2);
        // Lambda.1 passes now; Lambda.2 was not evaluated, so it stays.
        let r = s.reconcile(&["Lambda.1"], &[], 2).unwrap();
        assert_eq!(r.resolved, [finding_id("Lambda.1", "f")]);
        assert_eq!(
            workflow(&s, "Lambda.1", "f"),
            (Workflow::Resolved, "PASSED".into())
        );
        assert_eq!(
            workflow(&s, "Lambda.2", "f"),
            (Workflow::New, "FAILED".into())
        );
        // Failing again opens it again.
        let r = s
            .reconcile(&["Lambda.1"], &[fail("Lambda.1", "f")], 3)
            .unwrap();
        assert_eq!(r.opened, [finding_id("Lambda.1", "f")]);
        // Suppressed needs a reason, and survives later evaluations.
        let id = finding_id("Lambda.2", "f");
        assert!(matches!(
            s.set_workflow(
                std::slice::from_ref(&id),
                Some(Workflow::Suppressed),
                None,
                4
            ),
            Err(Error::SuppressWithoutNote)
        ));
        let missing = s
            .set_workflow(
                &[id.clone(), "nope".into()],
                Some(Workflow::Suppressed),
                Some(("accepted risk", "alice")),
                4,
            )
            .unwrap();
        assert_eq!(missing, ["nope"]);
        s.reconcile(&["Lambda.2"], &[fail("Lambda.2", "f")], 5)
            .unwrap();
        assert_eq!(workflow(&s, "Lambda.2", "f").0, Workflow::Suppressed);
    }

    fn queries_filter_and_page(s: Opened) {
        let all: Vec<Observed> = (0..5).map(|i| fail("IAM.1", &format!("r{i}"))).collect();
        s.reconcile(&["IAM.1"], &all, 1).unwrap();
        s.reconcile(&["Lambda.1"], &[fail("Lambda.1", "x")], 2)
            .unwrap();
        let by_control = |c: &str| Filter {
            field: Field::Control,
            values: vec![(Comparison::Equals, c.to_owned())],
        };
        let (page, token) = s.query(&[by_control("IAM.1")], Some(2), None).unwrap();
        assert_eq!(page.len(), 2);
        let (rest, _) = s
            .query(&[by_control("IAM.1")], Some(10), token.as_deref())
            .unwrap();
        assert_eq!(rest.len(), 3);
        let (not_iam, _) = s
            .query(
                &[Filter {
                    field: Field::Control,
                    values: vec![(Comparison::NotEquals, "IAM.1".into())],
                }],
                None,
                None,
            )
            .unwrap();
        assert_eq!(not_iam.len(), 1);
        let (prefixed, _) = s
            .query(
                &[Filter {
                    field: Field::ResourceId,
                    values: vec![(Comparison::Prefix, "r".into())],
                }],
                None,
                None,
            )
            .unwrap();
        assert_eq!(prefixed.len(), 5);
        assert!(matches!(
            s.query(&[], Some(101), None),
            Err(Error::InvalidMaxResults(101))
        ));
        assert!(matches!(
            s.query(&[], None, Some("zz")),
            Err(Error::InvalidNextToken)
        ));
    }
}
