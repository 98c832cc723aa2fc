//! Delivery retries: the schedule ([`RetryPolicy`], SNS's four phases) and the
//! `DeliveryPolicy` JSON of topics and http subscriptions that overrides it.
//!
//! Honoured: `healthyRetryPolicy` (subscription) and `http.defaultHealthyRetryPolicy`
//! (topic) with all their fields, `requestPolicy.headerContentType` /
//! `http.defaultRequestPolicy.headerContentType`, and `http.disableSubscriptionOverrides`.
//! Refused by name: throttle policies (`throttlePolicy`, `defaultThrottlePolicy`), the
//! sickly retry policy, and every key SNS does not define.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{invalid, SnsError};

/// The shape of the delays between the minimum and the maximum in the backoff phase.
///
/// SNS names these functions without publishing their formulas; this crate's are, for the
/// `i`-th of `n` backoff retries (`f = i / n`): linear `min + (max - min)·f`; arithmetic
/// `min + (max - min)·i(i+1)/(n(n+1))`; geometric `min·(max/min)^f`; exponential
/// `min + (max - min)·(2^i - 1)/(2^n - 1)`. Each reaches `max` at the last backoff retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Evenly spaced steps.
    Linear,
    /// Steps growing by a constant amount.
    Arithmetic,
    /// Steps growing by a constant factor.
    Geometric,
    /// Steps doubling.
    Exponential,
}

impl Backoff {
    fn parse(name: &str) -> Option<Backoff> {
        match name {
            "linear" => Some(Backoff::Linear),
            "arithmetic" => Some(Backoff::Arithmetic),
            "geometric" => Some(Backoff::Geometric),
            "exponential" => Some(Backoff::Exponential),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Backoff::Linear => "linear",
            Backoff::Arithmetic => "arithmetic",
            Backoff::Geometric => "geometric",
            Backoff::Exponential => "exponential",
        }
    }
}

/// How often and how far apart failed deliveries are retried, in SNS's four phases: the
/// no-delay retries, the retries at `min_delay`, the backoff retries (from `min_delay` up
/// to `max_delay` by `backoff`), and the retries at `max_delay`. After the last retry fails
/// the delivery goes to the dead-letter table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, over all phases.
    pub num_retries: u32,
    /// Retries made at once, first.
    pub num_no_delay_retries: u32,
    /// Retries then made `min_delay` apart.
    pub num_min_delay_retries: u32,
    /// Retries made `max_delay` apart, last.
    pub num_max_delay_retries: u32,
    /// The smallest delay between two attempts (after the no-delay phase).
    pub min_delay: Duration,
    /// The largest delay between two attempts.
    pub max_delay: Duration,
    /// The curve of the backoff phase.
    pub backoff: Backoff,
}

/// At most this many retries in a `DeliveryPolicy` (SNS's limit).
pub const MAX_POLICY_RETRIES: u32 = 100;
/// At most this long, in seconds, for one delay or for all delays of a `DeliveryPolicy`
/// together (SNS's limit).
pub const MAX_POLICY_SECONDS: u64 = 3600;

impl RetryPolicy {
    /// SNS's default for http/https subscriptions: three retries, 20 seconds apart.
    pub const SNS_HTTP_DEFAULT: RetryPolicy = RetryPolicy {
        num_retries: 3,
        num_no_delay_retries: 0,
        num_min_delay_retries: 0,
        num_max_delay_retries: 0,
        min_delay: Duration::from_secs(20),
        max_delay: Duration::from_secs(20),
        backoff: Backoff::Linear,
    };

    /// The schedule for Lambda subscriptions (which take no `DeliveryPolicy`): SNS's policy
    /// for AWS-managed endpoints (3 immediate retries, 2 one second apart, 10 backing off
    /// exponentially from 1 to 20 seconds, then retries 20 seconds apart), with its
    /// 100,000 post-backoff retries cut to 35 so that a delivery is given up after 50
    /// retries, about 13 minutes.
    pub const LAMBDA_DEFAULT: RetryPolicy = RetryPolicy {
        num_retries: 50,
        num_no_delay_retries: 3,
        num_min_delay_retries: 2,
        num_max_delay_retries: 35,
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(20),
        backoff: Backoff::Exponential,
    };

