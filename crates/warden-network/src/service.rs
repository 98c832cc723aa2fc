//! The operations of the network service over the store, each one transaction, with the
//! model kept in memory for reads (the store is read once, at open; every change is
//! written, committed and synced before the in-memory model takes it).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use rusqlite::{Connection, Transaction};
use tokio::sync::watch;

use crate::error::{shared as shared_error, store as store_error, NetworkError};
use crate::model::{
    availability_zone, block_cidr, check_group_description, check_group_id, check_group_name,
    check_rule_id, check_subnet_id, check_tags, check_vpc_id, new_id, tag_limit, Direction,
    IpProtocol, Peer, ResourceKind, RuleSpec, SecurityGroup, SgRule, Subnet, TagDescription, Vpc,
    DEFAULT_GROUP_DESCRIPTION, DEFAULT_GROUP_NAME, MAX_RULES_PER_DIRECTION, MAX_SECURITY_GROUPS,
    MAX_SUBNETS, MAX_TAGS, MAX_VPCS,
};
use crate::shared;
use crate::store::{self, Model};
use warden_postgres::records::Replica;

/// One change to the in-memory model, applied once its transaction committed.
enum Edit {
    /// A new or changed VPC (`seq` numbers a new one).
    Vpc(i64, Vpc),
    /// A deleted VPC.
    RemoveVpc(String),
    /// A new or changed subnet.
    Subnet(i64, Subnet),
    /// A deleted subnet.
    RemoveSubnet(String),
    /// A new or changed security group (with all its rules and tags).
    Group(i64, SecurityGroup),
    /// A deleted security group.
    RemoveGroup(String),
}

/// Where the model is kept.
enum Backend {
    /// `network.db`, this node's own.
    Sqlite(Connection),
    /// Shared by the nodes of a deployment.
    Postgres(Replica),
}

struct Inner {
    /// The writer; holding it is what makes a write exclusive on this node.
    backend: Mutex<Backend>,
    model: RwLock<Model>,
    changes: watch::Sender<u64>,
    account: String,
    region: String,
}

/// Warden's EC2 network model: VPCs, subnets and security groups, their rules and tags.
/// Cheap to clone (one shared state); reads are served from memory.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("account", &self.inner.account)
            .field("region", &self.inner.region)
            .finish_non_exhaustive()
    }
}

fn vpc_not_found(id: &str) -> NetworkError {
    NetworkError::NotFound {
        code: "InvalidVpcID.NotFound",
        message: format!("The vpc ID '{id}' does not exist"),
    }
}

fn subnet_not_found(id: &str) -> NetworkError {
    NetworkError::NotFound {
        code: "InvalidSubnetID.NotFound",
        message: format!("The subnet ID '{id}' does not exist"),
    }
}

fn group_not_found(id: &str) -> NetworkError {
    NetworkError::NotFound {
        code: "InvalidGroup.NotFound",
        message: format!("The security group '{id}' does not exist"),
    }
}

/// The rule every new group starts with, and every VPC's default group: all traffic out.
fn allow_all_out() -> SgRule {
    SgRule {
        id: new_id("sgr"),
        protocol: IpProtocol::All,
        from_port: -1,
        to_port: -1,
        peer: Peer::V4(ipnet::Ipv4Net::default()),
        description: None,
    }
}

impl Network {
    /// Opens the service on `DATA_DIR/network.db` for `account` in `region`, reading the
    /// whole model into memory.
    pub fn open(data_dir: &Path, account: &str, region: &str) -> Result<Network, NetworkError> {
        let conn = store::open(&data_dir.join("network.db"))?;
        let model = store::load(&conn)?;
        Ok(Self::with_backend(
            Backend::Sqlite(conn),
            model,
            account,
            region,
        ))
    }

