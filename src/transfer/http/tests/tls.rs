//! https against an in-process TLS server whose certificate (for
//! 127.0.0.1, self-signed) the `openssl` command makes; skipped where
//! there is no `openssl`.

use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// A self-signed certificate and its key for 127.0.0.1, or `None` without
/// openssl.
fn self_signed(dir: &Path) -> Option<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "1", "-subj", "/CN=pitcher-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .ok()?;
    if !made.status.success() {
        eprintln!("openssl failed: {}", String::from_utf8_lossy(&made.stderr));
        return None;
    }
    Some((
        CertificateDer::from_pem_file(&cert).expect("cert pem"),
        PrivateKeyDer::from_pem_file(&key).expect("key pem"),
    ))
}

/// A TLS server answering each connection with `body` (200, chunked).
async fn serve_tls(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    body: &'static str,
) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut got = Vec::new();
                let mut b = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&b[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn https_downloads_from_a_trusted_server_and_refuses_an_untrusted_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(dir.path()) else {
        eprintln!("no openssl: https test skipped");
        return;
    };
    let port = serve_tls(cert.clone(), key, "over tls").await;
    let url = format!("https://127.0.0.1:{port}/");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let trusting = transport(&url).with_tls_config(tls_config(roots).unwrap());
    let local = dir.path().join("f");
    assert_eq!(fetch(&trusting, "/f", &local).await.unwrap(), 8);
    assert_eq!(std::fs::read(&local).unwrap(), b"over tls");

    // With the system's roots, a self-signed certificate is refused.
    let e = fetch(&transport(&url), "/f", &dir.path().join("g"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("TLS handshake failed"), "{text}");
    assert!(
        text.contains("certificate") || text.contains("trusted root"),
        "{text}"
    );
    assert!(!dir.path().join("g").exists());
}
