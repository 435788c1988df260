//! How a webhook's requests travel: egress, authentication and its secrets, TLS.

use super::super::diag::Collector;
use super::super::host::{read_to_string, Host};
use super::super::walk::*;
use super::super::{parse_url, Scheme};
use super::url::authority_end;
use super::{Auth, Egress, NoProxy, ProxyAuth, Secret, TlsOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::DeTable;

/// `proxy`, `proxy_auth`, `no_proxy`, `source_ip`, `bind_interface`; the proxy's secrets
/// are read from `host`.
pub(super) fn parse_egress(c: &mut Collector, t: &DeTable, host: &dyn Host) -> Egress {
    let proxy = get_str(c, t, "proxy").and_then(|(p, span)| {
        // Credentials in a URL end up in logs and in `ps`; they have a key of their own.
        if p.get(..authority_end(p)).is_some_and(|a| a.contains('@')) {
            c.error(
                span,
                "`proxy`: credentials in the URL are not allowed: give them as `proxy_auth = { username = …, password = … }`",
            );
            return None;
        }
        match parse_url(p) {
            Ok(u) if u.scheme == Scheme::Http && u.path_and_query == "/" => Some(u),
            Ok(_) => {
                c.error(
                    span,
                    "`proxy` is an http:// URL of a CONNECT proxy, like \"http://proxy.lan:3128\"",
                );
                None
            }
            Err(m) => {
                c.error(span, format!("`proxy`: {m}"));
                None
            }
        }
    });
    let proxy_auth = get_table(c, t, "proxy_auth").and_then(|pt| {
        let (key, tv) = find(t, "proxy_auth").expect("proxy_auth was read");
        if find(t, "proxy").is_none() {
            c.error(key, "`proxy_auth` without a `proxy`");
        }
        parse_proxy_auth(c, pt, tv.span(), host)
    });
    let no_proxy = parse_no_proxy(c, t);
    if find(t, "no_proxy").is_some() && find(t, "proxy").is_none() {
        let (k, _) = find(t, "no_proxy").expect("no_proxy was read");
        c.error(k, "`no_proxy` without a `proxy`");
    }
    let source_ip =
        get_str(c, t, "source_ip").and_then(|(s, span)| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                c.error(span, format!("`source_ip` = \"{s}\" is not an IP address"));
                None
            }
        });
    // IFNAMSIZ is 16 with the terminating NUL.
    let bind_interface = get_str(c, t, "bind_interface").and_then(|(s, span)| {
        if s.is_empty() || s.len() > 15 || s.contains(['/', ' ']) {
            c.error(
                span,
                format!("`bind_interface` = \"{s}\" is not an interface name (1 to 15 bytes)"),
            );
            None
        } else {
            Some(s.to_string())
        }
    });
    Egress {
        proxy,
        proxy_auth,
        no_proxy,
        source_ip,
        bind_interface,
    }
}

/// `proxy_auth = { username = …, password = … }` (Basic, RFC 7617); each may also be
/// given as `*_env` or `*_file`. `span` is the table's.
fn parse_proxy_auth(
    c: &mut Collector,
    t: &DeTable,
    span: Range<usize>,
    host: &dyn Host,
) -> Option<ProxyAuth> {
    check_keys(
        c,
        t,
        &[
            "username",
            "username_env",
            "username_file",
            "password",
            "password_env",
            "password_file",
        ],
        &[],
        "`proxy_auth`",
    );
    // Where the user name was given, for an error about its value.
    let uspan = ["username", "username_env", "username_file"]
        .iter()
        .find_map(|k| find(t, k))
        .map(|(_, v)| v.span());
    let username = secret(c, t, "username", span.clone(), host);
    let password = secret(c, t, "password", span, host);
    let username = username?.expose().to_string();
    if username.contains(':') {
        c.error(
            uspan.unwrap_or_default(),
            "a `proxy_auth` `username` cannot contain `:` (RFC 7617)",
        );
        return None;
    }
    Some(ProxyAuth {
        username,
        password: password?,
    })
}

