//! The sender: takes announcements from its queue and puts each file (or
//! file operation) at `sendTo` — a directory here (`file:`) or a server
//! over SFTP — then announces what it delivered. The loop is
//! [`super::consume`]; the work, [`super::deliver`].

use super::deliver::Direction;
use super::Instance;
use crate::transfer::{self, TransportOptions};
use anyhow::Context;
use std::sync::Arc;

/// The transport options a config asks for.
pub fn transport_options(cfg: &crate::config::Config) -> TransportOptions {
    let mut o = TransportOptions::default();
    if cfg.ssh_config.is_some() {
        o.ssh_config = cfg.ssh_config.clone();
    }
    o.timeout = cfg.timeout;
    o.ssh_keyfile = cfg
        .send_to_details
        .as_ref()
        .and_then(|d| d.ssh_keyfile.clone());
    o.byte_rate_max = cfg.byte_rate_max;
    o
}

/// Runs a sender instance until it is asked to stop.
pub async fn run(inst: Instance) -> anyhow::Result<()> {
    let send_to = inst.cfg.send_to.clone().context("a sender needs sendTo")?;
    let transport = transfer::for_url_with(&send_to, &transport_options(&inst.cfg))?;
    super::consume::run(inst, Arc::from(transport), Direction::Send).await
}
