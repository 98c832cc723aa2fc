//! The query-protocol surface: form parameters in, XML out.
//!
//! SNS speaks the AWS query protocol (botocore's model for `sns` 2010-03-31 declares
//! `"protocol": "query"` and `"protocols": ["query"]`): `Action=Publish&TopicArn=...`,
//! maps as `Attributes.entry.N.key` / `.value`, lists as `Tags.member.N.Key` / `.Value` and
//! `TagKeys.member.N`, message attributes as `MessageAttributes.entry.N.Name` /
//! `.Value.DataType` / `.Value.StringValue` / `.Value.BinaryValue`. Responses are
//! `<ActionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><ActionResult>...`
//! with `ResponseMetadata/RequestId`; lists page by `NextToken`, [`PAGE_SIZE`] to a page.
//!
//! Every parameter an operation does not know is refused by name (`InvalidParameter`),
//! never ignored; an operation parses and checks all its parameters before it changes
//! anything.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use base64::Engine;

use crate::error::{invalid, SnsError};
use crate::model::{
    check_account, check_lambda_endpoint, check_region, check_web_endpoint, shown,
    subscription_topic, validate_display_name, validate_message_attributes, validate_subject,
    validate_tags, validate_topic_name, Protocol, RawMessageAttribute, TopicArn,
};
use crate::policy::{
    effective_subscription_json, effective_topic_json, parse_subscription_policy,
    parse_topic_policy,
};
use crate::store::{
    subscription_not_found, topic_not_found, NewMessage, SubscribeRequest, Subscription,
    SubscriptionField, TopicAttrs, TopicField,
};
use crate::xml::{is_xml_char, Response};
use crate::{now_ms, Sns, MAX_MESSAGE_BYTES, MAX_POLICY_BYTES, PAGE_SIZE};

/// The API version every request is for.
pub const API_VERSION: &str = "2010-03-31";

/// The actions [`Sns::handle`] implements.
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "CreateTopic",
    "DeleteTopic",
    "ListTopics",
    "GetTopicAttributes",
    "SetTopicAttributes",
    "Subscribe",
    "ConfirmSubscription",
    "Unsubscribe",
    "ListSubscriptions",
    "ListSubscriptionsByTopic",
    "GetSubscriptionAttributes",
    "SetSubscriptionAttributes",
    "Publish",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// SNS actions of the service model that this SNS does not implement (refused with
/// `InvalidAction` naming them).
pub const UNSUPPORTED_ACTIONS: &[&str] = &[
    "AddPermission",
    "CheckIfPhoneNumberIsOptedOut",
    "CreatePlatformApplication",
    "CreatePlatformEndpoint",
    "CreateSMSSandboxPhoneNumber",
    "DeleteEndpoint",
    "DeletePlatformApplication",
    "DeleteSMSSandboxPhoneNumber",
    "GetDataProtectionPolicy",
    "GetEndpointAttributes",
    "GetPlatformApplicationAttributes",
    "GetSMSAttributes",
    "GetSMSSandboxAccountStatus",
    "ListEndpointsByPlatformApplication",
    "ListOriginationNumbers",
    "ListPhoneNumbersOptedOut",
    "ListPlatformApplications",
    "ListSMSSandboxPhoneNumbers",
    "OptInPhoneNumber",
    "PublishBatch",
    "PutDataProtectionPolicy",
    "RemovePermission",
    "SetEndpointAttributes",
    "SetPlatformApplicationAttributes",
    "SetSMSAttributes",
    "VerifySMSSandboxPhoneNumber",
];

/// Parameters of SigV4's query-string authentication: the API layer's business, accepted
/// here without effect so that it may pass a presigned request's parameters through.
const AUTH_PARAMETERS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// Who is calling, as the API layer established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// The caller's account (12 digits): owner of topics it creates and subscriptions it
    /// makes, and whose topics `ListTopics` lists.
    pub account: String,
    /// The region the request was sent to; ARNs of other regions are refused.
    pub region: String,
    /// The request id written into the response (and errors).
    pub request_id: String,
}

/// What the API layer must authorize before calling [`Sns::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The IAM action, e.g. `sns:Publish`.
    pub iam_action: &'static str,
    /// The resource: a topic ARN, or `*` for the account-wide list actions.
    pub resource: String,
}

fn unknown_action(action: &str) -> SnsError {
    if UNSUPPORTED_ACTIONS.contains(&action) {
        SnsError::InvalidAction(format!(
            "The action {action} is not supported by this SNS (supported: {})",
            SUPPORTED_ACTIONS.join(", ")
        ))
    } else {
        SnsError::InvalidAction(format!(
            "The action `{}` is not valid for this endpoint",
            shown(action)
        ))
    }
}

/// Form parameters being consumed by one operation.
pub(crate) struct Params<'a> {
    values: BTreeMap<&'a str, &'a str>,
    used: RefCell<BTreeSet<&'a str>>,
}

/// The parameters whose values are never written into XML, and so may hold any text.
fn free_text(name: &str) -> bool {
    name == "Message" || name.starts_with("MessageAttributes.")
}

/// Parses `N.rest` where N is a positive decimal without leading zeros.
fn index(rest: &str) -> Option<(u32, &str)> {
    let (n, field) = rest.split_once('.')?;
    if n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, field))
}

