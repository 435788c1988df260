//! Configuration: one TOML file in, a validated, bounded [`Config`] out.
//!
//! The raw form is toml's spanned document tree ([`toml::de::DeTable`]); it is walked once,
//! collecting *every* problem as a [`Diagnostic`] with file, line and column (serde's derive
//! stops at the first). The validated types below are what the rest of tocsin sees: every
//! limit of [`crate::limits`] is checked here, so nothing overflows at run time.

mod diag;
mod value;

pub use diag::{Diagnostic, Diagnostics};
pub use value::{parse_condition, parse_duration, parse_url, Scheme, Url};

use crate::event::{EventMask, EventType, Language};
use crate::limits::*;
use crate::metric::{DimValue, Metric};
use crate::render;
use crate::render::template::{Segment, Template};
use crate::rule::{Level, NoData, RuleSpec};
use crate::source::Probe;
use diag::Collector;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[agent]`.
    pub agent: Agent,
    /// `[[rule]]`, at most [`MAX_RULES`].
    pub rules: Vec<Rule>,
    /// `[[webhook]]`, at most [`MAX_WEBHOOKS`].
    pub webhooks: Vec<Webhook>,
    /// The files `[agent] include` brought in, in the order they were merged.
    pub includes: Vec<PathBuf>,
}

/// `[agent]`.
#[derive(Clone, Debug)]
pub struct Agent {
    /// `device_id` (seed 001's userId); defaults to the host name.
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

/// Payload format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Seeds 001 + 003, JSON.
    CloudmonitorJson,
    /// Seed 003, form-urlencoded, with an optional signature.
    CloudmonitorForm,
    /// Seed 002's JSON body.
    Hertzbeat,
    /// Any body with `${variables}` (seed 000).
    Template,
    /// Prometheus Alertmanager's v2 push API: a JSON array of alerts, re-sent while firing.
    Alertmanager,
}

impl Format {
    /// Every format, in the order the design lists them.
    pub const ALL: [Format; 5] = [
        Format::CloudmonitorJson,
        Format::CloudmonitorForm,
        Format::Hertzbeat,
        Format::Alertmanager,
        Format::Template,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CloudmonitorJson => "cloudmonitor-json",
            Format::CloudmonitorForm => "cloudmonitor-form",
            Format::Hertzbeat => "hertzbeat",
            Format::Template => "template",
            Format::Alertmanager => "alertmanager",
        }
    }
}

/// The body type of a `template` webhook (seed 000's Content-Type table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `text/xml`.
    Xml,
    /// `text/plain`.
    Text,
}

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

/// A secret value; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Request authentication (seed 000: No Auth, Bearer Token, Basic Auth).
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

/// Request signing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Signing {
    /// Not signed.
    #[default]
    None,
    /// `cloudmonitor-form`: a `signature` field, base64(HMAC-SHA256(secret, body before it)).
    Cloudmonitor(Secret),
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

/// A validated `[[webhook]]`.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Unique name, referenced by rules' `notify`.
    pub name: String,
    /// `false` keeps it configured but silent.
    pub enabled: bool,
    /// Where requests go: scheme, host and port are fixed; the path and query of the
    /// first request line come from `target`.
    pub url: Url,
    /// The request target (path and query, with `query` appended), `${variables}`
    /// percent-encoded.
    pub target: Template,
    /// Payload format.
    pub format: Format,
    /// HTTP method.
    pub method: Method,
    /// Extra headers, in file order; variables are made header-safe.
    pub headers: Vec<(String, Template)>,
    /// The body template (`template` format only); `None` sends no body.
    pub body: Option<Template>,
    /// The body's type (`template` format only).
    pub content_type: Option<ContentType>,
    /// How requests are signed.
    pub signing: Signing,
    /// Authentication.
    pub auth: Auth,
    /// Bound on one attempt (connect, TLS, request, response).
    pub timeout_ms: u64,
    /// Attempts after the first.
    pub retries: u32,
    /// Minimum wait between attempts (jittered up by 0-25 %).
    pub retry_interval_ms: u64,
    /// Cap on an honoured `Retry-After`.
    pub retry_after_max_ms: u64,
    /// Language of `content` (the agent's unless overridden).
    pub language: Language,
    /// Which event types it receives.
    pub events: EventMask,
    /// Lowest level of rule events it receives.
    pub min_level: Level,
    /// TLS settings.
    pub tls: TlsOptions,
    /// Proxy, source address, interface.
    pub egress: crate::deliver::client::Egress,
    /// Where requests go: `url`, or each peer of `urls` (an Alertmanager cluster).
    pub peers: Vec<Url>,
    /// `alertmanager`: how often a firing alert is re-sent (default 1 m).
    pub resend_ms: u64,
    /// `alertmanager`: the `generatorURL` of every alert (variables URL-encoded).
    pub generator_url: Option<Template>,
    /// `alertmanager`: most alerts in one request.
    pub max_batch: usize,
}

impl Webhook {
    /// Whether this webhook takes `event`: enabled, type selected, level high enough.
    pub fn wants(&self, kind: EventType, level: Option<Level>) -> bool {
        self.enabled && self.events.contains(kind) && level.is_none_or(|l| l >= self.min_level)
    }
}

/// Reads and validates the config file at `path`.
///
/// # Errors
/// Every problem found, each with file, line and column.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let file = path.display().to_string();
    let whole_file = |message: String| {
        Diagnostics(vec![Diagnostic {
            file: file.clone(),
            line: 1,
            col: 1,
            message,
        }])
    };
    let bytes = std::fs::read(path).map_err(|e| whole_file(format!("cannot read config: {e}")))?;
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
    parse(&text, &file)
}

/// Validates config text. `file` names it in diagnostics. Secrets given as `*_file` and
/// `hostname = "auto"` are read from disk here.
///
/// # Errors
/// Every problem found, each with file, line and column.
pub fn parse(src: &str, file: &str) -> Result<Config, Diagnostics> {
    parse_with(src, file, None)
}

/// Reads the last-known-good copy at `path`: its included files are the copies in
/// `last-good.d/` beside it, not what the include pattern matches today.
///
/// # Errors
/// As [`load`].
pub fn load_last_good(path: &Path) -> Result<Config, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.display().to_string(),
            line: 1,
            col: 1,
            message: format!("cannot read config: {e}"),
        }])
    })?;
    let dir = path.with_file_name(LAST_GOOD_DIR);
    parse_with(&text, &path.display().to_string(), Some(&dir))
}

/// The directory, beside `last-good.toml`, that holds copies of the files it included.
pub const LAST_GOOD_DIR: &str = "last-good.d";

/// [`parse`]; with `include_dir`, the included files are every file there instead of
/// what `[agent] include` matches.
fn parse_with(src: &str, file: &str, include_dir: Option<&Path>) -> Result<Config, Diagnostics> {
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
    let (found, include_errors) = read_includes(doc, file, src.len(), include_dir);
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
    let agent = parse_agent(&mut c, &agent_table);

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
        if let Some((w, spans)) = parse_webhook(&mut c, t, span.clone(), &agent) {
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
        if let Some(r) = parse_rule(&mut c, t, span.clone(), &webhook_names) {
            if let Some(p) = &r.probe {
                check_probe_conflict(&mut c, &probes, p, t, span.clone());
                probes.push((p.clone(), span.clone()));
            }
            rules.push(r);
        }
    }
    if webhooks.iter().any(|w| w.format == Format::Alertmanager) {
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

/// Renders `wh`'s body, request target and headers for every kind of event and for the
/// worst case, and reports those that are invalid or can overflow their buffers.
fn prove_webhook(
    c: &mut Collector,
    agent: &Agent,
    rule_name: &str,
    wh: &Webhook,
    spans: &WebhookSpans,
) {
    use render::check::{self, prove};
    use render::Escape;
    let origin = render::Origin {
        device_id: &agent.device_id,
        hostname: &agent.hostname,
        interval_ms: agent.interval_ms,
        labels: &agent.labels,
    };
    let escape = render::body_escape(wh);
    let validate: Option<check::Validator> = match (wh.format, wh.content_type) {
        (Format::Template, None | Some(ContentType::Text)) => None,
        (Format::Template, Some(ContentType::Xml)) => Some(check::xml),
        (Format::CloudmonitorForm, _) | (Format::Template, Some(ContentType::Form)) => {
            Some(check::form)
        }
        _ => Some(check::json),
    };
    let body_at = spans.body.clone().unwrap_or(spans.table.clone());
    if let Err(m) = prove(
        &origin,
        wh.language,
        rule_name,
        escape,
        if wh.format == Format::Alertmanager {
            MAX_AM_BODY_LEN
        } else {
            MAX_BODY_LEN
        },
        validate,
        &|ctx, buf| render::render(wh, ctx, buf).ok(),
    ) {
        c.error(
            body_at,
            format!(
                "the {} body of webhook `{}`: {m}",
                wh.format.as_str(),
                wh.name
            ),
        );
    }
    let url_at = spans
        .query
        .clone()
        .or(spans.url.clone())
        .unwrap_or(spans.table.clone());
    // DingTalk's `&timestamp=…&sign=…` is appended after rendering: leave room for it.
    let url_limit = match wh.signing {
        Signing::DingTalk(_) => MAX_URL_LEN - DINGTALK_SIGN_MAX,
        _ => MAX_URL_LEN,
    };
    if let Err(m) = prove(
        &origin,
        wh.language,
        rule_name,
        Escape::Url,
        url_limit,
        None,
        &|ctx, buf| check::render_template(&wh.target, ctx, Escape::Url, buf),
    ) {
        c.error(
            url_at,
            format!(
                "the request target (path and query) of webhook `{}`: {m}",
                wh.name
            ),
        );
    }
    for (name, tpl) in &wh.headers {
        if let Err(m) = prove(
            &origin,
            wh.language,
            rule_name,
            Escape::Header,
            MAX_HEADER_VALUE_LEN,
            None,
            &|ctx, buf| check::render_template(tpl, ctx, Escape::Header, buf),
        ) {
            c.error(
                spans.headers.clone().unwrap_or(spans.table.clone()),
                format!("header `{name}`: {m}"),
            );
        }
    }
}

// ---- include -----------------------------------------------------------------------------

/// A problem at a span, found before the diagnostics collector exists.
type Problem = (Range<usize>, String);

/// The files `[agent] include` of `doc` names, read: (name, text), in order; and the
/// problems, at spans of `doc`. A relative pattern is relative to `file`'s directory; the
/// last path component may hold `*` and `?`; files are taken in name order. `total` is
/// the main file's length: with the included files it may not exceed [`MAX_CONFIG_LEN`].
fn read_includes(
    doc: &DeTable,
    file: &str,
    mut total: usize,
    include_dir: Option<&Path>,
) -> (Vec<(String, String)>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let Some((_, v)) = find(doc, "agent")
        .and_then(|(_, a)| a.get_ref().as_table())
        .and_then(|a| find(a, "include"))
    else {
        return (out, errors);
    };
    let patterns: Vec<(String, Range<usize>)> = match v.get_ref() {
        DeValue::String(s) => vec![(s.to_string(), v.span())],
        DeValue::Array(a) if a.iter().all(|x| x.get_ref().as_str().is_some()) => a
            .iter()
            .map(|x| (x.get_ref().as_str().unwrap_or("").to_string(), x.span()))
            .collect(),
        _ => {
            errors.push((
                v.span(),
                "`include` must be a path pattern (\"/etc/tocsin/conf.d/*.toml\") or an array of them".into(),
            ));
            return (out, errors);
        }
    };
    let here = Path::new(file).parent().unwrap_or(Path::new(""));
    // A pattern may match the main file itself (`include = "*.toml"` beside it): it is
    // read already, so it is skipped, not merged with itself.
    let main = same_file_id(Path::new(file));
    let mut seen: Vec<PathBuf> = Vec::new();
    for (pattern, span) in patterns {
        let full = match include_dir {
            // Every copy, whatever the pattern matched (`conf.d/*` may bring `x.conf`);
            // unfinished copies are dot files, which are never read.
            Some(dir) => dir.join("*"),
            None => here.join(&pattern),
        };
        let (dir, glob) = match (full.parent(), full.file_name().and_then(|n| n.to_str())) {
            (Some(d), Some(g)) if !g.is_empty() => (d.to_path_buf(), g.to_string()),
            _ => {
                errors.push((span, format!("`include` = \"{pattern}\" names no file")));
                continue;
            }
        };
        if dir.to_string_lossy().contains(['*', '?']) {
            errors.push((
                span,
                "`include`: only the last path component may hold * or ?".into(),
            ));
            continue;
        }
        // A directory that does not exist is an empty conf.d. `-c tocsin.toml` with
        // `include = "*.toml"` leaves the directory empty: that is the current one.
        let list = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        };
        let mut names: Vec<String> = std::fs::read_dir(list)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.') && crate::util::glob_match(&glob, n))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for n in names {
            let path = dir.join(&n);
            if path.is_dir()
                || seen.contains(&path)
                || main.is_some_and(|m| same_file_id(&path) == Some(m))
            {
                continue;
            }
            seen.push(path.clone());
            if seen.len() > MAX_INCLUDES {
                errors.push((
                    span.clone(),
                    format!("`include` matches more than {MAX_INCLUDES} files"),
                ));
                return (out, errors);
            }
            match std::fs::read(&path) {
                Err(e) => errors.push((
                    span.clone(),
                    format!("cannot read included {}: {e}", path.display()),
                )),
                // The limit is for all files together: each is parsed after as many
                // spaces as the ones before it are long, so memory grows with the square
                // of the total (64 files of 250 KB took 500 MB).
                Ok(b) if total + b.len() > MAX_CONFIG_LEN => {
                    errors.push((
                        span.clone(),
                        format!(
                            "included {} brings the config to {} bytes; the limit for all files together is {MAX_CONFIG_LEN}",
                            path.display(),
                            total + b.len()
                        ),
                    ));
                    return (out, errors);
                }
                Ok(b) => match String::from_utf8(b).inspect(|t| total += t.len()) {
                    Ok(text) => out.push((path.display().to_string(), text)),
                    Err(_) => errors.push((
                        span.clone(),
                        format!("included {} is not valid UTF-8", path.display()),
                    )),
                },
            }
        }
    }
    (out, errors)
}

/// Device and inode of `path`: two names of one file have the same.
fn same_file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The `[agent]` tables of every file as one: a key set in two files is an error at the
/// second naming the first; `labels` merge per label; `include` only in the main file.
fn merged_agent<'i>(c: &mut Collector, docs: &[DeTable<'i>]) -> DeTable<'i> {
    let mut merged = DeTable::new();
    let mut labels: Option<(Range<usize>, Range<usize>, DeTable<'i>)> = None;
    for (i, d) in docs.iter().enumerate() {
        let Some((_, v)) = find(d, "agent") else {
            continue;
        };
        let Some(t) = v.get_ref().as_table() else {
            c.error(v.span(), "`agent` must be a table: [agent]");
            continue;
        };
        for (k, val) in t.iter() {
            let key = k.get_ref().as_ref();
            if key == "include" && i > 0 {
                c.error(k.span(), "`include` may stand only in the main config file");
                continue;
            }
            if let (Some(new), "labels") = (val.get_ref().as_table(), key) {
                let (_, _, all) =
                    labels.get_or_insert_with(|| (k.span(), val.span(), DeTable::new()));
                for (lk, lv) in new.iter() {
                    if let Some((first, _)) = all.get_key_value(lk.get_ref().as_ref()) {
                        let (file, line, col) = c.locate(first.span().start);
                        c.error(
                            lk.span(),
                            format!(
                                "label `{}` is already set at {file}:{line}:{col}",
                                lk.get_ref()
                            ),
                        );
                    } else {
                        all.insert(lk.clone(), lv.clone());
                    }
                }
                continue;
            }
            if let Some((first, _)) = merged.get_key_value(key) {
                let (file, line, col) = c.locate(first.span().start);
                c.error(
                    k.span(),
                    format!("`{key}` is already set at {file}:{line}:{col}"),
                );
                continue;
            }
            merged.insert(k.clone(), val.clone());
        }
    }
    // A `labels` that is not a table went in as a plain key: it stays, so that its error
    // is reported rather than hidden under the other files' labels.
    if let Some((kspan, vspan, all)) = labels.filter(|_| !merged.contains_key("labels")) {
        merged.insert(
            Spanned::new(kspan, "labels".into()),
            Spanned::new(vspan, DeValue::Table(all)),
        );
    }
    merged
}

// ---- the walker ------------------------------------------------------------------------

/// The `name` of each table (those that have a string one), reporting duplicates at the
/// second occurrence.
fn names(
    c: &mut Collector,
    tables: &[(&DeTable, Range<usize>)],
    what: &str,
) -> Vec<(String, Range<usize>)> {
    let mut out: Vec<(String, Range<usize>)> = Vec::new();
    for (t, _) in tables {
        let Some((_, v)) = find(t, "name") else {
            continue;
        };
        let Some(name) = v.get_ref().as_str() else {
            continue;
        };
        if let Some((_, first)) = out.iter().find(|(n, _)| n == name) {
            let (file, line, col) = c.locate(first.start);
            let at = if file == c.locate(v.span().start).0 {
                format!("on line {line}")
            } else {
                format!("at {file}:{line}:{col}")
            };
            c.error(
                v.span(),
                format!("duplicate {what} name `{name}` (first defined {at})"),
            );
        }
        out.push((name.to_string(), v.span()));
    }
    out
}

type Val<'i> = Spanned<DeValue<'i>>;

fn find<'t, 'i>(t: &'t DeTable<'i>, key: &str) -> Option<(Range<usize>, &'t Val<'i>)> {
    t.iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(k, v)| (k.span(), v))
}

/// Reports keys of `t` that are not in `allowed`. Keys in `later` are part of the design
/// but not of this build: they get their own message instead of "unknown".
fn check_keys(c: &mut Collector, t: &DeTable, allowed: &[&str], later: &[&str], what: &str) {
    for (k, _) in t.iter() {
        let key = k.get_ref().as_ref();
        if allowed.contains(&key) {
            continue;
        }
        if later.contains(&key) {
            c.error(
                k.span(),
                format!("`{key}` in {what} is not supported by this version of tocsin yet"),
            );
        } else {
            c.error(
                k.span(),
                format!(
                    "unknown key `{key}` in {what}; expected one of: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
}

fn array_of_tables<'t, 'i>(
    c: &mut Collector,
    doc: &'t DeTable<'i>,
    key: &str,
) -> Vec<(&'t DeTable<'i>, Range<usize>)> {
    let Some((_, v)) = find(doc, key) else {
        return Vec::new();
    };
    let Some(arr) = v.get_ref().as_array() else {
        c.error(
            v.span(),
            format!("`{key}` must be an array of tables: [[{key}]]"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in arr.iter() {
        match item.get_ref().as_table() {
            Some(t) => out.push((t, item.span())),
            None => c.error(
                item.span(),
                format!("each `{key}` must be a table: [[{key}]]"),
            ),
        }
    }
    out
}

fn get_str<'t>(c: &mut Collector, t: &'t DeTable, key: &str) -> Option<(&'t str, Range<usize>)> {
    let (_, v) = find(t, key)?;
    match v.get_ref().as_str() {
        Some(s) => Some((s, v.span())),
        None => {
            c.error(
                v.span(),
                format!("`{key}` must be a string, not {}", v.get_ref().type_str()),
            );
            None
        }
    }
}

fn get_bool(c: &mut Collector, t: &DeTable, key: &str) -> Option<bool> {
    let (_, v) = find(t, key)?;
    let b = v.get_ref().as_bool();
    if b.is_none() {
        c.error(v.span(), format!("`{key}` must be true or false"));
    }
    b
}

/// An integer in `lo..=hi`.
fn get_int(c: &mut Collector, t: &DeTable, key: &str, lo: i64, hi: i64) -> Option<i64> {
    let (_, v) = find(t, key)?;
    let n = v
        .get_ref()
        .as_integer()
        .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok());
    match n {
        Some(n) if (lo..=hi).contains(&n) => Some(n),
        Some(n) => {
            c.error(
                v.span(),
                format!("`{key}` = {n} is out of range: expected {lo}..={hi}"),
            );
            None
        }
        None => {
            c.error(v.span(), format!("`{key}` must be an integer"));
            None
        }
    }
}

fn get_duration(c: &mut Collector, t: &DeTable, key: &str) -> Option<u64> {
    let (s, span) = get_str(c, t, key)?;
    match parse_duration(s) {
        Ok(ms) => Some(ms),
        Err(m) => {
            c.error(span, format!("`{key}`: {m}"));
            None
        }
    }
}

fn get_table<'t, 'i>(c: &mut Collector, t: &'t DeTable<'i>, key: &str) -> Option<&'t DeTable<'i>> {
    let (_, v) = find(t, key)?;
    let tbl = v.get_ref().as_table();
    if tbl.is_none() {
        c.error(
            v.span(),
            format!("`{key}` must be a table, like {key} = {{ k = \"v\" }}"),
        );
    }
    tbl
}

/// A table of string values, in file order, with the key spans.
/// One `key = "value"` of an inline table, with both spans.
struct Entry {
    key: String,
    value: String,
    key_span: Range<usize>,
    value_span: Range<usize>,
}

fn get_string_map(c: &mut Collector, t: &DeTable, key: &str) -> Vec<Entry> {
    let Some(tbl) = get_table(c, t, key) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = tbl
        .iter()
        .filter_map(|(k, v)| match v.get_ref().as_str() {
            Some(s) => Some(Entry {
                key: k.get_ref().to_string(),
                value: s.to_string(),
                key_span: k.span(),
                value_span: v.span(),
            }),
            None => {
                c.error(
                    v.span(),
                    format!("`{key}.{}` must be a string", k.get_ref()),
                );
                None
            }
        })
        .collect();
    out.sort_by_key(|e| e.key_span.start);
    out
}

/// An array of strings, each with its span.
fn get_string_list<'t>(
    c: &mut Collector,
    t: &'t DeTable,
    key: &str,
) -> Option<Vec<(&'t str, Range<usize>)>> {
    let (_, v) = find(t, key)?;
    let Some(arr) = v.get_ref().as_array() else {
        c.error(
            v.span(),
            format!("`{key}` must be an array of strings, like [\"a\", \"b\"]"),
        );
        return None;
    };
    let mut out = Vec::new();
    for item in arr.iter() {
        match item.get_ref().as_str() {
            Some(s) => out.push((s, item.span())),
            None => c.error(item.span(), format!("`{key}` must contain only strings")),
        }
    }
    Some(out)
}

fn valid_name(c: &mut Collector, name: &str, span: Range<usize>, what: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        c.error(
            span,
            format!("{what} name must be 1 to {MAX_NAME_LEN} bytes long"),
        );
        return false;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        c.error(
            span,
            format!("{what} name `{name}` may contain only letters, digits, `-`, `_` and `.`"),
        );
        return false;
    }
    true
}

// ---- [agent] ---------------------------------------------------------------------------

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
];

fn parse_agent(c: &mut Collector, t: &DeTable) -> Agent {
    check_keys(c, t, AGENT_KEYS, &[], "[agent]");
    let root = PathBuf::from(get_path(c, t, "root").unwrap_or("/"));
    let hostname = match get_str(c, t, "hostname") {
        Some((s, span)) if s != "auto" => {
            check_identity(c, "hostname", s, span);
            s.to_string()
        }
        _ => read_hostname(&root),
    };
    let device_id = match get_str(c, t, "device_id") {
        // One config for a whole fleet: each device finds its own id.
        Some(("auto", span)) => match auto_device_id(&root) {
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
    for Entry {
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
    Agent {
        device_id,
        hostname,
        interval_ms: get_duration(c, t, "interval").unwrap_or(5000),
        language,
        state_dir: PathBuf::from(get_path(c, t, "state_dir").unwrap_or("/var/lib/tocsin")),
        control_socket: PathBuf::from(
            get_path(c, t, "control_socket").unwrap_or("/run/tocsin/control.sock"),
        ),
        root,
        heartbeat_ms: get_duration(c, t, "heartbeat"),
        labels: labels.into_iter().map(|e| (e.key, e.value)).collect(),
    }
}

/// A non-empty path string.
fn get_path<'t>(c: &mut Collector, t: &'t DeTable, key: &str) -> Option<&'t str> {
    let (s, span) = get_str(c, t, key)?;
    if s.is_empty() {
        c.error(span, format!("`{key}` must not be empty"));
        return None;
    }
    Some(s)
}

/// `device_id` and `hostname` name the device in every payload: bounded, one line.
fn check_identity(c: &mut Collector, key: &str, s: &str, span: Range<usize>) {
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
    let machine_id = std::fs::read_to_string(root.join("etc/machine-id")).ok();
    if let Some(id) = machine_id
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Some(id);
    }
    let mut ifaces: Vec<_> = std::fs::read_dir(root.join("sys/class/net"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    ifaces.sort();
    ifaces
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "lo"))
        .find_map(|p| {
            let mac = std::fs::read_to_string(p.join("address"))
                .ok()?
                .trim()
                .to_ascii_lowercase();
            let valid = mac.len() == 17 && mac.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
            (valid && mac != "00:00:00:00:00:00").then_some(mac)
        })
}

/// The kernel's host name under `root`, or `localhost` when it cannot be read.
pub fn read_hostname(root: &Path) -> String {
    std::fs::read_to_string(root.join("proc/sys/kernel/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= MAX_DIM_VALUE_LEN)
        .unwrap_or_else(|| "localhost".to_string())
}

// ---- [[rule]] --------------------------------------------------------------------------

const RULE_KEYS: &[&str] = &[
    "name",
    "metric",
    "match",
    "critical",
    "warn",
    "info",
    "times",
    "within",
    "clear",
    "clear_times",
    "repeat",
    "no_data",
    "no_data_after",
    "notify",
    // Family parameters (DESIGN.md): process, tcp.up, file.value, exec.value.
    "pidfile",
    "target",
    "path",
    "scale",
    "command",
    "timeout",
];
/// Rule keys of the design that this build does not support yet (none left).
/// Family parameters that name a series themselves, so they are not `match` keys.
const PARAM_DIMS: &[&str] = &["pidfile", "target", "path", "command"];

fn parse_rule(
    c: &mut Collector,
    t: &DeTable,
    span: Range<usize>,
    webhooks: &[(String, Range<usize>)],
) -> Option<Rule> {
    check_keys(c, t, RULE_KEYS, &[], "[[rule]]");
    let name = get_str(c, t, "name");
    if name.is_none() && find(t, "name").is_none() {
        c.error(span.clone(), "[[rule]] is missing `name`");
    }
    let metric = match get_str(c, t, "metric") {
        Some((m, mspan)) => match Metric::from_name(m) {
            Some(m) => Some(m),
            None => {
                let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                c.error(
                    mspan,
                    format!(
                        "unknown metric `{m}`; expected one of: {}",
                        known.join(", ")
                    ),
                );
                None
            }
        },
        None => {
            if find(t, "metric").is_none() {
                c.error(span.clone(), "[[rule]] is missing `metric`");
            }
            None
        }
    };

    let mut match_key = None;
    let mut match_dim = None;
    if let Some(m) = get_table(c, t, "match") {
        // In file order, so "takes one dimension" points at the second one written.
        let mut entries: Vec<_> = m.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in entries {
            let key = k.get_ref().as_ref();
            let Some(metric) = metric else { continue };
            if match_key.is_some() {
                c.error(k.span(), "`match` takes one dimension");
                continue;
            }
            match metric.dimension_key(key) {
                Some(d) if PARAM_DIMS.contains(&d) => c.error(
                    k.span(),
                    format!(
                        "`{key}` is a parameter of metric `{}`: write `{key} = …` in the rule, not in `match`",
                        metric.name()
                    ),
                ),
                Some(d) => match v.get_ref().as_str() {
                    Some("") => c.error(
                        v.span(),
                        format!("`match.{key}` is empty; use \"*\" for every {key}"),
                    ),
                    Some(s) if s.len() <= MAX_DIM_VALUE_LEN => {
                        match_key = Some(d);
                        match_dim = DimValue::try_from(s).ok();
                    }
                    Some(_) => c.error(
                        v.span(),
                        format!("`match.{key}` is longer than {MAX_DIM_VALUE_LEN} bytes"),
                    ),
                    None => c.error(
                        v.span(),
                        format!("`match.{key}` must be a string (a glob: * and ?)"),
                    ),
                },
                None => {
                    let keys: Vec<&str> = metric
                        .dimensions()
                        .iter()
                        .copied()
                        .filter(|d| !PARAM_DIMS.contains(d))
                        .collect();
                    if keys.is_empty() {
                        c.error(
                            k.span(),
                            format!("metric `{}` has no dimensions to match", metric.name()),
                        );
                    } else {
                        c.error(
                            k.span(),
                            format!(
                                "metric `{}` has the dimension `{}`, not `{key}`",
                                metric.name(),
                                keys.join("` or `")
                            ),
                        );
                    }
                }
            }
        }
    }
    let probe = metric.and_then(|m| {
        let match_span = find(t, "match").map(|(_, v)| v.span());
        parse_probe(c, t, m, span.clone(), match_dim.as_ref(), match_span)
    });
    if let Some(p) = &probe {
        let (key, dim) = p.dim();
        match_key = Some(key);
        match_dim = Some(dim);
    }

    let mut thresholds = [None; 3];
    for (key, level) in [
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("critical", Level::Critical),
    ] {
        if let Some((s, cspan)) = get_str(c, t, key) {
            match parse_condition(s) {
                Ok(cond) => thresholds[level as usize] = Some(cond),
                Err(m) => c.error(cspan, format!("`{key}`: {m}")),
            }
        }
    }
    if thresholds.iter().all(Option::is_none)
        && ["info", "warn", "critical"]
            .iter()
            .all(|k| find(t, k).is_none())
    {
        c.error(
            span.clone(),
            "[[rule]] needs at least one threshold: `critical`, `warn` or `info`",
        );
    }

    let max = i64::from(MAX_TIMES);
    let times = get_int(c, t, "times", 1, max).unwrap_or(1) as u8;
    let within = get_int(c, t, "within", 1, max).map(|w| w as u8);
    if let Some(w) = within {
        if w < times {
            let (_, v) = find(t, "within").expect("within was read");
            c.error(
                v.span(),
                format!("`within` = {w} must be at least `times` = {times}"),
            );
        }
    }
    let clear = get_str(c, t, "clear").and_then(|(s, cspan)| match parse_condition(s) {
        Ok(cond) => Some(cond),
        Err(m) => {
            c.error(cspan, format!("`clear`: {m}"));
            None
        }
    });
    let no_data = match get_str(c, t, "no_data") {
        Some((s, nspan)) => match s {
            "alert" => NoData::Alert,
            "ok" => NoData::Ok,
            "keep" => NoData::Keep,
            _ => {
                c.error(
                    nspan,
                    format!("unknown `no_data` = \"{s}\": expected \"alert\", \"ok\" or \"keep\""),
                );
                NoData::Keep
            }
        },
        None => NoData::Keep,
    };

    let mut notify = Vec::new();
    if let Some(list) = get_string_list(c, t, "notify") {
        if list.len() > MAX_NOTIFY {
            c.error(
                list[MAX_NOTIFY].1.clone(),
                format!("too many webhooks in `notify`: the limit is {MAX_NOTIFY}"),
            );
        }
        for (n, nspan) in list {
            match webhooks.iter().position(|(w, _)| w == n) {
                Some(i) if notify.contains(&i) => {
                    c.error(nspan, format!("webhook `{n}` is listed twice in `notify`"))
                }
                Some(i) => notify.push(i),
                None => c.error(
                    nspan,
                    format!(
                        "`notify` names webhook `{n}`, which is not defined by any [[webhook]]"
                    ),
                ),
            }
        }
    }

    let spec = RuleSpec {
        name: heapless::String::new(),
        metric: metric?,
        match_key,
        match_dim,
        thresholds,
        times,
        within,
        clear,
        clear_times: get_int(c, t, "clear_times", 1, max).unwrap_or(1) as u8,
        repeat_ms: get_duration(c, t, "repeat"),
        no_data,
        no_data_after: get_int(c, t, "no_data_after", 1, max).unwrap_or(3) as u8,
    };
    let (name, name_span) = name?;
    if !valid_name(c, name, name_span, "rule") {
        return None;
    }
    let mut spec = spec;
    spec.name = heapless::String::try_from(name).ok()?;
    Some(Rule {
        spec,
        probe,
        notify,
    })
}

/// Which metrics take a family parameter.
fn takes_param(metric: Metric, key: &str) -> bool {
    use Metric::*;
    match key {
        "pidfile" => matches!(metric, ProcessCount | ProcessUp | ProcessRss | ProcessCpu),
        "target" => metric == TcpUp,
        "timeout" => matches!(metric, TcpUp | ExecValue),
        "path" | "scale" => metric == FileValue,
        "command" => metric == ExecValue,
        _ => true,
    }
}

/// The family parameters of a rule on `metric`: each a diagnostic when missing, of the
/// wrong type, or given to a metric that does not take it.
fn parse_probe(
    c: &mut Collector,
    t: &DeTable,
    metric: Metric,
    span: Range<usize>,
    name_glob: Option<&DimValue>,
    match_span: Option<Range<usize>>,
) -> Option<Probe> {
    let mut ok = true;
    for key in ["pidfile", "target", "timeout", "path", "scale", "command"] {
        if let Some((kspan, _)) = find(t, key) {
            if !takes_param(metric, key) {
                let owners = match key {
                    "pidfile" => "process.*",
                    "target" => "tcp.up",
                    "timeout" => "tcp.up and exec.value",
                    "path" | "scale" => "file.value",
                    _ => "exec.value",
                };
                c.error(
                    kspan,
                    format!(
                        "`{key}` does not apply to metric `{}`; it is a parameter of {owners}",
                        metric.name()
                    ),
                );
                ok = false;
            }
        }
    }
    let timeout = |c: &mut Collector, default: u64| -> u64 {
        let Some(ms) = get_duration(c, t, "timeout") else {
            return default;
        };
        if ms > MAX_PROBE_TIMEOUT_MS {
            let (_, v) = find(t, "timeout").expect("timeout was read");
            c.error(
                v.span(),
                format!(
                    "`timeout` is at most {} s: the sampling tick waits for it",
                    MAX_PROBE_TIMEOUT_MS / 1000
                ),
            );
        }
        ms
    };
    let probe = match metric {
        Metric::ProcessCount | Metric::ProcessUp | Metric::ProcessRss | Metric::ProcessCpu => {
            let pidfile = abs_path(c, t, "pidfile");
            match (name_glob, pidfile, find(t, "pidfile").is_some()) {
                (Some(_), _, true) => {
                    let (kspan, _) = find(t, "pidfile").expect("pidfile was read");
                    c.error(kspan, "give `match = { name = … }` or `pidfile`, not both");
                    None
                }
                (Some(glob), None, false) => {
                    let literal = !glob.contains(['*', '?']);
                    if literal && glob.len() > MAX_COMM_LEN {
                        let cut: String = glob.chars().take(MAX_COMM_LEN).collect();
                        c.error(
                            match_span.unwrap_or(span),
                            format!(
                                "the kernel keeps {MAX_COMM_LEN} bytes of a process name, so `{glob}` never matches; use \"{cut}\" or a glob"
                            ),
                        );
                        None
                    } else {
                        Some(Probe::ProcessName(glob.clone()))
                    }
                }
                (None, Some(p), _) => Some(Probe::Pidfile(p)),
                (None, None, false) => {
                    if match_span.is_none() {
                        c.error(
                            span,
                            format!(
                                "metric `{}` needs `match = {{ name = \"…\" }}` or `pidfile = \"…\"`",
                                metric.name()
                            ),
                        );
                    }
                    None
                }
                _ => None,
            }
        }
        Metric::TcpUp => {
            let t_ms = timeout(c, DEFAULT_TCP_TIMEOUT_MS);
            match get_str(c, t, "target") {
                Some((s, tspan)) => match s.parse::<std::net::SocketAddr>() {
                    Ok(target) => Some(Probe::Tcp {
                        target,
                        timeout_ms: t_ms,
                    }),
                    Err(_) => {
                        c.error(
                            tspan,
                            format!("`target` = \"{s}\" must be an IP address and port, like \"127.0.0.1:53\" or \"[::1]:53\" (no host names: resolving them would block the tick)"),
                        );
                        None
                    }
                },
                None => {
                    if find(t, "target").is_none() {
                        c.error(span, "metric `tcp.up` needs `target = \"IP:PORT\"`");
                    }
                    None
                }
            }
        }
        Metric::FileValue => {
            let scale = match find(t, "scale") {
                Some((_, v)) => {
                    let n = match v.get_ref() {
                        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
                        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                            .ok()
                            .map(|i| i as f64),
                        _ => None,
                    };
                    match n {
                        Some(n) if n.is_finite() => Some(n),
                        _ => {
                            c.error(v.span(), "`scale` must be a finite number, like 0.001");
                            None
                        }
                    }
                }
                None => Some(1.0),
            };
            let path = abs_path(c, t, "path");
            if path.is_none() && find(t, "path").is_none() {
                c.error(
                    span,
                    "metric `file.value` needs `path = \"/absolute/path\"`",
                );
            }
            Some(Probe::File {
                path: path?,
                scale: scale?,
            })
        }
        Metric::ExecValue => {
            let t_ms = timeout(c, DEFAULT_EXEC_TIMEOUT_MS);
            let Some(list) = get_string_list(c, t, "command") else {
                if find(t, "command").is_none() {
                    c.error(
                        span,
                        "metric `exec.value` needs `command = [\"/absolute/program\", \"arg\", …]`",
                    );
                }
                return None;
            };
            let (_, cv) = find(t, "command").expect("command was read");
            match list.first() {
                None => {
                    c.error(
                        cv.span(),
                        "`command` is empty: give the program and its arguments",
                    );
                    return None;
                }
                Some((prog, pspan)) if !prog.starts_with('/') => {
                    c.error(
                        pspan.clone(),
                        "the program must be an absolute path: tocsin runs it directly, without a shell or PATH lookup",
                    );
                    return None;
                }
                _ => {}
            }
            if let Some((_, aspan)) = list.iter().find(|(a, _)| a.contains('\0')) {
                c.error(
                    aspan.clone(),
                    "a command argument cannot contain a NUL byte",
                );
                return None;
            }
            let joined: usize = list.iter().map(|(a, _)| a.len() + 1).sum::<usize>() - 1;
            if joined > MAX_DIM_VALUE_LEN {
                c.error(
                    cv.span(),
                    format!("`command` is {joined} bytes with its arguments; it names the series, so the limit is {MAX_DIM_VALUE_LEN} (wrap a long command in a script)"),
                );
                return None;
            }
            Some(Probe::Exec {
                command: list.iter().map(|(a, _)| a.to_string()).collect(),
                timeout_ms: t_ms,
            })
        }
        _ => None,
    };
    probe.filter(|_| ok)
}

/// An absolute path that fits a dimension value.
fn abs_path(c: &mut Collector, t: &DeTable, key: &str) -> Option<DimValue> {
    let (s, span) = get_str(c, t, key)?;
    if !s.starts_with('/') {
        c.error(span, format!("`{key}` must be an absolute path"));
        None
    } else if s.len() > MAX_DIM_VALUE_LEN || s.contains('\0') {
        c.error(
            span,
            format!("`{key}` must be at most {MAX_DIM_VALUE_LEN} bytes, without NUL"),
        );
        None
    } else {
        DimValue::try_from(s).ok()
    }
}

/// Two rules on the same series (same file, target or command) must agree on how it is
/// sampled: one sample per series and cycle feeds both.
fn check_probe_conflict(
    c: &mut Collector,
    seen: &[(Probe, Range<usize>)],
    p: &Probe,
    t: &DeTable,
    span: Range<usize>,
) {
    let dim = p.dim();
    for (q, _) in seen {
        if q != p && q.dim() == dim && std::mem::discriminant(q) == std::mem::discriminant(p) {
            let at = ["scale", "timeout"]
                .iter()
                .find_map(|k| find(t, k).map(|(s, _)| s))
                .unwrap_or(span.clone());
            c.error(
                at,
                format!(
                    "another rule samples `{}` = \"{}\" with a different `scale` or `timeout`; rules on the same series must agree",
                    dim.0, dim.1
                ),
            );
            return;
        }
    }
}

// ---- [[webhook]] -----------------------------------------------------------------------

const WEBHOOK_KEYS: &[&str] = &[
    "name",
    "enabled",
    "url",
    "format",
    "method",
    "query",
    "headers",
    "auth",
    "timeout",
    "retries",
    "retry_interval",
    "retry_after_max",
    "language",
    "events",
    "min_level",
    "tls",
    "content_type",
    "body",
    "signing",
    "proxy",
    "no_proxy",
    "source_ip",
    "bind_interface",
    "urls",
    "resend",
    "generator_url",
    "max_batch",
];
/// Keys of the `alertmanager` format only.
const ALERTMANAGER_KEYS: &[&str] = &["urls", "resend", "generator_url", "max_batch"];
/// Headers tocsin writes itself; a config may not set or duplicate them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "authorization",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];
/// `&timestamp=` + 20 digits + `&sign=` + 44 base64 characters, each up to 3 when encoded.
const DINGTALK_SIGN_MAX: usize = 11 + 20 + 6 + 44 * 3;
const FORMAT_NAMES: &str =
    "cloudmonitor-json, cloudmonitor-form, hertzbeat, alertmanager, template";

fn parse_webhook(
    c: &mut Collector,
    t: &DeTable,
    span: Range<usize>,
    agent: &Agent,
) -> Option<(Webhook, WebhookSpans)> {
    let agent_language = agent.language;
    check_keys(c, t, WEBHOOK_KEYS, &[], "[[webhook]]");
    let name = get_str(c, t, "name");
    if find(t, "name").is_none() {
        c.error(span.clone(), "[[webhook]] is missing `name`");
    }
    let format = match get_str(c, t, "format") {
        Some((f, fspan)) => match Format::ALL.into_iter().find(|x| x.as_str() == f) {
            Some(x) => Some(x),
            None => {
                c.error(
                    fspan,
                    format!("unknown format `{f}`; expected one of: {FORMAT_NAMES}"),
                );
                None
            }
        },
        None => {
            if find(t, "format").is_none() {
                c.error(
                    span.clone(),
                    format!("[[webhook]] is missing `format` ({FORMAT_NAMES})"),
                );
            }
            None
        }
    };
    let is_template = format == Some(Format::Template);
    let is_am = format == Some(Format::Alertmanager);
    let labels = &agent.labels;
    if format.is_some() && !is_am {
        for key in ALERTMANAGER_KEYS {
            if let Some((k, _)) = find(t, key) {
                c.error(
                    k,
                    format!("`{key}` applies to the alertmanager format only"),
                );
            }
        }
    }

    // `body` and `content_type` belong to the template format; the others have their own.
    let mut spans = WebhookSpans {
        table: span.clone(),
        ..WebhookSpans::default()
    };
    let body = match get_str(c, t, "body") {
        Some((_, bspan)) if format.is_some() && !is_template => {
            c.error(
                bspan,
                "`body` applies to the template format only; this format has its own body",
            );
            None
        }
        Some((b, bspan)) => {
            spans.body = Some(bspan.clone());
            template_at(c, bspan, 0, b, labels)
        }
        None => None,
    };
    let content_type = match get_str(c, t, "content_type") {
        Some((_, cspan)) if format.is_some() && !is_template => {
            c.error(cspan, "`content_type` applies to the template format only");
            None
        }
        Some((_, cspan)) if find(t, "body").is_none() => {
            c.error(
                cspan,
                "`content_type` without a `body`: a template with no body sends none",
            );
            None
        }
        Some((ct, cspan)) => match ct {
            "json" => Some(ContentType::Json),
            "form" => Some(ContentType::Form),
            "xml" => Some(ContentType::Xml),
            "text" => Some(ContentType::Text),
            _ => {
                c.error(cspan, format!("unknown `content_type` = \"{ct}\": expected \"json\", \"form\", \"xml\" or \"text\""));
                None
            }
        },
        None => body.as_ref().map(|_| ContentType::Json),
    };

    let url = if is_am {
        alertmanager_urls(c, t, span.clone(), &mut spans)
    } else {
        match get_str(c, t, "url") {
            Some((u, uspan)) => {
                spans.url = Some(uspan.clone());
                url_template(c, u, uspan, labels).map(|(u, tpl)| (vec![u], tpl))
            }
            None => {
                if find(t, "url").is_none() {
                    c.error(span.clone(), "[[webhook]] is missing `url`");
                }
                None
            }
        }
    };
    // `query` (seed 000's `URL?username=jack`): names fixed, values may hold variables.
    let mut target = url.as_ref().map(|(_, t)| t.clone());
    for Entry {
        key,
        value,
        key_span,
        value_span,
    } in get_string_map(c, t, "query")
    {
        if is_am {
            c.error(
                key_span.clone(),
                "`query` does not apply to the alertmanager format: it posts to {url}/api/v2/alerts",
            );
        } else if key.is_empty() {
            c.error(key_span.clone(), "a `query` parameter needs a name");
        } else if key.contains("${") {
            c.error(
                key_span.clone(),
                "variables go in `query` values, not in names",
            );
        }
        let value = template_at(c, value_span, 0, &value, labels);
        if let (Some(target), Some(value)) = (target.as_mut(), value) {
            let has_query = target
                .segments
                .iter()
                .any(|s| matches!(s, Segment::Lit(l) if l.contains('?')));
            let mut lit = String::from(if has_query { "&" } else { "?" });
            percent_encode_into(&key, &mut lit);
            lit.push('=');
            target.segments.push(Segment::Lit(lit));
            // Literal text of a value is encoded now; variables are encoded when rendered.
            target
                .segments
                .extend(value.segments.into_iter().map(|seg| match seg {
                    Segment::Lit(l) => {
                        let mut enc = String::new();
                        percent_encode_into(&l, &mut enc);
                        Segment::Lit(enc)
                    }
                    var => var,
                }));
        }
    }
    spans.query = find(t, "query").map(|(_, v)| v.span());

    let has_body = format.is_some_and(|f| f != Format::Template) || body.is_some();
    let method = match get_str(c, t, "method") {
        Some((m, mspan)) => match m {
            "GET" if has_body && is_template => {
                c.error(
                    mspan,
                    "method GET sends no body: remove `body`, or use POST or PUT",
                );
                Method::Get
            }
            "PUT" | "GET" if is_am => {
                c.error(mspan, "the Alertmanager API takes POST");
                Method::Post
            }
            "GET" if has_body => {
                c.error(
                    mspan,
                    "method GET sends no body; this format needs POST or PUT",
                );
                Method::Get
            }
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            _ => {
                c.error(
                    mspan,
                    format!("unknown method `{m}`: expected \"GET\", \"POST\" or \"PUT\""),
                );
                Method::Post
            }
        },
        // Seed 000: GET by default; a body means POST.
        None if has_body => Method::Post,
        None => Method::Get,
    };

    let headers: Vec<(String, Template)> = get_string_map(c, t, "headers")
        .into_iter()
        .filter_map(
            |Entry {
                 key: k,
                 value: v,
                 key_span,
                 value_span,
             }| {
                let lower = k.to_ascii_lowercase();
                if k.is_empty()
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    c.error(key_span, format!("`{k}` is not a valid header name"));
                } else if RESERVED_HEADERS.contains(&lower.as_str())
                    || lower.starts_with("x-tocsin-")
                {
                    c.error(
                        key_span,
                        format!(
                            "header `{k}` is set by tocsin itself (use `auth` for Authorization)"
                        ),
                    );
                } else if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                    c.error(
                        value_span,
                        format!("header `{k}` contains a line break or control character"),
                    );
                } else {
                    return template_at(c, value_span, 0, &v, labels).map(|tpl| (k, tpl));
                }
                None
            },
        )
        .collect();
    spans.headers = find(t, "headers").map(|(_, v)| v.span());
    if headers.len() > MAX_HEADERS {
        c.error(
            spans.headers.clone().unwrap_or(span.clone()),
            format!("too many headers: the limit is {MAX_HEADERS}"),
        );
    }

    // `signing`: seed 003's cloudmonitor-form `signature`, or DingTalk's signed URL.
    // Standard Webhooks signing is issue 5.
    let signing = get_table(c, t, "signing")
        .and_then(|sg| {
            check_keys(c, sg, &["scheme", "secret", "secret_env", "secret_file"], &[], "`signing`");
            let Some((scheme, sspan)) = get_str(c, sg, "scheme") else {
                let (k, _) = find(t, "signing").expect("signing was read");
                c.error(k, "`signing` needs `scheme`: \"cloudmonitor\" or \"dingtalk\"");
                return None;
            };
            match scheme {
                "cloudmonitor" if format.is_some_and(|f| f != Format::CloudmonitorForm) => {
                    c.error(sspan, "the cloudmonitor signature is a field of the cloudmonitor-form format");
                    None
                }
                "cloudmonitor" => secret(c, sg, "secret", sspan).map(Signing::Cloudmonitor),
                "dingtalk" if format.is_some_and(|f| f != Format::Template) => {
                    c.error(sspan, "the dingtalk signature is for the template format");
                    None
                }
                "dingtalk" => secret(c, sg, "secret", sspan).map(Signing::DingTalk),
                "standard-webhooks" => {
                    // Several secrets, space-separated, while one is rotated: all sign.
                    let secrets = secret(c, sg, "secret", sspan.clone())?;
                    let mut keys = Vec::new();
                    for s in secrets.expose().split_ascii_whitespace() {
                        match crate::deliver::sign::standard_webhooks_key(s) {
                            Ok(k) => keys.push(k),
                            Err(m) => {
                                c.error(sspan.clone(), format!("`signing`: {m}"));
                                return None;
                            }
                        }
                    }
                    Some(Signing::StandardWebhooks(SigningKeys(keys)))
                }
                _ => {
                    c.error(
                        sspan,
                        format!("unknown signing scheme `{scheme}`: expected \"standard-webhooks\", \"cloudmonitor\" or \"dingtalk\""),
                    );
                    None
                }
            }
        })
        .unwrap_or_default();

    let auth = get_table(c, t, "auth").map_or(Auth::None, |a| parse_auth(c, a));

    // Seed 000: timeout 10 s, 2 retries, 2 s apart. Seeds 001/003: 5 s and 3 retries.
    let (def_timeout, def_retries) = match format {
        Some(Format::CloudmonitorJson | Format::CloudmonitorForm) => (5000, 3),
        _ => (10_000, 2),
    };
    let language = match get_str(c, t, "language") {
        Some((s, lspan)) => Language::from_config(s).unwrap_or_else(|| {
            c.error(
                lspan,
                format!("unknown language `{s}`: expected \"en\" or \"zh\""),
            );
            agent_language
        }),
        None => agent_language,
    };
    let events = match get_string_list(c, t, "events") {
        Some(list) => {
            if list.is_empty() {
                let (_, ev) = find(t, "events").expect("events were read");
                c.error(ev.span(), "`events` is empty, so the webhook would receive nothing; use `enabled = false` to silence it");
            }
            let mut mask = 0u16;
            for (e, espan) in list {
                match EventType::from_name(e) {
                    Some(k) => mask |= k.bit(),
                    None => {
                        let names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                        c.error(
                            espan,
                            format!(
                                "unknown event type `{e}`; expected one of: {}",
                                names.join(", ")
                            ),
                        );
                    }
                }
            }
            EventMask(mask)
        }
        // Alertmanager turns the heartbeat into an always-firing alert: on by default.
        None if is_am => EventMask(EventMask::DEFAULT.0 | EventType::Heartbeat.bit()),
        None => EventMask::DEFAULT,
    };
    let min_level = match get_str(c, t, "min_level") {
        Some((s, lspan)) => Level::from_config(s).unwrap_or_else(|| {
            c.error(
                lspan,
                format!(
                    "unknown `min_level` = \"{s}\": expected \"info\", \"warn\" or \"critical\""
                ),
            );
            Level::Info
        }),
        None => Level::Info,
    };
    let tls = get_table(c, t, "tls").map_or_else(TlsOptions::default, |tt| {
        let (_, tv) = find(t, "tls").expect("tls was read");
        parse_tls(c, tt, tv.span())
    });

    let egress = parse_egress(c, t);
    let generator_url = get_str(c, t, "generator_url").and_then(|(g, gspan)| {
        let lower = g.get(..8).unwrap_or(g).to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            c.error(gspan, "`generator_url` must start with http:// or https://");
            None
        } else if g[..authority_end(g)].contains("${") {
            c.error(gspan, "`generator_url`: variables may stand only in the path and query");
            None
        } else if g.chars().any(|ch| ch.is_control() || ch == ' ') || g.len() > MAX_URL_LEN {
            c.error(gspan, format!("`generator_url` must be at most {MAX_URL_LEN} bytes, without spaces or control characters"));
            None
        } else {
            template_at(c, gspan, 0, g, labels)
        }
    });
    let peers = url.as_ref().map(|(u, _)| u.clone()).unwrap_or_default();
    let webhook = Webhook {
        name: String::new(),
        egress,
        enabled: get_bool(c, t, "enabled").unwrap_or(true),
        peers,
        resend_ms: get_duration(c, t, "resend").unwrap_or(DEFAULT_RESEND_MS),
        generator_url,
        max_batch: get_int(c, t, "max_batch", 1, MAX_BATCH as i64)
            .unwrap_or(DEFAULT_MAX_BATCH as i64) as usize,
        url: url?.0.into_iter().next()?,
        target: target?,
        format: format?,
        method,
        headers,
        body,
        content_type,
        signing,
        auth,
        timeout_ms: get_duration(c, t, "timeout").unwrap_or(def_timeout),
        retries: get_int(c, t, "retries", 0, i64::from(MAX_RETRIES)).unwrap_or(def_retries) as u32,
        retry_interval_ms: get_duration(c, t, "retry_interval").unwrap_or(2000),
        retry_after_max_ms: get_duration(c, t, "retry_after_max").unwrap_or(300_000),
        language,
        events,
        min_level,
        tls,
    };
    let (name, name_span) = name?;
    if !valid_name(c, name, name_span, "webhook") {
        return None;
    }
    Some((
        Webhook {
            name: name.to_string(),
            ..webhook
        },
        spans,
    ))
}

/// Fleet labels become Alertmanager labels: they may not take the name of one tocsin sets.
fn check_alertmanager_labels(c: &mut Collector, agent: &DeTable) {
    let Some(labels) = find(agent, "labels").and_then(|(_, l)| l.get_ref().as_table()) else {
        return;
    };
    for (k, _) in labels.iter() {
        let name = k.get_ref().as_ref();
        let taken = render::alertmanager::RESERVED_LABELS.contains(&name)
            || Metric::ALL.iter().any(|m| m.dimensions().contains(&name));
        if taken {
            c.error(
                k.span(),
                format!("label `{name}` would replace the Alertmanager label tocsin sets itself; rename it"),
            );
        }
    }
}

/// `url` or `urls` of an alertmanager webhook: the base URL of each peer of the cluster,
/// and the request target, `{path}/api/v2/alerts`.
fn alertmanager_urls(
    c: &mut Collector,
    t: &DeTable,
    span: Range<usize>,
    spans: &mut WebhookSpans,
) -> Option<(Vec<Url>, Template)> {
    let mut list = Vec::new();
    match (get_str(c, t, "url"), get_string_list(c, t, "urls")) {
        (Some(_), Some(_)) => {
            let (k, _) = find(t, "urls").expect("urls were read");
            c.error(k, "give either `url` or `urls`, not both");
            return None;
        }
        (Some((u, uspan)), None) => list.push((u, uspan)),
        (None, Some(l)) => {
            let (_, v) = find(t, "urls").expect("urls were read");
            if l.is_empty() || l.len() > MAX_AM_PEERS {
                c.error(
                    v.span(),
                    format!("`urls` lists 1 to {MAX_AM_PEERS} Alertmanager peers"),
                );
            }
            list = l;
        }
        (None, None) => {
            if find(t, "url").is_none() && find(t, "urls").is_none() {
                c.error(
                    span,
                    "[[webhook]] is missing `url` (or `urls` for a cluster)",
                );
            }
            return None;
        }
    }
    let mut peers: Vec<Url> = Vec::new();
    for (u, uspan) in list.into_iter().take(MAX_AM_PEERS) {
        spans.url.get_or_insert(uspan.clone());
        match parse_url(u) {
            Err(m) => c.error(uspan, format!("`url`: {m}")),
            Ok(_) if u.contains("${") => c.error(
                uspan,
                "an Alertmanager URL is fixed: variables are not allowed in it",
            ),
            Ok(url) if url.path_and_query.contains('?') => c.error(
                uspan,
                "an Alertmanager URL is a base URL without a query: tocsin posts to {url}/api/v2/alerts",
            ),
            Ok(url) if peers.iter().any(|p| p.text == url.text) => {
                c.error(uspan, format!("peer `{u}` is listed twice"));
            }
            Ok(url) => peers.push(url),
        }
    }
    let first = peers.first()?;
    let target = Template {
        segments: vec![Segment::Lit(alertmanager_target(first))],
    };
    Some((peers, target))
}

/// `{path}/api/v2/alerts` for an Alertmanager base URL.
pub fn alertmanager_target(url: &Url) -> String {
    let base = url.path_and_query.trim_end_matches('/');
    format!("{base}/api/v2/alerts")
}

/// Where a webhook's parts are, for errors found after parsing (the render proofs).
#[derive(Clone, Debug, Default)]
struct WebhookSpans {
    table: Range<usize>,
    url: Option<Range<usize>>,
    query: Option<Range<usize>>,
    headers: Option<Range<usize>>,
    body: Option<Range<usize>>,
}

/// Parses a template held in the TOML string at `span`; `base` is where `text` starts in
/// the string's value. An error points at the variable when the string's text maps 1:1
/// onto the source (no escapes before it), else at the string.
fn template_at(
    c: &mut Collector,
    span: Range<usize>,
    base: usize,
    text: &str,
    labels: &[(String, String)],
) -> Option<Template> {
    match Template::parse(text, labels) {
        Ok(t) => Some(t),
        Err(e) => {
            let pos =
                value_offset(c.src_at(span.start), &span, base + e.offset).unwrap_or(span.start);
            c.error(pos..pos, e.message);
            None
        }
    }
}

/// The source offset of byte `offset` of the string value whose token is at `span`.
fn value_offset(src: &str, span: &Range<usize>, offset: usize) -> Option<usize> {
    let raw = src.get(span.clone())?;
    let (q, literal) = if raw.starts_with("'''") {
        (3, true)
    } else if raw.starts_with("\"\"\"") {
        (3, false)
    } else {
        (1, raw.starts_with('\''))
    };
    // A newline right after a multi-line string's opening quotes is not part of the value.
    let skip = if q == 3 {
        [("\r\n", 2), ("\n", 1)]
            .iter()
            .find(|(p, _)| raw[q..].starts_with(p))
            .map_or(0, |(_, n)| *n)
    } else {
        0
    };
    let body = raw.get(q + skip..)?;
    let before = body.get(..offset)?;
    if !literal && before.contains('\\') {
        return None;
    }
    Some(span.start + q + skip + offset)
}

/// Where a URL's scheme and authority end (its path, query or fragment begins).
fn authority_end(text: &str) -> usize {
    let after_scheme = text.find("://").map_or(0, |i| i + 3);
    text[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| after_scheme + i)
}

/// `url`: scheme, host and port fixed; path and query may hold variables.
fn url_template(
    c: &mut Collector,
    text: &str,
    span: Range<usize>,
    labels: &[(String, String)],
) -> Option<(Url, Template)> {
    let authority_end = authority_end(text);
    if text[..authority_end].contains("${") {
        c.error(span, "`url`: variables may stand only in the path and query, not in the scheme, host or port");
        return None;
    }
    // Check the URL's shape with every variable replaced by a plain placeholder.
    let mut probe = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        probe.push_str(&rest[..i]);
        probe.push('x');
        rest = rest[i..].find('}').map_or("", |j| &rest[i + j + 1..]);
    }
    probe.push_str(rest);
    let url = match parse_url(&probe) {
        Ok(u) => u,
        Err(m) => {
            c.error(span, format!("`url`: {m}"));
            return None;
        }
    };
    let tail = text[authority_end..].split('#').next().unwrap_or("");
    let template = if tail.starts_with('/') {
        template_at(c, span, authority_end, tail, labels)?
    } else {
        let mut t = template_at(c, span, authority_end, tail, labels)?;
        t.segments.insert(0, Segment::Lit("/".into()));
        t
    };
    Some((
        Url {
            text: text.to_string(),
            ..url
        },
        template,
    ))
}

/// `proxy`, `no_proxy`, `source_ip`, `bind_interface`.
fn parse_egress(c: &mut Collector, t: &DeTable) -> crate::deliver::client::Egress {
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
    crate::deliver::client::Egress {
        proxy,
        no_proxy,
        source_ip,
        bind_interface,
    }
}

fn parse_auth(c: &mut Collector, t: &DeTable) -> Auth {
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
        Some(("bearer", span)) => secret(c, t, "token", span).map_or(Auth::None, Auth::Bearer),
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
            match secret(c, t, "password", span) {
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
/// `$CREDENTIALS_DIRECTORY` first (systemd's `LoadCredential=`).
fn secret(c: &mut Collector, t: &DeTable, key: &str, type_span: Range<usize>) -> Option<Secret> {
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
        std::env::var(value).map_err(|_| format!("environment variable `{value}` is not set"))
    } else {
        let path = Path::new(value);
        let path = match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if path.is_relative() && Path::new(&dir).join(path).exists() => {
                Path::new(&dir).join(path)
            }
            _ => path.to_path_buf(),
        };
        std::fs::read_to_string(&path)
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
        Ok(s) => Some(Secret(s)),
        Err(m) => {
            c.error(span, format!("`{}`: {m}", given[0]));
            None
        }
    }
}

/// `tls = { … }`; `span` is the table's, for errors about the table as a whole.
fn parse_tls(c: &mut Collector, t: &DeTable, span: Range<usize>) -> TlsOptions {
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
        match std::fs::File::open(s) {
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

/// Appends `s` percent-encoded (RFC 3986 unreserved characters stay as they are).
pub fn percent_encode_into(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    let _ = render::Escaped {
        inner: out,
        escape: render::Escape::Url,
    }
    .write_str(s);
}

#[cfg(test)]
mod tests;
