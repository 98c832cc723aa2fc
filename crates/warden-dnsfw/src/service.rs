//! The operations of DNS Firewall over the store, each one transaction, with the model kept
//! in memory for reads (the store is read once, at open; every change is written,
//! committed and synced before the in-memory model takes it), and the verdict index the
//! resolver consults for every query, rebuilt after each change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use rusqlite::{Connection, Transaction};

use crate::error::{invalid, shared as shared_error, store as store_error, DnsFirewallError};
use crate::model::{
    check_association_priority, check_creator_request_id, check_domain, check_name,
    check_rule_priority, check_tags, check_vpc_id, new_id, query_name, shown, Action, Association,
    BlockResponse, DomainList, DomainSet, DomainUpdate, Redirection, Rule, RuleGroup,
    MAX_ASSOCIATIONS, MAX_ASSOCIATIONS_PER_VPC, MAX_DOMAINS, MAX_DOMAINS_PER_UPDATE,
    MAX_DOMAIN_LISTS, MAX_RULES_PER_GROUP, MAX_RULE_GROUPS,
};
use crate::store;
use warden_postgres::records::{Replica, Snapshot};

/// The firewall's decision on one DNS query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let the query through.
    Allow {
        /// The name of the first `ALERT` rule that matched on the way, if any.
        alerted_by: Option<String>,
    },
    /// Answer the query as `response` says, without resolving it.
    Block {
        /// The name of the `BLOCK` rule that matched.
        rule: String,
        /// How to answer.
        response: BlockResponse,
    },
}

/// What a new domain list is made with.
#[derive(Clone, Debug, Default)]
pub struct NewDomainList {
    /// `CreatorRequestId`: a retry with the same id and the same values returns the list
    /// the first request made.
    pub creator_request_id: String,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

/// What a new rule group is made with.
#[derive(Clone, Debug, Default)]
pub struct NewRuleGroup {
    /// `CreatorRequestId`, as for [`NewDomainList`].
    pub creator_request_id: String,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

/// What a new rule is made with.
#[derive(Clone, Debug)]
pub struct NewRule {
    /// `CreatorRequestId`, as for [`NewDomainList`].
    pub creator_request_id: String,
    /// The rule group to add it to.
    pub group_id: String,
    /// The domain list it matches against.
    pub domain_list_id: String,
    /// Its place among the group's rules.
    pub priority: i64,
    /// What it does with a query it matches.
    pub action: Action,
    /// How it treats the names a redirection chain leads to.
    pub redirection: Redirection,
    /// Its name.
    pub name: String,
}

/// The changes `UpdateFirewallRule` asks for; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct RuleChange {
    /// A new priority.
    pub priority: Option<i64>,
    /// A new `Action` (`ALLOW`, `BLOCK`, `ALERT`).
    pub action: Option<String>,
    /// A new `BlockResponse` (`NXDOMAIN`, `NODATA`); a `BLOCK` rule keeps its own when
    /// none is given.
    pub block_response: Option<String>,
    /// A new name.
    pub name: Option<String>,
    /// A new redirection setting.
    pub redirection: Option<Redirection>,
}

/// What a new association is made with.
#[derive(Clone, Debug, Default)]
pub struct NewAssociation {
    /// `CreatorRequestId`, as for [`NewDomainList`].
    pub creator_request_id: String,
    /// The rule group to associate.
    pub group_id: String,
    /// The VPC whose queries it filters.
    pub vpc_id: String,
    /// Its place among the VPC's associations.
    pub priority: i64,
    /// Its name.
    pub name: String,
    /// `MutationProtection` `ENABLED`.
    pub mutation_protection: bool,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

/// The changes `UpdateFirewallRuleGroupAssociation` asks for; `None` keeps the current
/// value.
#[derive(Clone, Debug, Default)]
pub struct AssociationChange {
    /// A new priority.
    pub priority: Option<i64>,
    /// A new name.
    pub name: Option<String>,
    /// Turn mutation protection on or off.
    pub mutation_protection: Option<bool>,
}

/// A domain list and its domains.
#[derive(Clone)]
struct ListEntry {
    list: DomainList,
    domains: Arc<DomainSet>,
}

/// The whole model, in memory.
#[derive(Default, Clone)]
struct State {
    lists: HashMap<String, ListEntry>,
    groups: HashMap<String, RuleGroup>,
    /// Each group's rules, in priority order.
    rules: HashMap<String, Vec<Rule>>,
    associations: HashMap<String, Association>,
    /// The creation order the next resource takes.
    next_seq: u64,
    /// How many domains all lists hold.
    domain_total: usize,
}

impl State {
    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn find_rule(&self, group_id: &str, list_id: &str) -> Option<&Rule> {
        self.rules
            .get(group_id)?
            .iter()
            .find(|r| r.domain_list_id == list_id)
    }
}

/// One rule as the verdict evaluates it.
struct CompiledRule {
    name: String,
    action: Action,
    domains: Arc<DomainSet>,
}

/// For each VPC with associations, every rule that applies to its queries, in evaluation
/// order: associations by priority, and in each the group's rules by priority.
#[derive(Default)]
struct Index {
    by_vpc: HashMap<String, Vec<CompiledRule>>,
}

impl Index {
    fn build(state: &State) -> Index {
        let mut per_vpc: HashMap<&str, Vec<&Association>> = HashMap::new();
        for a in state.associations.values() {
            per_vpc.entry(a.vpc_id.as_str()).or_default().push(a);
        }
        let mut by_vpc = HashMap::with_capacity(per_vpc.len());
        for (vpc, mut associations) in per_vpc {
            associations.sort_by_key(|a| a.priority);
            let mut compiled = Vec::new();
            for a in associations {
                for rule in state.rules.get(&a.group_id).into_iter().flatten() {
                    // INVARIANT: a rule's domain list exists (the store's foreign keys and
                    // the checks before every write keep it so); a missing one matches
                    // nothing rather than failing every query.
                    if let Some(entry) = state.lists.get(&rule.domain_list_id) {
                        compiled.push(CompiledRule {
                            name: rule.name.clone(),
                            action: rule.action,
                            domains: Arc::clone(&entry.domains),
                        });
                    }
                }
            }
            by_vpc.insert(vpc.to_owned(), compiled);
        }
        Index { by_vpc }
    }

