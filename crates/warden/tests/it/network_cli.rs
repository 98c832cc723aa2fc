//! `warden network vpc|subnet|sg ...` against a real server: what the commands make is
//! read back with the AWS CLI, what they print is checked line by line, and refusals are
//! one line naming EC2's error code (or, for combinations the CLI refuses itself, why).

use std::process::Output;

use serde_json::{json, Value};

use crate::harness::{
    error_code, user_with_key, user_with_policy, warden_bin, Credentials, Server,
};

/// Stdout of a command that must succeed.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one line a command that must fail with status 1 printed on stderr.
fn refused(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr.trim_end().to_owned()
}

/// The single id a create command printed.
fn id(out: &Output, prefix: &str) -> String {
    let text = ok(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with(prefix), "{text}");
    lines[0].to_owned()
}

/// The words of the table line that contains `word` as a whole word.
fn row(table: &str, word: &str) -> Vec<String> {
    let rows: Vec<Vec<String>> = table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|w| w.iter().any(|x| x == word))
        .collect();
    assert_eq!(rows.len(), 1, "one row with {word} in:\n{table}");
    rows.into_iter().next().unwrap()
}

fn describe_group(s: &Server, id: &str) -> Value {
    let out = s.aws(&["ec2", "describe-security-groups", "--group-ids", id]);
    out["SecurityGroups"][0].clone()
}

