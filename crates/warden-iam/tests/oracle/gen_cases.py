#!/usr/bin/env python3
"""Generates tests/data/cases.jsonl: policy-evaluation cases with their expected decision.

Each line is one case: {"id", "expect", "note", ...simulation fields}. The expected decision is
written by hand here from AWS's documentation, not computed by either evaluator; the Rust test
checks Warden against it and the oracle test checks @cloud-copilot/iam-simulate against it.
Run: python3 crates/warden-iam/tests/oracle/gen_cases.py > crates/warden-iam/tests/data/cases.jsonl
"""
import json

ACCT = "123456789012"
ALICE = f"arn:aws:iam::{ACCT}:user/alice"
BOB = f"arn:aws:iam::{ACCT}:user/bob"
ROLE = f"arn:aws:iam::{ACCT}:role/app"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/app/sess-1"
FN = f"arn:aws:lambda:us-east-1:{ACCT}:function:orders"
FN_ALIAS = FN + ":prod"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCT}:table/Orders"

cases = []


def pol(*stmts, version="2012-10-17"):
    p = {"Statement": list(stmts)}
    if version is not None:
        p = {"Version": version, **p}
    return p


def allow(action="*", resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action="*", resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def case(cid, expect, note, identity=(), resource_policy=None, action="lambda:InvokeFunction",
         resource=FN, principal=ALICE, context=None):
    cases.append({
        "id": cid, "expect": expect, "note": note,
        "identityPolicies": list(identity), "resourcePolicy": resource_policy,
        "action": action, "resource": resource, "principal": principal,
        "context": context or {},
    })


# ---------------------------------------------------------------- actions
A = [
    ("lambda:InvokeFunction", "lambda:InvokeFunction", "allowed", "exact action"),
    ("lambda:invokefunction", "lambda:InvokeFunction", "allowed", "action names are case-insensitive"),
    ("LAMBDA:INVOKEFUNCTION", "lambda:InvokeFunction", "allowed", "service prefix is case-insensitive"),
    ("lambda:*", "lambda:InvokeFunction", "allowed", "service wildcard"),
    ("*", "lambda:InvokeFunction", "allowed", "global wildcard"),
    ("lambda:Invoke*", "lambda:InvokeFunction", "allowed", "prefix wildcard"),
    ("lambda:Invoke*", "lambda:InvokeAsync", "allowed", "prefix wildcard, other action"),
    ("lambda:*Function", "lambda:GetFunction", "allowed", "suffix wildcard"),
    ("lambda:*Function", "lambda:GetPolicy", "implicitDeny", "suffix wildcard misses"),
    ("lambda:*Func*", "lambda:GetFunctionConfiguration", "allowed", "two wildcards"),
    ("lambda:Get?unction", "lambda:GetFunction", "allowed", "? matches one character"),
    ("lambda:Get?unction", "lambda:GetFFunction", "implicitDeny", "? matches exactly one"),
    ("lambda:Get??nction", "lambda:GetFunction", "allowed", "two ?"),
    ("lambda:GetFunction", "lambda:GetFunctionConfiguration", "implicitDeny", "no implicit prefix match"),
    ("lambda:Get*", "dynamodb:GetItem", "implicitDeny", "different service"),
    ("dynamodb:*", "lambda:InvokeFunction", "implicitDeny", "service wildcard of another service"),
    ("lambda:Invoke", "lambda:InvokeFunction", "implicitDeny", "prefix only"),
    ("lambda:*", "lambdax:InvokeFunction", "implicitDeny", "service must match whole"),
    ("lambda:I*n", "lambda:InvokeFunction", "allowed", "wildcard in the middle"),
    ("lambda:*Invoke*Function*", "lambda:InvokeFunction", "allowed", "stars may match empty"),
]
for i, (pat, act, exp, note) in enumerate(A):
    case(f"action-{i:02}", exp, note, [pol(allow(pat))], action=act)
case("action-list-hit", "allowed", "any action in a list", [pol(allow(["dynamodb:GetItem", "lambda:Invoke*"]))])
case("action-list-miss", "implicitDeny", "no action in list", [pol(allow(["dynamodb:GetItem", "lambda:Get*"]))])
case("notaction-allow-other", "allowed", "NotAction allows what is not listed",
     [pol({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})])
case("notaction-allow-listed", "implicitDeny", "NotAction does not allow what is listed",
     [pol({"Effect": "Allow", "NotAction": "lambda:*", "Resource": "*"})])
case("notaction-deny", "explicitDeny", "Deny with NotAction denies everything else",
     [pol(allow(), {"Effect": "Deny", "NotAction": ["lambda:Get*"], "Resource": "*"})])
case("notaction-deny-exempt", "allowed", "Deny NotAction exempts listed actions",
     [pol(allow(), {"Effect": "Deny", "NotAction": ["lambda:Invoke*"], "Resource": "*"})])
case("notaction-list", "implicitDeny", "NotAction list with a match",
     [pol({"Effect": "Allow", "NotAction": ["iam:*", "lambda:invoke*"], "Resource": "*"})])

# ---------------------------------------------------------------- resources
R = [
    (FN, FN, "allowed", "exact ARN"),
    ("arn:aws:lambda:us-east-1:123456789012:function:Orders", FN, "implicitDeny", "resource part is case-sensitive"),
    ("arn:aws:lambda:us-east-1:123456789012:function:*", FN, "allowed", "wildcard resource id"),
    ("arn:aws:lambda:us-east-1:123456789012:function:*", FN_ALIAS, "allowed", "resource-part * crosses colons"),
    ("arn:aws:lambda:us-east-1:123456789012:function:orders", FN_ALIAS, "implicitDeny", "qualified ARN is a different resource"),
    ("arn:aws:lambda:us-east-1:123456789012:function:orders:*", FN_ALIAS, "allowed", "any qualifier"),
    ("arn:aws:lambda:us-east-1:123456789012:function:orders:*", FN, "implicitDeny", "qualifier pattern needs a qualifier"),
    ("arn:aws:lambda:us-east-1:123456789012:function:ord*", FN, "allowed", "prefix wildcard in id"),
    ("arn:aws:lambda:us-east-1:123456789012:function:ord?rs", FN, "allowed", "? in id"),
    ("arn:aws:lambda:us-east-1:123456789012:function:ord?rs", "arn:aws:lambda:us-east-1:123456789012:function:ordrs", "implicitDeny", "? needs one char"),
    ("arn:aws:lambda:*:123456789012:function:orders", FN, "allowed", "wildcard region"),
    ("arn:aws:lambda:us-*:123456789012:function:orders", FN, "allowed", "partial wildcard region"),
    ("arn:aws:lambda:eu-*:123456789012:function:orders", FN, "implicitDeny", "partial wildcard region misses"),
    ("arn:aws:lambda:us-east-?:123456789012:function:orders", FN, "allowed", "? in region"),
    ("arn:aws:lambda:us-east-1:*:function:orders", FN, "allowed", "wildcard account"),
    ("arn:aws:lambda:us-east-1:210987654321:function:orders", FN, "implicitDeny", "other account"),
    ("arn:aws:lambda:*:*:function:orders", FN, "allowed", "wildcard region and account"),
    ("arn:aws:lambda:us-east-1:123456789012:*", FN, "allowed", "wildcard whole resource part"),
    ("arn:aws:lambda:us-east-1:*:orders", FN, "implicitDeny", "account * does not swallow the resource type"),
    ("arn:aws:*:us-east-1:123456789012:function:orders", FN, "allowed", "wildcard service segment"),
    ("arn:*:lambda:us-east-1:123456789012:function:orders", FN, "allowed", "wildcard partition"),
    ("arn:aws-cn:lambda:us-east-1:123456789012:function:orders", FN, "implicitDeny", "other partition"),
    ("arn:aws:lambda:us-east-1:123456789012:function:orders-*", FN, "implicitDeny", "suffix pattern needs the dash"),
    ("arn:aws:lambda:us-east-1:123456789012:function:*s", FN, "allowed", "suffix match"),
    ("arn:aws:lambda:us-east-1:123456789012:function:*x", FN, "implicitDeny", "suffix miss"),
    ("arn:aws:lambda:*", FN, "allowed", "short ARN padded with wildcards in identity policies"),
    ("arn:aws:dynamodb:us-east-1:123456789012:table/Orders", TABLE, "allowed", "slash resource exact"),
    ("arn:aws:dynamodb:us-east-1:123456789012:table/*", TABLE, "allowed", "slash wildcard"),
    ("arn:aws:dynamodb:us-east-1:123456789012:table/Orders/*", TABLE, "implicitDeny", "index pattern misses table"),
    ("arn:aws:dynamodb:us-east-1:123456789012:table/Orders/*", TABLE + "/index/ByDate", "allowed", "* crosses slashes"),
    ("arn:aws:dynamodb:us-east-1:123456789012:table/orders", TABLE, "implicitDeny", "table name case-sensitive"),
    ("*", FN, "allowed", "star resource"),
]
for i, (pat, res, exp, note) in enumerate(R):
    action = "dynamodb:GetItem" if ":dynamodb:" in res else "lambda:InvokeFunction"
    case(f"resource-{i:02}", exp, note, [pol(allow("*", pat))], action=action, resource=res)
case("resource-list", "allowed", "any resource in list", [pol(allow("*", [TABLE, FN]))])
case("notresource-allow", "allowed", "NotResource allows other resources",
     [pol({"Effect": "Allow", "Action": "*", "NotResource": TABLE})])
case("notresource-allow-listed", "implicitDeny", "NotResource excludes listed",
     [pol({"Effect": "Allow", "Action": "*", "NotResource": [TABLE, "arn:aws:lambda:*:*:function:ord*"]})])
case("notresource-deny", "explicitDeny", "Deny NotResource denies everything else",
     [pol(allow(), {"Effect": "Deny", "Action": "*", "NotResource": TABLE})])
case("notresource-deny-exempt", "allowed", "Deny NotResource exempts listed",
     [pol(allow(), {"Effect": "Deny", "Action": "*", "NotResource": FN})])
case("resource-var-username", "allowed", "${aws:username} in resource",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:username}-*"))],
     resource="arn:aws:lambda:us-east-1:123456789012:function:alice-f", context={"aws:username": "alice"})
