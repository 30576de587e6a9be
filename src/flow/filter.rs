//! The filter phase: accept/reject masks, and where an accepted message's
//! file goes (sr3's `updateFieldsAccepted`).
//!
//! Masks are tried in file order against the message's URL (`baseUrl` +
//! `relPath`, as sr3 does); the first match wins. No match falls to
//! `acceptUnmatched`. An accepted message gets a destination directory and
//! file name from the mask's `directory`/`mirror`/`strip`/`flatten`.

use crate::config::{Config, Mask, Strip};
use crate::message::Message;

/// The destination options that apply to one accepted message.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub directory: Option<&'a str>,
    pub mirror: bool,
    pub strip: &'a Strip,
    pub flatten: &'a str,
    pub filename: Option<&'a str>,
}

impl<'a> Placement<'a> {
    fn of_mask(m: &'a Mask) -> Placement<'a> {
        Placement {
            directory: m.directory.as_deref(),
            mirror: m.mirror,
            strip: &m.strip,
            flatten: &m.flatten,
            filename: m.filename.as_deref(),
        }
    }

    fn of_config(c: &'a Config) -> Placement<'a> {
        Placement {
            directory: c.directory.as_deref(),
            mirror: c.mirror,
            strip: &c.strip,
            flatten: &c.flatten,
            filename: c.filename.as_deref(),
        }
    }
}

/// The first mask matching `url`: `Some(placement)` to accept, `None` to
/// reject.
pub fn decide<'a>(cfg: &'a Config, url: &str) -> Option<Placement<'a>> {
    match cfg.masks.iter().find(|m| m.regex.is_match(url)) {
        Some(m) if m.accept => Some(Placement::of_mask(m)),
        Some(_) => None,
        None if cfg.accept_unmatched => Some(Placement::of_config(cfg)),
        None => None,
    }
}

/// A destination: directory and file name, as `/`-separated text, and
/// the root they lie beneath (the config's `directory`, else
/// `post_baseDir`; empty for where the transport starts). Every operation
/// on it is confined beneath that root (see [`crate::transfer::At`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub root: String,
    pub dir: String,
    pub file: String,
}

impl Destination {
    /// `dir/file`.
    pub fn path(&self) -> String {
        join(&self.dir, &self.file)
    }

    /// `path` (this destination's path, or one beside it) beneath the root.
    pub fn at<'a>(&'a self, path: &'a str) -> crate::transfer::At<'a> {
        crate::transfer::At::new(&self.root, path)
    }
}

/// Joins two path texts with exactly one `/`.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Why a relPath cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("relPath {0:?} would escape its directory ('..' component): refused")]
    Escapes(String),
    #[error("relPath {0:?} names no file")]
    Empty(String),
}

/// The parts of a relPath, refusing any that would climb out of the
/// destination (`..`); empty and `.` parts are dropped, so an absolute
/// relPath is read as relative.
pub fn safe_parts(rel_path: &str) -> Result<Vec<&str>, PlacementError> {
    let mut parts = Vec::new();
    for p in rel_path.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(PlacementError::Escapes(rel_path.to_string())),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(PlacementError::Empty(rel_path.to_string()));
    }
    Ok(parts)
}

/// Where the file of `rel_path` goes, as sr3 computes it: `strip` leading
/// parts, drop a leading `baseDir`, then `directory` (else `post_baseDir`)
/// plus, with `mirror`, the remaining directories.
pub fn destination(
    cfg: &Config,
    place: &Placement,
    rel_path: &str,
) -> Result<Destination, PlacementError> {
    let stripped;
    let rel = match place.strip {
        Strip::Pattern(re) => {
            stripped = re.replace(rel_path, "").into_owned();
            stripped.as_str()
        }
        Strip::Count(_) => rel_path,
    };
    let mut parts = safe_parts(rel)?;
    if let Strip::Count(n) = place.strip {
        let n = (*n).min(parts.len() - 1);
        parts.drain(..n);
    }
    if let Some(base) = cfg.base_dir.as_deref() {
        let base: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
        if !base.is_empty() && parts.len() > base.len() && parts[..base.len()] == base[..] {
            parts.drain(..base.len());
        }
    }
    let file = parts.pop().unwrap_or_default().to_string();
    let root = place
        .directory
        .or(cfg.post_base_dir.as_deref())
        .map(|d| crate::config::expand_time_vars(d, chrono::Local::now()))
        .unwrap_or_default();
    let mut dir = root.clone();
    let file = if place.mirror || parts.is_empty() {
        if place.mirror && !parts.is_empty() {
            dir = join(&dir, &parts.join("/"));
        }
        file
    } else if place.flatten != "/" {
        let mut all = parts.clone();
        all.push(&file);
        all.join(place.flatten)
    } else {
        file
    };
    let file = place.filename.map(|f| f.to_string()).unwrap_or(file);
    Ok(Destination { root, dir, file })
}