impl<'a> Params<'a> {
    /// Collects `params`, refusing a name given twice and text XML cannot carry.
    pub(crate) fn new(params: &'a [(String, String)]) -> Result<Params<'a>, SnsError> {
        let mut values = BTreeMap::new();
        for (k, v) in params {
            if values.insert(k.as_str(), v.as_str()).is_some() {
                return Err(invalid(format!("{}: given more than once", shown(k))));
            }
            if !free_text(k) && !v.chars().all(is_xml_char) {
                return Err(invalid(format!(
                    "{}: holds characters that are not allowed",
                    shown(k)
                )));
            }
        }
        let p = Params {
            values,
            used: RefCell::new(BTreeSet::new()),
        };
        if let Some(version) = p.get("Version") {
            if version != API_VERSION {
                return Err(invalid(format!(
                    "Version: `{}` is not {API_VERSION}",
                    shown(version)
                )));
            }
        }
        p.get("Action");
        for name in AUTH_PARAMETERS {
            p.get(name);
        }
        Ok(p)
    }

    fn mark(&self, name: &'a str) {
        self.used.borrow_mut().insert(name);
    }

    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        let (k, v) = self.values.get_key_value(name)?;
        self.mark(k);
        Some(v)
    }

    /// The value of `name`, which is required.
    pub(crate) fn req(&self, name: &str) -> Result<&'a str, SnsError> {
        self.get(name)
            .ok_or_else(|| invalid(format!("{name}: missing required parameter")))
    }

    /// A `true`/`false` parameter.
    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>, SnsError> {
        self.get(name).map(|v| parse_bool(name, v)).transpose()
    }

    /// The entries `prefix.N.field` grouped by N (in order), for the given fields; names of
    /// other shapes are left unconsumed (so [`Params::finish`] refuses them).
    fn indexed(&self, prefix: &str, fields: &[&str]) -> BTreeMap<u32, BTreeMap<String, &'a str>> {
        let mut out: BTreeMap<u32, BTreeMap<String, &'a str>> = BTreeMap::new();
        let start = format!("{prefix}.");
        for (k, v) in self
            .values
            .range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded))
        {
            let Some(rest) = k.strip_prefix(start.as_str()) else {
                break;
            };
            let Some((n, field)) = index(rest) else {
                continue;
            };
            if fields.contains(&field) {
                self.mark(k);
                out.entry(n).or_default().insert(field.to_owned(), *v);
            }
        }
        out
    }

    /// A map `prefix.entry.N.key` / `prefix.entry.N.value`, keys unique.
    pub(crate) fn map(&self, prefix: &str) -> Result<Vec<(String, String)>, SnsError> {
        let entries = self.indexed(&format!("{prefix}.entry"), &["key", "value"]);
        let mut out: Vec<(String, String)> = Vec::new();
        for (n, fields) in entries {
            let key = fields
                .get("key")
                .ok_or_else(|| invalid(format!("{prefix}.entry.{n}.key: missing")))?;
            let value = fields
                .get("value")
                .ok_or_else(|| invalid(format!("{prefix}.entry.{n}.value: missing")))?;
            if out.iter().any(|(k, _)| k == key) {
                return Err(invalid(format!(
                    "{prefix}: the key {} appears twice",
                    shown(key)
                )));
            }
            out.push(((*key).to_owned(), (*value).to_owned()));
        }
        Ok(out)
    }

    /// A tag list `prefix.member.N.Key` / `prefix.member.N.Value`.
    pub(crate) fn tag_list(&self, prefix: &str) -> Result<Vec<(String, String)>, SnsError> {
        let entries = self.indexed(&format!("{prefix}.member"), &["Key", "Value"]);
        entries
            .into_iter()
            .map(|(n, fields)| {
                let key = fields
                    .get("Key")
                    .ok_or_else(|| invalid(format!("{prefix}.member.{n}.Key: missing")))?;
                let value = fields
                    .get("Value")
                    .ok_or_else(|| invalid(format!("{prefix}.member.{n}.Value: missing")))?;
                Ok(((*key).to_owned(), (*value).to_owned()))
            })
            .collect()
    }

    /// A string list `prefix.member.N`.
    pub(crate) fn string_list(&self, prefix: &str) -> Vec<String> {
        let start = format!("{prefix}.member.");
        let mut out: BTreeMap<u32, String> = BTreeMap::new();
        for (k, v) in self
            .values
            .range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded))
        {
            let Some(rest) = k.strip_prefix(start.as_str()) else {
                break;
            };
            let plain = !rest.is_empty()
                && !rest.starts_with('0')
                && rest.bytes().all(|b| b.is_ascii_digit());
            if let (true, Ok(n)) = (plain, rest.parse::<u32>()) {
                self.mark(k);
                out.insert(n, (*v).to_owned());
            }
        }
        out.into_values().collect()
    }

    /// `MessageAttributes.entry.N.Name` / `.Value.DataType` / `.Value.StringValue` /
    /// `.Value.BinaryValue`.
    pub(crate) fn message_attributes(&self) -> Result<Vec<RawMessageAttribute>, SnsError> {
        let entries = self.indexed(
            "MessageAttributes.entry",
            &[
                "Name",
                "Value.DataType",
                "Value.StringValue",
                "Value.BinaryValue",
            ],
        );
        entries
            .into_iter()
            .map(|(n, f)| {
                let name = f
                    .get("Name")
                    .ok_or_else(|| invalid(format!("MessageAttributes.entry.{n}.Name: missing")))?;
                Ok(RawMessageAttribute {
                    name: (*name).to_owned(),
                    data_type: f.get("Value.DataType").map(|s| (*s).to_owned()),
                    string_value: f.get("Value.StringValue").map(|s| (*s).to_owned()),
                    binary_value: f.get("Value.BinaryValue").map(|s| (*s).to_owned()),
                })
            })
            .collect()
    }

    /// Refuses the first parameter nothing consumed.
    pub(crate) fn finish(&self) -> Result<(), SnsError> {
        let used = self.used.borrow();
        match self.values.keys().find(|k| !used.contains(*k)) {
            None => Ok(()),
            Some(k) => Err(invalid(format!(
                "{}: unknown or unsupported parameter for this action",
                shown(k)
            ))),
        }
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, SnsError> {
    match value {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(invalid(format!(
            "{name}: `{}` is not true or false",
            shown(other)
        ))),
    }
}

fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn decode_token(token: Option<&str>) -> Result<Option<String>, SnsError> {
    let Some(token) = token else {
        return Ok(None);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
        .map(Some)
        .ok_or_else(|| invalid("NextToken: not a token this SNS handed out"))
}

/// A page of at most [`PAGE_SIZE`] from up to `PAGE_SIZE + 1` items, and the next token.
fn page<T>(mut items: Vec<T>, key: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
    if items.len() > PAGE_SIZE {
        items.truncate(PAGE_SIZE);
        let next = items.last().map(|i| encode_token(key(i)));
        (items, next)
    } else {
        (items, None)
    }
}

/// Parses a topic ARN parameter and requires it to be in the caller's region.
fn topic_param(p: &Params<'_>, ctx: &CallContext, name: &str) -> Result<TopicArn, SnsError> {
    let arn = TopicArn::parse(p.req(name)?, name)?;
    same_region(&arn, ctx, name)?;
    Ok(arn)
}

fn same_region(arn: &TopicArn, ctx: &CallContext, name: &str) -> Result<(), SnsError> {
    if arn.region != ctx.region {
        return Err(invalid(format!(
            "{name}: the topic is in region {}, not in this endpoint's region {}",
            arn.region, ctx.region
        )));
    }
    Ok(())
}

fn subscription_param(p: &Params<'_>, ctx: &CallContext) -> Result<(String, TopicArn), SnsError> {
    let arn = p.req("SubscriptionArn")?;
    let topic = subscription_topic(arn, "SubscriptionArn")?;
    same_region(&topic, ctx, "SubscriptionArn")?;
    Ok((arn.to_owned(), topic))
}

/// Checks a `Policy` attribute: a JSON object of at most [`MAX_POLICY_BYTES`] (the API layer
/// evaluates it).
fn check_policy(text: &str) -> Result<(), SnsError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(invalid(format!(
            "Policy: longer than {MAX_POLICY_BYTES} bytes"
        )));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(invalid("Policy: not a JSON policy document")),
    }
}

