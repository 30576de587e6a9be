//! Announcing delivered work on `post_broker`, for the consuming flow
//! ([`super::consume`]): what a delivery is announced as, publishing it,
//! and keeping what cannot be published yet in the instance's retry queue
//! until the broker takes it.

use super::filter;
use super::Instance;
use crate::broker::{BrokerError, Outgoing, Publisher};
use crate::config::Config;
use crate::message::{Format, Message};
use crate::state::retry::{RetryItem, RetryKind, RetryQueue};

/// The announcement on post_exchange, if there is one, of `msg` delivered
/// at `dest` (and, for a rename, of its old name's destination `old_dest`).
pub(super) fn announcement(
    cfg: &Config,
    msg: &Message,
    dest: &str,
    old_dest: Option<&str>,
) -> Option<Outgoing> {
    cfg.post_broker.as_ref()?;
    let mut msg = msg.clone();
    if let Some(base) = &cfg.post_base_url {
        msg.base_url = base.clone();
    }
    msg.rel_path = filter::announced_rel_path(cfg, dest);
    if let (Some(op), Some(old)) = (msg.file_op.as_mut(), old_dest) {
        if op.rename.is_some() {
            op.rename = Some(filter::announced_rel_path(cfg, old));
        }
    }
    super::outgoing(cfg, &msg)
}

/// Publishes announcements; what cannot be published now waits in the
/// retry queue. An exchange nobody listens to is not an error for an
/// announcement: it just has no audience yet. False when they could be
/// neither published nor kept.
pub(super) async fn publish_or_keep(
    inst: &mut Instance,
    retry: &mut RetryQueue,
    publisher: &mut Option<Box<dyn Publisher>>,
    msgs: Vec<Outgoing>,
) -> bool {
    if msgs.is_empty() {
        return true;
    }
    let Some(p) = publisher.as_mut() else {
        return keep_for_retry(retry, &msgs, "post_broker not connected");
    };
    match publish_tolerant(p.as_mut(), &msgs).await {
        Ok(n) => {
            inst.metrics.posted += n;
            true
        }
        Err(e) => {
            tracing::error!(
                "publishing {} announcements failed: {e}; kept for retry",
                msgs.len()
            );
            *publisher = None;
            keep_for_retry(retry, &msgs, &e.to_string())
        }
    }
}

/// Publishes all; on `Unroutable`, one at a time, dropping the unroutable
/// ones. Returns how many went out.
async fn publish_tolerant(p: &mut dyn Publisher, msgs: &[Outgoing]) -> Result<u64, BrokerError> {
    match p.publish(msgs).await {
        Ok(()) => Ok(msgs.len() as u64),
        Err(BrokerError::Unroutable { .. }) => {
            let mut n = 0;
            for m in msgs {
                match p.publish(std::slice::from_ref(m)).await {
                    Ok(()) => n += 1,
                    Err(BrokerError::Unroutable { exchange, topic }) => {
                        tracing::debug!("no subscriber on {exchange} for {topic}")
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        }
        Err(e) => Err(e),
    }
}

/// Stores announcements for a later publish; false if it could not. The
/// retry queue holds v03 bodies: a v02 announcement is kept as the v03 of
/// the same message, and published in v02 again by [`repost`].
fn keep_for_retry(retry: &mut RetryQueue, msgs: &[Outgoing], why: &str) -> bool {
    let items: Vec<RetryItem> = msgs
        .iter()
        .map(|m| RetryItem::new(RetryKind::Post, v03_body(m), &m.exchange, &m.topic, why))
        .collect();
    match retry.push(&items) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                "cannot keep {} announcements for retry: {e}; their work will be done again",
                items.len()
            );
            false
        }
    }
}

/// The v03 body of an announcement.
fn v03_body(m: &Outgoing) -> Vec<u8> {
    if m.content_type.is_none() && m.headers.is_empty() {
        return m.body.clone();
    }
    Message::decode(&m.topic, m.content_type.as_deref(), &m.body, &m.headers)
        .map(|msg| msg.to_json().into_bytes())
        .unwrap_or_else(|_| m.body.clone())
}

/// A kept announcement as this config publishes it now (v02 when
/// post_format says so), to the exchange it was meant for.
fn kept_outgoing(cfg: &Config, item: &RetryItem) -> Outgoing {
    let as_kept = || Outgoing::new(&item.exchange, &item.topic, item.body.clone());
    if super::post_format(cfg) == Format::V03 {
        return as_kept();
    }
    match Message::from_json(&item.body) {
        Ok(msg) => match super::outgoing(cfg, &msg) {
            Some(o) => Outgoing {
                exchange: item.exchange.clone(),
                ..o
            },
            None => as_kept(),
        },
        Err(_) => as_kept(),
    }
}

/// Publishes announcements that failed before, once the broker is back.
pub(super) async fn repost(
    inst: &mut Instance,
    retry: &mut RetryQueue,
    publisher: &mut Option<Box<dyn Publisher>>,
) {
    let due = match retry.due(RetryKind::Post, 100) {
        Ok(d) if !d.is_empty() => d,
        _ => return,
    };
    if publisher.is_none() {
        *publisher = super::connect_publisher(inst).await;
    }
    let Some(p) = publisher.as_mut() else { return };
    let msgs: Vec<Outgoing> = due.iter().map(|i| kept_outgoing(&inst.cfg, i)).collect();
    match publish_tolerant(p.as_mut(), &msgs).await {
        Ok(n) => {
            inst.metrics.posted += n;
            let ids: Vec<i64> = due.iter().map(|i| i.id).collect();
            if let Err(e) = retry.remove(&ids) {
                tracing::error!("retry queue: {e}");
            }
        }
        Err(e) => {
            for i in &due {
                let _ = retry.failed_again(i.id, &e.to_string());
            }
            *publisher = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Component;

    #[test]
    fn a_v02_announcement_is_kept_as_v03_and_published_again_as_v02() {
        let mut cfg = Config::new(Component::Sender, "t");
        cfg.post_exchange = Some("xs_u".into());
        cfg.post_format = "v02".into();
        cfg.post_topic_prefix = "v02.post".into();
        let m = Message::for_link("sftp://h/d", "a/l", "t").with_rename("a/old".into());
        let sent = super::super::outgoing(&cfg, &m).unwrap();
        let kept = RetryItem::new(
            RetryKind::Post,
            v03_body(&sent),
            "xs_other",
            &sent.topic,
            "e",
        );
        assert_eq!(Message::from_json(&kept.body).unwrap(), m);
        let again = kept_outgoing(&cfg, &kept);
        assert_eq!(
            again,
            Outgoing {
                exchange: "xs_other".into(),
                ..sent.clone()
            }
        );
        // A v03 config publishes what was kept as it was kept.
        cfg.post_format = "v03".into();
        let v03 = kept_outgoing(&cfg, &kept);
        assert_eq!(
            v03,
            Outgoing::new("xs_other", &sent.topic, kept.body.clone())
        );
    }
}
