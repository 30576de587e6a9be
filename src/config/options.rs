//! The effective options of one config: what every flow reads.
//!
//! Field names follow sr3's keywords (`post_baseUrl` → `post_base_url`).
//! Defaults are sr3's *effective* defaults (sr3-behaviour.md §3.4), set per
//! component by [`Config::new`].

use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// The kinds of config sr3 knows; the subdirectory of the config dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Cpost,
    Cpump,
    Flow,
    Poll,
    Post,
    Sarra,
    Sender,
    Shovel,
    Subscribe,
    Watch,
    Winnow,
}

impl Component {
    /// Whether the component reads a queue (a watch, post, cpost or poll
    /// only publishes).
    pub fn consumes(self) -> bool {
        !matches!(
            self,
            Component::Watch | Component::Post | Component::Cpost | Component::Poll
        )
    }

    /// Every component, in sr3's order.
    pub const ALL: [Component; 11] = [
        Component::Cpost,
        Component::Cpump,
        Component::Flow,
        Component::Poll,
        Component::Post,
        Component::Sarra,
        Component::Sender,
        Component::Shovel,
        Component::Subscribe,
        Component::Watch,
        Component::Winnow,
    ];

    /// The directory and CLI name: `sender`, `watch`, …
    pub fn name(self) -> &'static str {
        match self {
            Component::Cpost => "cpost",
            Component::Cpump => "cpump",
            Component::Flow => "flow",
            Component::Poll => "poll",
            Component::Post => "post",
            Component::Sarra => "sarra",
            Component::Sender => "sender",
            Component::Shovel => "shovel",
            Component::Subscribe => "subscribe",
            Component::Watch => "watch",
            Component::Winnow => "winnow",
        }
    }

    /// The component named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Component> {
        Component::ALL.iter().copied().find(|c| c.name() == s)
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How `strip` removes leading parts of the relPath.
#[derive(Debug, Clone)]
pub enum Strip {
    /// Drop this many leading path components (0 = none).
    Count(usize),
    /// Remove the first match of this regex from the path.
    Pattern(Regex),
}

/// One `accept` or `reject` line, with the destination options in force
/// where it stood (sr3 captures directory/mirror/strip/flatten/filename per
/// line).
#[derive(Debug, Clone)]
pub struct Mask {
    /// The pattern as written.
    pub pattern: String,
    /// The pattern anchored at the start, as Python's `re.match`.
    pub regex: Regex,
    /// `accept` (true) or `reject` (false).
    pub accept: bool,
    /// `directory` in force at this line.
    pub directory: Option<String>,
    /// `mirror` in force at this line.
    pub mirror: bool,
    /// `strip` in force at this line.
    pub strip: Strip,
    /// `flatten` in force at this line.
    pub flatten: String,
    /// `filename` in force at this line.
    pub filename: Option<String>,
}

/// Where a file is written while it is in flight (`inflight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inflight {
    /// Write under the final name (sr3's code default, `inflight None`).
    None,
    /// `inflight .tmp`: `name.tmp`.
    Suffix(String),
    /// `inflight .`: `.name` (a prefix).
    Prefix(String),
    /// `inflight tmp/`: `tmp/name`, a subdirectory.
    Subdir(String),
    /// `inflight umask`: final name, permissions set only once complete.
    Umask,
}

impl Inflight {
    /// The name a file named `name` has while in flight, relative to its
    /// directory (`Subdir` gives `tmp/name`). A prefix or suffix that would
    /// make the name longer than file systems take (255 bytes) shortens
    /// the name instead, keeping a hash of all of it, so the inflight name
    /// still fits, still matches `*.tmp`-style patterns, and is the same
    /// on every try: `<start of name>~<8 hex digits><suffix>`.
    pub fn temp_name(&self, name: &str) -> String {
        match self {
            Inflight::None | Inflight::Umask => name.to_string(),
            Inflight::Suffix(s) => format!("{}{s}", fitted(name, s.len())),
            Inflight::Prefix(p) => format!("{p}{}", fitted(name, p.len())),
            Inflight::Subdir(d) => format!("{}/{name}", d.trim_end_matches('/')),
        }
    }
}

/// The longest file name, in bytes.
const NAME_MAX: usize = 255;