/// Checks one topic attribute given to CreateTopic or SetTopicAttributes; returns the field
/// it sets, or `None` for an accepted attribute that changes nothing (`SignatureVersion` 2,
/// `FifoTopic` false).
fn topic_attribute(name: &str, value: &str) -> Result<Option<TopicField>, SnsError> {
    match name {
        "DisplayName" => {
            validate_display_name(value)?;
            Ok(Some(TopicField::DisplayName))
        }
        "Policy" => {
            if !value.is_empty() {
                check_policy(value)?;
            }
            Ok(Some(TopicField::Policy))
        }
        "DeliveryPolicy" => {
            if !value.is_empty() {
                parse_topic_policy(value)?;
            }
            Ok(Some(TopicField::DeliveryPolicy))
        }
        "SignatureVersion" => match value {
            "2" => Ok(None),
            _ => Err(invalid(
                "SignatureVersion: only 2 (SHA256withRSA) is supported; this SNS does not sign \
                 with SHA1",
            )),
        },
        "FifoTopic" => match value {
            "false" => Ok(None),
            _ => Err(invalid("FifoTopic: FIFO topics are not supported")),
        },
        other => Err(invalid(format!(
            "Attributes: the topic attribute {} is not supported (supported: DisplayName, \
             Policy, DeliveryPolicy, SignatureVersion)",
            shown(other)
        ))),
    }
}

/// Checks one subscription attribute for a subscription of `protocol`.
fn subscription_attribute(
    protocol: Protocol,
    name: &str,
    value: &str,
) -> Result<SubscriptionField, SnsError> {
    match name {
        "RawMessageDelivery" => {
            let raw = parse_bool("RawMessageDelivery", value)?;
            if raw && !protocol.is_web() {
                return Err(invalid(
                    "RawMessageDelivery: raw delivery is for http and https subscriptions only",
                ));
            }
            Ok(SubscriptionField::RawMessageDelivery)
        }
        "DeliveryPolicy" => {
            if !protocol.is_web() {
                return Err(invalid(
                    "DeliveryPolicy: a delivery policy is for http and https subscriptions only",
                ));
            }
            if !value.is_empty() {
                parse_subscription_policy(value)?;
            }
            Ok(SubscriptionField::DeliveryPolicy)
        }
        other => Err(invalid(format!(
            "Attributes: the subscription attribute {} is not supported (supported: \
             RawMessageDelivery, DeliveryPolicy)",
            shown(other)
        ))),
    }
}

fn check_context(ctx: &CallContext) -> Result<(), SnsError> {
    check_account(&ctx.account)?;
    check_region(&ctx.region)
}

