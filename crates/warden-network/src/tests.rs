#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it did not expect"
)]

use proptest::prelude::*;

use super::*;

fn open() -> (tempfile::TempDir, Network) {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::open(dir.path(), "123456789012", "us-east-1").unwrap();
    (dir, net)
}

fn tcp(port: i64, cidr: &str) -> RuleSpec {
    RuleSpec::new(
        IpProtocol::Tcp,
        Some(port),
        Some(port),
        Peer::V4(rule_ipv4(cidr).unwrap()),
        None,
    )
    .unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T, NetworkError>) -> &'static str {
    r.unwrap_err().code()
}

#[test]
fn a_new_vpc_has_a_default_group_allowing_all_out_and_itself_in() {
    let (_d, net) = open();
    let vpc = net
        .create_vpc("10.0.0.0/16", vec![("Name".into(), "main".into())])
        .unwrap();
    assert!(
        is_well_formed("vpc", &vpc.id) && vpc.id.len() == 21,
        "{}",
        vpc.id
    );
    assert_eq!(vpc.cidr.to_string(), "10.0.0.0/16");
    assert!(!vpc.is_default);
    assert_eq!(net.vpc(&vpc.id), Some(vpc.clone()));
    let groups = net.security_groups();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(
        (g.name.as_str(), g.description.as_str(), g.vpc_id.as_str()),
        ("default", "default VPC security group", vpc.id.as_str())
    );
    assert_eq!(g.egress.len(), 1);
    assert_eq!(g.egress[0].protocol, IpProtocol::All);
    assert_eq!(g.egress[0].peer, Peer::V4("0.0.0.0/0".parse().unwrap()));
    assert_eq!((g.egress[0].from_port, g.egress[0].to_port), (-1, -1));
    assert_eq!(g.ingress.len(), 1);
    assert_eq!(g.ingress[0].peer, Peer::Group(g.id.clone()));
    assert!(is_well_formed("sgr", &g.ingress[0].id));
}

#[test]
fn vpc_blocks_are_ipv4_between_16_and_28_without_host_bits() {
    let (_d, net) = open();
    for (cidr, expected) in [
        ("10.0.0.0/8", "InvalidVpc.Range"),
        ("10.0.0.0/29", "InvalidVpc.Range"),
        ("10.0.0.1/16", "InvalidParameterValue"),
        ("10.0.0.0", "InvalidParameterValue"),
        ("fd00::/48", "InvalidParameterValue"),
        ("300.0.0.0/16", "InvalidParameterValue"),
        ("", "InvalidParameterValue"),
    ] {
        assert_eq!(code(net.create_vpc(cidr, Vec::new())), expected, "{cidr}");
    }
    net.create_vpc("10.1.0.0/28", Vec::new()).unwrap();
}

#[test]
fn subnets_stay_inside_their_vpc_and_apart() {
    let (_d, net) = open();
    let vpc = net.create_vpc("10.0.0.0/16", Vec::new()).unwrap();
    let a = net
        .create_subnet(&vpc.id, "10.0.1.0/24", None, Vec::new())
        .unwrap();
    assert_eq!(a.availability_zone, "us-east-1a");
    assert_eq!(a.vpc_id, vpc.id);
    let b = net
        .create_subnet(&vpc.id, "10.0.2.0/24", Some("us-east-1c"), Vec::new())
        .unwrap();
    assert_eq!(b.availability_zone, "us-east-1c");
    for (cidr, expected) in [
        ("10.1.0.0/24", "InvalidSubnet.Range"),
        ("10.0.0.0/15", "InvalidSubnet.Range"),
        ("10.0.0.0/33", "InvalidParameterValue"),
        ("10.0.0.0/29", "InvalidSubnet.Range"),
        ("10.0.1.128/25", "InvalidSubnet.Conflict"),
        ("10.0.0.0/16", "InvalidSubnet.Conflict"),
    ] {
        assert_eq!(
            code(net.create_subnet(&vpc.id, cidr, None, Vec::new())),
            expected,
            "{cidr}"
        );
    }
    assert_eq!(
        code(net.create_subnet(&vpc.id, "10.0.3.0/24", Some("eu-west-1a"), Vec::new())),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(net.create_subnet("vpc-0123456789abcdef0", "10.0.3.0/24", None, Vec::new())),
        "InvalidVpcID.NotFound"
    );
    assert_eq!(
        code(net.create_subnet("vpc-nope", "10.0.3.0/24", None, Vec::new())),
        "InvalidVpcID.Malformed"
    );
    // The same block in another VPC is fine.
    let other = net.create_vpc("10.0.0.0/16", Vec::new()).unwrap();
    net.create_subnet(&other.id, "10.0.1.0/24", None, Vec::new())
        .unwrap();
    assert_eq!(net.subnets().len(), 3);
}