case("resource-var-username-other", "implicitDeny", "${aws:username} for another user",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:username}-*"))],
     resource="arn:aws:lambda:us-east-1:123456789012:function:bob-f", context={"aws:username": "alice"})
case("resource-var-missing", "implicitDeny", "missing variable never matches",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:username}"))])
case("resource-var-default", "allowed", "variable default applies when key missing",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:username, 'orders'}"))])
case("resource-var-default-unused", "implicitDeny", "present key beats default",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:username, 'orders'}"))],
     context={"aws:username": "bob"})
case("resource-var-tag", "allowed", "PrincipalTag variable",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:PrincipalTag/team}"))],
     context={"aws:PrincipalTag/team": "orders"})
case("resource-var-keycase", "allowed", "variable key is case-insensitive",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${AWS:USERNAME}"))],
     context={"aws:username": "orders"})
case("resource-var-star-escape", "allowed", "${*} is a literal star",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:a${*}"))],
     resource="arn:aws:lambda:us-east-1:123456789012:function:a*")
case("resource-var-star-escape-literal", "implicitDeny", "${*} is not a wildcard",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:a${*}"))],
     resource="arn:aws:lambda:us-east-1:123456789012:function:ab")
case("resource-var-q-escape", "allowed", "${?} is a literal question mark",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:a${?}"))],
     resource="arn:aws:lambda:us-east-1:123456789012:function:a?")
case("resource-var-dollar-escape", "allowed", "${$} is a literal dollar",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:a${$}"))],
     resource="arn:aws:lambda:us-east-1:123456789012:function:a$")
case("resource-var-multivalue", "implicitDeny", "multi-valued key cannot be a variable",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:TagKeys}"))],
     context={"aws:TagKeys": ["orders"]})
case("resource-var-2008-literal", "implicitDeny", "Version 2008-10-17 has no variables: the text is literal",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:username}"), version="2008-10-17")],
     context={"aws:username": "orders"})
case("resource-var-noversion-literal", "implicitDeny", "no Version means 2008-10-17",
     [pol(allow("*", "arn:aws:lambda:us-east-1:123456789012:function:${aws:username}"), version=None)],
     context={"aws:username": "orders"})
case("version-2008-wildcards", "allowed", "wildcards still work under 2008-10-17",
     [pol(allow("lambda:*", "arn:aws:lambda:*:*:function:*"), version="2008-10-17")])

# ---------------------------------------------------------------- combination
case("no-policies", "implicitDeny", "no identity policy at all")
case("empty-match", "implicitDeny", "policy matches nothing", [pol(allow("dynamodb:*"))])
case("deny-beats-allow-same-policy", "explicitDeny", "explicit deny wins in one policy",
     [pol(allow(), deny("lambda:InvokeFunction", FN))])
case("deny-beats-allow-other-policy", "explicitDeny", "explicit deny wins across policies",
     [pol(allow()), pol(deny("lambda:Invoke*"))])
