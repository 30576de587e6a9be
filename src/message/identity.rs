//! Checksums (`identity`) and the message announcing a file on disk
//! (sarracenia Message.fromFileData / computeIdentity, identity/*.py).
//!
//! Methods: `sha512` (the default) and `md5` = standard padded base64 of the
//! digest of the whole file, read in a streaming way; `cod,<alg>` = checksum
//! on download (no reading); `random` = 4 random digits; `arbitrary,<value>`;
//! `none` and `md5name` = no identity field.
//!
//! sr3 caches a computed checksum in the xattrs `user.sr_identity` (JSON)
//! and `user.sr_mtime`, and reuses it while the cached mtime is ≥ the file's.
//! That reuse is unsafe when a file is rewritten within one mtime tick (the
//! rewrite keeps the cached mtime), so we are stricter: we reuse a cached
//! sum only when its mtime *equals* the file's, and we only write the cache
//! for files whose mtime was over a second old when we hashed them, so a
//! rewrite after caching always moves the mtime. Filesystems without user
//! xattrs just never hit the cache.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use md5::Digest;

use super::{mode_string, timestamp, xattr_cache, Identity, Message};

/// How [`Message::for_file`] describes a file: sr3's `identity`, `timeCopy`,
/// `permCopy` and `source` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMessageOptions {
    /// sr3's `identity` option: `sha512`, `md5`, `cod,<alg>`, `random`,
    /// `arbitrary,<value>`, `md5name` or `none`; empty means `sha512`.
    pub identity_method: String,
    /// Announce `mtime` and `atime` (`timeCopy`).
    pub time_copy: bool,
    /// Announce `mode` (`permCopy`).
    pub perm_copy: bool,
    /// The `source` field (the post_broker user), if any.
    pub source: Option<String>,
}

impl Default for FileMessageOptions {
    /// sr3's defaults: sha512, timeCopy and permCopy on, no source.
    fn default() -> Self {
        FileMessageOptions {
            identity_method: "sha512".to_string(),
            time_copy: true,
            perm_copy: true,
            source: None,
        }
    }
}

/// Read size for checksumming: big enough to keep syscalls rare, small
/// enough to never matter for memory.
const HASH_BUFFER: usize = 256 * 1024;

/// A file must be this old before its checksum is cached in xattrs (see the
/// module doc).
const CACHE_SETTLE: Duration = Duration::from_secs(1);

impl Message {
    /// The announcement of the file at `path`, published as `rel_path` under
    /// `base_url`: size, identity (per `opts.identity_method`), and unless
    /// turned off mtime, atime and mode.
    ///
    /// `path` is followed if it is a symlink (announce links with
    /// [`Message::for_link`]). A directory gives the mkdir announcement, as
    /// sr3's post_file does. `atime` is the file's real access time, taken
    /// before reading it (sr3 puts the ctime there, a quirk we do not copy:
    /// the receiver sets the copy's atime from it).
    pub fn for_file(
        base_url: &str,
        rel_path: &str,
        path: &Path,
        opts: &FileMessageOptions,
    ) -> io::Result<Message> {
        let meta = std::fs::metadata(path)?;
        let mut m = if meta.is_dir() {
            Message::for_mkdir(base_url, rel_path, permissions(&meta))
        } else {
            let mut m = Message::new(base_url, rel_path);
            m.mode = Some(mode_string(permissions(&meta)));
            m.size = Some(meta.len());
            let mtime = meta.modified()?;
            m.mtime = Some(timestamp::format(mtime));
            m.atime = Some(timestamp::format(meta.accessed()?));
            m.identity = identity_for_posting(path, &opts.identity_method, mtime)?;
            m
        };
        if !opts.time_copy {
            m.mtime = None;
            m.atime = None;
        }
        if !opts.perm_copy {
            m.mode = None;
        }
        m.source = opts.source.clone();
        Ok(m)
    }
}

fn permissions(meta: &Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// The identity of the file at `path` by `method` (see the module doc),
/// always computed from the content (no xattr cache): what a receiver uses
/// to verify a download. `Ok(None)` for `none`/`md5name`; an unknown method
/// is `InvalidInput`.
pub fn compute_identity(path: &Path, method: &str) -> io::Result<Option<Identity>> {
    match Method::parse(method)? {
        Method::Digest(alg) => digest_file(path, alg).map(Some),
        other => Ok(other.without_reading()),
    }
}

/// Like [`compute_identity`], but reusing and refreshing the xattr cache.
fn identity_for_posting(
    path: &Path,
    method: &str,
    mtime: SystemTime,
) -> io::Result<Option<Identity>> {
    let alg = match Method::parse(method)? {
        Method::Digest(alg) => alg,
        other => return Ok(other.without_reading()),
    };
    if let Some(cached) = xattr_cache::get(path, mtime) {
        if cached.method == alg.name() {
            return Ok(Some(cached));
        }
    }
    let id = digest_file(path, alg)?;
    let settled = SystemTime::now()
        .duration_since(mtime)
        .is_ok_and(|age| age > CACHE_SETTLE);
    let unchanged = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t == mtime);
    if settled && unchanged {
        xattr_cache::set(path, mtime, &id);
    }
    Ok(Some(id))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Algorithm {
    Sha512,
    Md5,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha512 => "sha512",
            Algorithm::Md5 => "md5",
        }
    }
}