/// What the API layer must authorize for `action` with `params` from `ctx`, before it calls
/// [`Sns::handle`]: the IAM action (`sns:ACTION`) and the resource (the topic's ARN; for
/// a subscription, its topic's ARN; `*` for `ListTopics` and `ListSubscriptions`). Pure: it
/// reads no store. A topic's resource policy is [`Sns::topic_policy`].
pub fn authorization(
    action: &str,
    params: &[(String, String)],
    ctx: &CallContext,
) -> Result<Authorization, SnsError> {
    check_context(ctx)?;
    let p = Params::new(params)?;
    let topic = |name: &str| -> Result<String, SnsError> {
        Ok(TopicArn::parse(p.req(name)?, name)?.to_string())
    };
    let (iam_action, resource) = match action {
        "CreateTopic" => {
            let name = p.req("Name")?;
            validate_topic_name(name)?;
            (
                "sns:CreateTopic",
                TopicArn {
                    region: ctx.region.clone(),
                    account: ctx.account.clone(),
                    name: name.to_owned(),
                }
                .to_string(),
            )
        }
        "DeleteTopic" => ("sns:DeleteTopic", topic("TopicArn")?),
        "GetTopicAttributes" => ("sns:GetTopicAttributes", topic("TopicArn")?),
        "SetTopicAttributes" => ("sns:SetTopicAttributes", topic("TopicArn")?),
        "Subscribe" => ("sns:Subscribe", topic("TopicArn")?),
        "ConfirmSubscription" => ("sns:ConfirmSubscription", topic("TopicArn")?),
        "ListSubscriptionsByTopic" => ("sns:ListSubscriptionsByTopic", topic("TopicArn")?),
        "Publish" => {
            let name = if p.get("TopicArn").is_some() {
                "TopicArn"
            } else {
                "TargetArn"
            };
            ("sns:Publish", topic(name)?)
        }
        "Unsubscribe" | "GetSubscriptionAttributes" | "SetSubscriptionAttributes" => {
            let topic = subscription_topic(p.req("SubscriptionArn")?, "SubscriptionArn")?;
            let iam = match action {
                "Unsubscribe" => "sns:Unsubscribe",
                "GetSubscriptionAttributes" => "sns:GetSubscriptionAttributes",
                _ => "sns:SetSubscriptionAttributes",
            };
            (iam, topic.to_string())
        }
        "ListTopics" => ("sns:ListTopics", "*".to_owned()),
        "ListSubscriptions" => ("sns:ListSubscriptions", "*".to_owned()),
        "TagResource" => ("sns:TagResource", topic("ResourceArn")?),
        "UntagResource" => ("sns:UntagResource", topic("ResourceArn")?),
        "ListTagsForResource" => ("sns:ListTagsForResource", topic("ResourceArn")?),
        other => return Err(unknown_action(other)),
    };
    Ok(Authorization {
        iam_action,
        resource,
    })
}

fn subscription_arn_shown(s: &Subscription) -> &str {
    if s.confirmed {
        &s.arn
    } else {
        "PendingConfirmation"
    }
}

fn subscription_list(r: &mut Response, subs: &[Subscription]) {
    r.open("Subscriptions");
    for s in subs {
        r.open("member");
        r.leaf("TopicArn", &s.topic_arn);
        r.leaf("Protocol", &s.protocol);
        r.leaf("SubscriptionArn", subscription_arn_shown(s));
        r.leaf("Owner", &s.owner);
        r.leaf("Endpoint", &s.endpoint);
        r.close("member");
    }
    r.close("Subscriptions");
}

