//! HTTP/1.1 on the wire, as much as a downloader needs: the response head
//! (status line and headers) and the three ways a body ends —
//! `Content-Length`, `Transfer-Encoding: chunked`, or the server closing
//! the connection.
//!
//! Everything reads from an `AsyncBufRead` so the parsers can be tested on
//! byte slices, and every read is bounded by an idle timeout: a server
//! that stops sending fails the transfer instead of holding it forever.

use std::io;
use std::time::Duration;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

/// The most a response head may take (status line and headers); a server
/// sending more is not one we can talk to.
const HEAD_MAX: usize = 64 * 1024;

/// The most headers a response may have.
const HEADERS_MAX: usize = 128;

/// How much of the body is read at once before it is written out.
const CHUNK: usize = 128 * 1024;

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code (200, 404…).
    pub status: u16,
    /// The reason phrase, for error messages.
    pub reason: String,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How the body of this response (to a GET, or to a HEAD when
    /// `head_request`) is delimited.
    pub fn body_kind(&self, head_request: bool) -> io::Result<BodyKind> {
        if head_request || self.status / 100 == 1 || self.status == 204 || self.status == 304 {
            return Ok(BodyKind::Length(0));
        }
        let chunked = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .rfind(|c| !c.is_empty())
            .is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
        if chunked {
            return Ok(BodyKind::Chunked);
        }
        match self.content_length()? {
            Some(n) => Ok(BodyKind::Length(n)),
            None => Ok(BodyKind::UntilClose),
        }
    }

    /// `Content-Length`, if sent; differing values are an error (a body
    /// whose end is ambiguous cannot be trusted to be whole).
    pub fn content_length(&self) -> io::Result<Option<u64>> {
        let mut found: Option<u64> = None;
        for (n, v) in &self.headers {
            if !n.eq_ignore_ascii_case("content-length") {
                continue;
            }
            for part in v.split(',') {
                let len: u64 = part
                    .trim()
                    .parse()
                    .map_err(|_| invalid(format!("bad Content-Length {v:?}")))?;
                if found.is_some_and(|f| f != len) {
                    return Err(invalid(format!("conflicting Content-Length {v:?}")));
                }
                found = Some(len);
            }
        }
        Ok(found)
    }
}

/// Where a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// After exactly this many bytes.
    Length(u64),
    /// At the zero-size chunk.
    Chunked,
    /// When the server closes the connection.
    UntilClose,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Runs one read or write, failing with `TimedOut` after `idle`.
async fn bounded<T>(
    idle: Duration,
    what: &str,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(idle, f).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: nothing for {}s", idle.as_secs()),
        ))
    })
}

/// Reads one line ending in LF (CR LF accepted) of at most `budget` bytes,
/// without the line ending; `budget` shrinks by what was read.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    budget: &mut usize,
    idle: Duration,
) -> io::Result<String> {
    let mut line = Vec::new();
    let limit = (*budget as u64).saturating_add(1);
    let n = bounded(idle, "reading the response", async {
        (&mut *r).take(limit).read_until(b'\n', &mut line).await
    })
    .await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection before the response ended",
        ));
    }
    if line.last() != Some(&b'\n') {
        if n as u64 >= limit {
            return Err(invalid(format!(
                "response head longer than {HEAD_MAX} bytes"
            )));
        }
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection in the middle of a line",
        ));
    }
    *budget = budget.saturating_sub(n);
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    // Header values are ISO-8859-1 at worst; nothing we use is outside ASCII.
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads a response head: the status line, then headers up to the empty
/// line.
pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R, idle: Duration) -> io::Result<Head> {
    let mut budget = HEAD_MAX;
    let status_line = read_line(r, &mut budget, idle).await?;
    let (status, reason) = parse_status_line(&status_line)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let line = read_line(r, &mut budget, idle).await?;
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: a continuation of the previous value.
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                None => return Err(invalid(format!("bad header line {line:?}"))),
            }
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        if headers.len() == HEADERS_MAX {
            return Err(invalid(format!("more than {HEADERS_MAX} headers")));
        }
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Head {
        status,
        reason,
        headers,
    })
}

/// `HTTP/1.1 404 Not Found` → (404, "Not Found").
fn parse_status_line(line: &str) -> io::Result<(u16, String)> {
    let bad = || invalid(format!("not an HTTP response: {:?}", truncate(line, 80)));
    let rest = line.strip_prefix("HTTP/").ok_or_else(bad)?;
    let (_version, rest) = rest.split_once(' ').ok_or_else(bad)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status: u16 = code.parse().map_err(|_| bad())?;
    if !(100..=999).contains(&status) {
        return Err(bad());
    }
    Ok((status, reason.trim().to_string()))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Copies a body delimited by `kind` from `r` to `w`; returns its length.
/// A body that ends early (the connection closes before its length or its
/// last chunk) is an `UnexpectedEof` error: a partial file is never taken
/// for a whole one.
pub async fn copy_body<R, W>(
    r: &mut R,
    kind: BodyKind,
    w: &mut W,
    idle: Duration,
) -> io::Result<u64>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    match kind {
        BodyKind::Length(len) => copy_exact(r, len, w, &mut buf, idle).await,
        BodyKind::UntilClose => {
            let mut total = 0u64;
            loop {
                let n = bounded(idle, "reading the body", r.read(&mut buf)).await?;
                if n == 0 {
                    return Ok(total);
                }
                bounded(idle, "writing the file", w.write_all(&buf[..n])).await?;
                total += n as u64;
            }
        }
        BodyKind::Chunked => {
            let mut total = 0u64;
            loop {
                let mut budget = HEAD_MAX;
                let line = read_line(r, &mut budget, idle).await?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_text, 16)
                    .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
                if size == 0 {
                    // Trailer fields, up to the empty line; none are used.
                    while !read_line(r, &mut budget, idle).await?.is_empty() {}
                    return Ok(total);
                }
                total += copy_exact(r, size, w, &mut buf, idle).await?;
                if !read_line(r, &mut budget, idle).await?.is_empty() {
                    return Err(invalid("chunk not followed by CRLF".into()));
                }
            }
        }
    }
}

