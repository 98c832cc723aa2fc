//! A cluster's alarm notifications on the bus: the node that notices an alarm's change of
//! state seals it under the master key and queues it on the bus's work queue
//! (`warden_bus::alarms`); whichever node takes it opens it and runs the alarm's actions.
//!
//! Who may cause what: running an alarm's actions publishes to SNS topics and invokes
//! functions of the account, so only a Warden node of this cluster may ask for it. A
//! message anyone else publishes on the notification subjects does not open under the
//! cluster's master key (AES-GCM, bound to [`SEAL_AAD`]) and is refused and terminated
//! unread; one that opens but names another account or region, another subject, or a
//! format this build does not read is refused too.

use std::sync::Arc;

use warden_api::alarms::{Notification, NOTIFICATION_FORMAT};
use warden_bus::alarms::{Consuming, Handler, Notice, Outcome};

/// What the master key's seal of a notification is bound to.
const SEAL_AAD: &[u8] = b"warden alarm notification v1";

/// Queues notifications on the bus, sealed.
struct BusSink {
    notices: warden_bus::AlarmNotices,
    master: warden_kms::MasterKey,
}

impl warden_api::alarms::AlarmSink for BusSink {
    fn send(
        &self,
        notification: Notification,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> {
        let notices = self.notices.clone();
        let sealed = seal(&self.master, &notification);
        Box::pin(async move {
            let sealed = sealed?;
            notices
                .publish(
                    &notification.account,
                    notification.alarm.state.as_str(),
                    &notification.id,
                    sealed,
                )
                .await
                .map_err(|e| e.to_string())
        })
    }
}

fn seal(master: &warden_kms::MasterKey, notification: &Notification) -> Result<Vec<u8>, String> {
    let plain = serde_json::to_vec(notification).map_err(|e| e.to_string())?;
    master.seal(SEAL_AAD, &plain).map_err(|e| e.to_string())
}

/// Reads a notice as one of this cluster's notifications for `account` in `region`; why
/// it is not one otherwise.
fn read(
    master: &warden_kms::MasterKey,
    account: &str,
    region: &str,
    notice: &Notice,
) -> Result<Notification, String> {
    let plain = master
        .open(SEAL_AAD, &notice.payload)
        .ok_or("it does not open under this cluster's master key")?;
    let notification: Notification =
        serde_json::from_slice(&plain).map_err(|e| format!("it is not a notification: {e}"))?;
    if notification.format != NOTIFICATION_FORMAT {
        return Err(format!(
            "its format is {}, this build reads {NOTIFICATION_FORMAT}",
            notification.format
        ));
    }
    if notification.account != account || notification.region != region {
        return Err(format!(
            "it names account {} in {}, this node serves {account} in {region}",
            notification.account, notification.region
        ));
    }
    let subject = format!(
        "warden.alarms.{account}.{}",
        notification.alarm.state.as_str()
    );
    if notice.subject != subject {
        return Err(format!(
            "it was published on {}, not {subject}",
            notice.subject
        ));
    }
    Ok(notification)
}

/// Opens the cluster's alarm notifications on `bus`, makes `state` queue its alarms'
/// changes there, and starts running the actions of the changes queued by any node; they
/// run until the returned guard is dropped.
pub(crate) async fn join(
    bus: &warden_bus::Bus,
    state: &Arc<warden_api::ApiState>,
    master: warden_kms::MasterKey,
) -> anyhow::Result<Consuming> {
    use anyhow::Context;
    let notices = bus
        .alarm_notices(warden_bus::AlarmOptions::default())
        .await
        .context("cannot open the alarm notifications on the bus")?;
    let sink = BusSink {
        notices: notices.clone(),
        master: master.clone(),
    };
    if state.alarm_sink.set(Arc::new(sink)).is_err() {
        anyhow::bail!("the alarm notifications were joined twice");
    }
    let state = Arc::clone(state);
    let handler: Handler = Arc::new(move |notice: Notice| {
        let state = Arc::clone(&state);
        let master = master.clone();
        Box::pin(async move {
            match read(
                &master,
                state.account.as_str(),
                state.region.as_str(),
                &notice,
            ) {
                Ok(notification) => {
                    warden_api::alarms::act(&state, &notification).await;
                    Outcome::Done
                }
                Err(why) => Outcome::Refused(why),
            }
        })
    });
    Ok(notices.consume(handler))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_metrics::alarms::{Alarm, AlarmState, Comparison, MissingData};

    fn notification() -> Notification {
        Notification {
            format: NOTIFICATION_FORMAT,
            id: "5f0c2a52-9a43-4d0e-8a53-0d2f4a1b7c11".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            alarm: Alarm {
                name: "failures".into(),
                description: None,
                namespace: "Shop".into(),
                metric: "Failures".into(),
                dims: String::new(),
                statistic: "Sum".into(),
                period: 60,
                evaluation_periods: 1,
                datapoints_to_alarm: 1,
                threshold: 0.0,
                comparison: Comparison::GreaterThanThreshold,
                missing: MissingData::Missing,
                actions_enabled: true,
                alarm_actions: vec!["arn:aws:sns:us-east-1:123456789012:pager".into()],
                ok_actions: Vec::new(),
                insufficient_data_actions: Vec::new(),
                state: AlarmState::Alarm,
                state_reason: "Threshold Crossed".into(),
                state_updated_ms: 1_700_000_000_000,
                updated_ms: 1_699_999_000_000,
                metrics: None,
            },
            previous: AlarmState::Ok,
            previous_reason: "Unchecked".into(),
            previous_ms: 1_699_999_000_000,
        }
    }

    fn notice(payload: Vec<u8>) -> Notice {
        Notice {
            subject: "warden.alarms.123456789012.ALARM".into(),
            payload,
        }
    }

    #[test]
    fn a_sealed_notification_reads_back_as_sent() {
        let master = warden_kms::MasterKey::generate().unwrap();
        let n = notification();
        let sealed = seal(&master, &n).unwrap();
        assert!(
            !sealed.windows(8).any(|w| w == b"failures"),
            "sealed, not plain"
        );
        let back = read(&master, "123456789012", "us-east-1", &notice(sealed)).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn notifications_not_of_this_cluster_are_refused_with_a_reason() {
        let master = warden_kms::MasterKey::generate().unwrap();
        let read = |payload: Vec<u8>, subject: &str| {
            let mut notice = notice(payload);
            notice.subject = subject.to_owned();
            read(&master, "123456789012", "us-east-1", &notice).unwrap_err()
        };
        let subject = "warden.alarms.123456789012.ALARM";
        // Forged in plain text, or sealed under another master key.
        let plain = serde_json::to_vec(&notification()).unwrap();
        assert!(read(plain, subject).contains("master key"));
        let other = warden_kms::MasterKey::generate().unwrap();
        assert!(read(seal(&other, &notification()).unwrap(), subject).contains("master key"));
        // Sealed, but not a notification, another format, account or subject.
        let junk = master.seal(SEAL_AAD, b"{}").unwrap();
        assert!(read(junk, subject).contains("not a notification"));
        let mut n = notification();
        n.format = NOTIFICATION_FORMAT + 1;
        assert!(read(seal(&master, &n).unwrap(), subject).contains("format"));
        let mut n = notification();
        n.account = "210987654321".into();
        assert!(read(seal(&master, &n).unwrap(), subject).contains("account"));
        let sealed = seal(&master, &notification()).unwrap();
        assert!(read(sealed, "warden.alarms.123456789012.OK").contains("published on"));
        // The seal is bound to its purpose: another sealed value of the cluster's does not
        // pass for a notification.
        let plain = serde_json::to_vec(&notification()).unwrap();
        let elsewhere = master.seal(b"warden sns signing key v1", &plain).unwrap();
        assert!(read(elsewhere, subject).contains("master key"));
    }
}