#[test]
fn deleting_a_vpc_needs_it_empty_and_takes_its_default_group() {
    let (_d, net) = open();
    let vpc = net.create_vpc("10.0.0.0/16", Vec::new()).unwrap();
    let subnet = net
        .create_subnet(&vpc.id, "10.0.1.0/24", None, Vec::new())
        .unwrap();
    assert_eq!(code(net.delete_vpc(&vpc.id)), "DependencyViolation");
    net.delete_subnet(&subnet.id).unwrap();
    assert_eq!(
        code(net.delete_subnet(&subnet.id)),
        "InvalidSubnetID.NotFound"
    );
    let g = net
        .create_security_group(Some(&vpc.id), "app", "the app", Vec::new())
        .unwrap();
    assert_eq!(code(net.delete_vpc(&vpc.id)), "DependencyViolation");
    net.delete_security_group(&g.id).unwrap();
    net.delete_vpc(&vpc.id).unwrap();
    assert!(net.vpcs().is_empty());
    assert!(
        net.security_groups().is_empty(),
        "the default group goes too"
    );
    assert_eq!(code(net.delete_vpc(&vpc.id)), "InvalidVpcID.NotFound");
    assert_eq!(
        code(net.delete_vpc("subnet-1234")),
        "InvalidVpcID.Malformed"
    );
}

#[test]
fn groups_are_unique_by_name_in_a_vpc_and_the_default_one_stays() {
    let (_d, net) = open();
    let vpc = net.create_vpc("10.0.0.0/16", Vec::new()).unwrap();
    assert_eq!(
        code(net.create_security_group(None, "app", "d", Vec::new())),
        "VPCIdNotSpecified"
    );
    let g = net
        .create_security_group(Some(&vpc.id), "app", "the app", Vec::new())
        .unwrap();
    assert_eq!(g.egress.len(), 1);
    assert_eq!(g.egress[0].peer, Peer::V4("0.0.0.0/0".parse().unwrap()));
    assert!(g.ingress.is_empty());
    for name in ["app", "default"] {
        assert_eq!(
            code(net.create_security_group(Some(&vpc.id), name, "d", Vec::new())),
            "InvalidGroup.Duplicate"
        );
    }
    for (name, description) in [("sg-x", "d"), ("bad\u{7}", "d"), ("", "d"), ("ok", "")] {
        assert!(net
            .create_security_group(Some(&vpc.id), name, description, Vec::new())
            .is_err());
    }
    let default = net
        .security_groups()
        .into_iter()
        .find(|g| g.is_default())
        .unwrap();
    assert_eq!(code(net.delete_security_group(&default.id)), "CannotDelete");
    assert_eq!(
        code(net.delete_security_group("sg-0123456789abcdef0")),
        "InvalidGroup.NotFound"
    );
    assert_eq!(
        code(net.delete_security_group("sg-XYZ")),
        "InvalidGroupId.Malformed"
    );
}

