//! Network control on real traffic: security groups made with the AWS CLI's `ec2`
//! commands, functions attached with `VpcConfig`, and connections from inside instances to
//! test hosts that live in network namespaces these tests create (a veth pair each, a TCP
//! and a UDP echo service). No packet leaves this host's loopback and those namespaces.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{error_code, python, python_runtime, python_zip, Server};

/// A host in its own network namespace, reachable from this host's namespace through a
/// veth pair: `prefix.1` on this side, `prefix.2` inside, where a TCP echo service listens
/// on [`TCP_OPEN`] and [`TCP_OTHER`] and a UDP echo service on [`UDP_ECHO`].
struct TestHost {
    netns: String,
    host_if: String,
    /// The test host's address.
    addr: Ipv4Addr,
    /// The address of this host's end of the link.
    gateway: Ipv4Addr,
    services: Vec<Child>,
}

const TCP_OPEN: u16 = 7001;
const TCP_OTHER: u16 = 7002;
const UDP_ECHO: u16 = 7003;

/// Echo services: one thread per port, each connection or datagram echoed back prefixed
/// with the port. Every socket is bound (and listening) before `ready` is printed: a
/// thread started is not yet a thread listening, and on a loaded host a connection made
/// in between was refused.
const ECHO: &str = r#"
import socket, sys, threading
def tcp(s, port):
    while True:
        c, _ = s.accept()
        data = c.recv(1024)
        c.sendall(b"%d:" % port + data); c.close()
def udp(s, port):
    while True:
        data, peer = s.recvfrom(1024)
        s.sendto(b"%d:" % port + data, peer)
