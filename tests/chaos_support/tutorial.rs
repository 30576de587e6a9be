//! The tutorial's real shape for the chaos run: watch → RabbitMQ
//! (`amqp://guest@127.0.0.1/`, its password in a mode-0600
//! `credentials.conf`, exchange named for this run) → sender ×N →
//! `sendTo sftp://hpfx` (the loopback sshd of `scripts/sshd-harness.sh`),
//! delivering into a tmpfs of its own under the remote user's home (so
//! that it can be filled up).
//!
//! [`Tutorial`] is a guard: dropped (panics included) it stops the
//! configs, deletes the sender's queue and the exchange, unmounts and
//! removes the remote directory.

use super::faults::SmallDisk;
use crate::common::{unique, Env};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The broker the tutorial's configs name (the password comes from
/// `credentials.conf`).
pub const BROKER: &str = "amqp://guest@127.0.0.1/";

/// The remote user's home and the ssh config the sender reads, from the
/// harness's exports (`eval "$(scripts/sshd-harness.sh env)"`).
fn remote_home() -> PathBuf {
    let hint = "run `bash scripts/chaos/run.sh --sftp-amqp` (or `eval \"$(bash scripts/sshd-harness.sh env)\"` \
                after `bash scripts/sshd-harness.sh start`)";
    std::env::var("PITCHER_SSH_CONFIG")
        .unwrap_or_else(|_| panic!("PITCHER_SSH_CONFIG is not set: {hint}"));
    PathBuf::from(
        std::env::var("PITCHER_SSHD_HOME")
            .unwrap_or_else(|_| panic!("PITCHER_SSHD_HOME is not set: {hint}")),
    )
}

