//! A webhook's URLs and templates: `url`, `urls`, and where a template error is in the source.

use super::super::diag::Collector;
use super::super::walk::*;
use super::super::{parse_url, Url};
use super::WebhookSpans;
use crate::limits::*;
use crate::render::template::{Segment, Template};
use std::ops::Range;
use toml::de::DeTable;

/// `url` or `urls` of an alertmanager webhook: the base URL of each peer of the cluster,
/// and the request target, `{path}/api/v2/alerts`.
pub(super) fn alertmanager_urls(
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

/// Parses a template held in the TOML string at `span`; `base` is where `text` starts in
/// the string's value. An error points at the variable when the string's text maps 1:1
/// onto the source (no escapes before it), else at the string.
pub(super) fn template_at(
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
pub(super) fn value_offset(src: &str, span: &Range<usize>, offset: usize) -> Option<usize> {
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
pub(super) fn authority_end(text: &str) -> usize {
    let after_scheme = text.find("://").map_or(0, |i| i + 3);
    text[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| after_scheme + i)
}

/// `url`: scheme, host and port fixed; path and query may hold variables.
pub(super) fn url_template(
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