case("deny-elsewhere", "allowed", "deny on another resource does not apply",
     [pol(allow(), deny("*", TABLE))])
case("deny-other-action", "allowed", "deny on another action does not apply",
     [pol(allow(), deny("lambda:Delete*"))])
case("deny-only", "explicitDeny", "a deny alone is explicit", [pol(deny())])
case("allow-second-policy", "allowed", "allow from any identity policy", [pol(allow("dynamodb:*")), pol(allow("lambda:*"))])
case("statement-object", "allowed", "Statement may be a single object",
     [{"Version": "2012-10-17", "Statement": allow()}])
case("deny-conditional-not-met", "allowed", "deny with unmet condition does not apply",
     [pol(allow(), deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))], context={"aws:SecureTransport": "true"})
case("deny-conditional-met", "explicitDeny", "deny with met condition applies",
     [pol(allow(), deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))], context={"aws:SecureTransport": "false"})

# ---------------------------------------------------------------- resource policies
def rp(*stmts):
    return pol(*stmts)


def rallow(principal, action="lambda:InvokeFunction", resource=FN, **extra):
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource, **extra}


def rdeny(principal, action="lambda:InvokeFunction", resource=FN, **extra):
    return {"Effect": "Deny", "Principal": principal, "Action": action, "Resource": resource, **extra}


case("rp-user-arn", "allowed", "resource policy naming the user allows without identity policy",
     resource_policy=rp(rallow({"AWS": ALICE})))
case("rp-user-arn-list", "allowed", "principal list", resource_policy=rp(rallow({"AWS": [BOB, ALICE]})))
case("rp-other-user", "implicitDeny", "resource policy naming another user", resource_policy=rp(rallow({"AWS": BOB})))
case("rp-other-user-identity", "allowed", "identity allow suffices when resource policy names others",
     [pol(allow())], resource_policy=rp(rallow({"AWS": BOB})))
case("rp-star", "allowed", "Principal * allows any caller", resource_policy=rp(rallow("*")))
case("rp-aws-star", "allowed", "Principal AWS * allows any caller", resource_policy=rp(rallow({"AWS": "*"})))
case("rp-account-root-alone", "implicitDeny", "account principal delegates to IAM: no identity allow",
     resource_policy=rp(rallow({"AWS": f"arn:aws:iam::{ACCT}:root"})))
case("rp-account-root-identity", "allowed", "account principal plus identity allow",
     [pol(allow())], resource_policy=rp(rallow({"AWS": f"arn:aws:iam::{ACCT}:root"})))
case("rp-account-id-alone", "implicitDeny", "bare account id delegates to IAM",
     resource_policy=rp(rallow({"AWS": ACCT})))
case("rp-account-id-identity", "allowed", "bare account id plus identity allow",
     [pol(allow())], resource_policy=rp(rallow({"AWS": ACCT})))
case("rp-deny-user", "explicitDeny", "resource policy deny beats identity allow",
     [pol(allow())], resource_policy=rp(rdeny({"AWS": ALICE})))
case("rp-deny-account", "explicitDeny", "resource policy deny naming the account applies to its users",
     [pol(allow())], resource_policy=rp(rdeny({"AWS": ACCT})))
case("rp-deny-star", "explicitDeny", "resource policy deny to everyone",
     [pol(allow())], resource_policy=rp(rallow({"AWS": ALICE}), rdeny("*")))
case("rp-deny-other", "allowed", "resource policy deny naming someone else",
     [pol(allow())], resource_policy=rp(rdeny({"AWS": BOB})))
case("rp-allow-identity-deny", "explicitDeny", "identity deny beats resource allow",
     [pol(deny())], resource_policy=rp(rallow({"AWS": ALICE})))
case("rp-wrong-action", "implicitDeny", "resource policy for another action",
     resource_policy=rp(rallow({"AWS": ALICE}, action="lambda:GetFunction")))
case("rp-wrong-resource", "implicitDeny", "resource policy for another resource",
     resource_policy=rp(rallow({"AWS": ALICE}, resource=FN + "-x")))
case("rp-short-arn-no-wildcard", "implicitDeny", "short ARN without wildcard never matches in a resource policy",
     resource_policy=rp(rallow({"AWS": ALICE}, resource="arn:aws:lambda:us-east-1")))
case("rp-short-arn-wildcard", "allowed", "short ARN with wildcard is padded",
     resource_policy=rp(rallow({"AWS": ALICE}, resource="arn:aws:lambda:*")))
case("rp-anonymous-star", "allowed", "anonymous caller allowed by Principal *",
     resource_policy=rp(rallow("*")), principal=None)
case("rp-anonymous-aws-star", "allowed", "anonymous caller allowed by AWS *",
     resource_policy=rp(rallow({"AWS": "*"})), principal=None)
case("rp-anonymous-named", "implicitDeny", "anonymous caller does not match a named principal",
     resource_policy=rp(rallow({"AWS": ALICE})), principal=None)
case("rp-anonymous-account", "implicitDeny", "anonymous caller does not match the account",
     resource_policy=rp(rallow({"AWS": ACCT})), principal=None)
case("rp-anonymous-none", "implicitDeny", "anonymous caller with no resource policy", principal=None)
case("rp-anonymous-deny", "explicitDeny", "anonymous caller denied by Principal *",
     resource_policy=rp(rallow("*"), rdeny("*", Condition={"Bool": {"aws:SecureTransport": "false"}})),
     principal=None, context={"aws:SecureTransport": "false"})
case("rp-service", "allowed", "service principal", resource_policy=rp(rallow({"Service": "s3.amazonaws.com"})),
     principal="s3.amazonaws.com")
case("rp-service-list", "allowed", "service principal list",
     resource_policy=rp(rallow({"Service": ["sns.amazonaws.com", "s3.amazonaws.com"]})), principal="s3.amazonaws.com")
case("rp-service-other", "implicitDeny", "other service principal",
     resource_policy=rp(rallow({"Service": "sns.amazonaws.com"})), principal="s3.amazonaws.com")
case("rp-service-vs-aws", "implicitDeny", "AWS principal does not match a service caller",
     resource_policy=rp(rallow({"AWS": ALICE})), principal="s3.amazonaws.com")
case("rp-service-sourcearn", "allowed", "service principal with aws:SourceArn condition",
     resource_policy=rp(rallow({"Service": "s3.amazonaws.com"}, Condition={"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket-*"}})),
     principal="s3.amazonaws.com", context={"aws:SourceArn": "arn:aws:s3:::bucket-1"})