/// The local file a message names: the path in a `file:` baseUrl plus the
/// relPath (no `baseDir` needed), else `baseDir` plus the relPath.
pub fn local_source(cfg: &Config, msg: &Message) -> Option<std::path::PathBuf> {
    let rel = msg.retrieve_path.as_deref().unwrap_or(&msg.rel_path);
    if msg.base_url.starts_with("file:") {
        let root = crate::transfer::file::root_of(&msg.base_url);
        let rel = rel.trim_start_matches('/');
        return Some(if rel.is_empty() { root } else { root.join(rel) });
    }
    cfg.base_dir
        .as_ref()
        .map(|b| std::path::Path::new(b).join(rel.trim_start_matches('/')))
}

/// The relPath an old absolute local path (a rename's `fileOp.rename`) has
/// under the same root as the message, if it lies under it.
pub fn rel_of_local(cfg: &Config, msg: &Message, old: &str) -> Option<String> {
    let root = if msg.base_url.starts_with("file:") {
        crate::transfer::file::root_of(&msg.base_url)
            .to_string_lossy()
            .into_owned()
    } else {
        cfg.base_dir.clone()?
    };
    let root = root.trim_end_matches('/');
    let rest = old.strip_prefix(root)?;
    if !root.is_empty() && !rest.starts_with('/') {
        return None;
    }
    Some(rest.trim_start_matches('/').to_string())
}

/// The relPath an announcement of a file delivered to `dest` carries: the
/// destination minus `post_baseDir`, minus the path of `post_baseUrl`,
/// without a leading `/` (sr3's re-post rule).
pub fn announced_rel_path(cfg: &Config, dest_path: &str) -> String {
    let mut rel = dest_path.to_string();
    if let Some(pbd) = cfg.post_base_dir.as_deref().filter(|d| !d.is_empty()) {
        let pbd = pbd.trim_end_matches('/');
        if let Some(rest) = rel.strip_prefix(pbd) {
            if rest.is_empty() || rest.starts_with('/') {
                rel = rest.to_string();
            }
        }
    }
    if let Some(url_path) = cfg.post_base_url.as_deref().and_then(url_path) {
        let up = url_path.trim_end_matches('/');
        if !up.is_empty() {
            if let Some(rest) = rel.strip_prefix(up) {
                if rest.is_empty() || rest.starts_with('/') {
                    rel = rest.to_string();
                }
            }
        }
    }
    rel.trim_start_matches('/').to_string()
}

/// The relPath announced for a local file: relative to `post_baseDir`
/// when the file lies under it, else its absolute path without the leading
/// `/` (sr3's rule for `post_baseUrl file:`). Non-UTF-8 names cannot be
/// carried by a v03 message: an error naming the file.
pub fn rel_path_of_local(cfg: &Config, p: &std::path::Path) -> Result<String, String> {
    let text = p
        .to_str()
        .ok_or_else(|| format!("skipped {}: the name is not valid UTF-8", p.display()))?;
    if let Some(base) = cfg
        .post_base_dir
        .as_deref()
        .filter(|b| !b.is_empty() && *b != "/")
    {
        if let Some(rest) = text.strip_prefix(base.trim_end_matches('/')) {
            if rest.starts_with('/') || rest.is_empty() {
                return Ok(rest.trim_start_matches('/').to_string());
            }
        }
    }
    Ok(text.trim_start_matches('/').to_string())
}

