//! `[[webhook]]`: the validated webhook and its parts, and its parser.

mod transport;
mod url;

use super::diag::Collector;
use super::host::Host;
use super::walk::*;
use super::AgentSettings;
use crate::event::{EventMask, EventType, Language};
use crate::limits::*;
use crate::render::template::{Segment, Template};
use crate::rule::Level;
use crate::util::percent_encode_into;
use std::ops::Range;
use toml::de::DeTable;
use transport::{parse_auth, parse_egress, parse_tls, secret};
use url::{alertmanager_urls, authority_end, template_at, url_template};

pub use crate::deliver::endpoint::{
    Auth, Egress, Endpoint, Method, NoProxy, ProxyAuth, Signing, SigningKeys, TlsOptions,
};
pub use crate::render::{ContentType, Format, Payload};
pub use crate::route::Filter;
pub use crate::util::Secret;
pub use url::alertmanager_target;

/// A validated `[[webhook]]`: what its bodies are, where and how they go, what it takes.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Unique name, referenced by rules' `notify`.
    pub name: String,
    /// The body: format, template, language.
    pub payload: Payload,
    /// The request: URL, method, headers, auth, signing, TLS, egress, retries.
    pub endpoint: Endpoint,
    /// The events it takes.
    pub filter: Filter,
}

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
    "proxy_auth",
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
const FORMAT_NAMES: &str =
    "cloudmonitor-json, cloudmonitor-form, hertzbeat, alertmanager, template";

/// The `[[webhook]]` at `span`, and where its parts are. Secrets given as `*_env` or
/// `*_file` and the TLS files are read from `host`.
pub(super) fn parse_webhook(
    c: &mut Collector,
    t: &DeTable,
    span: Range<usize>,
    agent: &AgentSettings,
    host: &dyn Host,
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
    // `query` (the generic HTTP-callback settings' `URL?username=jack`): names fixed, values
    // may hold variables.
    let mut target = url.as_ref().map(|(_, t)| t.clone());
    for Pair {
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
        // As in the generic HTTP-callback settings: GET by default; a body means POST.
        None if has_body => Method::Post,
        None => Method::Get,
    };

    let headers: Vec<(String, Template)> = get_string_map(c, t, "headers")
        .into_iter()
        .filter_map(
            |Pair {
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

    // `signing`: the `signature` member of Aliyun CloudMonitor's alarm callbacks (JSON and form),
    // DingTalk's signed URL, or Standard Webhooks' signature headers.
    let signing = get_table(c, t, "signing")
        .and_then(|sg| {
            check_keys(c, sg, &["scheme", "secret", "secret_env", "secret_file"], &[], "`signing`");
            let Some((scheme, sspan)) = get_str(c, sg, "scheme") else {
                let (k, _) = find(t, "signing").expect("signing was read");
                c.error(k, "`signing` needs `scheme`: \"cloudmonitor\" or \"dingtalk\"");
                return None;
            };
            match scheme {
                "cloudmonitor" if format.is_some_and(|f| !matches!(f, Format::CloudmonitorForm | Format::CloudmonitorJson)) => {
                    c.error(sspan, "the cloudmonitor signature is a field of the cloudmonitor-json and cloudmonitor-form formats");
                    None
                }
                "cloudmonitor" => secret(c, sg, "secret", sspan, host).map(Parsed::Form),
                "dingtalk" if format.is_some_and(|f| f != Format::Template) => {
                    c.error(sspan, "the dingtalk signature is for the template format");
                    None
                }
                "dingtalk" => secret(c, sg, "secret", sspan, host).map(|s| Parsed::Other(Signing::DingTalk(s))),
                "standard-webhooks" => {
                    // Several secrets, space-separated, while one is rotated: all sign.
                    let secrets = secret(c, sg, "secret", sspan.clone(), host)?;
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
                    Some(Parsed::Other(Signing::StandardWebhooks(SigningKeys(keys))))
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
        .unwrap_or(Parsed::Other(Signing::None));

    let auth = get_table(c, t, "auth").map_or(Auth::None, |a| parse_auth(c, a, host));

    // The generic HTTP-callback settings: timeout 10 s, 2 retries, 2 s apart. Aliyun
    // CloudMonitor's alarm callback: 5 s and 3 retries.
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
        parse_tls(c, tt, tv.span(), host)
    });

    let egress = parse_egress(c, t, host);
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
    let (signing, form_secret) = match signing {
        Parsed::Form(s) => (Signing::None, Some(s)),
        Parsed::Other(s) => (s, None),
    };
    let payload = Payload {
        format: format?,
        content_type,
        body,
        language,
        form_secret,
        resend_ms: get_duration(c, t, "resend").unwrap_or(DEFAULT_RESEND_MS),
        generator_url,
    };
    let endpoint = Endpoint {
        egress,
        peers,
        max_batch: get_int(c, t, "max_batch", 1, MAX_BATCH as i64)
            .unwrap_or(DEFAULT_MAX_BATCH as i64) as usize,
        url: url?.0.into_iter().next()?,
        target: target?,
        method,
        headers,
        signing,
        auth,
        timeout_ms: get_duration(c, t, "timeout").unwrap_or(def_timeout),
        retries: get_int(c, t, "retries", 0, i64::from(MAX_RETRIES)).unwrap_or(def_retries) as u32,
        retry_interval_ms: get_duration(c, t, "retry_interval").unwrap_or(2000),
        retry_after_max_ms: get_duration(c, t, "retry_after_max").unwrap_or(300_000),
        tls,
    };
    let filter = Filter {
        enabled: get_bool(c, t, "enabled").unwrap_or(true),
        events,
        min_level,
    };
    let (name, name_span) = name?;
    if !valid_name(c, name, name_span, "webhook") {
        return None;
    }
    Some((
        Webhook {
            name: name.to_string(),
            payload,
            endpoint,
            filter,
        },
        spans,
    ))
}

/// `signing` as written: the CloudMonitor scheme signs the body (a payload matter), the
/// others the URL or headers (an endpoint matter).
enum Parsed {
    Form(Secret),
    Other(Signing),
}

/// Where a webhook's parts are, for errors found after parsing (the render proofs).
#[derive(Clone, Debug, Default)]
pub(super) struct WebhookSpans {
    pub(super) table: Range<usize>,
    pub(super) url: Option<Range<usize>>,
    pub(super) query: Option<Range<usize>>,
    pub(super) headers: Option<Range<usize>>,
    pub(super) body: Option<Range<usize>>,
}
