//! EC2's network API (VPCs, subnets, security groups, tags) through the real AWS CLI, boto3
//! and raw signed requests: the shapes scripts read, EC2's error codes for every refusal,
//! IAM deciding who may, and everything kept across a restart.

use serde_json::{json, Value};

use crate::harness::{aws_as, error_code, user_with_key, user_with_policy, Credentials, Server};

fn vpc(s: &Server, cidr: &str) -> String {
    s.aws(&["ec2", "create-vpc", "--cidr-block", cidr])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn group(s: &Server, vpc: &str, name: &str) -> String {
    s.aws(&[
        "ec2",
        "create-security-group",
        "--vpc-id",
        vpc,
        "--group-name",
        name,
        "--description",
        &format!("the {name} group"),
    ])["GroupId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The error code of a failed AWS CLI call.
fn fails(s: &Server, args: &[&str]) -> String {
    let e = s.aws_err(args);
    error_code(&e).to_owned()
}

fn describe_group(s: &Server, id: &str) -> Value {
    let out = s.aws(&["ec2", "describe-security-groups", "--group-ids", id]);
    let groups = out["SecurityGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{out}");
    groups[0].clone()
}

/// One EC2 request signed for `ec2` as the admin, with the form `params`.
fn ec2_raw(s: &Server, params: &[(&str, &str)]) -> (u16, String) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let body = form.finish().into_bytes();
    let admin = s.admin();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/", s.endpoint))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.clone())
        .unwrap();
    let signing = warden_auth::SigningCredentials {
        access_key_id: admin.key,
        secret_access_key: admin.secret,
        session_token: None,
    };
    warden_auth::sign_request(
        &mut req,
        &body,
        &signing,
        "us-east-1",
        "ec2",
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
    (status, text)
}

#[test]
fn the_aws_cli_builds_a_network_and_reads_it_back_as_scripts_do() {
    let s = Server::start();
    let created = s.aws(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.20.0.0/16",
        "--tag-specifications",
        "ResourceType=vpc,Tags=[{Key=Name,Value=main}]",
    ]);
    let v = &created["Vpc"];
    let vpc_id = v["VpcId"].as_str().unwrap().to_owned();
    assert!(
        vpc_id.starts_with("vpc-") && vpc_id.len() == 21,
        "{created}"
    );
    assert_eq!(v["CidrBlock"], "10.20.0.0/16");
    assert_eq!(v["State"], "available");
    assert_eq!(v["IsDefault"], false);
    assert_eq!(v["OwnerId"], "123456789012");
    assert_eq!(v["Tags"], json!([{"Key": "Name", "Value": "main"}]));
    assert_eq!(
        v["CidrBlockAssociationSet"][0]["CidrBlockState"]["State"],
        "associated"
    );

    // Every VPC comes with its default group: all out, and in from itself.
    let groups = s.aws(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        &format!("Name=vpc-id,Values={vpc_id}"),
    ]);
    let default = &groups["SecurityGroups"][0];
    assert_eq!(groups["SecurityGroups"].as_array().unwrap().len(), 1);
    assert_eq!(default["GroupName"], "default");
    assert_eq!(default["Description"], "default VPC security group");
    let default_id = default["GroupId"].as_str().unwrap().to_owned();
    assert_eq!(
        default["IpPermissionsEgress"],
        json!([{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}])
    );
    assert_eq!(
        default["IpPermissions"][0]["UserIdGroupPairs"],
        json!([{"GroupId": default_id, "UserId": "123456789012"}])
    );

    let subnet = s.aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc_id,
        "--cidr-block",
        "10.20.1.0/24",
        "--availability-zone",
        "us-east-1b",
    ]);
    let subnet_id = subnet["Subnet"]["SubnetId"].as_str().unwrap().to_owned();
    assert!(subnet_id.starts_with("subnet-"), "{subnet}");
    assert_eq!(subnet["Subnet"]["AvailabilityZone"], "us-east-1b");
    assert_eq!(subnet["Subnet"]["AvailableIpAddressCount"], 251);
    assert_eq!(subnet["Subnet"]["VpcId"], vpc_id.as_str());
    assert_eq!(
        subnet["Subnet"]["SubnetArn"],
        format!("arn:aws:ec2:us-east-1:123456789012:subnet/{subnet_id}")
    );

    let db = group(&s, &vpc_id, "db");
    let web = group(&s, &vpc_id, "web");
    // The CLI's shorthand (--protocol/--port/--cidr) and its JSON permissions.
    let out = s.aws(&[
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &db,
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--cidr",
        "10.20.1.0/24",
    ]);
    assert_eq!(out["Return"], true);
    let rule = &out["SecurityGroupRules"][0];
    let egress_rule = rule["SecurityGroupRuleId"].as_str().unwrap().to_owned();
    assert!(egress_rule.starts_with("sgr-"), "{out}");
    assert_eq!(rule["IsEgress"], true);
    assert_eq!(rule["IpProtocol"], "tcp");
    assert_eq!(
        (rule["FromPort"].clone(), rule["ToPort"].clone()),
        (json!(5432), json!(5432))
    );
    assert_eq!(rule["CidrIpv4"], "10.20.1.0/24");
    assert_eq!(rule["GroupId"], db.as_str());
    let out = s.aws(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &db,
        "--ip-permissions",
        &json!([{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
                 "UserIdGroupPairs": [{"GroupId": web, "Description": "from web"}]},
                {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
                 "IpRanges": [{"CidrIp": "10.20.0.0/16", "Description": "pings"}]}])
        .to_string(),
    ]);
    assert_eq!(
        out["SecurityGroupRules"].as_array().unwrap().len(),
        2,
        "{out}"
    );
    assert_eq!(
        out["SecurityGroupRules"][0]["ReferencedGroupInfo"]["GroupId"],
        web.as_str()
    );

    let g = describe_group(&s, &db);
    assert_eq!(g["GroupName"], "db");
    assert_eq!(g["VpcId"], vpc_id.as_str());
    let egress = g["IpPermissionsEgress"].as_array().unwrap();
    assert_eq!(egress.len(), 2, "{g}");
    assert_eq!(
        egress[1],
        json!({"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
               "IpRanges": [{"CidrIp": "10.20.1.0/24"}], "Ipv6Ranges": [],
               "PrefixListIds": [], "UserIdGroupPairs": []})
    );
    let ingress = g["IpPermissions"].as_array().unwrap();
    assert_eq!(
        ingress[0]["UserIdGroupPairs"],
        json!([{"GroupId": web, "UserId": "123456789012", "Description": "from web"}])
    );
    assert_eq!(ingress[1]["IpRanges"][0]["Description"], "pings");
    assert_eq!(
        (ingress[1]["FromPort"].clone(), ingress[1]["ToPort"].clone()),
        (json!(8), json!(-1))
    );

    let rules = s.aws(&[
        "ec2",
        "describe-security-group-rules",
        "--filters",
        &format!("Name=group-id,Values={db}"),
    ]);
    let ids: Vec<&str> = rules["SecurityGroupRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SecurityGroupRuleId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{rules}");
    assert!(ids.contains(&egress_rule.as_str()));

    // Revoking by rule id and by the shorthand.
    s.aws(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &db,
        "--security-group-rule-ids",
        &egress_rule,
    ]);
    s.aws(&[
        "ec2",
        "revoke-security-group-ingress",
        "--group-id",
        &db,
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--source-group",
        &web,
    ]);
    let g = describe_group(&s, &db);
    assert_eq!(g["IpPermissionsEgress"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["IpPermissions"].as_array().unwrap().len(), 1, "{g}");

    // Tags: set, listed, filtered on, removed.
    s.aws(&[
        "ec2",
        "create-tags",
        "--resources",
        &db,
        &subnet_id,
        "--tags",
        "Key=team,Value=data",
        "Key=tier,Value=",
    ]);
    let tags = s.aws(&[
        "ec2",
        "describe-tags",
        "--filters",
        &format!("Name=resource-id,Values={db}"),
    ]);
    assert_eq!(
        tags["Tags"],
        json!([
            {"ResourceId": db, "ResourceType": "security-group", "Key": "team", "Value": "data"},
            {"ResourceId": db, "ResourceType": "security-group", "Key": "tier", "Value": ""}
        ])
    );
    let tagged = s.aws(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        "Name=tag:team,Values=da*",
    ]);
    assert_eq!(tagged["SecurityGroups"].as_array().unwrap().len(), 1);
    assert_eq!(tagged["SecurityGroups"][0]["GroupId"], db.as_str());
    let named = s.aws(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=tag:Name,Values=main",
        "Name=cidr-block,Values=10.20.0.0/16",
    ]);
    assert_eq!(named["Vpcs"][0]["VpcId"], vpc_id.as_str());
    let none = s.aws(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=tag:Name,Values=other",
    ]);
    assert_eq!(none["Vpcs"], json!([]));
    let subnets = s.aws(&[
        "ec2",
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc_id}"),
        "Name=tag-key,Values=team",
    ]);
    assert_eq!(subnets["Subnets"][0]["SubnetId"], subnet_id.as_str());
    s.aws(&[
        "ec2",
        "delete-tags",
        "--resources",
        &db,
        "--tags",
        "Key=team,Value=other",
        "Key=tier",
    ]);
    let g = describe_group(&s, &db);
    assert_eq!(g["Tags"], json!([{"Key": "team", "Value": "data"}]));

    // Taken apart again, in dependency order.
    s.aws(&["ec2", "delete-security-group", "--group-id", &db]);
    s.aws(&["ec2", "delete-security-group", "--group-id", &web]);
    s.aws(&["ec2", "delete-subnet", "--subnet-id", &subnet_id]);
    s.aws(&["ec2", "delete-vpc", "--vpc-id", &vpc_id]);
    assert_eq!(s.aws(&["ec2", "describe-vpcs"])["Vpcs"], json!([]));
    assert_eq!(
        s.aws(&["ec2", "describe-security-groups"])["SecurityGroups"],
        json!([])
    );
}

