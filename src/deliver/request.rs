//! One event's request, built in one place: the event rendered with the webhook's
//! [`Payload`](crate::render::Payload), the head (method, target, headers) from its
//! [`Endpoint`]. The outbox, the Alertmanager lanes, `tocsin render` and `tocsin test` all
//! build through [`SinkSpec::prepare`] (or [`SinkSpec::alerts_head`] for an Alertmanager
//! batch) and print through [`SinkSpec::print`].

use super::endpoint::{Auth, Endpoint, Method, Signing};
use super::url::Url;
use super::{sign, Error, SinkSpec};
use crate::event::{Event, EventId, EventType};
use crate::limits::{MAX_HEADER_VALUE_LEN, MAX_URL_LEN};
use crate::render::{Ctx, Escape, FixedWriter};
use crate::util::base64_into;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use std::fmt::Write as _;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("tocsin/", env!("CARGO_PKG_VERSION"));

/// An event's request, ready for its attempts.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Method, target, headers (signed per attempt).
    pub head: Head,
    /// The rendered body.
    pub body: Bytes,
}

impl SinkSpec {
    /// The rendering context of `event` for this webhook.
    pub fn ctx<'a>(&'a self, event: &'a Event) -> Ctx<'a> {
        Ctx {
            event,
            origin: &self.origin,
            language: self.payload.language,
        }
    }

    /// Renders `event` into `buf` and builds its head; `now_ms` signs a URL signature
    /// (DingTalk).
    ///
    /// # Errors
    /// [`Error::Render`] when the body does not fit `buf`, [`Error::Build`] for a head
    /// that is not valid HTTP.
    pub fn prepare(&self, event: &Event, now_ms: u64, buf: &mut [u8]) -> Result<Prepared, Error> {
        let ctx = self.ctx(event);
        let n = self.payload.render(&ctx, buf).map_err(Error::Render)?;
        let head = Head::new(self, &ctx, now_ms)?;
        Ok(Prepared {
            head,
            body: Bytes::copy_from_slice(&buf[..n]),
        })
    }

    /// The head of an Alertmanager batch `id` to peer `url`: its `Host`,
    /// `{path}/api/v2/alerts`, and `X-Tocsin-Event-Type: alerts`.
    ///
    /// # Errors
    /// [`Error::Build`] for a head that is not valid HTTP.
    pub fn alerts_head(&self, url: &Url, id: EventId, now_ms: u64) -> Result<Head, Error> {
        let event = Event::agent(EventType::Heartbeat, id, now_ms, "");
        let mut head = Head::new(self, &self.ctx(&event), now_ms)?;
        head.uri = hyper::Uri::try_from(alertmanager_target(url))
            .map_err(|e| Error::Build(format!("invalid request target: {e}")))?;
        let host = hyper::header::HeaderValue::try_from(url.host_header())
            .map_err(|e| Error::Build(format!("Host: {e}")))?;
        head.headers.insert(hyper::header::HOST, host);
        head.headers.insert(
            "x-tocsin-event-type",
            hyper::header::HeaderValue::from_static("alerts"),
        );
        Ok(head)
    }

    /// `event`'s request as text, secrets redacted: what `--dry-run` and `tocsin render`
    /// print. `None` when the body does not fit `buf`.
    pub fn print(&self, event: &Event, now_ms: u64, buf: &mut [u8]) -> Option<String> {
        let ctx = self.ctx(event);
        let n = self.payload.render(&ctx, buf).ok()?;
        let body = &buf[..n];
        let ep = &self.endpoint;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} {} HTTP/1.1",
            ep.method.as_str(),
            redact_sign(&target(ep, &self.name, &ctx, now_ms))
        );
        let id = event.id.to_text();
        let signed = signature_headers(ep, &id, now_ms / 1000, body);
        for (k, v) in headers(self, &ctx, true)
            .into_iter()
            .chain(signed.into_iter().map(|(k, v)| (k.to_string(), v)))
        {
            let _ = writeln!(s, "{k}: {v}");
        }
        if !body.is_empty() || ep.method != Method::Get {
            let _ = writeln!(s, "Content-Length: {}", body.len());
        }
        let _ = writeln!(s);
        s.push_str(&String::from_utf8_lossy(body));
        s.push('\n');
        Some(s)
    }
}

/// `{path}/api/v2/alerts` for an Alertmanager base URL.
pub fn alertmanager_target(url: &Url) -> String {
    let base = url.path_and_query.trim_end_matches('/');
    format!("{base}/api/v2/alerts")
}

/// The request target (path and query) of `ctx.event`; `now_ms` signs it where the
/// signing scheme puts a signature in the URL (DingTalk).
fn target(ep: &Endpoint, name: &str, ctx: &Ctx<'_>, now_ms: u64) -> String {
    let mut buf = [0u8; MAX_URL_LEN];
    let mut w = FixedWriter::new(&mut buf);
    // Proved at load to fit; a failure would leave a truncated target, so log it.
    if ep.target.render(&mut w, ctx, Escape::Url).is_err() {
        crate::error!("webhook {name}: request target longer than {MAX_URL_LEN} bytes, truncated");
    }
    let mut t = w.as_str().to_string();
    if let Signing::DingTalk(secret) = &ep.signing {
        t.push(if t.contains('?') { '&' } else { '?' });
        t.push_str(&sign::dingtalk_query(secret.expose(), now_ms));
    }
    t
}

