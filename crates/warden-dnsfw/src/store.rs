//! `DATA_DIR/dnsfw.db`: one row per domain list, domain, rule group, rule and association
//! (each resource a JSON record). Every change is one immediate transaction, synced before
//! it is acknowledged (`synchronous=FULL`); the whole model is read once, at open. Foreign
//! keys keep the store whole on their own: a rule names an existing group and domain list,
//! an association an existing group.

use std::path::Path;

use rusqlite::{params, Connection, Transaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{store, DnsFirewallError};
use crate::model::{Association, DomainList, Rule, RuleGroup};

/// Schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE domain_lists (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL
) STRICT;

CREATE TABLE domains (
    list_id TEXT NOT NULL REFERENCES domain_lists(id) ON DELETE CASCADE,
    -- Stored form: lowercase, no trailing dot, `*.NAME` or `*` for wildcards.
    domain TEXT NOT NULL,
    PRIMARY KEY (list_id, domain)
) STRICT, WITHOUT ROWID;

CREATE TABLE rule_groups (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL
) STRICT;

CREATE TABLE rules (
    group_id TEXT NOT NULL REFERENCES rule_groups(id) ON DELETE CASCADE,
    list_id TEXT NOT NULL REFERENCES domain_lists(id),
    record TEXT NOT NULL,
    PRIMARY KEY (group_id, list_id)
) STRICT;
CREATE INDEX rules_by_list ON rules (list_id);

CREATE TABLE associations (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    group_id TEXT NOT NULL REFERENCES rule_groups(id),
    vpc_id TEXT NOT NULL,
    record TEXT NOT NULL
) STRICT;
CREATE INDEX associations_by_group ON associations (group_id);
"#];

/// Opens (creating if needed) the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection, DnsFirewallError> {
    let db = warden_sqlite::open(
        path,
        &warden_sqlite::Options {
            synchronous: warden_sqlite::Synchronous::Full,
            migrations: MIGRATIONS,
            incremental_vacuum: false,
        },
    )
    .map_err(|source| DnsFirewallError::Store {
        context: "opening the DNS Firewall store",
        source,
    })?;
    drop(db.reader);
    Ok(db.writer)
}

/// Everything the store holds, as read at open.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) lists: Vec<(DomainList, Vec<String>)>,
    pub(crate) groups: Vec<RuleGroup>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) associations: Vec<Association>,
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, DnsFirewallError> {
    serde_json::from_str(text).map_err(|e| DnsFirewallError::Store {
        context: "reading a stored record",
        source: warden_sqlite::sqlite("reading a stored record")(
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)),
        ),
    })
}

fn text<T: Serialize>(record: &T) -> Result<String, DnsFirewallError> {
    serde_json::to_string(record).map_err(|e| DnsFirewallError::Store {
        context: "writing a record",
        source: warden_sqlite::sqlite("writing a record")(rusqlite::Error::ToSqlConversionFailure(
            Box::new(e),
        )),
    })
}

fn records<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    context: &'static str,
) -> Result<Vec<T>, DnsFirewallError> {
    let mut st = conn.prepare(sql).map_err(store(context))?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(store(context))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse(&row.map_err(store(context))?)?);
    }
    Ok(out)
}

/// Reads the whole model.
pub(crate) fn load(conn: &Connection) -> Result<Loaded, DnsFirewallError> {
    let lists: Vec<DomainList> = records(
        conn,
        "SELECT record FROM domain_lists ORDER BY seq",
        "reading domain lists",
    )?;
    let ctx = "reading domains";
    let mut st = conn
        .prepare("SELECT domain FROM domains WHERE list_id = ?1")
        .map_err(store(ctx))?;
    let mut with_domains = Vec::with_capacity(lists.len());
    for list in lists {
        let domains = st
            .query_map([&list.id], |r| r.get::<_, String>(0))
            .map_err(store(ctx))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(store(ctx))?;
        with_domains.push((list, domains));
    }
    Ok(Loaded {
        lists: with_domains,
        groups: records(
            conn,
            "SELECT record FROM rule_groups ORDER BY seq",
            "reading rule groups",
        )?,
        rules: records(conn, "SELECT record FROM rules", "reading rules")?,
        associations: records(
            conn,
            "SELECT record FROM associations ORDER BY seq",
            "reading associations",
        )?,
    })
}

