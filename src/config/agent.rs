//! `[agent]`, and the host's identity when it is `auto`.

use super::diag::Collector;
use super::host::{read_source_text, Host, Node, RealHost};
use super::walk::*;
use super::AgentSettings;
use crate::event::Language;
use crate::limits::*;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::DeTable;

const AGENT_KEYS: &[&str] = &[
    "include",
    "device_id",
    "hostname",
    "interval",
    "language",
    "state_dir",
    "control_socket",
    "root",
    "heartbeat",
    "labels",
    "log_level",
];

/// `[agent]`; `hostname = "auto"` and `device_id = "auto"` are read from `host`.
pub(super) fn parse_agent(c: &mut Collector, t: &DeTable, host: &dyn Host) -> AgentSettings {
    check_keys(c, t, AGENT_KEYS, &[], "[agent]");
    let root = PathBuf::from(get_path(c, t, "root").unwrap_or("/"));
    let hostname = match get_str(c, t, "hostname") {
        Some((s, span)) if s != "auto" => {
            check_identity(c, "hostname", s, span);
            s.to_string()
        }
        _ => read_hostname_on(host, &root),
    };
    let device_id = match get_str(c, t, "device_id") {
        // One config for a whole fleet: each device finds its own id.
        Some(("auto", span)) => match auto_device_id_on(host, &root) {
            Some(id) => id,
            None => {
                c.error(span, "`device_id = \"auto\"`: neither /etc/machine-id nor a network interface's MAC address could be read");
                hostname.clone()
            }
        },
        Some((s, span)) => {
            check_identity(c, "device_id", s, span);
            s.to_string()
        }
        None => hostname.clone(),
    };
    let language = match get_str(c, t, "language") {
        Some((s, span)) => Language::from_config(s).unwrap_or_else(|| {
            c.error(
                span,
                format!("unknown language `{s}`: expected \"en\" or \"zh\""),
            );
            Language::En
        }),
        None => Language::En,
    };
    let labels = get_string_map(c, t, "labels");
    if labels.len() > MAX_LABELS {
        c.error(
            labels[MAX_LABELS].key_span.clone(),
            format!("too many labels: the limit is {MAX_LABELS}"),
        );
    }
    for Pair {
        key: k,
        value: v,
        key_span: span,
        ..
    } in &labels
    {
        let ok_key = k
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if k.is_empty() || !ok_key {
            c.error(
                span.clone(),
                format!("label name `{k}` must match [A-Za-z_][A-Za-z0-9_]*"),
            );
        }
        if v.len() > MAX_DIM_VALUE_LEN {
            c.error(
                span.clone(),
                format!("label `{k}` is longer than {MAX_DIM_VALUE_LEN} bytes"),
            );
        }
    }
    let log_level = match get_str(c, t, "log_level") {
        Some((s, span)) => crate::log::Level::from_config(s).unwrap_or_else(|| {
            c.error(
                span,
                format!("unknown `log_level` = \"{s}\": expected \"error\", \"warn\", \"info\" or \"debug\""),
            );
            crate::log::Level::Info
        }),
        None => crate::log::Level::Info,
    };
    AgentSettings {
        log_level,
        device_id,
        hostname,
        interval_ms: get_duration(c, t, "interval").unwrap_or(5000),
        language,
        state_dir: PathBuf::from(get_path(c, t, "state_dir").unwrap_or("/var/lib/tocsin")),
        control_socket: PathBuf::from(
            control_socket(c, t, host).unwrap_or("/run/tocsin/control.sock"),
        ),
        root,
        heartbeat_ms: get_duration(c, t, "heartbeat"),
        labels: labels.into_iter().map(|e| (e.key, e.value)).collect(),
    }
}

/// Longest path a Unix socket can be bound at, in bytes: `sun_path` holds 108 with the
/// terminating NUL.
pub const MAX_SOCKET_PATH_LEN: usize = 107;

/// A non-empty path string.
pub(super) fn get_path<'t>(c: &mut Collector, t: &'t DeTable, key: &str) -> Option<&'t str> {
    get_path_at(c, t, key).map(|(s, _)| s)
}

/// [`get_path`] and where its value is.
fn get_path_at<'t>(
    c: &mut Collector,
    t: &'t DeTable,
    key: &str,
) -> Option<(&'t str, Range<usize>)> {
    let (s, span) = get_str(c, t, key)?;
    if s.is_empty() {
        c.error(span, format!("`{key}` must not be empty"));
        return None;
    }
    Some((s, span))
}

/// `control_socket`: a path a Unix socket can be bound at, and where nothing but a socket
/// (a stale one, which the agent replaces) already is: the agent never removes anything
/// else there, so a file there would leave it without a socket.
fn control_socket<'t>(c: &mut Collector, t: &'t DeTable, host: &dyn Host) -> Option<&'t str> {
    let key = "control_socket";
    let (s, span) = get_path_at(c, t, key)?;
    if s.len() > MAX_SOCKET_PATH_LEN {
        c.error(
            span,
            format!(
                "`{key}` is {} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH_LEN}",
                s.len()
            ),
        );
    } else if s.contains('\0') {
        c.error(span, format!("`{key}` must not contain NUL"));
    } else if host.node(Path::new(s)) == Node::Other {
        c.error(
            span,
            format!("`{key}` `{s}` exists and is not a socket: the agent removes only a stale socket there, never anything else"),
        );
    }
    Some(s)
}

/// `device_id` and `hostname` name the device in every payload: bounded, one line.
pub(super) fn check_identity(c: &mut Collector, key: &str, s: &str, span: Range<usize>) {
    if s.is_empty() || s.len() > MAX_DIM_VALUE_LEN {
        c.error(
            span,
            format!("`{key}` must be 1 to {MAX_DIM_VALUE_LEN} bytes long"),
        );
    } else if s.chars().any(char::is_control) {
        c.error(span, format!("`{key}` must not contain control characters"));
    }
}

/// `device_id = "auto"`: `/etc/machine-id` under `root`, else the first non-zero MAC
/// address of `/sys/class/net/*` (interfaces in name order, loopback skipped).
pub fn auto_device_id(root: &Path) -> Option<String> {
    auto_device_id_on(&RealHost, root)
}

/// [`auto_device_id`] read from `host`.
pub(super) fn auto_device_id_on(host: &dyn Host, root: &Path) -> Option<String> {
    let machine_id = read_source_text(host, &root.join("etc/machine-id")).ok();
    if let Some(id) = machine_id
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Some(id);
    }
    let net = root.join("sys/class/net");
    let mut ifaces = host.read_dir(&net).ok()?;
    ifaces.sort();
    ifaces.iter().filter(|n| *n != "lo").find_map(|n| {
        let mac = read_source_text(host, &net.join(n).join("address"))
            .ok()?
            .trim()
            .to_ascii_lowercase();
        let valid = mac.len() == 17 && mac.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        (valid && mac != "00:00:00:00:00:00").then_some(mac)
    })
}

/// The kernel's host name under `root`, or `localhost` when it cannot be read.
pub fn read_hostname(root: &Path) -> String {
    read_hostname_on(&RealHost, root)
}

/// [`read_hostname`] read from `host`.
pub(super) fn read_hostname_on(host: &dyn Host, root: &Path) -> String {
    read_source_text(host, &root.join("proc/sys/kernel/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= MAX_DIM_VALUE_LEN)
        .unwrap_or_else(|| "localhost".to_string())
}
