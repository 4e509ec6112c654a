//! What a job may reach beyond its sandbox, granted by the operator: deny
//! by default. The operator's config names grants (`[grants.NAME]`), each
//! a set of HTTP origins, secrets and configuration values; a module is
//! given grants by name, and its jobs get the union of them as their
//! [`Capabilities`].
//!
//! Plain data and pure functions: the engine enforces a job's capabilities
//! (`engine::outbound`), the config reads them, the store keeps which
//! grants a module has.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The shortest secret taken: a shorter value could not be redacted
/// without redacting ordinary text.
pub const SECRET_MIN_BYTES: usize = 8;

/// Most grants a module may have.
pub const GRANTS_PER_MODULE_MAX: usize = 32;

/// The scheme of an origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `http`.
    Http,
    /// `https`.
    Https,
}

impl Scheme {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL without one uses.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Which hosts an origin matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this name (lower case) or IP address.
    Exact(String),
    /// Any subdomain of this name (`*.example.com`), not the name itself.
    Subdomains(String),
    /// Any host (`*`): written as such, never implied.
    Any,
}

/// Which ports an origin matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortPattern {
    /// This port (the scheme's default when the origin names none).
    Exact(u16),
    /// Any port (`:*`).
    Any,
}

/// An origin a grant allows: `scheme://host[:port]`, the host possibly
/// `*.domain` or `*`, the port possibly `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// The scheme.
    pub scheme: Scheme,
    /// The hosts.
    pub host: HostPattern,
    /// The ports.
    pub port: PortPattern,
}

impl Origin {
    /// Parses `https://pay.example.com`, `http://127.0.0.1:9000`,
    /// `https://*.example.com:*`, `https://*`. No path, query, user or
    /// trailing text.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let bad = |why: &str| format!("`{text}` is not an origin: {why}");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("write scheme://host[:port]"))?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad("the scheme is http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad("only scheme://host[:port], without a path or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("a bad port"))?;
        let port = match port {
            None => PortPattern::Exact(scheme.default_port()),
            Some("*") => PortPattern::Any,
            Some(port) => PortPattern::Exact(port.parse().map_err(|_| bad("a bad port"))?),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            check_name(domain).map_err(|why| bad(&why))?;
            HostPattern::Subdomains(domain.to_owned())
        } else if host.parse::<IpAddr>().is_ok() {
            HostPattern::Exact(host)
        } else {
            check_name(&host).map_err(|why| bad(&why))?;
            HostPattern::Exact(host)
        };
        Ok(Origin { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is within this origin.
    /// `host` is lower case, an IPv6 address without brackets.
    pub fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let host_ok = match &self.host {
            HostPattern::Exact(name) => name == host,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            HostPattern::Any => true,
        };
        let port_ok = match self.port {
            PortPattern::Exact(p) => p == port,
            PortPattern::Any => true,
        };
        self.scheme == scheme && host_ok && port_ok
    }

    /// Whether it names this exact host (not through a pattern).
    pub fn names(&self, host: &str) -> bool {
        matches!(&self.host, HostPattern::Exact(name) if name == host)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            HostPattern::Exact(host) if host.contains(':') => write!(f, "[{host}]")?,
            HostPattern::Exact(host) => f.write_str(host)?,
            HostPattern::Subdomains(domain) => write!(f, "*.{domain}")?,
            HostPattern::Any => f.write_str("*")?,
        }
        match self.port {
            PortPattern::Exact(port) if port == self.scheme.default_port() => Ok(()),
            PortPattern::Exact(port) => write!(f, ":{port}"),
            PortPattern::Any => f.write_str(":*"),
        }
    }
}

/// `host[:port]` or `[v6][:port]` → host (without brackets) and port.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((text, None)),
    }
}

/// A DNS name: labels of letters, digits and `-`, dot-separated.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a host name"))
    }
}

/// Whether an address is one a job must not reach through a DNS answer:
/// loopback, private, link-local, unique-local, unspecified, multicast,
/// broadcast, documentation or shared (CGNAT) ranges, and IPv4 mapped or
/// translated into IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x64
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

/// A grant as the config writes it: `[grants.NAME]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GrantSpec {
    /// Origins the module's jobs may send HTTP requests to. A name must
    /// resolve to public addresses; an IP address written here may be
    /// internal.
    pub http: Vec<String>,
    /// Origins whose names may resolve to internal addresses (a service on
    /// the operator's own network).
    pub http_internal: Vec<String>,
    /// Secrets (from `[secrets]`) the module's jobs may read.
    pub secrets: Vec<String>,
    /// Configuration values (from `[config]`) the module's jobs may read.
    pub config: Vec<String>,
}