#[test]
fn refusals_carry_ec2s_error_codes() {
    let s = Server::start();
    for (cidr, code) in [
        ("10.0.0.0/8", "InvalidVpc.Range"),
        ("10.0.0.0/29", "InvalidVpc.Range"),
        ("10.0.0.1/16", "InvalidParameterValue"),
        ("not-a-cidr", "InvalidParameterValue"),
    ] {
        assert_eq!(
            fails(&s, &["ec2", "create-vpc", "--cidr-block", cidr]),
            code,
            "{cidr}"
        );
    }
    // Fields Warden does not honour are refused by name, never ignored.
    let e = s.aws_err(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--amazon-provided-ipv6-cidr-block",
    ]);
    assert_eq!(error_code(&e), "InvalidParameter", "{e}");
    assert!(e.contains("AmazonProvidedIpv6CidrBlock"), "{e}");
    let e = s.aws_err(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--instance-tenancy",
        "dedicated",
    ]);
    assert_eq!(error_code(&e), "InvalidParameter", "{e}");
    assert!(e.contains("InstanceTenancy"), "{e}");
    // A dry run is authorized and checked, and changes nothing.
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "create-vpc",
                "--cidr-block",
                "10.0.0.0/16",
                "--dry-run"
            ]
        ),
        "DryRunOperation"
    );
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "create-vpc",
                "--cidr-block",
                "10.0.0.0/8",
                "--dry-run"
            ]
        ),
        "InvalidVpc.Range"
    );
    assert_eq!(s.aws(&["ec2", "describe-vpcs"])["Vpcs"], json!([]));

    let v = vpc(&s, "10.0.0.0/16");
    let subnet = s.aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &v,
        "--cidr-block",
        "10.0.1.0/24",
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_owned();
    for (cidr, code) in [
        ("10.1.0.0/24", "InvalidSubnet.Range"),
        ("10.0.1.0/25", "InvalidSubnet.Conflict"),
        ("10.0.0.0/16", "InvalidSubnet.Conflict"),
    ] {
        assert_eq!(
            fails(
                &s,
                &["ec2", "create-subnet", "--vpc-id", &v, "--cidr-block", cidr]
            ),
            code,
            "{cidr}"
        );
    }
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "create-subnet",
                "--vpc-id",
                "vpc-0123456789abcdef0",
                "--cidr-block",
                "10.0.2.0/24"
            ]
        ),
        "InvalidVpcID.NotFound"
    );
    assert_eq!(
        fails(&s, &["ec2", "describe-vpcs", "--vpc-ids", "vpc-nope"]),
        "InvalidVpcID.Malformed"
    );
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "describe-subnets",
                "--subnet-ids",
                "subnet-0123456789abcdef0"
            ]
        ),
        "InvalidSubnetID.NotFound"
    );
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "describe-vpcs",
                "--filters",
                "Name=dhcp-options-id,Values=x"
            ]
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "create-security-group",
                "--group-name",
                "g",
                "--description",
                "d"
            ]
        ),
        "VPCIdNotSpecified"
    );

    let g = group(&s, &v, "app");
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "create-security-group",
                "--vpc-id",
                &v,
                "--group-name",
                "app",
                "--description",
                "again"
            ]
        ),
        "InvalidGroup.Duplicate"
    );
    let allow = [
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &g,
        "--protocol",
        "tcp",
        "--port",
        "443",
        "--cidr",
        "10.0.0.0/24",
    ];
    s.aws(&allow);
    assert_eq!(fails(&s, &allow), "InvalidPermission.Duplicate");
    for (port, cidr, code) in [
        ("443", "10.0.0.1/24", "InvalidParameterValue"),
        ("70000", "10.0.0.0/24", "InvalidParameterValue"),
        ("443-80", "10.0.0.0/24", "InvalidParameterValue"),
    ] {
        assert_eq!(
            fails(
                &s,
                &[
                    "ec2",
                    "authorize-security-group-egress",
                    "--group-id",
                    &g,
                    "--protocol",
                    "tcp",
                    "--port",
                    port,
                    "--cidr",
                    cidr
                ]
            ),
            code,
            "{port} {cidr}"
        );
    }
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "authorize-security-group-egress",
                "--group-id",
                &g,
                "--ip-permissions",
                r#"[{"IpProtocol":"tcp","FromPort":1,"ToPort":2,"PrefixListIds":[{"PrefixListId":"pl-12345678"}]}]"#
            ]
        ),
        "InvalidParameter"
    );
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "revoke-security-group-egress",
                "--group-id",
                &g,
                "--protocol",
                "tcp",
                "--port",
                "22",
                "--cidr",
                "10.0.0.0/24"
            ]
        ),
        "InvalidPermission.NotFound"
    );
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "revoke-security-group-egress",
                "--group-id",
                &g,
                "--security-group-rule-ids",
                "sgr-0123456789abcdef0"
            ]
        ),
        "InvalidSecurityGroupRuleId.NotFound"
    );
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "delete-security-group",
                "--group-id",
                "sg-0123456789abcdef0"
            ]
        ),
        "InvalidGroup.NotFound"
    );
    assert_eq!(
        fails(&s, &["ec2", "delete-security-group", "--group-name", "app"]),
        "InvalidParameter"
    );

    // Dependencies: a VPC with a subnet or a group, the default group.
    assert_eq!(
        fails(&s, &["ec2", "delete-vpc", "--vpc-id", &v]),
        "DependencyViolation"
    );
    let default = s.aws(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        "Name=group-name,Values=default",
        &format!("Name=vpc-id,Values={v}"),
    ])["SecurityGroups"][0]["GroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        fails(
            &s,
            &["ec2", "delete-security-group", "--group-id", &default]
        ),
        "CannotDelete"
    );
    s.aws(&["ec2", "delete-subnet", "--subnet-id", &subnet]);
    assert_eq!(
        fails(&s, &["ec2", "delete-vpc", "--vpc-id", &v]),
        "DependencyViolation"
    );
    s.aws(&["ec2", "delete-security-group", "--group-id", &g]);
    s.aws(&["ec2", "delete-vpc", "--vpc-id", &v]);
    assert_eq!(
        fails(&s, &["ec2", "delete-vpc", "--vpc-id", &v]),
        "InvalidVpcID.NotFound"
    );

    // What no client library would send: an unknown action, an unknown parameter.
    let (status, text) = ec2_raw(&s, &[("Action", "RunInstances"), ("Version", "2016-11-15")]);
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("<Response><Errors><Error><Code>InvalidAction</Code>")
            && text.contains("RunInstances")
            && text.contains("<RequestID>"),
        "{text}"
    );
    let (status, text) = ec2_raw(
        &s,
        &[
            ("Action", "CreateVpc"),
            ("Version", "2016-11-15"),
            ("CidrBlock", "10.0.0.0/16"),
            ("Bogus.1", "x"),
        ],
    );
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("<Code>UnknownParameter</Code>") && text.contains("Bogus.1"),
        "{text}"
    );
    let (status, text) = ec2_raw(&s, &[("Action", "DescribeVpcs"), ("Version", "2016-11-15")]);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(
            "<DescribeVpcsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"
        ) && text.ends_with("<vpcSet></vpcSet></DescribeVpcsResponse>"),
        "{text}"
    );
}

