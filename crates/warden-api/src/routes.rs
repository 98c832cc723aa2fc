//! The services a request can be for ([`Service`]), and Lambda's routing: a method and path
//! to a Lambda operation. Hand-written: Lambda's REST paths are a small fixed set and a
//! table is easier to check against the service model than a router's macro. Path
//! parameters are percent-decoded here and validated by the handlers.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::{JsonVersion, Protocol};

/// The service a request is for, as its SigV4 credential scope must name it. It also
/// decides the wire protocol of the request's errors ([`Service::protocol`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// Lambda's rest-json API (and Warden's own `/_warden` paths).
    Lambda,
    /// IAM's query API.
    Iam,
    /// STS's query API.
    Sts,
    /// EC2's query dialect (VPCs, subnets, security groups).
    Ec2,
    /// SNS's query API.
    Sns,
    /// AWS Signer's rest-json API.
    Signer,
    /// CloudWatch, in the protocol its request came in.
    CloudWatch(crate::cloudwatch::Wire),
    /// A JSON-protocol (`X-Amz-Target`) service behind a door.
    AwsJson {
        /// The name its credential scopes carry.
        name: &'static str,
        /// Its protocol version.
        version: JsonVersion,
    },
    /// A rest-json service other than Lambda (Security Hub).
    RestJson {
        /// The name its credential scopes carry.
        name: &'static str,
    },
    /// A service Warden does not serve, as the credential scope names it, and the protocol
    /// its clients expect errors in.
    Unserved {
        /// The name the credential scope carries.
        name: String,
        /// The protocol its clients expect errors in.
        protocol: Protocol,
    },
}

/// Services whose clients expect rest-xml errors (`<Error>`); any other unserved service is
/// answered in JSON unless its request is form-encoded (the query protocol).
const REST_XML: [&str; 6] = [
    "s3",
    "s3-object-lambda",
    "s3-outposts",
    "s3express",
    "route53",
    "cloudfront",
];

impl Service {
    /// The service of a request whose credential scope names `name`, which Warden does not
    /// serve; its error protocol is told from the service and the request's headers (a
    /// JSON-protocol content type says which JSON).
    pub fn unserved(name: &str, headers: &http::HeaderMap) -> Service {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let protocol = if REST_XML.contains(&name) {
            Protocol::RestXml
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            Protocol::Query(None)
        } else if let Some(version) = JsonVersion::from_content_type(content_type) {
            Protocol::AwsJson(version)
        } else {
            Protocol::Json
        };
        Service::Unserved {
            name: name.to_owned(),
            protocol,
        }
    }

    /// The name a credential scope must carry for this service.
    pub fn signing_name(&self) -> &str {
        match self {
            Service::Lambda => "lambda",
            Service::Iam => "iam",
            Service::Sts => "sts",
            Service::Ec2 => "ec2",
            Service::Sns => "sns",
            Service::Signer => crate::signer::SIGNING_NAME,
            Service::CloudWatch(_) => "monitoring",
            Service::AwsJson { name, .. } => name,
            Service::RestJson { name } => name,
            Service::Unserved { name, .. } => name,
        }
    }

    /// The protocol this service's errors are rendered in.
    pub fn protocol(&self) -> Protocol {
        match self {
            Service::Lambda => Protocol::Json,
            Service::Iam => Protocol::Query(Some(warden_identity::IAM_NAMESPACE)),
            Service::Sts => Protocol::Query(Some(warden_identity::STS_NAMESPACE)),
            Service::Ec2 => Protocol::Ec2,
            Service::Sns => Protocol::Query(Some(crate::sns::SNS_NAMESPACE)),
            Service::Signer => Protocol::Json,
            Service::CloudWatch(crate::cloudwatch::Wire::Cbor) => Protocol::RpcV2Cbor,
            Service::CloudWatch(crate::cloudwatch::Wire::Json) => Protocol::QueryCompatibleJson,
            Service::CloudWatch(crate::cloudwatch::Wire::Query) => {
                Protocol::Query(Some(crate::cloudwatch_query::NAMESPACE))
            }
            Service::AwsJson { version, .. } => Protocol::AwsJson(*version),
            Service::RestJson { .. } => Protocol::Json,
            Service::Unserved { protocol, .. } => *protocol,
        }
    }
}