/// Where a secret's value comes from: `[secrets] NAME = { env = "VAR" }`
/// or `{ file = "/path" }` (read once, at start-up, trailing newline
/// dropped).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable of the host.
    pub env: Option<String>,
    /// A file the host can read.
    pub file: Option<std::path::PathBuf>,
}

/// One grant, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Origins, and whether each may resolve to internal addresses.
    pub http: Vec<(Origin, bool)>,
    /// Secret names.
    pub secrets: Vec<String>,
    /// Configuration names.
    pub config: Vec<String>,
}

/// The operator's grants, with the secrets' values loaded.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    grants: BTreeMap<String, Grant>,
    secrets: BTreeMap<String, String>,
    config: BTreeMap<String, String>,
}

impl Grants {
    /// Checks the config's grants, loads the secrets they may name (the
    /// environment read through `env`), and lists every problem.
    pub fn load(
        grants: &BTreeMap<String, GrantSpec>,
        secrets: &BTreeMap<String, SecretSource>,
        config: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Grants, Vec<String>> {
        let mut problems = Vec::new();
        let mut values = BTreeMap::new();
        for (name, source) in secrets {
            let value = match (&source.env, &source.file) {
                (Some(var), None) => env(var).ok_or_else(|| {
                    format!("secrets.{name}: the environment variable {var} is not set")
                }),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|e| format!("secrets.{name}: cannot read {}: {e}", path.display())),
                _ => Err(format!("secrets.{name}: give one of env or file")),
            };
            match value {
                Ok(value) if value.len() < SECRET_MIN_BYTES => problems.push(format!(
                    "secrets.{name}: the value is shorter than {SECRET_MIN_BYTES} bytes (it \
                     could not be redacted reliably)"
                )),
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(problem) => problems.push(problem),
            }
        }
        let mut checked = BTreeMap::new();
        for (name, spec) in grants {
            if let Err(why) = check_grant_name(name) {
                problems.push(format!("grants.{name}: {why}"));
            }
            let mut grant = Grant::default();
            for (list, internal, field) in [
                (&spec.http, false, "http"),
                (&spec.http_internal, true, "http_internal"),
            ] {
                for text in list {
                    match Origin::parse(text) {
                        Ok(origin) => grant.http.push((origin, internal)),
                        Err(why) => problems.push(format!("grants.{name}.{field}: {why}")),
                    }
                }
            }
            for secret in &spec.secrets {
                if !secrets.contains_key(secret) {
                    problems.push(format!(
                        "grants.{name}.secrets: no secret `{secret}` in [secrets]"
                    ));
                }
            }
            for key in &spec.config {
                if !config.contains_key(key) {
                    problems.push(format!(
                        "grants.{name}.config: no value `{key}` in [config]"
                    ));
                }
            }
            grant.secrets = spec.secrets.clone();
            grant.config = spec.config.clone();
            checked.insert(name.clone(), grant);
        }
        if problems.is_empty() {
            Ok(Grants {
                grants: checked,
                secrets: values,
                config: config.clone(),
            })
        } else {
            Err(problems)
        }
    }

    /// The grant named `name`.
    pub fn get(&self, name: &str) -> Option<&Grant> {
        self.grants.get(name)
    }

    /// Every grant, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Grant)> {
        self.grants.iter()
    }

    /// Checks that each name is a grant of this host; the first that is
    /// not is the error.
    pub fn check(&self, names: &[String]) -> Result<(), String> {
        if names.len() > GRANTS_PER_MODULE_MAX {
            return Err(format!(
                "a module has at most {GRANTS_PER_MODULE_MAX} grants, not {}",
                names.len()
            ));
        }
        match names.iter().find(|name| !self.grants.contains_key(*name)) {
            Some(name) => Err(format!("no grant `{name}` in this host's config")),
            None => Ok(()),
        }
    }

    /// What a module with grants `names` may reach: their union. A name
    /// that is no grant (any more) grants nothing.
    pub fn capabilities(&self, names: &[String]) -> Capabilities {
        let mut http = BTreeSet::new();
        let mut secrets = BTreeMap::new();
        let mut config = BTreeMap::new();
        for grant in names.iter().filter_map(|name| self.grants.get(name)) {
            http.extend(grant.http.iter().cloned());
            for name in &grant.secrets {
                if let Some(value) = self.secrets.get(name) {
                    secrets.insert(name.clone(), value.clone());
                }
            }
            for name in &grant.config {
                if let Some(value) = self.config.get(name) {
                    config.insert(name.clone(), value.clone());
                }
            }
        }
        Capabilities {
            http: http.into_iter().collect(),
            secrets,
            config,
        }
    }
}

