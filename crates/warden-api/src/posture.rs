//! Posture checks: controls evaluated against the live account, their findings kept in
//! `warden_findings::FindingStore`, served as Security Hub's `GetFindings` and
//! `BatchUpdateFindings` (rest-json, signing name `securityhub`).
//!
//! **When.** After every call that changed something ([`Posture::changed`] wakes the loop,
//! which the evaluation loop picks up within a second) and every
//! [`PostureSettings::every`] whatever happens, so that time-based controls (key age,
//! inactivity) fire on their own.
//!
//! **What.** [`CONTROLS`] lists every control: its id (Security Hub's where one exists,
//! `Warden.*` otherwise), severity, what it checks and how to fix it. Each evaluation
//! reads the account once ([`gather`]) and every control decides over what was read; the
//! findings store then opens, refreshes and resolves findings.
//!
//! **Who may call.** `securityhub:GetFindings` and `securityhub:BatchUpdateFindings` on
//! `*`, as on AWS; `BatchUpdateFindings` changes only a finding's workflow and note, and
//! suppressing needs a note saying why.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use warden_controls::{evaluate, statements, strings, Facts, FunctionFacts, CONTROLS};

use http::request::Parts;
use serde_json::{json, Value};
use warden_findings::{Comparison, Field, Filter, FindingStore, Observed, Workflow};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{BoxFuture, Head, ServiceDoor};
use crate::pipeline::Validated;
use crate::routes::{Operation, Service};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// How posture is evaluated.
#[derive(Debug, Clone, Copy)]
pub struct PostureSettings {
    /// How often the account is evaluated when nothing changes.
    pub every: Duration,
    /// Days after which an access key is old, and a role or an administrator unused.
    pub inactive_days: u32,
    /// Whether functions without a `VpcConfig` may reach public addresses
    /// (`--default-egress internet`).
    pub default_egress_open: bool,
}

impl Default for PostureSettings {
    fn default() -> Self {
        PostureSettings {
            every: Duration::from_secs(600),
            inactive_days: 90,
            default_egress_open: false,
        }
    }
}