/// Every operation the API serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `CreateFunction`.
    CreateFunction,
    /// `ListFunctions`.
    ListFunctions,
    /// `GetFunction` of the function (name or ARN, as in the path).
    GetFunction(String),
    /// `DeleteFunction`.
    DeleteFunction(String),
    /// `GetFunctionConfiguration`.
    GetFunctionConfiguration(String),
    /// `UpdateFunctionConfiguration`.
    UpdateFunctionConfiguration(String),
    /// `UpdateFunctionCode`.
    UpdateFunctionCode(String),
    /// `Invoke` (synchronous, or `Event` and `DryRun` by header).
    Invoke(String),
    /// The deprecated `InvokeAsync`.
    InvokeAsync(String),
    /// `InvokeWithResponseStream`: the response as an event stream.
    InvokeWithResponseStream(String),
    /// `PublishVersion`.
    PublishVersion(String),
    /// `ListVersionsByFunction`.
    ListVersionsByFunction(String),
    /// `CreateAlias`.
    CreateAlias(String),
    /// `ListAliases`.
    ListAliases(String),
    /// `GetAlias` of the function and alias.
    GetAlias(String, String),
    /// `UpdateAlias`.
    UpdateAlias(String, String),
    /// `DeleteAlias`.
    DeleteAlias(String, String),
    /// `PutFunctionConcurrency`.
    PutFunctionConcurrency(String),
    /// `GetFunctionConcurrency`.
    GetFunctionConcurrency(String),
    /// `DeleteFunctionConcurrency`.
    DeleteFunctionConcurrency(String),
    /// `GetAccountSettings`.
    GetAccountSettings,
    /// `AddPermission` (a statement of the function's policy).
    AddPermission(String),
    /// `RemovePermission` of the function and statement id.
    RemovePermission(String, String),
    /// `GetPolicy`.
    GetPolicy(String),
    /// A query-protocol request (IAM, STS): the form's `Action` says which.
    Query,
    /// A JSON-protocol request: its `X-Amz-Target` as sent (its door checks it).
    JsonTarget(String),
    /// Warden's own: read a function's logs.
    ReadLogs(String),
    /// Warden's own: the DNS queries of a function's instances
    /// (`GET /_warden/2026-11-01/functions/NAME/dns-queries`).
    ReadDnsQueries(String),
    /// Warden's own: the flow log records of a function's instances
    /// (`GET /_warden/2026-11-01/functions/NAME/flows`).
    ReadFlows(String),
    /// `CreateFunctionUrlConfig`.
    CreateFunctionUrlConfig(String),
    /// `GetFunctionUrlConfig`.
    GetFunctionUrlConfig(String),
    /// `UpdateFunctionUrlConfig`.
    UpdateFunctionUrlConfig(String),
    /// `DeleteFunctionUrlConfig`.
    DeleteFunctionUrlConfig(String),
    /// `ListFunctionUrlConfigs`.
    ListFunctionUrlConfigs(String),
    /// A request to a function URL (the URL listener's only operation; no API path
    /// routes to it).
    InvokeFunctionUrl,
    /// Warden's own: store a function's (or alias's) input contract
    /// (`PUT /_warden/2026-11-01/functions/NAME/input-contract`).
    PutInputContract(String),
    /// Warden's own: read an input contract (`GET` of the same path).
    GetInputContract(String),
    /// Warden's own: delete an input contract (`DELETE` of the same path).
    DeleteInputContract(String),
    /// Warden's own: replace the advisory database with an OSV export (a zip body)
    /// (`PUT /_warden/2026-11-01/advisories`).
    ImportAdvisories,
    /// Warden's own: the advisory database's size and the deploy policy (`GET` of it).
    GetAdvisoryDatabase,
    /// Warden's own: a function's known vulnerabilities
    /// (`GET /_warden/2026-11-01/functions/NAME/findings`).
    GetFunctionFindings(String),
    /// Warden's own: a function's CycloneDX SBOM
    /// (`GET /_warden/2026-11-01/functions/NAME/sbom`).
    GetFunctionSbom(String),
    /// Warden's own: every function's known vulnerabilities
    /// (`GET /_warden/2026-11-01/findings`).
    ListFunctionFindings,
    /// Warden's own: accept an advisory until a day
    /// (`POST /_warden/2026-11-01/accepted-advisories`).
    AcceptAdvisory,
    /// Warden's own: the accepted advisories (`GET` of the same path).
    ListAcceptedAdvisories,
    /// Warden's own: revoke an acceptance of the advisory
    /// (`DELETE /_warden/2026-11-01/accepted-advisories/ID`).
    RevokeAcceptedAdvisory(String),
    /// A CloudWatch operation, by name (served by the CloudWatch door).
    CloudWatch(String),
    /// `TagResource` on the resource ARN.
    TagResource(String),
    /// `UntagResource` on the resource ARN.
    UntagResource(String),
    /// `ListTags` of the resource ARN.
    ListTags(String),
    /// `PublishLayerVersion` of the layer.
    PublishLayerVersion(String),
    /// `ListLayerVersions` of the layer.
    ListLayerVersions(String),
    /// `GetLayerVersion` of the layer and version.
    GetLayerVersion(String, String),
    /// `DeleteLayerVersion` of the layer and version.
    DeleteLayerVersion(String, String),
    /// `ListLayers`, or with `find=LayerVersion` in the query, `GetLayerVersionByArn`.
    ListLayers,
    /// `AddLayerVersionPermission` on the layer and version.
    AddLayerVersionPermission(String, String),
    /// `GetLayerVersionPolicy` of the layer and version.
    GetLayerVersionPolicy(String, String),
    /// `RemoveLayerVersionPermission` of the layer, version and statement id.
    RemoveLayerVersionPermission(String, String, String),
    /// A code signing config operation (Lambda's).
    CodeSigning(crate::code_signing::CscOp),
    /// A Signer operation (served by the Signer door).
    Signer(crate::signer::SignerOp),
}

