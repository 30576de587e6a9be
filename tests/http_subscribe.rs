//! Subscribe downloading over http: a real web server (Python's
//! `http.server` on 127.0.0.1) serves a directory, v03 messages whose
//! baseUrl is that server go into the embedded broker, and the real
//! `pitcher` daemon fetches the files into `directory`.

mod common;

use common::{assert_delivered, content, tree, wait_until, Env};
use pitcher::message::{FileMessageOptions, Message};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);
const EXCHANGE: &str = "xs_it_http";

/// `python3 -m http.server` serving `dir` on a free port of 127.0.0.1,
/// stopped when dropped.
struct WebServer {
    child: Child,
    base_url: String,
    dir: PathBuf,
}

/// A `http.server` handler that answers 401 unless the request carries
/// HTTP Basic credentials `user:password` (argv 1), serving argv 3 on port
/// argv 2.
const BASIC_AUTH_SERVER: &str = r#"
import base64, functools, http.server, sys
want = "Basic " + base64.b64encode(sys.argv[1].encode()).decode()
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="t"')
            self.end_headers()
            return
        super().do_GET()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])),
    functools.partial(H, directory=sys.argv[3])).serve_forever()
"#;

impl WebServer {
    fn start(dir: &Path) -> WebServer {
        WebServer::start_with(dir, None)
    }

    /// With `Some("user:password")`, every request needs those credentials.
    fn start_with(dir: &Path, basic_auth: Option<&str>) -> WebServer {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("python3");
        match basic_auth {
            None => cmd
                .args(["-m", "http.server", "--bind", "127.0.0.1"])
                .arg(port.to_string())
                .arg("--directory")
                .arg(dir),
            Some(userpass) => cmd
                .args(["-c", BASIC_AUTH_SERVER, userpass])
                .arg(port.to_string())
                .arg(dir),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "http.server did not start on port {port}");
        WebServer {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        }
    }

    /// Writes `rel` under the served directory.
    fn put(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An installation with `subscribe/web` (mirror on, `directory` = env.dest)
/// started, so its queue is declared before anything is published.
fn started_subscriber() -> Env {
    let env = Env::new();
    start_subscriber(&env);
    env
}

/// Writes `subscribe/web` into `env` and starts it.
fn start_subscriber(env: &Env) {
    env.write_config(
        "subscribe/web.conf",
        &format!(
            "broker local:\nexchange {EXCHANGE}\ndirectory {}\nmirror on\ninflight .tmp\ntimeout 20\naccept .*\n",
            env.dest.display()
        ),
    );
    env.ok(&["start"]);
}

/// Publishes `msgs` into the embedded broker's exchange.
fn publish(env: &Env, msgs: &[Message]) {
    use pitcher::broker::{Outgoing, Publisher};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = env.state.join("local/broker.db");
        let mut p = pitcher::broker::local::open_publisher(&db).unwrap();
        let out: Vec<Outgoing> = msgs
            .iter()
            .map(|m| Outgoing::new(EXCHANGE, &m.topic("v03"), m.to_json().into_bytes()))
            .collect();
        p.publish(&out).await.unwrap();
    });
}

/// The announcement of a served file.
fn announce(web: &WebServer, rel: &str) -> Message {
    Message::for_file(
        &web.base_url,
        rel,
        &web.dir.join(rel),
        &FileMessageOptions::default(),
    )
    .unwrap()
}

fn sha256(path: &Path) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().to_vec()
}

#[test]
fn files_named_with_spaces_hashes_and_unicode_arrive_whole() {
    let env = started_subscriber();
    let web = WebServer::start(&env.root.path().join("www"));
    let names = [
        "with space.txt",
        "hash#1.txt",
        "ünïcödé-文件.txt",
        "sub dir/question?.txt",
        "100%.txt",
        "looks%41encoded.txt",
        "plus+and&amp=.txt",
    ];
    let mut expected = BTreeMap::new();
    let mut msgs = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let c = content(i, 1000 + i * 17);
        web.put(n, &c);
        expected.insert(n.to_string(), c);
        msgs.push(announce(&web, n));
    }
    publish(&env, &msgs);
    assert_delivered(&env, &expected, LIMIT);
}

