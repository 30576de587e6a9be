//! The `watch` component: file-system events from the hot directories,
//! reduced to what is ready to announce.
//!
//! * [`run`]: the flow: events and start-up scans become announcements.
//! * [`inventory`]: what was announced, so restarts announce only changes.
//! * [`receipts`]: what was announced and not yet reported delivered, and
//!   announcing it again when it never arrives.
//! * [`tree`]: the public face: [`tree::TreeWatcher`] (inotify on Linux,
//!   recursive, with start-up and overflow scans) and [`tree::FsEvent`].
//! * `tracker`: the inotify reader that pairs renames and handles
//!   overflows; runs on the watcher's own thread.
//! * `table`: which directory each inotify watch descriptor stands for.
//! * `batch`: coalescing of one batch of events.
//! * `unpublished`: the inventory as it will be once what waits to be
//!   published is.

mod batch;
pub mod inventory;
pub mod receipts;
pub mod run;
mod table;
mod tracker;
pub mod tree;
mod unpublished;

#[cfg(test)]
mod tests;
