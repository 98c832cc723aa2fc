//! One IAM session as the AWS CLI would drive it, checked action by action.

use quick_xml::events::Event;
use quick_xml::Reader;
use warden_identity::{parse_form, Identity, IAM_NAMESPACE, STS_NAMESPACE};
use warden_types::identity::{CredentialSource, Principal};

pub const ACCOUNT: &str = "123456789012";
pub const INVOKE_DOC: &str = r#"{"Version": "2012-10-17", "Statement": [{"Sid": "a <b> & 'c' \"d\"", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:*:123456789012:function:*"}]}"#;
pub const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// What the API would send for one query: status and XML body (errors written by
/// `QueryError::to_xml` in the namespace of the action's service, as the API does).
#[derive(Clone, Debug)]
pub struct QueryResponse {
    pub status: u16,
    pub body: String,
}

/// Runs one query as the API does after authorization.
pub fn respond(id: &Identity, params: &[(String, String)], caller: &Principal) -> QueryResponse {
    match id.handle_query(params, caller) {
        Ok(body) => QueryResponse { status: 200, body },
        Err(e) => {
            let action = params
                .iter()
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            let ns = if warden_identity::is_sts_action(action) {
                STS_NAMESPACE
            } else {
                IAM_NAMESPACE
            };
            QueryResponse {
                status: e.status,
                body: e.to_xml(Some(ns), "test-request-id"),
            }
        }
    }
}

/// One request and what came back.
pub struct Recorded {
    pub action: String,
    pub response: QueryResponse,
}

/// The text of every element at `path` (`A/B/C` from the root), checking the document is
/// well-formed XML along the way.
pub fn texts(xml: &str, path: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    // Text arrives in pieces: plain runs and entity references.
    let mut buf = String::new();
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("bad xml {e}: {xml}"))
        {
            Event::Start(s) => {
                stack.push(String::from_utf8(s.name().as_ref().to_vec()).unwrap());
                buf.clear();
            }
            Event::End(_) => {
                if stack.join("/") == path {
                    out.push(std::mem::take(&mut buf));
                }
                buf.clear();
                stack.pop();
            }
            Event::Text(t) => buf.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => {
                let name = r.decode().unwrap();
                match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(c) => buf.push_str(c),
                    None => buf.push(r.resolve_char_ref().unwrap().unwrap()),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements in {xml}");
    out
}

pub fn text(xml: &str, path: &str) -> String {
    let t = texts(xml, path);
    assert_eq!(t.len(), 1, "expected one `{path}` in {xml}");
    t.into_iter().next().unwrap()
}

fn decode(s: &str) -> String {
    // Percent-decoding (not form decoding: `+` stays `+`).
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub struct Session {
    pub _dir: tempfile::TempDir,
    pub id: Identity,
    pub admin: Principal,
    pub log: Vec<Recorded>,
}

impl Session {
    pub fn new() -> Session {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::open(dir.path(), ACCOUNT).unwrap();
        let (key, _) = id.ensure_bootstrap_admin().unwrap().unwrap();
        let admin = id.lookup(&key).unwrap().principal;
        Session {
            _dir: dir,
            id,
            admin,
            log: Vec::new(),
        }
    }

    /// Sends `action` with `params` as a form body (so encoding is exercised), expects
    /// `status`, returns the body.
    pub fn call(&mut self, action: &str, params: &[(&str, &str)], status: u16) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action);
        form.append_pair("Version", "2010-05-08");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let parsed = parse_form(form.finish().as_bytes());
        let target = self.id.authorization_target(&parsed, &self.admin);
        let response = respond(&self.id, &parsed, &self.admin);
        assert_eq!(response.status, status, "{action}: {}", response.body);
        if status == 200 {
            assert!(target.is_ok(), "{action}: {target:?}");
            let root = format!("{action}Response");
            assert!(
                response.body.starts_with(&format!("<{root} xmlns=\"")),
                "{}",
                response.body
            );
            text(
                &response.body,
                &format!("{root}/ResponseMetadata/RequestId"),
            );
        } else {
            text(&response.body, "ErrorResponse/Error/Code");
            text(&response.body, "ErrorResponse/RequestId");
        }
        self.log.push(Recorded {
            action: action.to_owned(),
            response: response.clone(),
        });
        response.body
    }
}

