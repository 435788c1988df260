//! How a webhook's requests travel: egress, authentication and its secrets, TLS.

use super::super::diag::Collector;
use super::super::host::{read_to_string, Host};
use super::super::walk::*;
use super::super::{parse_url, Scheme};
use super::{Auth, Egress, Secret, TlsOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::DeTable;

/// `proxy`, `no_proxy`, `source_ip`, `bind_interface`.
pub(super) fn parse_egress(c: &mut Collector, t: &DeTable) -> Egress {
    let proxy = get_str(c, t, "proxy").and_then(|(p, span)| match parse_url(p) {
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
    });
    let no_proxy: Vec<String> = get_string_list(c, t, "no_proxy")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(n, span)| {
            let ip = n.parse::<std::net::IpAddr>().is_ok();
            if n.is_empty() || (!ip && n.contains(['/', ' ', ':'])) {
                c.error(
                    span,
                    format!("`no_proxy` entry `{n}` is not a host, an IP, `.domain` or `*`"),
                );
                None
            } else {
                Some(n.to_string())
            }
        })
        .collect();
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
        no_proxy,
        source_ip,
        bind_interface,
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