impl Operation {
    /// The operation's name as in the AWS API (and IAM actions without the `lambda:` prefix).
    pub fn name(&self) -> &str {
        use Operation as O;
        match self {
            O::CreateFunction => "CreateFunction",
            O::ListFunctions => "ListFunctions",
            O::GetFunction(_) => "GetFunction",
            O::DeleteFunction(_) => "DeleteFunction",
            O::GetFunctionConfiguration(_) => "GetFunctionConfiguration",
            O::UpdateFunctionConfiguration(_) => "UpdateFunctionConfiguration",
            O::UpdateFunctionCode(_) => "UpdateFunctionCode",
            O::Invoke(_) => "Invoke",
            O::InvokeAsync(_) => "InvokeAsync",
            O::InvokeWithResponseStream(_) => "InvokeWithResponseStream",
            O::PublishVersion(_) => "PublishVersion",
            O::ListVersionsByFunction(_) => "ListVersionsByFunction",
            O::CreateAlias(_) => "CreateAlias",
            O::ListAliases(_) => "ListAliases",
            O::GetAlias(..) => "GetAlias",
            O::UpdateAlias(..) => "UpdateAlias",
            O::DeleteAlias(..) => "DeleteAlias",
            O::PutFunctionConcurrency(_) => "PutFunctionConcurrency",
            O::GetFunctionConcurrency(_) => "GetFunctionConcurrency",
            O::DeleteFunctionConcurrency(_) => "DeleteFunctionConcurrency",
            O::GetAccountSettings => "GetAccountSettings",
            O::AddPermission(_) => "AddPermission",
            O::RemovePermission(..) => "RemovePermission",
            O::GetPolicy(_) => "GetPolicy",
            O::Query => "Query",
            O::JsonTarget(target) => target
                .rsplit_once('.')
                .map_or(target.as_str(), |(_, op)| op),
            O::ReadLogs(_) => "ReadLogs",
            O::ReadDnsQueries(_) => "ReadDnsQueries",
            O::ReadFlows(_) => "ReadFlows",
            O::CreateFunctionUrlConfig(_) => "CreateFunctionUrlConfig",
            O::GetFunctionUrlConfig(_) => "GetFunctionUrlConfig",
            O::UpdateFunctionUrlConfig(_) => "UpdateFunctionUrlConfig",
            O::DeleteFunctionUrlConfig(_) => "DeleteFunctionUrlConfig",
            O::ListFunctionUrlConfigs(_) => "ListFunctionUrlConfigs",
            O::InvokeFunctionUrl => "InvokeFunctionUrl",
            O::CloudWatch(_) => "CloudWatch",
            O::PutInputContract(_) => "PutFunctionInputContract",
            O::ImportAdvisories => "ImportAdvisories",
            O::GetAdvisoryDatabase => "GetAdvisoryDatabase",
            O::GetFunctionFindings(_) => "GetFunctionFindings",
            O::GetFunctionSbom(_) => "GetFunctionSbom",
            O::ListFunctionFindings => "ListFunctionFindings",
            O::AcceptAdvisory => "AcceptAdvisory",
            O::ListAcceptedAdvisories => "ListAcceptedAdvisories",
            O::RevokeAcceptedAdvisory(_) => "RevokeAcceptedAdvisory",
            O::GetInputContract(_) => "GetFunctionInputContract",
            O::DeleteInputContract(_) => "DeleteFunctionInputContract",
            O::TagResource(_) => "TagResource",
            O::UntagResource(_) => "UntagResource",
            O::ListTags(_) => "ListTags",
            O::PublishLayerVersion(_) => "PublishLayerVersion",
            O::ListLayerVersions(_) => "ListLayerVersions",
            O::GetLayerVersion(..) => "GetLayerVersion",
            O::DeleteLayerVersion(..) => "DeleteLayerVersion",
            O::ListLayers => "ListLayers",
            O::AddLayerVersionPermission(..) => "AddLayerVersionPermission",
            O::GetLayerVersionPolicy(..) => "GetLayerVersionPolicy",
            O::RemoveLayerVersionPermission(..) => "RemoveLayerVersionPermission",
            O::CodeSigning(op) => op.name(),
            O::Signer(op) => op.name(),
        }
    }
}

