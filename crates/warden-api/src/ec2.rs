//! EC2's network API subset (VPCs, subnets, security groups and their rules, tags) in
//! EC2's own query dialect, over `warden_network::Network`, so that `aws ec2 ...` and
//! boto3's `ec2` client work unchanged.
//!
//! The wire: `POST /` (or `GET /?...`), form-encoded `Action=...&Version=2016-11-15&...`,
//! signed for the `ec2` service. Lists are flattened with 1-based indexes (`VpcId.1`,
//! `Filter.1.Value.2`, `IpPermissions.1.IpRanges.1.CidrIp`), members named by the model's
//! `locationName` with its first letter capitalised (`GroupDescription`,
//! `TagSpecification`, `IpPermissions.1.Groups.1.GroupId`). Answers are
//! `<{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` with a
//! `requestId`, members in lowerCamel as the model's `locationName`s, lists as `<item>`s;
//! errors are EC2's `<Response><Errors><Error>` document (rendered in `error`).
//!
//! Who may call what: each operation is authorized as IAM action `ec2:{Action}` on the
//! ARN of what it touches (`arn:aws:ec2:REGION:ACCOUNT:vpc/ID`, `subnet/ID`,
//! `security-group/ID`; `.../vpc/*` style for what a `Create*` makes, which also needs the
//! action on the VPC it goes in; `*` for `Describe*`); tags given on create also need
//! `ec2:CreateTags` on the new resource, as in EC2. A denial is EC2's
//! `UnauthorizedOperation` (403). `DryRun=true` answers `DryRunOperation` (412) once the
//! caller is authorized and the input checked, changing nothing.
//!
//! Every parameter is read by name or refused: a name the model does not have is
//! `UnknownParameter`, one it has that Warden does not honour (IPv6 blocks, IPAM pools,
//! prefix lists, group names where EC2 wants ids outside a default VPC, ...) is
//! `InvalidParameter` naming it, never ignored.

use std::cell::RefCell;
use std::collections::BTreeMap;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use warden_network::{
    Direction, IpProtocol, Network, NetworkError, Peer, ResourceKind, RuleSpec, SecurityGroup,
    SgRule, Subnet, TagDescription, Vpc,
};
use warden_types::identity::Principal;

use crate::access::Target;
use crate::doors::{BoxFuture, Head, ServiceDoor};
use crate::pipeline::Validated;
use crate::routes::{Operation, Service};
use crate::{ApiError, ApiRequest, ApiState, Reply};

/// The API version the EC2 wire carries (`Version`).
pub const VERSION: &str = "2016-11-15";
/// The XML namespace of EC2's answers.
pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
/// The content type of EC2's answers.
pub const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// Most ids, filters, filter values or permissions one request may list.
const MAX_LIST: usize = 1_000;
/// Most filters in one request.
const MAX_FILTERS: usize = 50;
/// Most filter values in one request, all filters together (each value is matched, with
/// its wildcards, against every item listed).
const MAX_FILTER_VALUES: usize = 200;
/// Longest filter value, in characters.
const MAX_FILTER_VALUE_CHARS: usize = 255;

// ---- the door ----

/// EC2's query dialect at `/`, for requests signed for `ec2`.
pub struct Ec2Door;

impl ServiceDoor for Ec2Door {
    fn signing_names(&self) -> &'static [&'static str] {
        &["ec2"]
    }

    /// `/`, `GET` or `POST`, signed for `ec2` (an unsigned request at `/` is IAM's door's,
    /// which refuses it as unauthenticated).
    fn claims(&self, head: Head<'_>) -> bool {
        head.claimed == Some("ec2")
            && head.parts.uri.path() == "/"
            && matches!(head.parts.method, http::Method::GET | http::Method::POST)
    }

    fn route(&self, _parts: &Parts) -> Result<Operation, ApiError> {
        Ok(Operation::Query)
    }

    fn service(&self, _head: Head<'_>) -> Service {
        Service::Ec2
    }

    fn service_of(&self, _request: &ApiRequest) -> Service {
        Service::Ec2
    }

    fn targets(
        &self,
        state: &ApiState,
        request: &ApiRequest,
        _principal: Option<&Principal>,
    ) -> Result<Vec<Target>, ApiError> {
        let params = crate::access::query_params(request);
        let action = params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        Ok(match action_of(action) {
            Some(a) => (a.targets)(&state.network, &Raw(&params)),
            // Refused at dispatch as `InvalidAction`.
            None => Vec::new(),
        })
    }

    fn dispatch<'a>(
        &'a self,
        state: &'a ApiState,
        request: Validated,
    ) -> BoxFuture<'a, Result<Reply, ApiError>> {
        Box::pin(dispatch(state, request.into_request()))
    }
}

// ---- actions ----

type Targets = fn(&Network, &Raw<'_>) -> Vec<Target>;
type Handler = fn(&Cx<'_>, &Fields<'_>) -> Result<Xml, ApiError>;

struct Action {
    name: &'static str,
    targets: Targets,
    handler: Handler,
}

const ACTIONS: &[Action] = &[
    Action {
        name: "CreateVpc",
        targets: create_vpc_targets,
        handler: create_vpc,
    },
    Action {
        name: "DeleteVpc",
        targets: |n, p| on(n, "DeleteVpc", ResourceKind::Vpc, p.first("VpcId")),
        handler: delete_vpc,
    },
    Action {
        name: "DescribeVpcs",
        targets: |_, _| anything("DescribeVpcs"),
        handler: describe_vpcs,
    },
    Action {
        name: "CreateSubnet",
        targets: create_subnet_targets,
        handler: create_subnet,
    },
    Action {
        name: "DeleteSubnet",
        targets: |n, p| on(n, "DeleteSubnet", ResourceKind::Subnet, p.first("SubnetId")),
        handler: delete_subnet,
    },
    Action {
        name: "DescribeSubnets",
        targets: |_, _| anything("DescribeSubnets"),
        handler: describe_subnets,
    },
    Action {
        name: "CreateSecurityGroup",
        targets: create_group_targets,
        handler: create_security_group,
    },
    Action {
        name: "DeleteSecurityGroup",
        targets: |n, p| {
            on(
                n,
                "DeleteSecurityGroup",
                ResourceKind::SecurityGroup,
                p.first("GroupId"),
            )
        },
        handler: delete_security_group,
    },
    Action {
        name: "DescribeSecurityGroups",
        targets: |_, _| anything("DescribeSecurityGroups"),
        handler: describe_security_groups,
    },
    Action {
        name: "DescribeSecurityGroupRules",
        targets: |_, _| anything("DescribeSecurityGroupRules"),
        handler: describe_security_group_rules,
    },
    Action {
        name: "AuthorizeSecurityGroupEgress",
        targets: |n, p| {
            on(
                n,
                "AuthorizeSecurityGroupEgress",
                ResourceKind::SecurityGroup,
                p.first("GroupId"),
            )
        },
        handler: |cx, f| change_rules(cx, f, Direction::Egress, Change::Authorize),
    },
    Action {
        name: "AuthorizeSecurityGroupIngress",
        targets: |n, p| {
            on(
                n,
                "AuthorizeSecurityGroupIngress",
                ResourceKind::SecurityGroup,
                p.first("GroupId"),
            )
        },
        handler: |cx, f| change_rules(cx, f, Direction::Ingress, Change::Authorize),
    },
    Action {
        name: "RevokeSecurityGroupEgress",
        targets: |n, p| {
            on(
                n,
                "RevokeSecurityGroupEgress",
                ResourceKind::SecurityGroup,
                p.first("GroupId"),
            )
        },
        handler: |cx, f| change_rules(cx, f, Direction::Egress, Change::Revoke),
    },
    Action {
        name: "RevokeSecurityGroupIngress",
        targets: |n, p| {
            on(
                n,
                "RevokeSecurityGroupIngress",
                ResourceKind::SecurityGroup,
                p.first("GroupId"),
            )
        },
        handler: |cx, f| change_rules(cx, f, Direction::Ingress, Change::Revoke),
    },
    Action {
        name: "CreateTags",
        targets: |n, p| tag_targets(n, "CreateTags", p),
        handler: create_tags,
    },
    Action {
        name: "DeleteTags",
        targets: |n, p| tag_targets(n, "DeleteTags", p),
        handler: delete_tags,
    },
    Action {
        name: "DescribeTags",
        targets: |_, _| anything("DescribeTags"),
        handler: describe_tags,
    },
    Action {
        name: "CreateFlowLogs",
        targets: |n, p| {
            let mut targets = vec![Target {
                action: "ec2:CreateFlowLogs".into(),
                resource: n.arn("vpc-flow-log", "*"),
                ..Target::default()
            }];
            // The resources it records, as EC2 authorizes them too.
            for (k, v) in p.0 {
                if k.starts_with("ResourceId.") {
                    let kind = if v.starts_with("subnet-") {
                        "subnet"
                    } else {
                        "vpc"
                    };
                    targets.push(Target {
                        action: "ec2:CreateFlowLogs".into(),
                        resource: n.arn(kind, v),
                        ..Target::default()
                    });
                }
            }
            targets
        },
        handler: create_flow_logs,
    },
    Action {
        name: "DescribeFlowLogs",
        targets: |_, _| anything("DescribeFlowLogs"),
        handler: describe_flow_logs,
    },
    Action {
        name: "DeleteFlowLogs",
        targets: |n, p| {
            let mut targets: Vec<Target> =
                p.0.iter()
                    .filter(|(k, _)| k.starts_with("FlowLogId."))
                    .map(|(_, v)| Target {
                        action: "ec2:DeleteFlowLogs".into(),
                        resource: n.arn("vpc-flow-log", v),
                        ..Target::default()
                    })
                    .collect();
            // Even a request naming none is authorized before it is refused.
            if targets.is_empty() {
                targets.push(Target {
                    action: "ec2:DeleteFlowLogs".into(),
                    resource: n.arn("vpc-flow-log", "*"),
                    ..Target::default()
                });
            }
            targets
        },
        handler: delete_flow_logs,
    },
];

fn action_of(name: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// Every action the door serves.
pub fn actions() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|a| a.name)
}

