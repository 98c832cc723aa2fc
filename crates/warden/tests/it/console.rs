//! The web console: its HTTP contract (sessions, cookie flags, CSRF, CSP, IAM decisions
//! exactly as through the CLI, the audit trail) with `requests`, and its pages in Debian's
//! Chromium driven through WebDriver (Selenium), with screenshots kept under
//! `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::harness::{
    create_python_function, user_with_key, user_with_policy, Credentials, Server,
};

/// A Python handler that fails when the event asks it to, or when `FAIL` is set.
const FLAKY: &str = r#"import os
def handler(event, context):
    print('got', event.get('marker', '-'))
    if event.get('fail') or os.environ.get('FAIL'):
        raise ValueError('asked to fail')
    return {'ok': True}
"#;

fn create_flaky(s: &Server, name: &str) {
    create_python_function(s, name, &[("app.py", FLAKY)], &[]);
}

/// Read-only access to what the console shows, and nothing that changes anything.
fn read_only_policy() -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": [
                "lambda:Get*", "lambda:List*", "warden:Get*", "cloudwatch:GetMetricData", "cloudwatch:ListMetrics",
                "cloudwatch:Describe*", "logs:FilterLogEvents", "config:Get*",
                "cloudtrail:LookupEvents", "cloudtrail:GetTrailStatus",
                "securityhub:GetFindings", "inspector2:ListFindings",
                "iam:ListUsers", "iam:ListRoles"
            ],
            "Resource": "*"
        }]
    })
}

/// Runs `body` under Python with `requests`, a `console` helper and the credentials
/// given as `ADMIN` and `READER` (`[key, secret]`).
fn run_requests(s: &Server, admin: &Credentials, reader: &Credentials, body: &str) -> String {
    let script = format!(
        r#"
import json, re, sys, time, requests
BASE = {base:?}
ADMIN = [{ak:?}, {asec:?}]
READER = [{rk:?}, {rsec:?}]

def sign_in(who, origin=True):
    s = requests.Session()
    headers = {{"Origin": BASE}} if origin else {{}}
    r = s.post(BASE + "/console/sign-in", data={{"access_key_id": who[0], "secret_access_key": who[1]}},
               headers=headers, allow_redirects=False)
    return s, r

def csrf(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:2000]
    return m.group(1)
{body}
print("ok")
"#,
        base = s.endpoint,
        ak = admin.key,
        asec = admin.secret,
        rk = reader.key,
        rsec = reader.secret,
    );
    let out = s.python(&script);
    assert!(out.trim_end().ends_with("ok"), "{out}");
    out
}

