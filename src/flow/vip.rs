//! `vip`: active/passive instances across hosts.
//!
//! With `vip <address>` (one or more) in a config, its instances work only
//! while one of the addresses is on an interface of this host. Elsewhere
//! they stay passive: connected to no broker, watching nothing, their
//! metrics saying so (`status` shows `wVip`). They look every
//! [`CHECK_EVERY`], so when the address moves (keepalived, pacemaker, a
//! manual `ip addr add`) the other host takes over within seconds.

use super::Instance;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often the interfaces are read.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The `vip` addresses of a config, and what was last seen of them.
#[derive(Debug)]
pub struct Vip {
    addrs: Vec<IpAddr>,
    last_check: Option<Instant>,
    here: bool,
}

/// An address as written in a config: `10.1.2.3`, `10.1.2.3/24`, `fe80::1`.
fn parse(text: &str) -> Option<IpAddr> {
    let a = text.trim();
    let a = a.split_once('/').map(|(a, _)| a).unwrap_or(a);
    a.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The addresses on this host's interfaces (of this network namespace).
pub fn local_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let Some(a) = ifa.address else { continue };
        if let Some(v4) = a.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = a.as_sockaddr_in6() {
            out.push(IpAddr::V6(v6.ip()));
        }
    }
    Ok(out)
}

impl Vip {
    /// The `vip` of a config; an address that does not parse is logged and
    /// can never be here (so a typo keeps the instance passive, not active
    /// on both hosts).
    pub fn new(vips: &[String]) -> Vip {
        let addrs = vips
            .iter()
            .filter_map(|v| {
                let a = parse(v);
                if a.is_none() {
                    tracing::error!("vip {v}: not an IP address; it never counts as here");
                }
                a
            })
            .collect();
        Vip {
            addrs,
            last_check: None,
            here: vips.is_empty(),
        }
    }

    /// True when the config has a `vip` at all.
    pub fn configured(&self) -> bool {
        !self.addrs.is_empty() || !self.here
    }

    /// Reads the interfaces now: is one of the addresses here?
    fn look(&mut self) -> bool {
        self.last_check = Some(Instant::now());
        if !self.configured() {
            self.here = true;
            return true;
        }
        self.here = match local_addresses() {
            Ok(local) => self.addrs.iter().any(|a| local.contains(a)),
            Err(e) => {
                tracing::error!("cannot read the network interfaces: {e}; staying as we were");
                self.here
            }
        };
        self.here
    }

    /// Whether an address is here, reading the interfaces at most every
    /// [`CHECK_EVERY`] (cheap to call every pass).
    pub fn still_here(&mut self) -> bool {
        if !self.configured() {
            return true;
        }
        if self.last_check.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
            return self.here;
        }
        let was = self.here;
        let now = self.look();
        if was && !now {
            tracing::info!("vip {} left this host: going passive", self.list());
        }
        now
    }

    fn list(&self) -> String {
        self.addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Waits, passive, until an address is here, keeping the metrics fresh
    /// (`waiting_for_vip`, not connected). Returns true if a stop was asked
    /// for first. Returns at once when no `vip` is configured.
    pub async fn wait_until_here(&mut self, inst: &mut Instance) -> bool {
        if !self.configured() {
            return inst.stopping();
        }
        let mut said = false;
        while !self.look() {
            if !said {
                tracing::info!(
                    "vip {} is not on this host: passive, looking every {}s",
                    self.list(),
                    CHECK_EVERY.as_secs()
                );
                said = true;
            }
            inst.metrics.waiting_for_vip = true;
            inst.metrics.connected = false;
            inst.save_metrics(true);
            if inst.pause(CHECK_EVERY).await {
                return true;
            }
        }
        if said || inst.metrics.waiting_for_vip {
            tracing::info!("vip {} is on this host: active", self.list());
        }
        inst.metrics.waiting_for_vip = false;
        inst.save_metrics(true);
        inst.stopping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_or_without_a_prefix_length() {
        assert_eq!(parse("10.1.2.3"), "10.1.2.3".parse().ok());
        assert_eq!(parse("10.1.2.3/24"), "10.1.2.3".parse().ok());
        assert_eq!(parse("[fe80::1]"), "fe80::1".parse().ok());
        assert_eq!(parse("hpfx.example"), None);
    }

    #[test]
    fn without_vip_an_instance_is_always_active() {
        let mut v = Vip::new(&[]);
        assert!(!v.configured());
        assert!(v.still_here());
    }

    #[test]
    fn loopback_is_here_and_a_documentation_address_is_not() {
        assert!(local_addresses()
            .unwrap()
            .contains(&"127.0.0.1".parse().unwrap()));
        let mut v = Vip::new(&["127.0.0.1".to_string()]);
        assert!(v.still_here());
        // 192.0.2.0/24 is TEST-NET-1: never configured on a real host.
        let mut v = Vip::new(&["192.0.2.77".to_string()]);
        assert!(!v.still_here());
        let mut typo = Vip::new(&["10.0.0.300".to_string()]);
        assert!(typo.configured() && !typo.still_here());
    }
}
