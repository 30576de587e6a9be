//! Broker URLs that name several nodes of a cluster, comma-separated in
//! the authority as libpq and MongoDB URIs do:
//! `amqp://user@h1:5682,h2:5683,h3:5684/vhost`.
//!
//! The `url` crate reads one host per URL, so such a URL is kept as the URL
//! of its first node with the other nodes in a `failover` query parameter
//! (`amqp://user@h1:5682/vhost?failover=h2:5683,h3:5684`). Everything that
//! takes a broker URL (credentials.conf lookup, by the first node; the
//! default exchange and queue names, from the user; the broker factories)
//! works with it unchanged; the AMQP broker reads the nodes with
//! [`broker_nodes`], and [`redact_url`](super::redact_url) writes the list
//! back the way it was given.

use url::Url;

/// The query parameter that carries the nodes after the first.
const FAILOVER: &str = "failover";

/// `text` with only the first of its comma-separated hosts, and the others
/// (`host[:port]`, as written); `Ok(None)` when it names one host.
pub(crate) fn split_hosts(text: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Ok(None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = authority.split_at(authority.rfind('@').map_or(0, |at| at + 1));
    if !hosts.contains(',') {
        return Ok(None);
    }
    let list: Vec<&str> = hosts.split(',').collect();
    if list.iter().any(|h| h.trim().is_empty()) {
        return Err(format!(
            "an empty host in the host list '{hosts}': expected host:port,host:port,…"
        ));
    }
    let first = format!("{scheme}://{userinfo}{}{tail}", list[0]);
    Ok(Some((
        first,
        list[1..].iter().map(|h| h.trim().to_string()).collect(),
    )))
}

/// `url` (the first node) with `others` added as its failover nodes; each
/// must be a `host[:port]` the scheme can reach.
pub(crate) fn with_failover(mut url: Url, others: &[String]) -> Result<Url, String> {
    let mut list = Vec::with_capacity(others.len());
    for h in others {
        let node = Url::parse(&format!("{}://{h}", url.scheme()))
            .ok()
            .filter(|n| n.host_str().is_some_and(|s| !s.is_empty()) && n.path().is_empty())
            .ok_or_else(|| format!("'{h}' in the host list is not a host[:port]"))?;
        let host = node.host_str().unwrap_or_default();
        list.push(match node.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        });
    }
    let query = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{FAILOVER}={}", list.join(",")),
        _ => format!("{FAILOVER}={}", list.join(",")),
    };
    url.set_query(Some(&query));
    Ok(url)
}

/// The nodes after the first (`host[:port]`), and the URL's query without
/// them.
fn failover_of(url: &Url) -> (Vec<String>, Option<String>) {
    let Some(q) = url.query() else {
        return (Vec::new(), None);
    };
    let mut others = Vec::new();
    let mut rest = Vec::new();
    for part in q.split('&') {
        match part
            .strip_prefix(FAILOVER)
            .and_then(|v| v.strip_prefix('='))
        {
            Some(v) => others.extend(v.split(',').filter(|h| !h.is_empty()).map(String::from)),
            None => rest.push(part),
        }
    }
    let rest = (!rest.is_empty()).then(|| rest.join("&"));
    (others, rest)
}

/// Every node a broker URL names, in order, each a URL of its own with the
/// same user, password and vhost; one for a URL of one host.
pub fn broker_nodes(url: &Url) -> Vec<Url> {
    let (others, rest) = failover_of(url);
    let mut first = url.clone();
    if !others.is_empty() {
        first.set_query(rest.as_deref());
    }
    let mut nodes = vec![first.clone()];
    for h in others {
        let Ok(node) = Url::parse(&format!("{}://{h}", url.scheme())) else {
            continue;
        };
        let mut u = first.clone();
        if u.set_host(node.host_str()).is_ok() && u.set_port(node.port()).is_ok() {
            nodes.push(u);
        }
    }
    nodes
}

