//! AWS SAM and CloudFormation templates, scanned offline with the same controls as the live
//! account.
//!
//! A template (YAML with short-form intrinsics such as `!Ref` and `!GetAtt`, or JSON) is
//! read into [`Facts`]: functions (`AWS::Lambda::Function`, `AWS::Serverless::Function`
//! with `Globals.Function` merged in), their roles (`AWS::IAM::Role`, `AWS::IAM::Policy`,
//! `AWS::IAM::ManagedPolicy`, SAM's `Policies` with inline statements, AWS managed policy
//! names and SAM policy templates expanded), resource policies (`AWS::Lambda::Permission`,
//! `AWS::Lambda::LayerVersionPermission`), URLs (`AWS::Lambda::Url`, SAM's
//! `FunctionUrlConfig`), keys (`AWS::KMS::Key`), code signing
//! (`AWS::Lambda::CodeSigningConfig`, `CodeSigningConfigArn`), security groups and alarms.
//! Resources are named by their logical ids (`template.yaml#Orders`).
//!
//! What a template cannot say stays unknown, and the controls that need it stay quiet: the
//! calls a role made, key ages, vulnerability matches, input contracts (a Warden setting),
//! and alarms defined elsewhere (only a template that defines an alarm is checked for
//! missing ones). Intrinsics that cannot be resolved offline (`!Sub` of an unknown value,
//! `!ImportValue`) are opaque: never taken for a wildcard, never for a secret.
//!
//! Bounds: a template over [`MAX_TEMPLATE_BYTES`] is refused, as are YAML alias expansions
//! past the parser's own limits and nesting past [`MAX_DEPTH`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::{evaluate, Facts, Failure, FunctionFacts};

/// The largest template read (CloudFormation's own limit for a template in S3).
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

/// The deepest nesting read.
pub const MAX_DEPTH: usize = 64;

/// Why a template could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Larger than [`MAX_TEMPLATE_BYTES`].
    #[error("the template is {0} bytes, more than the {MAX_TEMPLATE_BYTES} scanned")]
    TooLarge(usize),
    /// Not YAML (nor JSON).
    #[error("the template does not parse: {0}")]
    Parse(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("the template nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// No `Resources` mapping.
    #[error("the template has no Resources")]
    NoResources,
}

/// A scan's result: the failures, and what was read.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// The file, as the findings name it.
    pub file: String,
    /// Resources read, by type.
    pub resources: BTreeMap<String, usize>,
    /// The failures.
    pub findings: Vec<Failure>,
}

/// Scans `text`, the template in `file`.
pub fn scan(text: &str, file: &str) -> Result<ScanReport, Error> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(Error::TooLarge(text.len()));
    }
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| Error::Parse(e.to_string()))?;
    let doc = to_json(yaml, 0)?;
    let facts = Reader::new(&doc, file)?.read();
    let mut resources = BTreeMap::new();
    if let Some(Value::Object(r)) = doc.get("Resources") {
        for v in r.values() {
            if let Some(t) = v.get("Type").and_then(Value::as_str) {
                *resources.entry(t.to_owned()).or_insert(0) += 1;
            }
        }
    }
    // A template does not know the account; the time-based controls never fire on it.
    let findings = evaluate(&facts.0, "000000000000", 0, u32::MAX);
    Ok(ScanReport {
        file: file.to_owned(),
        resources,
        findings,
    })
}

/// YAML to JSON, short-form intrinsics to their long form (`!Ref X` → `{"Ref": "X"}`,
/// `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` → `{"Fn::Sub": s}`).
fn to_json(v: serde_yaml::Value, depth: usize) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    Ok(match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(|i| to_json(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    other => serde_yaml::to_string(&other)
                        .map_err(|e| Error::Parse(e.to_string()))?
                        .trim()
                        .to_owned(),
                };
                out.insert(key, to_json(v, depth + 1)?);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(t.value, depth + 1)?;
            match name {
                "Ref" => json!({ "Ref": value }),
                "GetAtt" => match value {
                    Value::String(s) => match s.split_once('.') {
                        Some((a, b)) => json!({ "Fn::GetAtt": [a, b] }),
                        None => json!({ "Fn::GetAtt": [s] }),
                    },
                    other => json!({ "Fn::GetAtt": other }),
                },
                "Condition" => json!({ "Condition": value }),
                other => json!({ format!("Fn::{other}"): value }),
            }
        }
    })
}

