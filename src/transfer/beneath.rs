//! File operations on this machine that cannot leave a root directory.
//!
//! Every message is untrusted: a relPath may name a symlink that an
//! earlier message made (`lnk -> /etc`), so `root/lnk/x` must never be
//! written through it. Here each operation resolves the parent directory
//! of its path with `openat2(RESOLVE_BENEATH)` from a descriptor of the
//! root, then acts on the last component relative to that directory
//! (`openat`, `renameat`, `unlinkat`, `mkdirat`, `symlinkat`, …), which do
//! not follow a final symlink. The check and the write are one step: no
//! path is looked up twice. A symlink on the way is followed only while it
//! stays beneath the root, so an administrator's own links inside the tree
//! keep working; one that leads out is refused ([`super::refused`]).
//!
//! On a kernel without `openat2` (before 5.6, or a seccomp filter that
//! hides it) the parent is walked one component at a time with
//! `O_NOFOLLOW`, refusing every symlink on the way: stricter, never looser.
//!
//! The root itself is opened afresh for each operation (one `open`): a
//! descriptor kept across operations would keep writing into a directory
//! that an operator had removed and made again.

use super::refused;
use nix::errno::Errno;
use nix::fcntl::{self, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{self, FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, UnlinkatFlags};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// Set once `openat2` is found missing, so later calls walk directly.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A directory of this machine under which every path given stays.
pub struct Beneath {
    root: OwnedFd,
    shown: PathBuf,
}

/// What an `lstat` beneath the root tells.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub size: u64,
    pub is_dir: bool,
    pub is_symlink: bool,
    pub mtime: Option<SystemTime>,
}

