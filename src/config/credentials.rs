//! `credentials.conf`: the passwords and connection details configs do not
//! write themselves.
//!
//! One URL with its password per line, then optional comma-separated
//! details (`ssh_keyfile=…`, `passive`/`active`, `binary`/`ascii`, `tls`,
//! `prot_p`, `implicit_ftps`, `bearer_token=`/`bt=`, `login_method=`).
//! Special characters in a password are %-encoded. A config URL (broker,
//! post_broker, sendTo) takes the entry that matches it as sr3 does: the
//! same URL exactly, else the first entry with the same scheme, host and
//! port, the same user if the config names one, and for AMQP the same vhost.
//! A broker URL naming several nodes (`amqp://u@h1:5682,h2:5683/`), in a
//! config or here, is matched by its first node.
//!
//! Nothing here ever puts a password in an error or a warning.

use super::env::Environment;
use super::error::ConfigError;
use super::options::CredentialDetails;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use url::Url;

/// One credentials.conf line.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub url: Url,
    pub details: CredentialDetails,
}

/// Every entry of credentials.conf, in file order.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Vec<Credential>,
}

/// Says how many entries there are, never what they hold.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} entries)", self.entries.len())
    }
}

impl Credentials {
    /// Read `path` (absent = no entries). `shown` is how the file is named
    /// in messages; permission problems are added to `warnings`.
    pub(crate) fn read(
        path: &Path,
        shown: &str,
        env: &Environment,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, ConfigError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(e) => return Err(ConfigError::file(shown, format!("cannot read: {e}"))),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{shown}: readable by group or others (mode {mode:o}); it holds passwords: chmod 600 {}",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(shown, format!("cannot read: {e}")))?;
        Credentials::parse(&text, shown, env, warnings)
    }

    /// Parse the text of a credentials file.
    pub(crate) fn parse(
        text: &str,
        shown: &str,
        env: &Environment,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, ConfigError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let lineno = index + 1;
            let (url_text, options) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            // A cluster's line (`amqp://u:pw@h1,h2,h3/`) is its first
            // node's, as configs naming the cluster look it up.
            let first = match super::hosts::split_hosts(url_text) {
                Ok(Some((first, _))) => first,
                _ => url_text.to_string(),
            };
            let url = Url::parse(&first).map_err(|e| {
                ConfigError::at(
                    shown,
                    lineno,
                    format!("not a URL ({e}); expected scheme://user:password@host[:port][/path]"),
                )
            })?;
            let details =
                parse_details(options, env).map_err(|m| ConfigError::at(shown, lineno, m))?;
            if let Some(key) = &details.ssh_keyfile {
                if !key.exists() {
                    warnings.push(format!(
                        "{shown}:{lineno}: ssh_keyfile {} not found; entry ignored",
                        key.display()
                    ));
                    continue;
                }
            }
            entries.push(Credential { url, details });
        }
        Ok(Credentials { entries })
    }

    /// The entry for a config URL, as sr3 matches them.
    pub(crate) fn lookup(&self, url: &Url) -> Option<&Credential> {
        let wanted = without_password(url);
        self.entries
            .iter()
            .find(|c| without_password(&c.url) == wanted)
            .or_else(|| {
                self.entries.iter().find(|c| {
                    let u = &c.url;
                    u.scheme() == url.scheme()
                        && u.host_str() == url.host_str()
                        && u.port() == url.port()
                        && (url.username().is_empty() || u.username() == url.username())
                        && url.password().is_none_or(|p| u.password() == Some(p))
                        && (!url.scheme().starts_with("amqp") || vhost(u) == vhost(url))
                })
            })
    }

    /// `url` completed from its entry: user and password filled in where
    /// the config left them out; and the entry's details, if one matched.
    pub fn complete(&self, url: &Url) -> (Url, Option<CredentialDetails>) {
        let Some(entry) = self.lookup(url) else {
            return (url.clone(), None);
        };
        let mut full = url.clone();
        if full.username().is_empty() && !entry.url.username().is_empty() {
            let _ = full.set_username(entry.url.username());
        }
        if full.password().is_none() {
            if let Some(pw) = entry.url.password() {
                // Fails only for URLs that cannot carry a password at all.
                let _ = full.set_password(Some(pw));
            }
        }
        (full, Some(entry.details.clone()))
    }
}

fn without_password(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    u.to_string()
}

/// The AMQP vhost a URL names; none means `/`.
fn vhost(url: &Url) -> &str {
    match url.path() {
        "" => "/",
        p => p,
    }
}

fn parse_details(options: &str, env: &Environment) -> Result<CredentialDetails, String> {
    let mut d = CredentialDetails::default();
    for option in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) = match option.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (option, None),
        };
        let needs_value = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| format!("'{key}' needs a value ({key}=…)"))
        };
        match key {
            "ssh_keyfile" => d.ssh_keyfile = Some(expand_keyfile(&needs_value(value)?, env).into()),
            "passive" => d.passive = Some(true),
            "active" => d.passive = Some(false),
            "binary" => d.binary = Some(true),
            "ascii" => d.binary = Some(false),
            "ssl" => d.tls = false,
            "tls" => d.tls = true,
            "prot_p" => d.prot_p = true,
            "implicit_ftps" => {
                d.implicit_ftps = true;
                d.tls = true;
            }
            "bearer_token" | "bt" => d.bearer_token = Some(needs_value(value)?),
            "login_method" => d.login_method = Some(needs_value(value)?),
            // sr3 knows these; pitcher has no transport that uses them.
            "s3_session_token" | "s3_endpoint" | "azure_storage_credentials" | "sftp_compat_mode" => {}
            _ => {
                return Err(format!(
                    "unknown detail '{key}': expected ssh_keyfile=, passive, active, binary, ascii, tls, prot_p, implicit_ftps, bearer_token=, login_method="
                ))
            }
        }
    }
    Ok(d)
}