/// The findings and the evaluation's trigger.
pub struct Posture {
    store: Arc<FindingStore>,
    settings: PostureSettings,
    wake: tokio::sync::Notify,
    /// Known vulnerabilities per package (code and layers' digests), and the advisory
    /// database they were matched against (an import makes a new one).
    vulnerable: std::sync::Mutex<VulnerableCache>,
    /// The last evaluation: its duration (µs) and how many controls failed where.
    last_micros: std::sync::atomic::AtomicU64,
    last_failing: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Posture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Posture")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Posture {
    /// Posture over `store`.
    pub fn new(store: Arc<FindingStore>, settings: PostureSettings) -> Self {
        Posture {
            store,
            settings,
            wake: tokio::sync::Notify::new(),
            vulnerable: std::sync::Mutex::new((None, std::collections::HashMap::new())),
            last_micros: std::sync::atomic::AtomicU64::new(0),
            last_failing: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Something changed: evaluate soon.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// The findings.
    pub fn store(&self) -> &Arc<FindingStore> {
        &self.store
    }

    /// How long the last evaluation took, and how many failures it saw.
    pub fn last_evaluation(&self) -> (Duration, u64) {
        (
            Duration::from_micros(self.last_micros.load(Ordering::Relaxed)),
            self.last_failing.load(Ordering::Relaxed),
        )
    }
}

/// The advisory database vulnerability counts were matched against, and the counts by
/// package digests.
type VulnerableCache = (
    Option<Arc<warden_scan::AdvisoryDb>>,
    std::collections::HashMap<String, usize>,
);

/// Reads what the controls need from the account.
async fn gather(
    state: &ApiState,
    inactive_days: u32,
    default_egress_open: bool,
    now_ms: i64,
) -> Result<Facts, ApiError> {
    let posture = state.audit.posture();
    let mut facts = Facts {
        usage_known: true,
        alarms_known: true,
        ..Facts::default()
    };
    let phase = std::time::Instant::now();
    // Functions, a page at a time.
    let mut after = None;
    loop {
        let page = state
            .control
            .list_functions(after.clone(), 50, false)
            .await?;
        for f in &page.items {
            let name = f.name.as_str().to_owned();
            let policy = state
                .control
                .policy_document(&f.name)
                .await?
                .and_then(|p| serde_json::from_str(&p).ok());
            let url_auth_none = state
                .urls
                .get(&name, None)
                .is_some_and(|u| u.auth_type == warden_urls::model::AuthType::None);
            let has_contract = !matches!(
                state.contracts.applicable(&name, None),
                warden_contract::store::Applicable::None
            );
            let open_egress = match &f.vpc_config {
                None => default_egress_open,
                Some(vpc) => vpc.security_group_ids.iter().any(|id| {
                    state.network.security_group(id).is_some_and(|g| {
                        g.egress.iter().any(|r| {
                            r.protocol == warden_network::IpProtocol::All
                                && matches!(r.peer.to_string().as_str(), "0.0.0.0/0" | "::/0")
                        })
                    })
                }),
            };
            let vulnerable = match (state.control.advisories(), posture) {
                (Some(advisories), Some(posture)) => {
                    // A package's findings change only with its code or the database:
                    // matched once per (code, database), not at every evaluation.
                    let db = advisories.current();
                    let key = format!(
                        "{}/{}",
                        f.code_sha256,
                        f.opt_sha256.as_deref().unwrap_or("")
                    );
                    let known = {
                        let mut cache = posture
                            .vulnerable
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if !cache.0.as_ref().is_some_and(|held| Arc::ptr_eq(held, &db)) {
                            *cache = (Some(Arc::clone(&db)), std::collections::HashMap::new());
                        }
                        cache.1.get(&key).copied()
                    };
                    match known {
                        Some(n) => n,
                        None => {
                            let r = warden_types::FunctionRef {
                                name: f.name.clone(),
                                qualifier: None,
                            };
                            let n = state
                                .control
                                .scan_function(&r)
                                .await
                                .map(|scans| scans.iter().map(|s| s.report.findings.len()).sum())
                                .unwrap_or(0);
                            let mut cache = posture
                                .vulnerable
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            let same = cache.0.as_ref().is_some_and(|held| Arc::ptr_eq(held, &db));
                            if same && cache.1.len() < 100_000 {
                                cache.1.insert(key, n);
                            }
                            n
                        }
                    }
                }
                _ => 0,
            };
            facts.functions.push(FunctionFacts {
                arn: state.function_arn(&f.name, None),
                name,
                runtime: f.runtime.clone(),
                role: f.role.clone(),
                environment: f.environment.clone(),
                kms_key: f.kms_key_arn.clone(),
                policy,
                url_auth_none,
                url_resource: None,
                has_contract,
                open_egress,
                vulnerable,
                code_signing: state
                    .control
                    .code_signing()
                    .ok()
                    .map(|cs| cs.signer.config_of(f.name.as_str()).is_some()),
                concurrency_limited: Some(state.control.get_concurrency(&f.name).await?.is_some()),
                dead_letter: None,
                in_vpc: None,
            });
        }
        match page.next_marker {
            Some(m) => after = warden_types::FunctionName::new(&m).ok(),
            None => break,
        }
        if after.is_none() {
            break;
        }
    }
    tracing::debug!(
        functions = facts.functions.len(),
        ms = phase.elapsed().as_millis() as u64,
        "posture: functions read"
    );
    let phase = std::time::Instant::now();
    // Layer versions' policies.
    let mut marker = None;
    loop {
        let (layers, next) = state
            .control
            .list_layers(None, None, marker.clone(), 50)
            .await?;
        for l in &layers {
            for v in 1..=l.version {
                if let Ok(Some(doc)) = state.control.layer_policy_document(&l.name, v).await {
                    if let Ok(policy) = serde_json::from_str(&doc) {
                        let arn = state.control.layer_version_arn(&l.name, v);
                        facts.layer_policies.push((arn, policy));
                    }
                }
            }
        }
        match next {
            Some(n) => marker = Some(n),
            None => break,
        }
    }
    tracing::debug!(
        ms = phase.elapsed().as_millis() as u64,
        "posture: layers read"
    );
    let phase = std::time::Instant::now();
    // Roles and users with their policies.
    let identity = &state.access.identity;
    for role in identity.roles() {
        let holder = warden_identity::Holder::Role(role.name.clone());
        let mut docs: Vec<Value> = identity
            .inline_policies(&holder)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| serde_json::from_str(&p.document).ok())
            .collect();
        docs.extend(
            identity
                .attached_policies(&holder)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| serde_json::from_str(&p.document).ok()),
        );
        facts
            .roles
            .insert(role.name.clone(), (role.arn.clone(), role.created_ms, docs));
    }
    for user in identity.users() {
        let holder = warden_identity::Holder::User(user.name.clone());
        let mut docs: Vec<Value> = identity
            .inline_policies(&holder)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| serde_json::from_str(&p.document).ok())
            .collect();
        docs.extend(
            identity
                .attached_policies(&holder)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| serde_json::from_str(&p.document).ok()),
        );
        let admin = docs.iter().any(|d| {
            statements(d).iter().any(|s| {
                s.get("Effect").and_then(Value::as_str) == Some("Allow")
                    && strings(s.get("Action")).iter().any(|a| a == "*")
                    && strings(s.get("Resource")).iter().any(|r| r == "*")
            })
        });
        let keys = identity.access_keys(&user.name).unwrap_or_default();
        let active: Vec<(String, i64)> = keys
            .iter()
            .filter(|k| k.status == warden_identity::KeyStatus::Active)
            .map(|k| (k.id.clone(), k.created_ms))
            .collect();
        let last_used = keys
            .iter()
            .filter_map(|k| {
                identity
                    .key_last_used(&k.id)
                    .and_then(|(_, u)| u)
                    .map(|u| u.at_ms)
            })
            .chain(keys.iter().filter_map(|k| k.last_used_ms))
            .max();
        facts.users.push((
            user.name.clone(),
            user.arn.clone(),
            admin,
            active,
            last_used,
        ));
    }
    tracing::debug!(
        ms = phase.elapsed().as_millis() as u64,
        "posture: identities read"
    );
    let phase = std::time::Instant::now();
    // Which roles called what, from the audit trail, over the period.
    let store = state.audit.store().clone();
    let since = now_ms - i64::from(inactive_days) * 86_400_000;
    facts.role_usage = tokio::task::spawn_blocking(move || {
        let reader = store.reader()?;
        let mut usage: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        reader.for_each_event(Some(since), None, |_, e| {
            let role = e
                .user_identity
                .session_context
                .as_ref()
                .and_then(|c| c.session_issuer.as_ref())
                .filter(|i| i.kind == "Role")
                .map(|i| i.user_name.to_ascii_lowercase());
            if let Some(role) = role {
                let used = usage.entry(role).or_default();
                if let Some(actions) = e
                    .additional_event_data
                    .as_ref()
                    .and_then(|d| d.get("authorizedActions"))
                    .and_then(Value::as_array)
                {
                    for a in actions {
                        if let Some(action) = a.get("action").and_then(Value::as_str) {
                            used.insert(action.to_owned());
                        }
                    }
                }
            }
            true
        })?;
        Ok::<_, warden_audit::Error>(usage)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    tracing::debug!(
        ms = phase.elapsed().as_millis() as u64,
        "posture: audit trail read"
    );
    // Customer managed keys and whether they rotate.
    let mut marker: Option<String> = None;
    loop {
        let (keys, next) = state
            .kms
            .list_keys(100, marker.as_deref())
            .map_err(ApiError::internal)?;
        for k in keys {
            if !k.is_aws_managed() && k.record.deletion_ms.is_none() {
                facts
                    .keys
                    .push((k.arn.clone(), k.record.rotation.is_some()));
            }
        }
        match next {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    // Alarms on Errors.
    let store = Arc::clone(&state.metric_store);
    let alarms = tokio::task::spawn_blocking(move || store.alarms())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    for a in alarms {
        if a.namespace == "AWS/Lambda" && a.metric == "Errors" {
            for pair in a.dims.split(',') {
                if let Some(f) = pair.strip_prefix("FunctionName=") {
                    facts.errors_alarmed.insert(f.to_owned());
                }
            }
        }
    }
    Ok(facts)
}

/// Evaluates every control now and reconciles the findings; returns how many failed.
pub async fn evaluate_now(state: &ApiState) -> Result<usize, ApiError> {
    let Some(posture) = state.audit.posture() else {
        return Ok(0);
    };
    let now = warden_types::now_millis();
    let started = std::time::Instant::now();
    let facts = gather(
        state,
        posture.settings.inactive_days,
        posture.settings.default_egress_open,
        now,
    )
    .await?;
    let observed: Vec<Observed> = evaluate(
        &facts,
        state.account.as_str(),
        now,
        posture.settings.inactive_days,
    )
    .into_iter()
    .map(|f| Observed {
        control_id: f.control_id,
        resource_type: f.resource_type,
        resource_id: f.resource_id,
        severity: f.severity,
        title: f.title,
        description: f.description,
        remediation: f.remediation,
    })
    .collect();
    let count = observed.len();
    let evaluated = started.elapsed();
    let store = Arc::clone(&posture.store);
    let ids: Vec<&'static str> = CONTROLS.iter().map(|c| c.id).collect();
    let reconciled = tokio::task::spawn_blocking(move || store.reconcile(&ids, &observed, now))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    posture.last_micros.store(
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    posture.last_failing.store(count as u64, Ordering::Relaxed);
    tracing::debug!(
        gather_and_evaluate_ms = evaluated.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        failing = count,
        "posture evaluation"
    );
    if !reconciled.opened.is_empty() || !reconciled.resolved.is_empty() {
        tracing::info!(
            opened = reconciled.opened.len(),
            resolved = reconciled.resolved.len(),
            failing = count,
            "posture evaluated"
        );
    }
    Ok(count)
}

/// Evaluates after each change (within about a second) and every
/// [`PostureSettings::every`]. Runs until the task is dropped.
pub async fn run(state: Arc<ApiState>) {
    let Some(posture) = state.audit.posture().cloned() else {
        return;
    };
    loop {
        let _ = tokio::time::timeout(posture.settings.every, posture.wake.notified()).await;
        // Changes come in bursts (a deploy is several calls): let them settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(e) = evaluate_now(&state).await {
            tracing::warn!(error = %e.message, "posture evaluation failed");
        }
    }
}

// ---- Security Hub ----

/// Security Hub's door (`securityhub`, rest-json).
pub struct SecurityHubDoor;

const GET_FINDINGS: &str = "SecurityHub.GetFindings";
const BATCH_UPDATE: &str = "SecurityHub.BatchUpdateFindings";

fn product_arn(state: &ApiState) -> String {
    format!(
        "arn:aws:securityhub:{}::product/warden/posture",
        state.region
    )
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        "InvalidInputException",
        message,
    )
}

impl ServiceDoor for SecurityHubDoor {
    fn signing_names(&self) -> &'static [&'static str] {
        &["securityhub"]
    }

    fn claims(&self, head: Head<'_>) -> bool {
        head.claimed == Some("securityhub")
    }

    fn route(&self, parts: &Parts) -> Result<Operation, ApiError> {
        match (parts.method.as_str(), parts.uri.path()) {
            ("POST", "/findings") => Ok(Operation::JsonTarget(GET_FINDINGS.into())),
            ("PATCH", "/findings/batchupdate") => Ok(Operation::JsonTarget(BATCH_UPDATE.into())),
            (m, p) => {
                let shown: String = p.chars().take(128).collect();
                Err(ApiError::new(
                    http::StatusCode::NOT_FOUND,
                    "InvalidInputException",
                    format!("Warden's Security Hub serves GetFindings and BatchUpdateFindings, not {m} {shown}"),
                ))
            }
        }
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::RestJson {
            name: "securityhub",
        }
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::RestJson {
            name: "securityhub",
        }
    }

    fn body_limit(&self, _operation: &Operation) -> usize {
        256 * 1024
    }

    fn targets(
        &self,
        _state: &ApiState,
        request: &ApiRequest,
        _principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        Ok(vec![Target {
            action: format!("securityhub:{}", request.operation.name()),
            resource: "*".into(),
            ..Target::default()
        }])
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(async move {
            let request = request.request();
            let body: Value = if request.body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&request.body)
                    .map_err(|e| invalid(format!("the body is not JSON: {e}")))?
            };
            let posture = state
                .audit
                .posture()
                .ok_or_else(|| invalid("this server evaluates no posture"))?;
            match &request.operation {
                Operation::JsonTarget(t) if t == GET_FINDINGS => {
                    get_findings(state, posture, &body).await
                }
                _ => batch_update(state, posture, &body).await,
            }
        })
    }
}