enum Method {
    Digest(Algorithm),
    Cod(String),
    Random,
    Arbitrary(String),
    Nothing,
}

impl Method {
    fn parse(method: &str) -> io::Result<Method> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("identity method {method:?}: {why}"),
            )
        };
        Ok(match method {
            "" | "sha512" => Method::Digest(Algorithm::Sha512),
            "md5" => Method::Digest(Algorithm::Md5),
            "random" => Method::Random,
            "none" | "md5name" => Method::Nothing,
            _ => match method.split_once(',') {
                Some(("cod", alg)) if !alg.is_empty() => Method::Cod(alg.to_string()),
                Some(("arbitrary", value)) => Method::Arbitrary(value.to_string()),
                _ => return Err(invalid(
                    "unknown (sha512, md5, cod,<alg>, random, arbitrary,<value>, md5name, none)",
                )),
            },
        })
    }

    /// The identity of the methods that do not read the file.
    fn without_reading(self) -> Option<Identity> {
        let id = |method: &str, value: String| {
            Some(Identity {
                method: method.to_string(),
                value,
            })
        };
        match self {
            Method::Cod(alg) => id("cod", alg),
            Method::Random => id("random", format!("{:04}", random_below(10_000))),
            Method::Arbitrary(v) => id("arbitrary", v),
            Method::Digest(_) | Method::Nothing => None,
        }
    }
}

/// A random number in `0..n` from the standard library's per-process
/// random hash keys (good enough for sr3's "random" identity, not crypto).
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() % n
}

/// base64 of the digest of the whole file, read `HASH_BUFFER` at a time.
fn digest_file(path: &Path, alg: Algorithm) -> io::Result<Identity> {
    let mut file = File::open(path)?;
    let digest = match alg {
        // aws-lc's SHA-512 (already linked for rustls) hashes about 1.4×
        // as fast as the sha2 crate here (340 vs 250 MB/s on this 2-core
        // machine); the watch hashes every byte it announces, so on large
        // files this is its main cost.
        Algorithm::Sha512 => {
            let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA512);
            read_all(&mut file, |b| ctx.update(b))?;
            ctx.finish().as_ref().to_vec()
        }
        Algorithm::Md5 => {
            let mut ctx = md5::Md5::new();
            read_all(&mut file, |b| ctx.update(b))?;
            ctx.finalize().to_vec()
        }
    };
    Ok(Identity {
        method: alg.name().to_string(),
        value: base64::engine::general_purpose::STANDARD.encode(digest),
    })
}

/// Feeds the whole of `file` to `eat`, `HASH_BUFFER` bytes at a time.
///
/// The buffer is the thread's own, kept between files: zeroing a fresh one
/// for every file cost the watch 8 % of its CPU on 4 KiB files.
fn read_all(file: &mut File, eat: impl FnMut(&[u8])) -> io::Result<()> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => feed(file, &mut kept, eat),
        // Only if `eat` hashed another file: that one gets its own.
        Err(_) => feed(file, &mut Vec::new(), eat),
    })
}