fn url_path(u: &str) -> Option<String> {
    if let Some(rest) = u.strip_prefix("file:") {
        return Some(rest.trim_start_matches("//").to_string());
    }
    url::Url::parse(u).ok().map(|u| u.path().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Component, Config};

    fn sender() -> Config {
        Config::new(Component::Sender, "t")
    }

    fn dest(cfg: &Config, rel: &str) -> Destination {
        let place = decide(cfg, &format!("file:/x/{rel}")).expect("accepted");
        destination(cfg, &place, rel).unwrap()
    }

    #[test]
    fn destination_follows_sr3_directory_mirror_strip_and_basedir_rules() {
        // sr3-behaviour.md §5, relPath tmp/d/sub/a.txt.
        let mut c = sender();
        assert_eq!(
            dest(&c, "tmp/d/sub/a.txt"),
            Destination {
                root: "".into(),
                dir: "tmp/d/sub".into(),
                file: "a.txt".into()
            }
        );
        c.directory = Some("/remote/in".into());
        assert_eq!(
            dest(&c, "tmp/d/sub/a.txt").path(),
            "/remote/in/tmp/d/sub/a.txt"
        );
        c.base_dir = Some("/tmp/d".into());
        assert_eq!(dest(&c, "tmp/d/sub/a.txt").path(), "/remote/in/sub/a.txt");
        c.base_dir = None;
        c.strip = Strip::Count(3);
        assert_eq!(dest(&c, "tmp/d/sub/a.txt").path(), "/remote/in/a.txt");
        c.strip = Strip::Count(0);
        c.mirror = false;
        assert_eq!(dest(&c, "tmp/d/sub/a.txt").path(), "/remote/in/a.txt");
        let mut c = sender();
        c.post_base_dir = Some("/home/pas037/on_hpfx".into());
        assert_eq!(
            dest(&c, "cap/sub dir/hello world.txt").path(),
            "/home/pas037/on_hpfx/cap/sub dir/hello world.txt"
        );
    }

    #[test]
    fn a_relpath_that_climbs_out_is_refused() {
        let c = sender();
        let place = decide(&c, "file:/x").unwrap();
        assert!(matches!(
            destination(&c, &place, "a/../../etc/passwd"),
            Err(PlacementError::Escapes(_))
        ));
        assert!(matches!(
            destination(&c, &place, ".."),
            Err(PlacementError::Escapes(_))
        ));
        // An absolute relPath is read as relative, never as the root.
        let mut c = sender();
        c.directory = Some("/dest".into());
        assert_eq!(dest(&c, "/etc/passwd").path(), "/dest/etc/passwd");
    }

    #[test]
    fn the_announcement_relpath_drops_post_basedir_and_the_url_path() {
        let mut c = sender();
        c.post_base_dir = Some("/home/pas037/on_hpfx".into());
        c.post_base_url = Some("sftp://pas037@hpfx/on_hpfx".into());
        assert_eq!(
            announced_rel_path(&c, "/home/pas037/on_hpfx/cap/x"),
            "cap/x"
        );
        c.post_base_dir = None;
        c.post_base_url = Some("file:/data".into());
        assert_eq!(announced_rel_path(&c, "/data/a/b"), "a/b");
        assert_eq!(announced_rel_path(&c, "/database/a"), "database/a");
    }

    #[test]
    fn the_local_file_comes_from_a_file_baseurl_without_basedir() {
        let c = sender();
        let mut m = crate::message::Message::for_remove("file:/home/bob/to_hpfx", "cap/a b");
        assert_eq!(
            local_source(&c, &m),
            Some(std::path::PathBuf::from("/home/bob/to_hpfx/cap/a b"))
        );
        assert_eq!(
            rel_of_local(&c, &m, "/home/bob/to_hpfx/cap/old"),
            Some("cap/old".into())
        );
        assert_eq!(rel_of_local(&c, &m, "/home/bob/to_hpfx2/x"), None);
        m.base_url = "sftp://h/x".into();
        assert_eq!(local_source(&c, &m), None);
    }
}
