//! `DATA_DIR/network.db`: one row per VPC, subnet, security group, rule and tag. Every
//! change is one immediate transaction, synced before it is acknowledged
//! (`synchronous=FULL`); the whole model is read once, at open.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, Transaction};

use crate::error::{store, NetworkError};
use crate::model::{Direction, IpProtocol, Peer, SecurityGroup, SgRule, Subnet, Vpc};

/// Schema; entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE vpcs (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    cidr TEXT NOT NULL,
    is_default INTEGER NOT NULL
) STRICT;

CREATE TABLE subnets (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    vpc_id TEXT NOT NULL REFERENCES vpcs(id),
    cidr TEXT NOT NULL,
    availability_zone TEXT NOT NULL
) STRICT;

CREATE TABLE security_groups (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    vpc_id TEXT NOT NULL REFERENCES vpcs(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (vpc_id, name)
) STRICT;

-- Exactly one of cidr_v4, cidr_v6 and peer_group names the other side.
CREATE TABLE rules (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    group_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
    egress INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    from_port INTEGER NOT NULL,
    to_port INTEGER NOT NULL,
    cidr_v4 TEXT,
    cidr_v6 TEXT,
    peer_group TEXT REFERENCES security_groups(id),
    description TEXT,
    CHECK ((cidr_v4 IS NOT NULL) + (cidr_v6 IS NOT NULL) + (peer_group IS NOT NULL) = 1)
) STRICT;
CREATE INDEX rules_by_group ON rules (group_id, egress, seq);
CREATE INDEX rules_by_peer ON rules (peer_group);

CREATE TABLE tags (
    resource_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_id, key)
) STRICT, WITHOUT ROWID;
"#];

/// Everything the store holds, each item with its creation sequence number (the order
/// `Describe*` lists in).
#[derive(Default, Clone)]
pub(crate) struct Model {
    pub(crate) next_seq: i64,
    pub(crate) vpcs: BTreeMap<String, (i64, Vpc)>,
    pub(crate) subnets: BTreeMap<String, (i64, Subnet)>,
    pub(crate) groups: BTreeMap<String, (i64, SecurityGroup)>,
}

pub(crate) fn open(path: &Path) -> Result<Connection, NetworkError> {
    let db = warden_sqlite::open(
        path,
        &warden_sqlite::Options {
            synchronous: warden_sqlite::Synchronous::Full,
            migrations: MIGRATIONS,
            incremental_vacuum: false,
        },
    )
    .map_err(|source| NetworkError::Store {
        context: "opening the network store",
        source,
    })?;
    drop(db.reader);
    Ok(db.writer)
}

fn corrupt(what: &str, value: &str) -> NetworkError {
    NetworkError::Store {
        context: "reading the network store",
        source: warden_sqlite::sqlite("reading the network store")(
            rusqlite::Error::InvalidColumnType(
                0,
                format!("{what} `{value}` does not parse"),
                rusqlite::types::Type::Text,
            ),
        ),
    }
}

fn cidr_v4(text: &str) -> Result<ipnet::Ipv4Net, NetworkError> {
    text.parse().map_err(|_| corrupt("CIDR block", text))
}