fn filters(body: &Value) -> Result<Vec<Filter>, ApiError> {
    let Some(obj) = body.get("Filters") else {
        return Ok(Vec::new());
    };
    let obj = obj
        .as_object()
        .ok_or_else(|| invalid("Filters must be an object"))?;
    let mut out = Vec::new();
    for (name, list) in obj {
        let field = match name.as_str() {
            "Id" => Field::Id,
            "GeneratorId" | "ComplianceSecurityControlId" => Field::Control,
            "SeverityLabel" => Field::Severity,
            "WorkflowStatus" => Field::Workflow,
            "RecordState" => Field::RecordState,
            "ComplianceStatus" => Field::Compliance,
            "ResourceType" => Field::ResourceType,
            "ResourceId" => Field::ResourceId,
            "Title" => Field::Title,
            other => {
                let shown: String = other.chars().take(64).collect();
                return Err(invalid(format!("Warden does not filter findings on `{shown}`; it filters on Id, GeneratorId, ComplianceSecurityControlId, SeverityLabel, WorkflowStatus, RecordState, ComplianceStatus, ResourceType, ResourceId and Title")));
            }
        };
        let items = list
            .as_array()
            .ok_or_else(|| invalid(format!("Filters.{name} must be a list")))?;
        if items.len() > 20 {
            return Err(invalid(format!("Filters.{name} takes at most 20 values")));
        }
        let mut values = Vec::new();
        for item in items {
            let value = item
                .get("Value")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("each Filters.{name} needs a Value")))?;
            let cmp = match item.get("Comparison").and_then(Value::as_str) {
                Some("EQUALS") | None => Comparison::Equals,
                Some("PREFIX") => Comparison::Prefix,
                Some("NOT_EQUALS") => Comparison::NotEquals,
                Some(other) => {
                    let shown: String = other.chars().take(32).collect();
                    return Err(invalid(format!(
                        "Comparison `{shown}` is not served: EQUALS, PREFIX or NOT_EQUALS"
                    )));
                }
            };
            values.push((cmp, value.chars().take(2048).collect()));
        }
        out.push(Filter { field, values });
    }
    Ok(out)
}