/// The request headers of `ctx.event`, in order. With `redact`, secrets are replaced by
/// `<redacted>`.
fn headers(spec: &SinkSpec, ctx: &Ctx<'_>, redact: bool) -> Vec<(String, String)> {
    let ep = &spec.endpoint;
    let event = ctx.event;
    let mut h: Vec<(String, String)> = vec![("Host".into(), ep.url.host_header())];
    if !ep
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        h.push(("User-Agent".into(), USER_AGENT.into()));
    }
    if let Some(ct) = spec.payload.content_type() {
        h.push(("Content-Type".into(), ct.into()));
    }
    h.push((
        "X-Tocsin-Event-Id".into(),
        event.id.to_text().as_str().into(),
    ));
    h.push(("X-Tocsin-Event-Type".into(), event.kind.as_str().into()));
    match &ep.auth {
        Auth::None => {}
        Auth::Bearer(token) => {
            let v = if redact { "<redacted>" } else { token.expose() };
            h.push(("Authorization".into(), format!("Bearer {v}")));
        }
        Auth::Basic { username, password } => {
            let mut v = String::from("Basic ");
            if redact {
                v.push_str("<redacted>");
            } else {
                base64_into(
                    format!("{username}:{}", password.expose()).as_bytes(),
                    &mut v,
                );
            }
            h.push(("Authorization".into(), v));
        }
    }
    for (name, tpl) in &ep.headers {
        let mut buf = [0u8; MAX_HEADER_VALUE_LEN];
        let mut w = FixedWriter::new(&mut buf);
        if tpl.render(&mut w, ctx, Escape::Header).is_err() {
            crate::error!(
                "webhook {}: header {name} longer than {MAX_HEADER_VALUE_LEN} bytes, truncated",
                spec.name
            );
        }
        h.push((name.clone(), w.as_str().to_string()));
    }
    h
}

/// The Standard Webhooks headers for one attempt, or none.
fn signature_headers(
    ep: &Endpoint,
    id: &str,
    now_s: u64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    match &ep.signing {
        Signing::StandardWebhooks(keys) => vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", now_s.to_string()),
            (
                "webhook-signature",
                sign::standard_webhooks_signature(&keys.0, id, now_s, body),
            ),
        ],
        _ => Vec::new(),
    }
}

/// Hides a URL signature from printed output (it is a credential for its time window).
fn redact_sign(target: &str) -> String {
    match target.find("&sign=").or_else(|| target.find("?sign=")) {
        Some(i) => {
            let end = target[i + 1..]
                .find('&')
                .map_or(target.len(), |j| i + 1 + j);
            format!("{}sign=<redacted>{}", &target[..=i], &target[end..])
        }
        None => target.to_string(),
    }
}

/// The method, target and headers of an event's request: built (and checked) once per
/// event, signed anew for every attempt.
#[derive(Clone, Debug)]
pub struct Head {
    method: hyper::Method,
    uri: hyper::Uri,
    headers: hyper::HeaderMap,
}

impl Head {
    /// Builds the head for `ctx.event`.
    ///
    /// # Errors
    /// [`Error::Build`]: a header or target that is not valid HTTP. Config validation
    /// rules this out; the error exists so that a gap there fails loudly instead of
    /// sending a broken request.
    fn new(spec: &SinkSpec, ctx: &Ctx<'_>, now_ms: u64) -> Result<Head, Error> {
        let ep = &spec.endpoint;
        let method = hyper::Method::from_bytes(ep.method.as_str().as_bytes())
            .map_err(|e| Error::Build(e.to_string()))?;
        let uri = hyper::Uri::try_from(target(ep, &spec.name, ctx, now_ms))
            .map_err(|e| Error::Build(format!("invalid request target: {e}")))?;
        let mut headers = hyper::HeaderMap::new();
        for (k, v) in self::headers(spec, ctx, false) {
            let name = hyper::header::HeaderName::try_from(k.as_str())
                .map_err(|e| Error::Build(format!("header `{k}`: {e}")))?;
            let value = hyper::header::HeaderValue::try_from(v)
                .map_err(|e| Error::Build(format!("header `{k}`: {e}")))?;
            headers.append(name, value);
        }
        Ok(Head {
            method,
            uri,
            headers,
        })
    }

    /// This head signed for one attempt at `now_s` (Standard Webhooks signs every attempt
    /// anew, with its own timestamp); for other schemes this head itself, not a copy.
    pub fn signed(
        &self,
        ep: &Endpoint,
        id: &str,
        now_s: u64,
        body: &[u8],
    ) -> std::borrow::Cow<'_, Head> {
        let signature = signature_headers(ep, id, now_s, body);
        if signature.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut head = self.clone();
        for (k, v) in signature {
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::try_from(k),
                hyper::header::HeaderValue::try_from(v),
            ) {
                head.headers.insert(name, value);
            }
        }
        std::borrow::Cow::Owned(head)
    }

    /// The request for one attempt.
    pub fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut r = Request::new(Full::new(body));
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        // Room for the Content-Length that hyper adds: a clone has no spare capacity, and
        // growing it would reallocate the map on every request.
        let headers = r.headers_mut();
        headers.reserve(self.headers.len() + 1);
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        r
    }
}