    /// The retries of the backoff phase.
    fn num_backoff_retries(&self) -> u32 {
        self.num_retries
            .saturating_sub(self.num_no_delay_retries)
            .saturating_sub(self.num_min_delay_retries)
            .saturating_sub(self.num_max_delay_retries)
    }

    /// The delay before retry number `retry` (1 is the first retry, after the first
    /// attempt failed), or `None` once the retries are used up.
    pub fn delay_before_retry(&self, retry: u32) -> Option<Duration> {
        if retry == 0 || retry > self.num_retries {
            return None;
        }
        let no_delay = self.num_no_delay_retries;
        let min_phase = no_delay.saturating_add(self.num_min_delay_retries);
        let n = self.num_backoff_retries();
        let backoff_phase = min_phase.saturating_add(n);
        if retry <= no_delay {
            return Some(Duration::ZERO);
        }
        if retry <= min_phase {
            return Some(self.min_delay);
        }
        if retry <= backoff_phase {
            return Some(self.backoff_delay(retry - min_phase, n));
        }
        Some(self.max_delay)
    }

    fn backoff_delay(&self, i: u32, n: u32) -> Duration {
        let min = self.min_delay.as_secs_f64();
        let max = self.max_delay.as_secs_f64().max(min);
        if n == 0 || max <= min {
            return self.min_delay;
        }
        let (i, n) = (f64::from(i), f64::from(n));
        let seconds = match self.backoff {
            Backoff::Linear => min + (max - min) * i / n,
            Backoff::Arithmetic => min + (max - min) * (i * (i + 1.0)) / (n * (n + 1.0)),
            Backoff::Geometric if min > 0.0 => min * (max / min).powf(i / n),
            Backoff::Geometric => max * i / n,
            Backoff::Exponential => min + (max - min) * (2f64.powf(i) - 1.0) / (2f64.powf(n) - 1.0),
        };
        Duration::from_secs_f64(seconds.clamp(min, max))
    }

    /// The sum of every delay of the schedule.
    pub fn total_delay(&self) -> Duration {
        (1..=self.num_retries)
            .filter_map(|r| self.delay_before_retry(r))
            .sum()
    }