fn iso(ms: i64) -> String {
    warden_audit::event::event_time(ms)
}

async fn get_findings(
    state: &ApiState,
    posture: &Arc<Posture>,
    body: &Value,
) -> Result<Reply, ApiError> {
    if let Some(obj) = body.as_object() {
        if let Some(k) = obj
            .keys()
            .find(|k| !["Filters", "MaxResults", "NextToken", "SortCriteria"].contains(&k.as_str()))
        {
            let shown: String = k.chars().take(64).collect();
            return Err(invalid(format!(
                "`{shown}` is not a member of GetFindings' input"
            )));
        }
    }
    if body.get("SortCriteria").is_some() {
        return Err(invalid(
            "SortCriteria is not served: findings come newest change first",
        ));
    }
    let filters = filters(body)?;
    let max = match body.get("MaxResults") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("MaxResults must be an integer"))?,
        ),
    };
    let token = body
        .get("NextToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let store = Arc::clone(&posture.store);
    let (found, next) =
        tokio::task::spawn_blocking(move || store.query(&filters, max, token.as_deref()))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| match e {
                warden_findings::Error::InvalidNextToken
                | warden_findings::Error::InvalidMaxResults(_) => invalid(e.to_string()),
                other => ApiError::internal(other),
            })?;
    let product = product_arn(state);
    let findings: Vec<Value> = found
        .iter()
        .map(|f| {
            let mut v = json!({
                "SchemaVersion": "2018-10-08",
                "Id": f.id,
                "ProductArn": product,
                "ProductName": "Warden",
                "CompanyName": "Warden",
                "GeneratorId": f.observed.control_id,
                "AwsAccountId": state.account.as_str(),
                "Region": state.region.as_str(),
                "Types": ["Software and Configuration Checks"],
                "CreatedAt": iso(f.first_seen_ms),
                "UpdatedAt": iso(f.updated_ms),
                "FirstObservedAt": iso(f.first_seen_ms),
                "LastObservedAt": iso(f.last_seen_ms),
                "Severity": { "Label": f.observed.severity },
                "Title": f.observed.title,
                "Description": f.observed.description,
                "Remediation": { "Recommendation": { "Text": f.observed.remediation } },
                "Resources": [{ "Type": f.observed.resource_type, "Id": f.observed.resource_id, "Region": state.region.as_str() }],
                "Compliance": { "Status": f.compliance, "SecurityControlId": f.observed.control_id },
                "Workflow": { "Status": f.workflow.as_str() },
                "WorkflowState": f.workflow.as_str(),
                "RecordState": f.record_state,
            });
            if let Some((text, by, at)) = &f.note {
                v["Note"] = json!({ "Text": text, "UpdatedBy": by, "UpdatedAt": iso(*at) });
            }
            v
        })
        .collect();
    let mut out = json!({ "Findings": findings });
    if let Some(t) = next {
        out["NextToken"] = json!(t);
    }
    Ok(crate::json_response(http::StatusCode::OK, &out))
}