    /// Opens the service on the shared records of `pool` (opened with their track),
    /// which every node of a deployment shares, reading the whole model into memory.
    pub fn open_shared(
        pool: warden_postgres::Pool,
        account: &str,
        region: &str,
    ) -> Result<Network, NetworkError> {
        let (replica, snapshot) = Replica::open(pool, shared::NAMESPACE)
            .map_err(shared_error("opening the network store"))?;
        let model = shared::model(&snapshot)?;
        Ok(Self::with_backend(
            Backend::Postgres(replica),
            model,
            account,
            region,
        ))
    }

    fn with_backend(backend: Backend, model: Model, account: &str, region: &str) -> Network {
        let (changes, _) = watch::channel(0u64);
        Network {
            inner: Arc::new(Inner {
                backend: Mutex::new(backend),
                model: RwLock::new(model),
                changes,
                account: account.to_owned(),
                region: region.to_owned(),
            }),
        }
    }

    /// With a shared store, reads the model again if another node changed it since this
    /// node last read or wrote it, and tells subscribers (the packet filter follows);
    /// returns whether it did.
    pub fn refresh(&self) -> Result<bool, NetworkError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let Backend::Postgres(replica) = &mut *backend else {
            return Ok(false);
        };
        replica.refresh(
            |e| shared_error("reading the network store")(e),
            |snapshot| self.install(&snapshot),
        )
    }

    /// Installs the model of a shared store's `snapshot` and tells subscribers.
    fn install(&self, snapshot: &warden_postgres::records::Snapshot) -> Result<(), NetworkError> {
        let model = shared::model(snapshot)?;
        *self
            .inner
            .model
            .write()
            .unwrap_or_else(PoisonError::into_inner) = model;
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// The account the resources belong to (`OwnerId`).
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The region the resources are in.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The ARN of a resource of EC2's `resource_type` (`vpc`, `subnet`, `security-group`,
    /// `security-group-rule`) and id (`*` for any).
    pub fn arn(&self, resource_type: &str, id: &str) -> String {
        format!(
            "arn:aws:ec2:{}:{}:{resource_type}/{id}",
            self.inner.region, self.inner.account
        )
    }

    /// A counter bumped after every committed change to any VPC, subnet, group or rule.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn read(&self) -> RwLockReadGuard<'_, Model> {
        self.inner
            .model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The VPC with this id.
    pub fn vpc(&self, id: &str) -> Option<Vpc> {
        self.read().vpcs.get(id).map(|(_, v)| v.clone())
    }

    /// The subnet with this id.
    pub fn subnet(&self, id: &str) -> Option<Subnet> {
        self.read().subnets.get(id).map(|(_, s)| s.clone())
    }

    /// The security group with this id, with its rules.
    pub fn security_group(&self, id: &str) -> Option<SecurityGroup> {
        self.read().groups.get(id).map(|(_, g)| g.clone())
    }

    /// Every VPC, oldest first.
    pub fn vpcs(&self) -> Vec<Vpc> {
        in_order(&self.read().vpcs)
    }

    /// Every subnet, oldest first.
    pub fn subnets(&self) -> Vec<Subnet> {
        in_order(&self.read().subnets)
    }

    /// Every security group, oldest first.
    pub fn security_groups(&self) -> Vec<SecurityGroup> {
        in_order(&self.read().groups)
    }

    /// Every tag of every resource: VPCs, then subnets, then groups, each oldest first.
    pub fn tags(&self) -> Vec<TagDescription> {
        let model = self.read();
        let mut out = Vec::new();
        let mut push = |kind: ResourceKind, id: &str, tags: &[(String, String)]| {
            out.extend(tags.iter().map(|(k, v)| TagDescription {
                resource_id: id.to_owned(),
                resource_kind: kind,
                key: k.clone(),
                value: v.clone(),
            }));
        };
        for v in in_order(&model.vpcs) {
            push(ResourceKind::Vpc, &v.id, &v.tags);
        }
        for s in in_order(&model.subnets) {
            push(ResourceKind::Subnet, &s.id, &s.tags);
        }
        for g in in_order(&model.groups) {
            push(ResourceKind::SecurityGroup, &g.id, &g.tags);
        }
        out
    }

    /// Runs `f` over the current model in one immediate transaction; once it committed,
    /// applies the edits `f` returned to the in-memory model and tells subscribers.
    /// Writers are serialised by the connection's lock, so the model `f` sees cannot
    /// change before its edits are applied.
    ///
    /// With a shared store, `f` gets no SQLite transaction (`None`): the write holds the
    /// namespace's lock, first reads what other nodes changed, and stores each edited VPC,
    /// subnet or group (with its rules and tags) as one record.
    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(
            &Model,
            Option<&Transaction<'_>>,
            &mut i64,
        ) -> Result<(T, Vec<Edit>), NetworkError>,
    ) -> Result<T, NetworkError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let (out, edits, next_seq) = match &mut *backend {
            Backend::Sqlite(conn) => {
                warden_sqlite::rollback_abandoned(conn).map_err(store_error(context))?;
                let tx = warden_sqlite::immediate(conn).map_err(store_error(context))?;
                let (out, edits, next_seq) = {
                    let model = self.read();
                    let mut next_seq = model.next_seq;
                    let (out, edits) = f(&model, Some(&tx), &mut next_seq)?;
                    (out, edits, next_seq)
                };
                tx.commit().map_err(store_error(context))?;
                (out, edits, next_seq)
            }
            Backend::Postgres(replica) => {
                let mut w = replica.begin(
                    |e| shared_error(context)(e),
                    |snapshot| self.install(&snapshot),
                )?;
                let (out, edits, next_seq) = {
                    let model = self.read();
                    let mut next_seq = model.next_seq;
                    let (out, edits) = f(&model, None, &mut next_seq)?;
                    (out, edits, next_seq)
                };
                if edits.is_empty() {
                    return Ok(out);
                }
                for edit in &edits {
                    match edit {
                        Edit::Vpc(seq, v) => w.put(shared::VPC, &v.id, shared::vpc_text(*seq, v)?),
                        Edit::RemoveVpc(id) => w.delete(shared::VPC, id),
                        Edit::Subnet(seq, sn) => {
                            w.put(shared::SUBNET, &sn.id, shared::subnet_text(*seq, sn)?)
                        }
                        Edit::RemoveSubnet(id) => w.delete(shared::SUBNET, id),
                        Edit::Group(seq, g) => {
                            w.put(shared::GROUP, &g.id, shared::group_text(*seq, g)?)
                        }
                        Edit::RemoveGroup(id) => w.delete(shared::GROUP, id),
                    }
                    .map_err(shared_error(context))?;
                }
                replica.commit(w).map_err(shared_error(context))?;
                (out, edits, next_seq)
            }
        };
        drop(backend);
        if edits.is_empty() {
            return Ok(out);
        }
        {
            let mut model = self
                .inner
                .model
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            model.next_seq = next_seq;
            for edit in edits {
                match edit {
                    Edit::Vpc(seq, v) => put(&mut model.vpcs, seq, v.id.clone(), v),
                    Edit::RemoveVpc(id) => {
                        model.vpcs.remove(&id);
                    }
                    Edit::Subnet(seq, s) => put(&mut model.subnets, seq, s.id.clone(), s),
                    Edit::RemoveSubnet(id) => {
                        model.subnets.remove(&id);
                    }
                    Edit::Group(seq, g) => put(&mut model.groups, seq, g.id.clone(), g),
                    Edit::RemoveGroup(id) => {
                        model.groups.remove(&id);
                    }
                }
            }
        }
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(out)
    }

    // ---- VPCs ----

    /// `CreateVpc`: a VPC of `cidr` (`/16` to `/28`), with its `default` security group
    /// (all traffic out; in, all traffic from the group's own members).
    pub fn create_vpc(&self, cidr: &str, tags: Vec<(String, String)>) -> Result<Vpc, NetworkError> {
        let cidr = block_cidr(cidr, "InvalidVpc.Range")?;
        check_tags(&tags)?;
        self.write("creating a VPC", |model, tx, next| {
            if model.vpcs.len() >= MAX_VPCS {
                return Err(NetworkError::LimitExceeded {
                    code: "VpcLimitExceeded",
                    message: format!("The maximum number of VPCs ({MAX_VPCS}) has been reached."),
                });
            }
            if model.groups.len() >= MAX_SECURITY_GROUPS {
                return Err(group_limit());
            }
            let vpc = Vpc {
                id: new_id("vpc"),
                cidr,
                is_default: false,
                tags,
            };
            let group_id = new_id("sg");
            let group = SecurityGroup {
                id: group_id.clone(),
                vpc_id: vpc.id.clone(),
                name: DEFAULT_GROUP_NAME.to_owned(),
                description: DEFAULT_GROUP_DESCRIPTION.to_owned(),
                egress: vec![allow_all_out()],
                ingress: vec![SgRule {
                    id: new_id("sgr"),
                    protocol: IpProtocol::All,
                    from_port: -1,
                    to_port: -1,
                    peer: Peer::Group(group_id),
                    description: None,
                }],
                tags: Vec::new(),
            };
            let vpc_seq = take(next);
            if let Some(tx) = tx {
                store::insert_vpc(tx, vpc_seq, &vpc)?;
            }
            let group_seq = take(next);
            if let Some(tx) = tx {
                store::insert_group(tx, group_seq, &group, next)?;
            }
            tracing::info!(vpc = %vpc.id, cidr = %vpc.cidr, "created a VPC");
            Ok((
                vpc.clone(),
                vec![Edit::Vpc(vpc_seq, vpc), Edit::Group(group_seq, group)],
            ))
        })
    }

    /// `DeleteVpc`: refused while it has subnets or groups other than its default one,
    /// which goes with it.
    pub fn delete_vpc(&self, id: &str) -> Result<(), NetworkError> {
        check_vpc_id(id)?;
        self.write("deleting a VPC", |model, tx, _| {
            if !model.vpcs.contains_key(id) {
                return Err(vpc_not_found(id));
            }
            let in_use = model.subnets.values().any(|(_, s)| s.vpc_id == id)
                || model
                    .groups
                    .values()
                    .any(|(_, g)| g.vpc_id == id && !g.is_default());
            if in_use {
                return Err(NetworkError::DependencyViolation(format!(
                    "The vpc '{id}' has dependencies and cannot be deleted."
                )));
            }
            let defaults: Vec<String> = model
                .groups
                .values()
                .filter(|(_, g)| g.vpc_id == id)
                .map(|(_, g)| g.id.clone())
                .collect();
            let mut edits = Vec::new();
            for g in defaults {
                if let Some(tx) = tx {
                    store::delete_group(tx, &g)?;
                }
                edits.push(Edit::RemoveGroup(g));
            }
            if let Some(tx) = tx {
                store::delete_vpc(tx, id)?;
            }
            edits.push(Edit::RemoveVpc(id.to_owned()));
            tracing::info!(vpc = %id, "deleted a VPC");
            Ok(((), edits))
        })
    }

    // ---- subnets ----

    /// `CreateSubnet`: `cidr` inside the VPC's block and overlapping none of its other
    /// subnets, in `zone` (`REGION`a by default).
    pub fn create_subnet(
        &self,
        vpc_id: &str,
        cidr: &str,
        zone: Option<&str>,
        tags: Vec<(String, String)>,
    ) -> Result<Subnet, NetworkError> {
        check_vpc_id(vpc_id)?;
        let cidr = block_cidr(cidr, "InvalidSubnet.Range")?;
        let availability_zone = availability_zone(&self.inner.region, zone)?;
        check_tags(&tags)?;
        self.write("creating a subnet", |model, tx, next| {
            let Some((_, vpc)) = model.vpcs.get(vpc_id) else {
                return Err(vpc_not_found(vpc_id));
            };
            if model.subnets.len() >= MAX_SUBNETS {
                return Err(NetworkError::LimitExceeded {
                    code: "SubnetLimitExceeded",
                    message: format!(
                        "The maximum number of subnets ({MAX_SUBNETS}) has been reached."
                    ),
                });
            }
            if !vpc.cidr.contains(&cidr) {
                return Err(NetworkError::invalid(
                    "InvalidSubnet.Range",
                    format!(
                        "The CIDR '{cidr}' is invalid: it is not inside the VPC's block {}.",
                        vpc.cidr
                    ),
                ));
            }
            let overlaps = model.subnets.values().any(|(_, s)| {
                s.vpc_id == vpc_id && (s.cidr.contains(&cidr) || cidr.contains(&s.cidr))
            });
            if overlaps {
                return Err(NetworkError::invalid(
                    "InvalidSubnet.Conflict",
                    format!("The CIDR '{cidr}' conflicts with another subnet"),
                ));
            }
            let subnet = Subnet {
                id: new_id("subnet"),
                vpc_id: vpc_id.to_owned(),
                cidr,
                availability_zone,
                tags,
            };
            let seq = take(next);
            if let Some(tx) = tx {
                store::insert_subnet(tx, seq, &subnet)?;
            }
            Ok((subnet.clone(), vec![Edit::Subnet(seq, subnet)]))
        })
    }

    /// `DeleteSubnet`.
    pub fn delete_subnet(&self, id: &str) -> Result<(), NetworkError> {
        check_subnet_id(id)?;
        self.write("deleting a subnet", |model, tx, _| {
            if !model.subnets.contains_key(id) {
                return Err(subnet_not_found(id));
            }
            if let Some(tx) = tx {
                store::delete_subnet(tx, id)?;
            }
            Ok(((), vec![Edit::RemoveSubnet(id.to_owned())]))
        })
    }

    // ---- security groups ----

    /// `CreateSecurityGroup` in `vpc_id` (required: Warden has no default VPC), with one
    /// rule: all traffic out.
    pub fn create_security_group(
        &self,
        vpc_id: Option<&str>,
        name: &str,
        description: &str,
        tags: Vec<(String, String)>,
    ) -> Result<SecurityGroup, NetworkError> {
        let Some(vpc_id) = vpc_id else {
            return Err(NetworkError::invalid(
                "VPCIdNotSpecified",
                "No default VPC for this user: Warden has no default VPC, so VpcId is required",
            ));
        };
        check_vpc_id(vpc_id)?;
        check_group_name(name)?;
        check_group_description(description)?;
        check_tags(&tags)?;
        self.write("creating a security group", |model, tx, next| {
            if !model.vpcs.contains_key(vpc_id) {
                return Err(vpc_not_found(vpc_id));
            }
            if model
                .groups
                .values()
                .any(|(_, g)| g.vpc_id == vpc_id && g.name == name)
            {
                return Err(NetworkError::Duplicate {
                    code: "InvalidGroup.Duplicate",
                    message: format!(
                        "The security group '{name}' already exists for VPC '{vpc_id}'"
                    ),
                });
            }
            if model.groups.len() >= MAX_SECURITY_GROUPS {
                return Err(group_limit());
            }
            let group = SecurityGroup {
                id: new_id("sg"),
                vpc_id: vpc_id.to_owned(),
                name: name.to_owned(),
                description: description.to_owned(),
                egress: vec![allow_all_out()],
                ingress: Vec::new(),
                tags,
            };
            let seq = take(next);
            if let Some(tx) = tx {
                store::insert_group(tx, seq, &group, next)?;
            }
            Ok((group.clone(), vec![Edit::Group(seq, group)]))
        })
    }

    /// `DeleteSecurityGroup`: refused for a VPC's default group, and while another
    /// group's rule names it. Returns the group deleted.
    pub fn delete_security_group(&self, id: &str) -> Result<SecurityGroup, NetworkError> {
        check_group_id(id)?;
        self.write("deleting a security group", |model, tx, _| {
            let Some((_, group)) = model.groups.get(id) else {
                return Err(group_not_found(id));
            };
            if group.is_default() {
                return Err(NetworkError::CannotDelete(format!(
                    "the specified group: \"{id}\" name: \"{DEFAULT_GROUP_NAME}\" cannot be deleted by a user"
                )));
            }
            let referenced = model.groups.values().any(|(_, g)| {
                g.id != id
                    && g.egress
                        .iter()
                        .chain(&g.ingress)
                        .any(|r| r.peer == Peer::Group(id.to_owned()))
            });
            if referenced {
                return Err(NetworkError::DependencyViolation(format!(
                    "resource {id} has a dependent object"
                )));
            }
            if let Some(tx) = tx {
                store::delete_group(tx, id)?;
            }
            Ok((group.clone(), vec![Edit::RemoveGroup(id.to_owned())]))
        })
    }

    /// `AuthorizeSecurityGroupIngress`/`Egress`: adds every rule of `specs`, or none.
    /// Returns the rules added, with their ids.
    pub fn authorize(
        &self,
        group_id: &str,
        direction: Direction,
        specs: Vec<RuleSpec>,
    ) -> Result<Vec<SgRule>, NetworkError> {
        check_group_id(group_id)?;
        if specs.is_empty() {
            return Err(no_permissions());
        }
        self.write("authorizing security group rules", |model, tx, next| {
            let Some((seq, group)) = model.groups.get(group_id) else {
                return Err(group_not_found(group_id));
            };
            let mut group = group.clone();
            let mut added = Vec::with_capacity(specs.len());
            for spec in specs {
                if let Peer::Group(peer) = &spec.peer {
                    check_group_id(peer)?;
                    let Some((_, other)) = model.groups.get(peer) else {
                        return Err(group_not_found(peer));
                    };
                    if other.vpc_id != group.vpc_id {
                        return Err(NetworkError::invalid_value(format!(
                            "You have specified two resources that belong to different networks: {peer} is in {}, {group_id} in {}",
                            other.vpc_id, group.vpc_id
                        )));
                    }
                }
                if group.rules(direction).iter().any(|r| r.matches(&spec)) {
                    return Err(NetworkError::Duplicate {
                        code: "InvalidPermission.Duplicate",
                        message: format!(
                            "the specified rule \"{}\" already exists",
                            spec.describe()
                        ),
                    });
                }
                if group.rules(direction).len() >= MAX_RULES_PER_DIRECTION {
                    return Err(NetworkError::LimitExceeded {
                        code: "RulesPerSecurityGroupLimitExceeded",
                        message: format!(
                            "The maximum number of rules per security group ({MAX_RULES_PER_DIRECTION} per direction) has been reached."
                        ),
                    });
                }
                let rule = SgRule {
                    id: new_id("sgr"),
                    protocol: spec.protocol,
                    from_port: spec.from_port,
                    to_port: spec.to_port,
                    peer: spec.peer,
                    description: spec.description,
                };
                if let Some(tx) = tx {
                    store::insert_rule(tx, group_id, direction, take(next), &rule)?;
                }
                group.rules_mut(direction).push(rule.clone());
                added.push(rule);
            }
            Ok((added, vec![Edit::Group(*seq, group)]))
        })
    }

    /// `RevokeSecurityGroupIngress`/`Egress` by permissions: removes the rule matching
    /// each of `specs` (`InvalidPermission.NotFound`, and nothing removed, if one matches
    /// none). Returns the rules removed.
    pub fn revoke(
        &self,
        group_id: &str,
        direction: Direction,
        specs: Vec<RuleSpec>,
    ) -> Result<Vec<SgRule>, NetworkError> {
        check_group_id(group_id)?;
        if specs.is_empty() {
            return Err(no_permissions());
        }
        self.revoke_where(group_id, direction, |group| {
            let mut ids = Vec::new();
            for spec in &specs {
                match group.rules(direction).iter().find(|r| r.matches(spec)) {
                    Some(r) if !ids.contains(&r.id) => ids.push(r.id.clone()),
                    Some(_) => {}
                    None => {
                        return Err(NetworkError::NotFound {
                            code: "InvalidPermission.NotFound",
                            message: format!(
                                "The specified rule does not exist in this security group: \"{}\"",
                                spec.describe()
                            ),
                        })
                    }
                }
            }
            Ok(ids)
        })
    }

    /// `RevokeSecurityGroupIngress`/`Egress` by `SecurityGroupRuleIds`: each must be a
    /// rule of this group in this direction. Returns the rules removed.
    pub fn revoke_rules(
        &self,
        group_id: &str,
        direction: Direction,
        rule_ids: &[String],
    ) -> Result<Vec<SgRule>, NetworkError> {
        check_group_id(group_id)?;
        if rule_ids.is_empty() {
            return Err(no_permissions());
        }
        for id in rule_ids {
            check_rule_id(id)?;
        }
        self.revoke_where(group_id, direction, |group| {
            let mut ids = Vec::new();
            for id in rule_ids {
                if !group.rules(direction).iter().any(|r| &r.id == id) {
                    return Err(NetworkError::NotFound {
                        code: "InvalidSecurityGroupRuleId.NotFound",
                        message: format!(
                            "The security group rule ID '{id}' does not exist in the {} rules of {group_id}",
                            if direction.is_egress() { "egress" } else { "ingress" }
                        ),
                    });
                }
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            Ok(ids)
        })
    }

    fn revoke_where(
        &self,
        group_id: &str,
        direction: Direction,
        choose: impl FnOnce(&SecurityGroup) -> Result<Vec<String>, NetworkError>,
    ) -> Result<Vec<SgRule>, NetworkError> {
        self.write("revoking security group rules", |model, tx, _| {
            let Some((seq, group)) = model.groups.get(group_id) else {
                return Err(group_not_found(group_id));
            };
            let ids = choose(group)?;
            let mut group = group.clone();
            let mut removed = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(tx) = tx {
                    store::delete_rule(tx, id)?;
                }
            }
            group.rules_mut(direction).retain(|r| {
                if ids.contains(&r.id) {
                    removed.push(r.clone());
                    false
                } else {
                    true
                }
            });
            Ok((removed, vec![Edit::Group(*seq, group)]))
        })
    }

    // ---- tags ----

    /// `CreateTags`: sets each tag on each resource (a key already set takes the new
    /// value), on all of them or none.
    pub fn create_tags(
        &self,
        resources: &[String],
        tags: &[(String, String)],
    ) -> Result<(), NetworkError> {
        check_tags(tags)?;
        self.retag(resources, |current| {
            for (k, v) in tags {
                match current.iter_mut().find(|(key, _)| key == k) {
                    Some(existing) => existing.1 = v.clone(),
                    None => current.push((k.clone(), v.clone())),
                }
            }
            if current.len() > MAX_TAGS {
                return Err(tag_limit());
            }
            Ok(())
        })
    }

    /// `DeleteTags`: removes each key (with a value, only where the tag has that value);
    /// with no keys, every tag.
    pub fn delete_tags(
        &self,
        resources: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<(), NetworkError> {
        self.retag(resources, |current| {
            if tags.is_empty() {
                current.clear();
            } else {
                current.retain(|(k, v)| {
                    !tags
                        .iter()
                        .any(|(key, value)| key == k && value.as_ref().is_none_or(|x| x == v))
                });
            }
            Ok(())
        })
    }

    fn retag(
        &self,
        resources: &[String],
        change: impl Fn(&mut Vec<(String, String)>) -> Result<(), NetworkError>,
    ) -> Result<(), NetworkError> {
        if resources.is_empty() {
            return Err(NetworkError::invalid(
                "MissingParameter",
                "The request must contain the parameter ResourceId",
            ));
        }
        let mut kinds = Vec::with_capacity(resources.len());
        for id in resources {
            let kind = ResourceKind::of(id).ok_or_else(|| NetworkError::Malformed {
                code: "InvalidID",
                message: format!(
                    "The ID '{}' is not valid: Warden tags VPCs, subnets and security groups",
                    id.chars().take(64).collect::<String>()
                ),
            })?;
            match kind {
                ResourceKind::Vpc => check_vpc_id(id)?,
                ResourceKind::Subnet => check_subnet_id(id)?,
                ResourceKind::SecurityGroup => check_group_id(id)?,
            }
            kinds.push(kind);
        }
        self.write("writing tags", |model, tx, _| {
            let mut edits = Vec::new();
            for (id, kind) in resources.iter().zip(kinds) {
                // A resource named twice gets the change once, over its last edit.
                let pending = edits.iter().rev().find_map(|e: &Edit| match e {
                    Edit::Vpc(_, v) if &v.id == id => Some(v.tags.clone()),
                    Edit::Subnet(_, s) if &s.id == id => Some(s.tags.clone()),
                    Edit::Group(_, g) if &g.id == id => Some(g.tags.clone()),
                    _ => None,
                });
                let edit = match kind {
                    ResourceKind::Vpc => {
                        let (seq, v) = model.vpcs.get(id).ok_or_else(|| vpc_not_found(id))?;
                        let mut v = v.clone();
                        v.tags = pending.unwrap_or(v.tags);
                        change(&mut v.tags)?;
                        if let Some(tx) = tx {
                            store::set_tags(tx, id, &v.tags)?;
                        }
                        Edit::Vpc(*seq, v)
                    }
                    ResourceKind::Subnet => {
                        let (seq, s) = model.subnets.get(id).ok_or_else(|| subnet_not_found(id))?;
                        let mut s = s.clone();
                        s.tags = pending.unwrap_or(s.tags);
                        change(&mut s.tags)?;
                        if let Some(tx) = tx {
                            store::set_tags(tx, id, &s.tags)?;
                        }
                        Edit::Subnet(*seq, s)
                    }
                    ResourceKind::SecurityGroup => {
                        let (seq, g) = model.groups.get(id).ok_or_else(|| group_not_found(id))?;
                        let mut g = g.clone();
                        g.tags = pending.unwrap_or(g.tags);
                        change(&mut g.tags)?;
                        if let Some(tx) = tx {
                            store::set_tags(tx, id, &g.tags)?;
                        }
                        Edit::Group(*seq, g)
                    }
                };
                edits.push(edit);
            }
            Ok(((), edits))
        })
    }
}

fn group_limit() -> NetworkError {
    NetworkError::LimitExceeded {
        code: "SecurityGroupLimitExceeded",
        message: format!(
            "The maximum number of security groups ({MAX_SECURITY_GROUPS}) has been reached."
        ),
    }
}

fn no_permissions() -> NetworkError {
    NetworkError::invalid(
        "MissingParameter",
        "The request must name at least one permission (IpPermissions) or rule (SecurityGroupRuleIds)",
    )
}

/// The next sequence number.
fn take(next: &mut i64) -> i64 {
    let n = *next;
    *next += 1;
    n
}

fn put<T>(map: &mut std::collections::BTreeMap<String, (i64, T)>, seq: i64, id: String, value: T) {
    match map.get_mut(&id) {
        Some(slot) => slot.1 = value,
        None => {
            map.insert(id, (seq, value));
        }
    }
}

fn in_order<T: Clone>(map: &std::collections::BTreeMap<String, (i64, T)>) -> Vec<T> {
    let mut items: Vec<&(i64, T)> = map.values().collect();
    items.sort_by_key(|(seq, _)| *seq);
    items.into_iter().map(|(_, v)| v.clone()).collect()
}