/// The logical id an intrinsic refers to: `{"Ref": X}` or `{"Fn::GetAtt": [X, ...]}`.
fn referent(v: &Value) -> Option<&str> {
    if let Some(r) = v.get("Ref").and_then(Value::as_str) {
        return Some(r);
    }
    v.get("Fn::GetAtt")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
}

/// Whether `v` is an intrinsic (a value only known when the stack is made).
fn is_intrinsic(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.keys().all(|k| k == "Ref" || k.starts_with("Fn::")))
}

struct Reader<'a> {
    file: &'a str,
    resources: &'a Map<String, Value>,
    parameters: BTreeMap<String, Value>,
    globals: Map<String, Value>,
}

/// The facts, and nothing else (a newtype so that the reader's result cannot be mixed up
/// with the live account's).
struct TemplateFacts(Facts);

/// What SAM's policy templates grant, by name: actions, and the ARN pattern of the
/// resource, with `{}` for the template's main parameter (`TableName`, `BucketName`, ...).
const POLICY_TEMPLATES: &[(&str, &[&str], &str)] = &[
    (
        "DynamoDBCrudPolicy",
        &[
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ],
        "arn:aws:dynamodb:*:*:table/{}",
    ),
    (
        "DynamoDBReadPolicy",
        &[
            "dynamodb:GetItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
        ],
        "arn:aws:dynamodb:*:*:table/{}",
    ),
    (
        "DynamoDBWritePolicy",
        &[
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
        ],
        "arn:aws:dynamodb:*:*:table/{}",
    ),
    (
        "S3ReadPolicy",
        &[
            "s3:GetObject",
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:GetObjectVersion",
            "s3:GetLifecycleConfiguration",
        ],
        "arn:aws:s3:::{}",
    ),
    (
        "S3WritePolicy",
        &[
            "s3:PutObject",
            "s3:PutObjectAcl",
            "s3:PutLifecycleConfiguration",
        ],
        "arn:aws:s3:::{}",
    ),
    (
        "S3CrudPolicy",
        &[
            "s3:GetObject",
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:GetObjectVersion",
            "s3:PutObject",
            "s3:PutObjectAcl",
            "s3:GetLifecycleConfiguration",
            "s3:PutLifecycleConfiguration",
            "s3:DeleteObject",
        ],
        "arn:aws:s3:::{}",
    ),
    (
        "SQSPollerPolicy",
        &[
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
        ],
        "arn:aws:sqs:*:*:{}",
    ),
    (
        "SQSSendMessagePolicy",
        &["sqs:SendMessage*"],
        "arn:aws:sqs:*:*:{}",
    ),
    (
        "SNSPublishMessagePolicy",
        &["sns:Publish"],
        "arn:aws:sns:*:*:{}",
    ),
    (
        "LambdaInvokePolicy",
        &["lambda:InvokeFunction"],
        "arn:aws:lambda:*:*:function:{}*",
    ),
    (
        "KMSDecryptPolicy",
        &["kms:Decrypt"],
        "arn:aws:kms:*:*:key/{}",
    ),
    ("SecretsManagerReadWrite", &["secretsmanager:*"], "*"),
    (
        "AWSSecretsManagerGetSecretValuePolicy",
        &["secretsmanager:GetSecretValue"],
        "{}",
    ),
    (
        "CloudWatchPutMetricPolicy",
        &["cloudwatch:PutMetricData"],
        "*",
    ),
    (
        "VPCAccessPolicy",
        &[
            "ec2:CreateNetworkInterface",
            "ec2:DeleteNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DetachNetworkInterface",
        ],
        "*",
    ),
];