/// Runs every supported action; returns the session with its log.
pub fn run() -> Session {
    let mut s = Session::new();
    let b = s.call(
        "CreateUser",
        &[
            ("UserName", "alice"),
            ("Path", "/eng/"),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "blue & green"),
        ],
        200,
    );
    let u = "CreateUserResponse/CreateUserResult/User";
    assert_eq!(
        text(&b, &format!("{u}/Arn")),
        "arn:aws:iam::123456789012:user/eng/alice"
    );
    assert_eq!(text(&b, &format!("{u}/Tags/member/Value")), "blue & green");
    assert!(text(&b, &format!("{u}/UserId")).starts_with("AIDA"));
    let b = s.call("CreateUser", &[("UserName", "ALICE")], 409);
    assert_eq!(text(&b, "ErrorResponse/Error/Code"), "EntityAlreadyExists");
    assert_eq!(text(&b, "ErrorResponse/Error/Type"), "Sender");
    let b = s.call("GetUser", &[("UserName", "alice")], 200);
    assert_eq!(text(&b, "GetUserResponse/GetUserResult/User/Path"), "/eng/");
    let b = s.call("GetUser", &[], 200);
    assert_eq!(
        text(&b, "GetUserResponse/GetUserResult/User/UserName"),
        "admin"
    );
    let b = s.call("ListUsers", &[], 200);
    assert_eq!(
        texts(
            &b,
            "ListUsersResponse/ListUsersResult/Users/member/UserName"
        ),
        ["admin", "alice"]
    );
    assert_eq!(
        text(&b, "ListUsersResponse/ListUsersResult/IsTruncated"),
        "false"
    );
    let b = s.call("ListUsers", &[("MaxItems", "1")], 200);
    assert_eq!(
        text(&b, "ListUsersResponse/ListUsersResult/IsTruncated"),
        "true"
    );
    assert_eq!(text(&b, "ListUsersResponse/ListUsersResult/Marker"), "1");
    let b = s.call("ListUsers", &[("PathPrefix", "/eng/")], 200);
    assert_eq!(
        texts(
            &b,
            "ListUsersResponse/ListUsersResult/Users/member/UserName"
        ),
        ["alice"]
    );

    let b = s.call("CreateAccessKey", &[("UserName", "alice")], 200);
    let k = "CreateAccessKeyResponse/CreateAccessKeyResult/AccessKey";
    let key_id = text(&b, &format!("{k}/AccessKeyId"));
    let secret = text(&b, &format!("{k}/SecretAccessKey"));
    assert_eq!(s.id.lookup(&key_id).unwrap().secret_access_key, secret);
    let b = s.call("ListAccessKeys", &[("UserName", "alice")], 200);
    assert_eq!(
        texts(
            &b,
            "ListAccessKeysResponse/ListAccessKeysResult/AccessKeyMetadata/member/AccessKeyId"
        ),
        std::slice::from_ref(&key_id)
    );
    s.call(
        "UpdateAccessKey",
        &[
            ("UserName", "alice"),
            ("AccessKeyId", &key_id),
            ("Status", "Inactive"),
        ],
        200,
    );
    assert!(s.id.lookup(&key_id).is_none());
    s.call(
        "UpdateAccessKey",
        &[
            ("UserName", "alice"),
            ("AccessKeyId", &key_id),
            ("Status", "Bogus"),
        ],
        400,
    );

    let b = s.call(
        "CreatePolicy",
        &[
            ("PolicyName", "invoke"),
            ("PolicyDocument", INVOKE_DOC),
            ("Description", "lets <you> invoke"),
        ],
        200,
    );
    let arn = text(&b, "CreatePolicyResponse/CreatePolicyResult/Policy/Arn");
    assert_eq!(arn, "arn:aws:iam::123456789012:policy/invoke");
    let b = s.call("GetPolicy", &[("PolicyArn", &arn)], 200);
    assert_eq!(
        text(
            &b,
            "GetPolicyResponse/GetPolicyResult/Policy/DefaultVersionId"
        ),
        "v1"
    );
    let b = s.call(
        "GetPolicyVersion",
        &[("PolicyArn", &arn), ("VersionId", "v1")],
        200,
    );
    let doc = text(
        &b,
        "GetPolicyVersionResponse/GetPolicyVersionResult/PolicyVersion/Document",
    );
    assert!(doc.starts_with("%7B%22Version%22%3A%20"), "{doc}");
    assert_eq!(decode(&doc), INVOKE_DOC);
    s.call(
        "GetPolicyVersion",
        &[("PolicyArn", &arn), ("VersionId", "v2")],
        404,
    );
    let b = s.call("ListPolicies", &[("Scope", "Local")], 200);
    assert_eq!(
        texts(
            &b,
            "ListPoliciesResponse/ListPoliciesResult/Policies/member/Arn"
        ),
        std::slice::from_ref(&arn)
    );
    s.call(
        "AttachUserPolicy",
        &[("UserName", "alice"), ("PolicyArn", &arn)],
        200,
    );
    let b = s.call("ListAttachedUserPolicies", &[("UserName", "alice")], 200);
    assert_eq!(
        texts(&b, "ListAttachedUserPoliciesResponse/ListAttachedUserPoliciesResult/AttachedPolicies/member/PolicyName"),
        ["invoke"]
    );
    s.call(
        "PutUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyName", "inline"),
            ("PolicyDocument", INVOKE_DOC),
        ],
        200,
    );
    let b = s.call(
        "GetUserPolicy",
        &[("UserName", "alice"), ("PolicyName", "inline")],
        200,
    );
    assert_eq!(
        decode(&text(
            &b,
            "GetUserPolicyResponse/GetUserPolicyResult/PolicyDocument"
        )),
        INVOKE_DOC
    );
    let b = s.call("ListUserPolicies", &[("UserName", "alice")], 200);
    assert_eq!(
        texts(
            &b,
            "ListUserPoliciesResponse/ListUserPoliciesResult/PolicyNames/member"
        ),
        ["inline"]
    );
    let b = s.call("DeleteUser", &[("UserName", "alice")], 409);
    assert_eq!(text(&b, "ErrorResponse/Error/Code"), "DeleteConflict");
    let b = s.call(
        "PutUserPolicy",
        &[("UserName", "alice"), ("PolicyName", "bad"), ("PolicyDocument", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}]}"#)],
        400,
    );
    assert_eq!(
        text(&b, "ErrorResponse/Error/Code"),
        "MalformedPolicyDocument"
    );
    assert!(text(&b, "ErrorResponse/Error/Message").contains("StringEqualz"));
    s.call(
        "TagUser",
        &[
            ("UserName", "alice"),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "red"),
        ],
        200,
    );
    assert_eq!(
        s.id.user("alice").unwrap().tags,
        [("team".to_owned(), "red".to_owned())]
    );

    let b = s.call(
        "CreateRole",
        &[
            ("RoleName", "exec"),
            ("AssumeRolePolicyDocument", TRUST_DOC),
            ("Description", "runs <fns>"),
            ("MaxSessionDuration", "7200"),
            ("Tags.member.1.Key", "k"),
            ("Tags.member.1.Value", "v"),
        ],
        200,
    );
    let r = "CreateRoleResponse/CreateRoleResult/Role";
    let role_arn = text(&b, &format!("{r}/Arn"));
    assert_eq!(role_arn, "arn:aws:iam::123456789012:role/exec");
    assert_eq!(
        decode(&text(&b, &format!("{r}/AssumeRolePolicyDocument"))),
        TRUST_DOC
    );
    s.call(
        "CreateRole",
        &[
            ("RoleName", "bad"),
            ("AssumeRolePolicyDocument", INVOKE_DOC),
        ],
        400,
    );
    let b = s.call("GetRole", &[("RoleName", "exec")], 200);
    assert_eq!(
        text(&b, "GetRoleResponse/GetRoleResult/Role/MaxSessionDuration"),
        "7200"
    );
    let b = s.call("ListRoles", &[], 200);
    assert_eq!(
        texts(
            &b,
            "ListRolesResponse/ListRolesResult/Roles/member/RoleName"
        ),
        ["exec"]
    );
    s.call(
        "UpdateAssumeRolePolicy",
        &[("RoleName", "exec"), ("PolicyDocument", TRUST_DOC)],
        200,
    );
    s.call(
        "PutRolePolicy",
        &[
            ("RoleName", "exec"),
            ("PolicyName", "inv"),
            ("PolicyDocument", INVOKE_DOC),
        ],
        200,
    );
    let b = s.call(
        "GetRolePolicy",
        &[("RoleName", "exec"), ("PolicyName", "inv")],
        200,
    );
    assert_eq!(
        text(&b, "GetRolePolicyResponse/GetRolePolicyResult/RoleName"),
        "exec"
    );
    let b = s.call("ListRolePolicies", &[("RoleName", "exec")], 200);
    assert_eq!(
        texts(
            &b,
            "ListRolePoliciesResponse/ListRolePoliciesResult/PolicyNames/member"
        ),
        ["inv"]
    );
    s.call(
        "AttachRolePolicy",
        &[("RoleName", "exec"), ("PolicyArn", &arn)],
        200,
    );
    let b = s.call("ListAttachedRolePolicies", &[("RoleName", "exec")], 200);
    assert_eq!(
        texts(&b, "ListAttachedRolePoliciesResponse/ListAttachedRolePoliciesResult/AttachedPolicies/member/PolicyArn"),
        std::slice::from_ref(&arn)
    );
    s.call(
        "TagRole",
        &[
            ("RoleName", "exec"),
            ("Tags.member.1.Key", "k2"),
            ("Tags.member.1.Value", "v2"),
        ],
        200,
    );
    assert_eq!(s.id.role("exec").unwrap().tags.len(), 2);
    assert!(s
        .id
        .role_trusts_service(&role_arn, "lambda.amazonaws.com")
        .unwrap());
    s.call("DeletePolicy", &[("PolicyArn", &arn)], 409);
    s.call("DeleteRole", &[("RoleName", "exec")], 409);

    let b = s.call("GetCallerIdentity", &[], 200);
    let g = "GetCallerIdentityResponse/GetCallerIdentityResult";
    assert_eq!(
        text(&b, &format!("{g}/Arn")),
        "arn:aws:iam::123456789012:user/admin"
    );
    assert_eq!(text(&b, &format!("{g}/Account")), ACCOUNT);
    assert!(b.contains(warden_identity::STS_NAMESPACE));

    // Policy versions, role and tag updates, key use and AssumeRole.
    let b = s.call(
        "CreatePolicyVersion",
        &[
            ("PolicyArn", &arn),
            ("PolicyDocument", INVOKE_DOC),
            ("SetAsDefault", "true"),
        ],
        200,
    );
    assert_eq!(
        text(
            &b,
            "CreatePolicyVersionResponse/CreatePolicyVersionResult/PolicyVersion/VersionId"
        ),
        "v2"
    );
    let b = s.call("ListPolicyVersions", &[("PolicyArn", &arn)], 200);
    assert_eq!(
        texts(
            &b,
            "ListPolicyVersionsResponse/ListPolicyVersionsResult/Versions/member/VersionId"
        ),
        ["v2", "v1"]
    );
    s.call(
        "SetDefaultPolicyVersion",
        &[("PolicyArn", &arn), ("VersionId", "v1")],
        200,
    );
    s.call(
        "DeletePolicyVersion",
        &[("PolicyArn", &arn), ("VersionId", "v2")],
        200,
    );
    s.call(
        "UpdateRole",
        &[("RoleName", "exec"), ("MaxSessionDuration", "3600")],
        200,
    );
    let b = s.call(
        "UpdateRoleDescription",
        &[("RoleName", "exec"), ("Description", "described")],
        200,
    );
    assert_eq!(
        text(
            &b,
            "UpdateRoleDescriptionResponse/UpdateRoleDescriptionResult/Role/Description"
        ),
        "described"
    );
    let b = s.call("ListRoleTags", &[("RoleName", "exec")], 200);
    assert_eq!(
        texts(
            &b,
            "ListRoleTagsResponse/ListRoleTagsResult/Tags/member/Key"
        ),
        ["k", "k2"]
    );
    s.call(
        "UntagRole",
        &[("RoleName", "exec"), ("TagKeys.member.1", "k2")],
        200,
    );
    s.call("ListUserTags", &[("UserName", "alice")], 200);
    s.call(
        "UntagUser",
        &[("UserName", "alice"), ("TagKeys.member.1", "team")],
        200,
    );
    s.id.record_key_use(&key_id, "lambda", "us-east-1");
    let b = s.call("GetAccessKeyLastUsed", &[("AccessKeyId", &key_id)], 200);
    assert_eq!(
        text(
            &b,
            "GetAccessKeyLastUsedResponse/GetAccessKeyLastUsedResult/AccessKeyLastUsed/ServiceName"
        ),
        "lambda"
    );
    let b = s.call(
        "AssumeRole",
        &[
            ("RoleArn", &role_arn),
            ("RoleSessionName", "scenario"),
            ("DurationSeconds", "900"),
            ("Tags.member.1.Key", "t"),
            ("Tags.member.1.Value", "v"),
        ],
        200,
    );
    assert!(b.contains(warden_identity::STS_NAMESPACE));
    let c = "AssumeRoleResponse/AssumeRoleResult/Credentials";
    let session_key = text(&b, &format!("{c}/AccessKeyId"));
    assert!(s.id.lookup(&session_key).is_some());
    let b = s.call(
        "AssumeRole",
        &[
            ("RoleArn", &role_arn),
            ("RoleSessionName", "scenario"),
            ("TransitiveTagKeys.member.1", "t"),
        ],
        400,
    );
    assert!(text(&b, "ErrorResponse/Error/Message").contains("TransitiveTagKeys"));

    // Tear everything down in dependency order.
    s.call(
        "DetachRolePolicy",
        &[("RoleName", "exec"), ("PolicyArn", &arn)],
        200,
    );
    s.call(
        "DetachRolePolicy",
        &[("RoleName", "exec"), ("PolicyArn", &arn)],
        404,
    );
    s.call(
        "DeleteRolePolicy",
        &[("RoleName", "exec"), ("PolicyName", "inv")],
        200,
    );
    s.call("DeleteRole", &[("RoleName", "exec")], 200);
    s.call(
        "DetachUserPolicy",
        &[("UserName", "alice"), ("PolicyArn", &arn)],
        200,
    );
    s.call(
        "DeleteUserPolicy",
        &[("UserName", "alice"), ("PolicyName", "inline")],
        200,
    );
    s.call("DeletePolicy", &[("PolicyArn", &arn)], 200);
    s.call(
        "DeleteAccessKey",
        &[("UserName", "alice"), ("AccessKeyId", &key_id)],
        200,
    );
    s.call("DeleteUser", &[("UserName", "alice")], 200);
    let b = s.call("GetUser", &[("UserName", "alice")], 404);
    assert_eq!(
        text(&b, "ErrorResponse/Error/Message"),
        "The user with name `alice` cannot be found."
    );
    let b = s.call("CreateUser", &[], 400);
    assert_eq!(text(&b, "ErrorResponse/Error/Code"), "ValidationError");
    let b = s.call("FlyToTheMoon", &[], 400);
    assert_eq!(text(&b, "ErrorResponse/Error/Code"), "InvalidAction");
    s
}

