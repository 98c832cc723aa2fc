//! Route 53 Resolver DNS Firewall through the real AWS CLI and boto3: domain lists and
//! their domains, rule groups and rules, associations with VPCs, the refusals scripts
//! meet (with their exact error codes), who may call what, tags, and the whole
//! configuration surviving a crash and a restart.

use serde_json::{json, Value};

use crate::harness::{aws_as, error_code, ok_as, user_with_key, user_with_policy, Server};

const VPC: &str = "vpc-0123456789abcdef0";
const OTHER_VPC: &str = "vpc-0a1b2c3d";

fn r53(s: &Server, args: &[&str]) -> Value {
    let mut all = vec!["route53resolver"];
    all.extend_from_slice(args);
    s.aws(&all)
}

/// Runs a `route53resolver` command expected to fail; its error code.
fn r53_err(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["route53resolver"];
    all.extend_from_slice(args);
    let stderr = s.aws_err(&all);
    error_code(&stderr).to_owned()
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string in {v}"))
}

/// One Route 53 Resolver request signed for `route53resolver` as the admin.
fn raw(s: &Server, operation: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let admin = s.admin();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/", s.endpoint))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Route53Resolver.{operation}"))
        .body(bytes.clone())
        .unwrap();
    let signing = warden_auth::SigningCredentials {
        access_key_id: admin.key,
        secret_access_key: admin.secret,
        session_token: None,
    };
    warden_auth::sign_request(
        &mut req,
        &bytes,
        &signing,
        "us-east-1",
        "route53resolver",
        std::time::SystemTime::now(),
    )
    .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent.run(req).unwrap();
    let status = r.status().as_u16();
    let text = r.into_body().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

