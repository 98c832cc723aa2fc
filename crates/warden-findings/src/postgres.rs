//! The findings in PostgreSQL, shared by the nodes of a deployment (the `findings` schema
//! track): the SQLite store's table and rules. Each node runs the posture checks on its
//! schedule; a reconciliation is one transaction that first takes an advisory lock, so
//! two nodes reconciling at once queue and the second sees the first's findings (a
//! failure seen by both stays one finding, opened once).

use warden_postgres::{Migration, Pool, Track};

use crate::store::{
    Comparison, Error, Filter, Finding, Observed, Reconciled, Workflow, MAX_FINDINGS,
};

const MIGRATIONS: &[Migration] = &[Migration::additive(
    r#"
CREATE TABLE findings (
    id TEXT COLLATE "C" PRIMARY KEY,
    control_id TEXT COLLATE "C" NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    resource_id TEXT COLLATE "C" NOT NULL,
    severity TEXT COLLATE "C" NOT NULL,
    title TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL,
    remediation TEXT NOT NULL,
    workflow TEXT COLLATE "C" NOT NULL,
    record_state TEXT COLLATE "C" NOT NULL,
    compliance TEXT COLLATE "C" NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    note_text TEXT,
    note_by TEXT,
    note_ms BIGINT
);
CREATE INDEX findings_by_control ON findings (control_id);
"#,
)];

/// The `findings` schema track.
pub const TRACK: Track = Track {
    name: "findings",
    migrations: MIGRATIONS,
};

/// The advisory lock reconciliations and workflow changes hold ("findings" in ASCII).
const LOCK: i64 = 0x6669_6e64_696e_6773;

const COLUMNS: &str = "id, control_id, resource_type, resource_id, severity, title, description, remediation, workflow, record_state, compliance, first_seen_ms, last_seen_ms, updated_ms, note_text, note_by, note_ms";

fn db(context: &'static str) -> impl Fn(postgres::Error) -> Error {
    move |e| Error::Shared {
        context,
        source: warden_postgres::Error::at(context)(e),
    }
}