#[test]
fn the_console_signs_in_by_key_and_authorizes_every_call_as_the_cli_would() {
    let s = Server::start();
    let admin = s.admin();
    create_flaky(&s, "flaky");
    let reader = user_with_policy(&s, "reader", &read_only_policy());
    let nobody = user_with_key(&s, "nobody");
    run_requests(
        &s,
        &admin,
        &reader,
        &format!(
            r#"
NOBODY = [{nk:?}, {nsec:?}]
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

# Signed out: pages redirect to the sign-in page, streams and changes are refused.
r = requests.get(BASE + "/console/functions", allow_redirects=False)
assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in", r
assert r.headers["Content-Security-Policy"] == CSP, r.headers
assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
assert requests.get(BASE + "/console/live/functions").status_code == 401
assert requests.post(BASE + "/console/functions/flaky/invoke", data={{"payload": "{{}}"}}).status_code == 401
r = requests.get(BASE + "/console/assets/console.js")
assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript"), r

# A wrong secret, an unknown key, and a sign-in posted from another origin open nothing.
for creds in ([ADMIN[0], "wrong"], ["AKIAUNKNOWN000000000", ADMIN[1]]):
    _, r = sign_in(creds)
    assert r.status_code == 403 and "Set-Cookie" not in r.headers, r
    assert "wrong" in r.text
s0 = requests.Session()
r = s0.post(BASE + "/console/sign-in", data={{"access_key_id": ADMIN[0], "secret_access_key": ADMIN[1]}},
            headers={{"Origin": "http://evil.example"}}, allow_redirects=False)
assert r.status_code == 403 and "Set-Cookie" not in r.headers, r

# The admin signs in: an HttpOnly, SameSite=Strict cookie scoped to the console.
admin, r = sign_in(ADMIN)
assert r.status_code == 303 and r.headers["Location"] == "/console/functions", r
cookie = r.headers["Set-Cookie"]
for flag in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=3600"):
    assert flag in cookie, cookie
page = admin.get(BASE + "/console/functions")
assert page.status_code == 200 and 'data-function="flaky"' in page.text, page.text[:3000]
assert page.headers["Content-Security-Policy"] == CSP
token = csrf(page.text)

# Every change needs the session's CSRF token, and a same-origin Origin when one is sent.
r = admin.post(BASE + "/console/functions/flaky/invoke", data={{"payload": "{{}}"}}, headers={{"Origin": BASE}})
assert r.status_code == 403 and "CSRF" in r.text, r.text[-800:]
r = admin.post(BASE + "/console/functions/flaky/invoke", data={{"payload": "{{}}", "csrf": token + "x"}}, headers={{"Origin": BASE}})
assert r.status_code == 403 and "CSRF" in r.text
r = admin.post(BASE + "/console/functions/flaky/invoke", data={{"payload": "{{}}", "csrf": token}}, headers={{"Origin": "http://evil.example"}})
assert r.status_code == 403 and "another origin" in r.text
r = admin.post(BASE + "/console/functions/flaky/invoke", data=b"x" * (1024 * 1024 + 10),
               headers={{"Origin": BASE, "Content-Type": "application/x-www-form-urlencoded"}})
assert r.status_code == 413, r
r = admin.post(BASE + "/console/functions/flaky/invoke", data={{"payload": '{{"fail": true}}', "csrf": token}}, headers={{"Origin": BASE}})
outcome = re.search(r'<section id="outcome".*?</section>', r.text, re.S)
assert r.status_code == 200 and outcome, (r.status_code, r.text[:3000])
assert "Function error: Unhandled" in outcome.group(0) and "asked to fail" in outcome.group(0), outcome.group(0)

# The read-only user sees the function but is refused the invocation, by IAM, as the
# CLI would be; the no-policy user is refused the list itself.
reader, r = sign_in(READER)
assert r.status_code == 303, r
page = reader.get(BASE + "/console/functions/flaky")
assert page.status_code == 200 and "app.handler" in page.text, page.text[:2000]
assert "No input contract" in page.text and "No resource policy" in page.text, re.findall(r"<h2>(?:Resource policy|Input contract)</h2>.{{0,300}}", page.text)
assert "AccessDeniedException" not in page.text, re.findall(r'class="refused"[^<]*', page.text)
r = reader.post(BASE + "/console/functions/flaky/invoke", data={{"payload": "{{}}", "csrf": csrf(page.text)}}, headers={{"Origin": BASE}})
assert r.status_code == 403 and "AccessDeniedException" in r.text and "lambda:InvokeFunction" in r.text, r.text[-1500:]
r = reader.post(BASE + "/console/functions/flaky/publish", data={{"csrf": csrf(page.text)}}, headers={{"Origin": BASE}})
assert r.status_code == 403 and "lambda:PublishVersion" in r.text, r.text[-1500:]
nobody, r = sign_in(NOBODY)
page = nobody.get(BASE + "/console/functions")
assert "AccessDeniedException" in page.text and 'data-function="flaky"' not in page.text, page.text[-1500:]
assert nobody.get(BASE + "/console/live/functions", stream=True, timeout=10).text.startswith("event: end")

# The live stream counts the last minute's invocations and errors per function.
import boto3
lam = boto3.client("lambda", endpoint_url=BASE)
with admin.get(BASE + "/console/live/functions", stream=True, timeout=30) as live:
    assert live.headers["Content-Type"] == "text/event-stream"
    lines = live.iter_lines(decode_unicode=True)
    assert next(lines) == "event: rows"
    for _ in range(2):
        assert lam.invoke(FunctionName="flaky", Payload=b'{{"fail": true}}').get("FunctionError") == "Unhandled"
    seen = None
    deadline = time.time() + 20
    while time.time() < deadline:
        line = next(lines)
        if line.startswith("data: "):
            row = json.loads(line[6:]).get("flaky")
            if row and row["errors"] >= 2:
                seen = row
                break
    assert seen == {{"invocations": 2, "errors": 2}}, seen

# Every console call is in the audit trail under the principal that made it.
import boto3
ct = boto3.client("cloudtrail", endpoint_url=BASE)
events = ct.lookup_events(LookupAttributes=[{{"AttributeKey": "Username", "AttributeValue": "reader"}}])["Events"]
# (Invoke is a data event, which LookupEvents does not return, as in CloudTrail.)
denied = [e for e in events if e["EventName"] == "PublishVersion"]
assert denied, [e["EventName"] for e in events]
detail = json.loads(denied[0]["CloudTrailEvent"])
assert detail["errorCode"] == "AccessDenied" or detail["errorCode"] == "AccessDeniedException", detail
assert detail["userAgent"] == "warden-console" and detail["userIdentity"]["accessKeyId"] == READER[0], detail

# Every sign-in, refused or not, is a ConsoleLogin event from signin.amazonaws.com,
# without the secret.
logins = ct.lookup_events(LookupAttributes=[{{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}}])["Events"]
details = [json.loads(e["CloudTrailEvent"]) for e in logins]
assert all(d["eventSource"] == "signin.amazonaws.com" for d in details), details
ok = [d for d in details if "errorCode" not in d]
refused = [d for d in details if d.get("errorCode")]
assert {{d["userIdentity"]["accessKeyId"] for d in ok}} >= {{ADMIN[0], READER[0]}}, ok
assert len(refused) == 2 and {{d["errorCode"] for d in refused}} == {{"UnrecognizedClientException"}}, refused
assert not any(ADMIN[1] in json.dumps(d) or READER[1] in json.dumps(d) for d in details)

# Safe actions: suppress a posture finding with a reason; disable an alarm's actions. The
# read-only user is refused both.
cw = boto3.client("cloudwatch", endpoint_url=BASE)
cw.put_metric_alarm(AlarmName="flaky-errors", Namespace="AWS/Lambda", MetricName="Errors",
                    Dimensions=[{{"Name": "FunctionName", "Value": "flaky"}}], Statistic="Sum", Period=60,
                    EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold")
page = admin.get(BASE + "/console/alarms")
assert 'data-alarm="flaky-errors"' in page.text, page.text[-1500:]
r = reader.post(BASE + "/console/alarms/actions", data={{"alarm": "flaky-errors", "enable": "false", "csrf": csrf(reader.get(BASE + "/console/alarms").text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 403 and "cloudwatch:DisableAlarmActions" in r.text, r.text[-1500:]
assert cw.describe_alarms(AlarmNames=["flaky-errors"])["MetricAlarms"][0]["ActionsEnabled"] is True
r = admin.post(BASE + "/console/alarms/actions", data={{"alarm": "flaky-errors", "enable": "false", "csrf": csrf(page.text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 303, r.text[-1500:]
assert cw.describe_alarms(AlarmNames=["flaky-errors"])["MetricAlarms"][0]["ActionsEnabled"] is False
deadline = time.time() + 30
while True:
    page = admin.get(BASE + "/console/findings")
    ids = re.findall(r'data-finding="([^"]*function:flaky)"', page.text)
    if ids or time.time() > deadline:
        break
    time.sleep(0.5)
assert ids, page.text[-2000:]
import html as htmlmod
finding = htmlmod.unescape(ids[0])
product = htmlmod.unescape(re.search(r'name="product" value="([^"]+)"', page.text).group(1))
r = reader.post(BASE + "/console/findings/suppress", data={{"id": finding, "product": product, "reason": "r", "csrf": csrf(reader.get(BASE + "/console/findings").text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 403 and "AccessDeniedException" in r.text, r.text[-1500:]
r = admin.post(BASE + "/console/findings/suppress", data={{"id": finding, "product": product, "reason": "accepted risk: test", "csrf": csrf(page.text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 303, r.text[-1500:]
assert finding not in htmlmod.unescape(admin.get(BASE + "/console/findings").text)
hub = boto3.client("securityhub", endpoint_url=BASE)
f = hub.get_findings(Filters={{"Id": [{{"Value": finding, "Comparison": "EQUALS"}}]}})["Findings"][0]
assert f["Workflow"]["Status"] == "SUPPRESSED" and f["Note"]["Text"] == "accepted risk: test", f

# The trail is verified on demand and the result stays on the audit page; a user not
# allowed the trail's status may not run it.
page = admin.get(BASE + "/console/audit")
assert "No verification has run" in page.text, page.text[-2000:]
r = nobody.post(BASE + "/console/audit/verify", data={{"csrf": csrf(nobody.get(BASE + "/console/audit").text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 403 and "cloudtrail:GetTrailStatus" in r.text, r.text[-1500:]
r = admin.post(BASE + "/console/audit/verify", data={{"csrf": csrf(page.text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 303, r.text[-1500:]
page = admin.get(BASE + "/console/audit")
section = re.search(r'<section id="verification".*?</section>', page.text, re.S).group(0)
assert "OK: nothing removed, altered, inserted, reordered or truncated." in section, section
checked = int(re.search(r"(\d+) events checked", section).group(1))
assert checked > 20, section
# It reads the whole trail, so it runs at most once every 30 s.
r = admin.post(BASE + "/console/audit/verify", data={{"csrf": csrf(page.text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 429 and "verified again in" in r.text, r.text[-1500:]

# Network rules: the function's security groups, read through EC2's API.
iam = boto3.client("iam", endpoint_url=BASE)
ec2 = boto3.client("ec2", endpoint_url=BASE)
vpc = ec2.create_vpc(CidrBlock="10.88.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.88.1.0/24")["Subnet"]["SubnetId"]
group = ec2.create_security_group(VpcId=vpc, GroupName="db-clients", Description="d")["GroupId"]
ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[{{"IpProtocol": "-1", "IpRanges": [{{"CidrIp": "0.0.0.0/0"}}]}}])
ec2.authorize_security_group_egress(GroupId=group, IpPermissions=[{{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{{"CidrIp": "10.88.1.0/24"}}]}}])
iam.put_role_policy(RoleName="warden-default", PolicyName="vpc", PolicyDocument=json.dumps({{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Resource": "*",
    "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"]}}]}}))
lam.update_function_configuration(FunctionName="flaky", VpcConfig={{"SubnetIds": [subnet], "SecurityGroupIds": [group]}})
page = admin.get(BASE + "/console/functions/flaky").text
rules = re.search(r'<section aria-label="Network rules">.*?</section>', page, re.S).group(0)
assert group in rules and "db-clients" in rules and "5432–5432" in rules and "10.88.1.0/24" in rules, rules
assert "0.0.0.0/0" not in rules, rules

# Signing out ends the session on the server, not only in the browser.
page = admin.get(BASE + "/console/functions")
r = admin.post(BASE + "/console/sign-out", data={{"csrf": csrf(page.text)}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 303 and "Max-Age=0" in r.headers["Set-Cookie"], r.headers
stolen = requests.Session()
stolen.cookies.update(admin.cookies)
stolen.cookies.set("warden_console", cookie.split(";")[0].split("=", 1)[1], path="/console")
assert stolen.get(BASE + "/console/functions", allow_redirects=False).status_code == 303

# Deactivating the reader's key ends its session at once.
iam = boto3.client("iam", endpoint_url=BASE)
iam.update_access_key(UserName="reader", AccessKeyId=READER[0], Status="Inactive")
r = reader.get(BASE + "/console/functions", allow_redirects=False)
assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in", r
"#,
            nk = nobody.key,
            nsec = nobody.secret,
        ),
    );
}

#[test]
fn an_expired_console_session_is_refused() {
    let s = Server::start_with(&["--console-session-ttl", "1"]);
    let admin = s.admin();
    run_requests(
        &s,
        &admin,
        &admin,
        r#"
admin, r = sign_in(ADMIN)
assert "Max-Age=1" in r.headers["Set-Cookie"], r.headers
assert admin.get(BASE + "/console/functions", allow_redirects=False).status_code == 200
time.sleep(1.5)
r = admin.get(BASE + "/console/functions", allow_redirects=False)
assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in", r
assert admin.get(BASE + "/console/live/functions").status_code == 401
"#,
    );
}

/// A program on `PATH`; the test fails, naming the package, when it is missing.
fn program(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("the console's browser test needs `{name}` (Debian: {package}); `cargo xtask ci` installs it")
        })
}

#[test]
fn the_console_in_a_real_browser() {
    let chromium = program("chromium", "chromium");
    let driver = program("chromedriver", "chromium-driver");
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let s = Server::start();
    let admin = s.admin();
    create_flaky(&s, "flaky");
    s.aws(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "flaky-errors",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        "Errors",
        "--dimensions",
        "Name=FunctionName,Value=flaky",
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--threshold",
        "0",
        "--comparison-operator",
        "GreaterThanThreshold",
    ]);
    let reader = user_with_policy(&s, "reader", &read_only_policy());
    run_requests(
        &s,
        &admin,
        &reader,
        &format!(
            r##"
import boto3
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = {shots:?}
opts = webdriver.ChromeOptions()
opts.binary_location = {chromium:?}
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {{"browser": "ALL"}})
d = webdriver.Chrome(service=Service({driver:?}), options=opts)
wait = lambda seconds, cond, what: WebDriverWait(d, seconds).until(lambda _: cond(), message=what)
lam = boto3.client("lambda", endpoint_url=BASE)

def browser_sign_in(who):
    d.get(BASE + "/console/")
    d.find_element(By.ID, "access_key_id").send_keys(who[0])
    d.find_element(By.ID, "secret_access_key").send_keys(who[1])
    d.find_element(By.CSS_SELECTOR, "form[action='/console/sign-in'] button").click()
    wait(10, lambda: d.current_url.endswith("/console/functions"), "signed in")

try:
    browser_sign_in(ADMIN)
    # The session cookie is not readable by the page's script.
    assert d.execute_script("return document.cookie") == "", d.execute_script("return document.cookie")
    row = d.find_element(By.CSS_SELECTOR, "tr[data-function=flaky]")
    assert "failing" not in (row.get_attribute("class") or ""), row.get_attribute("outerHTML")
    d.save_screenshot(SHOTS + "/1-functions.png")

    # A change that makes the function fail, then failures: the row turns red on its
    # own, through the live stream, without a reload.
    lam.update_function_configuration(FunctionName="flaky", Environment={{"Variables": {{"FAIL": "1"}}}})
    lam.get_waiter("function_updated").wait(FunctionName="flaky")
    for _ in range(3):
        r = lam.invoke(FunctionName="flaky", Payload=b"{{}}")
        assert r.get("FunctionError") == "Unhandled", r
    wait(15, lambda: "failing" in d.find_element(By.CSS_SELECTOR, "tr[data-function=flaky]").get_attribute("class"), "the row turned red")
    assert d.find_element(By.CSS_SELECTOR, "tr[data-function=flaky] .live-err").text == "3"
    d.save_screenshot(SHOTS + "/2-failing.png")

    # The alarm fires once its minute is closed; from it, follow the function to the
    # change that caused it, and on to that change's audit event.
    def alarm_state():
        d.get(BASE + "/console/alarms")
        return d.find_element(By.CSS_SELECTOR, "tr[data-alarm=flaky-errors] td.state").text
    wait(100, lambda: alarm_state() == "ALARM", "the alarm fired")
    d.save_screenshot(SHOTS + "/3-alarm.png")
    d.find_element(By.CSS_SELECTOR, "tr[data-alarm=flaky-errors] a[href='/console/functions/flaky']").click()
    wait(10, lambda: d.current_url.endswith("/console/functions/flaky"), "the function page")
    assert len(d.find_elements(By.CSS_SELECTOR, "#charts svg")) == 3
    history = d.find_element(By.CSS_SELECTOR, "section[aria-label='Configuration history']")
    latest = history.find_element(By.CSS_SELECTOR, "details")
    assert "FAIL" in latest.text and "ResourceDiscovered" not in latest.text, latest.text
    d.save_screenshot(SHOTS + "/4-function.png")
    latest.find_element(By.LINK_TEXT, "audit event").click()
    wait(10, lambda: "/console/audit" in d.current_url, "the audit page")
    events = d.find_element(By.ID, "events").text
    assert "UpdateFunctionConfiguration" in events and "admin" in events, events
    d.save_screenshot(SHOTS + "/5-audit.png")

    # The log tail follows new lines live, through its filter pattern.
    d.get(BASE + "/console/functions/flaky?filter=%22got%20tail%22")
    lam.invoke(FunctionName="flaky", Payload=b'{{"marker": "other"}}')
    lam.invoke(FunctionName="flaky", Payload=b'{{"marker": "tail"}}')
    wait(15, lambda: "got tail" in d.find_element(By.ID, "logs").text, "the live log tail")
    assert "got other" not in d.find_element(By.ID, "logs").text
    d.save_screenshot(SHOTS + "/5b-log-tail.png")

    # Every page: each control has a label, one heading names the page, and keyboard
    # focus reaches the first link.
    for path in ["/console/functions", "/console/functions/flaky", "/console/alarms",
                 "/console/findings", "/console/audit", "/console/iam"]:
        d.get(BASE + path)
        unlabeled = d.execute_script("""return Array.from(document.querySelectorAll(
            'input:not([type=hidden]), select, textarea')).filter(e => !(e.id &&
            document.querySelector('label[for="' + CSS.escape(e.id) + '"]')) &&
            !e.getAttribute('aria-label')).map(e => e.outerHTML)""")
        assert unlabeled == [], (path, unlabeled)
        assert len(d.find_elements(By.TAG_NAME, "h1")) == 1, path
    d.save_screenshot(SHOTS + "/7-iam.png")

    # Invoke from the page; then sign out, and the read-only user cannot invoke.
    d.get(BASE + "/console/functions/flaky")
    d.find_element(By.CSS_SELECTOR, "form[action$='/invoke'] button").click()
    wait(20, lambda: d.find_elements(By.ID, "outcome"), "the invocation's result")
    assert "asked to fail" in d.find_element(By.ID, "outcome").text
    d.find_element(By.CSS_SELECTOR, "form[action='/console/sign-out'] button").click()
    wait(10, lambda: d.current_url.endswith("/console/sign-in"), "signed out")
    browser_sign_in(READER)
    d.get(BASE + "/console/functions/flaky")
    d.find_element(By.CSS_SELECTOR, "form[action$='/invoke'] button").click()
    wait(20, lambda: d.find_elements(By.ID, "outcome"), "the refusal")
    outcome = d.find_element(By.ID, "outcome").text
    assert "AccessDeniedException" in outcome and "lambda:InvokeFunction" in outcome, outcome
    d.save_screenshot(SHOTS + "/6-read-only-refused.png")

    # Nothing the pages did broke the Content-Security-Policy.
    logs = d.get_log("browser")
    assert not [l for l in logs if "Content Security Policy" in l["message"]], logs
finally:
    d.quit()
"##,
            shots = shots.display().to_string(),
            chromium = chromium.display().to_string(),
            driver = driver.display().to_string(),
        ),
    );
}

#[test]
fn a_server_started_with_console_off_serves_no_console() {
    let s = Server::start_with(&["--console", "off"]);
    for path in [
        "/console/",
        "/console/sign-in",
        "/console/assets/console.js",
    ] {
        let (status, _, body) = s.http_unsigned("GET", path, &[], b"");
        assert_eq!(status, 404, "{path}");
        assert!(
            String::from_utf8_lossy(&body).contains("--console off"),
            "{path}"
        );
    }
    let (status, _, _) = s.http_unsigned(
        "POST",
        "/console/sign-in",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"access_key_id=a&secret_access_key=b",
    );
    assert_eq!(status, 404);
    // The API itself is unchanged.
    s.aws(&["lambda", "list-functions"]);
}

#[test]
fn warden_console_prints_a_one_time_sign_in_link() {
    let s = Server::start();
    let out = s.warden(&["console"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        link.starts_with(&format!("{}/console/sign-in/link?token=", s.endpoint)),
        "{link}"
    );
    let admin = s.admin();
    run_requests(
        &s,
        &admin,
        &admin,
        &format!(
            r#"
LINK = {link:?}
token = LINK.split("token=", 1)[1]
# Opening the link only shows who it signs in as; a second look is still allowed.
r = requests.get(LINK)
assert r.status_code == 200 and ":user/admin" in r.text and 'name="token"' in r.text, r.text[-1500:]
assert requests.get(LINK).status_code == 200
# Posted from another origin: refused, and the link still unused.
r = requests.post(BASE + "/console/sign-in/link", data={{"token": token}}, headers={{"Origin": "http://evil.example"}}, allow_redirects=False)
assert r.status_code == 403, r
s1 = requests.Session()
r = s1.post(BASE + "/console/sign-in/link", data={{"token": token}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 303 and "HttpOnly" in r.headers["Set-Cookie"], (r.status_code, r.text[-800:])
assert s1.get(BASE + "/console/functions", allow_redirects=False).status_code == 200
# Once only.
r = requests.post(BASE + "/console/sign-in/link", data={{"token": token}}, headers={{"Origin": BASE}}, allow_redirects=False)
assert r.status_code == 403 and "used or expired" in r.text, r
assert requests.get(LINK).status_code == 403
# Minting needs a valid signature.
r = requests.post(BASE + "/console/link")
assert r.status_code == 403 and r.headers.get("x-amzn-ErrorType", "").startswith("MissingAuthenticationToken"), (r.status_code, r.headers, r.text)
r = requests.post(BASE + "/console/link", headers={{"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAUNKNOWN000000000/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00"}})
assert r.status_code in (400, 403) and "Set-Cookie" not in r.headers, r
"#
        ),
    );
    // A user's own link signs in as that user.
    let reader = user_with_key(&s, "linked");
    let out = Command::new(crate::harness::warden_bin())
        .args(["--endpoint-url", &s.endpoint, "console"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", &reader.key)
        .env("AWS_SECRET_ACCESS_KEY", &reader.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(":user/linked"));
}