/// `name`, shortened when `extra` more bytes would not fit in NAME_MAX:
/// its longest start that does (at a character boundary), `~`, and the
/// FNV-1a hash of the whole name in hex.
fn fitted(name: &str, extra: usize) -> std::borrow::Cow<'_, str> {
    if name.len() + extra <= NAME_MAX {
        return name.into();
    }
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let mut keep = NAME_MAX.saturating_sub(extra + 9).min(name.len());
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}~{hash:08x}", &name[..keep]).into()
}

/// A RabbitMQ queue type (`queueType`), sent as `x-queue-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    Classic,
    /// Replicated over a cluster's nodes (Raft); durable, never
    /// auto-deleted, prefetch per consumer only.
    Quorum,
    /// An append-only log; deliveries are acked like a queue's.
    Stream,
}

impl QueueType {
    /// The `x-queue-type` value.
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// The file events a component acts on (`fileEvents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEvents {
    pub create: bool,
    pub delete: bool,
    pub link: bool,
    pub mkdir: bool,
    pub modify: bool,
    pub rmdir: bool,
}

impl Default for FileEvents {
    fn default() -> Self {
        FileEvents {
            create: true,
            delete: true,
            link: true,
            mkdir: true,
            modify: true,
            rmdir: true,
        }
    }
}

/// How a sender checks a delivered file before acknowledging it
/// (`verifyDelivery`, pitcher's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// No check beyond the transfer's own success.
    Off,
    /// The destination's size equals the bytes sent (the default).
    Size,
    /// Size, and a checksum computed at the destination (`checksumCommand`
    /// over ssh for sftp) equal to the message's identity.
    Checksum,
}

/// What the nodupe cache keys on (`nodupe_basis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodupeBasis {
    Path,
    Name,
    Data,
}

/// One queue binding: exchange and topic (`topicPrefix` + `subtopic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub exchange: String,
    /// The whole topic pattern, e.g. `v03.#` or `v03.cap.*`.
    pub topic: String,
}

/// The optional details that follow a URL in `credentials.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialDetails {
    pub ssh_keyfile: Option<PathBuf>,
    pub passive: Option<bool>,
    pub binary: Option<bool>,
    pub tls: bool,
    pub prot_p: bool,
    pub implicit_ftps: bool,
    pub bearer_token: Option<String>,
    pub login_method: Option<String>,
}

/// Every option of one config, after defaults, includes, variables and
/// credentials.
#[derive(Debug, Clone)]
pub struct Config {
    // --- identity ---
    pub component: Component,
    /// The config's name (file name without `.conf`).
    pub name: String,
    /// The `.conf` file it was read from.
    pub file: PathBuf,

    // --- where messages come from ---
    /// `broker`, with its password filled in from credentials.conf.
    pub broker: Option<Url>,
    /// `exchange` after finalize: the explicit one, else `xs_<brokerUser>`
    /// (+ `_<exchangeSuffix>`), else `xpublic` for anonymous.
    pub exchange: Option<String>,
    pub exchange_suffix: Option<String>,
    /// `topicPrefix`, default `v03`.
    pub topic_prefix: String,
    /// One per `subtopic` line, or one `<topicPrefix>.#` when there is none.
    pub bindings: Vec<Binding>,
    /// `queueName`, if set. Never `${VAR}`-expanded at parse time (as in
    /// sr3: the queue-name logic expands and persists it).
    pub queue_name: Option<String>,
    /// `queueShare`, default `${USER}_${HOSTNAME}_${RAND8}` (left unexpanded
    /// here; state/ expands and persists it).
    pub queue_share: String,
    /// `prefetch`, default 25.
    pub prefetch: u32,
    /// `batch`, default 25.
    pub batch: usize,
    /// `expire` (queue x-expires), default none.
    pub expire: Option<Duration>,
    /// `messageAgeMax`, default none.
    pub message_age_max: Option<Duration>,
    /// `durable`, default on.
    pub durable: bool,
    /// `queueType` (AMQP `x-queue-type`), default none: the broker's
    /// default, classic.
    pub queue_type: Option<QueueType>,
    /// `persistent`, default on.
    pub persistent: bool,

