//! Delivery receipts end to end, with the real binary against the real
//! brokers on loopback (Mosquitto on 1883, RabbitMQ on 5672): a broker that
//! accepts an announcement and then drops it no longer loses the file.
//!
//! (a) issue 20's scenario on MQTT: a sender's session holds at most
//!     Mosquitto's `max_queued_messages` (1,000) while the sender is away;
//!     1,500 files dropped meanwhile all arrive once it is back;
//! (b) a RabbitMQ queue purged by hand with announcements in it: all arrive;
//! (c) receipts lost in flight (the watch's receipts queue purged): each
//!     file is transferred at most twice, and nodupe makes it once;
//! (d) receipts off (`receiptTimeout 0`, `report off`): as before, and no
//!     trace of receipts.
//!
//! Each test has its own exchanges and queues, deleted at the end (MQTT
//! sessions expire an hour after their last use).

mod common;

use common::{amqp_url, assert_delivered, content, unique, wait_until, Env};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The watch's receiptTimeout in these tests.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound: receiptTimeout plus a minute.
const WITHIN: Duration = Duration::from_secs(70);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `n` files `<prefix>_NNNN.dat` into `hot`, adding them to `expected`.
fn drop_files(hot: &Path, prefix: &str, n: usize, expected: &mut BTreeMap<String, Vec<u8>>) {
    for i in 0..n {
        let name = format!("{prefix}_{i:04}.dat");
        let c = content(i + prefix.len() * 10_000, 100 + i % 300);
        std::fs::write(hot.join(&name), &c).unwrap();
        expected.insert(name, c);
    }
}

/// Log lines of `component/name` containing `what`.
fn log_count(env: &Env, component_name: &str, what: &str) -> usize {
    let prefix = component_name.replace('/', "_");
    let mut n = 0;
    for e in std::fs::read_dir(env.state.join("log"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            n += std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(what))
                .count();
        }
    }
    n
}