/// One request's context.
struct Cx<'a> {
    state: &'a ApiState,
    form: &'a Form,
    dry_run: bool,
    /// For a delete of a subnet or group: the function whose `VpcConfig` names it.
    in_use: Option<String>,
}

impl Cx<'_> {
    fn network(&self) -> &Network {
        &self.state.network
    }

    /// Called once the input is read: refuses any parameter no reader took, then a dry
    /// run stops here.
    fn ready(&self) -> Result<(), ApiError> {
        self.form.finish()?;
        if self.dry_run {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "DryRunOperation",
                "Request would have succeeded, but DryRun flag is set.",
            ));
        }
        Ok(())
    }
}

async fn dispatch(state: &ApiState, request: ApiRequest) -> Result<Reply, ApiError> {
    let params = crate::access::query_params(&request);
    // A subnet or group a function's `VpcConfig` names cannot be deleted; which function
    // is asked of the control plane first (the handlers are synchronous).
    let raw = Raw(&params);
    let network = &state.network;
    let attached_id = match raw.first("Action") {
        Some("DeleteSubnet") => raw
            .first("SubnetId")
            .filter(|id| network.subnet(id).is_some()),
        Some("DeleteSecurityGroup") => raw
            .first("GroupId")
            .filter(|id| network.security_group(id).is_some()),
        _ => None,
    };
    let in_use = match attached_id {
        Some(id) => crate::functions::network_in_use(state, id).await?,
        None => None,
    };
    let form = Form::parse(&params)?;
    let root = form.root();
    let action_name = root.required("Action")?;
    let Some(action) = action_of(action_name) else {
        let shown: String = action_name.chars().take(64).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!(
                "The action {shown} is not valid for this web service. Warden serves these EC2 actions: {}",
                actions().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    if let Some(version) = root.string("Version")? {
        if version != VERSION {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                format!(
                    "Warden serves EC2's API version {VERSION}, not {}",
                    version.chars().take(32).collect::<String>()
                ),
            ));
        }
    }
    let dry_run = root.flag("DryRun")?.unwrap_or(false);
    let cx = Cx {
        state,
        form: &form,
        dry_run,
        in_use,
    };
    let body = (action.handler)(&cx, &root)?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut x = Xml::default();
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.raw(&format!("<{}Response xmlns=\"{NAMESPACE}\">", action.name));
    x.leaf("requestId", &request_id);
    x.raw(&body.0);
    x.raw(&format!("</{}Response>", action.name));
    let mut r = Response::new(crate::ReplyBody::from(Bytes::from(x.0)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(r)
}

// ---- errors ----

fn network_error(e: NetworkError) -> ApiError {
    if e.is_internal() {
        return ApiError::internal(&e);
    }
    ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn invalid_value(message: impl Into<String>) -> ApiError {
    bad("InvalidParameterValue", message)
}

fn missing(name: &str) -> ApiError {
    bad(
        "MissingParameter",
        format!("The request must contain the parameter {name}"),
    )
}

/// A parameter of EC2's model that Warden does not honour.
fn unsupported(path: &str, why: &str) -> ApiError {
    bad(
        "InvalidParameter",
        format!("Warden does not support the parameter {path}: {why}"),
    )
}

/// The EC2 error document: `<Response><Errors><Error>` with the code and message, and the
/// request id.
pub(crate) fn error_document(code: &str, message: &str, request_id: &str) -> String {
    let mut x = Xml::default();
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.open("Response");
    x.open("Errors");
    x.open("Error");
    x.leaf("Code", code);
    x.leaf("Message", message);
    x.close("Error");
    x.close("Errors");
    x.leaf("RequestID", request_id);
    x.close("Response");
    x.0
}

// ---- authorization targets ----

/// The raw parameters, read leniently to name what a request needs permission for
/// (anything malformed is refused by the handler, after authorization).
struct Raw<'a>(&'a [(String, String)]);

impl<'a> Raw<'a> {
    fn first(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The values of `NAME.N`.
    fn indexed(&self, name: &str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(name)
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has_prefix(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(k, _)| k == name || k.strip_prefix(name).is_some_and(|r| r.starts_with('.')))
    }
}

fn anything(action: &str) -> Vec<Target> {
    vec![Target {
        action: format!("ec2:{action}"),
        resource: "*".into(),
        ..Target::default()
    }]
}

/// The ARN of a resource of `kind` with this id, or of any of its kind when the id is
/// absent or not of its form (the handler then refuses it).
fn arn_of(network: &Network, kind: ResourceKind, id: Option<&str>) -> String {
    let id = id
        .filter(|id| warden_network::is_well_formed(kind.prefix(), id))
        .unwrap_or("*");
    network.arn(kind.as_str(), id)
}

fn on(network: &Network, action: &str, kind: ResourceKind, id: Option<&str>) -> Vec<Target> {
    vec![Target {
        action: format!("ec2:{action}"),
        resource: arn_of(network, kind, id),
        ..Target::default()
    }]
}

/// `Create*`: the action on the new resource (`KIND/*`) and, where it goes in a VPC, on
/// the VPC; with tags, `ec2:CreateTags` on the new resource.
fn create_targets(
    network: &Network,
    p: &Raw<'_>,
    action: &str,
    kind: ResourceKind,
    in_vpc: bool,
) -> Vec<Target> {
    let mut targets = on(network, action, kind, None);
    if in_vpc {
        targets.extend(on(network, action, ResourceKind::Vpc, p.first("VpcId")));
    }
    if p.has_prefix("TagSpecification") {
        targets.extend(on(network, "CreateTags", kind, None));
    }
    targets
}

fn create_vpc_targets(network: &Network, p: &Raw<'_>) -> Vec<Target> {
    create_targets(network, p, "CreateVpc", ResourceKind::Vpc, false)
}

fn create_subnet_targets(network: &Network, p: &Raw<'_>) -> Vec<Target> {
    create_targets(network, p, "CreateSubnet", ResourceKind::Subnet, true)
}

fn create_group_targets(network: &Network, p: &Raw<'_>) -> Vec<Target> {
    let in_vpc = p.first("VpcId").is_some();
    create_targets(
        network,
        p,
        "CreateSecurityGroup",
        ResourceKind::SecurityGroup,
        in_vpc,
    )
}

/// `CreateTags`/`DeleteTags`: the action on each resource named.
fn tag_targets(network: &Network, action: &str, p: &Raw<'_>) -> Vec<Target> {
    let mut targets: Vec<Target> = p
        .indexed("ResourceId")
        .into_iter()
        .filter_map(|id| ResourceKind::of(id).map(|kind| (kind, id)))
        .flat_map(|(kind, id)| on(network, action, kind, Some(id)))
        .collect();
    if targets.is_empty() {
        targets = anything(action);
    }
    targets
}

// ---- the form as a tree ----

/// The form's parameters as a tree: `A.1.B.2=v` is member `A`, item 1, member `B`, item
/// 2. Every leaf must be read by some reader, or [`Form::finish`] refuses it by name.
struct Form {
    leaves: Vec<(String, String)>,
    used: RefCell<Vec<bool>>,
    root: BTreeMap<String, Node>,
}

enum Node {
    Leaf(usize),
    Branch(BTreeMap<String, Node>),
}

/// Whether a path segment is a list index: a decimal number from 1, without leading zeros.
fn index_of(segment: &str) -> Option<u32> {
    if segment.is_empty() || segment.starts_with('0') || segment.len() > 9 {
        return None;
    }
    if !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

impl Form {
    fn parse(params: &[(String, String)]) -> Result<Form, ApiError> {
        let mut form = Form {
            leaves: Vec::with_capacity(params.len()),
            used: RefCell::new(Vec::new()),
            root: BTreeMap::new(),
        };
        for (key, value) in params {
            // Presigned requests carry their signature in the query; authentication read it.
            if key.starts_with("X-Amz-") {
                continue;
            }
            let shown: String = key.chars().take(128).collect();
            let segments: Vec<&str> = key.split('.').collect();
            if key.len() > 256 || segments.iter().any(|s| s.is_empty()) {
                return Err(bad(
                    "UnknownParameter",
                    format!("The parameter {shown} is not recognized"),
                ));
            }
            let leaf = form.leaves.len();
            form.leaves.push((key.clone(), value.clone()));
            let mut map = &mut form.root;
            let (last, parents) = segments
                .split_last()
                .ok_or_else(|| bad("UnknownParameter", "An empty parameter name"))?;
            for segment in parents {
                let node = map
                    .entry((*segment).to_owned())
                    .or_insert_with(|| Node::Branch(BTreeMap::new()));
                map = match node {
                    Node::Branch(m) => m,
                    Node::Leaf(_) => {
                        return Err(invalid_value(format!(
                            "The parameter {shown} conflicts with a single value given for part of its name"
                        )))
                    }
                };
            }
            if map.contains_key(*last) {
                return Err(invalid_value(format!(
                    "The parameter {shown} is given more than once"
                )));
            }
            map.insert((*last).to_owned(), Node::Leaf(leaf));
        }
        form.used = RefCell::new(vec![false; form.leaves.len()]);
        Ok(form)
    }

    fn root(&self) -> Fields<'_> {
        Fields {
            form: self,
            path: String::new(),
            map: Some(&self.root),
        }
    }

    fn take(&self, leaf: usize) -> &str {
        if let Some(u) = self.used.borrow_mut().get_mut(leaf) {
            *u = true;
        }
        self.leaves.get(leaf).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Refuses the first parameter no reader took.
    fn finish(&self) -> Result<(), ApiError> {
        let used = self.used.borrow();
        match self
            .leaves
            .iter()
            .zip(used.iter())
            .find(|(_, used)| !**used)
        {
            Some(((key, _), _)) => Err(bad(
                "UnknownParameter",
                format!(
                    "The parameter {} is not recognized",
                    key.chars().take(128).collect::<String>()
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The members of one structure of the form (the top level, or an item of a list).
#[derive(Clone)]
struct Fields<'a> {
    form: &'a Form,
    path: String,
    map: Option<&'a BTreeMap<String, Node>>,
}

impl<'a> Fields<'a> {
    fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn node(&self, name: &str) -> Option<&'a Node> {
        self.map.and_then(|m| m.get(name))
    }

    /// Whether the member is given (as a value or with parts).
    fn has(&self, name: &str) -> bool {
        self.node(name).is_some()
    }

    /// A single value, as given (an empty one too).
    fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.node(name) {
            None => Ok(None),
            Some(Node::Leaf(i)) => Ok(Some(self.form.take(*i))),
            Some(Node::Branch(_)) => Err(invalid_value(format!(
                "The parameter {} takes a single value",
                self.path_of(name)
            ))),
        }
    }

    /// A single value that must be given and not empty.
    fn required(&self, name: &str) -> Result<&'a str, ApiError> {
        match self.string(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(missing(&self.path_of(name))),
        }
    }

    /// A single value, absent when empty.
    fn text(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        Ok(self.string(name)?.filter(|v| !v.is_empty()))
    }

    fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                invalid_value(format!(
                    "Invalid value '{}' for {}: an integer is required",
                    v.chars().take(32).collect::<String>(),
                    self.path_of(name)
                ))
            }),
        }
    }

    fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(invalid_value(format!(
                "Invalid value '{}' for {}: true or false",
                v.chars().take(32).collect::<String>(),
                self.path_of(name)
            ))),
        }
    }

    /// The items of a list member (`NAME.N`), in index order.
    fn items(&self, name: &str) -> Result<Vec<(String, &'a Node)>, ApiError> {
        let path = self.path_of(name);
        let map = match self.node(name) {
            None => return Ok(Vec::new()),
            Some(Node::Leaf(_)) => {
                return Err(invalid_value(format!(
                    "The parameter {path} is a list: give its items as {path}.1, {path}.2, ..."
                )))
            }
            Some(Node::Branch(m)) => m,
        };
        let mut items = Vec::with_capacity(map.len());
        for (segment, node) in map {
            let Some(i) = index_of(segment) else {
                return Err(bad(
                    "UnknownParameter",
                    format!("The parameter {path}.{segment} is not recognized"),
                ));
            };
            items.push((i, format!("{path}.{segment}"), node));
        }
        if items.len() > MAX_LIST {
            return Err(invalid_value(format!(
                "The list {path} has more than {MAX_LIST} items"
            )));
        }
        items.sort_by_key(|(i, _, _)| *i);
        Ok(items.into_iter().map(|(_, p, n)| (p, n)).collect())
    }

    /// A list of single values (`NAME.N=v`).
    fn strings(&self, name: &str) -> Result<Vec<&'a str>, ApiError> {
        self.items(name)?
            .into_iter()
            .map(|(path, node)| match node {
                Node::Leaf(i) => Ok(self.form.take(*i)),
                Node::Branch(_) => Err(invalid_value(format!(
                    "The parameter {path} takes a single value"
                ))),
            })
            .collect()
    }

    /// A list of structures (`NAME.N.MEMBER=v`).
    fn structs(&self, name: &str) -> Result<Vec<Fields<'a>>, ApiError> {
        self.items(name)?
            .into_iter()
            .map(|(path, node)| match node {
                Node::Branch(m) => Ok(Fields {
                    form: self.form,
                    path,
                    map: Some(m),
                }),
                Node::Leaf(_) => Err(invalid_value(format!(
                    "The parameter {path} is a structure: give its members as {path}.NAME"
                ))),
            })
            .collect()
    }

    /// Refuses each of `names` that is given, as a parameter Warden does not honour.
    fn refuse(&self, names: &[&str], why: &str) -> Result<(), ApiError> {
        match names.iter().find(|n| self.has(n)) {
            Some(n) => Err(unsupported(&self.path_of(n), why)),
            None => Ok(()),
        }
    }
}