#[test]
fn iam_decides_who_may_change_the_network() {
    let s = Server::start();
    let v = vpc(&s, "10.5.0.0/16");
    let other = vpc(&s, "10.6.0.0/16");
    // Authentication failures in EC2's words.
    let forged = Credentials {
        secret: "x".repeat(40),
        ..s.admin()
    };
    let out = aws_as(&s, &forged, &["ec2", "describe-vpcs"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "SignatureDoesNotMatch", "{e}");
    let stranger = Credentials {
        key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: "y".repeat(40),
        token: None,
    };
    let out = aws_as(&s, &stranger, &["ec2", "describe-vpcs"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "AuthFailure", "{e}");

    let nobody = user_with_key(&s, "nobody");
    let out = aws_as(&s, &nobody, &["ec2", "describe-vpcs"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "UnauthorizedOperation", "{e}");
    // A dry run by someone not allowed is refused as the real call would be.
    let out = aws_as(
        &s,
        &nobody,
        &[
            "ec2",
            "create-vpc",
            "--cidr-block",
            "10.7.0.0/16",
            "--dry-run",
        ],
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "UnauthorizedOperation", "{e}");

    let ops = user_with_policy(
        &s,
        "ops",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ec2:DeleteVpc", "ec2:CreateSecurityGroup"],
             "Resource": [format!("arn:aws:ec2:us-east-1:123456789012:vpc/{v}"),
                          "arn:aws:ec2:us-east-1:123456789012:security-group/*"]}
        ]}),
    );
    let listed = aws_as(&s, &ops, &["ec2", "describe-vpcs"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let out = aws_as(
        &s,
        &ops,
        &["ec2", "create-vpc", "--cidr-block", "10.7.0.0/16"],
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "UnauthorizedOperation", "{e}");
    assert!(e.contains("ec2:CreateVpc"), "{e}");
    // Groups in the VPC its policy names, not in another.
    let made = aws_as(
        &s,
        &ops,
        &[
            "ec2",
            "create-security-group",
            "--vpc-id",
            &v,
            "--group-name",
            "g",
            "--description",
            "d",
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let out = aws_as(
        &s,
        &ops,
        &[
            "ec2",
            "create-security-group",
            "--vpc-id",
            &other,
            "--group-name",
            "g",
            "--description",
            "d",
        ],
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "UnauthorizedOperation", "{e}");
    let out = aws_as(&s, &ops, &["ec2", "delete-vpc", "--vpc-id", &other]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "UnauthorizedOperation", "{e}");
    // Allowed on its VPC: EC2's own refusals come through (the group is still in it).
    let out = aws_as(&s, &ops, &["ec2", "delete-vpc", "--vpc-id", &v]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(error_code(&e), "DependencyViolation", "{e}");
}

#[test]
fn boto3_drives_groups_with_both_rule_shapes_and_pages() {
    let s = Server::start();
    let out = s.python(
        r#"
import os, boto3, botocore
from botocore.config import Config
ec2 = boto3.client("ec2", endpoint_url=os.environ["ENDPOINT"], config=Config(retries={"total_max_attempts": 1}))
def expect(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code, (code, e.response["Error"])
        return e
    raise AssertionError(code + " not raised")
vpc = ec2.create_vpc(CidrBlock="172.16.0.0/16")["Vpc"]["VpcId"]
sub = ec2.create_subnet(VpcId=vpc, CidrBlock="172.16.8.0/21",
    TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "private"}]}])["Subnet"]
assert sub["AvailabilityZone"] == "us-east-1a" and sub["Tags"] == [{"Key": "Name", "Value": "private"}], sub
sg = ec2.create_security_group(GroupName="api", Description="api servers", VpcId=vpc,
    TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "app", "Value": "api"}]}])
