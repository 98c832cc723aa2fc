//! The same API through boto3, with the SDK's own error classes and parsers.

use crate::harness::{fixture_zip, Server};

const PRELUDE: &str = r#"
import base64, json, os, sys, boto3, botocore
from botocore.config import Config
cfg = Config(retries={"total_max_attempts": 1}, read_timeout=60)
lam = boto3.client("lambda", endpoint_url=os.environ["ENDPOINT"], config=cfg)
ZIP = open(sys.argv[1], "rb").read() if len(sys.argv) > 1 else None
ROLE = "arn:aws:iam::123456789012:role/lambda-exec"
def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return e.response
    raise AssertionError(f"expected {code}, call succeeded")
"#;

fn run(s: &Server, body: &str) -> String {
    let script = format!(
        "{PRELUDE}\nZIP = open({:?}, 'rb').read()\n{body}\nprint('ok')",
        fixture_zip().display().to_string()
    );
    let out = s.python(&script);
    assert!(out.trim_end().ends_with("ok"), "{out}");
    out
}

#[test]
fn boto3_drives_the_whole_api() {
    let s = Server::start();
    run(
        &s,
        r#"
f = lam.create_function(FunctionName="b3", Runtime="provided.al2023", Role=ROLE, Handler="bootstrap",
                        Code={"ZipFile": ZIP}, Timeout=5, Environment={"Variables": {"A": "1"}})
assert f["Runtime"] == "provided.al2023" and f["Timeout"] == 5, f
expect_error("ResourceConflictException", lam.create_function, FunctionName="b3", Runtime="provided.al2023",
             Role=ROLE, Handler="bootstrap", Code={"ZipFile": ZIP})
r = lam.invoke(FunctionName="b3", Payload=json.dumps({"action": "echo", "x": [1, 2]}), LogType="Tail")
assert r["StatusCode"] == 200 and "FunctionError" not in r, r
assert json.loads(r["Payload"].read()) == {"action": "echo", "x": [1, 2]}
assert r["ExecutedVersion"] == "$LATEST"
assert "START RequestId" in base64.b64decode(r["LogResult"]).decode()
r = lam.invoke(FunctionName="b3", Payload=json.dumps({"action": "error"}))
assert r["FunctionError"] == "Unhandled" and r["StatusCode"] == 200
assert json.loads(r["Payload"].read())["errorMessage"] == "the fixture was asked to fail"
r = lam.invoke(FunctionName="b3", InvocationType="Event", Payload=b"{}")
assert r["StatusCode"] == 202
r = lam.invoke(FunctionName="b3", InvocationType="DryRun")
assert r["StatusCode"] == 204
v = lam.publish_version(FunctionName="b3")
assert v["Version"] == "1"
same = lam.publish_version(FunctionName="b3")
assert same["Version"] == "1", "publishing an unchanged $LATEST returns the existing version"
cfg = lam.get_function_configuration(FunctionName="b3")
expect_error("PreconditionFailedException", lam.update_function_configuration, FunctionName="b3",
             Description="x", RevisionId="not-the-revision")
u = lam.update_function_configuration(FunctionName="b3", Description="two", RevisionId=cfg["RevisionId"])
assert u["Description"] == "two"
lam.update_function_code(FunctionName="b3", ZipFile=ZIP, Publish=True)
a = lam.create_alias(FunctionName="b3", Name="prod", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
assert a["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.5}, a
seen = {lam.invoke(FunctionName="b3", Qualifier="prod", Payload=b"{}")["ExecutedVersion"] for _ in range(30)}
assert seen == {"1", "2"}, seen
expect_error("PreconditionFailedException", lam.update_alias, FunctionName="b3", Name="prod", RevisionId="x")
lam.update_alias(FunctionName="b3", Name="prod", FunctionVersion="2", RoutingConfig={"AdditionalVersionWeights": {}})
assert lam.get_alias(FunctionName="b3", Name="prod")["FunctionVersion"] == "2"
assert [x["Name"] for x in lam.list_aliases(FunctionName="b3")["Aliases"]] == ["prod"]
lam.put_function_concurrency(FunctionName="b3", ReservedConcurrentExecutions=0)
e = expect_error("TooManyRequestsException", lam.invoke, FunctionName="b3", Payload=b"{}")
assert e["ResponseMetadata"]["HTTPStatusCode"] == 429
assert e["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded", e
assert lam.get_function(FunctionName="b3")["Concurrency"]["ReservedConcurrentExecutions"] == 0
lam.delete_function_concurrency(FunctionName="b3")
assert lam.invoke(FunctionName="b3", Payload=b"{}")["StatusCode"] == 200
names = [f["FunctionName"] for p in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1}) for f in p["Functions"]]
assert names == ["b3"], names
assert lam.get_function_configuration(FunctionName="b3", Qualifier="1")["Version"] == "1"
settings = lam.get_account_settings()
assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
pages = list(lam.get_paginator("list_versions_by_function").paginate(FunctionName="b3", PaginationConfig={"PageSize": 1}))
assert [p["Versions"][0]["Version"] for p in pages] == ["$LATEST", "1", "2"], pages
expect_error("ResourceNotFoundException", lam.get_function, FunctionName="nope")
expect_error("ResourceNotFoundException", lam.invoke, FunctionName="b3", Qualifier="99")
expect_error("InvalidParameterValueException", lam.delete_function, FunctionName="b3", Qualifier="$LATEST")
lam.delete_alias(FunctionName="b3", Name="prod")
lam.delete_function(FunctionName="b3")
expect_error("ResourceNotFoundException", lam.get_function, FunctionName="b3")
"#,
    );
}

#[test]
fn boto3_sees_validation_errors_with_their_codes() {
    let s = Server::start();
    run(
        &s,
        r#"
base = dict(Runtime="provided.al2023", Role=ROLE, Handler="bootstrap", Code={"ZipFile": ZIP})
# Values under the minimum never leave botocore (it validates them); the maxima reach us.
for field, value in [("Timeout", 901), ("MemorySize", 10241), ("EphemeralStorage", {"Size": 20000})]:
    expect_error("InvalidParameterValueException", lam.create_function, FunctionName="v", **{**base, field: value})
expect_error("InvalidParameterValueException", lam.create_function, FunctionName="v",
             **{**base, "Environment": {"Variables": {"BIG": "x" * 5000}}})
expect_error("InvalidParameterValueException", lam.create_function, FunctionName="v",
             **{**base, "Environment": {"Variables": {"AWS_REGION": "eu-west-1"}}})
expect_error("InvalidParameterValueException", lam.create_function, FunctionName="v", **{**base, "Runtime": "cobol85"})
expect_error("InvalidParameterValueException", lam.create_function, FunctionName="v", **{**base, "Role": "not-a-role"})
r = expect_error("InvalidZipFileException", lam.create_function, FunctionName="v", **{**base, "Code": {"ZipFile": b"not a zip"}})
assert r["ResponseMetadata"]["HTTPStatusCode"] == 502
assert lam.list_functions()["Functions"] == [], "nothing is stored by failed creates"
"#,
    );
}