/// The `status --json` row of `config`.
fn row(env: &Env, config: &str) -> serde_json::Value {
    let out = env.ok(&["status", "--json", config]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter().next().unwrap_or(serde_json::Value::Null)
}

/// Waits until the watch has no file waiting for a receipt.
fn assert_no_receipt_pending(env: &Env, watch: &str, limit: Duration) {
    let drained = wait_until(limit, || row(env, watch)["receipts_pending"] == 0);
    assert!(
        drained,
        "files still wait for receipts: {}\n{}",
        row(env, watch),
        tail(&env.logs(), 40)
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `rabbitmqctl args…`, bounded.
fn rabbitmqctl(args: &[&str]) -> String {
    let o = Command::new("timeout")
        .arg("60s")
        .arg("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl");
    assert!(o.status.success(), "rabbitmqctl {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The name kept in the one file of `dir` ending in `suffix`.
fn kept_name(dir: &Path, suffix: &str) -> String {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(suffix) {
            return std::fs::read_to_string(e.path())
                .unwrap()
                .trim()
                .to_string();
        }
    }
    panic!("no *{suffix} in {}", dir.display());
}

/// A watch and a sender on one broker, with their own exchanges.
struct Pair {
    env: Env,
    name: String,
    /// The exchange the watch announces on.
    x_in: String,
    /// The exchange reports (receipts) go to.
    x_report: String,
}

impl Pair {
    fn new(tag: &str, broker: &str, watch_extra: &str, sender_extra: &str) -> Pair {
        let env = Env::new();
        let id = unique(tag);
        let name = format!("rcpt_{id}");
        let user = if broker.starts_with("amqp") {
            "guest_"
        } else {
            ""
        };
        let x_in = format!("xs_{user}{id}");
        let x_report = format!("xr_{user}{id}");
        env.write_config("credentials.conf", "amqp://guest:guest@127.0.0.1/\n");
        std::fs::set_permissions(
            env.config.join("credentials.conf"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        env.write_config(
            &format!("watch/{name}.conf"),
            &format!(
                "post_broker {broker}\npost_exchange {x_in}\npost_baseUrl file:{hot}\npath {hot}\nreport_exchange {x_report}\nreceiptTimeout {}s\nexpire 1h\n{watch_extra}\nreject .*\\.tmp$\naccept .*\n",
                RECEIPT_TIMEOUT.as_secs(),
                hot = env.hot.display()
            ),
        );
        env.write_config(
            &format!("sender/{name}.conf"),
            &format!(
                "broker {broker}\nexchange {x_in}\nreport_exchange {x_report}\nsendTo file:\ndirectory {dest}\ninflight .tmp\nnodupe_ttl on\nexpire 1h\n{sender_extra}\nreject .*\\.tmp$\naccept .*\n",
                dest = env.dest.display()
            ),
        );
        Pair {
            env,
            name,
            x_in,
            x_report,
        }
    }

    fn watch(&self) -> String {
        format!("watch/{}", self.name)
    }

    fn sender(&self) -> String {
        format!("sender/{}", self.name)
    }

    fn state(&self, component: &str) -> std::path::PathBuf {
        self.env.state.join(component).join(&self.name)
    }

    /// Files the watch has posted (its own announcements, not the
    /// re-announcements).
    fn posted(&self) -> usize {
        log_count(&self.env, &self.watch(), "posted: ")
    }

    /// Starts both and sends one file through, so that the sender's queue
    /// (or session) exists and the watch knows its receiver.
    fn warm_up(&self, expected: &mut BTreeMap<String, Vec<u8>>) {
        self.env.ok(&["start"]);
        drop_files(&self.env.hot, "warm", 1, expected);
        assert_delivered(&self.env, expected, Duration::from_secs(60));
        let known = wait_until(Duration::from_secs(30), || {
            log_count(&self.env, &self.watch(), "receipts now expected from") == 1
        });
        assert!(
            known,
            "the watch never heard from its sender\n{}",
            tail(&self.env.logs(), 40)
        );
    }

    /// Deletes what the test made on RabbitMQ.
    fn delete_amqp(&self) {
        let rt = rt();
        let url = amqp_url();
        for dir in [self.state("sender"), self.state("watch")] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().ends_with(".qname") {
                    let q = std::fs::read_to_string(e.path()).unwrap_or_default();
                    let _ = rt.block_on(pitcher::broker::amqp::delete_queue(&url, q.trim()));
                }
            }
        }
        for x in [&self.x_in, &self.x_report] {
            let _ = rt.block_on(pitcher::broker::amqp::delete_exchange(&url, x));
        }
    }
}

/// Issue 20's scenario: the tutorial's shape on MQTT with Mosquitto's
/// defaults. The sender is away while 1,500 files are announced; its
/// session keeps 1,000 of them and Mosquitto drops the rest. Without
/// receipts 500 never arrive, and nothing says so; with them, the watch
/// announces those again and all 1,500 arrive within receiptTimeout plus a
/// minute of the sender's return.
#[test]
fn mqtt_offline_sender_with_more_files_than_the_broker_keeps_gets_them_all() {
    let pair = Pair::new("mqtt", "mqtt://127.0.0.1/", "", "");
    let env = &pair.env;
    let mut expected = BTreeMap::new();
    pair.warm_up(&mut expected);
    env.ok(&["stop", &pair.sender()]);
    drop_files(&env.hot, "offline", 1500, &mut expected);
    let announced = wait_until(Duration::from_secs(60), || pair.posted() >= 1501);
    assert!(announced, "the watch did not announce the 1,500 files");
    let pending = row(env, &pair.watch())["receipts_pending"].as_u64();
    assert_eq!(pending, Some(1500), "{}", row(env, &pair.watch()));
    let back = Instant::now();
    env.ok(&["start", &pair.sender()]);
    assert_delivered(env, &expected, WITHIN);
    let took = back.elapsed();
    // The broker did drop some: they came back through receipts.
    let again = log_count(env, &pair.watch(), "re-announced ");
    assert!(
        again > 0,
        "nothing was announced again: did Mosquitto keep all 1,500 (max_queued_messages)?\n{}",
        tail(&env.logs(), 40)
    );
    assert_no_receipt_pending(env, &pair.watch(), Duration::from_secs(30));
    eprintln!(
        "1,500 files to an offline MQTT sender: all arrived {took:.1?} after it was started again ({again} re-announcement lines)"
    );
}

/// Announcements purged from the sender's RabbitMQ queue by hand: the
/// watch announces them again and all arrive.
#[test]
fn rabbitmq_queue_purged_by_hand_mid_flow_loses_nothing() {
    let pair = Pair::new("purge", "amqp://guest@127.0.0.1/", "", "instances 2\n");
    let env = &pair.env;
    let mut expected = BTreeMap::new();
    pair.warm_up(&mut expected);
    env.ok(&["stop", &pair.sender()]);
    drop_files(&env.hot, "purged", 300, &mut expected);
    assert!(wait_until(Duration::from_secs(60), || pair.posted() >= 301));
    let queue = kept_name(&pair.state("sender"), ".qname");
    let purged = rabbitmqctl(&["purge_queue", &queue]);
    let back = Instant::now();
    drop_files(&env.hot, "after", 300, &mut expected);
    env.ok(&["start", &pair.sender()]);
    assert_delivered(env, &expected, WITHIN);
    let took = back.elapsed();
    assert!(log_count(env, &pair.watch(), "re-announced ") > 0);
    assert_no_receipt_pending(env, &pair.watch(), Duration::from_secs(30));
    eprintln!(
        "purge_queue ({}): all 601 arrived {took:.1?} after",
        purged.trim()
    );
    pair.delete_amqp();
}

/// Receipts lost in flight: the watch is away while its files are
/// delivered, and its receipts queue is purged before it is back. It
/// announces the files again; the sender's nodupe drops them (reporting
/// 304): no file is transferred more than twice, and with nodupe none twice.
#[test]
fn a_receipt_lost_in_flight_costs_at_most_one_duplicate() {
    let pair = Pair::new("lost", "amqp://guest@127.0.0.1/", "", "");
    let env = &pair.env;
    let mut expected = BTreeMap::new();
    pair.warm_up(&mut expected);
    // Announced while the sender is away; delivered while the watch is.
    env.ok(&["stop", &pair.sender()]);
    drop_files(&env.hot, "lost", 200, &mut expected);
    assert!(wait_until(Duration::from_secs(60), || pair.posted() >= 201));
    env.ok(&["stop", &pair.watch()]);
    assert_eq!(
        row(env, &pair.watch())["receipts_pending"].as_u64(),
        Some(200)
    );
    env.ok(&["start", &pair.sender()]);
    assert_delivered(env, &expected, Duration::from_secs(60));
    let receipts_queue = kept_name(&pair.state("watch"), ".receipts.qname");
    // The reports reach the queue, and are thrown away there.
    std::thread::sleep(Duration::from_secs(2));
    rabbitmqctl(&["purge_queue", &receipts_queue]);
    env.ok(&["start", &pair.watch()]);
    assert!(
        wait_until(RECEIPT_TIMEOUT + Duration::from_secs(30), || {
            log_count(env, &pair.watch(), "re-announced ") > 0
        }),
        "the watch did not announce again what had no receipt\n{}",
        tail(&env.logs(), 40)
    );
    assert_no_receipt_pending(env, &pair.watch(), WITHIN);
    // Each file's transfers, in the sender's log.
    let logs = env.logs();
    let mut most = 0;
    for name in expected.keys() {
        let sent = logs
            .lines()
            .filter(|l| l.contains("sent: ") && l.contains(&format!("/{name} to ")))
            .count();
        assert!(sent <= 2, "{name} was sent {sent} times");
        most = most.max(sent);
    }
    let dups = log_count(env, &pair.sender(), "duplicate ignored");
    assert!(dups >= 200, "{dups} re-announcements reached the sender");
    assert_delivered(env, &expected, Duration::from_secs(10));
    eprintln!(
        "200 receipts lost: each file sent at most {most} time(s); {dups} re-announcements dropped by nodupe"
    );
    pair.delete_amqp();
}

/// Receipts off: the files arrive as before; the watch keeps no receipts
/// store nor queue, and the sender reports nothing.
#[test]
fn receipts_off_change_nothing() {
    let pair = Pair::new(
        "off",
        "amqp://guest@127.0.0.1/",
        "receiptTimeout 0\n",
        "report off\n",
    );
    let env = &pair.env;
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    drop_files(&env.hot, "off", 100, &mut expected);
    assert_delivered(env, &expected, Duration::from_secs(60));
    assert!(!pair.state("watch").join("receipts.db").exists());
    assert_eq!(
        row(env, &pair.watch())["receipts_pending"],
        serde_json::Value::Null
    );
    assert_eq!(log_count(env, &pair.watch(), "receipts"), 0);
    let exchanges = rabbitmqctl(&["list_exchanges", "name"]);
    assert!(
        !exchanges.lines().any(|l| l.trim() == pair.x_report),
        "the sender declared its report exchange with report off"
    );
    let status = env.ok(&["status", &pair.watch()]);
    assert!(status.contains("Rcpt"), "{status}");
    pair.delete_amqp();
}
