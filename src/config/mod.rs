//! Configuration: one TOML file in, a validated, bounded [`Config`] out.
//!
//! The raw form is toml's spanned document tree ([`toml::de::DeTable`]); it is walked once,
//! collecting *every* problem as a [`Diagnostic`] with file, line and column (serde's derive
//! stops at the first). The validated types below are what the rest of tocsin sees: every
//! limit of [`crate::limits`] is checked here, so nothing overflows at run time.

mod agent;
mod diag;
mod host;
mod include;
mod proof;
mod rule;
mod value;
mod walk;
mod webhook;

pub use crate::deliver::url::{parse_url, Scheme, Url};
pub use crate::util::percent_encode_into;
pub use agent::{auto_device_id, read_hostname, MAX_SOCKET_PATH_LEN};
pub use diag::{Diagnostic, Diagnostics};
pub use host::{Host, Node, RealHost};
pub use value::{parse_condition, parse_duration};
pub use webhook::{
    alertmanager_target, Auth, ContentType, Egress, Endpoint, Filter, Format, Method, Payload,
    Secret, Signing, SigningKeys, TlsOptions, Webhook,
};

use crate::event::Language;
use crate::limits::*;
use crate::render;
use crate::rule::RuleSpec;
use crate::source::Probe;
use agent::parse_agent;
use diag::Collector;
use include::{merged_agent, read_includes};
use proof::{check_alertmanager_labels, prove_webhook};
use rule::{check_probe_conflict, parse_rule};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::DeTable;
use walk::{array_of_tables, check_keys, names};
use webhook::parse_webhook;