#[test]
fn build_a_network_and_read_it_back_with_the_aws_cli() {
    let s = Server::start();

    // VPCs.
    let v1 = id(
        &s.warden(&[
            "network",
            "vpc",
            "create",
            "--cidr",
            "10.40.0.0/16",
            "--tag",
            "Name=cli-net",
        ]),
        "vpc-",
    );
    let v2 = id(
        &s.warden(&["network", "vpc", "create", "--cidr", "10.41.0.0/16"]),
        "vpc-",
    );
    let described = s.aws(&["ec2", "describe-vpcs", "--vpc-ids", &v1]);
    let vpc = &described["Vpcs"][0];
    assert_eq!(vpc["CidrBlock"], "10.40.0.0/16");
    assert_eq!(vpc["Tags"], json!([{"Key": "Name", "Value": "cli-net"}]));
    let list = ok(&s.warden(&["network", "vpc", "list"]));
    assert!(list.starts_with("VPC "), "{list}");
    assert_eq!(
        row(&list, v1.as_str()),
        [v1.as_str(), "10.40.0.0/16", "no", "Name=cli-net"]
    );
    assert_eq!(
        row(&list, v2.as_str()),
        [v2.as_str(), "10.41.0.0/16", "no", "-"]
    );
    let json: Value =
        serde_json::from_str(&ok(&s.warden(&["network", "vpc", "list", "--json"]))).unwrap();
    let ids: Vec<&str> = json["vpcSet"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["vpcId"].as_str())
        .collect();
    assert!(
        ids.contains(&v1.as_str()) && ids.contains(&v2.as_str()),
        "{json}"
    );

    // Subnets.
    let s1 = id(
        &s.warden(&[
            "network",
            "subnet",
            "create",
            "--vpc",
            &v1,
            "--cidr",
            "10.40.1.0/24",
            "--az",
            "us-east-1b",
        ]),
        "subnet-",
    );
    let s2 = id(
        &s.warden(&[
            "network",
            "subnet",
            "create",
            "--vpc",
            &v2,
            "--cidr",
            "10.41.1.0/24",
        ]),
        "subnet-",
    );
    let subnet = &s.aws(&["ec2", "describe-subnets", "--subnet-ids", &s1])["Subnets"][0];
    assert_eq!(subnet["VpcId"], v1.as_str());
    assert_eq!(subnet["CidrBlock"], "10.40.1.0/24");
    assert_eq!(subnet["AvailabilityZone"], "us-east-1b");
    let list = ok(&s.warden(&["network", "subnet", "list", "--vpc", &v1]));
    assert_eq!(
        row(&list, s1.as_str()),
        [s1.as_str(), v1.as_str(), "10.40.1.0/24", "us-east-1b", "-"]
    );
    assert!(!list.contains(&s2), "{list}");
    assert!(ok(&s.warden(&["network", "subnet", "list"])).contains(&s2));

    // Groups: one that starts default-deny, one with EC2's allow-all egress.
    let db = id(
        &s.warden(&[
            "network",
            "sg",
            "create",
            "--vpc",
            &v1,
            "--name",
            "db",
            "--description",
            "the database",
            "--deny-all-egress",
        ]),
        "sg-",
    );
    let web = id(
        &s.warden(&["network", "sg", "create", "--vpc", &v1, "--name", "web"]),
        "sg-",
    );
    let g = describe_group(&s, &db);
    assert_eq!(g["GroupName"], "db");
    assert_eq!(g["Description"], "the database");
    assert_eq!(g["VpcId"], v1.as_str());
    assert_eq!(g["IpPermissionsEgress"], json!([]), "{g}");
    let g = describe_group(&s, &web);
    assert_eq!(
        g["Description"], "web",
        "the name stands in for a description"
    );
    let egress = g["IpPermissionsEgress"].as_array().unwrap();
    assert_eq!(egress.len(), 1, "{g}");
    assert_eq!(egress[0]["IpProtocol"], "-1");
    assert_eq!(egress[0]["IpRanges"][0]["CidrIp"], "0.0.0.0/0");

    // Rules.
    let allow = |args: &[&str]| {
        let mut argv = vec!["network", "sg", "allow", db.as_str()];
        argv.extend_from_slice(args);
        id(&s.warden(&argv), "sgr-")
    };
    let r_pg = allow(&[
        "--egress",
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--cidr",
        "10.40.1.0/24",
        "--description",
        "postgres",
    ]);
    let r_all = allow(&["--egress", "--protocol", "all", "--cidr", "10.42.0.0/16"]);
    let r_web = allow(&[
        "--ingress",
        "--protocol",
        "tcp",
        "--ports",
        "8000-8080",
        "--group",
        &web,
    ]);
    let r_ping = allow(&["--ingress", "--protocol", "icmp", "--cidr", "10.40.0.0/16"]);
    let g = describe_group(&s, &db);
    let egress = g["IpPermissionsEgress"].as_array().unwrap();
    let pg = egress
        .iter()
        .find(|p| p["IpProtocol"] == "tcp")
        .unwrap_or_else(|| panic!("{g}"));
    assert_eq!(
        (pg["FromPort"].as_i64(), pg["ToPort"].as_i64()),
        (Some(5432), Some(5432))
    );
    assert_eq!(pg["IpRanges"][0]["CidrIp"], "10.40.1.0/24");
    assert_eq!(pg["IpRanges"][0]["Description"], "postgres");
    let all = egress
        .iter()
        .find(|p| p["IpProtocol"] == "-1")
        .unwrap_or_else(|| panic!("{g}"));
    assert_eq!(all["IpRanges"][0]["CidrIp"], "10.42.0.0/16");
    let ingress = g["IpPermissions"].as_array().unwrap();
    let from_web = ingress
        .iter()
        .find(|p| p["IpProtocol"] == "tcp")
        .unwrap_or_else(|| panic!("{g}"));
    assert_eq!(
        (from_web["FromPort"].as_i64(), from_web["ToPort"].as_i64()),
        (Some(8000), Some(8080))
    );
    assert_eq!(from_web["UserIdGroupPairs"][0]["GroupId"], web.as_str());
    assert!(
        ingress
            .iter()
            .any(|p| p["IpProtocol"] == "icmp" && p["IpRanges"][0]["CidrIp"] == "10.40.0.0/16"),
        "{g}"
    );
    let rules = s.aws(&[
        "ec2",
        "describe-security-group-rules",
        "--filters",
        &format!("Name=group-id,Values={db}"),
    ]);
    let mut rule_ids: Vec<&str> = rules["SecurityGroupRules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["SecurityGroupRuleId"].as_str())
        .collect();
    rule_ids.sort_unstable();
    let mut ours = vec![
        r_pg.as_str(),
        r_all.as_str(),
        r_web.as_str(),
        r_ping.as_str(),
    ];
    ours.sort_unstable();
    assert_eq!(rule_ids, ours);

    // What `sg show` and `sg list` print.
    let shown = ok(&s.warden(&["network", "sg", "show", &db]));
    assert_eq!(shown.lines().count(), 5, "{shown}");
    assert!(shown.starts_with("DIRECTION "), "{shown}");
    assert_eq!(
        row(&shown, r_pg.as_str()),
        [
            "egress",
            "tcp",
            "5432",
            "10.40.1.0/24",
            r_pg.as_str(),
            "postgres"
        ]
    );
    assert_eq!(
        row(&shown, r_all.as_str()),
        ["egress", "all", "all", "10.42.0.0/16", r_all.as_str()]
    );
    assert_eq!(
        row(&shown, r_web.as_str()),
        ["ingress", "tcp", "8000-8080", web.as_str(), r_web.as_str()]
    );
    assert_eq!(
        row(&shown, r_ping.as_str()),
        ["ingress", "icmp", "all", "10.40.0.0/16", r_ping.as_str()]
    );
    let lines: Vec<&str> = shown.lines().skip(1).collect();
    assert!(
        lines[..2].iter().all(|l| l.starts_with("egress")),
        "egress rules come first:\n{shown}"
    );
    let json: Value =
        serde_json::from_str(&ok(&s.warden(&["network", "sg", "show", &db, "--json"]))).unwrap();
    assert_eq!(
        json["securityGroupRuleSet"].as_array().unwrap().len(),
        4,
        "{json}"
    );
    let list = ok(&s.warden(&["network", "sg", "list", "--vpc", &v1]));
    assert_eq!(
        row(&list, db.as_str()),
        [db.as_str(), v1.as_str(), "db", "2", "2", "the", "database"]
    );
    assert_eq!(
        row(&list, web.as_str()),
        [web.as_str(), v1.as_str(), "web", "0", "1", "web"]
    );
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("default")),
        "every VPC has its default group:\n{list}"
    );
    assert_eq!(list.lines().count(), 4, "{list}");

    // In use: EC2's codes, one line each.
    let e = refused(&s.warden(&["network", "sg", "delete", &web]));
    assert!(e.ends_with("(DependencyViolation)"), "{e}");
    let e = refused(&s.warden(&["network", "vpc", "delete", &v1]));
    assert!(e.ends_with("(DependencyViolation)"), "{e}");

    // Revoking: by rule id, its direction looked up.
    let e = refused(&s.warden(&["network", "sg", "revoke", &web, "--rule", &r_pg]));
    assert!(e.contains(&format!("belongs to {db}, not {web}")), "{e}");
    let out = ok(&s.warden(&["network", "sg", "revoke", &db, "--rule", &r_pg]));
    assert_eq!(
        out.trim_end(),
        format!("revoked egress tcp 5432 10.40.1.0/24 {r_pg} postgres")
    );
    let out = ok(&s.warden(&["network", "sg", "revoke", &db, "--rule", &r_web]));
    assert!(out.starts_with("revoked ingress tcp 8000-8080"), "{out}");
    let gone = s.aws_err(&[
        "ec2",
        "describe-security-group-rules",
        "--security-group-rule-ids",
        &r_pg,
    ]);
    assert_eq!(error_code(&gone), "InvalidSecurityGroupRuleId.NotFound");
    let g = describe_group(&s, &db);
    assert_eq!(g["IpPermissionsEgress"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["IpPermissions"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["IpPermissions"][0]["IpProtocol"], "icmp", "{g}");

    // Deleting, in order.
    for (kind, id) in [
        ("sg", web.as_str()),
        ("sg", db.as_str()),
        ("subnet", s1.as_str()),
        ("vpc", v1.as_str()),
    ] {
        let out = ok(&s.warden(&["network", kind, "delete", id]));
        assert_eq!(out.trim_end(), format!("deleted {id}"));
    }
    let gone = s.aws_err(&["ec2", "describe-vpcs", "--vpc-ids", &v1]);
    assert_eq!(error_code(&gone), "InvalidVpcID.NotFound");
    let list = ok(&s.warden(&["network", "vpc", "list"]));
    assert!(!list.contains(&v1) && list.contains(&v2), "{list}");
}

#[test]
fn refusals_are_one_line_naming_ec2s_code_or_what_the_cli_refuses() {
    let s = Server::start();
    let nowhere = "vpc-0123456789abcdef0";
    let e = refused(&s.warden(&["network", "vpc", "delete", nowhere]));
    assert!(e.starts_with("error: "), "{e}");
    assert!(
        e.ends_with("(InvalidVpcID.NotFound)") && e.contains(nowhere),
        "{e}"
    );
    let e = refused(&s.warden(&["network", "vpc", "create", "--cidr", "10.0.0.0/8"]));
    assert!(e.ends_with("(InvalidVpc.Range)"), "{e}");
    let e = refused(&s.warden(&[
        "network",
        "subnet",
        "create",
        "--vpc",
        nowhere,
        "--cidr",
        "10.0.1.0/24",
    ]));
    assert!(e.ends_with("(InvalidVpcID.NotFound)"), "{e}");
    let group = "sg-0123456789abcdef0";
    let e = refused(&s.warden(&["network", "sg", "show", group]));
    assert!(e.ends_with("(InvalidGroup.NotFound)"), "{e}");
    let e = refused(&s.warden(&[
        "network",
        "sg",
        "revoke",
        group,
        "--rule",
        "sgr-0123456789abcdef0",
    ]));
    assert!(e.ends_with("(InvalidSecurityGroupRuleId.NotFound)"), "{e}");

    // Refused by the CLI before any request: no EC2 code, the reason.
    let e = refused(&s.warden(&[
        "network",
        "sg",
        "allow",
        group,
        "--egress",
        "--protocol",
        "all",
        "--port",
        "22",
        "--cidr",
        "10.0.0.0/8",
    ]));
    assert!(
        e.contains("--protocol all") && !e.contains("NotFound"),
        "{e}"
    );
    for (args, says) in [
        (
            vec![
                "--egress",
                "--protocol",
                "tcp",
                "--cidr",
                "10.0.0.0/8",
                "--group",
                "sg-1",
            ],
            "cannot be used with",
        ),
        (
            vec!["--protocol", "tcp", "--cidr", "10.0.0.0/8"],
            "--egress",
        ),
        (
            vec![
                "--egress",
                "--ingress",
                "--protocol",
                "tcp",
                "--cidr",
                "10.0.0.0/8",
            ],
            "cannot be used with",
        ),
        (vec!["--egress", "--protocol", "tcp"], "--cidr"),
    ] {
        let mut argv = vec!["network", "sg", "allow", group];
        argv.extend_from_slice(&args);
        let out = s.warden(&argv);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    // IAM decides: a user without EC2 permissions gets EC2's denial.
    let nobody = user_with_key(&s, "nobody");
    let e = refused(&warden_as(&s, &nobody, &["network", "vpc", "list"]));
    assert!(e.ends_with("(UnauthorizedOperation)"), "{e}");

    // A group that cannot be made default-deny is not left behind allowing all egress.
    let v = id(
        &s.warden(&["network", "vpc", "create", "--cidr", "10.50.0.0/16"]),
        "vpc-",
    );
    let maker = user_with_policy(
        &s,
        "maker",
        &json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup"],
            "Resource": "*"
        }]}),
    );
    let e = refused(&warden_as(
        &s,
        &maker,
        &[
            "network",
            "sg",
            "create",
            "--vpc",
            &v,
            "--name",
            "locked",
            "--deny-all-egress",
        ],
    ));
    assert!(
        e.contains("so it was deleted again") && e.ends_with("(UnauthorizedOperation)"),
        "{e}"
    );
    let left = s.aws(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        "Name=group-name,Values=locked",
    ]);
    assert_eq!(left["SecurityGroups"], json!([]), "{left}");
}

/// Runs the `warden` CLI as `who`, with nothing else from the environment.
fn warden_as(s: &Server, who: &Credentials, args: &[&str]) -> Output {
    std::process::Command::new(warden_bin())
        .args(["--endpoint-url", &s.endpoint])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", &who.key)
        .env("AWS_SECRET_ACCESS_KEY", &who.secret)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}
