//! `pitcher log <config>`: the last lines of an instance's log, then the
//! lines as they are written (like `tail -F`: it follows the file across
//! rotations). `pitcher log supervisor` shows the supervisor's.

use super::select;
use crate::state::Paths;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Options of `pitcher log`.
#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// The config (`component/name`), or `supervisor`.
    config: String,
    /// Which instance's log.
    #[arg(long, short = 'i', default_value_t = 1)]
    instance: u32,
    /// How many lines to show before following.
    #[arg(long, short = 'n', default_value_t = 20)]
    lines: usize,
    /// Print the last lines and exit instead of following.
    #[arg(long)]
    no_follow: bool,
}

/// `pitcher log`.
pub fn run(paths: &Paths, args: LogArgs) -> anyhow::Result<ExitCode> {
    let path = if args.config == "supervisor" {
        paths.supervisor_log()
    } else {
        let targets = select(paths, std::slice::from_ref(&args.config))?;
        let [(component, name)] = targets.as_slice() else {
            anyhow::bail!(
                "'{}' names {} configs; name exactly one",
                args.config,
                targets.len()
            );
        };
        paths.log_file(*component, name, args.instance)
    };
    let mut out = std::io::stdout().lock();
    let mut file = wait_for(&path, !args.no_follow)?;
    let tail = last_lines(&mut file, args.lines)?;
    out.write_all(&tail)?;
    out.flush()?;
    if args.no_follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow(&path, file, &mut out)
}

/// Opens `path`, waiting for it to appear when `wait` (an instance that
/// has not started yet).
fn wait_for(path: &Path, wait: bool) -> anyhow::Result<File> {
    let mut said = false;
    loop {
        match File::open(path) {
            Ok(f) => return Ok(f),
            Err(e) if wait && e.kind() == std::io::ErrorKind::NotFound => {
                if !said {
                    eprintln!("waiting for {} to appear…", path.display());
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => anyhow::bail!("{}: {e}", path.display()),
        }
    }
}

/// The last `n` lines of `file`, leaving it positioned at its end.
fn last_lines(file: &mut File, n: usize) -> std::io::Result<Vec<u8>> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    // Read backwards in chunks until n line ends (past the final one) are in.
    while start > 0 && buf.iter().filter(|b| **b == b'\n').count() <= n {
        let step = start.min(64 * 1024);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    file.seek(SeekFrom::Start(len))?;
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let cut = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n.saturating_sub(1))
        .map(|(i, _)| i + 1);
    let from = if n == 0 { buf.len() } else { cut.unwrap_or(0) };
    Ok(buf[from..].to_vec())
}

/// Copies what is appended to `path` to `out` until killed, reopening the
/// path when the file is rotated away or truncated.
fn follow(path: &PathBuf, mut file: File, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            out.flush()?;
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
        let Ok(now) = std::fs::metadata(path) else {
            continue;
        };
        let open = file.metadata()?;
        if now.ino() != open.ino() || now.dev() != open.dev() {
            // Rotated: finish the old file, then read the new one from its start.
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            if let Ok(f) = File::open(path) {
                file = f;
            }
        } else if now.len() < file.stream_position()? {
            file.seek(SeekFrom::Start(0))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(text: &str, n: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, text).unwrap();
        let mut f = File::open(&p).unwrap();
        String::from_utf8(last_lines(&mut f, n).unwrap()).unwrap()
    }

    #[test]
    fn the_last_lines_are_shown_whole() {
        assert_eq!(tail_of("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_of("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_of("a\nb\n", 10), "a\nb\n");
        assert_eq!(tail_of("a\nb\n", 0), "");
        assert_eq!(tail_of("", 3), "");
    }

    #[test]
    fn long_logs_are_read_from_the_end() {
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail_of(&text, 2), "line 49998\nline 49999\n");
    }
}