    // --- where messages go ---
    /// `post_broker`, with its password filled in.
    pub post_broker: Option<Url>,
    /// `post_exchange` after finalize (default `xs_<postBrokerUser>` +
    /// `_<post_exchangeSuffix>`), set whenever post_broker is.
    pub post_exchange: Option<String>,
    pub post_exchange_suffix: Option<String>,
    /// `post_topicPrefix`, default = topicPrefix.
    pub post_topic_prefix: String,
    /// `post_baseUrl` as written (after `${VAR}` expansion).
    pub post_base_url: Option<String>,
    /// `post_baseDir`; when unset, derived as sr3 does from a `file:`
    /// post_baseUrl (`file:/x` → `/x`, `file:` → empty) or from baseDir.
    pub post_base_dir: Option<String>,
    /// `post_format`, default `v03`.
    pub post_format: String,

    // --- work ---
    /// `sendTo` (synonym `destination`), as written.
    pub send_to: Option<String>,
    /// `sendTo` parsed, with the password from the matching
    /// credentials.conf entry filled in (percent-encoded, as url keeps it).
    /// None when sendTo is unset. Added by config/.
    pub send_to_url: Option<Url>,
    /// Details from the credentials.conf entry that matched sendTo.
    pub send_to_details: Option<CredentialDetails>,
    /// credentials.conf, for URLs that only messages name (the baseUrls
    /// subscribe downloads from). Its Debug shows no password.
    pub credentials: super::Credentials,
    /// `path` lines (watch, post), in order.
    pub paths: Vec<String>,
    /// `directory` (config-wide value, the last one set).
    pub directory: Option<String>,
    /// `baseDir`.
    pub base_dir: Option<String>,
    /// `mirror`: on, but off for subscribe.
    pub mirror: bool,
    /// `strip`, default 0.
    pub strip: Strip,
    /// `flatten`, default `/`.
    pub flatten: String,
    /// `filename`, default none.
    pub filename: Option<String>,
    /// accept/reject lines, in file order.
    pub masks: Vec<Mask>,
    /// `acceptUnmatched`, default on.
    pub accept_unmatched: bool,
    /// `download`, on for sender and subscribe.
    pub download: bool,
    /// `inflight`; sr3's code default is None.
    pub inflight: Inflight,
    /// `accelThreshold` in bytes, 0 = off.
    pub accel_threshold: u64,
    /// `accelScpCommand`, default `/usr/bin/scp %s %d`.
    pub accel_scp_command: String,
    /// `accelCpCommand`, default `/usr/bin/cp %s %d`.
    pub accel_cp_command: String,
    /// `timeCopy`, default on.
    pub time_copy: bool,
    /// `permCopy`, default on.
    pub perm_copy: bool,
    /// `permDefault`, default 0 (unused).
    pub perm_default: u32,
    /// `permDirDefault`, default 0o775.
    pub perm_dir_default: u32,
    /// `permLog`, default 0o600.
    pub perm_log: u32,
    /// `fileEvents`, all by default.
    pub file_events: FileEvents,
    /// `identity` (synonym `integrity`) method, default `sha512`.
    pub identity_method: String,
    /// `fileSizeMax`, 0 = no limit.
    pub file_size_max: u64,
    /// `byteRateMax` in bytes/s, 0 = no limit.
    pub byte_rate_max: u64,
    /// `messageRateMax` in messages/s, 0 = no limit.
    pub message_rate_max: f64,
    /// `delete_source`: a sender removes the local file once it is
    /// delivered (and verified), unless it changed since it was announced.
    pub delete_source: bool,
    /// `verifyDelivery` (pitcher's own): off, size (default) or checksum.
    pub verify_delivery: Verify,
    /// `checksumCommand` (pitcher's own): the command run at the destination
    /// (over ssh) to checksum a file; its first word of output is the hex
    /// digest. Default: `sha512sum` or `md5sum` after the identity method.
    pub checksum_command: Option<String>,
    /// `cleanDirGrace` (pitcher's own): how long a directory emptied by
    /// `delete_source` waits before it is removed (0 = never).
    pub clean_dir_grace: Duration,
    /// `sshConfig` (pitcher's own): the ssh_config file ssh is given with
    /// `-F`. Also settable with `PITCHER_SSH_CONFIG`.
    pub ssh_config: Option<PathBuf>,