#[test]
fn rules_are_added_compared_and_revoked_as_ec2_does() {
    let (_d, net) = open();
    let vpc = net.create_vpc("10.0.0.0/16", Vec::new()).unwrap();
    let g = net
        .create_security_group(Some(&vpc.id), "db", "database", Vec::new())
        .unwrap();
    let added = net
        .authorize(
            &g.id,
            Direction::Egress,
            vec![tcp(5432, "10.0.0.0/24"), tcp(443, "0.0.0.0/0")],
        )
        .unwrap();
    assert_eq!(added.len(), 2);
    assert_eq!(net.security_group(&g.id).unwrap().egress.len(), 3);
    // The same rule again (even with a description) is a duplicate, and nothing is added.
    let mut again = tcp(5432, "10.0.0.0/24");
    again.description = Some("again".into());
    assert_eq!(
        code(net.authorize(&g.id, Direction::Egress, vec![tcp(22, "10.0.0.0/8"), again])),
        "InvalidPermission.Duplicate"
    );
    assert_eq!(net.security_group(&g.id).unwrap().egress.len(), 3);
    // Ingress from another group of the VPC; not from one of another VPC.
    let web = net
        .create_security_group(Some(&vpc.id), "web", "web", Vec::new())
        .unwrap();
    let from_web = RuleSpec::new(
        IpProtocol::Tcp,
        Some(5432),
        Some(5432),
        Peer::Group(web.id.clone()),
        Some("from web".into()),
    )
    .unwrap();
    net.authorize(&g.id, Direction::Ingress, vec![from_web.clone()])
        .unwrap();
    let elsewhere = net.create_vpc("10.9.0.0/16", Vec::new()).unwrap();
    let stranger = net
        .create_security_group(Some(&elsewhere.id), "s", "s", Vec::new())
        .unwrap();
    let from_stranger = RuleSpec {
        peer: Peer::Group(stranger.id.clone()),
        ..from_web.clone()
    };
    assert_eq!(
        code(net.authorize(&g.id, Direction::Ingress, vec![from_stranger])),
        "InvalidParameterValue"
    );
    let from_nowhere = RuleSpec {
        peer: Peer::Group("sg-0123456789abcdef0".into()),
        ..from_web.clone()
    };
    assert_eq!(
        code(net.authorize(&g.id, Direction::Ingress, vec![from_nowhere])),
        "InvalidGroup.NotFound"
    );
    // A group another group's rule names cannot go.
    assert_eq!(
        code(net.delete_security_group(&web.id)),
        "DependencyViolation"
    );
    // Revoking: by permission, by rule id; a missing one removes nothing.
    assert_eq!(
        code(net.revoke(
            &g.id,
            Direction::Egress,
            vec![tcp(443, "0.0.0.0/0"), tcp(80, "0.0.0.0/0")]
        )),
        "InvalidPermission.NotFound"
    );
    assert_eq!(net.security_group(&g.id).unwrap().egress.len(), 3);
    let removed = net
        .revoke(&g.id, Direction::Egress, vec![tcp(443, "0.0.0.0/0")])
        .unwrap();
    assert_eq!(removed[0].id, added[1].id);
    assert_eq!(
        code(net.revoke_rules(&g.id, Direction::Ingress, &[added[0].id.clone()])),
        "InvalidSecurityGroupRuleId.NotFound"
    );
    assert_eq!(
        code(net.revoke_rules(&g.id, Direction::Egress, &["sgr-zz".into()])),
        "InvalidSecurityGroupRuleId.Malformed"
    );
    net.revoke_rules(&g.id, Direction::Egress, &[added[0].id.clone()])
        .unwrap();
    net.revoke(&g.id, Direction::Ingress, vec![from_web])
        .unwrap();
    net.delete_security_group(&web.id).unwrap();
    let left = net.security_group(&g.id).unwrap();
    assert_eq!(left.egress.len(), 1);
    assert!(left.ingress.is_empty());
}

#[test]
fn rules_per_direction_are_bounded() {
    let (_d, net) = open();
    let vpc = net.create_vpc("10.0.0.0/16", Vec::new()).unwrap();
    let g = net
        .create_security_group(Some(&vpc.id), "many", "many", Vec::new())
        .unwrap();
    // One rule (all out) is there already.
    let specs: Vec<RuleSpec> = (1..MAX_RULES_PER_DIRECTION as i64)
        .map(|p| tcp(p, "10.0.0.0/8"))
        .collect();
    net.authorize(&g.id, Direction::Egress, specs).unwrap();
    assert_eq!(
        code(net.authorize(&g.id, Direction::Egress, vec![tcp(9999, "10.0.0.0/8")])),
        "RulesPerSecurityGroupLimitExceeded"
    );
    // The other direction has its own bound.
    net.authorize(&g.id, Direction::Ingress, vec![tcp(9999, "10.0.0.0/8")])
        .unwrap();
}

#[test]
fn vpcs_are_bounded() {
    let (_d, net) = open();
    for _ in 0..MAX_VPCS {
        net.create_vpc("10.0.0.0/16", Vec::new()).unwrap();
    }
    assert_eq!(
        code(net.create_vpc("10.0.0.0/16", Vec::new())),
        "VpcLimitExceeded"
    );
}