async fn batch_update(
    state: &ApiState,
    posture: &Arc<Posture>,
    body: &Value,
) -> Result<Reply, ApiError> {
    if let Some(obj) = body.as_object() {
        if let Some(k) = obj
            .keys()
            .find(|k| !["FindingIdentifiers", "Workflow", "Note"].contains(&k.as_str()))
        {
            let shown: String = k.chars().take(64).collect();
            return Err(invalid(format!(
                "Warden's BatchUpdateFindings changes Workflow and Note only, not `{shown}`"
            )));
        }
    }
    let ids = body
        .get("FindingIdentifiers")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("FindingIdentifiers is required"))?;
    if ids.is_empty() || ids.len() > 100 {
        return Err(invalid("FindingIdentifiers takes 1 to 100 findings"));
    }
    let product = product_arn(state);
    let mut wanted = Vec::new();
    let mut unprocessed = Vec::new();
    for i in ids {
        let id = i
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let p = i
            .get("ProductArn")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if p != product {
            unprocessed.push(json!({ "FindingIdentifier": i, "ErrorCode": "FindingNotFound", "ErrorMessage": format!("the product of Warden's findings is {product}") }));
        } else {
            wanted.push(id);
        }
    }
    let workflow = match body.get("Workflow").and_then(|w| w.get("Status")) {
        None => None,
        Some(s) => Some(s.as_str().and_then(Workflow::parse).ok_or_else(|| {
            invalid("Workflow.Status must be NEW, NOTIFIED, SUPPRESSED or RESOLVED")
        })?),
    };
    let note = match body.get("Note") {
        None => None,
        Some(n) => {
            let text = n
                .get("Text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty() && t.len() <= 512);
            let by = n
                .get("UpdatedBy")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty() && t.len() <= 512);
            match (text, by) {
                (Some(t), Some(b)) => Some((t.to_owned(), b.to_owned())),
                _ => {
                    return Err(invalid(
                        "Note needs Text and UpdatedBy, each 1 to 512 characters",
                    ))
                }
            }
        }
    };
    if workflow.is_none() && note.is_none() {
        return Err(invalid("give a Workflow, a Note, or both"));
    }
    let store = Arc::clone(&posture.store);
    let asked = wanted.clone();
    let missing = tokio::task::spawn_blocking(move || {
        store.set_workflow(
            &asked,
            workflow,
            note.as_ref().map(|(t, b)| (t.as_str(), b.as_str())),
            warden_types::now_millis(),
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        warden_findings::Error::SuppressWithoutNote => invalid(e.to_string()),
        other => ApiError::internal(other),
    })?;
    let mut processed = Vec::new();
    for id in wanted {
        if missing.contains(&id) {
            unprocessed.push(json!({ "FindingIdentifier": { "Id": id, "ProductArn": product }, "ErrorCode": "FindingNotFound", "ErrorMessage": "no such finding" }));
        } else {
            processed.push(json!({ "Id": id, "ProductArn": product }));
        }
    }
    Ok(crate::json_response(
        http::StatusCode::OK,
        &json!({ "ProcessedFindings": processed, "UnprocessedFindings": unprocessed }),
    ))
}