/// Copies exactly `len` bytes from `r` to `w`.
async fn copy_exact<R, W>(
    r: &mut R,
    len: u64,
    w: &mut W,
    buf: &mut [u8],
    idle: Duration,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = bounded(idle, "reading the body", r.read(&mut buf[..want])).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the server closed the connection after {} of {len} bytes",
                    len - left
                ),
            ));
        }
        bounded(idle, "writing the file", w.write_all(&buf[..n])).await?;
        left -= n as u64;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    async fn head_of(bytes: &[u8]) -> io::Result<Head> {
        let mut r = bytes;
        read_head(&mut r, IDLE).await
    }

    async fn body_of(bytes: &[u8], kind: BodyKind) -> io::Result<Vec<u8>> {
        let mut r = bytes;
        let mut out = Vec::new();
        let n = copy_body(&mut r, kind, &mut out, IDLE).await?;
        assert_eq!(n, out.len() as u64, "returned length is what was written");
        Ok(out)
    }

    #[tokio::test]
    async fn status_line_and_headers_are_parsed_case_insensitively() {
        let h = head_of(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nX-A:  b \r\n\r\nrest")
            .await
            .unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(h.reason, "Not Found");
        assert_eq!(h.header("content-length"), Some("9"));
        assert_eq!(h.header("x-a"), Some("b"));
        assert_eq!(h.body_kind(false).unwrap(), BodyKind::Length(9));
        assert_eq!(h.body_kind(true).unwrap(), BodyKind::Length(0));
    }

    #[tokio::test]
    async fn bare_lf_line_endings_and_a_missing_reason_are_accepted() {
        let h = head_of(b"HTTP/1.0 200\nServer: x\n\n").await.unwrap();
        assert_eq!((h.status, h.reason.as_str()), (200, ""));
        assert_eq!(h.body_kind(false).unwrap(), BodyKind::UntilClose);
    }

    #[tokio::test]
    async fn garbage_and_truncated_heads_are_errors_not_panics() {
        let e = head_of(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("not an HTTP response"), "{e}");
        let e = head_of(b"HTTP/1.1 200 OK\r\nContent-Le").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = head_of(b"").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = head_of(b"HTTP/1.1 abc OK\r\n\r\n").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(HEAD_MAX));
        let e = head_of(huge.as_bytes()).await.unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }

    #[tokio::test]
    async fn chunked_wins_over_content_length_and_conflicting_lengths_are_refused() {
        let h = head_of(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(h.body_kind(false).unwrap(), BodyKind::Chunked);
        let h = head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            h.body_kind(false).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let h = head_of(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
        assert_eq!(h.body_kind(false).unwrap(), BodyKind::Length(0));
    }

    #[tokio::test]
    async fn a_chunked_body_is_joined_with_extensions_and_trailers_ignored() {
        let body = b"5;name=v\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        assert_eq!(
            body_of(body, BodyKind::Chunked).await.unwrap(),
            b"hello world!"
        );
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = format!("{:x}\r\n", big.len()).into_bytes();
        wire.extend_from_slice(&big);
        wire.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(body_of(&wire, BodyKind::Chunked).await.unwrap(), big);
    }

    #[tokio::test]
    async fn a_chunked_body_cut_short_or_malformed_is_an_error() {
        let e = body_of(b"5\r\nhel", BodyKind::Chunked).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = body_of(b"5\r\nhello\r\n", BodyKind::Chunked)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "no last chunk");
        let e = body_of(b"zz\r\nhello\r\n0\r\n\r\n", BodyKind::Chunked)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = body_of(b"2\r\nhello\r\n0\r\n\r\n", BodyKind::Chunked)
            .await
            .unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidData,
            "chunk longer than its size"
        );
    }

    #[tokio::test]
    async fn a_content_length_body_stops_at_its_length_and_a_short_one_fails() {
        assert_eq!(
            body_of(b"abcdefgh", BodyKind::Length(5)).await.unwrap(),
            b"abcde"
        );
        let e = body_of(b"abc", BodyKind::Length(5)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("after 3 of 5 bytes"), "{e}");
        assert_eq!(
            body_of(b"to the end", BodyKind::UntilClose).await.unwrap(),
            b"to the end"
        );
    }

    #[tokio::test]
    async fn a_server_that_stops_sending_times_out() {
        let (client, _server) = tokio::io::duplex(64);
        let mut r = tokio::io::BufReader::new(client);
        let e = read_head(&mut r, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