#[test]
fn the_aws_cli_builds_a_dns_firewall_and_it_survives_a_restart() {
    let mut s = Server::start();

    // A domain list, filled and edited.
    let created = r53(
        &s,
        &[
            "create-firewall-domain-list",
            "--name",
            "blocked",
            "--creator-request-id",
            "list-1",
        ],
    );
    let list = &created["FirewallDomainList"];
    let list_id = str_of(list, &["Id"]).to_owned();
    assert!(
        list_id.starts_with("rslvr-fdl-") && list_id.len() == 27,
        "{list_id}"
    );
    assert_eq!(
        list["Arn"],
        format!("arn:aws:route53resolver:us-east-1:123456789012:firewall-domain-list/{list_id}")
    );
    assert_eq!(list["Status"], "COMPLETE");
    assert_eq!(list["DomainCount"], 0);
    assert_eq!(list["CreatorRequestId"], "list-1");
    // The same CreatorRequestId again is the same list.
    let again = r53(
        &s,
        &[
            "create-firewall-domain-list",
            "--name",
            "blocked",
            "--creator-request-id",
            "list-1",
        ],
    );
    assert_eq!(again["FirewallDomainList"]["Id"], list_id.as_str());

    let updated = r53(
        &s,
        &[
            "update-firewall-domains",
            "--firewall-domain-list-id",
            &list_id,
            "--operation",
            "ADD",
            "--domains",
            "Example.COM.",
            "*.bad.org",
            "evil.net",
            "gone.io",
        ],
    );
    assert_eq!(updated["Id"], list_id.as_str());
    assert_eq!(updated["Name"], "blocked");
    assert_eq!(updated["Status"], "COMPLETE");
    r53(
        &s,
        &[
            "update-firewall-domains",
            "--firewall-domain-list-id",
            &list_id,
            "--operation",
            "REMOVE",
            "--domains",
            "GONE.io",
        ],
    );
    let domains = r53(
        &s,
        &[
            "list-firewall-domains",
            "--firewall-domain-list-id",
            &list_id,
        ],
    );
    assert_eq!(
        domains["Domains"],
        json!(["*.bad.org", "evil.net", "example.com"])
    );
    let got = r53(
        &s,
        &[
            "get-firewall-domain-list",
            "--firewall-domain-list-id",
            &list_id,
        ],
    );
    assert_eq!(got["FirewallDomainList"]["DomainCount"], 3);
    let allowed_id = str_of(
        &r53(&s, &["create-firewall-domain-list", "--name", "allowed"]),
        &["FirewallDomainList", "Id"],
    )
    .to_owned();
    r53(
        &s,
        &[
            "update-firewall-domains",
            "--firewall-domain-list-id",
            &allowed_id,
            "--operation",
            "REPLACE",
            "--domains",
            "good.example.com",
        ],
    );
    let lists = r53(&s, &["list-firewall-domain-lists"]);
    let names: Vec<&str> = lists["FirewallDomainLists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blocked", "allowed"]);

    // A rule group with two rules.
    let group = r53(&s, &["create-firewall-rule-group", "--name", "egress-dns"]);
    let group_id = str_of(&group, &["FirewallRuleGroup", "Id"]).to_owned();
    assert!(group_id.starts_with("rslvr-frg-"), "{group_id}");
    assert_eq!(group["FirewallRuleGroup"]["OwnerId"], "123456789012");
    assert_eq!(group["FirewallRuleGroup"]["ShareStatus"], "NOT_SHARED");
    let rule = r53(
        &s,
        &[
            "create-firewall-rule",
            "--firewall-rule-group-id",
            &group_id,
            "--firewall-domain-list-id",
            &list_id,
            "--priority",
            "200",
            "--action",
            "BLOCK",
            "--block-response",
            "NXDOMAIN",
            "--name",
            "block-bad",
        ],
    );
    assert_eq!(rule["FirewallRule"]["Action"], "BLOCK");
    assert_eq!(rule["FirewallRule"]["BlockResponse"], "NXDOMAIN");
    assert_eq!(rule["FirewallRule"]["Priority"], 200);
    r53(
        &s,
        &[
            "create-firewall-rule",
            "--firewall-rule-group-id",
            &group_id,
            "--firewall-domain-list-id",
            &allowed_id,
            "--priority",
            "100",
            "--action",
            "ALLOW",
            "--name",
            "allow-good",
        ],
    );
    let rules = r53(
        &s,
        &["list-firewall-rules", "--firewall-rule-group-id", &group_id],
    );
    let order: Vec<&str> = rules["FirewallRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["allow-good", "block-bad"], "priority order");
    let filtered = r53(
        &s,
        &[
            "list-firewall-rules",
            "--firewall-rule-group-id",
            &group_id,
            "--action",
            "BLOCK",
        ],
    );
    assert_eq!(filtered["FirewallRules"].as_array().unwrap().len(), 1);
    let changed = r53(
        &s,
        &[
            "update-firewall-rule",
            "--firewall-rule-group-id",
            &group_id,
            "--firewall-domain-list-id",
            &list_id,
            "--block-response",
            "NODATA",
        ],
    );
    assert_eq!(changed["FirewallRule"]["Action"], "BLOCK");
    assert_eq!(changed["FirewallRule"]["BlockResponse"], "NODATA");
    let got = r53(
        &s,
        &[
            "get-firewall-rule-group",
            "--firewall-rule-group-id",
            &group_id,
        ],
    );
    assert_eq!(got["FirewallRuleGroup"]["RuleCount"], 2);

    // Associated with a VPC.
    let assoc = r53(
        &s,
        &[
            "associate-firewall-rule-group",
            "--firewall-rule-group-id",
            &group_id,
            "--vpc-id",
            VPC,
            "--priority",
            "101",
            "--name",
            "main",
        ],
    );
    let a = &assoc["FirewallRuleGroupAssociation"];
    let assoc_id = str_of(a, &["Id"]).to_owned();
    assert!(assoc_id.starts_with("rslvr-frgassoc-"), "{assoc_id}");
    assert_eq!(a["VpcId"], VPC);
    assert_eq!(a["MutationProtection"], "DISABLED");
    assert_eq!(a["Status"], "COMPLETE");
    let listed = r53(
        &s,
        &["list-firewall-rule-group-associations", "--vpc-id", VPC],
    );
    assert_eq!(
        listed["FirewallRuleGroupAssociations"][0]["Id"],
        assoc_id.as_str()
    );
    let none = r53(
        &s,
        &[
            "list-firewall-rule-group-associations",
            "--vpc-id",
            OTHER_VPC,
        ],
    );
    assert_eq!(none["FirewallRuleGroupAssociations"], json!([]));

    // The refusals scripts meet, with their codes.
    let bad_domain = r53_err(
        &s,
        &[
            "update-firewall-domains",
            "--firewall-domain-list-id",
            &list_id,
            "--operation",
            "ADD",
            "--domains",
            "bad_domain.com",
        ],
    );
    assert_eq!(bad_domain, "ValidationException");
    let deny = r53_err(
        &s,
        &[
            "update-firewall-domains",
            "--firewall-domain-list-id",
            &list_id,
            "--operation",
            "DENY",
            "--domains",
            "x.com",
        ],
    );
    assert_eq!(deny, "ValidationException");
    let third = str_of(
        &r53(&s, &["create-firewall-domain-list", "--name", "third"]),
        &["FirewallDomainList", "Id"],
    )
    .to_owned();
    let rule_args = |priority: &'static str| {
        vec![
            "create-firewall-rule",
            "--firewall-rule-group-id",
            group_id.as_str(),
            "--firewall-domain-list-id",
            third.as_str(),
            "--priority",
            priority,
            "--action",
            "ALERT",
            "--name",
            "watch",
        ]
    };
    assert_eq!(r53_err(&s, &rule_args("100")), "ValidationException");
    let mut with_qtype = rule_args("300");
    with_qtype.extend(["--qtype", "A"]);
    assert_eq!(r53_err(&s, &with_qtype), "ValidationException");
    let stderr = s.aws_err(&[
        "route53resolver",
        "create-firewall-rule",
        "--firewall-rule-group-id",
        &group_id,
        "--firewall-domain-list-id",
        &third,
        "--priority",
        "300",
        "--action",
        "BLOCK",
        "--block-response",
        "OVERRIDE",
        "--block-override-domain",
        "sinkhole.example.com",
        "--block-override-dns-type",
        "CNAME",
        "--block-override-ttl",
        "60",
        "--name",
        "sinkhole",
    ]);
    assert_eq!(error_code(&stderr), "ValidationException");
    assert!(stderr.contains("OVERRIDE"), "{stderr}");
    assert_eq!(
        r53_err(
            &s,
            &[
                "create-firewall-rule",
                "--firewall-rule-group-id",
                &group_id,
                "--firewall-domain-list-id",
                "rslvr-fdl-00000000000000000",
                "--priority",
                "300",
                "--action",
                "ALLOW",
                "--name",
                "nothing",
            ],
        ),
        "ResourceNotFoundException"
    );
    for args in [
        vec![
            "get-firewall-domain-list",
            "--firewall-domain-list-id",
            "rslvr-fdl-00000000000000000",
        ],
        vec![
            "get-firewall-rule-group",
            "--firewall-rule-group-id",
            "rslvr-frg-00000000000000000",
        ],
        vec![
            "get-firewall-rule-group-association",
            "--firewall-rule-group-association-id",
            "rslvr-frgassoc-00000000000000000",
        ],
        vec![
            "list-firewall-domains",
            "--firewall-domain-list-id",
            "rslvr-fdl-00000000000000000",
        ],
    ] {
        assert_eq!(r53_err(&s, &args), "ResourceNotFoundException", "{args:?}");
    }
    // Associations: the VPC's priorities are unique, ids must be well formed, and the
    // priority lies in 101-9900.
    let other_group = str_of(
        &r53(&s, &["create-firewall-rule-group", "--name", "other"]),
        &["FirewallRuleGroup", "Id"],
    )
    .to_owned();
    let assoc_args = |vpc: &'static str, priority: &'static str| {
        vec![
            "associate-firewall-rule-group",
            "--firewall-rule-group-id",
            other_group.as_str(),
            "--vpc-id",
            vpc,
            "--priority",
            priority,
            "--name",
            "second",
        ]
    };
    assert_eq!(r53_err(&s, &assoc_args(VPC, "101")), "ConflictException");
    assert_eq!(
        r53_err(&s, &assoc_args("vpc-nothex!", "102")),
        "ValidationException"
    );
    assert_eq!(r53_err(&s, &assoc_args(VPC, "100")), "ValidationException");
    // Resources in use stay.
    assert_eq!(
        r53_err(
            &s,
            &[
                "delete-firewall-domain-list",
                "--firewall-domain-list-id",
                &list_id
            ],
        ),
        "ConflictException"
    );
    assert_eq!(
        r53_err(
            &s,
            &[
                "delete-firewall-rule-group",
                "--firewall-rule-group-id",
                &group_id
            ],
        ),
        "ConflictException"
    );

    // Every acknowledged change survives a crash and a restart.
    s.kill9();
    s.restart();
    let domains = r53(
        &s,
        &[
            "list-firewall-domains",
            "--firewall-domain-list-id",
            &list_id,
        ],
    );
    assert_eq!(
        domains["Domains"],
        json!(["*.bad.org", "evil.net", "example.com"])
    );
    let rules = r53(
        &s,
        &["list-firewall-rules", "--firewall-rule-group-id", &group_id],
    );
    assert_eq!(rules["FirewallRules"][1]["BlockResponse"], "NODATA");
    let got = r53(
        &s,
        &[
            "get-firewall-rule-group-association",
            "--firewall-rule-group-association-id",
            &assoc_id,
        ],
    );
    assert_eq!(got["FirewallRuleGroupAssociation"]["VpcId"], VPC);
    assert_eq!(got["FirewallRuleGroupAssociation"]["Priority"], 101);

    // And is taken apart in order.
    let gone = r53(
        &s,
        &[
            "disassociate-firewall-rule-group",
            "--firewall-rule-group-association-id",
            &assoc_id,
        ],
    );
    assert_eq!(gone["FirewallRuleGroupAssociation"]["Status"], "DELETING");
    let deleted = r53(
        &s,
        &[
            "delete-firewall-rule",
            "--firewall-rule-group-id",
            &group_id,
            "--firewall-domain-list-id",
            &list_id,
        ],
    );
    assert_eq!(deleted["FirewallRule"]["Name"], "block-bad");
    r53(
        &s,
        &[
            "delete-firewall-domain-list",
            "--firewall-domain-list-id",
            &list_id,
        ],
    );
    // The group goes with its remaining rule.
    r53(
        &s,
        &[
            "delete-firewall-rule-group",
            "--firewall-rule-group-id",
            &group_id,
        ],
    );
    assert_eq!(
        r53_err(
            &s,
            &["list-firewall-rules", "--firewall-rule-group-id", &group_id],
        ),
        "ResourceNotFoundException"
    );
    r53(
        &s,
        &[
            "delete-firewall-domain-list",
            "--firewall-domain-list-id",
            &allowed_id,
        ],
    );
    let lists = r53(&s, &["list-firewall-domain-lists"]);
    assert_eq!(lists["FirewallDomainLists"].as_array().unwrap().len(), 1);
}