/// `url` as written in a config: its failover nodes back in the authority
/// (`amqp://u@h1:5682,h2:5683/`). `None` when it names one node.
pub(crate) fn host_list_text(url: &Url) -> Option<String> {
    let (others, rest) = failover_of(url);
    if others.is_empty() {
        return None;
    }
    let mut first = url.clone();
    first.set_query(rest.as_deref());
    let text = first.to_string();
    // After the first node's authority: the first '/', '?' or '#' past "://".
    let start = text.find("://")? + 3;
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    Some(format!(
        "{},{}{}",
        &text[..end],
        others.join(","),
        &text[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(text: &str) -> Url {
        let (first, others) = split_hosts(text).unwrap().unwrap();
        with_failover(Url::parse(&first).unwrap(), &others).unwrap()
    }

    #[test]
    fn one_host_is_not_a_list() {
        assert_eq!(split_hosts("amqp://u:p@h:5672/vh").unwrap(), None);
        assert_eq!(split_hosts("local:").unwrap(), None);
        // A comma in the password is not a host list.
        assert_eq!(split_hosts("amqp://u:a,b@h/").unwrap(), None);
    }

    #[test]
    fn a_host_list_keeps_the_first_node_and_the_others_aside() {
        let (first, others) = split_hosts("amqp://bob:pw@h1:5682,h2:5683,[::1]:5684/vh")
            .unwrap()
            .unwrap();
        assert_eq!(first, "amqp://bob:pw@h1:5682/vh");
        assert_eq!(others, ["h2:5683", "[::1]:5684"]);
        let u = listed("amqp://bob:pw@h1:5682,h2:5683,[::1]:5684/vh");
        assert_eq!(u.host_str(), Some("h1"));
        assert_eq!(u.username(), "bob");
        let nodes: Vec<String> = broker_nodes(&u).iter().map(Url::to_string).collect();
        assert_eq!(
            nodes,
            [
                "amqp://bob:pw@h1:5682/vh",
                "amqp://bob:pw@h2:5683/vh",
                "amqp://bob:pw@[::1]:5684/vh"
            ]
        );
        assert_eq!(
            host_list_text(&u).unwrap(),
            "amqp://bob:pw@h1:5682,h2:5683,[::1]:5684/vh"
        );
    }

    #[test]
    fn nodes_without_a_port_and_no_vhost() {
        let u = listed("amqps://h1,h2,h3");
        let nodes: Vec<String> = broker_nodes(&u).iter().map(Url::to_string).collect();
        assert_eq!(nodes, ["amqps://h1", "amqps://h2", "amqps://h3"]);
        assert_eq!(host_list_text(&u).unwrap(), "amqps://h1,h2,h3");
    }

    #[test]
    fn a_bad_host_list_is_refused() {
        assert!(split_hosts("amqp://h1,,h2/").is_err());
        assert!(split_hosts("amqp://h1,/").is_err());
        let (first, others) = split_hosts("amqp://h1,h2:notaport/").unwrap().unwrap();
        assert!(with_failover(Url::parse(&first).unwrap(), &others).is_err());
    }

    /// Loads `sender/t.conf` = `text` beside `credentials`, in a temp dir.
    fn load(text: &str, credentials: &str) -> Result<super::super::Config, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sender")).unwrap();
        std::fs::write(dir.path().join("sender/t.conf"), text).unwrap();
        let cred = dir.path().join("credentials.conf");
        std::fs::write(&cred, credentials).unwrap();
        std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = super::super::Environment::new([("HOME", "/home/bob"), ("USER", "bob")], "loli");
        super::super::load_with(dir.path(), super::super::Component::Sender, "t", &env)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_config_names_a_cluster_with_its_password_from_the_first_node() {
        let c = load(
            "broker amqp://bob@h1:5682,h2:5683,h3:5684/\nsendTo file:/tmp\npost_broker amqps://h1,h2\n",
            "amqp://bob:s3cret@h1:5682/\n",
        )
        .unwrap();
        let b = c.broker.clone().unwrap();
        assert_eq!(b.password(), Some("s3cret"));
        let nodes: Vec<String> = broker_nodes(&b).iter().map(Url::to_string).collect();
        assert_eq!(
            nodes,
            [
                "amqp://bob:s3cret@h1:5682/",
                "amqp://bob:s3cret@h2:5683/",
                "amqp://bob:s3cret@h3:5684/"
            ]
        );
        // Shown as written, the password hidden; the exchange from the user.
        let shown = c.show();
        assert!(
            shown.contains("broker amqp://bob:***@h1:5682,h2:5683,h3:5684/"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(c.exchange.as_deref(), Some("xs_bob"));
        assert_eq!(broker_nodes(c.post_broker.as_ref().unwrap()).len(), 2);
        // A credentials line naming the cluster counts for its first node.
        let c = load(
            "broker amqp://bob@h1:5682,h2:5683/\nsendTo file:/tmp\n",
            "amqp://bob:pw2@h1:5682,h2:5683/\n",
        )
        .unwrap();
        assert_eq!(c.broker.unwrap().password(), Some("pw2"));
    }

    #[test]
    fn mqtt_and_bad_lists_are_refused_with_file_and_line() {
        let e = load(
            "sendTo file:/tmp\nbroker mqtt://bob:pw@h1:1883,h2:1883\n",
            "",
        )
        .unwrap_err();
        assert!(e.contains("sender/t.conf:2"), "{e}");
        assert!(e.contains("only amqp:// and amqps://"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        let e = load("broker amqp://bob:pw@h1,,h2/\nsendTo file:/tmp\n", "").unwrap_err();
        assert!(
            e.contains("sender/t.conf:1") && e.contains("empty host"),
            "{e}"
        );
        assert!(!e.contains(":pw@"), "{e}");
        let e = load("broker amqp://bob:pw@h1,h2:x/\nsendTo file:/tmp\n", "").unwrap_err();
        assert!(e.contains("sender/t.conf:1") && e.contains("h2:x"), "{e}");
    }

    #[test]
    fn one_node_is_itself() {
        let u = Url::parse("amqp://u:p@h/").unwrap();
        assert_eq!(broker_nodes(&u), vec![u.clone()]);
        assert_eq!(host_list_text(&u), None);
    }
}