    fn verdict(&self, vpc_id: &str, qname: &str) -> Verdict {
        let Some(rules) = self.by_vpc.get(vpc_id) else {
            return Verdict::Allow { alerted_by: None };
        };
        let name = query_name(qname);
        let mut alerted_by = None;
        for rule in rules {
            if !rule.domains.matches(&name) {
                continue;
            }
            match rule.action {
                Action::Allow => return Verdict::Allow { alerted_by },
                Action::Block(response) => {
                    return Verdict::Block {
                        rule: rule.name.clone(),
                        response,
                    }
                }
                Action::Alert => {
                    if alerted_by.is_none() {
                        alerted_by = Some(rule.name.clone());
                    }
                }
            }
        }
        Verdict::Allow { alerted_by }
    }
}

/// Where the model is kept.
enum Backend {
    /// `dnsfw.db`, this node's own.
    Sqlite(Connection),
    /// Shared by the nodes of a deployment.
    Postgres(Replica),
}

/// The namespace and kinds of DNS Firewall's records in a shared store: a domain list
/// (with its domains), a rule group, a group's rules, an association.
const NAMESPACE: &str = "dnsfw";
const LIST: &str = "list";
const GROUP: &str = "group";
const RULES: &str = "rules";
const ASSOCIATION: &str = "association";

#[derive(serde::Serialize, serde::Deserialize)]
struct ListRecord {
    list: DomainList,
    domains: Vec<String>,
}

fn record_text<T: serde::Serialize>(record: &T) -> Result<String, DnsFirewallError> {
    serde_json::to_string(record).map_err(|e| DnsFirewallError::Shared {
        context: "writing the shared DNS Firewall model",
        message: e.to_string(),
    })
}

fn parse_record<T: serde::de::DeserializeOwned>(
    kind: &str,
    id: &str,
    text: &str,
) -> Result<T, DnsFirewallError> {
    serde_json::from_str(text).map_err(|e| DnsFirewallError::Shared {
        context: "reading the shared DNS Firewall model",
        message: format!("the {kind} record `{id}` does not parse: {e}"),
    })
}

/// The model the records of one snapshot make up.
fn state_of(snapshot: &Snapshot) -> Result<State, DnsFirewallError> {
    let mut state = State::default();
    for r in &snapshot.records {
        match r.kind.as_str() {
            LIST => {
                let rec: ListRecord = parse_record(LIST, &r.id, &r.text)?;
                let mut set = DomainSet::default();
                for d in &rec.domains {
                    set.insert(d);
                }
                state.domain_total += set.len();
                state.next_seq = state.next_seq.max(rec.list.seq);
                state.lists.insert(
                    rec.list.id.clone(),
                    ListEntry {
                        list: rec.list,
                        domains: Arc::new(set),
                    },
                );
            }
            GROUP => {
                let group: RuleGroup = parse_record(GROUP, &r.id, &r.text)?;
                state.next_seq = state.next_seq.max(group.seq);
                state.rules.entry(group.id.clone()).or_default();
                state.groups.insert(group.id.clone(), group);
            }
            RULES => {
                let mut rules: Vec<Rule> = parse_record(RULES, &r.id, &r.text)?;
                rules.sort_by_key(|r| r.priority);
                state.rules.insert(r.id.clone(), rules);
            }
            ASSOCIATION => {
                let a: Association = parse_record(ASSOCIATION, &r.id, &r.text)?;
                state.next_seq = state.next_seq.max(a.seq);
                state.associations.insert(a.id.clone(), a);
            }
            // A kind a newer build added: not this build's to read.
            _ => {}
        }
    }
    Ok(state)
}

/// One record to write: its kind, its id, and its text (`None` to delete it).
type RecordWrite = (&'static str, String, Option<String>);

/// The records to write to make `before` into `after`: each list, group, group's rules
/// and association that changed or is new, and each one gone.
fn state_diff(before: &State, after: &State) -> Result<Vec<RecordWrite>, DnsFirewallError> {
    let mut out = Vec::new();
    for (id, e) in &after.lists {
        let same = before.lists.get(id).is_some_and(|b| {
            b.list == e.list && (Arc::ptr_eq(&b.domains, &e.domains) || b.domains == e.domains)
        });
        if !same {
            let text = record_text(&ListRecord {
                list: e.list.clone(),
                domains: e.domains.sorted(),
            })?;
            out.push((LIST, id.clone(), Some(text)));
        }
    }
    for id in before
        .lists
        .keys()
        .filter(|id| !after.lists.contains_key(*id))
    {
        out.push((LIST, id.clone(), None));
    }
    for (id, g) in &after.groups {
        if before.groups.get(id) != Some(g) {
            out.push((GROUP, id.clone(), Some(record_text(g)?)));
        }
    }
    for id in before
        .groups
        .keys()
        .filter(|id| !after.groups.contains_key(*id))
    {
        out.push((GROUP, id.clone(), None));
    }
    for (id, rules) in &after.rules {
        if before.rules.get(id) != Some(rules) {
            out.push((RULES, id.clone(), Some(record_text(rules)?)));
        }
    }
    for id in before
        .rules
        .keys()
        .filter(|id| !after.rules.contains_key(*id))
    {
        out.push((RULES, id.clone(), None));
    }
    for (id, a) in &after.associations {
        if before.associations.get(id) != Some(a) {
            out.push((ASSOCIATION, id.clone(), Some(record_text(a)?)));
        }
    }
    for id in before
        .associations
        .keys()
        .filter(|id| !after.associations.contains_key(*id))
    {
        out.push((ASSOCIATION, id.clone(), None));
    }
    Ok(out)
}

struct Inner {
    /// The one writer; held for the whole of every change, so changes are serialized.
    backend: Mutex<Backend>,
    state: RwLock<State>,
    index: RwLock<Arc<Index>>,
    account: String,
    region: String,
}

/// Warden's DNS Firewall: domain lists, rule groups, rules, and their associations with
/// VPCs. Cheap to clone (one shared state); reads and verdicts are served from memory.
#[derive(Clone)]
pub struct DnsFirewall {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DnsFirewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsFirewall")
            .field("account", &self.inner.account)
            .field("region", &self.inner.region)
            .finish_non_exhaustive()
    }
}

fn list_not_found(id: &str) -> DnsFirewallError {
    DnsFirewallError::NotFound {
        resource_type: "FirewallDomainList",
        message: format!("Can't find the firewall domain list `{}`", shown(id)),
    }
}

fn group_not_found(id: &str) -> DnsFirewallError {
    DnsFirewallError::NotFound {
        resource_type: "FirewallRuleGroup",
        message: format!("Can't find the firewall rule group `{}`", shown(id)),
    }
}

fn rule_not_found(group_id: &str, list_id: &str) -> DnsFirewallError {
    DnsFirewallError::NotFound {
        resource_type: "FirewallRule",
        message: format!(
            "The firewall rule group `{}` has no rule for the domain list `{}`",
            shown(group_id),
            shown(list_id)
        ),
    }
}

fn association_not_found(id: &str) -> DnsFirewallError {
    DnsFirewallError::NotFound {
        resource_type: "FirewallRuleGroupAssociation",
        message: format!(
            "Can't find the firewall rule group association `{}`",
            shown(id)
        ),
    }
}

fn reused_request_id(id: &str) -> DnsFirewallError {
    invalid(format!(
        "The CreatorRequestId `{}` was already used by a request with other values; use a new one",
        shown(id)
    ))
}

fn limit(resource_type: &'static str, message: String) -> DnsFirewallError {
    DnsFirewallError::LimitExceeded {
        resource_type,
        message,
    }
}

impl DnsFirewall {
    /// Opens the service on `DATA_DIR/dnsfw.db` for `account` in `region`, reading the
    /// whole model into memory.
    pub fn open(
        data_dir: &Path,
        account: &str,
        region: &str,
    ) -> Result<DnsFirewall, DnsFirewallError> {
        let conn = store::open(&data_dir.join("dnsfw.db"))?;
        let loaded = store::load(&conn)?;
        let mut state = State::default();
        for (list, domains) in loaded.lists {
            let mut set = DomainSet::default();
            for d in &domains {
                set.insert(d);
            }
            state.domain_total += set.len();
            state.next_seq = state.next_seq.max(list.seq);
            state.lists.insert(
                list.id.clone(),
                ListEntry {
                    list,
                    domains: Arc::new(set),
                },
            );
        }
        for group in loaded.groups {
            state.next_seq = state.next_seq.max(group.seq);
            state.rules.entry(group.id.clone()).or_default();
            state.groups.insert(group.id.clone(), group);
        }
        for rule in loaded.rules {
            state
                .rules
                .entry(rule.group_id.clone())
                .or_default()
                .push(rule);
        }
        for rules in state.rules.values_mut() {
            rules.sort_by_key(|r| r.priority);
        }
        for a in loaded.associations {
            state.next_seq = state.next_seq.max(a.seq);
            state.associations.insert(a.id.clone(), a);
        }
        Ok(Self::with_backend(
            Backend::Sqlite(conn),
            state,
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
    ) -> Result<DnsFirewall, DnsFirewallError> {
        let (replica, snapshot) = Replica::open(pool, NAMESPACE)
            .map_err(shared_error("opening the DNS Firewall store"))?;
        let state = state_of(&snapshot)?;
        Ok(Self::with_backend(
            Backend::Postgres(replica),
            state,
            account,
            region,
        ))
    }

    fn with_backend(backend: Backend, state: State, account: &str, region: &str) -> DnsFirewall {
        let index = Index::build(&state);
        DnsFirewall {
            inner: Arc::new(Inner {
                backend: Mutex::new(backend),
                state: RwLock::new(state),
                index: RwLock::new(Arc::new(index)),
                account: account.to_owned(),
                region: region.to_owned(),
            }),
        }
    }

    /// Installs the model of a shared store's `snapshot`.
    fn install_snapshot(&self, snapshot: &Snapshot) -> Result<(), DnsFirewallError> {
        self.install(state_of(snapshot)?);
        Ok(())
    }

    /// Installs `state` and the verdict index built from it.
    fn install(&self, state: State) {
        let index = Arc::new(Index::build(&state));
        *self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner) = state;
        *self
            .inner
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner) = index;
    }

