//! The `http://` and `https://` transports: downloads for subscribe.
//!
//! A small HTTP/1.1 client, enough to fetch files from a web server the way
//! sr3 subscribers do: `GET` (and `HEAD` for [`HttpTransport::stat`]) with
//! `Connection: close`, one TCP connection per request, redirects followed
//! (at most [`MAX_REDIRECTS`]; never from https down to plain http), the
//! body streamed to the file as it comes.
//! It is a [`Source`] only: nothing a destination does makes sense
//! against a web server.
//!
//! * https uses rustls with the aws-lc-rs provider, named explicitly (more
//!   than one provider is compiled into pitcher, so a process default
//!   cannot be relied on), and the system's trusted roots.
//! * A `user:password@` in the URL is sent as Basic authentication, only to
//!   the URL's own server (not after a redirect elsewhere). The password
//!   never appears in an error or a log line.
//! * Remote paths are request paths, percent-encoded: [`remote_path`]
//!   builds one from a baseUrl's path and a relPath.
//! * `404 Not Found` and `410 Gone` are `NotFound` errors, so subscribe
//!   skips a file that is gone instead of retrying it; other statuses are
//!   errors that name the status.
//! * The `timeout` option bounds each step: connecting, the TLS
//!   handshake, sending the request and receiving the response head, and
//!   then every read of the body: a transfer fails once the server sends
//!   nothing for that long, however large the file.
//!
//! [`wire`] holds the response parsing.

pub mod wire;

use super::{At, RemoteStat, Source, TransportOptions};
use async_trait::async_trait;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;
use url::Url;
use wire::Head;

/// How many redirects one request follows: plenty for a file server, and
/// a loop fails fast (Python's urllib, under sr3, allows ten).
pub const MAX_REDIRECTS: usize = 5;