/// Reads the whole model.
pub(crate) fn load(conn: &Connection) -> Result<Model, NetworkError> {
    let ctx = "reading the network store";
    let mut tags: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    {
        let mut st = conn
            .prepare("SELECT resource_id, key, value FROM tags ORDER BY resource_id, position")
            .map_err(store(ctx))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(store(ctx))?;
        for row in rows {
            let (id, k, v) = row.map_err(store(ctx))?;
            tags.entry(id).or_default().push((k, v));
        }
    }
    let mut model = Model::default();
    let mut max_seq = 0i64;
    {
        let mut st = conn
            .prepare("SELECT id, seq, cidr, is_default FROM vpcs")
            .map_err(store(ctx))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(store(ctx))?;
        for row in rows {
            let (id, seq, cidr, is_default) = row.map_err(store(ctx))?;
            max_seq = max_seq.max(seq);
            let vpc = Vpc {
                tags: tags.remove(&id).unwrap_or_default(),
                id: id.clone(),
                cidr: cidr_v4(&cidr)?,
                is_default: is_default != 0,
            };
            model.vpcs.insert(id, (seq, vpc));
        }
    }
    {
        let mut st = conn
            .prepare("SELECT id, seq, vpc_id, cidr, availability_zone FROM subnets")
            .map_err(store(ctx))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(store(ctx))?;
        for row in rows {
            let (id, seq, vpc_id, cidr, availability_zone) = row.map_err(store(ctx))?;
            max_seq = max_seq.max(seq);
            let subnet = Subnet {
                tags: tags.remove(&id).unwrap_or_default(),
                id: id.clone(),
                vpc_id,
                cidr: cidr_v4(&cidr)?,
                availability_zone,
            };
            model.subnets.insert(id, (seq, subnet));
        }
    }
    {
        let mut st = conn
            .prepare("SELECT id, seq, vpc_id, name, description FROM security_groups")
            .map_err(store(ctx))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(store(ctx))?;
        for row in rows {
            let (id, seq, vpc_id, name, description) = row.map_err(store(ctx))?;
            max_seq = max_seq.max(seq);
            let group = SecurityGroup {
                tags: tags.remove(&id).unwrap_or_default(),
                id: id.clone(),
                vpc_id,
                name,
                description,
                egress: Vec::new(),
                ingress: Vec::new(),
            };
            model.groups.insert(id, (seq, group));
        }
    }
    {
        let mut st = conn
            .prepare(
                "SELECT id, seq, group_id, egress, protocol, from_port, to_port, cidr_v4, cidr_v6, \
                 peer_group, description FROM rules ORDER BY seq",
            )
            .map_err(store(ctx))?;
        let rows = st
            .query_map([], |r| {
                Ok(RuleRow {
                    id: r.get(0)?,
                    seq: r.get(1)?,
                    group_id: r.get(2)?,
                    egress: r.get::<_, i64>(3)? != 0,
                    protocol: r.get(4)?,
                    from_port: r.get(5)?,
                    to_port: r.get(6)?,
                    cidr_v4: r.get(7)?,
                    cidr_v6: r.get(8)?,
                    peer_group: r.get(9)?,
                    description: r.get(10)?,
                })
            })
            .map_err(store(ctx))?;
        for row in rows {
            let row = row.map_err(store(ctx))?;
            max_seq = max_seq.max(row.seq);
            let peer = match (&row.cidr_v4, &row.cidr_v6, &row.peer_group) {
                (Some(v4), _, _) => Peer::V4(cidr_v4(v4)?),
                (_, Some(v6), _) => Peer::V6(v6.parse().map_err(|_| corrupt("CIDR block", v6))?),
                (_, _, Some(g)) => Peer::Group(g.clone()),
                _ => return Err(corrupt("rule", &row.id)),
            };
            let protocol =
                IpProtocol::parse(&row.protocol).map_err(|_| corrupt("protocol", &row.protocol))?;
            let rule = SgRule {
                id: row.id.clone(),
                protocol,
                from_port: i32::try_from(row.from_port).map_err(|_| corrupt("port", &row.id))?,
                to_port: i32::try_from(row.to_port).map_err(|_| corrupt("port", &row.id))?,
                peer,
                description: row.description,
            };
            let Some((_, group)) = model.groups.get_mut(&row.group_id) else {
                return Err(corrupt("rule", &row.id));
            };
            if row.egress {
                group.egress.push(rule);
            } else {
                group.ingress.push(rule);
            }
        }
    }
    model.next_seq = max_seq + 1;
    Ok(model)
}

struct RuleRow {
    id: String,
    seq: i64,
    group_id: String,
    egress: bool,
    protocol: String,
    from_port: i64,
    to_port: i64,
    cidr_v4: Option<String>,
    cidr_v6: Option<String>,
    peer_group: Option<String>,
    description: Option<String>,
}

pub(crate) fn insert_vpc(tx: &Transaction<'_>, seq: i64, vpc: &Vpc) -> Result<(), NetworkError> {
    tx.execute(
        "INSERT INTO vpcs (id, seq, cidr, is_default) VALUES (?1, ?2, ?3, ?4)",
        params![vpc.id, seq, vpc.cidr.to_string(), i64::from(vpc.is_default)],
    )
    .map_err(store("writing a VPC"))?;
    set_tags(tx, &vpc.id, &vpc.tags)
}