gid = sg["GroupId"]
assert sg["Tags"] == [{"Key": "app", "Value": "api"}] and sg["SecurityGroupArn"].endswith("/" + gid), sg
expect("InvalidParameterValue", ec2.create_security_group, GroupName="x", Description="d", VpcId=vpc,
    TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "k", "Value": "v"}]}])
# The legacy top-level shape of ingress rules, and IPv6 ranges.
ec2.authorize_security_group_ingress(GroupId=gid, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="0.0.0.0/0")
expect("InvalidPermission.Duplicate", ec2.authorize_security_group_ingress,
    GroupId=gid, IpProtocol="6", FromPort=443, ToPort=443, CidrIp="0.0.0.0/0")
r = ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[
    {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
     "IpRanges": [{"CidrIp": "172.16.0.2/32"}], "Ipv6Ranges": [{"CidrIpv6": "fd00::/8", "Description": "v6"}]}])
assert [x["IsEgress"] for x in r["SecurityGroupRules"]] == [True, True], r
assert r["SecurityGroupRules"][1]["CidrIpv6"] == "fd00::/8"
expect("InvalidParameter", ec2.authorize_security_group_egress, GroupId=gid, IpProtocol="tcp", FromPort=1, ToPort=1, CidrIp="10.0.0.0/8")
expect("InvalidParameterValue", ec2.authorize_security_group_egress, GroupId=gid,
    IpPermissions=[{"IpProtocol": "gre", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
expect("InvalidGroup.NotFound", ec2.authorize_security_group_egress, GroupId="sg-0123456789abcdef0",
    IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
e = expect("DryRunOperation", ec2.authorize_security_group_egress, GroupId=gid, DryRun=True,
    IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}])
assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412, e.response
g = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["api"]}])["SecurityGroups"][0]
assert g["GroupId"] == gid
assert g["IpPermissions"] == [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
    "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}], g
udp = [p for p in g["IpPermissionsEgress"] if p["IpProtocol"] == "udp"][0]
assert udp["Ipv6Ranges"] == [{"CidrIpv6": "fd00::/8", "Description": "v6"}], udp
ec2.revoke_security_group_ingress(GroupId=gid, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="0.0.0.0/0")
expect("InvalidPermission.NotFound", ec2.revoke_security_group_ingress,
    GroupId=gid, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="0.0.0.0/0")
# Many groups, read a page at a time.
for i in range(7):
    ec2.create_security_group(GroupName=f"g{i}", Description="d", VpcId=vpc)
pages = ec2.get_paginator("describe_security_groups").paginate(PaginationConfig={"PageSize": 5})
ids = [x["GroupId"] for p in pages for x in p["SecurityGroups"]]
assert len(ids) == len(set(ids)) == 9, ids
# The resource API over the same calls.
res = boto3.resource("ec2", endpoint_url=os.environ["ENDPOINT"])
names = sorted(x.group_name for x in res.Vpc(vpc).security_groups.all())
assert names == ["api", "default"] + [f"g{i}" for i in range(7)], names
expect("DependencyViolation", ec2.delete_vpc, VpcId=vpc)
print("ok")
"#,
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

#[test]
fn the_network_survives_a_crash_and_restart() {
    let mut s = Server::start();
    let v = vpc(&s, "10.30.0.0/16");
    let subnet = s.aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &v,
        "--cidr-block",
        "10.30.4.0/22",
        "--tag-specifications",
        "ResourceType=subnet,Tags=[{Key=Name,Value=kept}]",
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_owned();
    let g = group(&s, &v, "kept");
    s.aws(&[
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &g,
        "--protocol",
        "tcp",
        "--port",
        "8000-8100",
        "--cidr",
        "10.30.4.0/22",
    ]);
    let before = (
        s.aws(&["ec2", "describe-vpcs"]),
        s.aws(&["ec2", "describe-subnets"]),
        s.aws(&["ec2", "describe-security-groups"]),
        s.aws(&["ec2", "describe-security-group-rules"]),
    );
    // Killed, not stopped: every acknowledged change is on disk already.
    s.kill9();
    s.restart();
    let after = (
        s.aws(&["ec2", "describe-vpcs"]),
        s.aws(&["ec2", "describe-subnets"]),
        s.aws(&["ec2", "describe-security-groups"]),
        s.aws(&["ec2", "describe-security-group-rules"]),
    );
    assert_eq!(before, after);
    assert_eq!(after.1["Subnets"][0]["SubnetId"], subnet.as_str());
    assert_eq!(after.1["Subnets"][0]["Tags"][0]["Value"], "kept");
    let g = describe_group(&s, &g);
    assert_eq!(g["IpPermissionsEgress"][1]["FromPort"], 8000);
    assert_eq!(g["IpPermissionsEgress"][1]["ToPort"], 8100);
    // And keeps refusing what it refused.
    assert_eq!(
        fails(
            &s,
            &[
                "ec2",
                "create-subnet",
                "--vpc-id",
                &v,
                "--cidr-block",
                "10.30.5.0/24"
            ]
        ),
        "InvalidSubnet.Conflict"
    );
}