/// What a relPath component may keep unencoded in a request path: letters,
/// digits and `-._~` (as Python's `urllib.parse.quote`); everything else,
/// including space, `#`, `?`, `%` and non-ASCII, is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The request path of `rel_path` under a baseUrl whose (already encoded)
/// path is `base_path`: `("/data/", "a b/#1.txt")` → `/data/a%20b/%231.txt`.
/// Empty components are dropped.
pub fn remote_path(base_path: &str, rel_path: &str) -> String {
    let mut p = base_path.trim_end_matches('/').to_string();
    for part in rel_path.split('/').filter(|s| !s.is_empty()) {
        p.push('/');
        p.extend(utf8_percent_encode(part, COMPONENT));
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

/// A URL as it may be shown: without its password.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    u.to_string()
}

/// Downloads from one web server.
pub struct HttpTransport {
    /// `scheme://[user[:password]@]host[:port]/`; paths are set per request.
    origin: Url,
    timeout: Duration,
    /// The TLS settings; `None` means the shared ones with the system roots.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("origin", &shown(&self.origin))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A connection, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A response whose head has been read; the body follows on `conn`.
struct Response {
    head: Head,
    conn: BufReader<Box<dyn Stream>>,
    /// The URL that answered (after redirects).
    url: Url,
}

impl HttpTransport {
    /// A transport for the server of `url` (`http://` or `https://`, with an
    /// optional `user:password@`); its path is ignored. Nothing connects
    /// until the first request.
    pub fn new(url: &str, opts: &TransportOptions) -> io::Result<HttpTransport> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        let mut origin = Url::parse(url).map_err(|e| {
            // The text may hold a password: show only what precedes it.
            let scheme = url.split(':').next().unwrap_or("");
            bad(format!("{scheme}: URL cannot be parsed: {e}"))
        })?;
        if !matches!(origin.scheme(), "http" | "https") {
            return Err(bad(format!("{} is not http: or https:", shown(&origin))));
        }
        if origin.host_str().is_none_or(str::is_empty) {
            return Err(bad(format!("{} names no host", shown(&origin))));
        }
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);
        Ok(HttpTransport {
            origin,
            timeout: opts.timeout,
            tls: None,
        })
    }

    /// The same transport trusting only the roots in `tls` (tests, private
    /// CAs).
    pub fn with_tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> HttpTransport {
        self.tls = Some(tls);
        self
    }

    /// The URL of a remote path: `remote` is a request path, normally
    /// percent-encoded already (see [`remote_path`]); what a path cannot
    /// hold (space, `#`, `?`, non-ASCII) is encoded, `%XX` is kept.
    fn url_of(&self, remote: &str) -> Url {
        let mut u = self.origin.clone();
        if remote.starts_with('/') {
            u.set_path(remote);
        } else {
            u.set_path(&format!("/{remote}"));
        }
        u
    }

    /// Sends `method` for `remote`, following redirects; returns the final
    /// response whatever its status.
    async fn request(&self, method: &str, remote: &str) -> io::Result<Response> {
        let mut url = self.url_of(remote);
        let mut send_auth = true;
        let mut hops = 0;
        loop {
            let resp = self.exchange(method, &url, send_auth).await?;
            if !matches!(resp.head.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let fail = |why: String| io::Error::other(format!("{method} {}: {why}", shown(&url)));
            if hops == MAX_REDIRECTS {
                return Err(fail(format!("more than {MAX_REDIRECTS} redirects")));
            }
            hops += 1;
            let location = resp
                .head
                .header("location")
                .ok_or_else(|| fail(format!("HTTP {} without a Location", resp.head.status)))?;
            let mut next = url
                .join(location)
                .map_err(|e| fail(format!("bad redirect Location {location:?}: {e}")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(fail(format!("redirect to {} refused", next.scheme())));
            }
            if url.scheme() == "https" && next.scheme() == "http" {
                return Err(fail(format!(
                    "redirect from https to plain http ({}) refused",
                    shown(&next)
                )));
            }
            // Credentials go to the server they were written for only.
            let _ = next.set_username("");
            let _ = next.set_password(None);
            send_auth &= next.origin() == self.origin.origin();
            next.set_fragment(None);
            tracing::debug!("{method} {}: redirected to {}", shown(&url), shown(&next));
            url = next;
        }
    }

    /// One request on a new connection, up to the end of the response head.
    async fn exchange(&self, method: &str, url: &Url, send_auth: bool) -> io::Result<Response> {
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("{method} {}: {e}", shown(url)));
        let stream = self.connect(url).await.map_err(context)?;
        let mut conn = BufReader::new(stream);
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pitcher/{version}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n",
            target = request_target(url),
            host = host_header(url),
            version = env!("CARGO_PKG_VERSION"),
        );
        if send_auth {
            if let Some(auth) = self.basic_auth() {
                req.push_str(&format!("Authorization: Basic {auth}\r\n"));
            }
        }
        req.push_str("\r\n");
        let talk = async {
            conn.get_mut().write_all(req.as_bytes()).await?;
            conn.get_mut().flush().await?;
            loop {
                let head = wire::read_head(&mut conn, self.timeout).await?;
                // An interim response (103 Early Hints…) precedes the real one.
                if head.status / 100 != 1 || head.status == 101 {
                    return Ok::<Head, io::Error>(head);
                }
            }
        };
        let head = match tokio::time::timeout(self.timeout, talk).await {
            Ok(r) => r.map_err(context)?,
            Err(_) => {
                return Err(context(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no response within {}s", self.timeout.as_secs()),
                )))
            }
        };
        Ok(Response {
            head,
            conn,
            url: url.clone(),
        })
    }

    /// `base64(user:password)` from the origin URL, decoded from its
    /// percent-encoding; `None` without a user.
    fn basic_auth(&self) -> Option<String> {
        use base64::Engine;
        if self.origin.username().is_empty() {
            return None;
        }
        let user = percent_decode_str(self.origin.username()).collect::<Vec<u8>>();
        let pass = percent_decode_str(self.origin.password().unwrap_or("")).collect::<Vec<u8>>();
        let mut both = user;
        both.push(b':');
        both.extend_from_slice(&pass);
        Some(base64::engine::general_purpose::STANDARD.encode(both))
    }

    /// A TCP connection to the URL's server, in TLS for https.
    async fn connect(&self, url: &Url) -> io::Result<Box<dyn Stream>> {
        let host = url.host_str().unwrap_or("");
        let port = url.port_or_known_default().unwrap_or(80);
        let connecting = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port));
        let tcp = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(r) => r.map_err(|e| io::Error::new(e.kind(), format!("cannot connect: {e}")))?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cannot connect: no answer within {}s",
                        self.timeout.as_secs()
                    ),
                ))
            }
        };
        let _ = tcp.set_nodelay(true);
        if url.scheme() != "https" {
            return Ok(Box::new(tcp));
        }
        let config = match &self.tls {
            Some(c) => c.clone(),
            None => system_tls_config().await?,
        };
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("bad TLS server name: {e}"),
                    )
                })?;
        let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
        match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok(tls)) => Ok(Box::new(tls)),
            Ok(Err(e)) => Err(handshake_error(e)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake failed: no answer within {}s (is this an https server?)",
                    self.timeout.as_secs()
                ),
            )),
        }
    }
}

