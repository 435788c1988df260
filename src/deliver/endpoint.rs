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
    /// Hosts reached directly: exact names or IPs, `.suffix` for a domain, `*` for all.
    pub no_proxy: Vec<String>,
    /// The local address connections are bound to.
    pub source_ip: Option<IpAddr>,
    /// The interface connections are bound to (SO_BINDTODEVICE).
    pub bind_interface: Option<String>,
}

impl Egress {
    /// Whether `host` is reached without the proxy.
    pub fn bypasses_proxy(&self, host: &str) -> bool {
        self.no_proxy.iter().any(|n| {
            n == "*"
                || n.eq_ignore_ascii_case(host)
                || (n.starts_with('.')
                    && host.to_ascii_lowercase().ends_with(&n.to_ascii_lowercase()))
        })
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