    /// The policy as SNS's `healthyRetryPolicy` JSON object (delays in whole seconds).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "minDelayTarget": self.min_delay.as_secs(),
            "maxDelayTarget": self.max_delay.as_secs(),
            "numRetries": self.num_retries,
            "numMaxDelayRetries": self.num_max_delay_retries,
            "numNoDelayRetries": self.num_no_delay_retries,
            "numMinDelayRetries": self.num_min_delay_retries,
            "backoffFunction": self.backoff.as_str(),
        })
    }

    /// Parses a `healthyRetryPolicy` object; fields it lacks come from SNS's http default.
    fn from_json(value: &Value, what: &str) -> Result<RetryPolicy, SnsError> {
        let obj = value
            .as_object()
            .ok_or_else(|| invalid(format!("DeliveryPolicy: {what} must be an object")))?;
        let mut p = RetryPolicy::SNS_HTTP_DEFAULT;
        let mut min_set = false;
        for (key, v) in obj {
            let number = |max: u64| -> Result<u64, SnsError> {
                v.as_u64().filter(|n| *n <= max).ok_or_else(|| {
                    invalid(format!(
                        "DeliveryPolicy: {what}.{key} must be a whole number from 0 to {max}"
                    ))
                })
            };
            let count = |max: u64| -> Result<u32, SnsError> {
                number(max).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            };
            match key.as_str() {
                "minDelayTarget" => {
                    p.min_delay = Duration::from_secs(number(MAX_POLICY_SECONDS)?);
                    min_set = true;
                }
                "maxDelayTarget" => p.max_delay = Duration::from_secs(number(MAX_POLICY_SECONDS)?),
                "numRetries" => p.num_retries = count(u64::from(MAX_POLICY_RETRIES))?,
                "numNoDelayRetries" => {
                    p.num_no_delay_retries = count(u64::from(MAX_POLICY_RETRIES))?
                }
                "numMinDelayRetries" => {
                    p.num_min_delay_retries = count(u64::from(MAX_POLICY_RETRIES))?
                }
                "numMaxDelayRetries" => {
                    p.num_max_delay_retries = count(u64::from(MAX_POLICY_RETRIES))?
                }
                "backoffFunction" => {
                    p.backoff = v.as_str().and_then(Backoff::parse).ok_or_else(|| {
                        invalid(format!(
                            "DeliveryPolicy: {what}.backoffFunction must be linear, \
                             arithmetic, geometric or exponential"
                        ))
                    })?
                }
                other => {
                    return Err(invalid(format!(
                        "DeliveryPolicy: {what}.{other} is not a retry policy field"
                    )))
                }
            }
        }
        if !min_set && p.max_delay < p.min_delay {
            p.min_delay = p.max_delay;
        }
        if p.min_delay.is_zero() {
            return Err(invalid(format!(
                "DeliveryPolicy: {what}.minDelayTarget must be at least 1"
            )));
        }
        if p.min_delay > p.max_delay {
            return Err(invalid(format!(
                "DeliveryPolicy: {what}.minDelayTarget exceeds maxDelayTarget"
            )));
        }
        let phases = u64::from(p.num_no_delay_retries)
            + u64::from(p.num_min_delay_retries)
            + u64::from(p.num_max_delay_retries);
        if phases > u64::from(p.num_retries) {
            return Err(invalid(format!(
                "DeliveryPolicy: {what}: numNoDelayRetries, numMinDelayRetries and \
                 numMaxDelayRetries add up to more than numRetries"
            )));
        }
        if p.total_delay() > Duration::from_secs(MAX_POLICY_SECONDS) {
            return Err(invalid(format!(
                "DeliveryPolicy: {what}: the retries would take more than {MAX_POLICY_SECONDS} seconds"
            )));
        }
        Ok(p)
    }
}

/// The content type SNS posts with unless a policy says otherwise.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

/// A parsed `DeliveryPolicy` of a subscription or (under `http`) of a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// The retry schedule, when set.
    pub retry: Option<RetryPolicy>,
    /// The `Content-Type` of POSTs, when set.
    pub content_type: Option<String>,
    /// Topic only: subscriptions' own policies are ignored.
    pub disable_subscription_overrides: bool,
}

fn parse_object(text: &str) -> Result<Map<String, Value>, SnsError> {
    if text.len() > crate::MAX_POLICY_BYTES {
        return Err(invalid(format!(
            "DeliveryPolicy: longer than {} bytes",
            crate::MAX_POLICY_BYTES
        )));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(invalid("DeliveryPolicy: not a JSON object")),
    }
}

fn content_type(value: &Value, what: &str) -> Result<String, SnsError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(format!("DeliveryPolicy: {what} must be an object")))?;
    let mut out = None;
    for (key, v) in obj {
        match key.as_str() {
            "headerContentType" => {
                let ct = v.as_str().unwrap_or_default();
                let ok = (3..=256).contains(&ct.len())
                    && ct.bytes().all(|b| (0x20..=0x7e).contains(&b))
                    && ct.split(';').next().is_some_and(|m| {
                        m.trim().split_once('/').is_some_and(|(t, s)| {
                            !t.is_empty() && !s.is_empty() && !t.contains(' ') && !s.contains(' ')
                        })
                    });
                if !ok {
                    return Err(invalid(format!(
                        "DeliveryPolicy: {what}.headerContentType is not a media type"
                    )));
                }
                out = Some(ct.to_owned());
            }
            other => {
                return Err(invalid(format!(
                    "DeliveryPolicy: {what}.{other} is not supported"
                )))
            }
        }
    }
    out.ok_or_else(|| invalid(format!("DeliveryPolicy: {what} has no headerContentType")))
}