/// `no_proxy`: an array of entries, or one string of them separated by commas
/// (`"localhost, .lan, 10.0.0.0/8"`). An entry is a host name or IP, `.domain`, `*`, or
/// an IP network in CIDR form.
fn parse_no_proxy(c: &mut Collector, t: &DeTable) -> Vec<NoProxy> {
    let Some((_, v)) = find(t, "no_proxy") else {
        return Vec::new();
    };
    let entries: Vec<(&str, Range<usize>)> = match v.get_ref().as_str() {
        Some(list) => {
            // The column of each entry inside the string, when the string is written as
            // it reads (no escapes); else the string's own.
            let span = v.span();
            let raw = c.src_at(span.start).get(span.clone()).unwrap_or("");
            let literal = raw.len() == list.len() + 2 && raw.get(1..raw.len() - 1) == Some(list);
            let mut out = Vec::new();
            let mut at = 0;
            for part in list.split(',') {
                let lead = part.len() - part.trim_start().len();
                let entry = part.trim();
                let place = if literal {
                    // An empty entry is shown where it begins.
                    let s = span.start + 1 + at + if entry.is_empty() { 0 } else { lead };
                    s..s + entry.len().max(1)
                } else {
                    span.clone()
                };
                if entry.is_empty() {
                    c.error(
                        place,
                        "`no_proxy` has an empty entry (two commas, or a comma at an end)",
                    );
                } else {
                    out.push((entry, place));
                }
                at += part.len() + 1;
            }
            out
        }
        None => get_string_list(c, t, "no_proxy").unwrap_or_default(),
    };
    entries
        .into_iter()
        .filter_map(|(n, span)| match no_proxy_entry(n) {
            Ok(e) => Some(e),
            Err(m) => {
                c.error(span, format!("`no_proxy` entry `{n}` {m}"));
                None
            }
        })
        .collect()
}

/// One `no_proxy` entry, or why it is none.
fn no_proxy_entry(n: &str) -> Result<NoProxy, String> {
    use std::net::IpAddr;
    let what = "is not a host, an IP, `.domain`, `*` or an IP network like `10.0.0.0/8`";
    if n == "*" {
        return Ok(NoProxy::All);
    }
    if let Some((ip, bits)) = n.split_once('/') {
        let ip: IpAddr = ip.parse().map_err(|_| what.to_string())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return match bits.parse::<u8>() {
            Ok(b) if b <= max && bits.bytes().all(|d| d.is_ascii_digit()) => {
                Ok(NoProxy::Cidr(ip, b))
            }
            _ => Err(format!("has a prefix length that is not 0 to {max}")),
        };
    }
    let bare = n
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(n);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(NoProxy::Exact(ip.to_string()));
    }
    let name = n.strip_prefix('.').unwrap_or(n);
    let ok = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    match (ok, n.starts_with('.')) {
        (false, _) => Err(what.to_string()),
        (true, true) => Ok(NoProxy::Suffix(n.to_string())),
        (true, false) => Ok(NoProxy::Exact(n.to_string())),
    }
}

/// `auth = { … }`; its secret is read from `host` when given as `*_env` or `*_file`.
pub(super) fn parse_auth(c: &mut Collector, t: &DeTable, host: &dyn Host) -> Auth {
    check_keys(
        c,
        t,
        &[
            "type",
            "token",
            "token_env",
            "token_file",
            "username",
            "password",
            "password_env",
            "password_file",
        ],
        &[],
        "`auth`",
    );
    let kind = get_str(c, t, "type");
    // A key that the chosen type ignores is a mistake, not a no-op.
    let used: &[&str] = match kind {
        Some(("bearer", _)) => &["type", "token", "token_env", "token_file"],
        Some(("basic", _)) => &[
            "type",
            "username",
            "password",
            "password_env",
            "password_file",
        ],
        Some(("none", _)) => &["type"],
        _ => &[],
    };
    if let (Some((ty, _)), false) = (kind.clone(), used.is_empty()) {
        for (k, _) in t.iter() {
            if !used.contains(&k.get_ref().as_ref()) {
                c.error(
                    k.span(),
                    format!("`{}` has no effect with auth type \"{ty}\"", k.get_ref()),
                );
            }
        }
    }
    match kind {
        None | Some(("none", _)) => {
            if kind.is_none() && find(t, "type").is_none() {
                if let Some((k, _)) = t.iter().next() {
                    c.error(
                        k.span(),
                        "`auth` needs `type`: \"none\", \"bearer\" or \"basic\"",
                    );
                }
            }
            Auth::None
        }
        Some(("bearer", span)) => {
            secret(c, t, "token", span, host).map_or(Auth::None, Auth::Bearer)
        }
        Some(("basic", span)) => {
            let username = match get_str(c, t, "username") {
                Some((u, uspan)) => {
                    if u.contains(':') {
                        c.error(uspan, "a Basic auth `username` cannot contain `:`");
                    }
                    u.to_string()
                }
                None => {
                    c.error(span.clone(), "Basic auth needs `username`");
                    String::new()
                }
            };
            match secret(c, t, "password", span, host) {
                Some(password) => Auth::Basic { username, password },
                None => Auth::None,
            }
        }
        Some((other, span)) => {
            c.error(
                span,
                format!("unknown auth type `{other}`: expected \"none\", \"bearer\" or \"basic\""),
            );
            Auth::None
        }
    }
}