/// `~` and `$VAR`/`${VAR}` in an ssh_keyfile path, as sr3's
/// `expandvars(expanduser(…))`.
fn expand_keyfile(path: &str, env: &Environment) -> String {
    let path = env.expand_home(path);
    let mut out = String::new();
    let mut rest = path.as_str();
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match env.var(name) {
            Some(value) if !name.is_empty() => out.push_str(value),
            _ => out.push_str(&rest[pos..pos + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(text: &str) -> Credentials {
        let env = Environment::new([("HOME", "/nonexistent-home")], "h");
        Credentials::parse(text, "credentials.conf", &env, &mut Vec::new()).unwrap()
    }

    #[test]
    fn entry_fills_in_the_password_of_a_config_url_without_one() {
        let c = creds("# comment\n\namqps://pas037:pas037_password@hpfx.collab.science.gc.ca\n");
        let (url, details) =
            c.complete(&Url::parse("amqps://pas037@hpfx.collab.science.gc.ca").unwrap());
        assert_eq!(url.password(), Some("pas037_password"));
        assert!(details.is_some());
    }

    #[test]
    fn host_match_requires_same_scheme_port_and_user() {
        let c = creds("amqps://alice:a@h:5671/\namqps://bob:b@h/\namqp://bob:x@h/\n");
        let pw = |s: &str| {
            c.complete(&Url::parse(s).unwrap())
                .0
                .password()
                .map(str::to_string)
        };
        assert_eq!(pw("amqps://bob@h/"), Some("b".into()));
        assert_eq!(pw("amqps://alice@h:5671/"), Some("a".into()));
        assert_eq!(pw("amqps://alice@h/"), None, "port differs");
        assert_eq!(pw("amqp://bob@h"), Some("x".into()), "no vhost means /");
        assert_eq!(pw("amqp://bob@h/other"), None, "vhost differs");
    }

    #[test]
    fn config_url_without_user_takes_the_first_entry_for_the_host() {
        let c = creds("sftp://pas037@hpfx ssh_keyfile=/\nsftp://other@hpfx\n");
        let (url, details) = c.complete(&Url::parse("sftp://hpfx").unwrap());
        assert_eq!(url.username(), "pas037");
        assert_eq!(
            details.unwrap().ssh_keyfile.as_deref(),
            Some(Path::new("/"))
        );
    }

    #[test]
    fn details_are_parsed() {
        let c = creds("ftp://u:p@h passive, binary, tls, prot_p\nhttps://h bearer_token=abc, login_method=PLAIN\nftp://v:p@h active,ascii,implicit_ftps\n");
        let d = &c.entries[0].details;
        assert_eq!(
            (d.passive, d.binary, d.tls, d.prot_p),
            (Some(true), Some(true), true, true)
        );
        let d = &c.entries[1].details;
        assert_eq!(d.bearer_token.as_deref(), Some("abc"));
        assert_eq!(d.login_method.as_deref(), Some("PLAIN"));
        let d = &c.entries[2].details;
        assert_eq!(
            (d.passive, d.binary, d.tls, d.implicit_ftps),
            (Some(false), Some(false), true, true)
        );
    }

    #[test]
    fn percent_encoded_passwords_are_kept_encoded() {
        let c = creds("amqp://u:p%40ss@h\n");
        let (url, _) = c.complete(&Url::parse("amqp://u@h").unwrap());
        assert_eq!(url.password(), Some("p%40ss"));
    }

    #[test]
    fn bad_line_names_file_and_line_but_not_the_password() {
        let env = Environment::new([("HOME", "/h")], "h");
        let text = "amqp://u:ok@h\namqp://u:topsecret@h frobnicate\n";
        let err = Credentials::parse(text, "credentials.conf", &env, &mut Vec::new()).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with("credentials.conf:2: unknown detail 'frobnicate'"),
            "{shown}"
        );
        assert!(!shown.contains("topsecret"));
        let err = Credentials::parse(
            "amqp://u:topsecret@[bad\n",
            "credentials.conf",
            &env,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("credentials.conf:1: not a URL"),
            "{err}"
        );
        assert!(!err.to_string().contains("topsecret"));
    }

    #[test]
    fn ssh_keyfile_expands_home_and_variables_and_missing_keys_drop_the_entry() {
        let env = Environment::new([("HOME", "/"), ("K", "tmp")], "h");
        assert_eq!(expand_keyfile("~/.ssh/$K/${K}", &env), "//.ssh/tmp/tmp");
        let mut warnings = Vec::new();
        let c = Credentials::parse(
            "sftp://u@h ssh_keyfile=/no/such/key\n",
            "credentials.conf",
            &env,
            &mut warnings,
        )
        .unwrap();
        assert!(c.entries.is_empty());
        assert!(warnings[0].contains("credentials.conf:1: ssh_keyfile /no/such/key not found"));
    }

    #[test]
    fn world_readable_file_gives_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.conf");
        std::fs::write(&path, "amqp://u:p@h\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let env = Environment::new([("HOME", "/h")], "h");
        let mut warnings = Vec::new();
        Credentials::read(&path, "credentials.conf", &env, &mut warnings).unwrap();
        assert!(
            warnings[0].contains("readable by group or others"),
            "{warnings:?}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut warnings = Vec::new();
        Credentials::read(&path, "credentials.conf", &env, &mut warnings).unwrap();
        assert!(warnings.is_empty());
    }
}