#[test]
fn tags_are_set_replaced_removed_and_bounded() {
    let (_d, net) = open();
    let vpc = net
        .create_vpc("10.0.0.0/16", vec![("a".into(), "1".into())])
        .unwrap();
    let subnet = net
        .create_subnet(&vpc.id, "10.0.0.0/24", None, Vec::new())
        .unwrap();
    net.create_tags(
        &[vpc.id.clone(), subnet.id.clone()],
        &[("a".into(), "2".into()), ("b".into(), "".into())],
    )
    .unwrap();
    assert_eq!(
        net.vpc(&vpc.id).unwrap().tags,
        vec![("a".into(), "2".into()), ("b".into(), "".into())]
    );
    let all = net.tags();
    assert_eq!(all.len(), 4);
    assert_eq!(all[2].resource_kind, ResourceKind::Subnet);
    // A value given deletes only a tag with that value.
    net.delete_tags(
        std::slice::from_ref(&vpc.id),
        &[("a".into(), Some("1".into()))],
    )
    .unwrap();
    assert_eq!(net.vpc(&vpc.id).unwrap().tags.len(), 2);
    net.delete_tags(std::slice::from_ref(&vpc.id), &[("a".into(), None)])
        .unwrap();
    assert_eq!(
        net.vpc(&vpc.id).unwrap().tags,
        vec![("b".into(), "".into())]
    );
    net.delete_tags(std::slice::from_ref(&subnet.id), &[])
        .unwrap();
    assert!(net.subnet(&subnet.id).unwrap().tags.is_empty());
    // Refusals: reserved keys, unknown and malformed resources, too many; all or nothing.
    assert_eq!(
        code(net.create_tags(
            std::slice::from_ref(&vpc.id),
            &[("aws:x".into(), "v".into())]
        )),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(net.create_tags(
            &[vpc.id.clone(), "vpc-0123456789abcdef0".into()],
            &[("c".into(), "v".into())]
        )),
        "InvalidVpcID.NotFound"
    );
    assert_eq!(net.vpc(&vpc.id).unwrap().tags.len(), 1, "nothing was set");
    assert_eq!(
        code(net.create_tags(
            std::slice::from_ref(&vpc.id),
            &[("c".into(), "a\u{1}b".into())]
        )),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(net.create_tags(&["i-12345678".into()], &[("c".into(), "v".into())])),
        "InvalidID"
    );
    let many: Vec<(String, String)> = (0..MAX_TAGS)
        .map(|i| (format!("k{i}"), "v".into()))
        .collect();
    assert_eq!(
        code(net.create_tags(std::slice::from_ref(&vpc.id), &many)),
        "TagLimitExceeded"
    );
    let too_many: Vec<(String, String)> = (0..=MAX_TAGS)
        .map(|i| (format!("k{i}"), "v".into()))
        .collect();
    assert_eq!(
        code(net.create_vpc("10.0.0.0/16", too_many)),
        "TagLimitExceeded"
    );
}

#[test]
fn everything_survives_a_reopen_and_changes_are_announced() {
    let dir = tempfile::tempdir().unwrap();
    let (vpc, subnet, group) = {
        let net = Network::open(dir.path(), "123456789012", "us-east-1").unwrap();
        let mut changes = net.subscribe();
        let vpc = net
            .create_vpc("10.0.0.0/16", vec![("Name".into(), "v".into())])
            .unwrap();
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let subnet = net
            .create_subnet(&vpc.id, "10.0.4.0/22", Some("us-east-1b"), Vec::new())
            .unwrap();
        let group = net
            .create_security_group(Some(&vpc.id), "g", "d", vec![("t".into(), "1".into())])
            .unwrap();
        let v6 = RuleSpec::new(
            IpProtocol::Icmpv6,
            None,
            None,
            Peer::V6(rule_ipv6("::/0").unwrap()),
            Some("pings".into()),
        )
        .unwrap();
        net.authorize(
            &group.id,
            Direction::Ingress,
            vec![v6, tcp(22, "10.0.0.0/8")],
        )
        .unwrap();
        assert!(changes.has_changed().unwrap());
        // A refused change is not announced.
        changes.mark_unchanged();
        assert!(net.delete_vpc(&vpc.id).is_err());
        assert!(!changes.has_changed().unwrap());
        (vpc, subnet, net.security_group(&group.id).unwrap())
    };
    let net = Network::open(dir.path(), "123456789012", "us-east-1").unwrap();
    assert_eq!(net.vpc(&vpc.id), Some(vpc));
    assert_eq!(net.subnet(&subnet.id), Some(subnet));
    assert_eq!(net.security_group(&group.id), Some(group.clone()));
    assert_eq!(net.security_groups().len(), 2);
    // New items still order after the old ones.
    let later = net
        .create_security_group(Some(&group.vpc_id), "later", "d", Vec::new())
        .unwrap();
    assert_eq!(net.security_groups().last().unwrap().id, later.id);
}

