//! Accelerated copies: large files handed to an external binary
//! (`accelScpCommand`, default `/usr/bin/scp %s %d`).
//!
//! As in sr3, the command is split on whitespace (no shell), `%s` becomes
//! the source and `%d` the destination in whatever token holds them. A
//! transport may insert options right after the program name: the sftp
//! transport adds `-o ControlPath=<its master>` so scp rides the connection
//! that is already authenticated instead of opening its own.
//!
//! The child is killed if the copy outlives its timeout or the caller's
//! future is dropped (a stopping sender must not leave scp running).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The argv of an accel command: `command` split on whitespace, `extra`
/// inserted after the program, `%s`/`%d` replaced by `src`/`dst`.
pub fn argv(
    command: &str,
    src: &OsStr,
    dst: &OsStr,
    extra: &[OsString],
) -> io::Result<Vec<OsString>> {
    let mut tokens = command.split_whitespace();
    let program = tokens
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty accel command"))?;
    let mut argv = vec![OsString::from(program)];
    argv.extend(extra.iter().cloned());
    for t in tokens {
        argv.push(substitute(t, src, dst));
    }
    if !command.contains("%s") || !command.contains("%d") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("accel command '{command}' must contain %s and %d"),
        ));
    }
    Ok(argv)
}

/// The options that make the accel program keep `byteRateMax` within one
/// file: scp's `-l` (Kbit/s), when the program is scp; none for a program
/// pitcher does not know (the flow still keeps the pace between files).
pub fn rate_limit(command: &str, byte_rate_max: u64) -> Vec<OsString> {
    let program = command.split_whitespace().next().unwrap_or("");
    let is_scp = Path::new(program).file_name() == Some(OsStr::new("scp"));
    if byte_rate_max == 0 || !is_scp {
        return Vec::new();
    }
    let kbit = (byte_rate_max.saturating_mul(8) / 1000).max(1);
    vec!["-l".into(), kbit.to_string().into()]
}

/// `token` with `%s` and `%d` replaced, byte-wise (paths need not be UTF-8).
fn substitute(token: &str, src: &OsStr, dst: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(token.len());
    let bytes = token.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'%', Some(b's')) => {
                out.extend_from_slice(src.as_bytes());
                i += 2;
            }
            (b'%', Some(b'd')) => {
                out.extend_from_slice(dst.as_bytes());
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// `local` as an absolute path, so a name such as `-x` or `a:b` is never
/// read by scp as an option or a remote host.
pub fn absolute(local: &Path) -> io::Result<PathBuf> {
    if local.is_absolute() {
        Ok(local.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(local))
    }
}

/// Runs `argv`; an exit status other than 0 is an error carrying the end of
/// its stderr. The child is killed when `timeout` passes.
pub async fn run(argv: &[OsString], timeout: Duration) -> io::Result<()> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty accel command"))?;
    let name = program.to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {name}: {e}")))?;
    let mut stderr = child.stderr.take();
    let work = async {
        let mut text = Vec::new();
        if let Some(err) = stderr.as_mut() {
            // Bounded: a chatty program must not fill memory.
            let _ = err.take(64 * 1024).read_to_end(&mut text).await;
        }
        let status = child.wait().await?;
        Ok::<_, io::Error>((status, text))
    };
    let (status, text) = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{name} did not finish within {timeout:?}; killed"),
            ))
        }
    };
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&text);
    let why = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    Err(io::Error::other(format!("{name} failed ({status}): {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn byte_rate_max_becomes_scps_limit_in_kbit_and_nothing_for_other_programs() {
        assert_eq!(
            rate_limit("/usr/bin/scp %s %d", 1_000_000),
            vec![os("-l"), os("8000")]
        );
        assert_eq!(rate_limit("scp -C %s %d", 100), vec![os("-l"), os("1")]);
        assert!(rate_limit("/usr/bin/scp %s %d", 0).is_empty());
        assert!(rate_limit("/usr/local/bin/fast_copy %s %d", 1_000_000).is_empty());
        assert!(rate_limit("/usr/bin/scpx %s %d", 1_000_000).is_empty());
    }

    #[test]
    fn default_scp_command_gets_options_after_the_program_and_paths_substituted() {
        let a = argv(
            "/usr/bin/scp %s %d",
            OsStr::new("/d/a b"),
            OsStr::new("hpfx:/x/a b.tmp"),
            &[os("-o"), os("ControlPath=/tmp/pitcher-0/1/m/master")],
        )
        .expect("argv");
        assert_eq!(
            a,
            [
                os("/usr/bin/scp"),
                os("-o"),
                os("ControlPath=/tmp/pitcher-0/1/m/master"),
                os("/d/a b"),
                os("hpfx:/x/a b.tmp"),
            ]
        );
    }

    #[test]
    fn placeholders_inside_a_token_are_substituted_and_whitespace_runs_collapse() {
        let a = argv(
            "  wrap   --from=%s\t--to=%d  -v ",
            OsStr::new("/s"),
            OsStr::new("h:/d"),
            &[],
        )
        .expect("argv");
        assert_eq!(a, [os("wrap"), os("--from=/s"), os("--to=h:/d"), os("-v")]);
    }

    #[test]
    fn command_without_placeholders_or_program_is_refused() {
        assert!(argv("", OsStr::new("a"), OsStr::new("b"), &[]).is_err());
        assert!(argv("/usr/bin/scp %s", OsStr::new("a"), OsStr::new("b"), &[]).is_err());
    }

    #[test]
    fn relative_local_names_become_absolute_so_a_leading_dash_is_no_option() {
        let p = absolute(Path::new("-rf")).expect("cwd");
        assert!(p.is_absolute());
        assert!(p.ends_with("-rf"));
    }

    #[tokio::test]
    async fn failing_command_reports_its_stderr_and_slow_one_is_killed() {
        let e = run(
            &[os("sh"), os("-c"), os("echo nope >&2; exit 3")],
            Duration::from_secs(5),
        )
        .await
        .expect_err("exit 3");
        assert!(e.to_string().contains("nope"), "{e}");
        let e = run(&[os("sleep"), os("5")], Duration::from_millis(100))
            .await
            .expect_err("timeout");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        run(&[os("true")], Duration::from_secs(5))
            .await
            .expect("true succeeds");
    }
}