case("rp-service-sourcearn-miss", "implicitDeny", "service principal with wrong aws:SourceArn",
     resource_policy=rp(rallow({"Service": "s3.amazonaws.com"}, Condition={"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket-*"}})),
     principal="s3.amazonaws.com", context={"aws:SourceArn": "arn:aws:s3:::other"})
case("rp-role-session", "allowed", "role ARN matches its sessions",
     resource_policy=rp(rallow({"AWS": ROLE})), principal=SESSION)
case("rp-role-session-other", "implicitDeny", "role ARN does not match another role's session",
     resource_policy=rp(rallow({"AWS": f"arn:aws:iam::{ACCT}:role/other"})), principal=SESSION)
case("rp-session-exact", "allowed", "session ARN matches itself",
     resource_policy=rp(rallow({"AWS": SESSION})), principal=SESSION)
case("rp-role-direct", "allowed", "role ARN matches role principal",
     resource_policy=rp(rallow({"AWS": ROLE})), principal=ROLE)
case("rp-notprincipal-deny-other", "explicitDeny", "Deny NotPrincipal denies everyone not listed",
     [pol(allow())], resource_policy=rp({"Effect": "Deny", "NotPrincipal": {"AWS": BOB}, "Action": "*", "Resource": "*"}))
case("rp-notprincipal-deny-exempt", "allowed", "Deny NotPrincipal exempts the listed principal",
     [pol(allow())], resource_policy=rp({"Effect": "Deny", "NotPrincipal": {"AWS": ALICE}, "Action": "*", "Resource": "*"}))
case("rp-notprincipal-allow", "allowed", "Allow NotPrincipal grants to everyone else",
     resource_policy=rp({"Effect": "Allow", "NotPrincipal": {"AWS": BOB}, "Action": "*", "Resource": "*"}))
case("rp-notprincipal-allow-listed", "implicitDeny", "Allow NotPrincipal excludes the listed",
     resource_policy=rp({"Effect": "Allow", "NotPrincipal": {"AWS": ALICE}, "Action": "*", "Resource": "*"}))
case("rp-condition-principalarn", "allowed", "resource policy with aws:PrincipalArn condition",
     resource_policy=rp(rallow("*", Condition={"ArnEquals": {"aws:PrincipalArn": ALICE}})),
     context={"aws:PrincipalArn": ALICE})
case("rp-condition-principalarn-miss", "implicitDeny", "aws:PrincipalArn condition for another",
     resource_policy=rp(rallow("*", Condition={"ArnEquals": {"aws:PrincipalArn": BOB}})),
     context={"aws:PrincipalArn": ALICE})
case("rp-deny-condition-stringnotequals", "explicitDeny", "deny unless from the org",
     [pol(allow())], resource_policy=rp(rdeny("*", Condition={"StringNotEquals": {"aws:PrincipalOrgID": "o-123"}})),
     context={"aws:PrincipalOrgID": "o-999"})
case("rp-deny-condition-org-ok", "allowed", "deny unless from the org: in org",
     [pol(allow())], resource_policy=rp(rdeny("*", Condition={"StringNotEquals": {"aws:PrincipalOrgID": "o-123"}})),
     context={"aws:PrincipalOrgID": "o-123"})
case("rp-alias-resource", "allowed", "resource policy on an alias ARN",
     resource_policy=rp(rallow({"AWS": ALICE}, resource=FN + ":*")), resource=FN_ALIAS)