/// A failed TLS handshake, with a hint when the server did not speak TLS
/// at all (an `https:` URL for a plain http port).
fn handshake_error(e: io::Error) -> io::Error {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let hint = match tls_error {
        Some(rustls::Error::InvalidCertificate(_)) | Some(rustls::Error::AlertReceived(_)) => "",
        _ => " (is this an https server?)",
    };
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("TLS handshake failed{hint}: {e}"),
    )
}

/// The error for a final response that is not a success.
fn status_error(method: &str, resp: &Response) -> io::Error {
    let kind = match resp.head.status {
        404 | 410 => io::ErrorKind::NotFound,
        401 | 403 => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(
        kind,
        format!(
            "{method} {}: HTTP {} {}",
            shown(&resp.url),
            resp.head.status,
            resp.head.reason
        ),
    )
}

/// The request-target of a URL: its path and query.
fn request_target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// The Host header: the host, and the port when it is not the default.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// TLS settings with the aws-lc-rs provider and the given roots.
pub fn tls_config(roots: rustls::RootCertStore) -> io::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// The TLS settings trusting the system's roots, loaded once per process
/// (off the async threads: it reads many files).
async fn system_tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return c.clone().map_err(io::Error::other);
    }
    let made = tokio::task::spawn_blocking(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(format!(
                "no trusted root certificates found on this system{why}"
            ));
        }
        tls_config(roots).map_err(|e| e.to_string())
    })
    .await
    .map_err(io::Error::other)?;
    CONFIG
        .get_or_init(|| made)
        .clone()
        .map_err(io::Error::other)
}

/// An RFC 9110 date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc2822(text)
        .ok()
        .map(SystemTime::from)
}

impl HttpTransport {
    /// A `HEAD`: the size from Content-Length, the mtime from
    /// Last-Modified; a path whose final URL ends in `/` is a directory.
    pub async fn stat(&self, path: &str) -> io::Result<Option<RemoteStat>> {
        let resp = self.request("HEAD", path).await?;
        if resp.head.status / 100 != 2 {
            let e = status_error("HEAD", &resp);
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(RemoteStat {
            size: resp.head.content_length()?.unwrap_or(0),
            is_dir: resp.url.path().ends_with('/'),
            mtime: resp.head.header("last-modified").and_then(http_date),
        }))
    }
}

#[async_trait]
impl Source for HttpTransport {
    /// A `GET` streamed into `out` once the server answered with success.
    async fn get(&self, remote: At<'_>, out: std::fs::File) -> io::Result<u64> {
        remote.parts()?;
        let mut resp = self.request("GET", remote.path).await?;
        if resp.head.status / 100 != 2 {
            return Err(status_error("GET", &resp));
        }
        let what = shown(&resp.url);
        let kind = resp
            .head
            .body_kind(false)
            .map_err(|e| io::Error::new(e.kind(), format!("GET {what}: {e}")))?;
        let mut file = tokio::fs::File::from_std(out);
        async {
            let n = wire::copy_body(&mut resp.conn, kind, &mut file, self.timeout).await?;
            file.flush().await?;
            file.sync_all().await?;
            Ok::<u64, io::Error>(n)
        }
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("GET {what}: {e}")))
    }
}

#[cfg(test)]
mod tests;
