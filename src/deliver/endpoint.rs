//! Where and how a webhook's requests go: URL and peers, method, headers, auth, signing,
//! TLS, egress, timeout and retries. The config builds an [`Endpoint`]; the outbox and the
//! Alertmanager lanes send with it.

use super::url::Url;
use crate::render::template::Template;
use crate::util::Secret;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
}

impl Method {
    /// The method token.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// Request authentication (those of the generic HTTP-callback settings: No Auth, Bearer
/// Token, Basic Auth).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// Request signing that lives in the URL or in headers (the `cloudmonitor-form`
/// `signature` is a body field: [`crate::render::Payload::form_secret`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Signing {
    /// Not signed.
    #[default]
    None,
    /// DingTalk's group robot: `timestamp` (ms) and `sign` = urlencoded
    /// base64(HMAC-SHA256(secret, "timestamp\nsecret")) appended to the URL's query.
    DingTalk(Secret),
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` headers,
    /// one signature per key (several while a secret is rotated).
    StandardWebhooks(SigningKeys),
}

/// HMAC keys; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys(pub Vec<Vec<u8>>);

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeys(<{} redacted>)", self.0.len())
    }
}

/// TLS options of a webhook.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM bundle of extra trusted CAs (a private CA).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain, for mTLS.
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate. Loudly logged at every start.
    pub insecure_skip_verify: bool,
}

/// How requests leave the device: through a CONNECT proxy, from a source address, by an
/// interface (CloudMonitor's receivers allow-list sender IPs; a router has several WANs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    /// An HTTP proxy that tunnels with CONNECT (for http and https targets alike).
    pub proxy: Option<Url>,
    /// Basic credentials for the proxy (RFC 7617), sent with each CONNECT.
    pub proxy_auth: Option<ProxyAuth>,
    /// Hosts reached directly.
    pub no_proxy: Vec<NoProxy>,
    /// The local address connections are bound to.
    pub source_ip: Option<IpAddr>,
    /// The interface connections are bound to (SO_BINDTODEVICE).
    pub bind_interface: Option<String>,
}

/// The proxy's Basic credentials; `Debug` shows the user name only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyAuth {
    /// User name (without `:`, RFC 7617).
    pub username: String,
    /// Password.
    pub password: Secret,
}

impl ProxyAuth {
    /// The `Proxy-Authorization` value: `Basic base64(user:password)`.
    pub fn header_value(&self) -> String {
        let mut v = String::from("Basic ");
        let pair = format!("{}:{}", self.username, self.password.expose());
        crate::util::base64_into(pair.as_bytes(), &mut v);
        v
    }
}

/// One `no_proxy` entry: a host reached without the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoProxy {
    /// `*`: every host.
    All,
    /// An exact host name or IP literal (names compared without case).
    Exact(String),
    /// `.lan`: every name ending so (not `lan` itself).
    Suffix(String),
    /// `10.0.0.0/8`, `fd00::/8`: every IP literal host inside (names are not resolved
    /// for this).
    Cidr(IpAddr, u8),
}

impl NoProxy {
    /// Whether `host` (a name, or an IP literal without brackets) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            NoProxy::All => true,
            NoProxy::Exact(n) => match (n.parse::<IpAddr>(), host.parse::<IpAddr>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => n.eq_ignore_ascii_case(host),
            },
            NoProxy::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
            NoProxy::Cidr(net, bits) => match (net, host.parse::<IpAddr>()) {
                (IpAddr::V4(n), Ok(IpAddr::V4(h))) => prefix_eq(&n.octets(), &h.octets(), *bits),
                (IpAddr::V6(n), Ok(IpAddr::V6(h))) => prefix_eq(&n.octets(), &h.octets(), *bits),
                // An IPv4-mapped IPv6 literal is the IPv4 host it maps.
                (IpAddr::V4(n), Ok(IpAddr::V6(h))) => h
                    .to_ipv4_mapped()
                    .is_some_and(|h| prefix_eq(&n.octets(), &h.octets(), *bits)),
                _ => false,
            },
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are the same.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl Egress {
    /// Whether `host` is reached without the proxy.
    pub fn bypasses_proxy(&self, host: &str) -> bool {
        self.no_proxy.iter().any(|n| n.matches(host))
    }
}

/// One webhook's delivery settings.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Where requests go: scheme, host and port are fixed; the path and query of the
    /// first request line come from `target`.
    pub url: Url,
    /// `url`, or each peer of `urls` (an Alertmanager cluster).
    pub peers: Vec<Url>,
    /// The request target (path and query, with `query` appended), `${variables}`
    /// percent-encoded.
    pub target: Template,
    /// HTTP method.
    pub method: Method,
    /// Extra headers, in file order; variables are made header-safe.
    pub headers: Vec<(String, Template)>,
    /// Authentication.
    pub auth: Auth,
    /// How requests are signed (URL or headers).
    pub signing: Signing,
    /// TLS settings.
    pub tls: TlsOptions,
    /// Proxy, source address, interface.
    pub egress: Egress,
    /// Bound on one attempt (connect, TLS, request, response).
    pub timeout_ms: u64,
    /// Attempts after the first.
    pub retries: u32,
    /// Minimum wait between attempts (jittered up by 0-25 %).
    pub retry_interval_ms: u64,
    /// Cap on an honoured `Retry-After`.
    pub retry_after_max_ms: u64,
    /// `alertmanager`: most alerts in one request.
    pub max_batch: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_entries_match_names_suffixes_and_networks() {
        let cidr = |s: &str, b| NoProxy::Cidr(s.parse().unwrap(), b);
        let table: &[(NoProxy, &str, bool)] = &[
            (NoProxy::All, "example.com", true),
            (NoProxy::Exact("Router.LAN".into()), "router.lan", true),
            (NoProxy::Exact("router.lan".into()), "x.router.lan", false),
            (NoProxy::Exact("::1".into()), "0:0::1", true),
            (NoProxy::Suffix(".lan".into()), "nas.lan", true),
            (NoProxy::Suffix(".lan".into()), "NAS.LAN", true),
            (NoProxy::Suffix(".lan".into()), "lan", false),
            (NoProxy::Suffix(".lan".into()), "plan", false),
            (cidr("10.0.0.0", 8), "10.200.3.4", true),
            (cidr("10.0.0.0", 8), "11.0.0.1", false),
            (cidr("10.0.0.0", 8), "ten.lan", false),
            (cidr("192.168.1.128", 25), "192.168.1.200", true),
            (cidr("192.168.1.128", 25), "192.168.1.127", false),
            (cidr("0.0.0.0", 0), "203.0.113.9", true),
            (cidr("127.0.0.1", 32), "127.0.0.1", true),
            (cidr("127.0.0.1", 32), "127.0.0.2", false),
            (cidr("10.0.0.0", 8), "::ffff:10.1.2.3", true),
            (cidr("fd00::", 8), "fd12:3456::1", true),
            (cidr("fd00::", 8), "fe80::1", false),
            (cidr("fd00::", 8), "10.0.0.1", false),
            (cidr("2001:db8::", 33), "2001:db8:7fff::1", true),
            (cidr("2001:db8::", 33), "2001:db8:8000::1", false),
        ];
        for (entry, host, want) in table {
            assert_eq!(entry.matches(host), *want, "{entry:?} vs {host}");
        }
    }

    #[test]
    fn proxy_authorization_is_basic_and_debug_hides_the_password() {
        let a = ProxyAuth {
            username: "Aladdin".into(),
            password: Secret::new("open sesame".into()),
        };
        // RFC 7617 section 2's example.
        assert_eq!(a.header_value(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(!format!("{a:?}").contains("sesame"));
    }
}
