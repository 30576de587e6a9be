//! From SFTP status codes and broken connections to `io::Error`s the sender
//! can act on.
//!
//! OpenSSH's sftp-server (and internal-sftp) sends only SFTP v3 codes, mapped
//! from errno in `errno_to_portable()`: ENOENT/ENOTDIR/ELOOP → NO_SUCH_FILE,
//! EPERM/EACCES → PERMISSION_DENIED, EINVAL/ENAMETOOLONG → BAD_MESSAGE,
//! ENOSYS → OP_UNSUPPORTED, and everything else, EEXIST and ENOTEMPTY
//! included, → FAILURE. So a FAILURE has to be disambiguated by the caller
//! (an EXCL open or a mkdir stats the path afterwards).
//!
//! Any error that is not a status from the server (EOF on the channel, the
//! ssh master gone, a protocol error) means the connection is unusable.

use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::Error as SftpError;
use std::io;

/// What went wrong with one SFTP request.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with a status code; the connection is fine.
    Status(SftpErrorKind, String),
    /// The connection is unusable; the next request must reconnect.
    Link(String),
}

impl Failure {
    /// Sorts an error of the sftp client.
    pub fn of(e: SftpError) -> Failure {
        match e {
            SftpError::SftpError(kind, msg) => Failure::Status(kind, msg.get().0.to_string()),
            SftpError::UnsupportedExtension(ext) => {
                Failure::Status(SftpErrorKind::OpUnsupported, ext.to_string())
            }
            other => Failure::Link(concise(&other.to_string())),
        }
    }

    /// Sorts an `io::Error` of the sftp client's tokio-compatible file,
    /// which wraps server statuses as `Other` errors.
    pub fn of_io(e: io::Error) -> Failure {
        match e.into_inner() {
            Some(inner) => match inner.downcast::<SftpError>() {
                Ok(sftp) => Failure::of(*sftp),
                Err(other) => Failure::Link(other.to_string()),
            },
            None => Failure::Link("i/o error on the sftp channel".into()),
        }
    }

    /// Whether the server said the path does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status(SftpErrorKind::NoSuchFile, _))
    }

    /// Whether the server gave the catch-all FAILURE (EEXIST, ENOTEMPTY, …).
    pub fn is_generic_failure(&self) -> bool {
        matches!(self, Failure::Status(SftpErrorKind::Failure, _))
    }

    /// The `io::Error` for the caller; `what` names the operation and path.
    pub fn into_io(self, what: &str) -> io::Error {
        match self {
            Failure::Status(kind, msg) => io::Error::new(kind_of(kind), format!("{what}: {msg}")),
            Failure::Link(msg) => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("{what}: sftp connection lost: {msg}"),
            ),
        }
    }
}

/// A lost connection's error in words. Some of the clients' errors print
/// their internal state (`Session(NativeMuxImpl(Session { tempdir: … }))`):
/// that goes to the debug log only.
fn concise(text: &str) -> String {
    if text.contains("NativeMuxImpl") || text.contains("Session {") || text.len() > 300 {
        tracing::debug!("sftp connection error in full: {text}");
        let head: String = text
            .split(['(', '{', ':'])
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .take(80)
            .collect();
        return match head.as_str() {
            "" | "Session" => "the ssh session ended".to_string(),
            h => format!("{h} (the ssh session ended)"),
        };
    }
    text.to_string()
}

/// The `io::ErrorKind` of an SFTP v3 status.
pub fn kind_of(kind: SftpErrorKind) -> io::ErrorKind {
    match kind {
        SftpErrorKind::NoSuchFile => io::ErrorKind::NotFound,
        SftpErrorKind::PermDenied => io::ErrorKind::PermissionDenied,
        SftpErrorKind::OpUnsupported => io::ErrorKind::Unsupported,
        SftpErrorKind::BadMessage => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sftp_statuses_map_to_the_io_kinds_the_sender_tests() {
        assert_eq!(kind_of(SftpErrorKind::NoSuchFile), io::ErrorKind::NotFound);
        assert_eq!(
            kind_of(SftpErrorKind::PermDenied),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(kind_of(SftpErrorKind::Failure), io::ErrorKind::Other);
        assert_eq!(
            kind_of(SftpErrorKind::OpUnsupported),
            io::ErrorKind::Unsupported
        );
    }

    #[test]
    fn a_channel_error_is_a_lost_connection_never_a_not_found() {
        // An i/o error of kind NotFound on the channel must not read as
        // "remote path absent" (the sender would skip a rename).
        let f = Failure::of(SftpError::IOError(io::Error::new(
            io::ErrorKind::NotFound,
            "socket gone",
        )));
        assert!(matches!(f, Failure::Link(_)));
        let e = f.into_io("sftp rename a");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[test]
    fn internal_dumps_stay_out_of_error_text() {
        let dump = "Session(NativeMuxImpl(Session { tempdir: Some(TempDir { path: \"/tmp/.ssh-connection\" }), ctl: \"/tmp/x\" }))";
        let s = concise(dump);
        assert!(
            !s.contains("NativeMuxImpl") && !s.contains("tempdir"),
            "{s}"
        );
        assert!(s.contains("ssh session ended"), "{s}");
        assert_eq!(concise("channel closed"), "channel closed");
    }

    #[test]
    fn wrapped_io_errors_from_the_compat_file_are_unwrapped() {
        let wrapped = io::Error::other(SftpError::UnsupportedExtension(&"fsync"));
        assert!(matches!(
            Failure::of_io(wrapped),
            Failure::Status(SftpErrorKind::OpUnsupported, _)
        ));
        assert!(matches!(
            Failure::of_io(io::Error::from(io::ErrorKind::BrokenPipe)),
            Failure::Link(_)
        ));
    }
}
