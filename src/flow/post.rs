//! The post component: announce named files once and exit (sr3's
//! `sr3_post -c <config> -p <paths…>`).
//!
//! Each path (relative ones from the current directory) is announced; a
//! directory is walked and every file and symlink in it announced. The
//! masks apply. With `post_baseUrl file:` and no `post_baseDir`, the
//! relPath is the absolute path (the tutorial's "Do I need to copy files
//! into a hot directory?").

use super::filter;
use crate::broker::{self, Outgoing};
use crate::config::Config;
use crate::message::{FileMessageOptions, Message};
use crate::state::Paths;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The announcements for `paths`, and one line per path skipped.
pub fn messages_for(cfg: &Config, paths: &[PathBuf]) -> (Vec<Message>, Vec<String>) {
    messages_for_with(cfg, paths, &mut || {})
}

/// [`messages_for`], calling `tick` after each file (for a progress bar).
pub fn messages_for_with(
    cfg: &Config,
    paths: &[PathBuf],
    tick: &mut dyn FnMut(),
) -> (Vec<Message>, Vec<String>) {
    let base_url = cfg.post_base_url.clone().unwrap_or_else(|| "file:".into());
    let opts = FileMessageOptions {
        identity_method: cfg.identity_method.clone(),
        time_copy: cfg.time_copy,
        perm_copy: cfg.perm_copy,
        source: cfg.source.clone(),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    let mut one = |p: &Path| {
        let rel = match filter::rel_path_of_local(cfg, p) {
            Ok(r) => r,
            Err(e) => return skipped.push(e),
        };
        let msg = match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(p) {
                Ok(t) => match t.to_str() {
                    Some(t) => Message::for_link(&base_url, &rel, t),
                    None => {
                        return skipped
                            .push(format!("skipped link {}: target not UTF-8", p.display()))
                    }
                },
                Err(e) => return skipped.push(format!("skipped {}: {e}", p.display())),
            },
            Ok(m) if m.is_file() => match Message::for_file(&base_url, &rel, p, &opts) {
                Ok(m) => m,
                Err(e) => return skipped.push(format!("skipped {}: {e}", p.display())),
            },
            Ok(_) => {
                return skipped.push(format!(
                    "skipped {}: not a regular file or link",
                    p.display()
                ))
            }
            Err(e) => return skipped.push(format!("skipped {}: {e}", p.display())),
        };
        if filter::decide(cfg, &msg.url()).is_some() {
            out.push(msg);
        } else {
            skipped.push(format!("rejected: {}", msg.url()));
        }
    };
    for p in paths {
        let p = if p.is_absolute() {
            p.clone()
        } else {
            cwd.join(p)
        };
        if p.is_dir() {
            let walk = walkdir::WalkDir::new(&p)
                .sort_by_file_name()
                .into_iter()
                .flatten();
            for e in walk.filter(|e| !e.file_type().is_dir()) {
                one(e.path());
                tick();
            }
        } else {
            one(&p);
            tick();
        }
    }
    (out, skipped)
}

/// Publishes the announcements of `paths` once; returns how many went out.
pub async fn post_once(
    paths: &Paths,
    cfg: &Config,
    files: &[PathBuf],
) -> anyhow::Result<(usize, Vec<String>)> {
    post_once_with(paths, cfg, files, &mut || {}).await
}

/// [`post_once`], calling `tick` after each file is prepared.
pub async fn post_once_with(
    paths: &Paths,
    cfg: &Config,
    files: &[PathBuf],
    tick: &mut dyn FnMut(),
) -> anyhow::Result<(usize, Vec<String>)> {
    let url = cfg.post_broker.as_ref().context("post needs post_broker")?;
    let exchange = cfg
        .post_exchange
        .clone()
        .context("post needs post_exchange")?;
    let (msgs, skipped) = messages_for_with(cfg, files, tick);
    let mut p = broker::publisher(url, paths).await?;
    p.declare_exchange(&exchange).await?;
    let out: Vec<Outgoing> = msgs
        .iter()
        .filter_map(|m| super::outgoing(cfg, m))
        .collect();
    for chunk in out.chunks(cfg.batch.max(1) * 4) {
        p.publish(chunk).await?;
    }
    for m in &msgs {
        tracing::info!(
            "posted: {exchange} {} relPath: {}",
            m.topic(&cfg.post_topic_prefix),
            m.rel_path
        );
    }
    Ok((out.len(), skipped))
}
