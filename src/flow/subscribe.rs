//! Subscribe: takes announcements from its queue and downloads each file
//! from the message's baseUrl (`file:`, `sftp://`, `http(s)://`) into `directory` here,
//! applying removals, renames and links too; re-announces what it got when
//! `post_broker` is set. A relPath that would climb out of `directory` is
//! refused. The loop is [`super::consume`]; the work, [`super::deliver`].

use super::deliver::{Direction, Sources};
use super::Instance;
use crate::transfer::file::FileTransport;
use std::sync::Arc;

/// Runs a subscribe instance until it is asked to stop.
pub async fn run(inst: Instance) -> anyhow::Result<()> {
    let sources = Sources::new(
        super::sender::transport_options(&inst.cfg),
        inst.cfg.credentials.clone(),
    );
    let here = Arc::new(FileTransport::new("/".into()));
    super::consume::run(inst, here, Direction::Download(sources)).await
}