case("rp-notresource", "allowed", "resource policy with NotResource",
     resource_policy=rp({"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "*", "NotResource": TABLE}))

# ---------------------------------------------------------------- conditions
def cond(cid, expect, note, condition, context, effect="Allow"):
    st = allow(Condition=condition) if effect == "Allow" else deny(Condition=condition)
    pols = [pol(st)] if effect == "Allow" else [pol(allow(), st)]
    case(cid, expect, note, pols, context=context)


K = "warden:tag"
S = [
    # (operator, policy values, request value or None, expected match)
    ("StringEquals", "prod", "prod", True), ("StringEquals", "prod", "Prod", False),
    ("StringEquals", "prod", None, False), ("StringEquals", ["dev", "prod"], "prod", True),
    ("StringEquals", ["dev", "test"], "prod", False), ("StringEquals", "pro*", "prod", False),
    ("StringEquals", "pro*", "pro*", True), ("StringEquals", "", "", True),
    ("StringNotEquals", "prod", "dev", True), ("StringNotEquals", "prod", "prod", False),
    ("StringNotEquals", "prod", None, True), ("StringNotEquals", ["dev", "prod"], "prod", False),
    ("StringNotEquals", ["dev", "test"], "prod", True), ("StringNotEquals", "prod", "PROD", True),
    ("StringEqualsIgnoreCase", "prod", "PROD", True), ("StringEqualsIgnoreCase", "prod", "dev", False),
    ("StringEqualsIgnoreCase", "prod", None, False), ("StringEqualsIgnoreCase", ["DEV", "Prod"], "pROD", True),
    ("StringNotEqualsIgnoreCase", "prod", "PROD", False), ("StringNotEqualsIgnoreCase", "prod", "dev", True),
    ("StringNotEqualsIgnoreCase", "prod", None, True),
    ("StringLike", "pro*", "production", True), ("StringLike", "pro*", "dev", False),
    ("StringLike", "p?od", "prod", True), ("StringLike", "p?od", "pod", False),
    ("StringLike", "*", "", True), ("StringLike", "*", None, False),
    ("StringLike", "Pro*", "prod", False), ("StringLike", ["dev*", "*uct*"], "production", True),
    ("StringLike", "a*b*c", "aXbYc", True), ("StringLike", "a*b*c", "aXbYd", False),
    ("StringNotLike", "pro*", "dev", True), ("StringNotLike", "pro*", "production", False),
    ("StringNotLike", "pro*", None, True), ("StringNotLike", ["dev*", "test*"], "test-1", False),
    ("StringNotLike", ["dev*", "test*"], "prod", True),
    ("StringEqualsIfExists", "prod", None, True), ("StringEqualsIfExists", "prod", "prod", True),
    ("StringEqualsIfExists", "prod", "dev", False), ("StringLikeIfExists", "p*", None, True),
    ("StringLikeIfExists", "p*", "x", False), ("StringNotEqualsIfExists", "prod", "prod", False),
    ("StringNotEqualsIfExists", "prod", None, True),
    ("NumericEquals", "10", "10", True), ("NumericEquals", "10", "10.0", True),
    ("NumericEquals", "10", "11", False), ("NumericEquals", "10", None, False),
    ("NumericEquals", "10", "ten", False), ("NumericEquals", ["1", "2"], "2", True),
    ("NumericEquals", 10, "10", True),
    ("NumericNotEquals", "10", "11", True), ("NumericNotEquals", "10", "10", False),
    ("NumericNotEquals", "10", None, True), ("NumericNotEquals", ["1", "2"], "2", False),
    ("NumericNotEquals", ["1", "2"], "3", True),
    ("NumericLessThan", "10", "9", True), ("NumericLessThan", "10", "10", False),
    ("NumericLessThan", "10", "-5", True), ("NumericLessThan", "10", None, False),
    ("NumericLessThan", "1.5", "1.25", True),
    ("NumericLessThanEquals", "10", "10", True), ("NumericLessThanEquals", "10", "11", False),
    ("NumericGreaterThan", "10", "11", True), ("NumericGreaterThan", "10", "10", False),
    ("NumericGreaterThan", ["100", "10"], "50", True),
    ("NumericGreaterThanEquals", "10", "10", True), ("NumericGreaterThanEquals", "10", "9", False),
    ("NumericLessThanIfExists", "10", None, True), ("NumericLessThanIfExists", "10", "20", False),
    ("DateEquals", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", True),
    ("DateEquals", "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", False),
    ("DateEquals", "2024-01-01T00:00:00Z", None, False),
    ("DateEquals", "1704067200", "1704067200", True),
    ("DateNotEquals", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", True),
    ("DateNotEquals", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", False),
    ("DateNotEquals", "2024-01-01T00:00:00Z", None, True),
    ("DateLessThan", "2030-01-01T00:00:00Z", "2024-06-01T12:00:00Z", True),
    ("DateLessThan", "2020-01-01T00:00:00Z", "2024-06-01T12:00:00Z", False),
    ("DateLessThan", "2024-06-01T12:00:00Z", "2024-06-01T12:00:00Z", False),
    ("DateLessThan", "2030-01-01", "2024-06-01T12:00:00Z", True),
    ("DateLessThan", "1893456000", "1717243200", True),
    ("DateLessThanEquals", "2024-06-01T12:00:00Z", "2024-06-01T12:00:00Z", True),
    ("DateGreaterThan", "2020-01-01T00:00:00Z", "2024-06-01T12:00:00Z", True),
    ("DateGreaterThan", "2030-01-01T00:00:00Z", "2024-06-01T12:00:00Z", False),
    ("DateGreaterThan", "2024-06-01T10:00:00+00:00", "2024-06-01T12:00:00+01:00", True),
    ("DateGreaterThan", "2024-06-01T12:00:00Z", "not-a-date", False),
    ("DateGreaterThanEquals", "2024-06-01T12:00:00Z", "2024-06-01T12:00:00Z", True),
    ("DateGreaterThanEquals", "2024-06-01T12:00:00Z", "2024-06-01T11:59:59Z", False),
    ("DateLessThanIfExists", "2020-01-01T00:00:00Z", None, True),
    ("Bool", "true", "true", True), ("Bool", "true", "false", False), ("Bool", "true", None, False),
    ("Bool", "false", "false", True), ("Bool", "true", "TRUE", True), ("Bool", True, "true", True),
    ("Bool", "true", "yes", False), ("Bool", ["true", "false"], "false", True),
    ("BoolIfExists", "true", None, True), ("BoolIfExists", "true", "false", False),
    ("BinaryEquals", "QmluYXJ5", "QmluYXJ5", True), ("BinaryEquals", "QmluYXJ5", "QmluYXJ6", False),
    ("BinaryEquals", "QmluYXJ5", None, False),
    ("IpAddress", "10.0.0.0/8", "10.1.2.3", True), ("IpAddress", "10.0.0.0/8", "11.1.2.3", False),
    ("IpAddress", "10.0.0.0/8", None, False), ("IpAddress", "192.168.1.1", "192.168.1.1", True),
    ("IpAddress", "192.168.1.1/32", "192.168.1.2", False), ("IpAddress", "0.0.0.0/0", "8.8.8.8", True),
    ("IpAddress", ["10.0.0.0/8", "192.168.0.0/16"], "192.168.5.5", True),
    ("IpAddress", "10.0.0.0/8", "2001:db8::1", False),
    ("IpAddress", "2001:db8::/32", "2001:db8:1::5", True), ("IpAddress", "2001:db8::/32", "2001:db9::5", False),
    ("IpAddress", "10.0.0.0/8", "not-an-ip", False),
    ("IpAddress", "172.16.0.0/12", "172.31.255.255", True), ("IpAddress", "172.16.0.0/12", "172.32.0.0", False),
    ("NotIpAddress", "10.0.0.0/8", "11.1.2.3", True), ("NotIpAddress", "10.0.0.0/8", "10.1.2.3", False),
    ("NotIpAddress", "10.0.0.0/8", None, True), ("NotIpAddress", ["10.0.0.0/8", "192.168.0.0/16"], "192.168.1.1", False),
    ("NotIpAddress", ["10.0.0.0/8", "192.168.0.0/16"], "8.8.8.8", True),
    ("NotIpAddress", "10.0.0.0/8", "2001:db8::1", True),
    ("IpAddressIfExists", "10.0.0.0/8", None, True),
    ("ArnEquals", FN, FN, True), ("ArnEquals", FN, FN_ALIAS, False), ("ArnEquals", FN, None, False),
    ("ArnLike", "arn:aws:lambda:*:*:function:*", FN, True), ("ArnLike", "arn:aws:lambda:*:*:function:*", TABLE, False),
    ("ArnLike", "arn:aws:lambda:us-east-1:123456789012:function:ord*", FN, True),
    ("ArnLike", "arn:aws:lambda:us-east-1:123456789012:function:*", FN_ALIAS, True),
    ("ArnLike", "arn:aws:lambda:us-east-1:*:function:orders", "arn:aws:lambda:us-east-1:1:2:function:orders", False),
    ("ArnLike", "arn:aws:lambda:*:*:function:*", "not-an-arn", False),
    ("ArnLike", "arn:aws:lambda:us-east-1:123456789012:function:Orders", FN, False),
    ("ArnLike", "arn:aws:iam::123456789012:role/*", ROLE, True),
    ("ArnNotEquals", FN, FN_ALIAS, True), ("ArnNotEquals", FN, FN, False), ("ArnNotEquals", FN, None, True),
    ("ArnNotLike", "arn:aws:lambda:*:*:function:*", TABLE, True),
    ("ArnNotLike", "arn:aws:lambda:*:*:function:*", FN, False), ("ArnNotLike", "arn:aws:lambda:*:*:function:*", None, True),
    ("ArnLikeIfExists", "arn:aws:lambda:*:*:function:*", None, True),
    ("Null", "true", None, True), ("Null", "true", "x", False), ("Null", "false", "x", True),
    ("Null", "false", None, False), ("Null", True, None, True),
]
for i, (op, vals, req, want) in enumerate(S):
    ctx = {} if req is None else {K: req}
    cond(f"cond-{i:03}", "allowed" if want else "implicitDeny",
         f"{op} {json.dumps(vals)} vs {json.dumps(req)}", {op: {K: vals}}, ctx)
    # The same test as a Deny, for a sample: deny applies exactly when the condition matches.
    if i % 4 == 0:
        cond(f"cond-{i:03}-deny", "explicitDeny" if want else "allowed",
             f"Deny {op} {json.dumps(vals)} vs {json.dumps(req)}", {op: {K: vals}}, ctx, effect="Deny")

# set operators: (operator, policy values, request values or None, expected)
SET = [
    ("ForAllValues:StringEquals", ["a", "b"], ["a"], True),
    ("ForAllValues:StringEquals", ["a", "b"], ["a", "b"], True),
    ("ForAllValues:StringEquals", ["a", "b"], ["a", "c"], False),
    ("ForAllValues:StringEquals", ["a", "b"], [], True),
    ("ForAllValues:StringEquals", ["a", "b"], None, True),
    ("ForAllValues:StringEquals", ["a", "b"], "a", True),
    ("ForAllValues:StringLike", ["team-*"], ["team-a", "team-b"], True),
    ("ForAllValues:StringLike", ["team-*"], ["team-a", "x"], False),
    ("ForAllValues:StringNotEquals", ["admin"], ["a", "b"], True),
    ("ForAllValues:StringNotEquals", ["admin"], ["a", "admin"], False),
    ("ForAllValues:StringEqualsIgnoreCase", ["a", "b"], ["A", "B"], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "5"], True),
    ("ForAllValues:NumericLessThan", "10", ["1", "50"], False),
    ("ForAnyValue:StringEquals", ["a", "b"], ["c", "b"], True),
    ("ForAnyValue:StringEquals", ["a", "b"], ["c", "d"], False),
    ("ForAnyValue:StringEquals", ["a", "b"], [], False),
    ("ForAnyValue:StringEquals", ["a", "b"], None, False),
    ("ForAnyValue:StringEquals", ["a", "b"], "b", True),
    ("ForAnyValue:StringLike", ["*-prod"], ["x-dev", "y-prod"], True),
    ("ForAnyValue:StringNotEquals", ["a"], ["a", "b"], True),
    ("ForAnyValue:StringNotEquals", ["a"], ["a"], False),
    ("ForAnyValue:StringNotLike", ["a*"], ["ab", "ac"], False),
    ("ForAnyValue:IpAddress", ["10.0.0.0/8"], ["192.168.1.1", "10.2.3.4"], True),
    ("ForAnyValue:ArnLike", ["arn:aws:iam::*:role/admin*"], [ROLE, f"arn:aws:iam::{ACCT}:role/admin-1"], True),
    ("ForAllValues:ArnLike", ["arn:aws:iam::*:role/admin*"], [ROLE, f"arn:aws:iam::{ACCT}:role/admin-1"], False),
    ("ForAnyValue:NumericGreaterThan", "10", ["1", "50"], True),
    ("ForAnyValue:DateGreaterThan", "2024-01-01T00:00:00Z", ["2023-01-01T00:00:00Z", "2025-01-01T00:00:00Z"], True),
    ("ForAllValues:BoolIfExists", "true", None, True),
    ("StringEquals", "a", ["a"], False),
    ("StringEquals", "a", ["a", "b"], False),
    ("StringLike", "*", ["a"], False),
    ("StringNotEquals", "a", ["b"], False),
    ("ForAnyValue:StringEqualsIfExists", ["a"], None, True),
]
for i, (op, vals, req, want) in enumerate(SET):
    ctx = {} if req is None else {"aws:TagKeys": req}
    cond(f"set-{i:02}", "allowed" if want else "implicitDeny",
         f"{op} {json.dumps(vals)} vs {json.dumps(req)}", {op: {"aws:TagKeys": vals}}, ctx)

# multiple keys and operators, key case, variables in condition values
cond("multi-keys-and", "allowed", "two keys both match (AND)",
     {"StringEquals": {"k:a": "1", "k:b": "2"}}, {"k:a": "1", "k:b": "2"})
cond("multi-keys-and-miss", "implicitDeny", "two keys, one misses",
     {"StringEquals": {"k:a": "1", "k:b": "2"}}, {"k:a": "1", "k:b": "3"})
cond("multi-ops-and", "allowed", "two operators both match",
     {"StringEquals": {"k:a": "1"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"k:a": "1", "aws:SourceIp": "10.0.0.1"})
cond("multi-ops-and-miss", "implicitDeny", "two operators, one misses",
     {"StringEquals": {"k:a": "1"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"k:a": "1", "aws:SourceIp": "11.0.0.1"})
cond("key-case-policy", "allowed", "condition key names are case-insensitive (policy side)",
     {"StringEquals": {"AWS:SOURCEVPC": "vpc-1"}}, {"aws:SourceVpc": "vpc-1"})
cond("key-case-request", "allowed", "condition key names are case-insensitive (request side)",
     {"StringEquals": {"aws:sourcevpc": "vpc-1"}}, {"AWS:SourceVPC": "vpc-1"})
cond("value-case", "implicitDeny", "condition values stay case-sensitive",
     {"StringEquals": {"aws:SourceVpc": "VPC-1"}}, {"aws:SourceVpc": "vpc-1"})
cond("cond-var", "allowed", "variable in condition value",
     {"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}},
     {"aws:PrincipalTag/team": "blue", "aws:ResourceTag/team": "blue"})
cond("cond-var-miss", "implicitDeny", "variable in condition value differs",
     {"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}},
     {"aws:PrincipalTag/team": "blue", "aws:ResourceTag/team": "red"})
cond("cond-var-missing", "implicitDeny", "unresolvable variable never matches",
     {"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}}, {"aws:PrincipalTag/team": "blue"})
cond("cond-var-missing-negated", "implicitDeny", "unresolvable variable fails a negated operator too",
     {"StringNotEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}}, {"aws:PrincipalTag/team": "blue"})
cond("cond-var-default", "allowed", "variable default in condition",
     {"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team, 'blue'}"}}, {"aws:PrincipalTag/team": "blue"})
cond("cond-var-like", "allowed", "variable inside StringLike",
     {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, {"s3:prefix": "home/alice/docs", "aws:username": "alice"})
cond("cond-var-like-miss", "implicitDeny", "variable inside StringLike, other user",
     {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, {"s3:prefix": "home/bob/docs", "aws:username": "alice"})
cond("cond-var-userid", "allowed", "aws:userid variable",
     {"StringEquals": {"k:owner": "${aws:userid}"}}, {"k:owner": "AIDAEXAMPLE", "aws:userid": "AIDAEXAMPLE"})
cond("cond-var-arn", "allowed", "variable inside ArnLike",
     {"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:*:function:${aws:username}"}},
     {"aws:SourceArn": "arn:aws:lambda:us-east-1:1:function:alice", "aws:username": "alice"})
cond("cond-star-escape", "allowed", "${*} in StringLike is literal",
     {"StringLike": {"k:a": "x${*}"}}, {"k:a": "x*"})
cond("cond-star-escape-literal", "implicitDeny", "${*} in StringLike is not a wildcard",
     {"StringLike": {"k:a": "x${*}"}}, {"k:a": "xy"})
cond("cond-securetransport", "implicitDeny", "require TLS: not secure",
     {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "false"})
cond("cond-sourceip-v6-deny", "explicitDeny", "deny outside corporate ranges (v6 caller)",
     {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}, {"aws:SourceIp": "2001:db9::1"}, effect="Deny")
cond("cond-sourceip-v6-ok", "allowed", "deny outside corporate ranges (inside, v6)",
     {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}, {"aws:SourceIp": "2001:db8::1"}, effect="Deny")
cond("cond-currenttime-window", "allowed", "time window with two date operators",
     {"DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}, "DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "2024-06-01T00:00:00Z"})
cond("cond-currenttime-window-out", "implicitDeny", "time window, outside",
     {"DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}, "DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "2025-06-01T00:00:00Z"})
cond("cond-requestedregion", "allowed", "aws:RequestedRegion",
     {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}}, {"aws:RequestedRegion": "eu-west-1"})
cond("cond-functionarn", "allowed", "lambda:FunctionArn with ArnLike",
     {"ArnLike": {"lambda:FunctionArn": "arn:aws:lambda:*:123456789012:function:ord*"}}, {"lambda:FunctionArn": FN})
cond("cond-principaltag-deny", "explicitDeny", "deny unless tagged (tag missing)",
     {"StringNotEquals": {"aws:PrincipalTag/clearance": "high"}}, {}, effect="Deny")
cond("cond-principaltag-deny-tagged", "allowed", "deny unless tagged (tagged)",
     {"StringNotEquals": {"aws:PrincipalTag/clearance": "high"}}, {"aws:PrincipalTag/clearance": "high"}, effect="Deny")
cond("cond-null-deny", "explicitDeny", "deny when tag is absent via Null",
     {"Null": {"aws:RequestTag/owner": "true"}}, {}, effect="Deny")
cond("cond-null-deny-present", "allowed", "deny when tag absent: present",
     {"Null": {"aws:RequestTag/owner": "true"}}, {"aws:RequestTag/owner": "me"}, effect="Deny")
cond("cond-null-list", "allowed", "Null false on a multi-valued key that is present",
     {"Null": {"aws:TagKeys": "false"}}, {"aws:TagKeys": ["a"]})
cond("cond-datemix", "allowed", "epoch-seconds policy value against an ISO request value",
     {"DateLessThan": {"aws:CurrentTime": "1893456000"}}, {"aws:CurrentTime": "2024-06-01T00:00:00Z"})
cond("cond-opcase", "allowed", "operator names are case-insensitive",
     {"stringequals": {"k:a": "1"}}, {"k:a": "1"})

# ---------------------------------------------------------------- malformed policies
E = [
    ("err-version", {"Version": "2012-10-18", "Statement": [allow()]}, "unknown Version"),
    ("err-version-number", {"Version": 2012, "Statement": [allow()]}, "Version must be a string"),
    ("err-top-key", {"Version": "2012-10-17", "Statement": [allow()], "Extra": 1}, "unknown top-level key"),
    ("err-no-statement", {"Version": "2012-10-17"}, "missing Statement"),
    ("err-empty-statement", {"Version": "2012-10-17", "Statement": []}, "empty Statement"),
    ("err-statement-string", {"Version": "2012-10-17", "Statement": "Allow"}, "Statement is a string"),
    ("err-stmt-key", pol({**allow(), "Effects": "Allow"}), "unknown statement key"),
    ("err-no-effect", pol({"Action": "*", "Resource": "*"}), "missing Effect"),
    ("err-effect-case", pol({**allow(), "Effect": "allow"}), "Effect is case-sensitive"),
    ("err-effect-other", pol({**allow(), "Effect": "Permit"}), "Effect not Allow/Deny"),
    ("err-both-actions", pol({**allow(), "NotAction": "s3:*"}), "both Action and NotAction"),
    ("err-no-action", pol({"Effect": "Allow", "Resource": "*"}), "missing Action"),
    ("err-both-resources", pol({**allow(), "NotResource": "*"}), "both Resource and NotResource"),
    ("err-no-resource", pol({"Effect": "Allow", "Action": "*"}), "identity statement without Resource"),
    ("err-action-empty-list", pol(allow([])), "empty Action list"),
    ("err-action-no-colon", pol(allow("InvokeFunction")), "action without service prefix"),
    ("err-action-number", pol(allow(5)), "action is a number"),
    ("err-action-list-number", pol(allow(["lambda:Get*", 5])), "non-string in action list"),
    ("err-action-empty-name", pol(allow("lambda:")), "empty action name"),
    ("err-action-space", pol(allow("lambda:Invoke Function")), "space in action"),
    ("err-action-wild-service", pol(allow("lam*:InvokeFunction")), "wildcard in service prefix"),
    ("err-resource-not-arn", pol(allow("*", "my-function")), "resource is neither * nor ARN"),
    ("err-resource-empty-list", pol(allow("*", [])), "empty Resource list"),
    ("err-cond-operator", pol(allow(Condition={"StringEqualz": {"k:a": "1"}})), "unknown condition operator"),
    ("err-cond-set-typo", pol(allow(Condition={"ForAllValue:StringEquals": {"k:a": "1"}})), "unknown set operator"),
    ("err-cond-not-object", pol(allow(Condition=["StringEquals"])), "Condition is an array"),
    ("err-cond-block-string", pol(allow(Condition={"StringEquals": "k:a"})), "condition block is a string"),
    ("err-cond-value-object", pol(allow(Condition={"StringEquals": {"k:a": {"x": 1}}})), "condition value is an object"),
    ("err-cond-value-null", pol(allow(Condition={"StringEquals": {"k:a": None}})), "condition value is null"),
    ("err-cond-empty-values", pol(allow(Condition={"StringEquals": {"k:a": []}})), "empty value list"),
    ("err-cond-bad-cidr", pol(allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}})), "invalid CIDR"),
    ("err-cond-bad-number", pol(allow(Condition={"NumericLessThan": {"k:n": "ten"}})), "invalid number"),
    ("err-cond-bad-date", pol(allow(Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})), "invalid date"),
    ("err-cond-bad-bool", pol(allow(Condition={"Bool": {"aws:SecureTransport": "yes"}})), "invalid boolean"),
    ("err-cond-null-ifexists", pol(allow(Condition={"NullIfExists": {"k:a": "true"}})), "Null cannot take IfExists"),
    ("err-sid-number", pol({**allow(), "Sid": 1}), "Sid must be a string"),
    ("err-dup-sid", pol({**allow(), "Sid": "A"}, {**allow(), "Sid": "A"}), "duplicate Sid"),
    ("err-principal-in-identity", pol({**allow(), "Principal": "*"}), "identity policy with Principal"),
    ("err-not-object", ["Version"], "policy is an array"),
]
for cid, doc, note in E:
    case(cid, "error", note, [doc])
RE = [
    ("err-rp-no-principal", rp({"Effect": "Allow", "Action": "*", "Resource": "*"}), "resource policy without Principal"),
    ("err-rp-principal-type", rp(rallow({"User": ALICE})), "unknown principal type"),
    ("err-rp-principal-wildcard", rp(rallow({"AWS": f"arn:aws:iam::{ACCT}:user/*"})), "partial wildcard principal"),
    ("err-rp-principal-bad", rp(rallow({"AWS": "alice"})), "principal neither ARN nor account"),
    ("err-rp-principal-empty", rp(rallow({})), "empty Principal object"),
    ("err-rp-both-principals", rp({**rallow("*"), "NotPrincipal": {"AWS": BOB}}), "both Principal and NotPrincipal"),
    ("err-rp-principal-list-number", rp(rallow({"AWS": [ALICE, 7]})), "non-string principal"),
]
for cid, doc, note in RE:
    case(cid, "error", note, resource_policy=doc)

# ---------------------------------------------------------------- KMS key policies
# On a KMS key the resource policy is the key policy, and it is the root of access: an
# identity policy grants nothing unless the key policy allows the caller or delegates to
# the account (names it as principal); no key policy, no access.
KEY = f"arn:aws:kms:us-east-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT = f"arn:aws:iam::{ACCT}:root"


def kallow(principal, action="kms:*", **extra):
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}


def kms_case(cid, expect, note, identity=(), key_policy=None, action="kms:Encrypt", **kw):
    case(cid, expect, note, identity, key_policy, action=action, resource=KEY, **kw)


kms_case("kms-default-policy-identity", "allowed", "default key policy delegates to IAM: identity allow",
         [pol(allow("kms:Encrypt"))], rp(kallow({"AWS": ROOT})))
kms_case("kms-default-policy-no-identity", "implicitDeny", "default key policy alone grants nothing",
         [], rp(kallow({"AWS": ROOT})))
kms_case("kms-account-id-delegates", "allowed", "a bare account id delegates too",
         [pol(allow("kms:*"))], rp(kallow({"AWS": ACCT})))
kms_case("kms-no-key-policy", "implicitDeny", "identity allow without a key policy is not enough",
         [pol(allow("kms:Encrypt"))], None)
kms_case("kms-no-delegation", "implicitDeny", "key policy names only bob: alice's identity allow is not enough",
         [pol(allow("kms:Encrypt"))], rp(kallow({"AWS": BOB})))
kms_case("kms-direct-user", "allowed", "key policy naming the user needs no identity policy",
         [], rp(kallow({"AWS": ALICE}, action="kms:Encrypt")))
kms_case("kms-direct-role-session", "allowed", "key policy naming a role admits its sessions",
         [], rp(kallow({"AWS": ROLE}, action=["kms:Encrypt", "kms:Decrypt"])), principal=SESSION)
kms_case("kms-delegation-other-action", "implicitDeny", "delegation for DescribeKey only does not cover Encrypt",
         [pol(allow("kms:*"))], rp(kallow({"AWS": ROOT}, action="kms:Describe*")))
kms_case("kms-identity-deny", "explicitDeny", "an identity deny beats the key policy",
         [pol(deny("kms:Encrypt"))], rp(kallow({"AWS": ALICE})))
kms_case("kms-key-policy-deny", "explicitDeny", "a key policy deny beats an identity allow",
         [pol(allow("kms:*"))], rp(kallow({"AWS": ROOT}), {"Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}))
kms_case("kms-context-condition", "allowed", "kms:EncryptionContext condition met",
         [pol(allow("kms:Decrypt"))], rp(kallow({"AWS": ROOT}, action="kms:Decrypt",
                                                Condition={"StringEquals": {"kms:EncryptionContext:app": "orders"}})),
         action="kms:Decrypt", context={"kms:EncryptionContext:app": "orders"})
kms_case("kms-context-condition-miss", "implicitDeny", "kms:EncryptionContext condition not met",
         [pol(allow("kms:Decrypt"))], rp(kallow({"AWS": ROOT}, action="kms:Decrypt",
                                                Condition={"StringEquals": {"kms:EncryptionContext:app": "orders"}})),
         action="kms:Decrypt", context={"kms:EncryptionContext:app": "billing"})
kms_case("kms-context-keys", "allowed", "kms:EncryptionContextKeys with ForAllValues",
         [], rp(kallow({"AWS": ALICE}, Condition={"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["app", "env"]}})),
         context={"kms:EncryptionContextKeys": ["app"]})
kms_case("kms-via-service", "allowed", "AWS managed key: any principal via the service",
         [], rp(kallow({"AWS": "*"}, action=["kms:Encrypt", "kms:Decrypt"],
                       Condition={"StringEquals": {"kms:ViaService": "lambda.us-east-1.amazonaws.com", "kms:CallerAccount": ACCT}})),
         context={"kms:ViaService": "lambda.us-east-1.amazonaws.com", "kms:CallerAccount": ACCT})
kms_case("kms-via-service-direct", "implicitDeny", "AWS managed key: a direct call is not via the service",
         [pol(allow("kms:*"))], rp(kallow({"AWS": "*"}, action=["kms:Encrypt", "kms:Decrypt"],
                                         Condition={"StringEquals": {"kms:ViaService": "lambda.us-east-1.amazonaws.com"}})),
         context={"kms:CallerAccount": ACCT})

ids = [c["id"] for c in cases]
assert len(ids) == len(set(ids)), "duplicate case ids"
for c in cases:
    print(json.dumps(c, separators=(",", ":")))