#[test]
fn every_action_round_trips_through_xml() {
    let s = run();
    let required = "CreateUser GetUser ListUsers DeleteUser CreateAccessKey ListAccessKeys \
        UpdateAccessKey DeleteAccessKey CreateRole GetRole ListRoles DeleteRole \
        UpdateAssumeRolePolicy PutRolePolicy GetRolePolicy DeleteRolePolicy ListRolePolicies \
        PutUserPolicy GetUserPolicy DeleteUserPolicy ListUserPolicies CreatePolicy GetPolicy \
        GetPolicyVersion DeletePolicy ListPolicies AttachRolePolicy DetachRolePolicy \
        ListAttachedRolePolicies AttachUserPolicy DetachUserPolicy ListAttachedUserPolicies \
        TagUser TagRole GetCallerIdentity CreatePolicyVersion ListPolicyVersions \
        SetDefaultPolicyVersion DeletePolicyVersion UpdateRole UpdateRoleDescription \
        ListRoleTags UntagRole ListUserTags UntagUser GetAccessKeyLastUsed AssumeRole";
    for action in required.split_whitespace() {
        assert!(
            s.log
                .iter()
                .any(|r| r.action == action && r.response.status == 200),
            "{action} never succeeded"
        );
    }
}

#[test]
fn authorization_targets_name_the_iam_action_and_arn() {
    let s = Session::new();
    let check = |params: &[(&str, &str)], action: &str, resource: &str| {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            s.id.authorization_target(&owned, &s.admin).unwrap(),
            (action.to_owned(), resource.to_owned()),
            "{params:?}"
        );
    };
    check(
        &[("Action", "CreateRole"), ("RoleName", "r"), ("Path", "/a/")],
        "iam:CreateRole",
        "arn:aws:iam::123456789012:role/a/r",
    );
    check(
        &[("Action", "GetUser")],
        "iam:GetUser",
        "arn:aws:iam::123456789012:user/admin",
    );
    check(
        &[("Action", "PutUserPolicy"), ("UserName", "admin")],
        "iam:PutUserPolicy",
        "arn:aws:iam::123456789012:user/admin",
    );
    check(&[("Action", "ListUsers")], "iam:ListUsers", "*");
    check(
        &[("Action", "CreatePolicy"), ("PolicyName", "p")],
        "iam:CreatePolicy",
        "arn:aws:iam::123456789012:policy/p",
    );
    check(
        &[
            ("Action", "GetPolicy"),
            ("PolicyArn", "arn:aws:iam::123456789012:policy/p"),
        ],
        "iam:GetPolicy",
        "arn:aws:iam::123456789012:policy/p",
    );
    check(
        &[("Action", "GetCallerIdentity")],
        "sts:GetCallerIdentity",
        "*",
    );
    let owned = vec![("Action".to_owned(), "Nope".to_owned())];
    assert_eq!(
        s.id.authorization_target(&owned, &s.admin)
            .unwrap_err()
            .code,
        "InvalidAction"
    );
}

