"""Signs a few Warden API requests with the real botocore and prints them as JSON.

Used by warden-auth's `botocore` test: every request goes through botocore's own client
(serialization, endpoint, signer) and is captured just before it would be sent, so the
Rust verifier is checked against exactly what the AWS CLI and boto3 send.

Usage: python botocore_sign.py  (prints a JSON array on stdout)
"""

import base64
import json
import sys

import botocore.session
from botocore.config import Config

ENDPOINT = "http://127.0.0.1:9700"
LONG_TERM = ("AKIDWARDENTEST000001", "warden-test-secret/K7MDENG+not-a-real-key", None)
TEMPORARY = ("ASIAWARDENTEST000002", "tempSecret/with+chars=", "FQoGZXIvYXdzEJr//////////wEaDM+token==")


class Captured(Exception):
    pass


def client(service, creds):
    session = botocore.session.get_session()
    akid, secret, token = creds
    session.set_credentials(akid, secret, token)
    c = session.create_client(
        service,
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        config=Config(retries={"max_attempts": 1}),
    )
    return c


def capture(c, name, call):
    """Runs `call` on client `c` and returns the request botocore would have sent."""
    seen = {}

    def before_send(request, **kwargs):
        seen["request"] = request
        raise Captured()

    c.meta.events.register("before-send", before_send)
    try:
        call()
    except Captured:
        pass
    finally:
        c.meta.events.unregister("before-send", before_send)
    r = seen["request"]
    body = r.body or b""
    if isinstance(body, str):
        body = body.encode()
    if hasattr(body, "read"):
        body = body.read()
    return {
        "name": name,
        "method": r.method,
        "url": r.url,
        "headers": [[k, v if isinstance(v, str) else v.decode()] for k, v in r.headers.items()],
        "body_b64": base64.b64encode(body).decode(),
        "session_token": None,
    }


def main():
    out = []
    lam = client("lambda", LONG_TERM)
    out.append(capture(lam, "lambda list-functions (GET with query)",
                       lambda: lam.list_functions(MaxItems=10, FunctionVersion="ALL")))
    out.append(capture(lam, "lambda get-function by ARN with qualifier",
                       lambda: lam.get_function(
                           FunctionName="arn:aws:lambda:us-east-1:123456789012:function:my-fn",
                           Qualifier="$LATEST")))
    out.append(capture(lam, "lambda invoke (POST with body)",
                       lambda: lam.invoke(FunctionName="hello", Payload=b'{"k": "v w", "n": [1, 2]}',
                                          LogType="Tail",
                                          ClientContext=base64.b64encode(b'{"custom":{}}').decode())))
    out.append(capture(lam, "lambda add-permission (JSON body)",
                       lambda: lam.add_permission(FunctionName="hello", StatementId="s1",
                                                  Action="lambda:InvokeFunction",
                                                  Principal="123456789012")))
    out.append(capture(lam, "lambda list-functions with awkward marker (query encoding)",
                       lambda: lam.list_functions(Marker="a b+c/é*~'!")))
    out.append(capture(lam, "lambda get-function with awkward name (path double encoding)",
                       lambda: lam.get_function(FunctionName="a b:c*é")))
    iam = client("iam", LONG_TERM)
    out.append(capture(iam, "iam create-user (form POST)",
                       lambda: iam.create_user(UserName="alice", Path="/team/",
                                               Tags=[{"Key": "team", "Value": "a b&c"}])))
    tmp = client("lambda", TEMPORARY)
    r = capture(tmp, "lambda list-functions with session token",
                lambda: tmp.list_functions())
    r["session_token"] = TEMPORARY[2]
    out.append(r)
    for c, creds, label in ((lam, LONG_TERM, "long-term"), (tmp, TEMPORARY, "session token")):
        url = c.generate_presigned_url(
            "get_function", Params={"FunctionName": "hello", "Qualifier": "1"}, ExpiresIn=300)
        out.append({
            "name": f"presigned get-function ({label})",
            "method": "GET",
            "url": url,
            "headers": [],
            "body_b64": "",
            "session_token": creds[2],
        })
    for r in out:
        r["access_key_id"] = TEMPORARY[0] if r["session_token"] else LONG_TERM[0]
        r["secret_access_key"] = TEMPORARY[1] if r["session_token"] else LONG_TERM[1]
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
