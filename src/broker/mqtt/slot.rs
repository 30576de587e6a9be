//! Instance slots: which `<queue>_iNN` session this process consumes with.
//!
//! A shared subscription keeps queuing a share of the messages for a
//! member that is offline, in that member's session. A restarted instance
//! must therefore come back under the client id of the one that stopped,
//! or that share waits until the session expires. The supervisor does not
//! tell a consumer its instance number, so each consumer takes the lowest
//! slot free on this host: an exclusive lock on `<queue>_iNN.lock` in the
//! slot directory, held for the consumer's life and released by the kernel
//! when its process dies, whatever the way.

use crate::broker::BrokerError;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// The highest instance number tried.
const MAX_SLOTS: u32 = 999;

/// A claimed slot; the lock is released when this is dropped.
#[derive(Debug)]
pub struct InstanceSlot {
    client_id: String,
    _lock: File,
}

impl InstanceSlot {
    /// Claims the lowest free slot of `queue` in `dir` (created if needed).
    pub fn claim(dir: &Path, queue: &str) -> Result<InstanceSlot, BrokerError> {
        if queue.is_empty() || queue.contains(['/', '\0']) {
            return Err(BrokerError::Other(anyhow::anyhow!(
                "queue name '{queue}' cannot name an MQTT session"
            )));
        }
        let io_err = |e: std::io::Error| {
            BrokerError::Other(anyhow::anyhow!(
                "instance slot for queue {queue} in {}: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        for n in 1..=MAX_SLOTS {
            // sr3 names an instance's session `<queue>_i%02d`.
            let client_id = format!("{queue}_i{n:02}");
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("{client_id}.lock")))
                .map_err(io_err)?;
            match file.try_lock() {
                Ok(()) => {
                    return Ok(InstanceSlot {
                        client_id,
                        _lock: file,
                    })
                }
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        Err(BrokerError::Other(anyhow::anyhow!(
            "all {MAX_SLOTS} instance slots of queue {queue} are taken"
        )))
    }

    /// `<queue>_iNN`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_live_consumer_gets_its_own_slot_and_a_freed_slot_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = InstanceSlot::claim(dir.path(), "q_u.sender.s").unwrap();
        let b = InstanceSlot::claim(dir.path(), "q_u.sender.s").unwrap();
        assert_eq!(a.client_id(), "q_u.sender.s_i01");
        assert_eq!(b.client_id(), "q_u.sender.s_i02");
        drop(a);
        let c = InstanceSlot::claim(dir.path(), "q_u.sender.s").unwrap();
        assert_eq!(c.client_id(), "q_u.sender.s_i01");
        let other = InstanceSlot::claim(dir.path(), "q_other").unwrap();
        assert_eq!(other.client_id(), "q_other_i01");
    }

    #[test]
    fn queue_names_that_cannot_be_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(InstanceSlot::claim(dir.path(), "a/b").is_err());
        assert!(InstanceSlot::claim(dir.path(), "").is_err());
    }
}