impl Sns {
    /// Runs one query-protocol `action` for the caller `ctx` and returns the XML response
    /// body (HTTP 200), or the error to render with [`SnsError::to_xml`] and
    /// [`SnsError::status`].
    ///
    /// The API layer must have authenticated the caller and authorized
    /// [`authorization`]'s answer (and evaluated [`Sns::topic_policy`] for another account's
    /// topic) first: this function trusts `ctx`. It blocks on SQLite (every write is
    /// fsynced before it returns), so call it off the async executor (for example in
    /// `spawn_blocking`).
    pub fn handle(
        &self,
        ctx: &CallContext,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, SnsError> {
        let result = self.dispatch(ctx, action, params);
        if let Err(e) = &result {
            if e.is_internal() {
                tracing::error!(action, request_id = %ctx.request_id, error = %e, "SNS request failed");
            }
        }
        result
    }

    fn dispatch(
        &self,
        ctx: &CallContext,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, SnsError> {
        check_context(ctx)?;
        let p = Params::new(params)?;
        match action {
            "CreateTopic" => self.create_topic(ctx, &p),
            "DeleteTopic" => self.delete_topic(ctx, &p),
            "ListTopics" => self.list_topics(ctx, &p),
            "GetTopicAttributes" => self.get_topic_attributes(ctx, &p),
            "SetTopicAttributes" => self.set_topic_attributes(ctx, &p),
            "Subscribe" => self.subscribe(ctx, &p),
            "ConfirmSubscription" => self.confirm_subscription(ctx, &p),
            "Unsubscribe" => self.unsubscribe(ctx, &p),
            "ListSubscriptions" => self.list_subscriptions(ctx, &p),
            "ListSubscriptionsByTopic" => self.list_subscriptions_by_topic(ctx, &p),
            "GetSubscriptionAttributes" => self.get_subscription_attributes(ctx, &p),
            "SetSubscriptionAttributes" => self.set_subscription_attributes(ctx, &p),
            "Publish" => self.publish(ctx, &p),
            "TagResource" => self.tag_resource(ctx, &p),
            "UntagResource" => self.untag_resource(ctx, &p),
            "ListTagsForResource" => self.list_tags(ctx, &p),
            other => Err(unknown_action(other)),
        }
    }

    fn create_topic(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let name = p.req("Name")?;
        validate_topic_name(name)?;
        let mut attrs = TopicAttrs::default();
        for (k, v) in p.map("Attributes")? {
            match topic_attribute(&k, &v)? {
                Some(TopicField::DisplayName) => attrs.display_name = Some(v),
                Some(TopicField::Policy) => attrs.policy = Some(v).filter(|v| !v.is_empty()),
                Some(TopicField::DeliveryPolicy) => {
                    attrs.delivery_policy = Some(v).filter(|v| !v.is_empty())
                }
                None => {}
            }
        }
        let tags = p.tag_list("Tags")?;
        validate_tags(&tags)?;
        if p.get("DataProtectionPolicy").is_some() {
            return Err(invalid(
                "DataProtectionPolicy: data protection policies are not supported",
            ));
        }
        p.finish()?;
        let arn = TopicArn {
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            name: name.to_owned(),
        };
        self.store.create_topic(&arn, &attrs, &tags, now_ms())?;
        let mut r = Response::new("CreateTopic", true);
        r.leaf("TopicArn", &arn.to_string());
        Ok(r.finish(true, &ctx.request_id))
    }

    fn delete_topic(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let arn = topic_param(p, ctx, "TopicArn")?;
        p.finish()?;
        self.store.delete_topic(&arn.to_string())?;
        Ok(Response::new("DeleteTopic", false).finish(false, &ctx.request_id))
    }

    fn list_topics(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let after = decode_token(p.get("NextToken"))?;
        p.finish()?;
        let arns =
            self.store
                .list_topics(&ctx.account, &ctx.region, after.as_deref(), PAGE_SIZE + 1)?;
        let (arns, next) = page(arns, |a| a.as_str());
        let mut r = Response::new("ListTopics", true);
        r.open("Topics");
        for arn in &arns {
            r.open("member");
            r.leaf("TopicArn", arn);
            r.close("member");
        }
        r.close("Topics");
        if let Some(next) = next {
            r.leaf("NextToken", &next);
        }
        Ok(r.finish(true, &ctx.request_id))
    }

    fn get_topic_attributes(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let arn = topic_param(p, ctx, "TopicArn")?.to_string();
        p.finish()?;
        let topic = self.store.topic(&arn)?.ok_or_else(topic_not_found)?;
        let (confirmed, pending) = self.store.subscription_counts(&arn)?;
        let mut attrs = vec![
            ("TopicArn".to_owned(), topic.arn.clone()),
            ("Owner".to_owned(), topic.account.clone()),
            ("DisplayName".to_owned(), topic.display_name.clone()),
            ("SubscriptionsConfirmed".to_owned(), confirmed.to_string()),
            ("SubscriptionsPending".to_owned(), pending.to_string()),
            ("SubscriptionsDeleted".to_owned(), "0".to_owned()),
            ("SignatureVersion".to_owned(), "2".to_owned()),
            (
                "EffectiveDeliveryPolicy".to_owned(),
                effective_topic_json(topic.delivery_policy.as_deref()),
            ),
        ];
        if let Some(policy) = &topic.policy {
            attrs.push(("Policy".to_owned(), policy.clone()));
        }
        if let Some(policy) = &topic.delivery_policy {
            attrs.push(("DeliveryPolicy".to_owned(), policy.clone()));
        }
        let mut r = Response::new("GetTopicAttributes", true);
        r.entries("Attributes", &attrs);
        Ok(r.finish(true, &ctx.request_id))
    }

    fn set_topic_attributes(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let arn = topic_param(p, ctx, "TopicArn")?.to_string();
        let name = p.req("AttributeName")?;
        let value = p.get("AttributeValue").unwrap_or("");
        let field = topic_attribute(name, value)?;
        p.finish()?;
        match field {
            Some(field) => {
                let value =
                    Some(value).filter(|v| !v.is_empty() || field == TopicField::DisplayName);
                self.store.set_topic_attribute(&arn, field, value)?;
            }
            None => {
                self.store.topic(&arn)?.ok_or_else(topic_not_found)?;
            }
        }
        Ok(Response::new("SetTopicAttributes", false).finish(false, &ctx.request_id))
    }

    fn subscribe(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let topic = topic_param(p, ctx, "TopicArn")?.to_string();
        let protocol = Protocol::parse(p.req("Protocol")?)?;
        let endpoint = p.req("Endpoint")?;
        match protocol {
            Protocol::Http | Protocol::Https => check_web_endpoint(protocol, endpoint)?,
            Protocol::Lambda => check_lambda_endpoint(endpoint)?,
        }
        let mut raw = None;
        let mut policy = None;
        for (k, v) in p.map("Attributes")? {
            match subscription_attribute(protocol, &k, &v)? {
                SubscriptionField::RawMessageDelivery => {
                    raw = Some(parse_bool("RawMessageDelivery", &v)?)
                }
                SubscriptionField::DeliveryPolicy => policy = Some(v).filter(|v| !v.is_empty()),
            }
        }
        let return_arn = p.flag("ReturnSubscriptionArn")?.unwrap_or(false);
        p.finish()?;
        let outcome = self.store.subscribe(
            &SubscribeRequest {
                topic_arn: &topic,
                owner: &ctx.account,
                protocol,
                endpoint,
                raw,
                delivery_policy: policy.as_deref(),
            },
            now_ms(),
        )?;
        if !outcome.confirmed {
            self.wake.notify_one();
        }
        let shown = if outcome.confirmed || return_arn {
            outcome.arn.as_str()
        } else {
            "pending confirmation"
        };
        let mut r = Response::new("Subscribe", true);
        r.leaf("SubscriptionArn", shown);
        Ok(r.finish(true, &ctx.request_id))
    }

    fn confirm_subscription(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let topic = topic_param(p, ctx, "TopicArn")?.to_string();
        let token = p.req("Token")?;
        let auth = p.flag("AuthenticateOnUnsubscribe")?;
        p.finish()?;
        let arn = self.store.confirm(&topic, token, auth, true, now_ms())?;
        Ok(confirm_response(&arn, &ctx.request_id))
    }

    fn unsubscribe(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let (arn, _) = subscription_param(p, ctx)?;
        p.finish()?;
        self.store
            .unsubscribe(&arn, Some(&ctx.account), now_ms())?
            .ok_or_else(subscription_not_found)?;
        self.wake.notify_one();
        Ok(Response::new("Unsubscribe", false).finish(false, &ctx.request_id))
    }

    fn list_subscriptions(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let after = decode_token(p.get("NextToken"))?;
        p.finish()?;
        let subs = self.store.list_subscriptions(
            &ctx.account,
            &ctx.region,
            after.as_deref(),
            PAGE_SIZE + 1,
        )?;
        let (subs, next) = page(subs, |s| s.arn.as_str());
        let mut r = Response::new("ListSubscriptions", true);
        subscription_list(&mut r, &subs);
        if let Some(next) = next {
            r.leaf("NextToken", &next);
        }
        Ok(r.finish(true, &ctx.request_id))
    }

    fn list_subscriptions_by_topic(
        &self,
        ctx: &CallContext,
        p: &Params<'_>,
    ) -> Result<String, SnsError> {
        let topic = topic_param(p, ctx, "TopicArn")?.to_string();
        let after = decode_token(p.get("NextToken"))?;
        p.finish()?;
        let subs =
            self.store
                .list_subscriptions_by_topic(&topic, after.as_deref(), PAGE_SIZE + 1)?;
        let (subs, next) = page(subs, |s| s.arn.as_str());
        let mut r = Response::new("ListSubscriptionsByTopic", true);
        subscription_list(&mut r, &subs);
        if let Some(next) = next {
            r.leaf("NextToken", &next);
        }
        Ok(r.finish(true, &ctx.request_id))
    }

    fn get_subscription_attributes(
        &self,
        ctx: &CallContext,
        p: &Params<'_>,
    ) -> Result<String, SnsError> {
        let (arn, _) = subscription_param(p, ctx)?;
        p.finish()?;
        let s = self
            .store
            .subscription(&arn)?
            .ok_or_else(subscription_not_found)?;
        let mut attrs = vec![
            ("SubscriptionArn".to_owned(), s.arn.clone()),
            ("TopicArn".to_owned(), s.topic_arn.clone()),
            ("Owner".to_owned(), s.owner.clone()),
            ("Protocol".to_owned(), s.protocol.clone()),
            ("Endpoint".to_owned(), s.endpoint.clone()),
            (
                "ConfirmationWasAuthenticated".to_owned(),
                s.authenticated.to_string(),
            ),
            ("PendingConfirmation".to_owned(), (!s.confirmed).to_string()),
            ("RawMessageDelivery".to_owned(), s.raw.to_string()),
        ];
        if let Some(policy) = &s.delivery_policy {
            attrs.push(("DeliveryPolicy".to_owned(), policy.clone()));
        }
        if Protocol::is_web_name(&s.protocol) {
            let topic_policy = self
                .store
                .topic(&s.topic_arn)?
                .and_then(|t| t.delivery_policy);
            attrs.push((
                "EffectiveDeliveryPolicy".to_owned(),
                effective_subscription_json(s.delivery_policy.as_deref(), topic_policy.as_deref()),
            ));
        }
        let mut r = Response::new("GetSubscriptionAttributes", true);
        r.entries("Attributes", &attrs);
        Ok(r.finish(true, &ctx.request_id))
    }

    fn set_subscription_attributes(
        &self,
        ctx: &CallContext,
        p: &Params<'_>,
    ) -> Result<String, SnsError> {
        let (arn, _) = subscription_param(p, ctx)?;
        let name = p.req("AttributeName")?;
        let value = p.get("AttributeValue").unwrap_or("");
        p.finish()?;
        let s = self
            .store
            .subscription(&arn)?
            .ok_or_else(subscription_not_found)?;
        let protocol = Protocol::parse(&s.protocol)
            .map_err(|_| SnsError::Damaged(format!("the protocol of {arn}")))?;
        let field = subscription_attribute(protocol, name, value)?;
        let raw = field == SubscriptionField::RawMessageDelivery
            && parse_bool("RawMessageDelivery", value)?;
        let policy = Some(value).filter(|v| !v.is_empty());
        self.store
            .set_subscription_attribute(&arn, field, raw, policy)?;
        Ok(Response::new("SetSubscriptionAttributes", false).finish(false, &ctx.request_id))
    }

    fn publish(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        if p.get("PhoneNumber").is_some() {
            return Err(invalid(
                "PhoneNumber: SMS is not supported; publish to a topic",
            ));
        }
        for fifo in ["MessageGroupId", "MessageDeduplicationId"] {
            if p.get(fifo).is_some() {
                return Err(invalid(format!(
                    "{fifo}: applies to FIFO topics, which are not supported"
                )));
            }
        }
        let topic = match (p.get("TopicArn"), p.get("TargetArn")) {
            (Some(_), Some(_)) => {
                return Err(invalid("TopicArn and TargetArn: give one, not both"))
            }
            (Some(_), None) => topic_param(p, ctx, "TopicArn")?,
            (None, Some(target)) => {
                let arn = TopicArn::parse(target, "TargetArn").map_err(|_| {
                    invalid("TargetArn: only topic ARNs are supported (no platform endpoints)")
                })?;
                same_region(&arn, ctx, "TargetArn")?;
                arn
            }
            (None, None) => return Err(invalid("TopicArn: missing required parameter")),
        };
        let message = p.req("Message")?;
        if message.is_empty() {
            return Err(invalid("Message: empty message"));
        }
        let subject = p.get("Subject");
        if let Some(s) = subject {
            validate_subject(s)?;
        }
        let structure_json = match p.get("MessageStructure") {
            None => false,
            Some("json") => {
                check_structured(message)?;
                true
            }
            Some(other) => {
                return Err(invalid(format!(
                    "MessageStructure: `{}` is not json",
                    shown(other)
                )))
            }
        };
        let attributes = p.message_attributes()?;
        p.finish()?;
        let attributes = validate_message_attributes(attributes)?;
        let size = message.len()
            + subject.map_or(0, str::len)
            + attributes.iter().map(|a| a.size()).sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return Err(invalid(format!(
                "Message too long: the message and its attributes must be at most \
                 {MAX_MESSAGE_BYTES} bytes"
            )));
        }
        let id = self.store.publish(
            &topic.to_string(),
            &NewMessage {
                subject: subject.map(str::to_owned),
                body: message.to_owned(),
                structure_json,
                attributes,
                size,
            },
            now_ms(),
        )?;
        self.wake.notify_one();
        let mut r = Response::new("Publish", true);
        r.leaf("MessageId", &id);
        Ok(r.finish(true, &ctx.request_id))
    }

    fn tag_resource(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let arn = topic_param(p, ctx, "ResourceArn")?.to_string();
        let tags = p.tag_list("Tags")?;
        if tags.is_empty() {
            return Err(invalid("Tags: missing required parameter"));
        }
        validate_tags(&tags)?;
        p.finish()?;
        self.store.tag(&arn, &tags)?;
        let r = Response::new("TagResource", true);
        Ok(r.finish(true, &ctx.request_id))
    }

    fn untag_resource(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let arn = topic_param(p, ctx, "ResourceArn")?.to_string();
        let keys = p.string_list("TagKeys");
        if keys.is_empty() {
            return Err(invalid("TagKeys: missing required parameter"));
        }
        if let Some(k) = keys
            .iter()
            .find(|k| !(1..=128).contains(&k.chars().count()))
        {
            return Err(invalid(format!(
                "TagKeys: `{}` is not 1-128 characters long",
                shown(k)
            )));
        }
        p.finish()?;
        self.store.untag(&arn, &keys)?;
        let r = Response::new("UntagResource", true);
        Ok(r.finish(true, &ctx.request_id))
    }

    fn list_tags(&self, ctx: &CallContext, p: &Params<'_>) -> Result<String, SnsError> {
        let arn = topic_param(p, ctx, "ResourceArn")?.to_string();
        p.finish()?;
        let tags = self.store.tags(&arn)?;
        let mut r = Response::new("ListTagsForResource", true);
        r.open("Tags");
        for (k, v) in &tags {
            r.open("member");
            r.leaf("Key", k);
            r.leaf("Value", v);
            r.close("member");
        }
        r.close("Tags");
        Ok(r.finish(true, &ctx.request_id))
    }
}

/// `ConfirmSubscriptionResponse` naming `arn`.
pub(crate) fn confirm_response(arn: &str, request_id: &str) -> String {
    let mut r = Response::new("ConfirmSubscription", true);
    r.leaf("SubscriptionArn", arn);
    r.finish(true, request_id)
}

/// `UnsubscribeResponse`.
pub(crate) fn unsubscribe_response(request_id: &str) -> String {
    Response::new("Unsubscribe", false).finish(false, request_id)
}

/// Checks a `MessageStructure=json` message: a JSON object with a string `default`.
fn check_structured(message: &str) -> Result<(), SnsError> {
    let parsed: serde_json::Value = serde_json::from_str(message)
        .map_err(|_| invalid("Message Structure - JSON message body failed to parse"))?;
    let obj = parsed
        .as_object()
        .ok_or_else(|| invalid("Message Structure - JSON message body must be an object"))?;
    if !obj.get("default").is_some_and(serde_json::Value::is_string) {
        return Err(invalid(
            "Message Structure - No default entry in JSON message body",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn maps_lists_and_attributes_decode() {
        let raw = params(&[
            ("Attributes.entry.2.key", "b"),
            ("Attributes.entry.2.value", "2"),
            ("Attributes.entry.1.key", "a"),
            ("Attributes.entry.1.value", ""),
            ("Tags.member.1.Key", "k"),
            ("Tags.member.1.Value", "v"),
            ("TagKeys.member.10", "y"),
            ("TagKeys.member.2", "x"),
            ("MessageAttributes.entry.1.Name", "n"),
            ("MessageAttributes.entry.1.Value.DataType", "String"),
            ("MessageAttributes.entry.1.Value.StringValue", "s"),
        ]);
        let p = Params::new(&raw).expect("params");
        assert_eq!(
            p.map("Attributes").expect("map"),
            vec![("a".into(), String::new()), ("b".into(), "2".into())]
        );
        assert_eq!(
            p.tag_list("Tags").expect("tags"),
            vec![("k".into(), "v".into())]
        );
        assert_eq!(
            p.string_list("TagKeys"),
            vec!["x".to_owned(), "y".to_owned()]
        );
        let attrs = p.message_attributes().expect("attrs");
        assert_eq!(attrs[0].string_value.as_deref(), Some("s"));
        p.finish().expect("all consumed");
    }

    #[test]
    fn leftovers_are_refused_by_name() {
        for extra in [
            "Bogus",
            "Attributes.entry.1.Key",
            "Attributes.entry.01.key",
            "Attributes.entry.x.key",
            "Tags.member.1.Extra",
            "TagKeys.member.0",
        ] {
            let raw = params(&[(extra, "v")]);
            let p = Params::new(&raw).expect("params");
            let _ = p.map("Attributes");
            let _ = p.tag_list("Tags");
            let _ = p.string_list("TagKeys");
            let e = p.finish().expect_err(extra);
            assert!(e.to_string().contains(extra), "{e}");
        }
    }

    #[test]
    fn incomplete_entries_and_duplicates_are_refused() {
        let raw = params(&[("Attributes.entry.1.key", "a")]);
        assert!(Params::new(&raw).expect("p").map("Attributes").is_err());
        let raw = params(&[
            ("Attributes.entry.1.key", "a"),
            ("Attributes.entry.1.value", "1"),
            ("Attributes.entry.2.key", "a"),
            ("Attributes.entry.2.value", "2"),
        ]);
        assert!(Params::new(&raw).expect("p").map("Attributes").is_err());
        let raw = params(&[("A", "1"), ("A", "2")]);
        assert!(Params::new(&raw).is_err());
        let raw = params(&[("DisplayName", "\u{1}")]);
        assert!(Params::new(&raw).is_err());
        let raw = params(&[("Message", "\u{1}")]);
        assert!(Params::new(&raw).is_ok());
        let raw = params(&[("Version", "2012-01-01")]);
        assert!(Params::new(&raw).is_err());
    }

    #[test]
    fn next_tokens_round_trip() {
        let t = encode_token("arn:aws:sns:us-east-1:123456789012:t");
        assert_eq!(
            decode_token(Some(&t)).expect("valid").as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:t")
        );
        assert!(decode_token(Some("!!")).is_err());
        assert!(decode_token(Some("")).is_err());
    }

    fn ctx() -> CallContext {
        CallContext {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn authorization_targets() {
        let topic = "arn:aws:sns:us-east-1:123456789012:t";
        let sub = format!("{topic}:0b4b5e2c-1f0e-4d3a-9c1e-2f4a6b8c0d1e");
        type Case<'a> = (&'a str, Vec<(String, String)>, &'a str, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (
                "CreateTopic",
                params(&[("Name", "t")]),
                "sns:CreateTopic",
                topic,
            ),
            (
                "Publish",
                params(&[("TopicArn", topic)]),
                "sns:Publish",
                topic,
            ),
            (
                "Publish",
                params(&[("TargetArn", topic)]),
                "sns:Publish",
                topic,
            ),
            (
                "Subscribe",
                params(&[("TopicArn", topic)]),
                "sns:Subscribe",
                topic,
            ),
            (
                "Unsubscribe",
                params(&[("SubscriptionArn", &sub)]),
                "sns:Unsubscribe",
                topic,
            ),
            (
                "GetSubscriptionAttributes",
                params(&[("SubscriptionArn", &sub)]),
                "sns:GetSubscriptionAttributes",
                topic,
            ),
            ("ListTopics", vec![], "sns:ListTopics", "*"),
            ("ListSubscriptions", vec![], "sns:ListSubscriptions", "*"),
            (
                "TagResource",
                params(&[("ResourceArn", topic)]),
                "sns:TagResource",
                topic,
            ),
        ];
        for (action, p, iam, resource) in cases {
            let a = authorization(action, &p, &ctx()).expect(action);
            assert_eq!(
                (a.iam_action, a.resource.as_str()),
                (iam, resource),
                "{action}"
            );
        }
        assert_eq!(
            authorization("PublishBatch", &[], &ctx()).map_err(|e| e.code()),
            Err("InvalidAction")
        );
        assert!(authorization("Publish", &[], &ctx()).is_err());
        assert!(authorization("CreateTopic", &params(&[("Name", "x.fifo")]), &ctx()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_params_never_panic(
            pairs in proptest::collection::vec(
                (
                    prop_oneof![
                        "[A-Za-z.0-9]{0,30}",
                        "(Attributes|Tags|TagKeys|MessageAttributes)\\.(entry|member)\\.[0-9]{1,3}\\.(key|value|Key|Value|Name|Value\\.DataType|Value\\.StringValue|Value\\.BinaryValue)",
                    ],
                    ".{0,20}",
                ),
                0..12,
            )
        ) {
            let p = pairs;
            if let Ok(params) = Params::new(&p) {
                let _ = params.map("Attributes");
                let _ = params.tag_list("Tags");
                let _ = params.string_list("TagKeys");
                let _ = params.message_attributes().map(validate_message_attributes);
                let _ = params.flag("ReturnSubscriptionArn");
                let _ = decode_token(params.get("NextToken"));
                let _ = params.finish();
            }
            for action in SUPPORTED_ACTIONS {
                let _ = authorization(action, &p, &ctx());
            }
        }
    }
}
