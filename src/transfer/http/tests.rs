//! The http transport against in-process servers that answer with canned
//! responses (and record the requests they got).

use super::*;
use base64::Engine;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Downloads `remote` into a new file `local` as subscribe does: the
/// file is removed again when the download fails.
async fn fetch(t: &HttpTransport, remote: &str, local: &Path) -> io::Result<u64> {
    let out = std::fs::File::create(local)?;
    let r = t.get(At::new("/", remote), out).await;
    if r.is_err() {
        let _ = std::fs::remove_file(local);
    }
    r
}

/// A server on 127.0.0.1 answering its n-th connection with `responses[n]`
/// (`{port}` replaced by its port), then closing; it returns the request
/// heads it received.
async fn serve(responses: Vec<String>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for r in responses {
            let Ok((mut s, _)) = listener.accept().await else {
                break;
            };
            seen.push(read_request(&mut s).await);
            let _ = s
                .write_all(r.replace("{port}", &port.to_string()).as_bytes())
                .await;
            let _ = s.shutdown().await;
        }
        seen
    });
    (port, task)
}

async fn read_request(s: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn opts(timeout: Duration) -> TransportOptions {
    TransportOptions {
        timeout,
        ..TransportOptions::default()
    }
}

fn transport(url: &str) -> HttpTransport {
    HttpTransport::new(url, &opts(Duration::from_secs(10))).expect("transport")
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn rel_path_components_are_percent_encoded_under_the_base_path() {
    assert_eq!(
        remote_path("/data/", "a b/#1?.txt"),
        "/data/a%20b/%231%3F.txt"
    );
    assert_eq!(remote_path("/", "ünï/100%"), "/%C3%BCn%C3%AF/100%25");
    assert_eq!(remote_path("", "x//y/"), "/x/y");
    assert_eq!(
        remote_path("/pre%20encoded", "f-._~"),
        "/pre%20encoded/f-._~"
    );
    assert_eq!(remote_path("/", ""), "/");
}

#[test]
fn only_http_urls_with_a_host_make_a_transport_and_errors_hide_the_password() {
    let d = opts(Duration::from_secs(1));
    assert!(HttpTransport::new("https://example.invalid/x/", &d).is_ok());
    let e = HttpTransport::new("ftp://u:hunter2@h/", &d).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = HttpTransport::new("http://u:hunter2@[bad/", &d).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let t = HttpTransport::new("http://u:hunter2@h/", &d).unwrap();
    assert!(!format!("{t:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_content_length_body_arrives_and_the_request_is_plain_http_1_1() {
    let (port, server) = serve(vec![ok("hello world")]).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    let t = transport(&format!("http://127.0.0.1:{port}/ignored/"));
    let n = fetch(&t, &remote_path("/data", "a b/#1.txt"), &local)
        .await
        .unwrap();
    assert_eq!(n, 11);
    assert_eq!(std::fs::read(&local).unwrap(), b"hello world");
    let req = &server.await.unwrap()[0];
    assert!(
        req.starts_with("GET /data/a%20b/%231.txt HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        req.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{req}"
    );
    assert!(
        req.contains(&format!(
            "\r\nUser-Agent: pitcher/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{req}"
    );
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
    assert!(!req.contains("Authorization"), "{req}");
}

#[tokio::test]
async fn chunked_and_read_to_close_bodies_arrive_whole() {
    let (port, _server) = serve(vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n".into(),
        "HTTP/1.0 200 OK\r\n\r\nuntil the end".into(),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(fetch(&t, "/c", &dir.path().join("c")).await.unwrap(), 7);
    assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"abcdefg");
    assert_eq!(fetch(&t, "/e", &dir.path().join("e")).await.unwrap(), 13);
    assert_eq!(
        std::fs::read(dir.path().join("e")).unwrap(),
        b"until the end"
    );
}

#[tokio::test]
async fn redirects_are_followed_relative_and_absolute_with_credentials() {
    let (port, server) = serve(vec![
        "HTTP/1.1 302 Found\r\nLocation: moved/here\r\nContent-Length: 0\r\n\r\n".into(),
        "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:{port}/final\r\n\r\n".into(),
        ok("at last"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&format!("http://bob:p%40ss@127.0.0.1:{port}/"));
    let n = fetch(&t, "/dir/start", &dir.path().join("f"))
        .await
        .unwrap();
    assert_eq!(n, 7);
    let reqs = server.await.unwrap();
    assert!(reqs[1].starts_with("GET /dir/moved/here "), "{}", reqs[1]);
    assert!(reqs[2].starts_with("GET /final "), "{}", reqs[2]);
    let auth = format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode("bob:p@ss")
    );
    assert!(reqs.iter().all(|r| r.contains(&auth)), "{reqs:?}");
}

#[tokio::test]
async fn credentials_are_not_sent_to_another_server_after_a_redirect() {
    let (other, other_server) = serve(vec![ok("elsewhere")]).await;
    let (port, _server) = serve(vec![format!(
        "HTTP/1.1 307 Temporary\r\nLocation: http://localhost:{other}/x\r\n\r\n"
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&format!("http://bob:secret@127.0.0.1:{port}/"));
    fetch(&t, "/f", &dir.path().join("f")).await.unwrap();
    let req = &other_server.await.unwrap()[0];
    assert!(!req.contains("Authorization"), "{req}");
}

#[tokio::test]
async fn a_redirect_loop_stops_after_five_and_leaves_no_file() {
    let hop = "HTTP/1.1 302 Found\r\nLocation: /again\r\n\r\n".to_string();
    let (port, server) = serve(vec![hop; MAX_REDIRECTS + 2]).await;
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&format!("http://127.0.0.1:{port}/"));
    let e = fetch(&t, "/loop", &dir.path().join("f")).await.unwrap_err();
    assert!(e.to_string().contains("more than 5 redirects"), "{e}");
    assert!(!dir.path().join("f").exists());
    drop(t);
    server.abort();
}

#[tokio::test]
async fn not_found_and_gone_are_not_found_and_other_statuses_name_themselves() {
    let (port, _server) = serve(vec![
        "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!".into(),
        "HTTP/1.1 410 Gone\r\n\r\n".into(),
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".into(),
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".into(),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    let t = transport(&format!("http://u:hunter2@127.0.0.1:{port}/"));
    let e = fetch(&t, "/a", &local).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("HTTP 404 Not Found"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = fetch(&t, "/b", &local).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let e = fetch(&t, "/c", &local).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Other);
    assert!(
        e.to_string().contains("HTTP 500 Internal Server Error"),
        "{e}"
    );
    let e = fetch(&t, "/d", &local).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(!local.exists(), "an error response must not leave a file");
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_the_partial_file_is_removed() {
    let (port, _server) = serve(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".into(),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    let t = transport(&format!("http://127.0.0.1:{port}/"));
    let e = fetch(&t, "/short", &local).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert!(e.to_string().contains("after 9 of 100 bytes"), "{e}");
    assert!(!local.exists());
}

#[tokio::test]
async fn stat_is_a_head_with_size_and_mtime_and_absent_is_none() {
    let (port, server) = serve(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n".into(),
        "HTTP/1.1 404 Not Found\r\nContent-Length: 50\r\n\r\n".into(),
    ])
    .await;
    let t = transport(&format!("http://127.0.0.1:{port}/"));
    let st = t.stat("/f").await.unwrap().expect("present");
    assert_eq!(st.size, 1234);
    assert!(!st.is_dir);
    assert_eq!(
        st.mtime,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
    );
    assert_eq!(t.stat("/gone").await.unwrap(), None);
    assert!(server.await.unwrap()[0].starts_with("HEAD /f HTTP/1.1\r\n"));
}

#[test]
fn an_http_url_is_a_source_never_a_destination() {
    let e = crate::transfer::for_url("http://127.0.0.1:9/")
        .err()
        .expect("http is no destination");
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    assert!(e.to_string().contains("for downloading"), "{e}");
    assert!(
        crate::transfer::source_for_url("http://127.0.0.1:9/", &opts(Duration::from_secs(1)))
            .is_ok()
    );
}

/// A server on loopback that accepts one connection and says nothing for
/// 30 s; the transport for it (`scheme` http or https) waits 300 ms.
async fn silent_server(scheme: &str) -> (HttpTransport, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let conn = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(conn);
    });
    let t = HttpTransport::new(
        &format!("{scheme}://127.0.0.1:{port}/"),
        &opts(Duration::from_millis(300)),
    )
    .unwrap();
    (t, hold)
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (t, hold) = silent_server("http").await;
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let e = fetch(&t, "/slow", &dir.path().join("f")).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn https_to_a_plain_http_port_fails_with_a_tls_error() {
    // A plain http server answers the ClientHello as a bad request.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut b = [0u8; 512];
            let _ = s.read(&mut b).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            let _ = s.shutdown().await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&format!("https://127.0.0.1:{port}/"));
    let e = fetch(&t, "/f", &dir.path().join("f")).await.unwrap_err();
    assert!(e.to_string().contains("TLS handshake failed"), "{e}");
    assert!(e.to_string().contains("is this an https server?"), "{e}");
    assert!(!dir.path().join("f").exists());
}

#[tokio::test]
async fn https_to_a_server_that_stays_silent_times_out_naming_tls() {
    let (t, hold) = silent_server("https").await;
    let dir = tempfile::tempdir().unwrap();
    let e = fetch(&t, "/f", &dir.path().join("f")).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(e.to_string().contains("TLS handshake failed"), "{e}");
    hold.abort();
}

#[tokio::test]
async fn connection_refused_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&format!("http://127.0.0.1:{port}/"));
    let e = fetch(&t, "/f", &dir.path().join("f")).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

mod tls;