#[test]
fn boto3_paginates_and_honours_mutation_protection() {
    let s = Server::start();
    let out = s.python(
        r#"
import os, boto3, botocore
from botocore.config import Config
r = boto3.client("route53resolver", endpoint_url=os.environ["ENDPOINT"],
                 config=Config(retries={"total_max_attempts": 1}))
def expect(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code, (code, e.response["Error"])
        return e.response["Error"]["Message"]
    raise AssertionError(code + " not raised")

lst = r.create_firewall_domain_list(Name="many", Tags=[{"Key": "team", "Value": "net"}])["FirewallDomainList"]
assert r.list_tags_for_resource(ResourceArn=lst["Arn"])["Tags"] == [{"Key": "team", "Value": "net"}]
r.tag_resource(ResourceArn=lst["Arn"], Tags=[{"Key": "team", "Value": "dns"}, {"Key": "env", "Value": "prod"}])
r.untag_resource(ResourceArn=lst["Arn"], TagKeys=["env"])
assert r.list_tags_for_resource(ResourceArn=lst["Arn"])["Tags"] == [{"Key": "team", "Value": "dns"}]
expect("InvalidTagException", r.tag_resource, ResourceArn=lst["Arn"], Tags=[{"Key": "aws:x", "Value": "y"}])
expect("ResourceNotFoundException", r.list_tags_for_resource,
       ResourceArn=lst["Arn"].replace(lst["Id"], "rslvr-fdl-00000000000000000"))
names = [f"host{i}.example.com" for i in range(1000)]
r.update_firewall_domains(FirewallDomainListId=lst["Id"], Operation="ADD", Domains=names)
r.update_firewall_domains(FirewallDomainListId=lst["Id"], Operation="ADD", Domains=["*.example.org", "*"])
pages = r.get_paginator("list_firewall_domains").paginate(
    FirewallDomainListId=lst["Id"], PaginationConfig={"PageSize": 300})
seen = [d for p in pages for d in p["Domains"]]
assert len(seen) == len(set(seen)) == 1002, len(seen)
assert seen[0] == "*" and "*.example.org" in seen
assert r.get_firewall_domain_list(FirewallDomainListId=lst["Id"])["FirewallDomainList"]["DomainCount"] == 1002
expect("LimitExceededException", r.update_firewall_domains, FirewallDomainListId=lst["Id"],
       Operation="ADD", Domains=[f"x{i}.com" for i in range(1001)])

for i in range(5):
    r.create_firewall_rule_group(Name=f"group-{i}")
groups = [g for p in r.get_paginator("list_firewall_rule_groups").paginate(PaginationConfig={"PageSize": 2})
          for g in p["FirewallRuleGroups"]]
assert len(groups) == 5 and len({g["Id"] for g in groups}) == 5, groups
g = groups[0]["Id"]
# Every name of a CNAME chain is inspected: trusting redirections is refused by name.
msg = expect("ValidationException", r.create_firewall_rule, FirewallRuleGroupId=g,
             FirewallDomainListId=lst["Id"], Priority=10, Action="ALERT", Name="watch",
             FirewallDomainRedirectionAction="TRUST_REDIRECTION_DOMAIN")
assert "TRUST_REDIRECTION_DOMAIN" in msg, msg
rule = r.create_firewall_rule(FirewallRuleGroupId=g, FirewallDomainListId=lst["Id"], Priority=10,
                              Action="ALERT", Name="watch",
                              FirewallDomainRedirectionAction="INSPECT_REDIRECTION_DOMAIN")["FirewallRule"]
assert rule["FirewallDomainRedirectionAction"] == "INSPECT_REDIRECTION_DOMAIN" and "BlockResponse" not in rule
expect("ValidationException", r.create_firewall_rule, FirewallRuleGroupId=g, FirewallDomainListId=lst["Id"],
       Priority=20, Action="BLOCK", Name="no-response")
expect("ValidationException", r.update_firewall_rule, FirewallRuleGroupId=g, FirewallDomainListId=lst["Id"],
       Action="BLOCK")
expect("ValidationException", r.create_firewall_rule, FirewallRuleGroupId=g, FirewallDomainListId=lst["Id"],
       Priority=30, Action="ALLOW", Name="x", DnsThreatProtection="DGA", ConfidenceThreshold="HIGH")

a = r.associate_firewall_rule_group(FirewallRuleGroupId=g, VpcId="vpc-0123456789abcdef0", Priority=500,
                                    Name="locked", MutationProtection="ENABLED")["FirewallRuleGroupAssociation"]
assert a["MutationProtection"] == "ENABLED"
msg = expect("ValidationException", r.disassociate_firewall_rule_group, FirewallRuleGroupAssociationId=a["Id"])
assert "mutation protection" in msg, msg
expect("ValidationException", r.update_firewall_rule_group_association,
       FirewallRuleGroupAssociationId=a["Id"], Priority=600)
expect("ConflictException", r.delete_firewall_rule_group, FirewallRuleGroupId=g)
u = r.update_firewall_rule_group_association(FirewallRuleGroupAssociationId=a["Id"],
                                             MutationProtection="DISABLED", Priority=600)
assert u["FirewallRuleGroupAssociation"]["Priority"] == 600
for i, other in enumerate(groups[1:]):
    r.associate_firewall_rule_group(FirewallRuleGroupId=other["Id"], VpcId="vpc-0123456789abcdef0",
                                    Priority=700 + i, Name=f"a{i}")
assocs = [x for p in r.get_paginator("list_firewall_rule_group_associations").paginate(
          VpcId="vpc-0123456789abcdef0", PaginationConfig={"PageSize": 2})
          for x in p["FirewallRuleGroupAssociations"]]
assert len(assocs) == 5, assocs
extra = r.create_firewall_rule_group(Name="extra")["FirewallRuleGroup"]["Id"]
expect("LimitExceededException", r.associate_firewall_rule_group, FirewallRuleGroupId=extra,
       VpcId="vpc-0123456789abcdef0", Priority=9000, Name="sixth")
r.disassociate_firewall_rule_group(FirewallRuleGroupAssociationId=a["Id"])
expect("ResourceNotFoundException", r.get_firewall_rule_group_association, FirewallRuleGroupAssociationId=a["Id"])
print("ok")
"#,
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

#[test]
fn members_warden_does_not_implement_are_refused_by_name() {
    let s = Server::start();
    let (status, list) = raw(
        &s,
        "CreateFirewallDomainList",
        &json!({"CreatorRequestId": "r1", "Name": "l"}),
    );
    assert_eq!(status, 200, "{list}");
    let list_id = list["FirewallDomainList"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, group) = raw(
        &s,
        "CreateFirewallRuleGroup",
        &json!({"CreatorRequestId": "r2", "Name": "g"}),
    );
    let group_id = group["FirewallRuleGroup"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rule = |extra: Value| {
        let mut body = json!({
            "CreatorRequestId": "r3",
            "FirewallRuleGroupId": group_id,
            "FirewallDomainListId": list_id,
            "Priority": 1,
            "Action": "ALLOW",
            "Name": "r",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        raw(&s, "CreateFirewallRule", &body)
    };
    for (member, value) in [
        ("Qtype", json!("AAAA")),
        ("DnsThreatProtection", json!("DGA")),
        (
            "FirewallRuleType",
            json!({"AutoAllowlist": {"InitialDataTimeframeHours": 1}}),
        ),
        ("BlockOverrideTtl", json!(60)),
        ("Surprise", json!(1)),
    ] {
        let (status, body) = rule(json!({ member: value }));
        assert_eq!(status, 400, "{member}: {body}");
        assert_eq!(body["__type"], "ValidationException", "{member}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(member),
            "{member}: {body}"
        );
    }
    let (status, body) = raw(
        &s,
        "DeleteFirewallRule",
        &json!({"FirewallRuleGroupId": group_id, "FirewallDomainListId": list_id, "Qtype": "A"}),
    );
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    // A missing required member, a wrong content type, an operation not served.
    let (status, body) = raw(&s, "CreateFirewallRuleGroup", &json!({"Name": "x"}));
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ValidationException")),
        "{body}"
    );
    let (status, body) = raw(&s, "CreateResolverEndpoint", &json!({}));
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "UnknownOperationException", "{body}");
    // Nothing was made by the refused requests.
    let (_, rules) = raw(
        &s,
        "ListFirewallRules",
        &json!({"FirewallRuleGroupId": group_id}),
    );
    assert_eq!(rules["FirewallRules"], json!([]));
}

#[test]
fn iam_policies_decide_who_may_change_the_firewall() {
    let s = Server::start();
    let list_id = str_of(
        &r53(&s, &["create-firewall-domain-list", "--name", "l"]),
        &["FirewallDomainList", "Id"],
    )
    .to_owned();
    let open_group = str_of(
        &r53(&s, &["create-firewall-rule-group", "--name", "open"]),
        &["FirewallRuleGroup", "Id"],
    )
    .to_owned();
    let closed_group = str_of(
        &r53(&s, &["create-firewall-rule-group", "--name", "closed"]),
        &["FirewallRuleGroup", "Id"],
    )
    .to_owned();
    let arn = |kind: &str, id: &str| {
        format!("arn:aws:route53resolver:us-east-1:123456789012:{kind}/{id}")
    };
    let editor = user_with_policy(
        &s,
        "editor",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["route53resolver:List*", "route53resolver:Get*"], "Resource": "*"},
            {"Effect": "Allow", "Action": "route53resolver:CreateFirewallRule",
             "Resource": [arn("firewall-rule-group", &open_group), arn("firewall-domain-list", &list_id)]}
        ]}),
    );
    let nobody = user_with_key(&s, "nobody");

    let rule_on = |group: &str, name: &str| {
        vec![
            "route53resolver".to_owned(),
            "create-firewall-rule".into(),
            "--firewall-rule-group-id".into(),
            group.into(),
            "--firewall-domain-list-id".into(),
            list_id.clone(),
            "--priority".into(),
            "1".into(),
            "--action".into(),
            "BLOCK".into(),
            "--block-response".into(),
            "NXDOMAIN".into(),
            "--name".into(),
            name.into(),
        ]
    };
    let allowed = rule_on(&open_group, "ok");
    ok_as(&s, &editor, &as_refs(&allowed));
    let denied = rule_on(&closed_group, "no");
    let out = aws_as(&s, &editor, &as_refs(&denied));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&stderr), "AccessDeniedException", "{stderr}");
    assert!(
        stderr.contains("route53resolver:CreateFirewallRule"),
        "{stderr}"
    );
    // Reads are open to the editor; changes it was not given are not, and a missing
    // resource is refused before anything tells it does not exist.
    let listed = ok_as(
        &s,
        &editor,
        &["route53resolver", "list-firewall-domain-lists"],
    );
    assert_eq!(listed["FirewallDomainLists"].as_array().unwrap().len(), 1);
    for args in [
        vec![
            "route53resolver",
            "create-firewall-domain-list",
            "--name",
            "x",
        ],
        vec![
            "route53resolver",
            "delete-firewall-rule-group",
            "--firewall-rule-group-id",
            "rslvr-frg-00000000000000000",
        ],
        vec![
            "route53resolver",
            "associate-firewall-rule-group",
            "--firewall-rule-group-id",
            &open_group,
            "--vpc-id",
            VPC,
            "--priority",
            "101",
            "--name",
            "a",
        ],
    ] {
        let out = aws_as(&s, &editor, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            error_code(&stderr),
            "AccessDeniedException",
            "{args:?}: {stderr}"
        );
    }
    // A user without any policy may do nothing at all.
    for args in [
        vec!["route53resolver", "list-firewall-rule-groups"],
        vec![
            "route53resolver",
            "get-firewall-domain-list",
            "--firewall-domain-list-id",
            &list_id,
        ],
    ] {
        let out = aws_as(&s, &nobody, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            error_code(&stderr),
            "AccessDeniedException",
            "{args:?}: {stderr}"
        );
    }
    // The admin sees the one rule the editor made.
    let rules = r53(
        &s,
        &[
            "list-firewall-rules",
            "--firewall-rule-group-id",
            &open_group,
        ],
    );
    assert_eq!(rules["FirewallRules"][0]["Name"], "ok");
    let rules = r53(
        &s,
        &[
            "list-firewall-rules",
            "--firewall-rule-group-id",
            &closed_group,
        ],
    );
    assert_eq!(rules["FirewallRules"], json!([]));
}
