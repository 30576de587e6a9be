//! sr3's checksum cache in the user xattrs `user.sr_identity` (the identity
//! as JSON) and `user.sr_mtime` (the file's mtime in sr3's time format),
//! best effort: every failure (no xattr support, read-only file, foreign
//! content) means "no cache". When to trust and when to write it is decided
//! by the caller (see `identity`).

use super::{pyjson, timestamp, Identity};
use std::path::Path;
use std::time::SystemTime;

const IDENTITY: &str = "user.sr_identity";
const MTIME: &str = "user.sr_mtime";

/// The cached identity, if it was cached for exactly this mtime.
pub(crate) fn get(path: &Path, mtime: SystemTime) -> Option<Identity> {
    let cached_mtime = String::from_utf8(sys::get(path, MTIME)?).ok()?;
    if timestamp::parse(&cached_mtime).ok()? != mtime {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&sys::get(path, IDENTITY)?).ok()?;
    Some(Identity {
        method: v.get("method")?.as_str()?.to_string(),
        value: v.get("value")?.as_str()?.to_string(),
    })
}

/// Cache `id` for `mtime`, in sr3's layout (JSON identity, sr3 time).
pub(crate) fn set(path: &Path, mtime: SystemTime, id: &Identity) {
    let json = serde_json::json!({"method": id.method, "value": id.value});
    let json = pyjson::to_string(&json);
    // identity first: a crash in between leaves an old mtime, never a
    // new mtime next to an old identity.
    if sys::set(path, IDENTITY, json.as_bytes()) {
        sys::set(path, MTIME, timestamp::format(mtime).as_bytes());
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// sr3 values are short (a base64 sha512 is 88 bytes).
    const MAX: usize = 4096;

    pub(crate) fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
        let p = CString::new(path.as_os_str().as_bytes()).ok()?;
        let n = CString::new(name).ok()?;
        let mut buf = vec![0u8; MAX];
        // SAFETY: both strings are NUL-terminated and live across the
        // call; buf is writable for buf.len() bytes.
        let got =
            unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        let len = usize::try_from(got).ok()?;
        buf.truncate(len);
        Some(buf)
    }

    pub(crate) fn set(path: &Path, name: &str, value: &[u8]) -> bool {
        let (Ok(p), Ok(n)) = (
            CString::new(path.as_os_str().as_bytes()),
            CString::new(name),
        ) else {
            return false;
        };
        // SAFETY: both strings are NUL-terminated and live across the
        // call; value is readable for value.len() bytes.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        rc == 0
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::path::Path;
    pub(crate) fn get(_: &Path, _: &str) -> Option<Vec<u8>> {
        None
    }
    pub(crate) fn set(_: &Path, _: &str, _: &[u8]) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) use sys::set as raw_set;