/// What the AWS managed policies a template names commonly grant: the ones that matter to
/// the controls. Any other managed policy is left out (its contents are not known offline).
fn managed_policy(name: &str) -> Option<Value> {
    let short = name.rsplit('/').next().unwrap_or(name);
    let statement = |action: &str, resource: &str| json!({"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]});
    match short {
        "AdministratorAccess" => Some(statement("*", "*")),
        "PowerUserAccess" => Some(
            json!({"Statement": [{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"], "Resource": "*"}]}),
        ),
        "AmazonS3FullAccess" => Some(statement("s3:*", "*")),
        "AmazonDynamoDBFullAccess" => Some(statement("dynamodb:*", "*")),
        "AWSLambda_FullAccess" => Some(statement("lambda:*", "*")),
        "AWSLambdaBasicExecutionRole" => Some(
            json!({"Statement": [{"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}]}),
        ),
        _ => None,
    }
}

impl<'a> Reader<'a> {
    fn new(doc: &'a Value, file: &'a str) -> Result<Self, Error> {
        let resources = doc
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or(Error::NoResources)?;
        let parameters = doc
            .get("Parameters")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| v.get("Default").map(|d| (k.clone(), d.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let globals = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Reader {
            file,
            resources,
            parameters,
            globals,
        })
    }

    fn id(&self, logical: &str) -> String {
        format!("{}#{logical}", self.file)
    }

    fn of_type(&self, kind: &str) -> impl Iterator<Item = (&'a String, &'a Value)> + '_ {
        let kind = kind.to_owned();
        self.resources
            .iter()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind.as_str()))
    }

    /// A plain string value: a literal, or a `Ref` to a parameter with a default.
    fn text(&self, v: Option<&Value>) -> Option<String> {
        let v = v?;
        if let Some(s) = v.as_str() {
            return Some(s.to_owned());
        }
        if let Some(r) = v.get("Ref").and_then(Value::as_str) {
            return self
                .parameters
                .get(r)
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        v.as_i64().map(|n| n.to_string())
    }

    /// The function a permission or URL names: its logical id (a `Ref` or `GetAtt`, or a
    /// literal name equal to a logical id).
    fn function_of(&self, v: Option<&Value>) -> Option<String> {
        let v = v?;
        if let Some(r) = referent(v) {
            return Some(r.to_owned());
        }
        v.as_str()
            .map(|s| s.rsplit(':').next().unwrap_or(s).to_owned())
    }

    fn read(&self) -> TemplateFacts {
        let mut facts = Facts::default();
        // Roles: their inline policies and managed policies.
        let mut roles: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (name, r) in self.of_type("AWS::IAM::Role") {
            let p = r.get("Properties").cloned().unwrap_or(Value::Null);
            let mut docs: Vec<Value> = p
                .get("Policies")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("PolicyDocument").cloned())
                        .collect()
                })
                .unwrap_or_default();
            for arn in p
                .get("ManagedPolicyArns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(doc) = self.text(Some(arn)).and_then(|a| managed_policy(&a)) {
                    docs.push(doc);
                }
            }
            roles.insert(name.clone(), docs);
        }
        for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
            for (_, r) in self.of_type(kind) {
                let p = r.get("Properties").cloned().unwrap_or(Value::Null);
                let Some(doc) = p.get("PolicyDocument").cloned() else {
                    continue;
                };
                for role in p
                    .get("Roles")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(role) = referent(role) {
                        roles.entry(role.to_owned()).or_default().push(doc.clone());
                    }
                }
            }
        }
        // Security groups that allow all traffic anywhere (a group with no egress rules
        // keeps EC2's default, which is exactly that).
        let mut open_groups = BTreeSet::new();
        for (name, r) in self.of_type("AWS::EC2::SecurityGroup") {
            let egress = r
                .get("Properties")
                .and_then(|p| p.get("SecurityGroupEgress"));
            let open = match egress.and_then(Value::as_array) {
                None => true,
                Some(rules) => rules.iter().any(|rule| {
                    let all = matches!(
                        rule.get("IpProtocol")
                            .map(|v| v.to_string().trim_matches('"').to_owned())
                            .as_deref(),
                        Some("-1") | Some("all")
                    );
                    let anywhere = rule.get("CidrIp").and_then(Value::as_str) == Some("0.0.0.0/0")
                        || rule.get("CidrIpv6").and_then(Value::as_str) == Some("::/0");
                    all && anywhere
                }),
            };
            if open {
                open_groups.insert(name.clone());
            }
        }
        // Functions' resource policies, from the permissions naming them.
        let mut policies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (name, r) in self.of_type("AWS::Lambda::Permission") {
            let p = r.get("Properties").cloned().unwrap_or(Value::Null);
            let Some(function) = self.function_of(p.get("FunctionName")) else {
                continue;
            };
            let principal = p.get("Principal").cloned().unwrap_or(Value::Null);
            let principal = match principal.as_str() {
                Some(s) if s.ends_with(".amazonaws.com") => json!({ "Service": s }),
                Some(s) => json!({ "AWS": s }),
                None => json!({ "AWS": "opaque" }),
            };
            let mut conditions = Map::new();
            if p.get("SourceAccount").is_some() {
                conditions.insert("StringEquals".into(), json!({ "AWS:SourceAccount": "set" }));
            }
            if p.get("SourceArn").is_some() {
                conditions.insert("ArnLike".into(), json!({ "AWS:SourceArn": "set" }));
            }
            if p.get("PrincipalOrgID").is_some() {
                conditions.insert(
                    "StringEquals".into(),
                    json!({ "aws:PrincipalOrgID": "set" }),
                );
            }
            let mut statement = json!({
                "Sid": name, "Effect": "Allow", "Principal": principal,
                "Action": p.get("Action").cloned().unwrap_or(Value::Null),
            });
            if !conditions.is_empty() {
                statement["Condition"] = Value::Object(conditions);
            }
            policies.entry(function).or_default().push(statement);
        }
        for (name, r) in self.of_type("AWS::Lambda::LayerVersionPermission") {
            let p = r.get("Properties").cloned().unwrap_or(Value::Null);
            let principal = self
                .text(p.get("Principal"))
                .unwrap_or_else(|| "opaque".into());
            let mut statement = json!({"Sid": name, "Effect": "Allow", "Principal": {"AWS": principal}, "Action": "lambda:GetLayerVersion"});
            if p.get("OrganizationId").is_some() {
                statement["Condition"] = json!({"StringEquals": {"aws:PrincipalOrgID": "set"}});
            }
            facts
                .layer_policies
                .push((self.id(name), json!({ "Statement": [statement] })));
        }
        let mut public_urls = BTreeMap::new();
        for (name, r) in self.of_type("AWS::Lambda::Url") {
            let p = r.get("Properties").cloned().unwrap_or(Value::Null);
            if self.text(p.get("AuthType")).as_deref() == Some("NONE") {
                if let Some(f) = self.function_of(p.get("TargetFunctionArn")) {
                    public_urls.insert(f, self.id(name));
                }
            }
        }
        let mut alarmed = BTreeSet::new();
        for (_, r) in self.of_type("AWS::CloudWatch::Alarm") {
            facts.alarms_known = true;
            let p = r.get("Properties").cloned().unwrap_or(Value::Null);
            if self.text(p.get("MetricName")).as_deref() != Some("Errors") {
                continue;
            }
            for d in p
                .get("Dimensions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if self.text(d.get("Name")).as_deref() == Some("FunctionName") {
                    if let Some(f) = self.function_of(d.get("Value")) {
                        alarmed.insert(f);
                    }
                }
            }
        }
        facts.errors_alarmed = alarmed;
        for (name, r) in self.of_type("AWS::KMS::Key") {
            let p = r.get("Properties").cloned().unwrap_or(Value::Null);
            let symmetric = matches!(
                self.text(p.get("KeySpec")).as_deref(),
                None | Some("SYMMETRIC_DEFAULT")
            );
            if symmetric {
                let rotates = p.get("EnableKeyRotation").and_then(Value::as_bool) == Some(true);
                facts.keys.push((self.id(name), rotates));
            }
        }
        // The functions.
        for kind in ["AWS::Lambda::Function", "AWS::Serverless::Function"] {
            let sam = kind == "AWS::Serverless::Function";
            for (name, r) in self.of_type(kind) {
                let mut p = r
                    .get("Properties")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if sam {
                    for (k, v) in &self.globals {
                        p.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                let p = Value::Object(p);
                let mut environment = BTreeMap::new();
                for (k, v) in p
                    .get("Environment")
                    .and_then(|e| e.get("Variables"))
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    // Only literal values can be secrets in plain text; an intrinsic is a
                    // reference resolved at deploy time.
                    if !is_intrinsic(v) {
                        if let Some(text) = self.text(Some(v)) {
                            environment.insert(k.clone(), text);
                        }
                    } else {
                        environment.insert(k.clone(), String::new());
                    }
                }
                // The execution role: a role of this template, SAM's own role from
                // `Policies`, or one made elsewhere (its policies unknown).
                let role = match p.get("Role") {
                    Some(v) => referent(v)
                        .map(str::to_owned)
                        .or_else(|| self.text(Some(v))),
                    None if sam => {
                        let own = format!("{name}Role");
                        let docs = roles.entry(own.clone()).or_default();
                        for policy in p
                            .get("Policies")
                            .map(|v| match v {
                                Value::Array(a) => a.clone(),
                                other => vec![other.clone()],
                            })
                            .unwrap_or_default()
                        {
                            docs.extend(self.sam_policy(&policy));
                        }
                        Some(own)
                    }
                    None => None,
                };
                let url_resource = public_urls.get(name).cloned();
                let url_auth_none = url_resource.is_some()
                    || p.get("FunctionUrlConfig")
                        .and_then(|u| self.text(u.get("AuthType")))
                        .as_deref()
                        == Some("NONE");
                let open_egress = p
                    .get("VpcConfig")
                    .and_then(|v| v.get("SecurityGroupIds"))
                    .and_then(Value::as_array)
                    .is_some_and(|ids| {
                        ids.iter()
                            .filter_map(referent)
                            .any(|g| open_groups.contains(g))
                    });
                let policy = policies.get(name).map(|s| json!({ "Statement": s }));
                let runtime = self.text(p.get("Runtime")).unwrap_or_default();
                facts.functions.push(FunctionFacts {
                    name: name.clone(),
                    arn: self.id(name),
                    runtime,
                    role: format!("template:role/{}", role.clone().unwrap_or_default()),
                    environment: environment
                        .into_iter()
                        .filter(|(_, v)| !v.is_empty())
                        .collect(),
                    kms_key: p.get("KmsKeyArn").map(|v| v.to_string()),
                    policy,
                    url_auth_none,
                    url_resource,
                    // Input contracts are Warden's own; a template cannot have one.
                    has_contract: true,
                    open_egress,
                    vulnerable: 0,
                    code_signing: Some(p.get("CodeSigningConfigArn").is_some()),
                    concurrency_limited: Some(p.get("ReservedConcurrentExecutions").is_some()),
                    dead_letter: Some(
                        p.get("DeadLetterConfig").is_some() || p.get("DeadLetterQueue").is_some(),
                    ),
                    in_vpc: Some(p.get("VpcConfig").is_some()),
                });
                // The environment has variables whose values a template cannot show
                // (intrinsics): still an environment needing a key.
                if let Some(f) = facts.functions.last_mut() {
                    if f.environment.is_empty()
                        && p.get("Environment")
                            .and_then(|e| e.get("Variables"))
                            .and_then(Value::as_object)
                            .is_some_and(|m| !m.is_empty())
                    {
                        f.environment.insert("(reference)".into(), String::new());
                    }
                }
            }
        }
        for (name, docs) in roles {
            facts.roles.insert(name.clone(), (self.id(&name), 0, docs));
        }
        TemplateFacts(facts)
    }

    /// One entry of SAM's `Policies`: a managed policy name or ARN, a policy template, a
    /// policy document, or a list of statements.
    fn sam_policy(&self, entry: &Value) -> Vec<Value> {
        if let Some(name) = self.text(Some(entry)) {
            return managed_policy(&name).into_iter().collect();
        }
        let Some(map) = entry.as_object() else {
            return Vec::new();
        };
        if map.contains_key("Statement") {
            return vec![entry.clone()];
        }
        let mut out = Vec::new();
        for (template, params) in map {
            let Some((_, actions, pattern)) =
                POLICY_TEMPLATES.iter().find(|(n, _, _)| n == template)
            else {
                continue;
            };
            let param = params
                .as_object()
                .and_then(|m| m.values().next())
                .and_then(|v| {
                    self.text(Some(v))
                        .or_else(|| referent(v).map(str::to_owned))
                })
                .unwrap_or_else(|| "*".into());
            let resource = pattern.replace("{}", &param);
            out.push(json!({"Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(report: &ScanReport) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = report
            .findings
            .iter()
            .map(|f| {
                (
                    f.control_id.clone(),
                    f.resource_id.rsplit('#').next().unwrap_or("").to_owned(),
                )
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn short_form_intrinsics_become_their_long_form() {
        let doc: serde_yaml::Value = serde_yaml::from_str(
            "a: !Ref X\nb: !GetAtt Role.Arn\nc: !Sub 'arn:${AWS::Partition}'\nd: !Join ['', [a, b]]",
        )
        .unwrap();
        let v = to_json(doc, 0).unwrap();
        assert_eq!(v["a"], json!({"Ref": "X"}));
        assert_eq!(v["b"], json!({"Fn::GetAtt": ["Role", "Arn"]}));
        assert_eq!(v["c"], json!({"Fn::Sub": "arn:${AWS::Partition}"}));
        assert_eq!(v["d"], json!({"Fn::Join": ["", ["a", "b"]]}));
    }

    #[test]
    fn a_sam_function_with_everything_wrong() {
        let text = r#"
Transform: AWS::Serverless-2016-10-31
Globals: { Function: { Runtime: python3.9 } }
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Environment: { Variables: { DB_PASSWORD: hunter2-but-longer-42, REF: !Ref Other } }
      FunctionUrlConfig: { AuthType: NONE }
      Policies:
        - Statement: [{ Effect: Allow, Action: "*", Resource: "*" }]
  Open:
    Type: AWS::Lambda::Permission
    Properties: { FunctionName: !Ref Orders, Action: lambda:InvokeFunction, Principal: "*" }
  Scoped:
    Type: AWS::Lambda::Permission
    Properties: { FunctionName: !Ref Orders, Action: lambda:InvokeFunction, Principal: s3.amazonaws.com, SourceAccount: !Ref AWS::AccountId }
"#;
        let report = scan(text, "t.yaml").unwrap();
        let got = ids(&report);
        for want in [
            "IAM.1",
            "Lambda.1",
            "Lambda.2",
            "Lambda.3",
            "Warden.Lambda.CodeSigning",
            "Warden.Lambda.Concurrency",
            "Warden.Lambda.CustomerKey",
            "Warden.Lambda.DeadLetter",
            "Warden.Lambda.PlaintextSecret",
            "Warden.Url.1",
        ] {
            assert!(
                got.iter().any(|(c, _)| c == want),
                "{want} missing from {got:?}"
            );
        }
        // The role SAM makes from Policies is named after the function.
        assert!(
            got.contains(&("IAM.1".into(), "OrdersRole".into())),
            "{got:?}"
        );
        // Only the open permission is public.
        assert_eq!(
            report
                .findings
                .iter()
                .filter(|f| f.control_id == "Lambda.1")
                .count(),
            1
        );
        // The secret's value is not in any finding.
        assert!(!serde_json::to_string(&report).unwrap().contains("hunter2"));
    }

    #[test]
    fn policy_templates_expand_to_their_actions() {
        let text = r#"
Resources:
  W:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Policies:
        - DynamoDBCrudPolicy: { TableName: orders }
        - AWSLambdaBasicExecutionRole
"#;
        let report = scan(text, "t.yaml").unwrap();
        let got = ids(&report);
        // The basic execution role writes logs on every resource; the table is named.
        let wildcard: Vec<&Failure> = report
            .findings
            .iter()
            .filter(|f| f.control_id == "Warden.IAM.WildcardResource")
            .collect();
        assert_eq!(wildcard.len(), 1, "{got:?}");
        assert!(wildcard[0].description.contains("logs:CreateLogGroup"));
        assert!(!wildcard[0].description.contains("dynamodb"));
    }

    #[test]
    fn hostile_templates_are_refused_not_trusted() {
        assert!(matches!(
            scan(&"#".repeat(MAX_TEMPLATE_BYTES + 1), "t"),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(scan("Resources: [", "t"), Err(Error::Parse(_))));
        assert!(matches!(scan("a: 1", "t"), Err(Error::NoResources)));
        let deep = format!("Resources: {}1{}", "[".repeat(200), "]".repeat(200));
        assert!(scan(&deep, "t").is_err());
        // A billion laughs: aliases expanding past what the parser allows.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            bomb.push_str(&format!("{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        bomb.push_str("Resources: *l\n");
        assert!(scan(&bomb, "t").is_err());
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in "\\PC{0,512}") {
            let _ = scan(&text, "t");
        }

        #[test]
        fn random_resources_never_panic(
            kind in prop::sample::select(vec!["AWS::Lambda::Function", "AWS::Serverless::Function", "AWS::Lambda::Permission", "AWS::IAM::Role", "AWS::Lambda::Url", "AWS::KMS::Key"]),
            body in "\\PC{0,256}",
        ) {
            let text = format!("Resources:\n  R:\n    Type: {kind}\n    Properties: {body}\n");
            let _ = scan(&text, "t");
        }
    }
}