#[test]
fn ports_and_protocols_are_checked_and_normalised() {
    let any = || Peer::V4("0.0.0.0/0".parse().unwrap());
    let spec = |p: IpProtocol, from: Option<i64>, to: Option<i64>| {
        RuleSpec::new(p, from, to, any(), None).map(|s| (s.from_port, s.to_port))
    };
    assert_eq!(spec(IpProtocol::All, Some(22), Some(80)).unwrap(), (-1, -1));
    assert_eq!(spec(IpProtocol::Tcp, None, None).unwrap(), (0, 65535));
    assert_eq!(
        spec(IpProtocol::Udp, Some(-1), Some(-1)).unwrap(),
        (0, 65535)
    );
    assert_eq!(
        spec(IpProtocol::Tcp, Some(80), Some(443)).unwrap(),
        (80, 443)
    );
    assert_eq!(spec(IpProtocol::Icmp, Some(8), None).unwrap(), (8, -1));
    assert_eq!(spec(IpProtocol::Icmp, None, None).unwrap(), (-1, -1));
    for (p, from, to, expected) in [
        (
            IpProtocol::Tcp,
            Some(443),
            Some(80),
            "InvalidParameterValue",
        ),
        (
            IpProtocol::Tcp,
            Some(0),
            Some(65536),
            "InvalidParameterValue",
        ),
        (IpProtocol::Udp, Some(-2), Some(5), "InvalidParameterValue"),
        (IpProtocol::Tcp, Some(22), None, "MissingParameter"),
        (IpProtocol::Icmp, Some(256), None, "InvalidParameterValue"),
        (IpProtocol::Icmp, Some(-1), Some(3), "InvalidParameterValue"),
    ] {
        assert_eq!(code(spec(p, from, to)), expected, "{p} {from:?} {to:?}");
    }
    for (text, p) in [
        ("-1", IpProtocol::All),
        ("TCP", IpProtocol::Tcp),
        ("6", IpProtocol::Tcp),
        ("17", IpProtocol::Udp),
        ("icmp", IpProtocol::Icmp),
        ("58", IpProtocol::Icmpv6),
    ] {
        assert_eq!(IpProtocol::parse(text).unwrap(), p, "{text}");
    }
    for bad in ["50", "gre", "", "tcp6", "-2"] {
        assert_eq!(
            code(IpProtocol::parse(bad)),
            "InvalidParameterValue",
            "{bad}"
        );
    }
    assert_eq!(
        code(RuleSpec::new(
            IpProtocol::All,
            None,
            None,
            any(),
            Some("no <html>".into())
        )),
        "InvalidParameterValue"
    );
}

#[test]
fn ids_and_cidrs_parse_strictly() {
    assert!(is_well_formed("vpc", "vpc-0123456789abcdef0"));
    assert!(is_well_formed("sg", "sg-01234567"));
    for bad in [
        "vpc-0123456789ABCDEF0",
        "vpc-123",
        "vpc0123456789abcdef0",
        "sg-0123456789abcdef0",
        "vpc-0123456789abcdef01",
        "vpc-",
    ] {
        assert!(!is_well_formed("vpc", bad), "{bad}");
    }
    assert_eq!(
        parse_ipv4_cidr("10.0.0.0/16").unwrap().to_string(),
        "10.0.0.0/16"
    );
    for bad in [
        "10.0.0.1/16",
        "10.0.0.0/33",
        "10.0.0/16",
        "010.0.0.0/16",
        " 10.0.0.0/16",
        "10.0.0.0/",
        "10.0.0.0/016",
        "10.0.0.0/+16",
        "10.0.0.0/16/16",
    ] {
        assert_eq!(parse_ipv4_cidr(bad), None, "{bad}");
    }
    assert!(parse_ipv6_cidr("2001:db8::/32").is_some());
    assert_eq!(parse_ipv6_cidr("2001:db8::1/32"), None);
}