/// Why no operation matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such path.
    Unknown,
    /// A path segment is not valid UTF-8 after decoding.
    BadEncoding,
}

fn decode(segment: &str) -> Result<String, RouteError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| RouteError::BadEncoding)
}

/// Routes a request. Dated prefixes are accepted for the operations that use them; a
/// trailing slash is tolerated as API Gateway-style clients send it.
pub fn route(method: &Method, path: &str) -> Result<Operation, RouteError> {
    use Operation as O;
    if path == "/" && (m_is(method, "POST") || m_is(method, "GET")) {
        return Ok(O::Query);
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let m = method.as_str();
    let op = match (m, segments.as_slice()) {
        ("POST", ["2015-03-31", "functions"]) => O::CreateFunction,
        ("GET", ["2015-03-31", "functions"]) => O::ListFunctions,
        ("GET", ["2015-03-31", "functions", f]) => O::GetFunction(decode(f)?),
        ("DELETE", ["2015-03-31", "functions", f]) => O::DeleteFunction(decode(f)?),
        ("GET", ["2015-03-31", "functions", f, "configuration"]) => {
            O::GetFunctionConfiguration(decode(f)?)
        }
        ("PUT", ["2015-03-31", "functions", f, "configuration"]) => {
            O::UpdateFunctionConfiguration(decode(f)?)
        }
        ("PUT", ["2015-03-31", "functions", f, "code"]) => O::UpdateFunctionCode(decode(f)?),
        ("POST", ["2015-03-31", "functions", f, "invocations"]) => O::Invoke(decode(f)?),
        ("POST", ["2014-11-13", "functions", f, "invoke-async"]) => O::InvokeAsync(decode(f)?),
        ("POST", ["2021-11-15", "functions", f, "response-streaming-invocations"]) => {
            O::InvokeWithResponseStream(decode(f)?)
        }
        ("POST", ["2015-03-31", "functions", f, "versions"]) => O::PublishVersion(decode(f)?),
        ("GET", ["2015-03-31", "functions", f, "versions"]) => {
            O::ListVersionsByFunction(decode(f)?)
        }
        ("POST", ["2015-03-31", "functions", f, "aliases"]) => O::CreateAlias(decode(f)?),
        ("GET", ["2015-03-31", "functions", f, "aliases"]) => O::ListAliases(decode(f)?),
        ("GET", ["2015-03-31", "functions", f, "aliases", a]) => {
            O::GetAlias(decode(f)?, decode(a)?)
        }
        ("PUT", ["2015-03-31", "functions", f, "aliases", a]) => {
            O::UpdateAlias(decode(f)?, decode(a)?)
        }
        ("DELETE", ["2015-03-31", "functions", f, "aliases", a]) => {
            O::DeleteAlias(decode(f)?, decode(a)?)
        }
        ("PUT", ["2017-10-31", "functions", f, "concurrency"]) => {
            O::PutFunctionConcurrency(decode(f)?)
        }
        ("GET", ["2019-09-30", "functions", f, "concurrency"]) => {
            O::GetFunctionConcurrency(decode(f)?)
        }
        ("DELETE", ["2017-10-31", "functions", f, "concurrency"]) => {
            O::DeleteFunctionConcurrency(decode(f)?)
        }
        ("GET", ["2016-08-19", "account-settings"]) => O::GetAccountSettings,
        ("POST", ["2015-03-31", "functions", f, "policy"]) => O::AddPermission(decode(f)?),
        ("GET", ["2015-03-31", "functions", f, "policy"]) => O::GetPolicy(decode(f)?),
        ("DELETE", ["2015-03-31", "functions", f, "policy", sid]) => {
            O::RemovePermission(decode(f)?, decode(sid)?)
        }
        ("GET", ["_warden", "2026-11-01", "functions", f, "logs"]) => O::ReadLogs(decode(f)?),
        ("GET", ["_warden", "2026-11-01", "functions", f, "dns-queries"]) => {
            O::ReadDnsQueries(decode(f)?)
        }
        ("GET", ["_warden", "2026-11-01", "functions", f, "flows"]) => O::ReadFlows(decode(f)?),
        ("POST", ["2021-10-31", "functions", f, "url"]) => O::CreateFunctionUrlConfig(decode(f)?),
        ("GET", ["2021-10-31", "functions", f, "url"]) => O::GetFunctionUrlConfig(decode(f)?),
        ("PUT", ["2021-10-31", "functions", f, "url"]) => O::UpdateFunctionUrlConfig(decode(f)?),
        ("DELETE", ["2021-10-31", "functions", f, "url"]) => O::DeleteFunctionUrlConfig(decode(f)?),
        ("GET", ["2021-10-31", "functions", f, "urls"]) => O::ListFunctionUrlConfigs(decode(f)?),
        ("PUT", ["_warden", "2026-11-01", "advisories"]) => O::ImportAdvisories,
        ("GET", ["_warden", "2026-11-01", "advisories"]) => O::GetAdvisoryDatabase,
        ("GET", ["_warden", "2026-11-01", "functions", f, "findings"]) => {
            O::GetFunctionFindings(decode(f)?)
        }
        ("GET", ["_warden", "2026-11-01", "functions", f, "sbom"]) => {
            O::GetFunctionSbom(decode(f)?)
        }
        ("GET", ["_warden", "2026-11-01", "findings"]) => O::ListFunctionFindings,
        ("POST", ["_warden", "2026-11-01", "accepted-advisories"]) => O::AcceptAdvisory,
        ("GET", ["_warden", "2026-11-01", "accepted-advisories"]) => O::ListAcceptedAdvisories,
        ("DELETE", ["_warden", "2026-11-01", "accepted-advisories", id]) => {
            O::RevokeAcceptedAdvisory(decode(id)?)
        }
        ("PUT", ["_warden", "2026-11-01", "functions", f, "input-contract"]) => {
            O::PutInputContract(decode(f)?)
        }
        ("GET", ["_warden", "2026-11-01", "functions", f, "input-contract"]) => {
            O::GetInputContract(decode(f)?)
        }
        ("DELETE", ["_warden", "2026-11-01", "functions", f, "input-contract"]) => {
            O::DeleteInputContract(decode(f)?)
        }
        ("POST", ["2017-03-31", "tags", arn]) => O::TagResource(decode(arn)?),
        ("DELETE", ["2017-03-31", "tags", arn]) => O::UntagResource(decode(arn)?),
        ("GET", ["2017-03-31", "tags", arn]) => O::ListTags(decode(arn)?),
        ("GET", ["2018-10-31", "layers"]) => O::ListLayers,
        ("POST", ["2018-10-31", "layers", l, "versions"]) => O::PublishLayerVersion(decode(l)?),
        ("GET", ["2018-10-31", "layers", l, "versions"]) => O::ListLayerVersions(decode(l)?),
        ("GET", ["2018-10-31", "layers", l, "versions", v]) => {
            O::GetLayerVersion(decode(l)?, decode(v)?)
        }
        ("DELETE", ["2018-10-31", "layers", l, "versions", v]) => {
            O::DeleteLayerVersion(decode(l)?, decode(v)?)
        }
        ("POST", ["2018-10-31", "layers", l, "versions", v, "policy"]) => {
            O::AddLayerVersionPermission(decode(l)?, decode(v)?)
        }
        ("GET", ["2018-10-31", "layers", l, "versions", v, "policy"]) => {
            O::GetLayerVersionPolicy(decode(l)?, decode(v)?)
        }
        ("DELETE", ["2018-10-31", "layers", l, "versions", v, "policy", sid]) => {
            O::RemoveLayerVersionPermission(decode(l)?, decode(v)?, decode(sid)?)
        }
        _ => return crate::code_signing::route(m, &segments, decode)?.ok_or(RouteError::Unknown),
    };
    Ok(op)
}

fn m_is(method: &Method, name: &str) -> bool {
    method.as_str() == name
}

/// Query parameters, percent-decoded; later duplicates win.
pub fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn routes_lambda_paths() {
        assert_eq!(
            route(&Method::POST, "/2015-03-31/functions/"),
            Ok(Operation::CreateFunction)
        );
        assert_eq!(
            route(&Method::POST, "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations"),
            Ok(Operation::Invoke("arn:aws:lambda:us-east-1:123456789012:function:f".into()))
        );
        assert_eq!(
            route(&Method::GET, "/2016-08-19/account-settings/"),
            Ok(Operation::GetAccountSettings)
        );
        assert_eq!(
            route(&Method::GET, "/2015-03-31/functions/f/aliases/live"),
            Ok(Operation::GetAlias("f".into(), "live".into()))
        );
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
        for (method, op) in [
            (Method::POST, Operation::TagResource(arn.into())),
            (Method::DELETE, Operation::UntagResource(arn.into())),
            (Method::GET, Operation::ListTags(arn.into())),
        ] {
            assert_eq!(
                route(
                    &method,
                    "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af"
                ),
                Ok(op)
            );
        }
        assert_eq!(
            route(&Method::GET, "/_warden/2026-11-01/findings"),
            Ok(Operation::ListFunctionFindings)
        );
        assert_eq!(
            route(&Method::POST, "/_warden/2026-11-01/accepted-advisories"),
            Ok(Operation::AcceptAdvisory)
        );
        assert_eq!(
            route(&Method::GET, "/_warden/2026-11-01/accepted-advisories"),
            Ok(Operation::ListAcceptedAdvisories)
        );
        assert_eq!(
            route(
                &Method::DELETE,
                "/_warden/2026-11-01/accepted-advisories/GHSA-xxxx%3A1"
            ),
            Ok(Operation::RevokeAcceptedAdvisory("GHSA-xxxx:1".into()))
        );
        assert_eq!(
            route(&Method::PUT, "/_warden/2026-11-01/accepted-advisories"),
            Err(RouteError::Unknown)
        );
        assert_eq!(
            route(&Method::PATCH, "/2015-03-31/functions"),
            Err(RouteError::Unknown)
        );
        assert_eq!(
            route(&Method::GET, "/2015-03-31/functions/%FF"),
            Err(RouteError::BadEncoding)
        );
    }

    #[test]
    fn unserved_services_get_their_own_protocol() {
        let mut form = http::HeaderMap::new();
        form.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let none = http::HeaderMap::new();
        assert_eq!(Service::unserved("s3", &none).protocol(), Protocol::RestXml);
        assert_eq!(
            Service::unserved("sns", &form).protocol(),
            Protocol::Query(None)
        );
        assert_eq!(
            Service::unserved("dynamodb", &none).protocol(),
            Protocol::Json
        );
        assert_eq!(Service::unserved("sqs", &none).signing_name(), "sqs");
        assert_eq!(
            Service::Sts.protocol(),
            Protocol::Query(Some("https://sts.amazonaws.com/doc/2011-06-15/"))
        );
    }

    #[test]
    fn query_is_decoded() {
        assert_eq!(
            query_params(Some("Qualifier=%24LATEST&MaxItems=2&x")),
            vec![
                ("Qualifier".into(), "$LATEST".into()),
                ("MaxItems".into(), "2".into()),
                ("x".into(), "".into())
            ]
        );
    }

    proptest! {
        #[test]
        fn routing_never_panics(path in "/[ -~]{0,120}", q in "[ -~]{0,80}") {
            for m in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
                let _ = route(&m, &path);
            }
            let _ = query_params(Some(&q));
        }
    }
}