/// `uid:gid` of the harness's login user, who must own the remote tree.
fn remote_owner() -> Option<(String, String)> {
    let user = std::env::var("PITCHER_SSHD_USER").unwrap_or_else(|_| "pitchertest".into());
    let id = |flag: &str| {
        let o = Command::new("id").args([flag, &user]).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    Some((id("-u")?, id("-g")?))
}

/// Where the tutorial's configs send their messages.
pub struct BrokerSite {
    /// As the configs name it (the password in credentials.conf).
    pub config_url: String,
    /// The credentials.conf line.
    pub credentials: String,
    /// For the clean-up, with the password.
    pub url: url::Url,
    /// Extra sender lines (`queueType quorum`).
    pub sender_extra: String,
}

impl BrokerSite {
    /// The machine's RabbitMQ on 127.0.0.1:5672.
    pub fn single() -> BrokerSite {
        BrokerSite {
            config_url: BROKER.to_string(),
            credentials: "amqp://guest:guest@127.0.0.1/\n".to_string(),
            url: url::Url::parse("amqp://guest:guest@127.0.0.1/").unwrap(),
            sender_extra: String::new(),
        }
    }

    /// The 3-node cluster of `scripts/rabbitmq-cluster.sh`, every node
    /// named, the sender's queue a quorum queue.
    pub fn cluster() -> BrokerSite {
        BrokerSite {
            config_url: crate::cluster_support::config_url("127.0.0.1"),
            credentials: crate::cluster_support::credentials("127.0.0.1"),
            url: crate::cluster_support::url(),
            sender_extra: "queueType quorum\n".to_string(),
        }
    }
}

/// The tutorial's configs in an [`Env`], and what to undo at the end.
pub struct Tutorial {
    /// The exchange the watch posts to and the sender's queue is bound to.
    pub exchange: String,
    /// Where the files land (the sender's `post_baseDir`).
    pub remote: PathBuf,
    /// The tmpfs on `remote`, when mounting is allowed here.
    pub disk: Option<SmallDisk>,
    config: PathBuf,
    state: PathBuf,
    broker: url::Url,
}

impl Tutorial {
    /// Writes `credentials.conf` (0600), `watch/hot.conf` and
    /// `sender/hot.conf` (with `instances`), mounts a tmpfs of `mb` MiB on
    /// a fresh remote directory owned by the login user, and declares the
    /// exchange and the sender's queue (the watch publishes `mandatory`:
    /// a message no queue takes would come back unroutable).
    pub fn setup(env: &Env, instances: u32, mb: u64) -> Tutorial {
        Tutorial::setup_on(env, instances, mb, &BrokerSite::single())
    }

    /// [`Tutorial::setup`] on `site`.
    pub fn setup_on(env: &Env, instances: u32, mb: u64, site: &BrokerSite) -> Tutorial {
        let broker = &site.config_url;
        let home = remote_home();
        let exchange = format!("xs_guest_{}", unique("chaos"));
        let remote = home.join("on_hpfx").join(unique("chaos"));
        let owner = remote_owner();
        std::fs::create_dir_all(&remote).expect("remote directory");
        let disk = SmallDisk::mount_owned(&remote, mb, owner.clone());
        if let Some((u, g)) = &owner {
            // Without the tmpfs, the directory itself must be the user's.
            let _ = Command::new("chown")
                .arg(format!("{u}:{g}"))
                .arg(home.join("on_hpfx"))
                .arg(&remote)
                .status();
        }
        env.write_config("credentials.conf", &site.credentials);
        std::fs::set_permissions(
            env.config.join("credentials.conf"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("credentials.conf mode 0600");
        env.write_config(
            "watch/hot.conf",
            &format!(
                "post_broker {broker}\npost_exchange {exchange}\n\npost_baseUrl file:{hot}\npath {hot}\n\nnodupe_ttl on\n\n\
                 # exclude working files (that end in .tmp)\nreject .*\\.tmp$\naccept .*\n",
                hot = env.hot.display()
            ),
        );
        env.write_config(
            "sender/hot.conf",
            &format!(
                "broker {broker}\nexchange {exchange}\n{extra}\n# sendTo host should match Host in ~/.ssh/config\nsendTo sftp://hpfx\n\n\
                 instances {instances}\n\naccelThreshold 1M\n\ninflight .tmp\n\nnodupe_ttl on\n\nreject .*\\.tmp$\naccept .*\n\n\
                 post_baseUrl sftp://pas037@hpfx.collab.science.gc.ca/on_hpfx\n\npost_baseDir {remote}\n",
                remote = remote.display(),
                extra = site.sender_extra
            ),
        );
        let t = Tutorial {
            exchange,
            remote,
            disk,
            config: env.config.clone(),
            state: env.state.clone(),
            broker: site.url.clone(),
        };
        env.ok(&["declare", "watch/hot"]);
        env.ok(&["declare", "sender/hot"]);
        t
    }

    fn pitcher(&self, args: &[&str]) {
        let mut c = Command::new("timeout");
        c.args(["-k", "5", "60", env!("CARGO_BIN_EXE_pitcher")])
            .args(args)
            .env("PITCHER_CONFIG_DIR", &self.config)
            .env("PITCHER_STATE_DIR", &self.state);
        let _ = c.output();
    }

    /// The sender's queue name, as the sender saved it.
    fn queue(&self) -> Option<String> {
        let dir = self.state.join("sender/hot");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".qname"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .map(|s| s.trim().to_string())
    }
}

fn delete_on_broker(url: &url::Url, queue: Option<String>, exchange: &str) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let limit = Duration::from_secs(30);
        if let Some(q) = queue {
            let _ = tokio::time::timeout(limit, pitcher::broker::amqp::delete_queue(url, &q)).await;
        }
        let _ = tokio::time::timeout(limit, pitcher::broker::amqp::delete_exchange(url, exchange))
            .await;
    });
}

impl Drop for Tutorial {
    fn drop(&mut self) {
        self.pitcher(&["stop"]);
        let queue = self.queue();
        // `cleanup` deletes the queue by the name in the state dir; the
        // direct delete covers a state dir cleanup already removed.
        self.pitcher(&["cleanup", "sender/hot", "watch/hot"]);
        delete_on_broker(&self.broker, queue, &self.exchange);
        self.disk.take();
        let _ = std::fs::remove_dir_all(&self.remote);
    }
}