    /// With a shared store, reads the model again if another node changed it since this
    /// node last read or wrote it (the resolver's verdicts follow at once); returns
    /// whether it did.
    pub fn refresh(&self) -> Result<bool, DnsFirewallError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let Backend::Postgres(replica) = &mut *backend else {
            return Ok(false);
        };
        replica.refresh(
            |e| shared_error("reading the DNS Firewall store")(e),
            |snapshot| self.install_snapshot(&snapshot),
        )
    }

    /// The decision for a query of `qname` (as received, any case, with or without the
    /// trailing dot) from an instance attached to `vpc_id`: the VPC's associations in
    /// priority order (lowest first), and in each rule group its rules in priority order;
    /// the first rule whose domain list matches decides (`ALLOW` stops evaluation and
    /// allows, `BLOCK` stops and blocks, `ALERT` is recorded and evaluation goes on). No
    /// matching rule: allow. Served from memory, without touching the store.
    pub fn verdict(&self, vpc_id: &str, qname: &str) -> Verdict {
        let index = Arc::clone(
            &self
                .inner
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        index.verdict(vpc_id, qname)
    }

    /// The account the resources belong to (`OwnerId`).
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The region the resources are in.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    fn arn(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:aws:route53resolver:{}:{}:{kind}/{id}",
            self.inner.region, self.inner.account
        )
    }

    /// The ARN of the domain list `id` (whether or not it exists).
    pub fn domain_list_arn(&self, id: &str) -> String {
        self.arn("firewall-domain-list", id)
    }

    /// The ARN of the rule group `id` (whether or not it exists).
    pub fn rule_group_arn(&self, id: &str) -> String {
        self.arn("firewall-rule-group", id)
    }