pub(crate) fn delete_vpc(tx: &Transaction<'_>, id: &str) -> Result<(), NetworkError> {
    tx.execute("DELETE FROM vpcs WHERE id = ?1", [id])
        .map_err(store("deleting a VPC"))?;
    set_tags(tx, id, &[])
}

pub(crate) fn insert_subnet(
    tx: &Transaction<'_>,
    seq: i64,
    subnet: &Subnet,
) -> Result<(), NetworkError> {
    tx.execute(
        "INSERT INTO subnets (id, seq, vpc_id, cidr, availability_zone) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            subnet.id,
            seq,
            subnet.vpc_id,
            subnet.cidr.to_string(),
            subnet.availability_zone
        ],
    )
    .map_err(store("writing a subnet"))?;
    set_tags(tx, &subnet.id, &subnet.tags)
}

pub(crate) fn delete_subnet(tx: &Transaction<'_>, id: &str) -> Result<(), NetworkError> {
    tx.execute("DELETE FROM subnets WHERE id = ?1", [id])
        .map_err(store("deleting a subnet"))?;
    set_tags(tx, id, &[])
}

/// Inserts a group with its rules; `seq` numbers the group, `next` numbers its rules.
pub(crate) fn insert_group(
    tx: &Transaction<'_>,
    seq: i64,
    group: &SecurityGroup,
    next: &mut i64,
) -> Result<(), NetworkError> {
    tx.execute(
        "INSERT INTO security_groups (id, seq, vpc_id, name, description) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![group.id, seq, group.vpc_id, group.name, group.description],
    )
    .map_err(store("writing a security group"))?;
    for direction in [Direction::Egress, Direction::Ingress] {
        for rule in group.rules(direction) {
            insert_rule(tx, &group.id, direction, *next, rule)?;
            *next += 1;
        }
    }
    set_tags(tx, &group.id, &group.tags)
}

/// Deletes a group, its rules with it (rules of other groups naming it must be gone).
pub(crate) fn delete_group(tx: &Transaction<'_>, id: &str) -> Result<(), NetworkError> {
    tx.execute("DELETE FROM rules WHERE group_id = ?1", [id])
        .map_err(store("deleting a security group's rules"))?;
    tx.execute("DELETE FROM security_groups WHERE id = ?1", [id])
        .map_err(store("deleting a security group"))?;
    set_tags(tx, id, &[])
}

pub(crate) fn insert_rule(
    tx: &Transaction<'_>,
    group_id: &str,
    direction: Direction,
    seq: i64,
    rule: &SgRule,
) -> Result<(), NetworkError> {
    let (v4, v6, group) = match &rule.peer {
        Peer::V4(n) => (Some(n.to_string()), None, None),
        Peer::V6(n) => (None, Some(n.to_string()), None),
        Peer::Group(g) => (None, None, Some(g.as_str())),
    };
    tx.execute(
        "INSERT INTO rules (id, seq, group_id, egress, protocol, from_port, to_port, cidr_v4, \
         cidr_v6, peer_group, description) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            rule.id,
            seq,
            group_id,
            i64::from(direction.is_egress()),
            rule.protocol.as_str(),
            rule.from_port,
            rule.to_port,
            v4,
            v6,
            group,
            rule.description
        ],
    )
    .map_err(store("writing a security group rule"))?;
    Ok(())
}

pub(crate) fn delete_rule(tx: &Transaction<'_>, id: &str) -> Result<(), NetworkError> {
    tx.execute("DELETE FROM rules WHERE id = ?1", [id])
        .map_err(store("deleting a security group rule"))?;
    Ok(())
}

/// Replaces every tag of a resource.
pub(crate) fn set_tags(
    tx: &Transaction<'_>,
    resource_id: &str,
    tags: &[(String, String)],
) -> Result<(), NetworkError> {
    let ctx = "writing tags";
    tx.execute("DELETE FROM tags WHERE resource_id = ?1", [resource_id])
        .map_err(store(ctx))?;
    for (position, (k, v)) in tags.iter().enumerate() {
        tx.execute(
            "INSERT INTO tags (resource_id, position, key, value) VALUES (?1, ?2, ?3, ?4)",
            params![resource_id, position as i64, k, v],
        )
        .map_err(store(ctx))?;
    }
    Ok(())
}