// The unit tests take these through `use super::*`.
#[cfg(test)]
use crate::event::EventMask;

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[agent]`.
    pub agent: AgentSettings,
    /// `[[rule]]`, at most [`MAX_RULES`].
    pub rules: Vec<Rule>,
    /// `[[webhook]]`, at most [`MAX_WEBHOOKS`].
    pub webhooks: Vec<Webhook>,
    /// The files `[agent] include` brought in, in the order they were merged.
    pub includes: Vec<PathBuf>,
}

/// `[agent]`.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    /// `device_id` (the userId of Aliyun CloudMonitor's alarm callback); defaults to the
    /// host name.
    pub device_id: String,
    /// `hostname`, resolved from `/proc/sys/kernel/hostname` under `root` when `auto`.
    pub hostname: String,
    /// Sampling interval.
    pub interval_ms: u64,
    /// Language of human-readable content.
    pub language: Language,
    /// Spool and last-known-good config.
    pub state_dir: PathBuf,
    /// The control socket of `tocsin status`.
    pub control_socket: PathBuf,
    /// Prefix for /proc and /sys.
    pub root: PathBuf,
    /// Heartbeat period; `None` is off.
    pub heartbeat_ms: Option<u64>,
    /// Fleet labels, in file order.
    pub labels: Vec<(String, String)>,
    /// `log_level`: the most verbose log lines written (the command line's `-q`/`-v` win).
    pub log_level: crate::log::Level,
}

impl Config {
    /// What the sink of webhook `i` needs, owned: its payload, endpoint and filter, and
    /// the device and state directory of `[agent]`.
    pub fn sink(&self, i: usize) -> crate::deliver::SinkSpec {
        let wh = &self.webhooks[i];
        crate::deliver::SinkSpec {
            name: wh.name.clone(),
            payload: wh.payload.clone(),
            endpoint: wh.endpoint.clone(),
            filter: wh.filter,
            origin: self.agent.origin(),
            state_dir: self.agent.state_dir.clone(),
            interval_ms: self.agent.interval_ms,
            heartbeat: self.agent.heartbeat_ms.is_some(),
        }
    }
}

impl AgentSettings {
    /// The device as payloads see it.
    pub fn origin(&self) -> render::Origin {
        render::Origin {
            device_id: self.device_id.clone(),
            hostname: self.hostname.clone(),
            interval_ms: self.interval_ms,
            labels: self.labels.clone(),
        }
    }
}

/// A validated `[[rule]]`.
#[derive(Clone, Debug)]
pub struct Rule {
    /// What the evaluator needs.
    pub spec: RuleSpec,
    /// What the sampler must watch for this rule (process, tcp, file and exec metrics).
    pub probe: Option<Probe>,
    /// Indexes into [`Config::webhooks`].
    pub notify: Vec<usize>,
}

/// Reads and validates the config file at `path`.
///
/// # Errors
/// Every problem found, each with file, line and column.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    // Parsing and checking a config runs deep for a moment (TOML, serde, every template
    // rendered at its longest). On a thread of its own, whose stack is unmapped when it
    // ends, that depth is not left behind as resident pages of the long-running main
    // thread's stack. If no thread can be made, it runs here.
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("config".into())
            .spawn_scoped(s, || load_with_host(path, &RealHost))
        {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(_) => load_with_host(path, &RealHost),
        }
    })
}

/// [`load`], with the config file and everything it names read from `host`.
///
/// # Errors
/// As [`load`].
pub fn load_with_host(path: &Path, host: &dyn Host) -> Result<Config, Diagnostics> {
    let file = path.display().to_string();
    let whole_file = |message: String| {
        Diagnostics(vec![Diagnostic {
            file: file.clone(),
            line: 1,
            col: 1,
            message,
        }])
    };
    let bytes = host
        .read_file(path)
        .map_err(|e| whole_file(format!("cannot read config: {e}")))?;
    if bytes.len() > MAX_CONFIG_LEN {
        return Err(whole_file(format!(
            "config is {} bytes; the limit is {MAX_CONFIG_LEN}",
            bytes.len()
        )));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = std::str::from_utf8(&e.as_bytes()[..valid]).unwrap_or("");
            let (line, col) = diag::line_col(prefix, valid);
            return Err(Diagnostics(vec![Diagnostic {
                file: file.clone(),
                line,
                col,
                message: "config is not valid UTF-8".into(),
            }]));
        }
    };
    parse_with_host(&text, &file, host)
}

/// Validates config text. `file` names it in diagnostics. Included files, secrets given
/// as `*_file` or `*_env`, `hostname = "auto"` and `device_id = "auto"` are read from this
/// machine here.
///
/// # Errors
/// Every problem found, each with file, line and column.
pub fn parse(src: &str, file: &str) -> Result<Config, Diagnostics> {
    parse_with_host(src, file, &RealHost)
}

/// [`parse`], with everything the config names (included files, secrets, the device's
/// identity, TLS files) read from `host` instead of this machine.
///
/// # Errors
/// As [`parse`].
pub fn parse_with_host(src: &str, file: &str, host: &dyn Host) -> Result<Config, Diagnostics> {
    parse_with(src, file, None, host)
}

/// Reads the last-known-good copy at `path`, the main file of a generation
/// (`state_dir/lkg.N/config.toml`): its included files are the other files of its
/// directory (`NNN-name`), not what the include pattern matches today. The copies are
/// read as state files: a FIFO, a symbolic link or anything but a regular file in their
/// place is refused, with a log line.
///
/// # Errors
/// As [`load`].
pub fn load_last_good(path: &Path) -> Result<Config, Diagnostics> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let host = &host::LastGood {
        main: path,
        copies: &dir,
    };
    let text = host::read_to_string(host, path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.display().to_string(),
            line: 1,
            col: 1,
            message: format!("cannot read config: {e}"),
        }])
    })?;
    parse_with(&text, &path.display().to_string(), Some(&dir), host)
}

/// The first version's directory, beside its `last-good.toml`, of copies of the files it
/// included; converted into a generation once.
pub const LAST_GOOD_DIR: &str = "last-good.d";

/// [`parse`]; with `include_dir`, the included files are every file there instead of
/// what `[agent] include` matches. All host I/O goes through `host`.
fn parse_with(
    src: &str,
    file: &str,
    include_dir: Option<&Path>,
    host: &dyn Host,
) -> Result<Config, Diagnostics> {
    let (doc, parse_errors) = DeTable::parse_recoverable(src);
    if !parse_errors.is_empty() {
        let mut c = Collector::new(file, src);
        for e in parse_errors {
            let span = e.span().unwrap_or(0..0);
            c.error(span, e.message().trim().to_string());
        }
        return Err(c.finish().expect_err("errors were recorded"));
    }
    let doc = doc.get_ref();
    // `include`: every file is parsed after as many spaces as the files before it are long,
    // so that a span says which file it is in (see `Collector`).
    let (found, include_errors) = read_includes(doc, file, src.len(), include_dir, host);
    let mut padded: Vec<(String, String, usize)> = Vec::with_capacity(found.len());
    let mut base = src.len() + 1;
    for (name, text) in found {
        let len = text.len();
        padded.push((name, " ".repeat(base) + &text, base));
        base += len + 1;
    }
    let mut c = Collector::new(file, src);
    for (span, m) in include_errors {
        c.error(span, m);
    }
    let mut docs = vec![doc.clone()];
    for (name, text, at) in &padded {
        c.add(name, text, *at);
        let (d, errors) = DeTable::parse_recoverable(text);
        if errors.is_empty() {
            docs.push(d.into_inner());
        } else {
            for e in errors {
                c.error(e.span().unwrap_or(*at..*at), e.message().trim().to_string());
            }
        }
    }
    if !padded.is_empty() && docs.len() < padded.len() + 1 {
        return Err(c.finish().expect_err("errors were recorded"));
    }
    for d in &docs {
        check_keys(
            &mut c,
            d,
            &["agent", "rule", "webhook"],
            &[],
            "the top level",
        );
    }
    let agent_table = merged_agent(&mut c, &docs);
    let agent = parse_agent(&mut c, &agent_table, host);

    let webhook_tables: Vec<_> = docs
        .iter()
        .flat_map(|d| array_of_tables(&mut c, d, "webhook"))
        .collect();
    if webhook_tables.len() > MAX_WEBHOOKS {
        c.error(
            webhook_tables[MAX_WEBHOOKS].1.clone(),
            format!("too many webhooks: the limit is {MAX_WEBHOOKS}"),
        );
    }
    // Names first, so that `notify` and duplicate checks do not depend on whether a
    // table has other errors (which would bury the real error under follow-ons).
    let webhook_names = names(&mut c, &webhook_tables, "webhook");
    let mut webhooks = Vec::new();
    let mut webhook_spans = Vec::new();
    for (t, span) in &webhook_tables {
        if let Some((w, spans)) = parse_webhook(&mut c, t, span.clone(), &agent, host) {
            webhooks.push(w);
            webhook_spans.push(spans);
        }
    }

    let rule_tables: Vec<_> = docs
        .iter()
        .flat_map(|d| array_of_tables(&mut c, d, "rule"))
        .collect();
    if rule_tables.len() > MAX_RULES {
        c.error(
            rule_tables[MAX_RULES].1.clone(),
            format!("too many rules: the limit is {MAX_RULES}"),
        );
    }
    let rule_names = names(&mut c, &rule_tables, "rule");
    let mut rules: Vec<Rule> = Vec::new();
    let mut probes: Vec<(Probe, Range<usize>)> = Vec::new();
    for (t, span) in &rule_tables {
        if let Some(r) = parse_rule(&mut c, t, span.clone(), &webhook_names, agent.interval_ms) {
            if let Some(p) = &r.probe {
                check_probe_conflict(&mut c, &probes, p, t, span.clone());
                probes.push((p.clone(), span.clone()));
            }
            rules.push(r);
        }
    }
    if webhooks
        .iter()
        .any(|w| w.payload.format == Format::Alertmanager)
    {
        check_alertmanager_labels(&mut c, &agent_table);
    }
    // Every payload is proved valid and within its buffer before the agent may run.
    let longest = render::check::longest(rule_names.iter().map(|(n, _)| n.as_str()));
    for (wh, spans) in webhooks.iter().zip(&webhook_spans) {
        prove_webhook(&mut c, &agent, &longest, wh, spans);
    }
    c.finish()?;
    Ok(Config {
        agent,
        rules,
        webhooks,
        includes: padded
            .into_iter()
            .map(|(f, _, _)| PathBuf::from(f))
            .collect(),
    })
}

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;