// ---- common inputs ----

/// `TagSpecification.N` of a `Create*`: each for `kind`, their tags together.
fn tag_specifications(
    f: &Fields<'_>,
    kind: ResourceKind,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut tags = Vec::new();
    for spec in f.structs("TagSpecification")? {
        let resource_type = spec.required("ResourceType")?;
        if resource_type != kind.as_str() {
            return Err(invalid_value(format!(
                "'{}' is not a valid taggable resource type for this operation: it makes a {}",
                resource_type.chars().take(64).collect::<String>(),
                kind.as_str()
            )));
        }
        tags.extend(tag_list(&spec, "Tag")?);
    }
    Ok(tags)
}

/// `Tag.N.Key` / `Tag.N.Value` (a missing value is the empty string).
fn tag_list(f: &Fields<'_>, name: &str) -> Result<Vec<(String, String)>, ApiError> {
    f.structs(name)?
        .into_iter()
        .map(|t| {
            let key = t.required("Key")?;
            let value = t.string("Value")?.unwrap_or("");
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// One `Filter.N`: its name and values.
struct Filter {
    name: String,
    values: Vec<String>,
}

/// `Filter.N.Name` / `Filter.N.Value.M`, each name one of `supported` or `tag:KEY`.
fn filters(f: &Fields<'_>, supported: &[&str], operation: &str) -> Result<Vec<Filter>, ApiError> {
    let list = f.structs("Filter")?;
    if list.len() > MAX_FILTERS {
        return Err(invalid_value(format!(
            "At most {MAX_FILTERS} filters may be given"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut count = 0usize;
    for filter in list {
        let name = filter.required("Name")?;
        let known =
            supported.contains(&name) || name.strip_prefix("tag:").is_some_and(|k| !k.is_empty());
        if !known {
            return Err(invalid_value(format!(
                "The filter '{}' is invalid: Warden's {operation} supports {} and tag:KEY",
                name.chars().take(64).collect::<String>(),
                supported.join(", ")
            )));
        }
        let values: Vec<String> = filter
            .strings("Value")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if values.is_empty() {
            return Err(invalid_value(format!(
                "The filter '{name}' needs at least one value ({}.Value.1)",
                filter.path
            )));
        }
        count += values.len();
        if count > MAX_FILTER_VALUES {
            return Err(invalid_value(format!(
                "At most {MAX_FILTER_VALUES} filter values may be given in one request"
            )));
        }
        if values
            .iter()
            .any(|v| v.chars().count() > MAX_FILTER_VALUE_CHARS)
        {
            return Err(invalid_value(format!(
                "A filter value is at most {MAX_FILTER_VALUE_CHARS} characters long"
            )));
        }
        out.push(Filter {
            name: name.to_owned(),
            values,
        });
    }
    Ok(out)
}

/// Whether an item passes every filter: for each, one of the item's values for the
/// filter's name matches one of the filter's values (`*` and `?` wildcards).
fn passes(
    filters: &[Filter],
    tags: &[(String, String)],
    values_of: impl Fn(&str) -> Vec<String>,
) -> bool {
    filters.iter().all(|f| {
        let candidates: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        } else if f.name == "tag-key" {
            tags.iter().map(|(k, _)| k.clone()).collect()
        } else {
            values_of(&f.name)
        };
        candidates
            .iter()
            .any(|c| f.values.iter().any(|pattern| wildcard(pattern, c)))
    })
}

/// Matches `text` against an EC2 filter value: `*` any run, `?` one character, `\`
/// escapes the next character.
fn wildcard(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[p.min(toks.len())..].iter().all(|t| *t == Tok::Any)
}

/// `MaxResults` / `NextToken` over `items`: the page and the token of the next one.
fn page<T>(
    f: &Fields<'_>,
    items: Vec<T>,
    explicit_ids: bool,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = f.int("MaxResults")?;
    let token = f.text("NextToken")?;
    if explicit_ids && max.is_some() {
        return Err(bad(
            "InvalidParameterCombination",
            "MaxResults cannot be given with a list of ids",
        ));
    }
    let start = match token {
        None => 0,
        Some(t) => t
            .strip_prefix("wn1-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| bad("InvalidPaginationToken", "The NextToken is not valid"))?,
    };
    let Some(max) = max else {
        return Ok((items.into_iter().skip(start).collect(), None));
    };
    if !(5..=1000).contains(&max) {
        return Err(invalid_value(format!(
            "MaxResults must be between 5 and 1000, not {max}"
        )));
    }
    let max = max as usize;
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next = (start + page.len() < total).then(|| format!("wn1-{}", start + page.len()));
    Ok((page, next))
}

/// Ids listed for a `Describe*`, each of its kind's form; `check` refuses a malformed one.
fn ids<'a>(
    f: &Fields<'a>,
    name: &str,
    check: fn(&str) -> Result<(), NetworkError>,
) -> Result<Vec<&'a str>, ApiError> {
    let ids = f.strings(name)?;
    for id in &ids {
        check(id).map_err(network_error)?;
    }
    Ok(ids)
}

/// The items `ids` name, in that order (`not_found` for one that does not exist), or
/// every item.
fn select<T: Clone>(
    all: Vec<T>,
    ids: &[&str],
    id_of: fn(&T) -> &str,
    not_found: fn(&str) -> ApiError,
) -> Result<Vec<T>, ApiError> {
    if ids.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match all.iter().find(|x| id_of(x) == *id) {
            Some(x) if !out.iter().any(|o: &T| id_of(o) == *id) => out.push(x.clone()),
            Some(_) => {}
            None => return Err(not_found(id)),
        }
    }
    Ok(out)
}

// ---- VPCs ----

fn create_vpc(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    f.refuse(
        &[
            "Ipv6Pool",
            "Ipv6CidrBlock",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
            "Ipv6CidrBlockNetworkBorderGroup",
        ],
        "Warden's VPCs are IPv4 only",
    )?;
    f.refuse(
        &["Ipv4IpamPoolId", "Ipv4NetmaskLength"],
        "Warden has no IPAM pools; give CidrBlock",
    )?;
    f.refuse(
        &["VpcEncryptionControl"],
        "Warden does not manage VPC encryption controls",
    )?;
    if f.flag("AmazonProvidedIpv6CidrBlock")? == Some(true) {
        return Err(unsupported(
            "AmazonProvidedIpv6CidrBlock",
            "Warden's VPCs are IPv4 only",
        ));
    }
    if let Some(tenancy) = f.text("InstanceTenancy")? {
        if tenancy != "default" {
            return Err(unsupported(
                "InstanceTenancy",
                "Warden's VPCs have default tenancy only",
            ));
        }
    }
    let cidr = f.required("CidrBlock")?;
    let tags = tag_specifications(f, ResourceKind::Vpc)?;
    warden_network::block_cidr(cidr, "InvalidVpc.Range").map_err(network_error)?;
    warden_network::check_tags(&tags).map_err(network_error)?;
    cx.ready()?;
    let vpc = cx.network().create_vpc(cidr, tags).map_err(network_error)?;
    let mut x = Xml::default();
    write_vpc(&mut x, cx.network(), "vpc", &vpc);
    Ok(x)
}

fn delete_vpc(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let id = f.required("VpcId")?;
    warden_network::check_vpc_id(id).map_err(network_error)?;
    cx.ready()?;
    cx.network().delete_vpc(id).map_err(network_error)?;
    let mut x = Xml::default();
    x.leaf("return", "true");
    Ok(x)
}

const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block",
    "cidr-block-association.cidr-block",
    "is-default",
    "owner-id",
    "state",
    "tag-key",
];

fn describe_vpcs(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let wanted = ids(f, "VpcId", warden_network::check_vpc_id)?;
    let filters = filters(f, VPC_FILTERS, "DescribeVpcs")?;
    let network = cx.network();
    let all = select(
        network.vpcs(),
        &wanted,
        |v| &v.id,
        |id| {
            network_error(NetworkError::NotFound {
                code: "InvalidVpcID.NotFound",
                message: format!("The vpc ID '{id}' does not exist"),
            })
        },
    )?;
    let owner = network.account().to_owned();
    let kept: Vec<Vpc> = all
        .into_iter()
        .filter(|v| {
            passes(&filters, &v.tags, |name| match name {
                "vpc-id" => vec![v.id.clone()],
                "cidr" | "cidr-block" | "cidr-block-association.cidr-block" => {
                    vec![v.cidr.to_string()]
                }
                "is-default" => vec![v.is_default.to_string()],
                "owner-id" => vec![owner.clone()],
                "state" => vec!["available".into()],
                _ => Vec::new(),
            })
        })
        .collect();
    let (vpcs, next) = page(f, kept, !wanted.is_empty())?;
    cx.ready()?;
    let mut x = Xml::default();
    x.open("vpcSet");
    for v in &vpcs {
        write_vpc(&mut x, network, "item", v);
    }
    x.close("vpcSet");
    x.opt("nextToken", next.as_deref());
    Ok(x)
}

fn write_vpc(x: &mut Xml, network: &Network, tag: &str, v: &Vpc) {
    let hex = v.id.trim_start_matches("vpc-");
    x.open(tag);
    x.leaf("vpcId", &v.id);
    x.leaf("ownerId", network.account());
    x.leaf("state", "available");
    x.leaf("cidrBlock", &v.cidr.to_string());
    x.open("cidrBlockAssociationSet");
    x.open("item");
    x.leaf("associationId", &format!("vpc-cidr-assoc-{hex}"));
    x.leaf("cidrBlock", &v.cidr.to_string());
    x.open("cidrBlockState");
    x.leaf("state", "associated");
    x.close("cidrBlockState");
    x.close("item");
    x.close("cidrBlockAssociationSet");
    x.leaf("dhcpOptionsId", "default");
    x.leaf("instanceTenancy", "default");
    x.leaf("isDefault", bool_text(v.is_default));
    x.tags(&v.tags);
    x.close(tag);
}

// ---- subnets ----

fn create_subnet(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    f.refuse(
        &["Ipv6CidrBlock", "Ipv6IpamPoolId", "Ipv6NetmaskLength"],
        "Warden's subnets are IPv4 only",
    )?;
    f.refuse(
        &["Ipv4IpamPoolId", "Ipv4NetmaskLength"],
        "Warden has no IPAM pools; give CidrBlock",
    )?;
    f.refuse(&["OutpostArn"], "Warden has no Outposts")?;
    f.refuse(
        &["AvailabilityZoneId"],
        "name the zone with AvailabilityZone (REGIONa to REGIONf)",
    )?;
    if f.flag("Ipv6Native")? == Some(true) {
        return Err(unsupported("Ipv6Native", "Warden's subnets are IPv4 only"));
    }
    let vpc_id = f.required("VpcId")?;
    let cidr = f.required("CidrBlock")?;
    let zone = f.text("AvailabilityZone")?;
    let tags = tag_specifications(f, ResourceKind::Subnet)?;
    warden_network::check_vpc_id(vpc_id).map_err(network_error)?;
    warden_network::block_cidr(cidr, "InvalidSubnet.Range").map_err(network_error)?;
    warden_network::availability_zone(cx.network().region(), zone).map_err(network_error)?;
    warden_network::check_tags(&tags).map_err(network_error)?;
    cx.ready()?;
    let subnet = cx
        .network()
        .create_subnet(vpc_id, cidr, zone, tags)
        .map_err(network_error)?;
    let mut x = Xml::default();
    write_subnet(&mut x, cx.network(), "subnet", &subnet);
    Ok(x)
}

fn delete_subnet(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let id = f.required("SubnetId")?;
    warden_network::check_subnet_id(id).map_err(network_error)?;
    cx.ready()?;
    if let (Some(function), Some(_)) = (&cx.in_use, cx.network().subnet(id)) {
        return Err(in_use(id, function));
    }
    cx.network().delete_subnet(id).map_err(network_error)?;
    let mut x = Xml::default();
    x.leaf("return", "true");
    Ok(x)
}

// ---- flow logs ----

/// `CreateFlowLogs` of VPCs or subnets, to a log group (`cloud-watch-logs`, the default
/// and only destination): the records are kept by Warden and read per function
/// (`warden network flows`), filed under the log group's name.
fn create_flow_logs(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    f.refuse(
        &[
            "LogDestination",
            "DestinationOptions",
            "DeliverCrossAccountRole",
        ],
        "flow log records are kept by Warden (read them with `warden network flows`)",
    )?;
    f.refuse(
        &["LogFormat"],
        "Warden writes the default format (version 2) only",
    )?;
    if let Some(t) = f.text("LogDestinationType")? {
        if t != "cloud-watch-logs" {
            return Err(unsupported(
                "LogDestinationType",
                "flow log records are kept by Warden under a log group name (cloud-watch-logs)",
            ));
        }
    }
    f.refuse(
        &["MaxAggregationInterval"],
        "Warden aggregates every flow log's records over the server's --flow-log-interval",
    )?;
    // Read, and not needed: Warden files the records itself, under its own authority
    // (scripts pass the role because AWS needs it). A retried request with the same
    // token finds its flow logs made and gets `FlowLogAlreadyExists` for each.
    let _role = f.text("DeliverLogsPermissionArn")?;
    let _token = f.text("ClientToken")?;
    let resource_type = f.required("ResourceType")?;
    let traffic =
        warden_network::TrafficType::parse(f.required("TrafficType")?).map_err(network_error)?;
    let group = f
        .text("LogGroupName")?
        .ok_or_else(|| missing("LogGroupName"))?;
    let ids = f.strings("ResourceId")?;
    if ids.is_empty() {
        return Err(missing("ResourceId"));
    }
    let mut tags = Vec::new();
    for spec in f.structs("TagSpecification")? {
        let kind = spec.required("ResourceType")?;
        if kind != "vpc-flow-log" {
            return Err(invalid_value(format!(
                "'{}' is not a valid taggable resource type for this operation: it makes a vpc-flow-log",
                kind.chars().take(64).collect::<String>()
            )));
        }
        tags.extend(tag_list(&spec, "Tag")?);
    }
    let network = cx.network();
    for id in &ids {
        let exists = match resource_type {
            "VPC" => {
                warden_network::check_vpc_id(id).map_err(network_error)?;
                network.vpc(id).is_some()
            }
            "Subnet" => {
                warden_network::check_subnet_id(id).map_err(network_error)?;
                network.subnet(id).is_some()
            }
            other => {
                return Err(unsupported(
                    "ResourceType",
                    &format!(
                        "flow logs record VPCs and subnets here, not {}",
                        other.chars().take(32).collect::<String>()
                    ),
                ))
            }
        };
        if !exists {
            return Err(bad(
                if resource_type == "VPC" {
                    "InvalidVpcID.NotFound"
                } else {
                    "InvalidSubnetID.NotFound"
                },
                format!("The resource '{id}' does not exist"),
            ));
        }
    }
    cx.ready()?;
    // As EC2 does, a resource whose flow log cannot be made (one exists already, the
    // limit is reached) is listed as unsuccessful and the others are made; only a store
    // failure fails the request.
    let mut made = Vec::new();
    let mut failed = Vec::new();
    for id in ids {
        match cx.state.flow_logs.create(id, traffic, group, tags.clone()) {
            Ok(log) => made.push(log.id),
            Err(e) if e.is_internal() => return Err(network_error(e)),
            Err(e) => failed.push((id, e)),
        }
    }
    let mut x = Xml::default();
    x.open("flowLogIdSet");
    for id in &made {
        x.leaf("item", id);
    }
    x.close("flowLogIdSet");
    x.open("unsuccessful");
    for (id, e) in &failed {
        x.open("item");
        x.open("error");
        x.leaf("code", e.code());
        x.leaf("message", &e.to_string());
        x.close("error");
        x.leaf("resourceId", id);
        x.close("item");
    }
    x.close("unsuccessful");
    Ok(x)
}

const FLOW_LOG_FILTERS: &[&str] = &[
    "flow-log-id",
    "resource-id",
    "traffic-type",
    "log-group-name",
    "log-destination-type",
    "deliver-log-status",
    "tag-key",
];

fn describe_flow_logs(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let wanted = f.strings("FlowLogId")?;
    let filters = filters(f, FLOW_LOG_FILTERS, "DescribeFlowLogs")?;
    let kept: Vec<warden_network::FlowLog> = cx
        .state
        .flow_logs
        .list()
        .into_iter()
        .filter(|l| wanted.is_empty() || wanted.contains(&l.id.as_str()))
        .filter(|l| {
            passes(&filters, &l.tags, |name| match name {
                "flow-log-id" => vec![l.id.clone()],
                "resource-id" => vec![l.resource_id.clone()],
                "traffic-type" => vec![l.traffic_type.as_str().to_owned()],
                "log-group-name" => vec![l.log_group_name.clone()],
                "log-destination-type" => vec!["cloud-watch-logs".to_owned()],
                "deliver-log-status" => vec!["SUCCESS".to_owned()],
                _ => Vec::new(),
            })
        })
        .collect();
    let (logs, next) = page(f, kept, !wanted.is_empty())?;
    cx.ready()?;
    let mut x = Xml::default();
    x.open("flowLogSet");
    for l in &logs {
        x.open("item");
        let created =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(l.created_ms) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
        x.leaf("creationTime", &created);
        x.leaf("deliverLogsStatus", "SUCCESS");
        x.leaf("flowLogId", &l.id);
        x.leaf("flowLogStatus", "ACTIVE");
        x.leaf("logGroupName", &l.log_group_name);
        x.leaf("resourceId", &l.resource_id);
        x.leaf("trafficType", l.traffic_type.as_str());
        x.leaf("logDestinationType", "cloud-watch-logs");
        x.leaf(
            "logFormat",
            "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}",
        );
        x.tags(&l.tags);
        x.close("item");
    }
    x.close("flowLogSet");
    x.opt("nextToken", next.as_deref());
    Ok(x)
}

fn delete_flow_logs(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let ids = f.strings("FlowLogId")?;
    if ids.is_empty() {
        return Err(missing("FlowLogId"));
    }
    cx.ready()?;
    let mut x = Xml::default();
    x.open("unsuccessful");
    for id in ids {
        if !cx.state.flow_logs.delete(id).map_err(network_error)? {
            x.open("item");
            x.open("error");
            x.leaf("code", "InvalidFlowLogId.NotFound");
            x.leaf("message", &format!("The flow log ID '{id}' does not exist"));
            x.close("error");
            x.leaf("resourceId", id);
            x.close("item");
        }
    }
    x.close("unsuccessful");
    Ok(x)
}

/// `DependencyViolation` for a subnet or group a function's `VpcConfig` names.
fn in_use(id: &str, function: &str) -> ApiError {
    bad(
        "DependencyViolation",
        format!("resource {id} has a dependent object: the VpcConfig of the Lambda function {function} names it"),
    )
}

const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "subnet-arn",
    "vpc-id",
    "cidr",
    "cidr-block",
    "cidrBlock",
    "availability-zone",
    "availabilityZone",
    "default-for-az",
    "defaultForAz",
    "owner-id",
    "state",
    "tag-key",
];

fn describe_subnets(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let wanted = ids(f, "SubnetId", warden_network::check_subnet_id)?;
    let filters = filters(f, SUBNET_FILTERS, "DescribeSubnets")?;
    let network = cx.network();
    let all = select(
        network.subnets(),
        &wanted,
        |s| &s.id,
        |id| {
            network_error(NetworkError::NotFound {
                code: "InvalidSubnetID.NotFound",
                message: format!("The subnet ID '{id}' does not exist"),
            })
        },
    )?;
    let owner = network.account().to_owned();
    let kept: Vec<Subnet> = all
        .into_iter()
        .filter(|s| {
            passes(&filters, &s.tags, |name| match name {
                "subnet-id" => vec![s.id.clone()],
                "subnet-arn" => vec![network.arn("subnet", &s.id)],
                "vpc-id" => vec![s.vpc_id.clone()],
                "cidr" | "cidr-block" | "cidrBlock" => vec![s.cidr.to_string()],
                "availability-zone" | "availabilityZone" => vec![s.availability_zone.clone()],
                "default-for-az" | "defaultForAz" => vec!["false".into()],
                "owner-id" => vec![owner.clone()],
                "state" => vec!["available".into()],
                _ => Vec::new(),
            })
        })
        .collect();
    let (subnets, next) = page(f, kept, !wanted.is_empty())?;
    cx.ready()?;
    let mut x = Xml::default();
    x.open("subnetSet");
    for s in &subnets {
        write_subnet(&mut x, network, "item", s);
    }
    x.close("subnetSet");
    x.opt("nextToken", next.as_deref());
    Ok(x)
}

fn write_subnet(x: &mut Xml, network: &Network, tag: &str, s: &Subnet) {
    // AWS keeps five addresses of every subnet.
    let size = 1u64 << (32 - u32::from(s.cidr.prefix_len()));
    x.open(tag);
    x.leaf("subnetId", &s.id);
    x.leaf("subnetArn", &network.arn("subnet", &s.id));
    x.leaf("state", "available");
    x.leaf("vpcId", &s.vpc_id);
    x.leaf("ownerId", network.account());
    x.leaf("cidrBlock", &s.cidr.to_string());
    x.leaf(
        "availableIpAddressCount",
        &size.saturating_sub(5).to_string(),
    );
    x.leaf("availabilityZone", &s.availability_zone);
    x.leaf("defaultForAz", "false");
    x.leaf("mapPublicIpOnLaunch", "false");
    x.leaf("mapCustomerOwnedIpOnLaunch", "false");
    x.leaf("assignIpv6AddressOnCreation", "false");
    x.leaf("ipv6Native", "false");
    x.leaf("enableDns64", "false");
    x.tags(&s.tags);
    x.close(tag);
}

// ---- security groups ----

fn create_security_group(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let name = f.required("GroupName")?;
    let description = f.required("GroupDescription")?;
    let vpc_id = f.text("VpcId")?;
    let tags = tag_specifications(f, ResourceKind::SecurityGroup)?;
    warden_network::check_group_name(name).map_err(network_error)?;
    warden_network::check_group_description(description).map_err(network_error)?;
    if let Some(vpc_id) = vpc_id {
        warden_network::check_vpc_id(vpc_id).map_err(network_error)?;
    }
    warden_network::check_tags(&tags).map_err(network_error)?;
    cx.ready()?;
    let group = cx
        .network()
        .create_security_group(vpc_id, name, description, tags)
        .map_err(network_error)?;
    let mut x = Xml::default();
    x.leaf("return", "true");
    x.leaf("groupId", &group.id);
    x.leaf(
        "securityGroupArn",
        &cx.network().arn("security-group", &group.id),
    );
    x.tags(&group.tags);
    Ok(x)
}

fn delete_security_group(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    f.refuse(
        &["GroupName"],
        "names identify groups of the default VPC, which Warden does not have; give GroupId",
    )?;
    let id = f.required("GroupId")?;
    warden_network::check_group_id(id).map_err(network_error)?;
    cx.ready()?;
    if let (Some(function), Some(_)) = (&cx.in_use, cx.network().security_group(id)) {
        return Err(in_use(id, function));
    }
    let group = cx
        .network()
        .delete_security_group(id)
        .map_err(network_error)?;
    let mut x = Xml::default();
    x.leaf("return", "true");
    x.leaf("groupId", &group.id);
    Ok(x)
}

const GROUP_FILTERS: &[&str] = &[
    "group-id",
    "group-name",
    "vpc-id",
    "description",
    "owner-id",
    "tag-key",
];

fn describe_security_groups(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    f.refuse(
        &["GroupName"],
        "names identify groups of the default VPC, which Warden does not have; use GroupId or the group-name filter",
    )?;
    let wanted = ids(f, "GroupId", warden_network::check_group_id)?;
    let filters = filters(f, GROUP_FILTERS, "DescribeSecurityGroups")?;
    let network = cx.network();
    let all = select(
        network.security_groups(),
        &wanted,
        |g| &g.id,
        group_not_found,
    )?;
    let owner = network.account().to_owned();
    let kept: Vec<SecurityGroup> = all
        .into_iter()
        .filter(|g| {
            passes(&filters, &g.tags, |name| match name {
                "group-id" => vec![g.id.clone()],
                "group-name" => vec![g.name.clone()],
                "vpc-id" => vec![g.vpc_id.clone()],
                "description" => vec![g.description.clone()],
                "owner-id" => vec![owner.clone()],
                _ => Vec::new(),
            })
        })
        .collect();
    let (groups, next) = page(f, kept, !wanted.is_empty())?;
    cx.ready()?;
    let mut x = Xml::default();
    x.open("securityGroupInfo");
    for g in &groups {
        x.open("item");
        x.leaf("ownerId", network.account());
        x.leaf("groupId", &g.id);
        x.leaf("groupName", &g.name);
        x.leaf("groupDescription", &g.description);
        x.leaf("vpcId", &g.vpc_id);
        x.leaf("securityGroupArn", &network.arn("security-group", &g.id));
        x.permissions("ipPermissions", network.account(), &g.ingress);
        x.permissions("ipPermissionsEgress", network.account(), &g.egress);
        x.tags(&g.tags);
        x.close("item");
    }
    x.close("securityGroupInfo");
    x.opt("nextToken", next.as_deref());
    Ok(x)
}

fn group_not_found(id: &str) -> ApiError {
    network_error(NetworkError::NotFound {
        code: "InvalidGroup.NotFound",
        message: format!("The security group '{id}' does not exist"),
    })
}

const RULE_FILTERS: &[&str] = &["group-id", "security-group-rule-id", "tag-key"];

fn describe_security_group_rules(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let wanted = ids(f, "SecurityGroupRuleId", warden_network::check_rule_id)?;
    let filters = filters(f, RULE_FILTERS, "DescribeSecurityGroupRules")?;
    let network = cx.network();
    let all: Vec<(String, Direction, SgRule)> = network
        .security_groups()
        .into_iter()
        .flat_map(|g| {
            let id = g.id.clone();
            g.egress
                .into_iter()
                .map(|r| (Direction::Egress, r))
                .chain(g.ingress.into_iter().map(|r| (Direction::Ingress, r)))
                .map(move |(d, r)| (id.clone(), d, r))
                .collect::<Vec<_>>()
        })
        .collect();
    let all = select(
        all,
        &wanted,
        |(_, _, r)| &r.id,
        |id| {
            network_error(NetworkError::NotFound {
                code: "InvalidSecurityGroupRuleId.NotFound",
                message: format!("The security group rule ID '{id}' does not exist"),
            })
        },
    )?;
    let kept: Vec<(String, Direction, SgRule)> = all
        .into_iter()
        .filter(|(group, _, r)| {
            passes(&filters, &[], |name| match name {
                "group-id" => vec![group.clone()],
                "security-group-rule-id" => vec![r.id.clone()],
                _ => Vec::new(),
            })
        })
        .collect();
    let (rules, next) = page(f, kept, !wanted.is_empty())?;
    cx.ready()?;
    let mut x = Xml::default();
    x.open("securityGroupRuleSet");
    for (group, direction, rule) in &rules {
        x.rule(network, group, *direction, rule);
    }
    x.close("securityGroupRuleSet");
    x.opt("nextToken", next.as_deref());
    Ok(x)
}

// ---- rules ----

#[derive(Clone, Copy, PartialEq)]
enum Change {
    Authorize,
    Revoke,
}

/// `Authorize*` and `Revoke*`, both directions.
fn change_rules(
    cx: &Cx<'_>,
    f: &Fields<'_>,
    direction: Direction,
    change: Change,
) -> Result<Xml, ApiError> {
    let legacy = ["IpProtocol", "FromPort", "ToPort", "CidrIp"];
    f.refuse(
        &["GroupName"],
        "names identify groups of the default VPC, which Warden does not have; give GroupId",
    )?;
    f.refuse(
        &["SourceSecurityGroupName", "SourceSecurityGroupOwnerId"],
        "name the source group by id, in IpPermissions.N.Groups.M.GroupId",
    )?;
    if direction == Direction::Egress {
        f.refuse(&legacy, "EC2 takes egress rules in IpPermissions only")?;
    }
    if change == Change::Authorize {
        f.refuse(
            &["TagSpecification"],
            "Warden does not tag security group rules",
        )?;
    }
    let group_id = f.required("GroupId")?;
    warden_network::check_group_id(group_id).map_err(network_error)?;
    let group = cx.network().security_group(group_id);
    let by_id = if change == Change::Revoke {
        f.strings("SecurityGroupRuleId")?
    } else {
        Vec::new()
    };
    let mut specs = Vec::new();
    for perm in f.structs("IpPermissions")? {
        specs.extend(permission(cx, &perm, group.as_ref())?);
    }
    let legacy_given = legacy.iter().any(|n| f.has(n));
    if legacy_given {
        if !specs.is_empty() || !by_id.is_empty() {
            return Err(bad(
                "InvalidParameterCombination",
                "Give the rule either in IpPermissions or in IpProtocol, FromPort, ToPort and CidrIp, not both",
            ));
        }
        let protocol = IpProtocol::parse(f.required("IpProtocol")?).map_err(network_error)?;
        let cidr = warden_network::rule_ipv4(f.required("CidrIp")?).map_err(network_error)?;
        specs.push(
            RuleSpec::new(
                protocol,
                f.int("FromPort")?,
                f.int("ToPort")?,
                Peer::V4(cidr),
                None,
            )
            .map_err(network_error)?,
        );
    }
    if !by_id.is_empty() && !specs.is_empty() {
        return Err(bad(
            "InvalidParameterCombination",
            "Give either SecurityGroupRuleIds or IpPermissions, not both",
        ));
    }
    if specs.is_empty() && by_id.is_empty() {
        return Err(missing(if change == Change::Revoke {
            "IpPermissions or SecurityGroupRuleId"
        } else {
            "IpPermissions"
        }));
    }
    cx.ready()?;
    let network = cx.network();
    let mut x = Xml::default();
    x.leaf("return", "true");
    match change {
        Change::Authorize => {
            let added = network
                .authorize(group_id, direction, specs)
                .map_err(network_error)?;
            x.open("securityGroupRuleSet");
            for rule in &added {
                x.rule(network, group_id, direction, rule);
            }
            x.close("securityGroupRuleSet");
        }
        Change::Revoke => {
            let removed = if by_id.is_empty() {
                network.revoke(group_id, direction, specs)
            } else {
                let ids: Vec<String> = by_id.iter().map(|s| (*s).to_owned()).collect();
                network.revoke_rules(group_id, direction, &ids)
            }
            .map_err(network_error)?;
            x.open("revokedSecurityGroupRuleSet");
            for rule in &removed {
                x.open("item");
                x.leaf("securityGroupRuleId", &rule.id);
                x.leaf("groupId", group_id);
                x.leaf("isEgress", bool_text(direction.is_egress()));
                x.rule_body(rule);
                match &rule.peer {
                    Peer::Group(g) => x.leaf("referencedGroupId", g),
                    Peer::V4(n) => x.leaf("cidrIpv4", &n.to_string()),
                    Peer::V6(n) => x.leaf("cidrIpv6", &n.to_string()),
                }
                x.opt("description", rule.description.as_deref());
                x.close("item");
            }
            x.close("revokedSecurityGroupRuleSet");
        }
    }
    Ok(x)
}

/// One `IpPermissions.N`: a rule for each range and group it lists.
fn permission(
    cx: &Cx<'_>,
    perm: &Fields<'_>,
    group: Option<&SecurityGroup>,
) -> Result<Vec<RuleSpec>, ApiError> {
    perm.refuse(&["PrefixListIds"], "Warden has no managed prefix lists")?;
    let protocol = IpProtocol::parse(perm.required("IpProtocol")?).map_err(network_error)?;
    let from = perm.int("FromPort")?;
    let to = perm.int("ToPort")?;
    let spec = |peer: Peer, description: Option<&str>| {
        RuleSpec::new(protocol, from, to, peer, description.map(str::to_owned))
            .map_err(network_error)
    };
    let mut out = Vec::new();
    for range in perm.structs("IpRanges")? {
        let cidr = warden_network::rule_ipv4(range.required("CidrIp")?).map_err(network_error)?;
        out.push(spec(Peer::V4(cidr), range.text("Description")?)?);
    }
    for range in perm.structs("Ipv6Ranges")? {
        let cidr = warden_network::rule_ipv6(range.required("CidrIpv6")?).map_err(network_error)?;
        out.push(spec(Peer::V6(cidr), range.text("Description")?)?);
    }
    for pair in perm.structs("Groups")? {
        pair.refuse(
            &["GroupName"],
            "outside a default VPC EC2 names the other group by GroupId",
        )?;
        pair.refuse(
            &["VpcPeeringConnectionId", "PeeringStatus"],
            "Warden has no VPC peering",
        )?;
        let id = pair.required("GroupId")?;
        if let Some(user) = pair.text("UserId")? {
            if user != cx.network().account() {
                return Err(unsupported(
                    &pair.path_of("UserId"),
                    "groups of other accounts cannot be named",
                ));
            }
        }
        if let (Some(vpc), Some(group)) = (pair.text("VpcId")?, group) {
            if vpc != group.vpc_id {
                return Err(unsupported(
                    &pair.path_of("VpcId"),
                    "the other group must be in the same VPC (Warden has no VPC peering)",
                ));
            }
        }
        out.push(spec(Peer::Group(id.to_owned()), pair.text("Description")?)?);
    }
    if out.is_empty() {
        return Err(missing(&format!(
            "{0}.IpRanges, {0}.Ipv6Ranges or {0}.Groups",
            perm.path
        )));
    }
    Ok(out)
}

// ---- tags ----

fn create_tags(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let resources: Vec<String> = f
        .strings("ResourceId")?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let tags = tag_list(f, "Tag")?;
    if tags.is_empty() {
        return Err(missing("Tag"));
    }
    warden_network::check_tags(&tags).map_err(network_error)?;
    cx.ready()?;
    cx.network()
        .create_tags(&resources, &tags)
        .map_err(network_error)?;
    let mut x = Xml::default();
    x.leaf("return", "true");
    Ok(x)
}

fn delete_tags(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let resources: Vec<String> = f
        .strings("ResourceId")?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let tags = f
        .structs("Tag")?
        .into_iter()
        .map(|t| {
            Ok((
                t.required("Key")?.to_owned(),
                t.string("Value")?.map(str::to_owned),
            ))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    cx.ready()?;
    cx.network()
        .delete_tags(&resources, &tags)
        .map_err(network_error)?;
    let mut x = Xml::default();
    x.leaf("return", "true");
    Ok(x)
}

const TAG_FILTERS: &[&str] = &["key", "value", "resource-id", "resource-type"];

fn describe_tags(cx: &Cx<'_>, f: &Fields<'_>) -> Result<Xml, ApiError> {
    let filters = filters(f, TAG_FILTERS, "DescribeTags")?;
    if let Some(tag) = filters.iter().find(|t| t.name.starts_with("tag:")) {
        return Err(invalid_value(format!(
            "The filter '{}' is invalid for DescribeTags: use key and value",
            tag.name
        )));
    }
    let kept: Vec<TagDescription> = cx
        .network()
        .tags()
        .into_iter()
        .filter(|t| {
            passes(&filters, &[], |name| match name {
                "key" => vec![t.key.clone()],
                "value" => vec![t.value.clone()],
                "resource-id" => vec![t.resource_id.clone()],
                "resource-type" => vec![t.resource_kind.as_str().to_owned()],
                _ => Vec::new(),
            })
        })
        .collect();
    let (tags, next) = page(f, kept, false)?;
    cx.ready()?;
    let mut x = Xml::default();
    x.open("tagSet");
    for t in &tags {
        x.open("item");
        x.leaf("resourceId", &t.resource_id);
        x.leaf("resourceType", t.resource_kind.as_str());
        x.leaf("key", &t.key);
        x.leaf("value", &t.value);
        x.close("item");
    }
    x.close("tagSet");
    x.opt("nextToken", next.as_deref());
    Ok(x)
}

// ---- XML ----

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Escapes text for an XML element; characters XML 1.0 cannot carry at all (control
/// characters other than tab and line ends) become U+FFFD.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A minimal XML writer: element text is always escaped.
#[derive(Default)]
struct Xml(String);

impl Xml {
    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }
    fn open(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
    }
    fn close(&mut self, tag: &str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
    fn leaf(&mut self, tag: &str, text: &str) {
        self.open(tag);
        self.0.push_str(&escape(text));
        self.close(tag);
    }
    fn opt(&mut self, tag: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(tag, t);
        }
    }
    /// `tagSet`, left out when there are no tags (as EC2 does).
    fn tags(&mut self, tags: &[(String, String)]) {
        if tags.is_empty() {
            return;
        }
        self.open("tagSet");
        for (k, v) in tags {
            self.open("item");
            self.leaf("key", k);
            self.leaf("value", v);
            self.close("item");
        }
        self.close("tagSet");
    }

    /// `ipProtocol`, and the ports where the protocol has them.
    fn rule_body(&mut self, rule: &SgRule) {
        self.leaf("ipProtocol", rule.protocol.as_str());
        self.leaf("fromPort", &rule.from_port.to_string());
        self.leaf("toPort", &rule.to_port.to_string());
    }

    /// One `SecurityGroupRule` item.
    fn rule(&mut self, network: &Network, group: &str, direction: Direction, rule: &SgRule) {
        self.open("item");
        self.leaf("securityGroupRuleId", &rule.id);
        self.leaf("groupId", group);
        self.leaf("groupOwnerId", network.account());
        self.leaf("isEgress", bool_text(direction.is_egress()));
        self.rule_body(rule);
        match &rule.peer {
            Peer::V4(n) => self.leaf("cidrIpv4", &n.to_string()),
            Peer::V6(n) => self.leaf("cidrIpv6", &n.to_string()),
            Peer::Group(g) => {
                self.open("referencedGroupInfo");
                self.leaf("groupId", g);
                self.leaf("userId", network.account());
                self.close("referencedGroupInfo");
            }
        }
        self.opt("description", rule.description.as_deref());
        self.leaf(
            "securityGroupRuleArn",
            &network.arn("security-group-rule", &rule.id),
        );
        self.close("item");
    }

    /// `ipPermissions` / `ipPermissionsEgress`: the rules grouped by protocol and ports,
    /// each group listing its ranges and groups, in the order the rules were added.
    fn permissions(&mut self, tag: &str, account: &str, rules: &[SgRule]) {
        let mut groups: Vec<(IpProtocol, i32, i32, Vec<&SgRule>)> = Vec::new();
        for r in rules {
            match groups
                .iter_mut()
                .find(|(p, f, t, _)| *p == r.protocol && *f == r.from_port && *t == r.to_port)
            {
                Some((_, _, _, list)) => list.push(r),
                None => groups.push((r.protocol, r.from_port, r.to_port, vec![r])),
            }
        }
        self.open(tag);
        for (protocol, from, to, list) in groups {
            self.open("item");
            self.leaf("ipProtocol", protocol.as_str());
            if protocol != IpProtocol::All {
                self.leaf("fromPort", &from.to_string());
                self.leaf("toPort", &to.to_string());
            }
            self.open("groups");
            for r in &list {
                if let Peer::Group(g) = &r.peer {
                    self.open("item");
                    self.leaf("userId", account);
                    self.leaf("groupId", g);
                    self.opt("description", r.description.as_deref());
                    self.close("item");
                }
            }
            self.close("groups");
            self.open("ipRanges");
            for r in &list {
                if let Peer::V4(n) = &r.peer {
                    self.open("item");
                    self.leaf("cidrIp", &n.to_string());
                    self.opt("description", r.description.as_deref());
                    self.close("item");
                }
            }
            self.close("ipRanges");
            self.open("ipv6Ranges");
            for r in &list {
                if let Peer::V6(n) = &r.peer {
                    self.open("item");
                    self.leaf("cidrIpv6", &n.to_string());
                    self.opt("description", r.description.as_deref());
                    self.close("item");
                }
            }
            self.close("ipv6Ranges");
            self.open("prefixListIds");
            self.close("prefixListIds");
            self.close("item");
        }
        self.close(tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Form::parse(&params).unwrap()
    }

    #[test]
    fn the_form_reads_nested_lists_in_index_order_and_refuses_the_rest() {
        let f = form(&[
            ("Action", "AuthorizeSecurityGroupEgress"),
            ("IpPermissions.2.IpProtocol", "udp"),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.IpRanges.10.CidrIp", "10.0.0.0/8"),
            ("IpPermissions.1.IpRanges.2.CidrIp", "10.1.0.0/16"),
            ("IpPermissions.1.Bogus", "x"),
        ]);
        let root = f.root();
        assert_eq!(
            root.required("Action").unwrap(),
            "AuthorizeSecurityGroupEgress"
        );
        let perms = root.structs("IpPermissions").unwrap();
        assert_eq!(perms.len(), 2);
        assert_eq!(perms[0].required("IpProtocol").unwrap(), "tcp");
        assert_eq!(perms[1].required("IpProtocol").unwrap(), "udp");
        let ranges = perms[0].structs("IpRanges").unwrap();
        let cidrs: Vec<&str> = ranges
            .iter()
            .map(|r| r.required("CidrIp").unwrap())
            .collect();
        assert_eq!(cidrs, ["10.1.0.0/16", "10.0.0.0/8"]);
        let e = f.finish().unwrap_err();
        assert_eq!(e.code, "UnknownParameter");
        assert!(e.message.contains("IpPermissions.1.Bogus"), "{}", e.message);
    }

    proptest::proptest! {
        /// Whatever names and values a request's form carries, the parser and every
        /// reader either read them or refuse them: nothing panics.
        #[test]
        fn arbitrary_forms_never_panic(
            pairs in proptest::collection::vec(
                ("[A-Za-z]{1,3}(\\.[0-9A-Za-z]{0,3}){0,3}|.{0,12}", ".{0,12}"),
                0..12,
            ),
        ) {
            let params: Vec<(String, String)> = pairs;
            if let Ok(f) = Form::parse(&params) {
                let root = f.root();
                for (name, _) in &params {
                    let top = name.split('.').next().unwrap_or("");
                    let _ = root.string(top);
                    let _ = root.int(top);
                    let _ = root.flag(top);
                    let _ = root.strings(top);
                    if let Ok(items) = root.structs(top) {
                        for item in items {
                            let _ = item.string("Name");
                            let _ = item.strings("Value");
                        }
                    }
                }
                let _ = f.finish();
            }
        }
    }

    #[test]
    fn malformed_forms_are_refused() {
        for pairs in [
            vec![("A", "1"), ("A", "2")],
            vec![("A", "1"), ("A.B", "2")],
            vec![("A..B", "1")],
        ] {
            let params: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            assert!(Form::parse(&params).is_err(), "{pairs:?}");
        }
        let f = form(&[("VpcId.01", "vpc-1"), ("Filter.x.Name", "n")]);
        assert_eq!(
            f.root().strings("VpcId").unwrap_err().code,
            "UnknownParameter"
        );
        assert_eq!(
            f.root().structs("Filter").err().unwrap().code,
            "UnknownParameter"
        );
        let f = form(&[("DryRun", "maybe"), ("FromPort", "x")]);
        assert!(f.root().flag("DryRun").is_err());
        assert!(f.root().int("FromPort").is_err());
    }

    #[test]
    fn the_door_claims_requests_signed_for_ec2_at_the_root() {
        let parts = |method: &str, path: &str| {
            http::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let root = parts("POST", "/");
        let claims = |p: &Parts, claimed: Option<&str>| Ec2Door.claims(Head { parts: p, claimed });
        assert!(claims(&root, Some("ec2")));
        assert!(claims(&parts("GET", "/"), Some("ec2")));
        assert!(!claims(&root, Some("iam")));
        assert!(
            !claims(&root, None),
            "unsigned requests at / are IAM's door's"
        );
        assert!(!claims(
            &parts("POST", "/2015-03-31/functions"),
            Some("ec2")
        ));
        assert!(!claims(&parts("DELETE", "/"), Some("ec2")));
        assert_eq!(
            Ec2Door
                .service(Head {
                    parts: &root,
                    claimed: Some("ec2")
                })
                .protocol(),
            crate::error::Protocol::Ec2
        );
    }

    #[test]
    fn errors_render_with_ec2s_codes_and_statuses() {
        use http_body_util::BodyExt;
        let render = |e: ApiError| {
            let (parts, body) = e.render(crate::error::Protocol::Ec2, "req-9").into_parts();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let bytes = rt.block_on(body.collect()).unwrap().to_bytes();
            (parts.status, String::from_utf8(bytes.to_vec()).unwrap())
        };
        let (status, text) = render(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "User: u is not authorized to perform: ec2:CreateVpc",
        ));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            text.contains("<Code>UnauthorizedOperation</Code>")
                && text.ends_with("<RequestID>req-9</RequestID></Response>"),
            "{text}"
        );
        let (status, text) = render(ApiError::internal("disk on fire"));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            text.contains("<Code>InternalError</Code>") && !text.contains("fire"),
            "{text}"
        );
        let (status, text) = render(network_error(NetworkError::DependencyViolation(
            "in use".into(),
        )));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("<Code>DependencyViolation</Code>"), "{text}");
    }

    #[test]
    fn wildcards_match_as_ec2_filters_do() {
        for (p, t, ok) in [
            ("vpc-*", "vpc-0123", true),
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*b*", "abc", true),
            ("a*c", "abbbd", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("10.0.*.0/24", "10.0.3.0/24", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(wildcard(p, t), ok, "{p} {t}");
        }
    }

    #[test]
    fn pages_follow_their_token() {
        let f = form(&[("MaxResults", "5")]);
        let (first, next) = page(&f.root(), (0..12).collect::<Vec<_>>(), false).unwrap();
        assert_eq!(first, [0, 1, 2, 3, 4]);
        let token = next.unwrap();
        let f = form(&[("MaxResults", "5"), ("NextToken", &token)]);
        let (second, next) = page(&f.root(), (0..12).collect::<Vec<_>>(), false).unwrap();
        assert_eq!(second, [5, 6, 7, 8, 9]);
        let f = form(&[("MaxResults", "5"), ("NextToken", &next.unwrap())]);
        let (third, next) = page(&f.root(), (0..12).collect::<Vec<_>>(), false).unwrap();
        assert_eq!((third, next), (vec![10, 11], None));
        for bad in [vec![("MaxResults", "4")], vec![("NextToken", "nope")]] {
            let f = form(&bad);
            assert!(page(&f.root(), vec![1], false).is_err(), "{bad:?}");
        }
        let f = form(&[("MaxResults", "5")]);
        assert_eq!(
            page(&f.root(), vec![1], true).unwrap_err().code,
            "InvalidParameterCombination"
        );
    }

    #[test]
    fn errors_are_ec2_documents_and_text_is_escaped() {
        assert_eq!(
            error_document("InvalidVpcID.NotFound", "The vpc ID 'x<&>' does not exist", "r-1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>The vpc ID &apos;x&lt;&amp;&gt;&apos; does not exist</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
        );
        assert_eq!(escape("a\u{1}b\tc"), "a\u{fffd}b\tc");
    }

    #[test]
    fn every_action_has_a_target_even_for_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let network = Network::open(dir.path(), "123456789012", "us-east-1").unwrap();
        for action in ACTIONS {
            let targets = (action.targets)(&network, &Raw(&[]));
            assert!(!targets.is_empty(), "{}", action.name);
            assert!(targets[0].action.starts_with("ec2:"));
        }
        let params = vec![
            ("VpcId".to_owned(), "vpc-0123456789abcdef0".to_owned()),
            (
                "TagSpecification.1.ResourceType".to_owned(),
                "subnet".to_owned(),
            ),
        ];
        let targets = create_subnet_targets(&network, &Raw(&params));
        let named: Vec<(&str, &str)> = targets
            .iter()
            .map(|t| (t.action.as_str(), t.resource.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "ec2:CreateSubnet",
                    "arn:aws:ec2:us-east-1:123456789012:subnet/*"
                ),
                (
                    "ec2:CreateSubnet",
                    "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0123456789abcdef0"
                ),
                (
                    "ec2:CreateTags",
                    "arn:aws:ec2:us-east-1:123456789012:subnet/*"
                ),
            ]
        );
        let params = vec![
            ("ResourceId.1".to_owned(), "sg-0123456789abcdef0".to_owned()),
            ("ResourceId.2".to_owned(), "vpc-bad".to_owned()),
        ];
        let targets = tag_targets(&network, "CreateTags", &Raw(&params));
        let resources: Vec<&str> = targets.iter().map(|t| t.resource.as_str()).collect();
        assert_eq!(
            resources,
            [
                "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123456789abcdef0",
                "arn:aws:ec2:us-east-1:123456789012:vpc/*"
            ]
        );
    }
}