proptest! {
    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}", a in any::<i64>(), b in any::<i64>()) {
        let _ = parse_ipv4_cidr(&s);
        let _ = parse_ipv6_cidr(&s);
        let _ = rule_ipv4(&s);
        let _ = rule_ipv6(&s);
        let _ = block_cidr(&s, "InvalidVpc.Range");
        let _ = check_vpc_id(&s);
        let _ = check_group_name(&s);
        let _ = check_tag(&s, &s);
        let _ = availability_zone("us-east-1", Some(&s));
        if let Ok(p) = IpProtocol::parse(&s) {
            prop_assert_eq!(IpProtocol::parse(p.as_str()).ok(), Some(p));
        }
        for p in [IpProtocol::All, IpProtocol::Tcp, IpProtocol::Udp, IpProtocol::Icmp, IpProtocol::Icmpv6] {
            let any = Peer::V4(ipnet::Ipv4Net::default());
            if let Ok(spec) = RuleSpec::new(p, Some(a), Some(b), any.clone(), None) {
                prop_assert!(spec.from_port <= spec.to_port || p != IpProtocol::Tcp);
                let _ = spec.describe();
            }
            let _ = RuleSpec::new(p, Some(a), None, any, Some(s.clone()));
        }
    }

    #[test]
    fn cidr_like_strings_never_panic(
        o in prop::array::uniform4(0u32..400),
        len in 0u32..40,
        junk in "[0-9./:a-f]{0,12}",
    ) {
        let text = format!("{}.{}.{}.{}/{len}{junk}", o[0], o[1], o[2], o[3]);
        if let Some(net) = parse_ipv4_cidr(&text) {
            prop_assert_eq!(net.trunc(), net);
            prop_assert_eq!(parse_ipv4_cidr(&net.to_string()), Some(net));
        }
        let _ = block_cidr(&text, "InvalidSubnet.Range");
        let _ = parse_ipv6_cidr(&junk);
    }
}

/// A node of a deployment: the network on the shared records of the database at `url`.
fn shared_node(url: &str) -> Network {
    let pool = warden_postgres::Pool::open(
        url,
        &warden_postgres::Options {
            connections: 1,
            ..warden_postgres::Options::default()
        },
        &[warden_postgres::records::TRACK],
    )
    .unwrap();
    Network::open_shared(pool, "123456789012", "us-east-1").unwrap()
}

#[test]
fn nodes_sharing_a_store_see_and_decide_from_each_others_groups() {
    let url = warden_testservers::Postgres::shared()
        .fresh_database()
        .unwrap();
    let a = shared_node(&url);
    let b = shared_node(&url);
    let b_changes = b.subscribe();
    let vpc = a.create_vpc("10.1.0.0/16", Vec::new()).unwrap();
    let group = a
        .create_security_group(Some(&vpc.id), "web", "web servers", Vec::new())
        .unwrap();
    a.authorize(&group.id, Direction::Egress, vec![tcp(443, "10.9.0.0/16")])
        .unwrap();
    assert!(b.security_group(&group.id).is_none());
    // B's poll installs A's model and tells B's subscribers (its packet filter).
    assert!(b.refresh().unwrap());
    assert!(!b.refresh().unwrap(), "nothing newer");
    assert!(b_changes.has_changed().unwrap());
    let seen = b.security_group(&group.id).unwrap();
    assert_eq!(seen, a.security_group(&group.id).unwrap());
    assert_eq!(b.vpcs(), a.vpcs());
    // A change decides from what every node committed, even before its poll: a rule A
    // added after B's poll is a duplicate for B too, and a VPC with A's new subnet
    // cannot be deleted through B.
    a.authorize(&group.id, Direction::Ingress, vec![tcp(22, "10.2.0.0/16")])
        .unwrap();
    assert_eq!(
        code(b.authorize(&group.id, Direction::Ingress, vec![tcp(22, "10.2.0.0/16")])),
        "InvalidPermission.Duplicate"
    );
    let other = b.create_vpc("10.3.0.0/16", Vec::new()).unwrap();
    a.create_subnet(&other.id, "10.3.1.0/24", None, Vec::new())
        .unwrap();
    assert_eq!(code(b.delete_vpc(&other.id)), "DependencyViolation");
    b.revoke(&group.id, Direction::Egress, vec![tcp(443, "10.9.0.0/16")])
        .unwrap();
    assert!(a.refresh().unwrap());
    let after = a.security_group(&group.id).unwrap();
    assert!(after
        .egress
        .iter()
        .all(|r| r.peer != Peer::V4(rule_ipv4("10.9.0.0/16").unwrap())));
    assert_eq!(after.ingress.len(), 1);
    // A node opened later holds the same model, in the same order.
    let c = shared_node(&url);
    assert_eq!(c.security_groups(), a.security_groups());
    assert_eq!(c.vpcs(), a.vpcs());
}