/// Writes a domain list's record (not its domains).
pub(crate) fn put_list(tx: &Transaction<'_>, list: &DomainList) -> Result<(), DnsFirewallError> {
    tx.execute(
        "INSERT INTO domain_lists (id, seq, record) VALUES (?1, ?2, ?3) \
         ON CONFLICT(id) DO UPDATE SET record = excluded.record",
        params![list.id, seq(list.seq), text(list)?],
    )
    .map_err(store("writing a domain list"))?;
    Ok(())
}

/// Deletes a domain list and its domains.
pub(crate) fn delete_list(tx: &Transaction<'_>, id: &str) -> Result<(), DnsFirewallError> {
    tx.execute("DELETE FROM domain_lists WHERE id = ?1", [id])
        .map_err(store("deleting a domain list"))?;
    Ok(())
}

/// Adds domains (stored form) to a list.
pub(crate) fn add_domains(
    tx: &Transaction<'_>,
    list_id: &str,
    domains: &[String],
) -> Result<(), DnsFirewallError> {
    let ctx = "adding domains";
    let mut st = tx
        .prepare_cached("INSERT OR IGNORE INTO domains (list_id, domain) VALUES (?1, ?2)")
        .map_err(store(ctx))?;
    for d in domains {
        st.execute(params![list_id, d]).map_err(store(ctx))?;
    }
    Ok(())
}

/// Removes domains (stored form) from a list.
pub(crate) fn remove_domains(
    tx: &Transaction<'_>,
    list_id: &str,
    domains: &[String],
) -> Result<(), DnsFirewallError> {
    let ctx = "removing domains";
    let mut st = tx
        .prepare_cached("DELETE FROM domains WHERE list_id = ?1 AND domain = ?2")
        .map_err(store(ctx))?;
    for d in domains {
        st.execute(params![list_id, d]).map_err(store(ctx))?;
    }
    Ok(())
}

/// Removes every domain of a list.
pub(crate) fn clear_domains(tx: &Transaction<'_>, list_id: &str) -> Result<(), DnsFirewallError> {
    tx.execute("DELETE FROM domains WHERE list_id = ?1", [list_id])
        .map_err(store("replacing domains"))?;
    Ok(())
}

/// Writes a rule group's record.
pub(crate) fn put_group(tx: &Transaction<'_>, group: &RuleGroup) -> Result<(), DnsFirewallError> {
    tx.execute(
        "INSERT INTO rule_groups (id, seq, record) VALUES (?1, ?2, ?3) \
         ON CONFLICT(id) DO UPDATE SET record = excluded.record",
        params![group.id, seq(group.seq), text(group)?],
    )
    .map_err(store("writing a rule group"))?;
    Ok(())
}

/// Deletes a rule group and its rules.
pub(crate) fn delete_group(tx: &Transaction<'_>, id: &str) -> Result<(), DnsFirewallError> {
    tx.execute("DELETE FROM rule_groups WHERE id = ?1", [id])
        .map_err(store("deleting a rule group"))?;
    Ok(())
}

/// Writes a rule.
pub(crate) fn put_rule(tx: &Transaction<'_>, rule: &Rule) -> Result<(), DnsFirewallError> {
    tx.execute(
        "INSERT INTO rules (group_id, list_id, record) VALUES (?1, ?2, ?3) \
         ON CONFLICT(group_id, list_id) DO UPDATE SET record = excluded.record",
        params![rule.group_id, rule.domain_list_id, text(rule)?],
    )
    .map_err(store("writing a rule"))?;
    Ok(())
}

/// Deletes a rule.
pub(crate) fn delete_rule(
    tx: &Transaction<'_>,
    group_id: &str,
    list_id: &str,
) -> Result<(), DnsFirewallError> {
    tx.execute(
        "DELETE FROM rules WHERE group_id = ?1 AND list_id = ?2",
        params![group_id, list_id],
    )
    .map_err(store("deleting a rule"))?;
    Ok(())
}

/// Writes an association.
pub(crate) fn put_association(
    tx: &Transaction<'_>,
    a: &Association,
) -> Result<(), DnsFirewallError> {
    tx.execute(
        "INSERT INTO associations (id, seq, group_id, vpc_id, record) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(id) DO UPDATE SET record = excluded.record",
        params![a.id, seq(a.seq), a.group_id, a.vpc_id, text(a)?],
    )
    .map_err(store("writing an association"))?;
    Ok(())
}

/// Deletes an association.
pub(crate) fn delete_association(tx: &Transaction<'_>, id: &str) -> Result<(), DnsFirewallError> {
    tx.execute("DELETE FROM associations WHERE id = ?1", [id])
        .map_err(store("deleting an association"))?;
    Ok(())
}

fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