/// A grant's name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn check_grant_name(name: &str) -> Result<(), String> {
    crate::policy::validate_queue_name(name)
        .map(|_| ())
        .map_err(|_| format!("`{name}` is not a grant name: use 1-64 of A-Z a-z 0-9 _ . -"))
}

/// What one job may reach: the union of its module's grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Origins, each with whether its names may resolve to internal
    /// addresses.
    pub http: Vec<(Origin, bool)>,
    /// Secrets, by name.
    pub secrets: BTreeMap<String, String>,
    /// Configuration values, by name.
    pub config: BTreeMap<String, String>,
}

impl Capabilities {
    /// Nothing at all: the default.
    pub fn none() -> Arc<Capabilities> {
        Arc::new(Capabilities::default())
    }

    /// The grant entries that allow a request to `scheme://host:port`,
    /// as `(names this host exactly, may resolve internally)`; empty when
    /// none does.
    pub fn allowing(&self, scheme: Scheme, host: &str, port: u16) -> Vec<(bool, bool)> {
        self.http
            .iter()
            .filter(|(origin, _)| origin.allows(scheme, host, port))
            .map(|(origin, internal)| (origin.names(host), *internal))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_match_exactly() {
        let pay = Origin::parse("https://pay.example.com").unwrap();
        assert!(pay.allows(Scheme::Https, "pay.example.com", 443));
        assert!(!pay.allows(Scheme::Http, "pay.example.com", 80));
        assert!(!pay.allows(Scheme::Https, "pay.example.com", 8443));
        assert!(!pay.allows(Scheme::Https, "evil.pay.example.com", 443));
        let local = Origin::parse("http://127.0.0.1:9000").unwrap();
        assert!(local.allows(Scheme::Http, "127.0.0.1", 9000));
        assert_eq!(local.to_string(), "http://127.0.0.1:9000");
        let sub = Origin::parse("https://*.example.com:*").unwrap();
        assert!(sub.allows(Scheme::Https, "a.example.com", 1));
        assert!(!sub.allows(Scheme::Https, "example.com", 443));
        assert!(!sub.allows(Scheme::Https, "aexample.com", 443));
        let v6 = Origin::parse("http://[::1]:8080").unwrap();
        assert!(v6.allows(Scheme::Http, "::1", 8080));
        assert_eq!(v6.to_string(), "http://[::1]:8080");
        assert_eq!(
            Origin::parse("https://*").unwrap().host,
            HostPattern::Any,
            "everything, but only when written so"
        );
        for bad in [
            "pay.example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://user@x.com",
            "https://x.com:99999",
            "https://bad_name.com",
            "https://",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn grants_load_secrets_and_name_every_problem() {
        let mut grants = BTreeMap::new();
        grants.insert(
            "payments".to_owned(),
            GrantSpec {
                http: vec!["https://pay.example.com".into(), "nope".into()],
                secrets: vec!["key".into(), "missing".into()],
                ..GrantSpec::default()
            },
        );
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "key".to_owned(),
            SecretSource {
                env: Some("PAY_KEY".into()),
                file: None,
            },
        );
        let problems = Grants::load(&grants, &secrets, &BTreeMap::new(), |_| None).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("secrets.key: the environment variable PAY_KEY"));
        grants.get_mut("payments").unwrap().http.pop();
        grants.get_mut("payments").unwrap().secrets.pop();
        let loaded = Grants::load(&grants, &secrets, &BTreeMap::new(), |var| {
            (var == "PAY_KEY").then(|| "sk_test_0123456789".to_owned())
        })
        .unwrap();
        let caps = loaded.capabilities(&["payments".to_owned(), "gone".to_owned()]);
        assert_eq!(caps.secrets["key"], "sk_test_0123456789");
        assert_eq!(
            caps.allowing(Scheme::Https, "pay.example.com", 443),
            [(true, false)]
        );
        assert!(loaded.check(&["payments".to_owned()]).is_ok());
        assert!(loaded.check(&["other".to_owned()]).is_err());
    }
}