    /// The ARN of the association `id` (whether or not it exists).
    pub fn association_arn(&self, id: &str) -> String {
        self.arn("firewall-rule-group-association", id)
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one change: `plan` decides on the current model (which no other change can
    /// touch meanwhile) and writes it in one immediate transaction, committed and synced
    /// before `apply` gives the in-memory model the same change and the verdict index is
    /// rebuilt.
    ///
    /// With a shared store, `plan` gets no SQLite transaction (`None`): the change holds
    /// the namespace's lock and first reads what other nodes changed; `apply` runs on a
    /// copy of the model, and every list, group, group's rules and association it changed
    /// is written as a record before the copy is installed.
    fn change<P, T>(
        &self,
        context: &'static str,
        plan: impl FnOnce(&State, Option<&Transaction<'_>>) -> Result<P, DnsFirewallError>,
        apply: impl FnOnce(&mut State, P) -> T,
    ) -> Result<T, DnsFirewallError> {
        let mut backend = warden_sqlite::lock(&self.inner.backend);
        let conn = match &mut *backend {
            Backend::Sqlite(conn) => conn,
            Backend::Postgres(replica) => {
                let mut w = replica.begin(
                    |e| shared_error(context)(e),
                    |snapshot| self.install_snapshot(&snapshot),
                )?;
                let (out, next) = {
                    let state = self.state();
                    let planned = plan(&state, None)?;
                    let mut next = state.clone();
                    let out = apply(&mut next, planned);
                    for (kind, id, text) in state_diff(&state, &next)? {
                        match text {
                            Some(t) => w.put(kind, &id, t),
                            None => w.delete(kind, &id),
                        }
                        .map_err(shared_error(context))?;
                    }
                    (out, next)
                };
                replica.commit(w).map_err(shared_error(context))?;
                self.install(next);
                return Ok(out);
            }
        };
        warden_sqlite::rollback_abandoned(conn).map_err(store_error(context))?;
        let tx = warden_sqlite::immediate(conn).map_err(store_error(context))?;
        let planned = {
            let state = self.state();
            plan(&state, Some(&tx))?
        };
        tx.commit().map_err(store_error(context))?;
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let out = apply(&mut state, planned);
        let index = Arc::new(Index::build(&state));
        *self
            .inner
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner) = index;
        Ok(out)
    }

    // ---- reads ----

    fn list_view(&self, entry: &ListEntry) -> DomainList {
        let mut list = entry.list.clone();
        list.arn = self.domain_list_arn(&list.id);
        list.domain_count = entry.domains.len();
        list
    }

    fn group_view(&self, state: &State, group: &RuleGroup) -> RuleGroup {
        let mut group = group.clone();
        group.arn = self.rule_group_arn(&group.id);
        group.rule_count = state.rules.get(&group.id).map_or(0, Vec::len);
        group
    }

    fn association_view(&self, a: &Association) -> Association {
        let mut a = a.clone();
        a.arn = self.association_arn(&a.id);
        a
    }

    /// The domain list `id`.
    pub fn domain_list(&self, id: &str) -> Result<DomainList, DnsFirewallError> {
        let state = self.state();
        let entry = state.lists.get(id).ok_or_else(|| list_not_found(id))?;
        Ok(self.list_view(entry))
    }

    /// Every domain list, oldest first.
    pub fn domain_lists(&self) -> Vec<DomainList> {
        let state = self.state();
        let mut out: Vec<DomainList> = state.lists.values().map(|e| self.list_view(e)).collect();
        out.sort_by_key(|l| l.seq);
        out
    }

    /// The domains of the list `id`, in their stored form, sorted.
    pub fn domains(&self, id: &str) -> Result<Vec<String>, DnsFirewallError> {
        let domains = {
            let state = self.state();
            let entry = state.lists.get(id).ok_or_else(|| list_not_found(id))?;
            Arc::clone(&entry.domains)
        };
        Ok(domains.sorted())
    }

    /// The rule group `id`.
    pub fn rule_group(&self, id: &str) -> Result<RuleGroup, DnsFirewallError> {
        let state = self.state();
        let group = state.groups.get(id).ok_or_else(|| group_not_found(id))?;
        Ok(self.group_view(&state, group))
    }

    /// Every rule group, oldest first.
    pub fn rule_groups(&self) -> Vec<RuleGroup> {
        let state = self.state();
        let mut out: Vec<RuleGroup> = state
            .groups
            .values()
            .map(|g| self.group_view(&state, g))
            .collect();
        out.sort_by_key(|g| g.seq);
        out
    }

    /// The rules of the rule group `group_id`, in priority order.
    pub fn rules(&self, group_id: &str) -> Result<Vec<Rule>, DnsFirewallError> {
        let state = self.state();
        if !state.groups.contains_key(group_id) {
            return Err(group_not_found(group_id));
        }
        Ok(state.rules.get(group_id).cloned().unwrap_or_default())
    }

    /// The association `id`.
    pub fn association(&self, id: &str) -> Result<Association, DnsFirewallError> {
        let state = self.state();
        let a = state
            .associations
            .get(id)
            .ok_or_else(|| association_not_found(id))?;
        Ok(self.association_view(a))
    }

    /// Every association, oldest first.
    pub fn associations(&self) -> Vec<Association> {
        let state = self.state();
        let mut out: Vec<Association> = state
            .associations
            .values()
            .map(|a| self.association_view(a))
            .collect();
        out.sort_by_key(|a| a.seq);
        out
    }

    // ---- domain lists ----

    /// `CreateFirewallDomainList`: a new, empty domain list.
    pub fn create_domain_list(&self, new: NewDomainList) -> Result<DomainList, DnsFirewallError> {
        check_creator_request_id(&new.creator_request_id)?;
        check_name(&new.name)?;
        check_tags(&new.tags)?;
        let now = warden_types::now_millis();
        let id = self.change(
            "creating a domain list",
            |state, tx| {
                if let Some(e) = state
                    .lists
                    .values()
                    .find(|e| e.list.creator_request_id == new.creator_request_id)
                {
                    if e.list.name == new.name && e.list.tags == new.tags {
                        return Ok(Err(e.list.id.clone()));
                    }
                    return Err(reused_request_id(&new.creator_request_id));
                }
                if state.lists.len() >= MAX_DOMAIN_LISTS {
                    return Err(limit(
                        "FirewallDomainList",
                        format!(
                            "Warden's DNS Firewall holds at most {MAX_DOMAIN_LISTS} domain lists"
                        ),
                    ));
                }
                let list = DomainList {
                    id: fresh_id("rslvr-fdl", |id| state.lists.contains_key(id)),
                    arn: String::new(),
                    name: new.name.clone(),
                    creator_request_id: new.creator_request_id.clone(),
                    domain_count: 0,
                    created_ms: now,
                    modified_ms: now,
                    tags: new.tags.clone(),
                    seq: state.next_seq + 1,
                };
                if let Some(tx) = tx {
                    store::put_list(tx, &list)?;
                }
                Ok(Ok(list))
            },
            |state, planned| match planned {
                Err(existing) => existing,
                Ok(list) => {
                    state.take_seq();
                    let id = list.id.clone();
                    state.lists.insert(
                        id.clone(),
                        ListEntry {
                            list,
                            domains: Arc::new(DomainSet::default()),
                        },
                    );
                    id
                }
            },
        )?;
        self.domain_list(&id)
    }

    /// `UpdateFirewallDomains`: adds, removes or replaces the domains of the list `id`
    /// (each checked by [`check_domain`](crate::check_domain); at most
    /// [`MAX_DOMAINS_PER_UPDATE`] in one request, [`MAX_DOMAINS`] in all lists).
    pub fn update_domains(
        &self,
        id: &str,
        operation: DomainUpdate,
        domains: &[String],
    ) -> Result<DomainList, DnsFirewallError> {
        if domains.len() > MAX_DOMAINS_PER_UPDATE {
            return Err(limit(
                "FirewallDomain",
                format!(
                    "One request updates at most {MAX_DOMAINS_PER_UPDATE} domains; this one names {}",
                    domains.len()
                ),
            ));
        }
        let mut given = Vec::with_capacity(domains.len());
        for d in domains {
            let canonical = check_domain(d)?;
            if !given.contains(&canonical) {
                given.push(canonical);
            }
        }
        let now = warden_types::now_millis();
        self.change(
            "updating domains",
            |state, tx| {
                let entry = state.lists.get(id).ok_or_else(|| list_not_found(id))?;
                let mut set = DomainSet::clone(&entry.domains);
                match operation {
                    DomainUpdate::Add => {
                        let added: Vec<String> =
                            given.iter().filter(|d| set.insert(d)).cloned().collect();
                        if let Some(tx) = tx {
                            store::add_domains(tx, id, &added)?;
                        }
                    }
                    DomainUpdate::Remove => {
                        let removed: Vec<String> =
                            given.iter().filter(|d| set.remove(d)).cloned().collect();
                        if let Some(tx) = tx {
                            store::remove_domains(tx, id, &removed)?;
                        }
                    }
                    DomainUpdate::Replace => {
                        set = DomainSet::default();
                        for d in &given {
                            set.insert(d);
                        }
                        if let Some(tx) = tx {
                            store::clear_domains(tx, id)?;
                        }
                        if let Some(tx) = tx {
                            store::add_domains(tx, id, &given)?;
                        }
                    }
                }
                let total = state.domain_total - entry.domains.len() + set.len();
                if total > MAX_DOMAINS {
                    return Err(limit(
                        "FirewallDomain",
                        format!(
                            "Warden's DNS Firewall holds at most {MAX_DOMAINS} domains in all domain lists together; this update would make {total}"
                        ),
                    ));
                }
                let mut list = entry.list.clone();
                list.modified_ms = now;
                if let Some(tx) = tx {
                    store::put_list(tx, &list)?;
                }
                Ok((list, set))
            },
            |state, (list, set)| {
                let old = state.lists.get(id).map_or(0, |e| e.domains.len());
                state.domain_total = state.domain_total - old + set.len();
                state.lists.insert(
                    id.to_owned(),
                    ListEntry {
                        list,
                        domains: Arc::new(set),
                    },
                );
            },
        )?;
        self.domain_list(id)
    }

    /// `DeleteFirewallDomainList`: refused while a rule uses the list. Returns the list as
    /// it was.
    pub fn delete_domain_list(&self, id: &str) -> Result<DomainList, DnsFirewallError> {
        let before = self.domain_list(id)?;
        self.change(
            "deleting a domain list",
            |state, tx| {
                if !state.lists.contains_key(id) {
                    return Err(list_not_found(id));
                }
                if let Some(rule) = state
                    .rules
                    .values()
                    .flatten()
                    .find(|r| r.domain_list_id == id)
                {
                    return Err(DnsFirewallError::Conflict(format!(
                        "The domain list `{id}` is used by the rule `{}` of the rule group `{}`; delete that rule first",
                        rule.name, rule.group_id
                    )));
                }
                match tx {
                    Some(tx) => store::delete_list(tx, id),
                    None => Ok(()),
                }
            },
            |state, ()| {
                if let Some(e) = state.lists.remove(id) {
                    state.domain_total -= e.domains.len();
                }
            },
        )?;
        Ok(before)
    }

    // ---- rule groups ----

    /// `CreateFirewallRuleGroup`: a new rule group without rules.
    pub fn create_rule_group(&self, new: NewRuleGroup) -> Result<RuleGroup, DnsFirewallError> {
        check_creator_request_id(&new.creator_request_id)?;
        check_name(&new.name)?;
        check_tags(&new.tags)?;
        let now = warden_types::now_millis();
        let id = self.change(
            "creating a rule group",
            |state, tx| {
                if let Some(g) = state
                    .groups
                    .values()
                    .find(|g| g.creator_request_id == new.creator_request_id)
                {
                    if g.name == new.name && g.tags == new.tags {
                        return Ok(Err(g.id.clone()));
                    }
                    return Err(reused_request_id(&new.creator_request_id));
                }
                if state.groups.len() >= MAX_RULE_GROUPS {
                    return Err(limit(
                        "FirewallRuleGroup",
                        format!(
                            "Warden's DNS Firewall holds at most {MAX_RULE_GROUPS} rule groups"
                        ),
                    ));
                }
                let group = RuleGroup {
                    id: fresh_id("rslvr-frg", |id| state.groups.contains_key(id)),
                    arn: String::new(),
                    name: new.name.clone(),
                    creator_request_id: new.creator_request_id.clone(),
                    rule_count: 0,
                    created_ms: now,
                    modified_ms: now,
                    tags: new.tags.clone(),
                    seq: state.next_seq + 1,
                };
                if let Some(tx) = tx {
                    store::put_group(tx, &group)?;
                }
                Ok(Ok(group))
            },
            |state, planned| match planned {
                Err(existing) => existing,
                Ok(group) => {
                    state.take_seq();
                    let id = group.id.clone();
                    state.rules.insert(id.clone(), Vec::new());
                    state.groups.insert(id.clone(), group);
                    id
                }
            },
        )?;
        self.rule_group(&id)
    }

    /// `DeleteFirewallRuleGroup`: refused while the group is associated with a VPC; its
    /// rules go with it. Returns the group as it was.
    pub fn delete_rule_group(&self, id: &str) -> Result<RuleGroup, DnsFirewallError> {
        let before = self.rule_group(id)?;
        self.change(
            "deleting a rule group",
            |state, tx| {
                if !state.groups.contains_key(id) {
                    return Err(group_not_found(id));
                }
                if let Some(a) = state.associations.values().find(|a| a.group_id == id) {
                    return Err(DnsFirewallError::Conflict(format!(
                        "The rule group `{id}` is associated with the VPC `{}` (association `{}`); disassociate it first",
                        a.vpc_id, a.id
                    )));
                }
                match tx {
                    Some(tx) => store::delete_group(tx, id),
                    None => Ok(()),
                }
            },
            |state, ()| {
                state.groups.remove(id);
                state.rules.remove(id);
            },
        )?;
        Ok(before)
    }

    // ---- rules ----

    /// `CreateFirewallRule`: a rule in a group, for a domain list the group has no rule
    /// for yet, at a priority no other rule of the group has.
    pub fn create_rule(&self, new: NewRule) -> Result<Rule, DnsFirewallError> {
        check_creator_request_id(&new.creator_request_id)?;
        check_name(&new.name)?;
        check_rule_priority(new.priority)?;
        let now = warden_types::now_millis();
        self.change(
            "creating a rule",
            |state, tx| {
                if let Some(r) = state
                    .rules
                    .values()
                    .flatten()
                    .find(|r| r.creator_request_id == new.creator_request_id)
                {
                    let same = r.group_id == new.group_id
                        && r.domain_list_id == new.domain_list_id
                        && r.priority == new.priority
                        && r.action == new.action
                        && r.redirection == new.redirection
                        && r.name == new.name;
                    if same {
                        return Ok(Err(r.clone()));
                    }
                    return Err(reused_request_id(&new.creator_request_id));
                }
                let group = state
                    .groups
                    .get(&new.group_id)
                    .ok_or_else(|| group_not_found(&new.group_id))?;
                if !state.lists.contains_key(&new.domain_list_id) {
                    return Err(list_not_found(&new.domain_list_id));
                }
                let rules = state.rules.get(&new.group_id).map_or(&[][..], Vec::as_slice);
                if let Some(r) = rules.iter().find(|r| r.domain_list_id == new.domain_list_id) {
                    return Err(invalid(format!(
                        "The rule group `{}` already has a rule for the domain list `{}` (`{}`); update or delete it",
                        new.group_id, new.domain_list_id, r.name
                    )));
                }
                if let Some(r) = rules.iter().find(|r| r.priority == new.priority) {
                    return Err(invalid(format!(
                        "The priority {} is already used by the rule `{}` of the rule group `{}`; a rule group's priorities are unique",
                        new.priority, r.name, new.group_id
                    )));
                }
                if rules.len() >= MAX_RULES_PER_GROUP {
                    return Err(limit(
                        "FirewallRule",
                        format!("A rule group holds at most {MAX_RULES_PER_GROUP} rules"),
                    ));
                }
                let rule = Rule {
                    group_id: new.group_id.clone(),
                    domain_list_id: new.domain_list_id.clone(),
                    name: new.name.clone(),
                    priority: new.priority,
                    action: new.action,
                    redirection: new.redirection,
                    creator_request_id: new.creator_request_id.clone(),
                    created_ms: now,
                    modified_ms: now,
                };
                let mut group = group.clone();
                group.modified_ms = now;
                if let Some(tx) = tx {
                    store::put_rule(tx, &rule)?;
                }
                if let Some(tx) = tx {
                    store::put_group(tx, &group)?;
                }
                Ok(Ok((rule, group)))
            },
            |state, planned| match planned {
                Err(existing) => existing,
                Ok((rule, group)) => {
                    put_rule(state, rule.clone());
                    state.groups.insert(group.id.clone(), group);
                    rule
                }
            },
        )
    }

    /// `UpdateFirewallRule`: changes the rule of the group `group_id` for the domain list
    /// `list_id`.
    pub fn update_rule(
        &self,
        group_id: &str,
        list_id: &str,
        change: RuleChange,
    ) -> Result<Rule, DnsFirewallError> {
        if let Some(name) = &change.name {
            check_name(name)?;
        }
        if let Some(p) = change.priority {
            check_rule_priority(p)?;
        }
        let now = warden_types::now_millis();
        self.change(
            "updating a rule",
            |state, tx| {
                let group = state
                    .groups
                    .get(group_id)
                    .ok_or_else(|| group_not_found(group_id))?;
                let old = state
                    .find_rule(group_id, list_id)
                    .ok_or_else(|| rule_not_found(group_id, list_id))?;
                let kind = change.action.as_deref().unwrap_or(old.action.as_str());
                let response = match (&change.block_response, kind) {
                    (Some(r), _) => Some(r.as_str()),
                    (None, "BLOCK") => old.action.block_response().map(BlockResponse::as_str),
                    (None, _) => None,
                };
                let action = Action::parse(kind, response)?;
                let priority = change.priority.unwrap_or(old.priority);
                if let Some(r) = state.rules.get(group_id).into_iter().flatten().find(|r| {
                    r.priority == priority && r.domain_list_id != list_id
                }) {
                    return Err(invalid(format!(
                        "The priority {priority} is already used by the rule `{}` of the rule group `{group_id}`; a rule group's priorities are unique",
                        r.name
                    )));
                }
                let mut rule = old.clone();
                rule.priority = priority;
                rule.action = action;
                if let Some(name) = &change.name {
                    rule.name = name.clone();
                }
                if let Some(r) = change.redirection {
                    rule.redirection = r;
                }
                rule.modified_ms = now;
                let mut group = group.clone();
                group.modified_ms = now;
                if let Some(tx) = tx {
                    store::put_rule(tx, &rule)?;
                }
                if let Some(tx) = tx {
                    store::put_group(tx, &group)?;
                }
                Ok((rule, group))
            },
            |state, (rule, group)| {
                put_rule(state, rule.clone());
                state.groups.insert(group.id.clone(), group);
                rule
            },
        )
    }

    /// `DeleteFirewallRule`: removes the rule of the group `group_id` for the domain list
    /// `list_id`. Returns the rule as it was.
    pub fn delete_rule(&self, group_id: &str, list_id: &str) -> Result<Rule, DnsFirewallError> {
        let now = warden_types::now_millis();
        self.change(
            "deleting a rule",
            |state, tx| {
                let group = state
                    .groups
                    .get(group_id)
                    .ok_or_else(|| group_not_found(group_id))?;
                let rule = state
                    .find_rule(group_id, list_id)
                    .ok_or_else(|| rule_not_found(group_id, list_id))?
                    .clone();
                let mut group = group.clone();
                group.modified_ms = now;
                if let Some(tx) = tx {
                    store::delete_rule(tx, group_id, list_id)?;
                }
                if let Some(tx) = tx {
                    store::put_group(tx, &group)?;
                }
                Ok((rule, group))
            },
            |state, (rule, group)| {
                if let Some(rules) = state.rules.get_mut(group_id) {
                    rules.retain(|r| r.domain_list_id != list_id);
                }
                state.groups.insert(group.id.clone(), group);
                rule
            },
        )
    }

    // ---- associations ----

    /// `AssociateFirewallRuleGroup`: filters the VPC's queries with the group, at a
    /// priority no other association of the VPC has. Whether the VPC exists is the
    /// caller's to check; its id must be well formed.
    pub fn associate(&self, new: NewAssociation) -> Result<Association, DnsFirewallError> {
        check_creator_request_id(&new.creator_request_id)?;
        check_name(&new.name)?;
        check_vpc_id(&new.vpc_id)?;
        check_association_priority(new.priority)?;
        check_tags(&new.tags)?;
        let now = warden_types::now_millis();
        let id = self.change(
            "associating a rule group",
            |state, tx| {
                if let Some(a) = state
                    .associations
                    .values()
                    .find(|a| a.creator_request_id == new.creator_request_id)
                {
                    let same = a.group_id == new.group_id
                        && a.vpc_id == new.vpc_id
                        && a.priority == new.priority
                        && a.name == new.name
                        && a.mutation_protection == new.mutation_protection
                        && a.tags == new.tags;
                    if same {
                        return Ok(Err(a.id.clone()));
                    }
                    return Err(reused_request_id(&new.creator_request_id));
                }
                if !state.groups.contains_key(&new.group_id) {
                    return Err(group_not_found(&new.group_id));
                }
                let of_vpc: Vec<&Association> = state
                    .associations
                    .values()
                    .filter(|a| a.vpc_id == new.vpc_id)
                    .collect();
                if let Some(a) = of_vpc.iter().find(|a| a.group_id == new.group_id) {
                    return Err(DnsFirewallError::Conflict(format!(
                        "The rule group `{}` is already associated with the VPC `{}` (association `{}`)",
                        new.group_id, new.vpc_id, a.id
                    )));
                }
                if let Some(a) = of_vpc.iter().find(|a| a.priority == new.priority) {
                    return Err(DnsFirewallError::Conflict(format!(
                        "The priority {} is already used by the association `{}` of the VPC `{}`; a VPC's association priorities are unique",
                        new.priority, a.id, new.vpc_id
                    )));
                }
                if of_vpc.len() >= MAX_ASSOCIATIONS_PER_VPC {
                    return Err(limit(
                        "FirewallRuleGroupAssociation",
                        format!(
                            "A VPC is associated with at most {MAX_ASSOCIATIONS_PER_VPC} rule groups"
                        ),
                    ));
                }
                if state.associations.len() >= MAX_ASSOCIATIONS {
                    return Err(limit(
                        "FirewallRuleGroupAssociation",
                        format!(
                            "Warden's DNS Firewall holds at most {MAX_ASSOCIATIONS} rule group associations"
                        ),
                    ));
                }
                let a = Association {
                    id: fresh_id("rslvr-frgassoc", |id| state.associations.contains_key(id)),
                    arn: String::new(),
                    group_id: new.group_id.clone(),
                    vpc_id: new.vpc_id.clone(),
                    name: new.name.clone(),
                    priority: new.priority,
                    mutation_protection: new.mutation_protection,
                    creator_request_id: new.creator_request_id.clone(),
                    created_ms: now,
                    modified_ms: now,
                    tags: new.tags.clone(),
                    seq: state.next_seq + 1,
                };
                if let Some(tx) = tx {
                    store::put_association(tx, &a)?;
                }
                Ok(Ok(a))
            },
            |state, planned| match planned {
                Err(existing) => existing,
                Ok(a) => {
                    state.take_seq();
                    let id = a.id.clone();
                    state.associations.insert(id.clone(), a);
                    id
                }
            },
        )?;
        self.association(&id)
    }

    /// `UpdateFirewallRuleGroupAssociation`: changes an association's priority, name or
    /// mutation protection. While the protection is on, only turning it off (with or
    /// without other changes) is accepted.
    pub fn update_association(
        &self,
        id: &str,
        change: AssociationChange,
    ) -> Result<Association, DnsFirewallError> {
        if let Some(name) = &change.name {
            check_name(name)?;
        }
        if let Some(p) = change.priority {
            check_association_priority(p)?;
        }
        let now = warden_types::now_millis();
        let id = self.change(
            "updating an association",
            |state, tx| {
                let old = state
                    .associations
                    .get(id)
                    .ok_or_else(|| association_not_found(id))?;
                let priority = change.priority.unwrap_or(old.priority);
                let name = change.name.clone().unwrap_or_else(|| old.name.clone());
                let protection = change.mutation_protection.unwrap_or(old.mutation_protection);
                let alters = priority != old.priority || name != old.name;
                if old.mutation_protection && protection && alters {
                    return Err(mutation_protected(id));
                }
                if let Some(other) = state.associations.values().find(|a| {
                    a.vpc_id == old.vpc_id && a.id != old.id && a.priority == priority
                }) {
                    return Err(DnsFirewallError::Conflict(format!(
                        "The priority {priority} is already used by the association `{}` of the VPC `{}`; a VPC's association priorities are unique",
                        other.id, old.vpc_id
                    )));
                }
                let mut a = old.clone();
                a.priority = priority;
                a.name = name;
                a.mutation_protection = protection;
                a.modified_ms = now;
                if let Some(tx) = tx {
                    store::put_association(tx, &a)?;
                }
                Ok(a)
            },
            |state, a| {
                let id = a.id.clone();
                state.associations.insert(id.clone(), a);
                id
            },
        )?;
        self.association(&id)
    }

    /// `DisassociateFirewallRuleGroup`: stops filtering the VPC's queries with the group;
    /// refused while the association's mutation protection is on. Returns the association
    /// as it was.
    pub fn disassociate(&self, id: &str) -> Result<Association, DnsFirewallError> {
        let before = self.association(id)?;
        self.change(
            "disassociating a rule group",
            |state, tx| {
                let a = state
                    .associations
                    .get(id)
                    .ok_or_else(|| association_not_found(id))?;
                if a.mutation_protection {
                    return Err(mutation_protected(id));
                }
                match tx {
                    Some(tx) => store::delete_association(tx, id),
                    None => Ok(()),
                }
            },
            |state, ()| {
                state.associations.remove(id);
            },
        )?;
        Ok(before)
    }
    // ---- tags ----

    /// The resource an ARN of this account and region names: its kind and id.
    fn resolve_arn<'a>(&self, arn: &'a str) -> Result<(Tagged, &'a str), DnsFirewallError> {
        let prefix = format!(
            "arn:aws:route53resolver:{}:{}:",
            self.inner.region, self.inner.account
        );
        let not_found = || DnsFirewallError::NotFound {
            resource_type: "Resource",
            message: format!("Can't find the resource `{}`", shown(arn)),
        };
        let (kind, id) = arn
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(not_found)?;
        let kind = match kind {
            "firewall-domain-list" => Tagged::List,
            "firewall-rule-group" => Tagged::Group,
            "firewall-rule-group-association" => Tagged::Association,
            _ => return Err(not_found()),
        };
        Ok((kind, id))
    }

    /// The tags of the domain list, rule group or association `arn` names
    /// (`ListTagsForResource`).
    pub fn tags(&self, arn: &str) -> Result<Vec<(String, String)>, DnsFirewallError> {
        let (kind, id) = self.resolve_arn(arn)?;
        let state = self.state();
        tags_in(&state, kind, id).cloned()
    }

    /// `TagResource`: adds tags to the resource `arn` names, replacing the values of keys
    /// it has.
    pub fn tag_resource(
        &self,
        arn: &str,
        tags: &[(String, String)],
    ) -> Result<(), DnsFirewallError> {
        check_tags(tags)?;
        self.retag(arn, |current| {
            for (k, v) in tags {
                match current.iter_mut().find(|(key, _)| key == k) {
                    Some(slot) => slot.1.clone_from(v),
                    None => current.push((k.clone(), v.clone())),
                }
            }
        })
    }

    /// `UntagResource`: removes the tags of these keys from the resource `arn` names.
    pub fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), DnsFirewallError> {
        self.retag(arn, |current| current.retain(|(k, _)| !keys.contains(k)))
    }