fn feed(file: &mut File, buf: &mut Vec<u8>, mut eat: impl FnMut(&[u8])) -> io::Result<()> {
    buf.resize(HASH_BUFFER, 0);
    loop {
        match file.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => eat(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HELLO_SHA512: &str =
        "58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ==";

    fn file_with(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        p
    }

    fn set_mode(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn sha512_and_md5_are_base64_of_the_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = file_with(d.path(), "f", b"hello\n");
        let sha = compute_identity(&p, "sha512").unwrap().unwrap();
        assert_eq!(
            (sha.method.as_str(), sha.value.as_str()),
            ("sha512", HELLO_SHA512)
        );
        let md5 = compute_identity(&p, "md5").unwrap().unwrap();
        assert_eq!(md5.value, "sZRqySSS0jR8YjW00mERhA==");
        assert_eq!(compute_identity(&p, "").unwrap(), Some(sha));
    }

    #[test]
    fn files_larger_than_the_buffer_hash_like_one_read() {
        let d = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..HASH_BUFFER * 2 + 17).map(|i| (i % 251) as u8).collect();
        let p = file_with(d.path(), "big", &content);
        let want = base64::engine::general_purpose::STANDARD
            .encode(<sha2::Sha512 as sha2::Digest>::digest(&content));
        assert_eq!(compute_identity(&p, "sha512").unwrap().unwrap().value, want);
    }

    #[test]
    fn methods_that_do_not_read_the_file() {
        let missing = Path::new("/nonexistent/file");
        let cod = compute_identity(missing, "cod,sha512").unwrap().unwrap();
        assert_eq!((cod.method.as_str(), cod.value.as_str()), ("cod", "sha512"));
        let arb = compute_identity(missing, "arbitrary,v1.2")
            .unwrap()
            .unwrap();
        assert_eq!(
            (arb.method.as_str(), arb.value.as_str()),
            ("arbitrary", "v1.2")
        );
        let rnd = compute_identity(missing, "random").unwrap().unwrap();
        assert_eq!(rnd.method, "random");
        assert!(rnd.value.len() == 4 && rnd.value.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(compute_identity(missing, "none").unwrap(), None);
        assert_eq!(compute_identity(missing, "md5name").unwrap(), None);
    }

    #[test]
    fn unknown_method_is_invalid_input_and_missing_file_is_not_found() {
        let missing = Path::new("/nonexistent/file");
        for m in ["sha256", "cod,", "bogus,x"] {
            let e = compute_identity(missing, m).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{m}");
        }
        assert_eq!(
            compute_identity(missing, "sha512").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn file_message_has_size_times_mode_identity_and_source() {
        let d = tempfile::tempdir().unwrap();
        let p = file_with(d.path(), "hello world.txt", b"hello\n");
        set_mode(&p, 0o640);
        let opts = FileMessageOptions {
            source: Some("guest".into()),
            ..FileMessageOptions::default()
        };
        let m = Message::for_file("file:/h", "/sub dir/hello world.txt", &p, &opts).unwrap();
        assert_eq!(m.rel_path, "sub dir/hello world.txt");
        assert_eq!(m.size, Some(6));
        assert_eq!(m.mode.as_deref(), Some("640"));
        assert_eq!(m.source.as_deref(), Some("guest"));
        assert_eq!(m.identity.unwrap().value, HELLO_SHA512);
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(
            timestamp::parse(m.mtime.as_deref().unwrap()).unwrap(),
            meta.modified().unwrap()
        );
        assert!(timestamp::parse(m.atime.as_deref().unwrap()).is_ok());
        assert_eq!(m.file_op, None);
    }

    #[test]
    fn time_copy_and_perm_copy_off_drop_their_fields() {
        let d = tempfile::tempdir().unwrap();
        let p = file_with(d.path(), "f", b"x");
        let opts = FileMessageOptions {
            identity_method: "none".into(),
            time_copy: false,
            perm_copy: false,
            source: None,
        };
        let m = Message::for_file("file:/h", "f", &p, &opts).unwrap();
        assert_eq!(
            (m.mtime, m.atime, m.mode, m.identity),
            (None, None, None, None)
        );
        assert_eq!(m.size, Some(1));
    }

    #[test]
    fn directory_gives_the_mkdir_message() {
        let d = tempfile::tempdir().unwrap();
        set_mode(d.path(), 0o750);
        let m =
            Message::for_file("file:/h", "d", d.path(), &FileMessageOptions::default()).unwrap();
        assert_eq!(m.mode.as_deref(), Some("750"));
        assert!(m.file_op.is_some_and(|op| op.directory));
        assert_eq!((m.size, m.identity), (None, None));
    }

    #[test]
    fn vanished_file_is_not_found() {
        let e = Message::for_file(
            "file:/h",
            "gone",
            Path::new("/nonexistent/gone"),
            &FileMessageOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    /// Whether this filesystem takes user xattrs (tmpfs on old kernels,
    /// overlayfs… may not); the cache tests are meaningless without.
    #[cfg(target_os = "linux")]
    fn xattrs_work(p: &Path) -> bool {
        xattr_cache::raw_set(p, "user.pitcher_probe", b"1")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn settled_file_checksum_is_cached_and_reused_for_the_same_mtime_only() {
        let d = tempfile::tempdir().unwrap();
        let p = file_with(d.path(), "f", b"hello\n");
        if !xattrs_work(&p) {
            eprintln!("no user xattrs here; skipping");
            return;
        }
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let opts = FileMessageOptions::default();
        let first = Message::for_file("file:/h", "f", &p, &opts).unwrap();
        assert_eq!(first.identity.as_ref().unwrap().value, HELLO_SHA512);
        assert!(xattr_cache::get(&p, old).is_some());

        // Poison the cache: a reused sum shows, a recomputed one would not.
        let fake = Identity {
            method: "sha512".into(),
            value: "cached".into(),
        };
        xattr_cache::set(&p, old, &fake);
        let again = Message::for_file("file:/h", "f", &p, &opts).unwrap();
        assert_eq!(again.identity, Some(fake));

        // A different method ignores it; so does a different mtime.
        let md5 = FileMessageOptions {
            identity_method: "md5".into(),
            ..opts.clone()
        };
        assert_eq!(
            Message::for_file("file:/h", "f", &p, &md5)
                .unwrap()
                .identity
                .unwrap()
                .method,
            "md5"
        );
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old + Duration::from_nanos(1))
            .unwrap();
        let changed = Message::for_file("file:/h", "f", &p, &opts).unwrap();
        assert_eq!(changed.identity.unwrap().value, HELLO_SHA512);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn freshly_written_file_is_not_cached() {
        let d = tempfile::tempdir().unwrap();
        let p = file_with(d.path(), "f", b"hello\n");
        if !xattrs_work(&p) {
            return;
        }
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        Message::for_file("file:/h", "f", &p, &FileMessageOptions::default()).unwrap();
        assert!(xattr_cache::get(&p, mtime).is_none());
    }
}
