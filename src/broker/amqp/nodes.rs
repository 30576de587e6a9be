//! Failover between the nodes of a cluster: a broker URL may name several
//! (`amqp://u@h1:5682,h2:5683,h3:5684/`, see
//! [`crate::config::broker_nodes`]), all serving the same exchanges and
//! queues (a RabbitMQ cluster; quorum queues to survive a node).
//!
//! A connection goes to the first node that answers, in the order given,
//! except that a node seen failing in the last [`REMEMBER`] (a connection
//! to it lost, or refused) is tried after the others. So when a node dies,
//! the connections it held, made again through the factory as the flows
//! do, go at once to the next node; when every node fails, the caller's
//! backoff applies to the whole list. What this process knows of the
//! nodes is shared by all its publishers and consumers.
//!
//! Nothing is lost in the move: a publish not confirmed when its
//! connection dies fails, and the flows publish it again; deliveries not
//! acked on a dead connection go back to the queue (a quorum queue's
//! replicas keep them), and the broker delivers them again, flagged
//! redelivered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node that failed stays at the back of the list.
pub(crate) const REMEMBER: Duration = Duration::from_secs(30);

/// Bound on a connection attempt to one node of several, so that a host
/// that does not answer at all (powered off, a cut network) leaves time
/// for the others.
pub(crate) const PER_NODE: Duration = Duration::from_secs(10);

/// When each node of each URL (by its text, without the password) was
/// last seen failing.
static DOWN: Mutex<Option<HashMap<String, Vec<Option<Instant>>>>> = Mutex::new(None);

fn with_marks<T>(key: &str, count: usize, f: impl FnOnce(&mut Vec<Option<Instant>>) -> T) -> T {
    let mut guard = DOWN.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let marks = map.entry(key.to_string()).or_default();
    marks.resize(count, None);
    f(marks)
}

/// The order to try `count` nodes in: those not seen failing lately as
/// given, then the others, the one that failed longest ago first.
pub(crate) fn order(key: &str, count: usize) -> Vec<usize> {
    with_marks(key, count, |marks| {
        let recent = |i: usize| marks[i].filter(|t| t.elapsed() < REMEMBER);
        let mut up: Vec<usize> = (0..count).filter(|&i| recent(i).is_none()).collect();
        let mut down: Vec<(Instant, usize)> = (0..count)
            .filter_map(|i| recent(i).map(|t| (t, i)))
            .collect();
        down.sort();
        up.extend(down.into_iter().map(|(_, i)| i));
        up
    })
}

/// Which node of which list a connection went to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// `None` for a URL of one node: nothing to remember.
    list: Option<(String, usize, usize)>,
}

impl Node {
    pub(crate) fn single() -> Node {
        Node::default()
    }

    pub(crate) fn of(key: &str, index: usize, count: usize) -> Node {
        Node {
            list: Some((key.to_string(), index, count)),
        }
    }

    /// The node failed (refused a connection, or lost one): tried last
    /// for a while.
    pub(crate) fn failed(&self) {
        if let Some((key, i, n)) = &self.list {
            with_marks(key, *n, |m| m[*i] = Some(Instant::now()));
        }
    }

    /// The node took a connection: back in its place in the list.
    pub(crate) fn answered(&self) {
        if let Some((key, i, n)) = &self.list {
            with_marks(key, *n, |m| m[*i] = None);
        }
    }

    /// `n/count` for messages, or `None` for a single node.
    pub(crate) fn position(&self) -> Option<String> {
        self.list
            .as_ref()
            .map(|(_, i, n)| format!("node {} of {n}", i + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_nodes_go_last_and_come_back_when_they_answer() {
        let key = "amqp://test-order@h1,h2,h3/";
        assert_eq!(order(key, 3), [0, 1, 2]);
        Node::of(key, 0, 3).failed();
        assert_eq!(order(key, 3), [1, 2, 0]);
        std::thread::sleep(Duration::from_millis(2));
        Node::of(key, 1, 3).failed();
        // Both failed: the one that failed longest ago is tried first.
        assert_eq!(order(key, 3), [2, 0, 1]);
        Node::of(key, 0, 3).answered();
        assert_eq!(order(key, 3), [0, 2, 1]);
        Node::single().failed();
        assert_eq!(order("amqp://other@h1,h2/", 2), [0, 1]);
    }
}