impl warden_postgres::AsPostgres for Error {
    fn as_postgres(&self) -> Option<&postgres::Error> {
        match self {
            Error::Shared { source, .. } => source.as_postgres(),
            _ => None,
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        db("talking to PostgreSQL")(e)
    }
}

impl From<warden_postgres::Error> for Error {
    fn from(source: warden_postgres::Error) -> Self {
        Error::Shared {
            context: "talking to PostgreSQL",
            source,
        }
    }
}

/// Opens the findings in the database at `url` with a pool of `connections`.
pub(crate) fn open(url: &str, connections: usize) -> Result<Pool, Error> {
    Pool::open(
        url,
        &warden_postgres::Options {
            connections,
            application_name: "warden-findings".to_owned(),
        },
        &[TRACK],
    )
    .map_err(|source| Error::Shared {
        context: "opening the findings",
        source,
    })
}

fn finding(r: &postgres::Row) -> Result<Finding, postgres::Error> {
    let workflow: String = r.try_get(8)?;
    let note_text: Option<String> = r.try_get(14)?;
    let note_by: Option<String> = r.try_get(15)?;
    let note_ms: Option<i64> = r.try_get(16)?;
    Ok(Finding {
        id: r.try_get(0)?,
        observed: Observed {
            control_id: r.try_get(1)?,
            resource_type: r.try_get(2)?,
            resource_id: r.try_get(3)?,
            severity: r.try_get(4)?,
            title: r.try_get(5)?,
            description: r.try_get(6)?,
            remediation: r.try_get(7)?,
        },
        workflow: Workflow::parse(&workflow).unwrap_or(Workflow::New),
        record_state: r.try_get(9)?,
        compliance: r.try_get(10)?,
        first_seen_ms: r.try_get(11)?,
        last_seen_ms: r.try_get(12)?,
        updated_ms: r.try_get(13)?,
        note: match (note_text, note_by, note_ms) {
            (Some(t), Some(b), Some(m)) => Some((t, b, m)),
            _ => None,
        },
    })
}

/// [`crate::FindingStore::reconcile`] on PostgreSQL.
pub(crate) fn reconcile(
    pool: &Pool,
    controls: &[&str],
    observed: &[Observed],
    now_ms: i64,
) -> Result<Reconciled, Error> {
    let controls: Vec<String> = controls.iter().map(|c| (*c).to_owned()).collect();
    let observed = observed.to_vec();
    pool.run(move |conn| {
        conn.transaction(|tx| -> Result<Reconciled, Error> {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
                .map_err(db("locking the findings"))?;
            let mut out = Reconciled::default();
            let mut seen = std::collections::HashSet::new();
            for o in &observed {
                let id = o.id();
                if !seen.insert(id.clone()) {
                    continue;
                }
                let existing: Option<String> = tx
                    .query_opt("SELECT workflow FROM findings WHERE id = $1", &[&id])
                    .map_err(db("reading a finding"))?
                    .map(|r| r.get(0));
                match existing.as_deref().and_then(Workflow::parse) {
                    None => {
                        tx.execute(
                            "INSERT INTO findings (id, control_id, resource_type, resource_id, severity, title, description, remediation, workflow, record_state, compliance, first_seen_ms, last_seen_ms, updated_ms)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'NEW', 'ACTIVE', 'FAILED', $9, $9, $9)",
                            &[&id, &o.control_id, &o.resource_type, &o.resource_id, &o.severity, &o.title, &o.description, &o.remediation, &now_ms],
                        )
                        .map_err(db("storing a finding"))?;
                        out.opened.push(id);
                    }
                    Some(Workflow::Resolved) => {
                        tx.execute(
                            "UPDATE findings SET severity = $2, title = $3, description = $4, remediation = $5, workflow = 'NEW', record_state = 'ACTIVE', compliance = 'FAILED', last_seen_ms = $6, updated_ms = $6 WHERE id = $1",
                            &[&id, &o.severity, &o.title, &o.description, &o.remediation, &now_ms],
                        )
                        .map_err(db("opening a finding again"))?;
                        out.opened.push(id);
                    }
                    Some(_) => {
                        tx.execute(
                            "UPDATE findings SET severity = $2, title = $3, description = $4, remediation = $5, record_state = 'ACTIVE', compliance = 'FAILED', last_seen_ms = $6 WHERE id = $1",
                            &[&id, &o.severity, &o.title, &o.description, &o.remediation, &now_ms],
                        )
                        .map_err(db("refreshing a finding"))?;
                    }
                }
            }
            for control in &controls {
                let ids: Vec<String> = tx
                    .query(
                        "SELECT id FROM findings WHERE control_id = $1 AND compliance = 'FAILED'",
                        &[control],
                    )
                    .map_err(db("reading findings"))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for id in ids.into_iter().filter(|id| !seen.contains(id)) {
                    tx.execute(
                        "UPDATE findings SET workflow = CASE WHEN workflow = 'SUPPRESSED' THEN 'SUPPRESSED' ELSE 'RESOLVED' END, record_state = 'ARCHIVED', compliance = 'PASSED', updated_ms = $2 WHERE id = $1",
                        &[&id, &now_ms],
                    )
                    .map_err(db("resolving a finding"))?;
                    out.resolved.push(id);
                }
            }
            let count: i64 = tx
                .query_one("SELECT count(*) FROM findings", &[])
                .map_err(db("counting findings"))?
                .get(0);
            if count > MAX_FINDINGS {
                tx.execute(
                    "DELETE FROM findings WHERE id IN (SELECT id FROM findings WHERE record_state = 'ARCHIVED' ORDER BY updated_ms LIMIT $1)",
                    &[&(count - MAX_FINDINGS)],
                )
                .map_err(db("bounding findings"))?;
            }
            Ok(out)
        })
    })
}

/// [`crate::FindingStore::set_workflow`] on PostgreSQL (the note and workflow checked).
pub(crate) fn set_workflow(
    pool: &Pool,
    ids: &[String],
    workflow: Option<Workflow>,
    note: Option<(&str, &str)>,
    now_ms: i64,
) -> Result<Vec<String>, Error> {
    let ids = ids.to_vec();
    let workflow = workflow.map(Workflow::as_str);
    let (note_text, note_by) = match note {
        Some((t, b)) => (Some(t.to_owned()), Some(b.to_owned())),
        None => (None, None),
    };
    pool.run(move |conn| {
        conn.transaction(|tx| -> Result<Vec<String>, Error> {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
                .map_err(db("locking the findings"))?;
            let mut missing = Vec::new();
            for id in &ids {
                let changed = tx
                    .execute(
                        "UPDATE findings SET workflow = COALESCE($2, workflow), note_text = COALESCE($3, note_text), note_by = COALESCE($4, note_by), note_ms = CASE WHEN $3::TEXT IS NULL THEN note_ms ELSE $5 END, updated_ms = $5 WHERE id = $1",
                        &[id, &workflow, &note_text, &note_by, &now_ms],
                    )
                    .map_err(db("updating a finding"))?;
                if changed == 0 {
                    missing.push(id.clone());
                }
            }
            Ok(missing)
        })
    })
}

/// [`crate::FindingStore::query`] on PostgreSQL: `fetch` findings from `offset`.
pub(crate) fn query(
    pool: &Pool,
    filters: &[Filter],
    fetch: i64,
    offset: i64,
) -> Result<Vec<Finding>, Error> {
    let mut sql = format!("SELECT {COLUMNS} FROM findings WHERE TRUE");
    let mut args: Vec<String> = Vec::new();
    for f in filters {
        let column = f.field.column();
        let mut any = Vec::new();
        for (cmp, value) in &f.values {
            args.push(value.clone());
            let n = args.len();
            match cmp {
                Comparison::Equals => any.push(format!("{column} = ${n}")),
                Comparison::Prefix => any.push(format!("starts_with({column}, ${n})")),
                Comparison::NotEquals => sql.push_str(&format!(" AND {column} != ${n}")),
            }
        }
        if !any.is_empty() {
            sql.push_str(&format!(" AND ({})", any.join(" OR ")));
        }
    }
    sql.push_str(&format!(
        " ORDER BY updated_ms DESC, id LIMIT {fetch} OFFSET {offset}"
    ));
    pool.run(move |conn| {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let rows = conn
            .client()
            .query(sql.as_str(), &params)
            .map_err(db("querying findings"))?;
        rows.iter()
            .map(|r| finding(r).map_err(db("querying findings")))
            .collect()
    })
}