/// The announcements name the server only; its password is in
/// credentials.conf, as sr3 looks it up, and never in a log line.
#[test]
fn a_server_that_wants_a_password_gets_it_from_credentials_conf() {
    let env = Env::new();
    let web = WebServer::start_with(&env.root.path().join("www"), Some("bob:s3cr%t"));
    env.write_config(
        "credentials.conf",
        &format!(
            "{}/\n",
            web.base_url.replace("http://", "http://bob:s3cr%25t@")
        ),
    );
    std::fs::set_permissions(
        env.config.join("credentials.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    start_subscriber(&env);
    let mut expected = BTreeMap::new();
    let mut msgs = Vec::new();
    for i in 0..3 {
        let rel = format!("locked/f{i}");
        let c = content(i, 5000);
        web.put(&rel, &c);
        expected.insert(rel.clone(), c);
        msgs.push(announce(&web, &rel));
    }
    publish(&env, &msgs);
    assert_delivered(&env, &expected, LIMIT);
    assert!(!env.logs().contains("s3cr"), "a password reached the log");
}

#[test]
fn a_thirty_megabyte_file_arrives_whole() {
    let env = started_subscriber();
    let web = WebServer::start(&env.root.path().join("www"));
    let big = content(7, 30 << 20);
    let src = web.put("big/thirty.bin", &big);
    drop(big);
    publish(&env, &[announce(&web, "big/thirty.bin")]);
    let dst = env.dest.join("big/thirty.bin");
    let arrived = wait_until(LIMIT, || {
        std::fs::metadata(&dst).is_ok_and(|m| m.len() == 30 << 20)
    });
    assert!(arrived, "30 MB file did not arrive: {}", env.logs());
    assert_eq!(sha256(&dst), sha256(&src), "content differs");
    assert!(!env.dest.join("big/thirty.bin.tmp").exists());
}

#[test]
fn a_file_gone_from_the_server_is_skipped_once_not_retried() {
    let env = started_subscriber();
    let web = WebServer::start(&env.root.path().join("www"));
    web.put("gone.txt", b"was here");
    let gone = announce(&web, "gone.txt");
    std::fs::remove_file(web.dir.join("gone.txt")).unwrap();
    web.put("after.txt", b"after");
    publish(&env, &[gone, announce(&web, "after.txt")]);
    let mut expected = BTreeMap::new();
    expected.insert("after.txt".to_string(), b"after".to_vec());
    assert_delivered(&env, &expected, LIMIT);
    assert!(
        wait_until(Duration::from_secs(10), || env
            .logs()
            .lines()
            .any(|l| l.contains("skipped:") && l.contains("gone.txt"))),
        "no skip line for the 404: {}",
        env.logs()
    );
    // Give a retry a chance to show up, then check there was none.
    std::thread::sleep(Duration::from_secs(2));
    let logs = env.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("gone.txt") && l.contains("queued for retry")),
        "the 404 went to the retry queue: {logs}"
    );
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("skipped:") && l.contains("gone.txt"))
            .count(),
        1,
        "{logs}"
    );
}

#[test]
fn a_rel_path_climbing_out_of_directory_is_refused() {
    let env = started_subscriber();
    let web = WebServer::start(&env.root.path().join("www"));
    // The web server would answer these (it normalises `..`), so the
    // refusal must come from subscribe itself.
    web.put("escape.txt", b"escaped");
    web.put("inside/ok.txt", b"fine");
    let mut climb = announce(&web, "escape.txt");
    climb.rel_path = "../escape.txt".into();
    let mut deep = announce(&web, "escape.txt");
    deep.rel_path = "inside/../../escape.txt".into();
    publish(&env, &[climb, deep, announce(&web, "inside/ok.txt")]);
    let mut expected = BTreeMap::new();
    expected.insert("inside/ok.txt".to_string(), b"fine".to_vec());
    assert_delivered(&env, &expected, LIMIT);
    assert!(
        wait_until(Duration::from_secs(10), || env
            .logs()
            .matches("would escape its directory")
            .count()
            >= 2),
        "{}",
        env.logs()
    );
    let outside = env.dest.parent().unwrap();
    assert!(
        !outside.join("escape.txt").exists(),
        "written outside directory"
    );
    assert_eq!(tree(&env.dest).len(), 1);
}