fn refused(key: &str) -> SnsError {
    invalid(format!(
        "DeliveryPolicy: {key} is not supported (supported: the healthy retry policy and the \
         request policy's headerContentType)"
    ))
}

/// Parses a subscription's `DeliveryPolicy`.
pub fn parse_subscription_policy(text: &str) -> Result<DeliveryPolicy, SnsError> {
    let mut out = DeliveryPolicy::default();
    for (key, value) in parse_object(text)? {
        match key.as_str() {
            "healthyRetryPolicy" => {
                out.retry = Some(RetryPolicy::from_json(&value, "healthyRetryPolicy")?)
            }
            "requestPolicy" => out.content_type = Some(content_type(&value, "requestPolicy")?),
            "throttlePolicy" | "sicklyRetryPolicy" | "guaranteed" => {
                if !value.is_null() {
                    return Err(refused(&key));
                }
            }
            other => return Err(refused(other)),
        }
    }
    Ok(out)
}

/// Parses a topic's `DeliveryPolicy` (`{"http": {...}}`).
pub fn parse_topic_policy(text: &str) -> Result<DeliveryPolicy, SnsError> {
    let mut out = DeliveryPolicy::default();
    for (key, value) in parse_object(text)? {
        if key != "http" {
            return Err(invalid(format!(
                "DeliveryPolicy: {key} is not supported (a topic's policy has only `http`)"
            )));
        }
        let http = value
            .as_object()
            .ok_or_else(|| invalid("DeliveryPolicy: http must be an object"))?;
        for (k, v) in http {
            match k.as_str() {
                "defaultHealthyRetryPolicy" => {
                    out.retry = Some(RetryPolicy::from_json(v, "defaultHealthyRetryPolicy")?)
                }
                "defaultRequestPolicy" => {
                    out.content_type = Some(content_type(v, "defaultRequestPolicy")?)
                }
                "disableSubscriptionOverrides" => {
                    out.disable_subscription_overrides = v.as_bool().ok_or_else(|| {
                        invalid(
                            "DeliveryPolicy: disableSubscriptionOverrides must be true or false",
                        )
                    })?
                }
                "defaultThrottlePolicy" | "defaultSicklyRetryPolicy" => {
                    if !v.is_null() {
                        return Err(refused(k));
                    }
                }
                other => return Err(refused(other)),
            }
        }
    }
    Ok(out)
}

/// The schedule and content type a delivery to an http subscription uses: the
/// subscription's policy, else the topic's, else `default` (the topic's wins throughout when
/// it disables subscription overrides). A stored policy that no longer parses counts as
/// unset.
pub fn effective_http(
    subscription: Option<&str>,
    topic: Option<&str>,
    default: RetryPolicy,
) -> (RetryPolicy, String) {
    let topic = topic
        .and_then(|t| parse_topic_policy(t).ok())
        .unwrap_or_default();
    let sub = if topic.disable_subscription_overrides {
        DeliveryPolicy::default()
    } else {
        subscription
            .and_then(|s| parse_subscription_policy(s).ok())
            .unwrap_or_default()
    };
    let retry = sub.retry.or(topic.retry).unwrap_or(default);
    let content_type = sub
        .content_type
        .or(topic.content_type)
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
    (retry, content_type)
}

/// A subscription's `EffectiveDeliveryPolicy` attribute.
pub fn effective_subscription_json(subscription: Option<&str>, topic: Option<&str>) -> String {
    let (retry, content_type) = effective_http(subscription, topic, RetryPolicy::SNS_HTTP_DEFAULT);
    serde_json::json!({
        "healthyRetryPolicy": retry.to_json(),
        "requestPolicy": {"headerContentType": content_type},
    })
    .to_string()
}

