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
//!   work → post → ack) and one module per component (watch, post, sender,
//!   subscribe), with autoclean and vip beside them.
//! * [`broker`]: where messages wait: one pair of traits, and their
//!   implementations: the embedded SQLite queue `local:`, RabbitMQ (`amqp:`)
//!   and MQTT 5 (`mqtt:`).
//! * [`transfer`]: how bytes move: a destination trait and a source trait,
//!   and their implementations: `file:` (confined beneath its root by
//!   `openat2`), `sftp://` with scp for large files, and `http(s)://` for
//!   downloads.
//! * [`state`]: where things live on disk: XDG paths, pid files, the nodupe
//!   cache, the retry queue, per-instance metrics, and `/proc`.
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
