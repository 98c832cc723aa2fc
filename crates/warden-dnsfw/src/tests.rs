#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it did not expect"
)]

use proptest::prelude::*;

use crate::*;

const VPC: &str = "vpc-0123456789abcdef0";
const OTHER_VPC: &str = "vpc-01234567";

fn open(dir: &tempfile::TempDir) -> DnsFirewall {
    DnsFirewall::open(dir.path(), "123456789012", "us-east-1").unwrap()
}

fn fw() -> (tempfile::TempDir, DnsFirewall) {
    let dir = tempfile::tempdir().unwrap();
    let fw = open(&dir);
    (dir, fw)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn list(fw: &DnsFirewall, name: &str, domains: &[&str]) -> String {
    let l = fw
        .create_domain_list(NewDomainList {
            creator_request_id: format!("req-{name}"),
            name: name.into(),
            tags: Vec::new(),
        })
        .unwrap();
    if !domains.is_empty() {
        fw.update_domains(&l.id, DomainUpdate::Add, &s(domains))
            .unwrap();
    }
    l.id
}

fn group(fw: &DnsFirewall, name: &str) -> String {
    fw.create_rule_group(NewRuleGroup {
        creator_request_id: format!("req-{name}"),
        name: name.into(),
        tags: Vec::new(),
    })
    .unwrap()
    .id
}

fn rule(fw: &DnsFirewall, group: &str, list: &str, name: &str, priority: i64, action: Action) {
    fw.create_rule(NewRule {
        creator_request_id: format!("req-{group}-{name}"),
        group_id: group.into(),
        domain_list_id: list.into(),
        priority,
        action,
        redirection: Redirection::default(),
        name: name.into(),
    })
    .unwrap();
}

fn associate(fw: &DnsFirewall, group: &str, vpc: &str, priority: i64) -> Association {
    fw.associate(NewAssociation {
        creator_request_id: format!("req-{group}-{vpc}"),
        group_id: group.into(),
        vpc_id: vpc.into(),
        priority,
        name: "assoc".into(),
        mutation_protection: false,
        tags: Vec::new(),
    })
    .unwrap()
}

fn allow() -> Verdict {
    Verdict::Allow { alerted_by: None }
}

fn block(rule: &str, response: BlockResponse) -> Verdict {
    Verdict::Block {
        rule: rule.into(),
        response,
    }
}

// ---- checks ----

#[test]
fn domains_are_kept_lowercase_without_the_trailing_dot() {
    for (given, stored) in [
        ("example.com", "example.com"),
        ("Example.COM.", "example.com"),
        ("*.example.com", "*.example.com"),
        ("*.Example.com.", "*.example.com"),
        ("*", "*"),
        ("*.", "*"),
        ("localhost", "localhost"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.e1", "a-b.c-d.e1"),
    ] {
        assert_eq!(check_domain(given).unwrap(), stored, "{given}");
        // The stored form is a fixed point.
        assert_eq!(check_domain(stored).unwrap(), stored);
    }
    let long_label = "a".repeat(64);
    let long_name = format!("{}.com", vec!["a".repeat(63); 4].join("."));
    for bad in [
        "",
        ".",
        "..",
        "a..b",
        ".example.com",
        "example.com..",
        "ex ample.com",
        "under_score.com",
        "*example.com",
        "ex*ample.com",
        "*.*.example.com",
        "example.*",
        "**",
        "bücher.example",
        "example.com/path",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        let e = check_domain(bad).unwrap_err();
        assert_eq!(e.code(), "ValidationException", "{bad}");
    }
}

#[test]
fn names_request_ids_vpcs_priorities_and_tags_are_checked() {
    for good in ["a", "my list", "block-bad_domains", "it's", "0a"] {
        check_name(good).unwrap();
    }
    for bad in ["", "123", "a/b", "é", &"a".repeat(65)] {
        assert_eq!(check_name(bad).unwrap_err().code(), "ValidationException");
    }
    check_creator_request_id("x").unwrap();
    assert!(check_creator_request_id("").is_err());
    assert!(check_creator_request_id(&"x".repeat(256)).is_err());
    check_vpc_id(VPC).unwrap();
    check_vpc_id(OTHER_VPC).unwrap();
    for bad in [
        "vpc-",
        "vpc-0123",
        "vpc-0123456789ABCDEF0",
        "subnet-01234567",
        "vpc-0123456g",
    ] {
        assert!(check_vpc_id(bad).is_err(), "{bad}");
    }
    check_association_priority(101).unwrap();
    check_association_priority(9900).unwrap();
    for bad in [100, 9901, -1, 0] {
        assert!(check_association_priority(bad).is_err());
    }
    check_rule_priority(0).unwrap();
    assert!(check_rule_priority(-1).is_err());
    assert!(check_rule_priority(i64::from(i32::MAX) + 1).is_err());
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    check_tags(&[tag("team", ""), tag("env", "prod")]).unwrap();
    assert!(check_tags(&[tag("", "x")]).is_err());
    assert!(check_tags(&[tag("aws:x", "x")]).is_err());
    assert!(check_tags(&[tag("a", "x"), tag("a", "y")]).is_err());
    assert!(check_tags(&[tag("a", &"v".repeat(257))]).is_err());
    let many: Vec<_> = (0..=MAX_TAGS).map(|i| tag(&format!("k{i}"), "v")).collect();
    assert!(check_tags(&many).is_err());
}

#[test]
fn enumerations_refuse_what_warden_does_not_implement_by_name() {
    let e = BlockResponse::parse("OVERRIDE").unwrap_err();
    assert!(e.to_string().contains("OVERRIDE"), "{e}");
    assert!(BlockResponse::parse("nxdomain").is_err());
    assert_eq!(
        Action::parse("BLOCK", Some("NODATA")).unwrap(),
        Action::Block(BlockResponse::NoData)
    );
    assert_eq!(Action::parse("ALERT", None).unwrap(), Action::Alert);
    assert!(Action::parse("BLOCK", None).is_err());
    assert!(Action::parse("ALLOW", Some("NXDOMAIN")).is_err());
    assert!(Action::parse("DROP", None).is_err());
    let e = DomainUpdate::parse("DENY").unwrap_err();
    assert!(e.to_string().contains("DENY"), "{e}");
    assert!(DomainUpdate::parse("add").is_err());
    assert_eq!(
        Redirection::parse("TRUST_REDIRECTION_DOMAIN").unwrap(),
        Redirection::Trust
    );
    assert!(Redirection::parse("x").is_err());
}

// ---- domain lists ----

#[test]
fn domain_lists_add_remove_and_replace_their_domains() {
    let (_dir, fw) = fw();
    let id = list(&fw, "lst", &[]);
    assert!(id.starts_with("rslvr-fdl-") && id.len() == "rslvr-fdl-".len() + 17);
    let l = fw.domain_list(&id).unwrap();
    assert_eq!(
        l.arn,
        format!("arn:aws:route53resolver:us-east-1:123456789012:firewall-domain-list/{id}")
    );
    assert_eq!(l.domain_count, 0);
    let l = fw
        .update_domains(
            &id,
            DomainUpdate::Add,
            &s(&["b.com", "A.com.", "a.com", "*.c.com"]),
        )
        .unwrap();
    assert_eq!(l.domain_count, 3);
    assert_eq!(fw.domains(&id).unwrap(), s(&["*.c.com", "a.com", "b.com"]));
    fw.update_domains(&id, DomainUpdate::Remove, &s(&["B.COM", "missing.com"]))
        .unwrap();
    assert_eq!(fw.domains(&id).unwrap(), s(&["*.c.com", "a.com"]));
    fw.update_domains(&id, DomainUpdate::Replace, &s(&["z.com", "*"]))
        .unwrap();
    assert_eq!(fw.domains(&id).unwrap(), s(&["*", "z.com"]));
    fw.update_domains(&id, DomainUpdate::Replace, &[]).unwrap();
    assert_eq!(fw.domain_list(&id).unwrap().domain_count, 0);

    // One bad domain refuses the whole update.
    let e = fw
        .update_domains(&id, DomainUpdate::Add, &s(&["ok.com", "bad_domain.com"]))
        .unwrap_err();
    assert_eq!(e.code(), "ValidationException");
    assert!(fw.domains(&id).unwrap().is_empty());

    let too_many: Vec<String> = (0..=MAX_DOMAINS_PER_UPDATE)
        .map(|i| format!("d{i}.com"))
        .collect();
    let e = fw
        .update_domains(&id, DomainUpdate::Add, &too_many)
        .unwrap_err();
    assert_eq!(e.code(), "LimitExceededException");
    let e = fw
        .update_domains(
            "rslvr-fdl-00000000000000000",
            DomainUpdate::Add,
            &s(&["a.com"]),
        )
        .unwrap_err();
    assert_eq!(e.code(), "ResourceNotFoundException");
    assert_eq!(e.resource_type(), Some("FirewallDomainList"));
}

#[test]
fn all_lists_together_hold_at_most_the_domain_limit() {
    let (_dir, fw) = fw();
    let a = list(&fw, "a", &[]);
    let b = list(&fw, "b", &[]);
    let per = MAX_DOMAINS_PER_UPDATE;
    for round in 0..MAX_DOMAINS / per {
        let target = if round % 2 == 0 { &a } else { &b };
        let batch: Vec<String> = (0..per).map(|i| format!("d{round}-{i}.com")).collect();
        fw.update_domains(target, DomainUpdate::Add, &batch)
            .unwrap();
    }
    let e = fw
        .update_domains(&a, DomainUpdate::Add, &s(&["one-more.com"]))
        .unwrap_err();
    assert_eq!(e.code(), "LimitExceededException");
    // Replacing within the limit still works, and frees room.
    fw.update_domains(&a, DomainUpdate::Replace, &s(&["x.com"]))
        .unwrap();
    fw.update_domains(&b, DomainUpdate::Add, &s(&["one-more.com"]))
        .unwrap();
}

#[test]
fn creator_request_ids_make_creates_idempotent() {
    let (_dir, fw) = fw();
    let new = NewDomainList {
        creator_request_id: "r1".into(),
        name: "lst".into(),
        tags: vec![("k".into(), "v".into())],
    };
    let first = fw.create_domain_list(new.clone()).unwrap();
    let again = fw.create_domain_list(new.clone()).unwrap();
    assert_eq!(first, again);
    assert_eq!(fw.domain_lists().len(), 1);
    let e = fw
        .create_domain_list(NewDomainList {
            name: "other".into(),
            ..new
        })
        .unwrap_err();
    assert_eq!(e.code(), "ValidationException");

    let g = NewRuleGroup {
        creator_request_id: "r1".into(),
        name: "grp".into(),
        tags: Vec::new(),
    };
    let g1 = fw.create_rule_group(g.clone()).unwrap();
    assert_eq!(fw.create_rule_group(g).unwrap().id, g1.id);

    let r = NewRule {
        creator_request_id: "r1".into(),
        group_id: g1.id.clone(),
        domain_list_id: first.id.clone(),
        priority: 10,
        action: Action::Alert,
        redirection: Redirection::Inspect,
        name: "rule".into(),
    };
    let r1 = fw.create_rule(r.clone()).unwrap();
    assert_eq!(fw.create_rule(r.clone()).unwrap(), r1);
    assert_eq!(fw.rules(&g1.id).unwrap().len(), 1);
    let e = fw.create_rule(NewRule { priority: 11, ..r }).unwrap_err();
    assert_eq!(e.code(), "ValidationException");

    let a = NewAssociation {
        creator_request_id: "r1".into(),
        group_id: g1.id.clone(),
        vpc_id: VPC.into(),
        priority: 101,
        name: "a".into(),
        mutation_protection: false,
        tags: Vec::new(),
    };
    let a1 = fw.associate(a.clone()).unwrap();
    assert_eq!(fw.associate(a.clone()).unwrap(), a1);
    let e = fw
        .associate(NewAssociation { priority: 200, ..a })
        .unwrap_err();
    assert_eq!(e.code(), "ValidationException");
    assert_eq!(fw.associations().len(), 1);
}

// ---- rules and groups ----

#[test]
fn rules_are_unique_per_domain_list_and_priority_in_their_group() {
    let (_dir, fw) = fw();
    let l1 = list(&fw, "l1", &["a.com"]);
    let l2 = list(&fw, "l2", &["b.com"]);
    let g = group(&fw, "g");
    rule(&fw, &g, &l1, "first", 100, Action::Allow);
    let dup = |list: &str, priority: i64, req: &str| {
        fw.create_rule(NewRule {
            creator_request_id: req.into(),
            group_id: g.clone(),
            domain_list_id: list.into(),
            priority,
            action: Action::Alert,
            redirection: Redirection::Inspect,
            name: "dup".into(),
        })
    };
    assert_eq!(
        dup(&l2, 100, "x1").unwrap_err().code(),
        "ValidationException"
    );
    assert_eq!(
        dup(&l1, 200, "x2").unwrap_err().code(),
        "ValidationException"
    );
    let e = dup("rslvr-fdl-00000000000000000", 300, "x3").unwrap_err();
    assert_eq!(e.resource_type(), Some("FirewallDomainList"));
    let e = fw
        .create_rule(NewRule {
            creator_request_id: "x4".into(),
            group_id: "rslvr-frg-00000000000000000".into(),
            domain_list_id: l2.clone(),
            priority: 1,
            action: Action::Alert,
            redirection: Redirection::Inspect,
            name: "r".into(),
        })
        .unwrap_err();
    assert_eq!(e.resource_type(), Some("FirewallRuleGroup"));
    dup(&l2, 50, "x5").unwrap();
    let rules = fw.rules(&g).unwrap();
    assert_eq!(
        rules.iter().map(|r| r.priority).collect::<Vec<_>>(),
        [50, 100],
        "rules come in priority order"
    );
    assert_eq!(fw.rule_group(&g).unwrap().rule_count, 2);

    // Updates: priority clashes refused, BLOCK keeps or needs a response.
    let e = fw
        .update_rule(
            &g,
            &l2,
            RuleChange {
                priority: Some(100),
                ..RuleChange::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "ValidationException");
    let e = fw
        .update_rule(
            &g,
            &l2,
            RuleChange {
                action: Some("BLOCK".into()),
                ..RuleChange::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "ValidationException");
    let r = fw
        .update_rule(
            &g,
            &l2,
            RuleChange {
                action: Some("BLOCK".into()),
                block_response: Some("NODATA".into()),
                priority: Some(150),
                name: Some("blocker".into()),
                redirection: Some(Redirection::Trust),
            },
        )
        .unwrap();
    assert_eq!(r.action, Action::Block(BlockResponse::NoData));
    let r = fw
        .update_rule(
            &g,
            &l2,
            RuleChange {
                block_response: Some("NXDOMAIN".into()),
                ..RuleChange::default()
            },
        )
        .unwrap();
    assert_eq!(r.action, Action::Block(BlockResponse::NxDomain));
    assert_eq!((r.priority, r.name.as_str()), (150, "blocker"));
    assert_eq!(r.redirection, Redirection::Trust);
    let e = fw
        .update_rule(
            &g,
            &l2,
            RuleChange {
                block_response: Some("OVERRIDE".into()),
                ..RuleChange::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("OVERRIDE"));
    let r = fw
        .update_rule(
            &g,
            &l2,
            RuleChange {
                action: Some("ALLOW".into()),
                ..RuleChange::default()
            },
        )
        .unwrap();
    assert_eq!(r.action, Action::Allow);
    assert_eq!(
        fw.rules(&g)
            .unwrap()
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["first", "blocker"]
    );
    let e = fw
        .update_rule(&g, "rslvr-fdl-00000000000000000", RuleChange::default())
        .unwrap_err();
    assert_eq!(e.resource_type(), Some("FirewallRule"));

    // A list in use cannot go; once its rule is gone it can.
    let e = fw.delete_domain_list(&l1).unwrap_err();
    assert_eq!(e.code(), "ConflictException");
    let deleted = fw.delete_rule(&g, &l1).unwrap();
    assert_eq!(deleted.name, "first");
    assert_eq!(
        fw.delete_rule(&g, &l1).unwrap_err().code(),
        "ResourceNotFoundException"
    );
    fw.delete_domain_list(&l1).unwrap();
    assert_eq!(
        fw.domain_list(&l1).unwrap_err().code(),
        "ResourceNotFoundException"
    );
}

#[test]
fn associated_groups_cannot_be_deleted_and_protected_associations_stay() {
    let (_dir, fw) = fw();
    let l = list(&fw, "l", &["a.com"]);
    let g = group(&fw, "g");
    rule(&fw, &g, &l, "r", 1, Action::Block(BlockResponse::NxDomain));
    let a = fw
        .associate(NewAssociation {
            creator_request_id: "a".into(),
            group_id: g.clone(),
            vpc_id: VPC.into(),
            priority: 101,
            name: "a".into(),
            mutation_protection: true,
            tags: Vec::new(),
        })
        .unwrap();
    assert!(a.id.starts_with("rslvr-frgassoc-"));
    assert!(a
        .arn
        .ends_with(&format!(":firewall-rule-group-association/{}", a.id)));
    assert_eq!(
        fw.delete_rule_group(&g).unwrap_err().code(),
        "ConflictException"
    );
    assert_eq!(
        fw.disassociate(&a.id).unwrap_err().code(),
        "ValidationException"
    );
    let e = fw
        .update_association(
            &a.id,
            AssociationChange {
                priority: Some(200),
                ..AssociationChange::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "ValidationException");
    let a2 = fw
        .update_association(
            &a.id,
            AssociationChange {
                mutation_protection: Some(false),
                priority: Some(300),
                name: Some("renamed".into()),
            },
        )
        .unwrap();
    assert!(!a2.mutation_protection);
    assert_eq!((a2.priority, a2.name.as_str()), (300, "renamed"));
    let gone = fw.disassociate(&a.id).unwrap();
    assert_eq!(gone.id, a.id);
    assert_eq!(
        fw.association(&a.id).unwrap_err().code(),
        "ResourceNotFoundException"
    );
    // The group goes with its rules; the list is then free.
    let deleted = fw.delete_rule_group(&g).unwrap();
    assert_eq!(deleted.rule_count, 1);
    assert_eq!(
        fw.rules(&g).unwrap_err().code(),
        "ResourceNotFoundException"
    );
    fw.delete_domain_list(&l).unwrap();
    assert!(fw.domain_lists().is_empty() && fw.rule_groups().is_empty());
}

#[test]
fn associations_are_unique_per_vpc_and_bounded() {
    let (_dir, fw) = fw();
    let groups: Vec<String> = (0..=MAX_ASSOCIATIONS_PER_VPC)
        .map(|i| group(&fw, &format!("g{i}")))
        .collect();
    associate(&fw, &groups[0], VPC, 101);
    let try_assoc = |g: &str, vpc: &str, priority: i64, req: &str| {
        fw.associate(NewAssociation {
            creator_request_id: req.into(),
            group_id: g.into(),
            vpc_id: vpc.into(),
            priority,
            name: "a".into(),
            mutation_protection: false,
            tags: Vec::new(),
        })
    };
    // The same group twice, or the same priority twice, on one VPC.
    assert_eq!(
        try_assoc(&groups[0], VPC, 102, "x1").unwrap_err().code(),
        "ConflictException"
    );
    assert_eq!(
        try_assoc(&groups[1], VPC, 101, "x2").unwrap_err().code(),
        "ConflictException"
    );
    // Another VPC is another space.
    try_assoc(&groups[0], OTHER_VPC, 101, "x3").unwrap();
    for bad_vpc in ["vpc-xyz", "sg-01234567", ""] {
        assert_eq!(
            try_assoc(&groups[1], bad_vpc, 150, "x4")
                .unwrap_err()
                .code(),
            "ValidationException"
        );
    }
    for bad_priority in [100, 9901] {
        assert_eq!(
            try_assoc(&groups[1], VPC, bad_priority, "x5")
                .unwrap_err()
                .code(),
            "ValidationException"
        );
    }
    assert_eq!(
        try_assoc("rslvr-frg-00000000000000000", VPC, 150, "x6")
            .unwrap_err()
            .resource_type(),
        Some("FirewallRuleGroup")
    );
    for (i, g) in groups
        .iter()
        .enumerate()
        .take(MAX_ASSOCIATIONS_PER_VPC)
        .skip(1)
    {
        associate(&fw, g, VPC, 101 + i as i64);
    }
    let e = try_assoc(&groups[MAX_ASSOCIATIONS_PER_VPC], VPC, 9000, "x7").unwrap_err();
    assert_eq!(e.code(), "LimitExceededException");
    // Moving onto a taken priority is refused too.
    let first = fw.associations()[0].clone();
    let e = fw
        .update_association(
            &first.id,
            AssociationChange {
                priority: Some(102),
                ..AssociationChange::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "ConflictException");
}

#[test]
fn tags_are_kept_replaced_and_removed_by_arn() {
    let dir = tempfile::tempdir().unwrap();
    let fw = open(&dir);
    let l = fw
        .create_domain_list(NewDomainList {
            creator_request_id: "r".into(),
            name: "l".into(),
            tags: vec![("team".into(), "net".into())],
        })
        .unwrap();
    let g = group(&fw, "g");
    let a = associate(&fw, &g, VPC, 101);
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(fw.tags(&l.arn).unwrap(), [tag("team", "net")]);
    fw.tag_resource(&l.arn, &[tag("team", "dns"), tag("env", "prod")])
        .unwrap();
    assert_eq!(
        fw.tags(&l.arn).unwrap(),
        [tag("team", "dns"), tag("env", "prod")]
    );
    fw.untag_resource(&l.arn, &["team".to_owned(), "absent".to_owned()])
        .unwrap();
    assert_eq!(fw.tags(&l.arn).unwrap(), [tag("env", "prod")]);
    let group_arn = fw.rule_group_arn(&g);
    fw.tag_resource(&group_arn, &[tag("k", "v")]).unwrap();
    fw.tag_resource(&a.arn, &[tag("k", "a")]).unwrap();
    assert_eq!(
        fw.tag_resource(&a.arn, &[tag("aws:reserved", "x")])
            .unwrap_err()
            .code(),
        "ValidationException"
    );
    for bad in [
        "arn:aws:route53resolver:eu-west-1:123456789012:firewall-rule-group/x".to_owned(),
        format!("arn:aws:route53resolver:us-east-1:123456789012:resolver-rule/{g}"),
        fw.rule_group_arn("rslvr-frg-00000000000000000"),
        "not an arn".to_owned(),
    ] {
        assert_eq!(
            fw.tags(&bad).unwrap_err().code(),
            "ResourceNotFoundException",
            "{bad}"
        );
    }
    drop(fw);
    let fw = open(&dir);
    assert_eq!(fw.tags(&l.arn).unwrap(), [tag("env", "prod")]);
    assert_eq!(fw.tags(&group_arn).unwrap(), [tag("k", "v")]);
    assert_eq!(fw.tags(&a.arn).unwrap(), [tag("k", "a")]);
}

// ---- verdicts ----

#[test]
fn names_match_exactly_below_a_wildcard_or_by_star() {
    let (_dir, fw) = fw();
    let l = list(&fw, "l", &["exact.com", "*.wild.org"]);
    let g = group(&fw, "g");
    rule(
        &fw,
        &g,
        &l,
        "deny",
        1,
        Action::Block(BlockResponse::NxDomain),
    );
    associate(&fw, &g, VPC, 101);
    let blocked = block("deny", BlockResponse::NxDomain);
    for name in ["exact.com", "EXACT.com.", "a.wild.org", "deep.er.Wild.ORG."] {
        assert_eq!(fw.verdict(VPC, name), blocked, "{name}");
    }
    for name in [
        "wild.org",
        "wild.org.",
        "sub.exact.com",
        "xexact.com",
        "notwild.org",
        "exact.com.evil",
        "",
        ".",
        "com",
    ] {
        assert_eq!(fw.verdict(VPC, name), allow(), "{name}");
    }
    // Other VPCs are not filtered.
    assert_eq!(fw.verdict(OTHER_VPC, "exact.com"), allow());
    assert_eq!(fw.verdict("vpc-unknown", "exact.com"), allow());
    // `*` matches everything.
    fw.update_domains(&l, DomainUpdate::Add, &s(&["*"]))
        .unwrap();
    for name in ["anything.net", "x", "wild.org"] {
        assert_eq!(fw.verdict(VPC, name), blocked, "{name}");
    }
}

#[test]
fn the_first_matching_rule_decides_in_association_then_rule_order() {
    let (_dir, fw) = fw();
    let all = list(&fw, "all", &["*"]);
    let good = list(&fw, "good", &["good.com", "*.good.com"]);
    let watched = list(&fw, "watched", &["watched.com", "good.com"]);
    let bad = list(&fw, "bad", &["bad.com"]);

    // Walled garden: allow good, alert on watched, block everything else.
    let garden = group(&fw, "garden");
    rule(&fw, &garden, &watched, "alert-watched", 10, Action::Alert);
    rule(&fw, &garden, &good, "allow-good", 20, Action::Allow);
    rule(
        &fw,
        &garden,
        &all,
        "block-rest",
        30,
        Action::Block(BlockResponse::NoData),
    );
    let g_assoc = associate(&fw, &garden, VPC, 500);

    assert_eq!(
        fw.verdict(VPC, "good.com"),
        Verdict::Allow {
            alerted_by: Some("alert-watched".into())
        }
    );
    assert_eq!(fw.verdict(VPC, "www.good.com"), allow());
    assert_eq!(
        fw.verdict(VPC, "watched.com"),
        block("block-rest", BlockResponse::NoData),
        "ALERT goes on to the next rule"
    );
    assert_eq!(
        fw.verdict(VPC, "other.net"),
        block("block-rest", BlockResponse::NoData)
    );

    // A group associated at a lower priority is evaluated first.
    let strict = group(&fw, "strict");
    rule(
        &fw,
        &strict,
        &good,
        "block-good",
        1000,
        Action::Block(BlockResponse::NxDomain),
    );
    rule(&fw, &strict, &bad, "allow-bad", 5, Action::Allow);
    let s_assoc = associate(&fw, &strict, VPC, 101);
    assert_eq!(
        fw.verdict(VPC, "good.com"),
        block("block-good", BlockResponse::NxDomain)
    );
    assert_eq!(
        fw.verdict(VPC, "bad.com"),
        allow(),
        "ALLOW stops evaluation"
    );
    // Reordering the associations reorders the evaluation.
    fw.update_association(
        &s_assoc.id,
        AssociationChange {
            priority: Some(900),
            ..AssociationChange::default()
        },
    )
    .unwrap();
    assert_eq!(
        fw.verdict(VPC, "good.com"),
        Verdict::Allow {
            alerted_by: Some("alert-watched".into())
        }
    );
    assert_eq!(
        fw.verdict(VPC, "bad.com"),
        block("block-rest", BlockResponse::NoData)
    );
    // Reordering rules reorders them too.
    fw.update_rule(
        &garden,
        &all,
        RuleChange {
            priority: Some(1),
            ..RuleChange::default()
        },
    )
    .unwrap();
    assert_eq!(
        fw.verdict(VPC, "good.com"),
        block("block-rest", BlockResponse::NoData)
    );
    // Domain changes take effect at once.
    fw.update_domains(&all, DomainUpdate::Replace, &s(&["*.net"]))
        .unwrap();
    assert_eq!(
        fw.verdict(VPC, "good.com"),
        Verdict::Allow {
            alerted_by: Some("alert-watched".into())
        }
    );
    // Without associations, nothing is filtered.
    fw.disassociate(&g_assoc.id).unwrap();
    fw.disassociate(&s_assoc.id).unwrap();
    assert_eq!(fw.verdict(VPC, "x.net"), allow());
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (l, g, a) = {
        let fw = open(&dir);
        let l = list(&fw, "l", &["a.com", "*.b.com", "c.com"]);
        fw.update_domains(&l, DomainUpdate::Remove, &s(&["c.com"]))
            .unwrap();
        let g = group(&fw, "g");
        rule(&fw, &g, &l, "r", 7, Action::Block(BlockResponse::NoData));
        let a = associate(&fw, &g, VPC, 300);
        (l, g, a)
    };
    assert!(dir.path().join("dnsfw.db").exists());
    let fw = open(&dir);
    assert_eq!(fw.domains(&l).unwrap(), s(&["*.b.com", "a.com"]));
    assert_eq!(fw.domain_list(&l).unwrap().domain_count, 2);
    assert_eq!(fw.rule_group(&g).unwrap().rule_count, 1);
    assert_eq!(fw.association(&a.id).unwrap(), a);
    assert_eq!(
        fw.verdict(VPC, "x.b.com"),
        block("r", BlockResponse::NoData)
    );
    // New resources after a reopen are ordered after the old ones.
    let l2 = list(&fw, "l2", &[]);
    let ids: Vec<String> = fw.domain_lists().into_iter().map(|l| l.id).collect();
    assert_eq!(ids, [l, l2]);
}

// ---- properties ----

proptest! {
    #[test]
    fn validators_never_panic(s in ".{0,300}") {
        let _ = check_domain(&s);
        let _ = check_name(&s);
        let _ = check_vpc_id(&s);
        let _ = check_creator_request_id(&s);
        let _ = check_tags(&[(s.clone(), s.clone())]);
        let _ = BlockResponse::parse(&s);
        let _ = Action::parse(&s, Some(&s));
        let _ = DomainUpdate::parse(&s);
        let _ = Redirection::parse(&s);
    }

    #[test]
    fn domain_like_strings_never_panic_and_stored_forms_are_fixed_points(
        s in "[*A-Za-z0-9._-]{0,270}"
    ) {
        if let Ok(stored) = check_domain(&s) {
            prop_assert_eq!(check_domain(&stored).unwrap(), stored.clone());
            prop_assert!(!stored.ends_with('.') || stored.is_empty());
            prop_assert_eq!(stored.to_ascii_lowercase(), stored);
        }
    }

    #[test]
    fn a_stored_exact_domain_matches_itself_in_any_case(
        labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..5),
        upper in any::<bool>(),
        dot in any::<bool>(),
    ) {
        let name = labels.join(".");
        let mut set = crate::model::DomainSet::default();
        set.insert(&check_domain(&name).unwrap());
        let mut q = if upper { name.to_ascii_uppercase() } else { name.clone() };
        if dot {
            q.push('.');
        }
        prop_assert!(set.matches(&crate::model::query_name(&q)));
        let mut wild = crate::model::DomainSet::default();
        wild.insert(&check_domain(&format!("*.{name}")).unwrap());
        prop_assert!(!wild.matches(&crate::model::query_name(&q)));
        let below = format!("x.{q}");
        prop_assert!(wild.matches(&crate::model::query_name(&below)));
    }
}

/// A node of a deployment: DNS Firewall on the shared records of the database at `url`.
fn shared_node(url: &str) -> DnsFirewall {
    let pool = warden_postgres::Pool::open(
        url,
        &warden_postgres::Options {
            connections: 1,
            ..warden_postgres::Options::default()
        },
        &[warden_postgres::records::TRACK],
    )
    .unwrap();
    DnsFirewall::open_shared(pool, "123456789012", "us-east-1").unwrap()
}

#[test]
fn nodes_sharing_a_store_block_what_another_node_configured() {
    let url = warden_testservers::Postgres::shared()
        .fresh_database()
        .unwrap();
    let a = shared_node(&url);
    let b = shared_node(&url);
    let bad = list(&a, "bad", &["evil.example", "*.tracker.example"]);
    let g = group(&a, "guard");
    rule(
        &a,
        &g,
        &bad,
        "block-bad",
        100,
        Action::Block(BlockResponse::NxDomain),
    );
    associate(&a, &g, VPC, 101);
    assert_eq!(b.verdict(VPC, "evil.example."), allow());
    // B's poll installs A's model, and its verdicts follow at once.
    assert!(b.refresh().unwrap());
    assert!(!b.refresh().unwrap(), "nothing newer");
    assert!(matches!(
        b.verdict(VPC, "evil.example."),
        Verdict::Block { .. }
    ));
    assert!(matches!(
        b.verdict(VPC, "x.tracker.example"),
        Verdict::Block { .. }
    ));
    assert_eq!(b.verdict(VPC, "good.example"), allow());
    // A change decides from what every node committed, even before its poll: B may not
    // delete a list A has just put in a rule.
    let more = list(&a, "more", &["worse.example"]);
    rule(
        &a,
        &g,
        &more,
        "block-more",
        200,
        Action::Block(BlockResponse::NxDomain),
    );
    assert!(b.delete_domain_list(&more).is_err());
    // Domains added through B reach A's verdicts after its poll.
    b.update_domains(&bad, DomainUpdate::Add, &s(&["new.example"]))
        .unwrap();
    assert!(matches!(
        b.verdict(VPC, "worse.example"),
        Verdict::Block { .. }
    ));
    assert!(a.refresh().unwrap());
    assert!(matches!(
        a.verdict(VPC, "new.example"),
        Verdict::Block { .. }
    ));
    // A node opened later holds the same model.
    let c = shared_node(&url);
    assert_eq!(c.domains(&bad).unwrap(), a.domains(&bad).unwrap());
    assert!(matches!(
        c.verdict(VPC, "worse.example"),
        Verdict::Block { .. }
    ));
}