/// Reads `key`, `key_env` or `key_file` (exactly one). A relative `*_file` is looked up in
/// `$CREDENTIALS_DIRECTORY` first (systemd's `LoadCredential=`). The environment and the
/// files are `host`'s.
pub(super) fn secret(
    c: &mut Collector,
    t: &DeTable,
    key: &str,
    type_span: Range<usize>,
    host: &dyn Host,
) -> Option<Secret> {
    let env_key = format!("{key}_env");
    let file_key = format!("{key}_file");
    let given: Vec<&str> = [key, env_key.as_str(), file_key.as_str()]
        .into_iter()
        .filter(|k| find(t, k).is_some())
        .collect();
    if given.len() != 1 {
        c.error(
            type_span,
            format!("give exactly one of `{key}`, `{env_key}`, `{file_key}`"),
        );
        return None;
    }
    let (value, span) = get_str(c, t, given[0])?;
    let found = if given[0] == key {
        Ok(value.to_string())
    } else if given[0] == env_key {
        host.env(value)
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| format!("environment variable `{value}` is not set"))
    } else {
        let path = Path::new(value);
        let path = match host.env("CREDENTIALS_DIRECTORY") {
            Some(dir) if path.is_relative() && host.exists(&Path::new(&dir).join(path)) => {
                Path::new(&dir).join(path)
            }
            _ => path.to_path_buf(),
        };
        read_to_string(host, &path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    };
    match found {
        Ok(s) if s.is_empty() => {
            c.error(span, format!("`{}` is empty", given[0]));
            None
        }
        Ok(s) if s.bytes().any(|b| b.is_ascii_control()) => {
            c.error(span, format!("`{}` contains control characters", given[0]));
            None
        }
        Ok(s) => Some(Secret::new(s)),
        Err(m) => {
            c.error(span, format!("`{}`: {m}", given[0]));
            None
        }
    }
}

/// `tls = { … }`; `span` is the table's, for errors about the table as a whole. The files
/// it names must open on `host`.
pub(super) fn parse_tls(
    c: &mut Collector,
    t: &DeTable,
    span: Range<usize>,
    host: &dyn Host,
) -> TlsOptions {
    if find(t, "client_cert").is_some() != find(t, "client_key").is_some() {
        c.error(span, "`tls.client_cert` and `tls.client_key` go together");
    }
    check_keys(
        c,
        t,
        &[
            "ca_file",
            "client_cert",
            "client_key",
            "insecure_skip_verify",
        ],
        &[],
        "`tls`",
    );
    // Read now so that `check` (and a SIGHUP reload) catch a missing file, not the start.
    let mut path = |key: &str| {
        let (s, span) = get_str(c, t, key).filter(|(s, _)| !s.is_empty())?;
        match host.open(Path::new(s)) {
            Ok(_) => Some(PathBuf::from(s)),
            Err(e) => {
                c.error(span, format!("`tls.{key}`: cannot read `{s}`: {e}"));
                None
            }
        }
    };
    let ca_file = path("ca_file");
    let client_cert = path("client_cert");
    let client_key = path("client_key");
    TlsOptions {
        ca_file,
        client_cert,
        client_key,
        insecure_skip_verify: get_bool(c, t, "insecure_skip_verify").unwrap_or(false),
    }
}