for p in sys.argv[1:3]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p))); s.listen(64)
    threading.Thread(target=tcp, args=(s, int(p)), daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", int(sys.argv[3])))
threading.Thread(target=udp, args=(u, int(sys.argv[3])), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// A DNS server for `*.test.internal`: every A query answered with the address given as
/// its argument, AAAA with no answer, any other name with NXDOMAIN.
const DNS_SERVER: &str = r#"
import socket, struct, sys
addr = socket.inet_aton(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    tid = struct.unpack(">H", q[:2])[0]
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode().lower()); i += q[i] + 1
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    if ".".join(labels).endswith("test.internal"):
        if qtype == 1:
            answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + addr
            reply = struct.pack(">HHHHHH", tid, 0x8180, 1, 1, 0, 0) + question + answer
        else:
            reply = struct.pack(">HHHHHH", tid, 0x8180, 1, 0, 0, 0) + question
    else:
        reply = struct.pack(">HHHHHH", tid, 0x8183, 1, 0, 0, 0) + question
    s.sendto(reply, peer)
"#;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static NEXT_HOST: AtomicU32 = AtomicU32::new(0);

impl TestHost {
    /// A test host at `a.b.X.2/24`, `X` unique in this test run and routed nowhere on
    /// this machine yet: a network left by a test process that was killed (and so never
    /// removed its host) would otherwise take this host's packets, and the connections
    /// the test expects to pass would be refused by that stale network instead.
    fn new(a: u8, b: u8) -> TestHost {
        for _ in 0..250 {
            let n = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
            let third = u8::try_from(n % 250 + 1).unwrap();
            let routed = Command::new("ip")
                .args(["-4", "route", "show", &format!("{a}.{b}.{third}.0/24")])
                .output()
                .expect("ip runs");
            assert!(routed.status.success(), "ip route show failed");
            if routed.stdout.iter().all(u8::is_ascii_whitespace) {
                return Self::at(a, b, third);
            }
        }
        panic!("every {a}.{b}.X.0/24 is routed on this machine already");
    }

    /// A test host at `a.b.c.2/24`.
    fn at(a: u8, b: u8, third: u8) -> TestHost {
        let n = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id() % 100_000);
        let netns = format!("wtest{id}");
        let host_if = format!("wth{id}");
        let gateway = Ipv4Addr::new(a, b, third, 1);
        let addr = Ipv4Addr::new(a, b, third, 2);
        ip(&["netns", "add", &netns]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &gateway.to_string()]);
        let mut service = Command::new("ip")
            .args(["netns", "exec", &netns])
            .arg(python())
            .args(["-c", ECHO])
            .args([TCP_OPEN, TCP_OTHER, UDP_ECHO].map(|p| p.to_string()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("the echo service starts");
        let mut ready = [0u8; 5];
        service
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut ready)
            .unwrap();
        assert_eq!(&ready, b"ready");
        TestHost {
            netns,
            host_if,
            addr,
            gateway,
            services: vec![service],
        }
    }

    /// Starts a DNS server for `*.test.internal` on the host (port 53), answering with
    /// the host's own address.
    fn serve_dns(&mut self) {
        let mut dns = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(python())
            .args(["-c", DNS_SERVER, &self.addr.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the DNS server starts");
        let mut ready = [0u8; 5];
        dns.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready");
        self.services.push(dns);
    }

    /// The host's /24.
    fn cidr(&self) -> String {
        let o = self.addr.octets();
        format!("{}.{}.{}.0/24", o[0], o[1], o[2])
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        for s in &mut self.services {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// A function that tries what its event asks and says what happened: `connect` (TCP, with
/// a message echoed back), `udp` (one datagram and its echo), `listen` (a TCP listener in
/// a background thread, and the instance's address), `ipv6` (a TCP connection to an IPv6
/// address), and in every answer the instance's identity, to tell warm from cold.
const PROBE: &str = r#"
import os, socket, threading, uuid
INSTANCE = str(uuid.uuid4())
def handler(event, context):
    op = event["op"]
    out = {"instance": INSTANCE}
    try:
        if op == "connect":
            s = socket.create_connection((event["host"], event["port"]), timeout=2)
            s.sendall(b"hello")
            out["reply"] = s.recv(1024).decode()
            s.close()
        elif op == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(b"hello", (event["host"], event["port"]))
            out["reply"] = s.recvfrom(1024)[0].decode()
        elif op == "listen":
            l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            l.bind(("0.0.0.0", event["port"])); l.listen(8)
            def serve():
                while True:
                    c, _ = l.accept(); c.sendall(b"inside"); c.close()
            threading.Thread(target=serve, daemon=True).start()
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.connect(("203.0.113.9", 9))
            out["address"] = probe.getsockname()[0]
        elif op == "resolve":
            out["addresses"] = sorted({a[4][0] for a in socket.getaddrinfo(event["name"], 80, socket.AF_INET)})
        elif op == "ipv6":
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect((event["host"], event["port"]))
            out["reply"] = "connected"
        out["ok"] = True
    except Exception as e:
        out["ok"] = False
        out["error"] = "%s: %s" % (type(e).__name__, e)
    return out
"#;

const EXEC_ROLE: &str = "arn:aws:iam::123456789012:role/lambda-exec";

/// Lets the test execution role manage network interfaces, as Lambda requires of a
/// function with a `VpcConfig`.
fn allow_network_interfaces(s: &Server) {
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"],
            "Resource": "*"
        }]
    })
    .to_string();
    let (status, _, body) = s.iam(&[
        ("Action", "PutRolePolicy"),
        ("RoleName", "lambda-exec"),
        ("PolicyName", "vpc-access"),
        ("PolicyDocument", &policy),
    ]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn create_probe_args(name: &str, zip: &str) -> Vec<String> {
    [
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        python_runtime(),
        "--handler",
        "app.handler",
        "--role",
        EXEC_ROLE,
        "--timeout",
        "20",
        "--memory-size",
        "512",
        "--zip-file",
        zip,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn create_probe(s: &Server, name: &str, vpc: Option<&str>) -> Value {
    let zip = python_zip(&[("app.py", PROBE)]);
    let zip_arg = format!("fileb://{}", zip.display());
    let mut args = create_probe_args(name, &zip_arg);
    if let Some(v) = vpc {
        args.extend(["--vpc-config".to_owned(), v.to_owned()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    s.aws(&refs)
}

fn probe(s: &Server, name: &str, event: Value) -> Value {
    let (status, _, body) = s.http(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[],
        event.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn connect(s: &Server, name: &str, host: Ipv4Addr, port: u16) -> Value {
    probe(
        s,
        name,
        json!({"op": "connect", "host": host.to_string(), "port": port}),
    )
}

/// A VPC for `host`'s network with one subnet for it and a security group whose only
/// egress rule (after revoking the default allow-all) is TCP to `host`'s echo port.
struct Vpc {
    vpc: String,
    subnet: String,
    group: String,
}

fn make_vpc(s: &Server, host: &TestHost) -> Vpc {
    let o = host.addr.octets();
    let vpc = s.aws(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        &format!("{}.{}.0.0/16", o[0], o[1]),
    ])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let subnet = s.aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        &host.cidr(),
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = s.aws(&[
        "ec2",
        "create-security-group",
        "--vpc-id",
        &vpc,
        "--group-name",
        "db-clients",
        "--description",
        "reaches the echo service",
    ])["GroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Scripts that want default-deny revoke the rule every new group starts with.
    s.aws(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &group,
        "--ip-permissions",
        r#"[{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]"#,
    ]);
    s.aws(&[
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &group,
        "--ip-permissions",
        &json!([{"IpProtocol": "tcp", "FromPort": TCP_OPEN, "ToPort": TCP_OPEN,
                 "IpRanges": [{"CidrIp": host.cidr()}]}])
        .to_string(),
    ]);
    Vpc { vpc, subnet, group }
}

/// How long a test waits for a rule change to reach the packet filter: a bound on a
/// hung test, not a claim about speed (the change is applied as soon as the filter's
/// task runs).
const RULES_APPLIED: Duration = Duration::from_secs(30);

/// Waits until `check` holds for a fresh probe result, for at most `limit`; the last
/// result.
fn within(limit: Duration, mut check: impl FnMut() -> (bool, Value)) -> Value {
    let start = Instant::now();
    loop {
        let (ok, v) = check();
        if ok || start.elapsed() > limit {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn security_groups_decide_what_an_instance_reaches_at_the_packet_level() {
    let s = Server::start();
    let host = TestHost::new(10, 77);
    let net = make_vpc(&s, &host);
    let vpc_config = format!("SubnetIds={},SecurityGroupIds={}", net.subnet, net.group);

    // Lambda's requirement: the execution role may manage network interfaces.
    let zip = python_zip(&[("app.py", PROBE)]);
    let zip_arg = format!("fileb://{}", zip.display());
    let mut args = create_probe_args("early", &zip_arg);
    args.extend(["--vpc-config".to_owned(), vpc_config.clone()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = s.aws_err(&refs);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(err.contains("CreateNetworkInterface"), "{err}");
    allow_network_interfaces(&s);

    let created = create_probe(&s, "vpc-probe", Some(&vpc_config));
    assert_eq!(created["VpcConfig"]["VpcId"], net.vpc.as_str());
    assert_eq!(created["VpcConfig"]["SubnetIds"], json!([net.subnet]));
    assert_eq!(created["VpcConfig"]["SecurityGroupIds"], json!([net.group]));

    // The allowed port connects; the echo proves the bytes crossed.
    let first = connect(&s, "vpc-probe", host.addr, TCP_OPEN);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["reply"], format!("{TCP_OPEN}:hello"));
    let instance = first["instance"].clone();

    // Another port of the same host, the host's end of the link (this host's own
    // address) and the metadata address: refused; and UDP, not allowed yet.
    for (target, port) in [
        (host.addr, TCP_OTHER),
        (host.gateway, TCP_OPEN),
        (Ipv4Addr::new(169, 254, 169, 254), 80),
    ] {
        let r = connect(&s, "vpc-probe", target, port);
        assert_eq!(r["ok"], false, "{target}:{port} {r}");
    }
    let udp = probe(
        &s,
        "vpc-probe",
        json!({"op": "udp", "host": host.addr.to_string(), "port": UDP_ECHO}),
    );
    assert_eq!(udp["ok"], false, "{udp}");
    // IPv6 is not there at all.
    let v6 = probe(
        &s,
        "vpc-probe",
        json!({"op": "ipv6", "host": "2001:db8::1", "port": 80}),
    );
    assert_eq!(v6["ok"], false, "{v6}");

    // A rule added while the instance is warm applies to it, without a new instance.
    s.aws(&[
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &net.group,
        "--ip-permissions",
        &json!([
            {"IpProtocol": "tcp", "FromPort": TCP_OTHER, "ToPort": TCP_OTHER,
             "IpRanges": [{"CidrIp": format!("{}/32", host.addr)}]},
            {"IpProtocol": "udp", "FromPort": UDP_ECHO, "ToPort": UDP_ECHO,
             "IpRanges": [{"CidrIp": host.cidr()}]}
        ])
        .to_string(),
    ]);
    let opened = within(RULES_APPLIED, || {
        let r = connect(&s, "vpc-probe", host.addr, TCP_OTHER);
        (r["ok"] == true, r)
    });
    assert_eq!(opened["ok"], true, "{opened}");
    assert_eq!(opened["reply"], format!("{TCP_OTHER}:hello"));
    assert_eq!(opened["instance"], instance, "the same warm instance");
    let udp = probe(
        &s,
        "vpc-probe",
        json!({"op": "udp", "host": host.addr.to_string(), "port": UDP_ECHO}),
    );
    assert_eq!(udp["reply"], format!("{UDP_ECHO}:hello"), "{udp}");

    // And a revoked one stops new connections.
    s.aws(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &net.group,
        "--ip-permissions",
        &json!([{"IpProtocol": "tcp", "FromPort": TCP_OPEN, "ToPort": TCP_OPEN,
                 "IpRanges": [{"CidrIp": host.cidr()}]}])
        .to_string(),
    ]);
    let closed = within(RULES_APPLIED, || {
        let r = connect(&s, "vpc-probe", host.addr, TCP_OPEN);
        (r["ok"] == false, r)
    });
    assert_eq!(closed["ok"], false, "{closed}");
    assert_eq!(closed["instance"], instance);

    // Nothing outside reaches into the instance: its listener is refused from this host.
    let listening = probe(&s, "vpc-probe", json!({"op": "listen", "port": 8080}));
    assert_eq!(listening["ok"], true, "{listening}");
    let address: Ipv4Addr = listening["address"].as_str().unwrap().parse().unwrap();
    let inbound =
        TcpStream::connect_timeout(&SocketAddr::from((address, 8080)), Duration::from_secs(2))
            .and_then(|mut c| {
                let mut buf = [0u8; 6];
                c.write_all(b"x")?;
                c.read_exact(&mut buf)
            });
    assert!(inbound.is_err(), "ingress to {address} was let through");

    // A function without a VpcConfig, on the same server, has loopback only.
    create_probe(&s, "no-vpc", None);
    let r = connect(&s, "no-vpc", host.addr, TCP_OPEN);
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("unreachable"), "{r}");

    // Subnets and groups in use cannot be deleted; the function's configuration survives.
    let err = s.aws_err(&["ec2", "delete-security-group", "--group-id", &net.group]);
    assert_eq!(error_code(&err), "DependencyViolation", "{err}");
    let err = s.aws_err(&["ec2", "delete-subnet", "--subnet-id", &net.subnet]);
    assert_eq!(error_code(&err), "DependencyViolation", "{err}");
    // Detached (both lists empty), the function has loopback only, and the group goes.
    s.aws(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "vpc-probe",
        "--vpc-config",
        "SubnetIds=[],SecurityGroupIds=[]",
    ]);
    let shown = s.aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "vpc-probe",
    ]);
    assert!(shown.get("VpcConfig").is_none(), "{shown}");
}

#[test]
fn vpc_configs_that_cannot_be_honoured_are_refused_by_name() {
    let s = Server::start();
    allow_network_interfaces(&s);
    let vpc = |cidr: &str| {
        s.aws(&["ec2", "create-vpc", "--cidr-block", cidr])["Vpc"]["VpcId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (vpc("10.90.0.0/16"), vpc("10.91.0.0/16"));
    let subnet = s.aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &a,
        "--cidr-block",
        "10.90.1.0/24",
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = |vpc: &str| {
        s.aws(&[
            "ec2",
            "create-security-group",
            "--vpc-id",
            vpc,
            "--group-name",
            "g",
            "--description",
            "d",
        ])["GroupId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (in_a, in_b) = (group(&a), group(&b));
    let zip = python_zip(&[("app.py", PROBE)]);
    let zip_arg = format!("fileb://{}", zip.display());
    for (vpc_config, says) in [
        (format!("SubnetIds={subnet}"), "SecurityGroupIds"),
        (
            format!("SubnetIds={subnet},SecurityGroupIds=sg-0123456789abcdef0"),
            "InvalidGroup.NotFound",
        ),
        (
            format!("SubnetIds=subnet-0123456789abcdef0,SecurityGroupIds={in_a}"),
            "InvalidSubnetID.NotFound",
        ),
        (
            format!("SubnetIds={subnet},SecurityGroupIds={in_b}"),
            "one VPC",
        ),
        (
            format!("SubnetIds={subnet},SecurityGroupIds={in_a},Ipv6AllowedForDualStack=true"),
            "Ipv6AllowedForDualStack",
        ),
    ] {
        let mut args = create_probe_args("refused", &zip_arg);
        args.extend(["--vpc-config".to_owned(), vpc_config.clone()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = s.aws_err(&refs);
        assert_eq!(
            error_code(&err),
            "InvalidParameterValueException",
            "{vpc_config}: {err}"
        );
        assert!(err.contains(says), "{vpc_config}: {err}");
    }
    // Nothing was created by the refusals.
    let err = s.aws_err(&["lambda", "get-function", "--function-name", "refused"]);
    assert_eq!(error_code(&err), "ResourceNotFoundException");
}

#[test]
fn default_egress_internet_reaches_public_addresses_only() {
    let s = Server::start_with(&["--default-egress", "internet"]);
    // 203.0.113.0/24 stands for a public address (it is documentation space, routed
    // nowhere but to this test's namespace); 10.78.x.x for a private one.
    let public = TestHost::at(203, 0, 113);
    let private = TestHost::new(10, 78);
    create_probe(&s, "open", None);
    let r = connect(&s, "open", public.addr, TCP_OPEN);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["reply"], format!("{TCP_OPEN}:hello"));
    for (target, port) in [
        (private.addr, TCP_OPEN),
        (Ipv4Addr::new(169, 254, 169, 254), 80),
        (public.gateway, TCP_OPEN),
    ] {
        let r = connect(&s, "open", target, port);
        assert_eq!(r["ok"], false, "{target}:{port} {r}");
    }
}

#[test]
fn without_a_firewall_a_vpc_config_is_refused_not_ignored() {
    let s = Server::start_with(&["--insecure-no-sandbox"]);
    allow_network_interfaces(&s);
    let vpc = s.aws(&["ec2", "create-vpc", "--cidr-block", "10.92.0.0/16"])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let subnet = s.aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.92.1.0/24",
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = s.aws(&[
        "ec2",
        "create-security-group",
        "--vpc-id",
        &vpc,
        "--group-name",
        "g",
        "--description",
        "d",
    ])["GroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    let zip = python_zip(&[("app.py", PROBE)]);
    let zip_arg = format!("fileb://{}", zip.display());
    let mut args = create_probe_args("f", &zip_arg);
    args.extend([
        "--vpc-config".to_owned(),
        format!("SubnetIds={subnet},SecurityGroupIds={group}"),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = s.aws_err(&refs);
    assert_eq!(error_code(&err), "InvalidParameterValueException", "{err}");
    assert!(err.contains("cannot be enforced"), "{err}");
}

#[test]
fn instances_resolve_through_wardens_resolver_which_logs_and_filters_queries() {
    let mut host = TestHost::new(10, 79);
    host.serve_dns();
    let upstream = format!("{}:53", host.addr);
    let s = Server::start_with(&["--dns-upstream", &upstream]);
    let net = make_vpc(&s, &host);
    allow_network_interfaces(&s);
    create_probe(
        &s,
        "resolver",
        Some(&format!(
            "SubnetIds={},SecurityGroupIds={}",
            net.subnet, net.group
        )),
    );
    // A name resolves to the test host, which the security group lets the function reach.
    let r = probe(
        &s,
        "resolver",
        json!({"op": "resolve", "name": "db.test.internal"}),
    );
    assert_eq!(r["addresses"], json!([host.addr.to_string()]), "{r}");
    let r = probe(
        &s,
        "resolver",
        json!({"op": "connect", "host": "db.test.internal", "port": TCP_OPEN}),
    );
    assert_eq!(r["reply"], format!("{TCP_OPEN}:hello"), "{r}");
    let instance = r["instance"].clone();

    // The DNS firewall: a domain list, a rule group that blocks it, associated with the VPC.
    let list = s.aws(&[
        "route53resolver",
        "create-firewall-domain-list",
        "--name",
        "blocked",
        "--creator-request-id",
        "list-1",
    ])["FirewallDomainList"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.aws(&[
        "route53resolver",
        "update-firewall-domains",
        "--firewall-domain-list-id",
        &list,
        "--operation",
        "ADD",
        "--domains",
        "*.blocked.test.internal",
    ]);
    let group = s.aws(&[
        "route53resolver",
        "create-firewall-rule-group",
        "--name",
        "deny-blocked",
        "--creator-request-id",
        "group-1",
    ])["FirewallRuleGroup"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.aws(&[
        "route53resolver",
        "create-firewall-rule",
        "--firewall-rule-group-id",
        &group,
        "--firewall-domain-list-id",
        &list,
        "--priority",
        "100",
        "--action",
        "BLOCK",
        "--block-response",
        "NXDOMAIN",
        "--name",
        "no-blocked",
        "--creator-request-id",
        "rule-1",
    ]);
    s.aws(&[
        "route53resolver",
        "associate-firewall-rule-group",
        "--firewall-rule-group-id",
        &group,
        "--vpc-id",
        &net.vpc,
        "--priority",
        "101",
        "--name",
        "assoc",
        "--creator-request-id",
        "assoc-1",
    ]);
    let blocked = probe(
        &s,
        "resolver",
        json!({"op": "resolve", "name": "api.blocked.test.internal"}),
    );
    assert_eq!(blocked["ok"], false, "{blocked}");
    assert_eq!(blocked["instance"], instance, "the same warm instance");
    let still = probe(
        &s,
        "resolver",
        json!({"op": "resolve", "name": "db.test.internal"}),
    );
    assert_eq!(still["ok"], true, "{still}");

    // Every query is in the function's query log, with its instance, action and answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let queries = loop {
        let (status, _, body) = s.http(
            "GET",
            "/_warden/2026-11-01/functions/resolver/dns-queries?limit=100",
            &[],
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let q = v["Queries"].as_array().unwrap().clone();
        let has_block = q.iter().any(|r| r["Action"] == "BLOCK");
        if has_block || Instant::now() > deadline {
            break q;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let allowed = queries
        .iter()
        .find(|r| r["Name"] == "db.test.internal." && r["QueryType"] == "A")
        .unwrap_or_else(|| panic!("{queries:?}"));
    assert_eq!(allowed["Action"], "ALLOW");
    assert_eq!(allowed["Answers"], json!([host.addr.to_string()]));
    assert_eq!(allowed["VpcId"], net.vpc.as_str());
    assert!(allowed["Instance"].as_str().unwrap().starts_with("i-"));
    let block = queries
        .iter()
        .find(|r| r["Name"] == "api.blocked.test.internal." && r["QueryType"] == "A")
        .unwrap_or_else(|| panic!("{queries:?}"));
    assert_eq!(block["Action"], "BLOCK");
    assert_eq!(block["Rule"], "no-blocked");
    assert_eq!(block["Answers"], json!([]));
    // Another user without permission to read logs cannot read it.
    let nobody = crate::harness::user_with_key(&s, "nobody");
    let (status, _, _) = crate::harness::send(
        &s.endpoint,
        Some(&nobody),
        "GET",
        "/_warden/2026-11-01/functions/resolver/dns-queries",
        &[],
        b"",
    );
    assert_eq!(status, 403);
}

#[test]
fn flow_logs_record_accepted_and_rejected_connections_of_logged_vpcs() {
    let host = TestHost::new(10, 80);
    let s = Server::start_with(&["--flow-log-interval", "1"]);
    let net = make_vpc(&s, &host);
    allow_network_interfaces(&s);
    let vpc_config = format!("SubnetIds={},SecurityGroupIds={}", net.subnet, net.group);
    create_probe(&s, "logged", Some(&vpc_config));
    let created = s.aws(&[
        "ec2",
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        &net.vpc,
        "--traffic-type",
        "ALL",
        "--log-group-name",
        "vpc-flows",
    ]);
    let flow_log = created["FlowLogIds"][0].as_str().unwrap().to_owned();
    assert!(flow_log.starts_with("fl-"), "{created}");
    // A second flow log of the same VPC to the same group is listed as unsuccessful, and
    // an aggregation interval Warden does not apply per flow log is refused by name.
    let again = s.aws(&[
        "ec2",
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        &net.vpc,
        "--traffic-type",
        "ALL",
        "--log-group-name",
        "vpc-flows",
    ]);
    assert_eq!(again["FlowLogIds"], json!([]), "{again}");
    assert_eq!(
        again["Unsuccessful"][0]["Error"]["Code"], "FlowLogAlreadyExists",
        "{again}"
    );
    assert_eq!(again["Unsuccessful"][0]["ResourceId"], net.vpc.as_str());
    let err = s.aws_err(&[
        "ec2",
        "create-flow-logs",
        "--resource-type",
        "VPC",
        "--resource-ids",
        &net.vpc,
        "--traffic-type",
        "ALL",
        "--log-group-name",
        "other",
        "--max-aggregation-interval",
        "600",
    ]);
    assert!(err.contains("MaxAggregationInterval"), "{err}");
    let described = s.aws(&["ec2", "describe-flow-logs", "--flow-log-ids", &flow_log]);
    assert_eq!(described["FlowLogs"][0]["ResourceId"], net.vpc.as_str());
    assert_eq!(described["FlowLogs"][0]["TrafficType"], "ALL");
    assert_eq!(described["FlowLogs"][0]["FlowLogStatus"], "ACTIVE");

    let ok = connect(&s, "logged", host.addr, TCP_OPEN);
    assert_eq!(ok["ok"], true, "{ok}");
    let refused = connect(&s, "logged", host.addr, TCP_OTHER);
    assert_eq!(refused["ok"], false, "{refused}");

    let flows = |name: &str| -> Value {
        let (status, _, body) = s.http(
            "GET",
            &format!("/_warden/2026-11-01/functions/{name}/flows?limit=1000"),
            &[],
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let seen = loop {
        let v = flows("logged");
        let lines: Vec<String> = v["Lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        let has = |port: u16, action: &str| {
            lines.iter().any(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                f.len() == 14 && f[6] == port.to_string() && f[12] == action
            })
        };
        if (has(TCP_OPEN, "ACCEPT") && has(TCP_OTHER, "REJECT")) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let records = seen["Records"].as_array().unwrap();
    let accepted = records
        .iter()
        .find(|r| r["dstport"] == TCP_OPEN && r["action"] == "ACCEPT")
        .unwrap_or_else(|| panic!("no accepted flow: {seen}"));
    // Version 2 fields: the instance's link address to the test host, TCP, some bytes.
    assert_eq!(accepted["version"], 2);
    assert_eq!(accepted["dstaddr"], host.addr.to_string());
    assert!(
        accepted["srcaddr"].as_str().unwrap().starts_with("198.1"),
        "{accepted}"
    );
    assert_eq!(accepted["protocol"], 6);
    assert!(accepted["packets"].as_u64().unwrap() >= 3, "{accepted}");
    assert!(accepted["bytes"].as_u64().unwrap() > 100, "{accepted}");
    assert_eq!(accepted["log-status"], "OK");
    assert_eq!(accepted["function"], "logged");
    assert_eq!(accepted["vpc-id"], net.vpc.as_str());
    assert!(accepted["interface-id"]
        .as_str()
        .unwrap()
        .starts_with("eni-"));
    assert!(accepted["start"].as_i64().unwrap() <= accepted["end"].as_i64().unwrap());
    let rejected = records
        .iter()
        .find(|r| r["dstport"] == TCP_OTHER && r["action"] == "REJECT")
        .unwrap_or_else(|| panic!("no rejected flow: {seen}"));
    assert_eq!(rejected["srcaddr"], accepted["srcaddr"]);
    assert!(seen["RejectedFlows"].as_u64().unwrap() >= 1, "{seen}");

    // The refusal is in the security log and counts in the function's EgressRejects.
    let security = s.aws(&[
        "logs",
        "filter-log-events",
        "--log-group-name",
        "/aws/warden/security",
        "--filter-pattern",
        r#"{ $.event = "EgressReject" && $.function = "logged" }"#,
    ]);
    let event: Value =
        serde_json::from_str(security["events"][0]["message"].as_str().unwrap()).unwrap();
    assert_eq!(event["port"], TCP_OTHER, "{security}");
    assert_eq!(event["destination"], host.addr.to_string());
    let scraped = String::from_utf8(
        std::process::Command::new("curl")
            .args(["-s", &s.metrics_endpoint])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        scraped.lines().any(
            |l| l.starts_with("warden_egress_rejects_total{function=\"logged\"}")
                && !l.ends_with(" 0")
        ),
        "{scraped}"
    );

    // Reading them needs logs:GetLogEvents on the function's flow log group.
    let nobody = crate::harness::user_with_key(&s, "nobody");
    let (status, _, _) = crate::harness::send(
        &s.endpoint,
        Some(&nobody),
        "GET",
        "/_warden/2026-11-01/functions/logged/flows",
        &[],
        b"",
    );
    assert_eq!(status, 403);

    // The CLI prints the same records in the default format.
    let out = s.warden(&["network", "flows", "logged"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("2 ") && l.contains(" ACCEPT OK logged i-")),
        "{text}"
    );

    // A VPC without a flow log records nothing; deleting the flow log stops the records.
    s.aws(&["ec2", "delete-flow-logs", "--flow-log-ids", &flow_log]);
    let described = s.aws(&["ec2", "describe-flow-logs"]);
    assert_eq!(described["FlowLogs"], json!([]), "{described}");
    std::thread::sleep(Duration::from_secs(2));
    let before = flows("logged")["Records"].as_array().unwrap().len();
    let again = connect(&s, "logged", host.addr, TCP_OTHER);
    assert_eq!(again["ok"], false);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(flows("logged")["Records"].as_array().unwrap().len(), before);
}