#[test]
fn a_role_session_caller_must_name_the_user() {
    let mut s = Session::new();
    let role =
        s.id.create_role("exec", None, TRUST_DOC, None, None, vec![])
            .unwrap();
    let c =
        s.id.issue_role_session(&role.arn, "fn", std::time::Duration::from_secs(60))
            .unwrap();
    s.admin = c.principal.clone();
    let b = s.call("GetUser", &[], 400);
    assert_eq!(
        text(&b, "ErrorResponse/Error/Message"),
        "Must specify userName when calling with non-User credentials"
    );
    let b = s.call("GetCallerIdentity", &[], 200);
    let g = "GetCallerIdentityResponse/GetCallerIdentityResult";
    assert_eq!(
        text(&b, &format!("{g}/Arn")),
        "arn:aws:sts::123456789012:assumed-role/exec/fn"
    );
    assert_eq!(text(&b, &format!("{g}/UserId")), format!("{}:fn", role.id));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let s = SHARED.with(|s| s.id.clone());
        let admin = SHARED.with(|s| s.admin.clone());
        let params = parse_form(&body);
        let _ = s.authorization_target(&params, &admin);
        let r = respond(&s, &params, &admin);
        texts(&r.body, "");
    }

    #[test]
    fn arbitrary_parameter_values_never_panic(
        action in proptest::sample::select(vec!["CreateUser", "GetUser", "CreateRole", "PutUserPolicy", "ListUsers", "TagUser", "CreatePolicy", "UpdateAccessKey"]),
        name in "\\PC{0,80}",
        doc in "\\PC{0,80}",
        n in "\\PC{0,6}",
    ) {
        let s = SHARED.with(|s| s.id.clone());
        let admin = SHARED.with(|s| s.admin.clone());
        let params: Vec<(String, String)> = [
            ("Action", action), ("UserName", &name), ("RoleName", &name), ("PolicyName", &name),
            ("PolicyDocument", &doc), ("AssumeRolePolicyDocument", &doc), ("MaxItems", &n),
            ("Tags.member.1.Key", &name), ("Status", &n), ("Path", &doc),
        ].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let _ = s.authorization_target(&params, &admin);
        let r = respond(&s, &params, &admin);
        texts(&r.body, "");
    }
}

thread_local! {
    static SHARED: Session = Session::new();
}
