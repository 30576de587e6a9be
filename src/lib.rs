//! pitcher: the MetPX Sarracenia (sr3) file-delivery daemons, in Rust.
//!
//! A file dropped in a hot directory is announced, queued, copied to its
//! destination and announced again, by daemons that read sr3's own config
//! files and speak sr3's v03 (and v02) messages. Follow the pipeline to find
//! anything:
//!
//! * [`config`]: sr3's config language: `keyword value` lines, includes,
//!   `${VARS}`, credentials, accept/reject masks. Turns a `.conf` into a
//!   [`config::Config`].
//! * [`message`]: the v03 message: fields, JSON both ways, topics, identity;
//!   v02, its older encoding, both ways.
//! * [`flow`]: the loop every component runs (gather → filter → nodupe →
//!   work → post → ack) and one module per component (watch, sender, post).
//! * [`broker`]: where messages wait: one trait, and its implementations
//!   (the embedded SQLite queue `local:`, later AMQP and MQTT).
//! * [`transfer`]: how bytes move: one trait, and its implementations
//!   (`file:` now; sftp and scp next).
//! * [`state`]: where things live on disk: XDG paths, pid files, the nodupe
//!   cache, the retry queue, per-instance metrics.
//! * [`supervisor`]: starting instances as child processes, stopping them,
//!   and telling which are alive.
//! * [`cli`]: one module per verb; the only place that prints.

pub mod broker;
pub mod cli;
pub mod config;
pub mod flow;
pub mod message;
pub mod state;
pub mod supervisor;
pub mod transfer;