/// A topic's `EffectiveDeliveryPolicy` attribute.
pub fn effective_topic_json(topic: Option<&str>) -> String {
    let parsed = topic
        .and_then(|t| parse_topic_policy(t).ok())
        .unwrap_or_default();
    serde_json::json!({
        "http": {
            "defaultHealthyRetryPolicy": parsed.retry.unwrap_or(RetryPolicy::SNS_HTTP_DEFAULT).to_json(),
            "disableSubscriptionOverrides": parsed.disable_subscription_overrides,
            "defaultRequestPolicy": {
                "headerContentType": parsed.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE)
            },
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn sns_http_default_is_three_retries_twenty_seconds_apart() {
        let p = RetryPolicy::SNS_HTTP_DEFAULT;
        assert_eq!(p.delay_before_retry(1), secs(20));
        assert_eq!(p.delay_before_retry(3), secs(20));
        assert_eq!(p.delay_before_retry(4), None);
        assert_eq!(p.delay_before_retry(0), None);
    }

    #[test]
    fn phases_follow_each_other() {
        let p = RetryPolicy {
            num_retries: 10,
            num_no_delay_retries: 2,
            num_min_delay_retries: 2,
            num_max_delay_retries: 2,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(16),
            backoff: Backoff::Exponential,
        };
        let delays: Vec<_> = (1..=11).map(|r| p.delay_before_retry(r)).collect();
        assert_eq!(delays[0], Some(Duration::ZERO));
        assert_eq!(delays[1], Some(Duration::ZERO));
        assert_eq!(delays[2], secs(1));
        assert_eq!(delays[3], secs(1));
        assert_eq!(delays[4], secs(2));
        assert_eq!(delays[7], secs(16));
        assert_eq!(delays[8], secs(16));
        assert_eq!(delays[9], secs(16));
        assert_eq!(delays[10], None);
        for w in delays[2..10].windows(2) {
            assert!(w[0] <= w[1], "{delays:?}");
        }
    }

    #[test]
    fn every_backoff_climbs_from_min_to_max() {
        for backoff in [
            Backoff::Linear,
            Backoff::Arithmetic,
            Backoff::Geometric,
            Backoff::Exponential,
        ] {
            let p = RetryPolicy {
                num_retries: 5,
                num_no_delay_retries: 0,
                num_min_delay_retries: 0,
                num_max_delay_retries: 0,
                min_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(40),
                backoff,
            };
            let d: Vec<_> = (1..=5).filter_map(|r| p.delay_before_retry(r)).collect();
            assert_eq!(d.len(), 5);
            assert_eq!(d[4], Duration::from_secs(40), "{backoff:?}");
            assert!(
                d.iter().all(|x| *x >= Duration::from_secs(2)),
                "{backoff:?}"
            );
            assert!(d.windows(2).all(|w| w[0] <= w[1]), "{backoff:?} {d:?}");
        }
    }

    #[test]
    fn lambda_default_is_bounded() {
        let p = RetryPolicy::LAMBDA_DEFAULT;
        assert_eq!(p.delay_before_retry(1), Some(Duration::ZERO));
        assert_eq!(p.delay_before_retry(4), secs(1));
        assert_eq!(p.delay_before_retry(50), secs(20));
        assert_eq!(p.delay_before_retry(51), None);
        assert!(p.total_delay() < Duration::from_secs(15 * 60));
    }

    #[test]
    fn subscription_policy_honoured() {
        let p = parse_subscription_policy(
            r#"{"healthyRetryPolicy":{"minDelayTarget":5,"maxDelayTarget":10,"numRetries":6,
                "backoffFunction":"exponential"},"requestPolicy":{"headerContentType":"application/json"}}"#,
        )
        .expect("valid");
        let retry = p.retry.expect("retry");
        assert_eq!(retry.num_retries, 6);
        assert_eq!(retry.min_delay, Duration::from_secs(5));
        assert_eq!(retry.backoff, Backoff::Exponential);
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        let only_max = parse_subscription_policy(r#"{"healthyRetryPolicy":{"maxDelayTarget":5}}"#)
            .expect("valid");
        assert_eq!(
            only_max.retry.map(|r| r.min_delay),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn subscription_policy_refusals_name_the_key() {
        for (text, named) in [
            (
                r#"{"throttlePolicy":{"maxReceivesPerSecond":1}}"#,
                "throttlePolicy",
            ),
            (r#"{"sicklyRetryPolicy":{}}"#, "sicklyRetryPolicy"),
            (r#"{"surprise":1}"#, "surprise"),
            (r#"{"healthyRetryPolicy":{"numRetries":101}}"#, "numRetries"),
            (
                r#"{"healthyRetryPolicy":{"minDelayTarget":0}}"#,
                "minDelayTarget",
            ),
            (
                r#"{"healthyRetryPolicy":{"minDelayTarget":30,"maxDelayTarget":10}}"#,
                "minDelayTarget",
            ),
            (
                r#"{"healthyRetryPolicy":{"numRetries":1,"numNoDelayRetries":2}}"#,
                "numNoDelayRetries",
            ),
            (
                r#"{"healthyRetryPolicy":{"backoffFunction":"cubic"}}"#,
                "backoffFunction",
            ),
            (r#"{"healthyRetryPolicy":{"extra":1}}"#, "extra"),
            (
                r#"{"healthyRetryPolicy":{"numRetries":100,"minDelayTarget":60,"maxDelayTarget":60}}"#,
                "3600",
            ),
            (
                r#"{"requestPolicy":{"headerContentType":"nonsense"}}"#,
                "headerContentType",
            ),
            (r#"[1]"#, "JSON object"),
        ] {
            let e = parse_subscription_policy(text).expect_err(text);
            assert!(e.to_string().contains(named), "{text}: {e}");
        }
        assert!(parse_subscription_policy(r#"{"throttlePolicy":null}"#).is_ok());
    }

    #[test]
    fn topic_policy_and_precedence() {
        let topic = r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":7,"minDelayTarget":1,"maxDelayTarget":2},
            "disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/xml"}}}"#;
        let sub =
            r#"{"healthyRetryPolicy":{"numRetries":2,"minDelayTarget":1,"maxDelayTarget":1}}"#;
        let (retry, ct) = effective_http(Some(sub), Some(topic), RetryPolicy::SNS_HTTP_DEFAULT);
        assert_eq!(retry.num_retries, 2);
        assert_eq!(ct, "text/xml");
        let (retry, _) = effective_http(None, Some(topic), RetryPolicy::SNS_HTTP_DEFAULT);
        assert_eq!(retry.num_retries, 7);
        let locked = topic.replace(
            "\"disableSubscriptionOverrides\":false",
            "\"disableSubscriptionOverrides\":true",
        );
        let (retry, _) = effective_http(Some(sub), Some(&locked), RetryPolicy::SNS_HTTP_DEFAULT);
        assert_eq!(retry.num_retries, 7);
        let (retry, ct) = effective_http(None, None, RetryPolicy::LAMBDA_DEFAULT);
        assert_eq!(retry, RetryPolicy::LAMBDA_DEFAULT);
        assert_eq!(ct, DEFAULT_CONTENT_TYPE);
        assert!(parse_topic_policy(r#"{"sqs":{}}"#).is_err());
        assert!(parse_topic_policy(
            r#"{"http":{"defaultThrottlePolicy":{"maxReceivesPerSecond":1}}}"#
        )
        .is_err());
        let json: Value = serde_json::from_str(&effective_topic_json(Some(topic))).expect("json");
        assert_eq!(json["http"]["defaultHealthyRetryPolicy"]["numRetries"], 7);
    }
}