    fn retag(
        &self,
        arn: &str,
        edit: impl FnOnce(&mut Vec<(String, String)>),
    ) -> Result<(), DnsFirewallError> {
        let (kind, id) = self.resolve_arn(arn)?;
        self.change(
            "tagging a resource",
            |state, tx| {
                let mut tags = tags_in(state, kind, id)?.clone();
                edit(&mut tags);
                check_tags(&tags)?;
                Ok(match kind {
                    Tagged::List => {
                        let mut list = state
                            .lists
                            .get(id)
                            .ok_or_else(|| list_not_found(id))?
                            .list
                            .clone();
                        list.tags = tags;
                        if let Some(tx) = tx {
                            store::put_list(tx, &list)?;
                        }
                        Retagged::List(list)
                    }
                    Tagged::Group => {
                        let mut group = state
                            .groups
                            .get(id)
                            .ok_or_else(|| group_not_found(id))?
                            .clone();
                        group.tags = tags;
                        if let Some(tx) = tx {
                            store::put_group(tx, &group)?;
                        }
                        Retagged::Group(group)
                    }
                    Tagged::Association => {
                        let mut a = state
                            .associations
                            .get(id)
                            .ok_or_else(|| association_not_found(id))?
                            .clone();
                        a.tags = tags;
                        if let Some(tx) = tx {
                            store::put_association(tx, &a)?;
                        }
                        Retagged::Association(a)
                    }
                })
            },
            |state, retagged| match retagged {
                Retagged::List(list) => {
                    if let Some(e) = state.lists.get_mut(&list.id) {
                        e.list = list;
                    }
                }
                Retagged::Group(group) => {
                    state.groups.insert(group.id.clone(), group);
                }
                Retagged::Association(a) => {
                    state.associations.insert(a.id.clone(), a);
                }
            },
        )
    }
}

/// The kinds of resource that carry tags.
#[derive(Clone, Copy)]
enum Tagged {
    List,
    Group,
    Association,
}

/// A resource whose tags changed, to put back in the model.
enum Retagged {
    List(DomainList),
    Group(RuleGroup),
    Association(Association),
}

fn tags_in<'a>(
    state: &'a State,
    kind: Tagged,
    id: &str,
) -> Result<&'a Vec<(String, String)>, DnsFirewallError> {
    match kind {
        Tagged::List => state
            .lists
            .get(id)
            .map(|e| &e.list.tags)
            .ok_or_else(|| list_not_found(id)),
        Tagged::Group => state
            .groups
            .get(id)
            .map(|g| &g.tags)
            .ok_or_else(|| group_not_found(id)),
        Tagged::Association => state
            .associations
            .get(id)
            .map(|a| &a.tags)
            .ok_or_else(|| association_not_found(id)),
    }
}

fn mutation_protected(id: &str) -> DnsFirewallError {
    invalid(format!(
        "The DNS Firewall rule group association `{id}` is under mutation protection; turn MutationProtection off first"
    ))
}

/// Inserts or replaces a rule in its group's list, kept in priority order.
fn put_rule(state: &mut State, rule: Rule) {
    let rules = state.rules.entry(rule.group_id.clone()).or_default();
    rules.retain(|r| r.domain_list_id != rule.domain_list_id);
    let at = rules.partition_point(|r| r.priority < rule.priority);
    rules.insert(at, rule);
}

/// A new id with `prefix` that `taken` does not know.
fn fresh_id(prefix: &str, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = new_id(prefix);
        if !taken(&id) {
            return id;
        }
    }
}
