//! sr3's effective defaults, per component (sr3-behaviour.md §3.4).
//!
//! sr3 builds a config in layers: built-in defaults, then `admin.conf` and
//! `default.conf`, then the component's own defaults
//! (`default_options` in sarracenia/flow/<component>.py), then the config
//! file. So a component default (e.g. watch's `sleep 5`) wins over the
//! same option in default.conf; [`apply_component_defaults`] is that layer.

use super::options::*;
use std::time::Duration;

/// What `nodupe_ttl on` means: sr3's 5 minutes.
pub(crate) const NODUPE_TTL_ON: Duration = Duration::from_secs(300);

/// How long a watch waits for a delivery receipt before announcing a file
/// again (`receiptTimeout`).
pub(crate) const RECEIPT_TIMEOUT: Duration = Duration::from_secs(300);

impl Config {
    /// A config with sr3's effective defaults for `component`, as if its
    /// file were empty.
    pub fn new(component: Component, name: &str) -> Config {
        let mut cfg = Config {
            component,
            name: name.to_string(),
            file: Default::default(),
            broker: None,
            exchange: None,
            exchange_suffix: None,
            topic_prefix: "v03".to_string(),
            bindings: Vec::new(),
            queue_name: None,
            queue_share: "${USER}_${HOSTNAME}_${RAND8}".to_string(),
            prefetch: 25,
            batch: 25,
            expire: None,
            queue_type: None,
            message_age_max: None,
            durable: true,
            persistent: true,
            post_broker: None,
            post_exchange: None,
            post_exchange_suffix: None,
            post_topic_prefix: "v03".to_string(),
            post_base_url: None,
            post_base_dir: None,
            post_format: "v03".to_string(),
            send_to: None,
            send_to_url: None,
            send_to_details: None,
            credentials: Default::default(),
            paths: Vec::new(),
            directory: None,
            base_dir: None,
            mirror: true,
            strip: Strip::Count(0),
            flatten: "/".to_string(),
            filename: None,
            masks: Vec::new(),
            accept_unmatched: true,
            download: false,
            inflight: Inflight::None,
            accel_threshold: 0,
            accel_scp_command: "/usr/bin/scp %s %d".to_string(),
            accel_cp_command: "/usr/bin/cp %s %d".to_string(),
            time_copy: true,
            perm_copy: true,
            perm_default: 0,
            perm_dir_default: 0o775,
            perm_log: 0o600,
            file_events: FileEvents::default(),
            identity_method: "sha512".to_string(),
            file_size_max: 0,
            byte_rate_max: 0,
            message_rate_max: 0.0,
            ssh_config: None,
            delete_source: false,
            verify_delivery: Verify::Size,
            checksum_command: None,
            clean_dir_grace: Duration::from_secs(300),
            recursive: true,
            force_polling: false,
            follow_symlinks: false,
            post_on_start: false,
            file_age_min: Duration::ZERO,
            file_age_max: Duration::ZERO,
            nodupe_ttl: Duration::ZERO,
            nodupe_basis: NodupeBasis::Path,
            retry_ttl: None,
            retry_count_max: 0,
            attempts: 3,
            timeout: Duration::from_secs(300),
            sleep: Some(Duration::from_millis(100)),
            housekeeping: Duration::from_secs(300),
            instances: 1,
            vip: Vec::new(),
            source: None,
            headers: Vec::new(),
            env: Vec::new(),
            declared_exchanges: Vec::new(),
            report: false,
            report_broker: None,
            report_exchange: None,
            report_topic_prefix: "v03".to_string(),
            receipt_timeout: RECEIPT_TIMEOUT,
            receipts_from: Vec::new(),
            log_level: "info".to_string(),
            log_rotate_interval: Duration::from_secs(86_400),
            log_rotate_count: 5,
            warnings: Vec::new(),
        };
        // pitcher's own default (sr3's is off everywhere): a watch can
        // only confirm the deliveries that are reported. Set here, not
        // among the component's layer, so default.conf can turn it off.
        cfg.report = matches!(component, Component::Sender | Component::Subscribe);
        apply_component_defaults(&mut cfg);
        cfg
    }
}

/// Overlay `cfg.component`'s own defaults, exactly the options sr3's
/// component sets (and nothing else, so default.conf keeps the rest).
pub(crate) fn apply_component_defaults(cfg: &mut Config) {
    use Component::*;
    // sr3's one_config forces acceptUnmatched for every component.
    cfg.accept_unmatched = true;
    match cfg.component {
        Sender | Sarra => cfg.download = true,
        Subscribe => {
            cfg.download = true;
            cfg.mirror = false;
        }
        Watch | Post | Poll => {
            cfg.follow_symlinks = false;
            cfg.force_polling = false;
            cfg.inflight = Inflight::None;
            cfg.post_base_dir = None;
            cfg.perm_copy = true;
            cfg.time_copy = true;
            cfg.post_on_start = false;
            match cfg.component {
                Watch => {
                    cfg.sleep = Some(Duration::from_secs(5));
                    cfg.nodupe_ttl = Duration::ZERO;
                }
                Post => {
                    // sleep -1: one pass over the paths, then exit.
                    cfg.sleep = None;
                    cfg.nodupe_ttl = Duration::ZERO;
                }
                _ => {
                    cfg.perm_default = 0o400;
                    cfg.identity_method = "cod,sha512".to_string();
                    cfg.nodupe_ttl = Duration::from_secs(7 * 3600);
                    cfg.file_age_max = Duration::from_secs(30 * 86_400);
                }
            }
        }
        Shovel => cfg.nodupe_ttl = Duration::ZERO,
        Winnow => cfg.nodupe_ttl = NODUPE_TTL_ON,
        Cpost | Cpump | Flow => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_defaults_apply_to_every_component() {
        let c = Config::new(Component::Shovel, "s");
        assert_eq!(c.sleep, Some(Duration::from_millis(100)));
        assert_eq!(c.housekeeping, Duration::from_secs(300));
        assert_eq!(
            (c.batch, c.prefetch, c.attempts, c.instances),
            (25, 25, 3, 1)
        );
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!(c.inflight, Inflight::None);
        assert!(c.mirror && !c.download && c.accept_unmatched && c.time_copy && c.perm_copy);
        assert_eq!(c.topic_prefix, "v03");
        assert_eq!(c.perm_dir_default, 0o775);
        assert_eq!(c.queue_share, "${USER}_${HOSTNAME}_${RAND8}");
        assert_eq!(c.nodupe_ttl, Duration::ZERO);
        assert!(c.expire.is_none() && c.retry_ttl.is_none());
    }

    #[test]
    fn watch_sleeps_5s_and_post_runs_once() {
        assert_eq!(
            Config::new(Component::Watch, "w").sleep,
            Some(Duration::from_secs(5))
        );
        assert_eq!(Config::new(Component::Post, "p").sleep, None);
    }

    #[test]
    fn sender_and_subscribe_download_and_subscribe_does_not_mirror() {
        let s = Config::new(Component::Sender, "s");
        assert!(s.download && s.mirror);
        let s = Config::new(Component::Subscribe, "s");
        assert!(s.download && !s.mirror);
        assert!(!Config::new(Component::Watch, "w").download);
    }

    #[test]
    fn winnow_and_poll_remember_duplicates_by_default() {
        assert_eq!(
            Config::new(Component::Winnow, "w").nodupe_ttl,
            NODUPE_TTL_ON
        );
        assert_eq!(
            Config::new(Component::Poll, "p").nodupe_ttl,
            Duration::from_secs(25_200)
        );
    }
}