fn errno_io(e: Errno, what: impl std::fmt::Display) -> io::Error {
    let err = io::Error::from(e);
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

impl Beneath {
    /// Opens `root` (following links: the administrator chose it).
    pub fn open(root: &Path) -> io::Result<Beneath> {
        let fd = fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno_io(e, root.display()))?;
        Ok(Beneath {
            // SAFETY: `open` just returned this descriptor; nothing else owns it.
            root: unsafe { OwnedFd::from_raw_fd(fd) },
            shown: root.to_path_buf(),
        })
    }

    fn shown(&self, parts: &[&str]) -> String {
        let mut p = self.shown.clone();
        p.extend(parts);
        p.display().to_string()
    }

    /// The error for a path whose resolution left the root or met a link
    /// it may not follow; other errors keep their kind.
    fn resolve_error(&self, e: Errno, parts: &[&str]) -> io::Error {
        match e {
            Errno::EXDEV | Errno::ELOOP => refused(format!(
                "{} leads out of {} through a symbolic link",
                self.shown(parts),
                self.shown.display()
            )),
            e => errno_io(e, self.shown(parts)),
        }
    }

    /// Opens the directory `parts` beneath the root (`O_PATH`).
    fn dir(&self, parts: &[&str]) -> io::Result<OwnedFd> {
        if parts.is_empty() {
            return self.root.try_clone();
        }
        let rel = parts.join("/");
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            match fcntl::openat2(self.root.as_raw_fd(), rel.as_str(), how) {
                // SAFETY: a fresh descriptor from openat2.
                Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
                Err(Errno::ENOSYS) | Err(Errno::EPERM) if self.walk_works() => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(self.resolve_error(e, parts)),
            }
        }
        self.walk(parts)
    }

    /// True when `openat2` is truly unavailable (not a permission problem
    /// of one path): probes it on the root itself.
    fn walk_works(&self) -> bool {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH);
        match fcntl::openat2(self.root.as_raw_fd(), ".", how) {
            Ok(fd) => {
                // SAFETY: a fresh descriptor, closed at once.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                false
            }
            Err(_) => true,
        }
    }

    /// The fallback: one component at a time, no symlink followed.
    fn walk(&self, parts: &[&str]) -> io::Result<OwnedFd> {
        let mut fd = self.root.try_clone()?;
        for (i, p) in parts.iter().enumerate() {
            let next = fcntl::openat(
                Some(fd.as_raw_fd()),
                *p,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            );
            match next {
                // SAFETY: a fresh descriptor from openat.
                Ok(n) => fd = unsafe { OwnedFd::from_raw_fd(n) },
                Err(Errno::ENOTDIR) | Err(Errno::ELOOP)
                    if self.is_link(&fd, p).unwrap_or(false) =>
                {
                    return Err(refused(format!(
                        "{} is a symbolic link (not followed without openat2)",
                        self.shown(&parts[..=i])
                    )))
                }
                Err(e) => return Err(errno_io(e, self.shown(&parts[..=i]))),
            }
        }
        Ok(fd)
    }

    fn is_link(&self, dir: &OwnedFd, name: &str) -> nix::Result<bool> {
        let st = stat::fstatat(
            Some(dir.as_raw_fd()),
            name,
            fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        Ok(st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    }

    /// The directory holding the last part, and that part's name.
    fn parent<'p>(&self, parts: &[&'p str]) -> io::Result<(OwnedFd, &'p str)> {
        let (name, dirs) = parts
            .split_last()
            .ok_or_else(|| refused(format!("no name beneath {}", self.shown.display())))?;
        Ok((self.dir(dirs)?, name))
    }

    /// Creates the directory `parts` and any missing directories above it
    /// (beneath the root), each with `mode` (less the umask).
    pub fn mkdirs(&self, parts: &[&str], mode: u32) -> io::Result<()> {
        match self.dir(parts) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        for i in 1..=parts.len() {
            let (dir, name) = self.parent(&parts[..i])?;
            match stat::mkdirat(
                Some(dir.as_raw_fd()),
                name,
                Mode::from_bits_truncate(mode as libc::mode_t),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(errno_io(e, self.shown(&parts[..i]))),
            }
        }
        // What now stands there must be a directory beneath the root.
        self.dir(parts).map(drop)
    }

    /// Creates the file `parts`, failing with `AlreadyExists` if anything
    /// (a symlink included) has that name; open for writing.
    pub fn create_new(&self, parts: &[&str]) -> io::Result<File> {
        let (dir, name) = self.parent(parts)?;
        let fd = fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )
        .map_err(|e| errno_io(e, self.shown(parts)))?;
        // SAFETY: a fresh descriptor from openat.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Opens the file `parts` for reading (links beneath the root followed).
    pub fn open_read(&self, parts: &[&str]) -> io::Result<File> {
        let (dir, name) = self.parent(parts)?;
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = if NO_OPENAT2.load(Ordering::Relaxed) {
            fcntl::openat(
                Some(dir.as_raw_fd()),
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        } else {
            fcntl::openat2(self.root.as_raw_fd(), parts.join("/").as_str(), how)
        };
        match fd {
            // SAFETY: a fresh descriptor.
            Ok(fd) => Ok(unsafe { File::from_raw_fd(fd) }),
            Err(e) => Err(self.resolve_error(e, parts)),
        }
    }

    /// Removes the file or link `parts`; an absent one is not an error.
    pub fn remove(&self, parts: &[&str]) -> io::Result<()> {
        self.unlink(parts, UnlinkatFlags::NoRemoveDir)
    }

    /// Removes the empty directory `parts` (never the root itself); an
    /// absent one is not an error.
    pub fn rmdir(&self, parts: &[&str]) -> io::Result<()> {
        self.unlink(parts, UnlinkatFlags::RemoveDir)
    }

    fn unlink(&self, parts: &[&str], flag: UnlinkatFlags) -> io::Result<()> {
        let (dir, name) = match self.parent(parts) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        match unistd::unlinkat(Some(dir.as_raw_fd()), name, flag) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno_io(e, self.shown(parts))),
        }
    }

    /// Renames `from` to `to` (both beneath the root), replacing `to`.
    pub fn rename(&self, from: &[&str], to: &[&str]) -> io::Result<()> {
        let (a, a_name) = self.parent(from)?;
        let (b, b_name) = self.parent(to)?;
        fcntl::renameat(Some(a.as_raw_fd()), a_name, Some(b.as_raw_fd()), b_name).map_err(|e| {
            errno_io(
                e,
                format!("rename {} to {}", self.shown(from), self.shown(to)),
            )
        })
    }

    /// Makes `parts` a symbolic link to `target` (any text: a link is
    /// data), replacing a file or link of that name.
    pub fn symlink(&self, target: &str, parts: &[&str]) -> io::Result<()> {
        let (dir, name) = self.parent(parts)?;
        match unistd::unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(errno_io(e, self.shown(parts))),
        }
        unistd::symlinkat(target, Some(dir.as_raw_fd()), name)
            .map_err(|e| errno_io(e, self.shown(parts)))
    }

    /// Sets the mode and/or times of `parts` itself: a symlink there is
    /// not followed (its target is left alone; a link has no mode to set).
    pub fn setstat(
        &self,
        parts: &[&str],
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> io::Result<()> {
        let (dir, name) = self.parent(parts)?;
        let d = Some(dir.as_raw_fd());
        if let Some((atime, mtime)) = times {
            let ts = |t: SystemTime| {
                let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
                TimeSpec::from_duration(d)
            };
            stat::utimensat(
                d,
                name,
                &ts(atime),
                &ts(mtime),
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| errno_io(e, self.shown(parts)))?;
        }
        if let Some(m) = mode {
            let mode = Mode::from_bits_truncate(m as libc::mode_t);
            match stat::fchmodat(d, name, mode, FchmodatFlags::NoFollowSymlink) {
                // EOPNOTSUPP: it is a symlink, which has no mode of its own.
                Ok(()) | Err(Errno::EOPNOTSUPP) => {}
                Err(e) => return Err(errno_io(e, self.shown(parts))),
            }
        }
        Ok(())
    }

    /// `lstat` of `parts`; `None` when absent.
    pub fn lstat(&self, parts: &[&str]) -> io::Result<Option<Stat>> {
        let (dir, name) = match self.parent(parts) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        match stat::fstatat(
            Some(dir.as_raw_fd()),
            name,
            fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => {
                let fmt = st.st_mode & libc::S_IFMT;
                let mtime = u64::try_from(st.st_mtime).ok().map(|s| {
                    SystemTime::UNIX_EPOCH + std::time::Duration::new(s, st.st_mtime_nsec as u32)
                });
                Ok(Some(Stat {
                    size: st.st_size as u64,
                    is_dir: fmt == libc::S_IFDIR,
                    is_symlink: fmt == libc::S_IFLNK,
                    mtime,
                }))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(errno_io(e, self.shown(parts))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        canary: PathBuf,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("dest");
        let canary = tmp.path().join("canary");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&canary).unwrap();
        std::fs::write(canary.join("secret"), b"canary").unwrap();
        std::os::unix::fs::symlink(&canary, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../canary", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("inside")).unwrap();
        std::os::unix::fs::symlink(canary.join("secret"), root.join("f")).unwrap();
        Tree {
            _tmp: tmp,
            root,
            canary,
        }
    }

    fn is_refusal(e: &io::Error) -> bool {
        super::super::is_permanent(e)
    }

    #[test]
    fn links_that_lead_out_are_refused_for_every_operation() {
        let t = tree();
        let b = Beneath::open(&t.root).unwrap();
        for via in ["abs", "rel"] {
            let e = b.create_new(&[via, "evil"]).unwrap_err();
            assert!(is_refusal(&e), "{via}: {e}");
            assert!(is_refusal(&b.mkdirs(&[via, "d"], 0o755).unwrap_err()));
            assert!(is_refusal(&b.remove(&[via, "secret"]).unwrap_err()));
            assert!(is_refusal(&b.rmdir(&[via, "x"]).unwrap_err()));
            assert!(is_refusal(&b.symlink("/x", &[via, "l"]).unwrap_err()));
            assert!(is_refusal(
                &b.rename(&[via, "secret"], &["stolen"]).unwrap_err()
            ));
            assert!(is_refusal(&b.open_read(&[via, "secret"]).unwrap_err()));
        }
        assert_eq!(
            std::fs::read_dir(&t.canary).unwrap().count(),
            1,
            "the canary is untouched"
        );
        assert_eq!(std::fs::read(t.canary.join("secret")).unwrap(), b"canary");
    }

    #[test]
    fn links_that_stay_beneath_the_root_are_followed() {
        let t = tree();
        let b = Beneath::open(&t.root).unwrap();
        b.mkdirs(&["inside", "deeper"], 0o755).unwrap();
        use std::io::Write;
        b.create_new(&["inside", "deeper", "ok"])
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(std::fs::read(t.root.join("sub/deeper/ok")).unwrap(), b"x");
    }

    #[test]
    fn a_final_symlink_is_replaced_or_left_never_followed() {
        use std::os::unix::fs::PermissionsExt;
        let t = tree();
        let b = Beneath::open(&t.root).unwrap();
        let before = std::fs::metadata(t.canary.join("secret")).unwrap();
        // create_new does not write through it.
        assert_eq!(
            b.create_new(&["f"]).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        // setstat leaves its target alone.
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        b.setstat(&["f"], Some(0o777), Some((when, when))).unwrap();
        let after = std::fs::metadata(t.canary.join("secret")).unwrap();
        assert_eq!(before.permissions().mode(), after.permissions().mode());
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
        // remove takes the link, not its target.
        b.remove(&["f"]).unwrap();
        assert!(t.canary.join("secret").exists());
        assert!(b.lstat(&["f"]).unwrap().is_none());
    }

    #[test]
    fn rmdir_of_the_root_itself_is_refused() {
        let t = tree();
        let b = Beneath::open(&t.root).unwrap();
        assert!(is_refusal(&b.rmdir(&[]).unwrap_err()));
        assert!(t.root.is_dir());
    }

    #[test]
    fn the_fallback_walk_refuses_every_symlink_on_the_way() {
        let t = tree();
        let b = Beneath::open(&t.root).unwrap();
        assert!(b.walk(&["sub"]).is_ok());
        for via in ["abs", "rel", "inside"] {
            let e = b.walk(&[via]).unwrap_err();
            assert!(is_refusal(&e), "{via}: {e}");
        }
    }
}