    // --- watch ---
    /// `recursive`, default on.
    pub recursive: bool,
    /// `force_polling`, default off.
    pub force_polling: bool,
    /// `follow_symlinks`, default off.
    pub follow_symlinks: bool,
    /// `post_on_start`, default off.
    pub post_on_start: bool,
    /// `fileAgeMin` (or `inflight N`), default 0.
    pub file_age_min: Duration,
    /// `fileAgeMax`, default 0 = none.
    pub file_age_max: Duration,

    // --- duplicates, retries, timing ---
    /// `nodupe_ttl` (`on` = 300 s), default 0 = off.
    pub nodupe_ttl: Duration,
    /// `nodupe_basis`, default path.
    pub nodupe_basis: NodupeBasis,
    /// `retry_ttl`, default none (never expire).
    pub retry_ttl: Option<Duration>,
    /// `retryCountMax`, default 0 = no limit.
    pub retry_count_max: u32,
    /// `attempts`, default 3.
    pub attempts: u32,
    /// `timeout`, default 300 s.
    pub timeout: Duration,
    /// `sleep`: flow 0.1 s, watch 5 s, post −1 (one pass) → `None`.
    pub sleep: Option<Duration>,
    /// `housekeeping` (synonym `heartbeat`), default 300 s.
    pub housekeeping: Duration,
    /// `instances`, default 1.
    pub instances: u32,
    /// `vip` addresses, none by default.
    pub vip: Vec<String>,

    // --- messages we write ---
    /// `source`, if set.
    pub source: Option<String>,
    /// `header k=v` lines, added to posted messages.
    pub headers: Vec<(String, String)>,
    /// `declare env N=V` lines, exported to the instances.
    pub env: Vec<(String, String)>,
    /// `declare exchange X` lines: extra exchanges `declare` creates on
    /// post_broker. Added by config/.
    pub declared_exchanges: Vec<String>,

    // --- delivery receipts ---
    /// `report` (synonym `report_back`): a consuming flow publishes a report
    /// (the message plus `report` and `reporter`) once each message's work
    /// is done. On for sender and subscribe (sr3: off everywhere).
    pub report: bool,
    /// `report_broker`, default the consuming broker.
    pub report_broker: Option<Url>,
    /// `report_exchange`: where a consuming flow reports, and where a watch
    /// reads receipts. Default `xr_<user>` of report_broker (a watch:
    /// post_broker), `xreport` when the URL has no user.
    pub report_exchange: Option<String>,
    /// `report_topicPrefix`, default `v03`.
    pub report_topic_prefix: String,
    /// `receiptTimeout` (pitcher's own, watch): how long an announced file
    /// waits for a receipt before it is announced again; 0 = no receipts.
    pub receipt_timeout: Duration,
    /// `receiptsFrom` (pitcher's own, watch): the receivers
    /// (`component/config`) each announcement expects a receipt from;
    /// empty = those heard from.
    pub receipts_from: Vec<String>,

    // --- logs ---
    /// `logLevel`, default `info`.
    pub log_level: String,
    /// `logRotateInterval`, default 1 d.
    pub log_rotate_interval: Duration,
    /// `logRotateCount`, default 5.
    pub log_rotate_count: u32,

    /// Warnings found while parsing (each names `file:line`): real sr3
    /// keywords pitcher does not implement, credentials.conf readable by
    /// others, …
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod inflight_tests {
    use super::*;

    #[test]
    fn inflight_names_of_long_names_fit_and_stay_the_same() {
        let suffix = Inflight::Suffix(".tmp".into());
        assert_eq!(suffix.temp_name("a"), "a.tmp");
        let long = "é".repeat(127) + "x"; // 255 bytes
        let t = suffix.temp_name(&long);
        assert!(t.len() <= 255 && t.ends_with(".tmp"), "{} bytes", t.len());
        assert_eq!(t, suffix.temp_name(&long), "the same on every try");
        let other = "é".repeat(127) + "y";
        assert_ne!(t, suffix.temp_name(&other), "names sharing a start differ");
        let prefix = Inflight::Prefix(".".into());
        let t = prefix.temp_name(&long);
        assert!(t.len() <= 255 && t.starts_with('.'));
        assert_eq!(
            prefix.temp_name(&"n".repeat(254)),
            format!(".{}", "n".repeat(254))
        );
    }
}
