//! Payload formats. Each renders one [`Event`] into a caller-provided fixed buffer and
//! returns the number of bytes written; a payload that does not fit is
//! [`RenderError::BufferFull`], never a panic and never a reallocation.
//!
//! - `cloudmonitor-json` ([`cloudmonitor`]): seeds 001 + 003, JSON, values as strings.
//! - `cloudmonitor-form` ([`form`]): seed 003, form-urlencoded, optional `signature`.
//! - `hertzbeat` ([`hertzbeat`]): seed 002's JSON body.
//! - `alertmanager` ([`alertmanager`]): Prometheus Alertmanager's v2 alerts array.
//! - `template` ([`template`]): any body with `${variables}`, escaped by content type.

pub mod alarm;
pub mod alertmanager;
pub mod check;
pub mod cloudmonitor;
pub mod content;
pub mod form;
pub mod hertzbeat;
pub mod template;
mod text;

pub use text::{fmt_value, json_escape_into, json_str_into, Escape, Escaped, FixedWriter};

use crate::config::{ContentType, Format, Signing, Webhook};
use crate::event::{Event, Language};
use core::fmt;

/// The namespace / metricProject tocsin reports its metrics under.
pub const NAMESPACE: &str = "tocsin";

/// Who the device is: the parts of a payload that come from the config, not the event.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// `device_id` (seed 001's userId).
    pub device_id: &'a str,
    /// The instance name.
    pub hostname: &'a str,
    /// The sampling interval (HertzBeat's nextEvalInterval).
    pub interval_ms: u64,
    /// Fleet labels.
    pub labels: &'a [(String, String)],
}

/// Everything one rendering needs.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    /// The event.
    pub event: &'a Event,
    /// The device.
    pub origin: &'a Origin<'a>,
    /// The language of `content`.
    pub language: Language,
}

/// Why a payload could not be rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenderError {
    /// The payload is larger than the buffer.
    BufferFull,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::BufferFull => f.write_str("payload does not fit its fixed buffer"),
        }
    }
}

impl std::error::Error for RenderError {}

/// Renders the body `wh` sends for `ctx.event` into `buf`; 0 bytes for a template webhook
/// without a body (a GET).
///
/// # Errors
/// [`RenderError::BufferFull`] when the payload does not fit.
pub fn render(wh: &Webhook, ctx: &Ctx<'_>, buf: &mut [u8]) -> Result<usize, RenderError> {
    match wh.format {
        Format::CloudmonitorJson => cloudmonitor::render_json(ctx, buf),
        Format::CloudmonitorForm => {
            let secret = match &wh.signing {
                Signing::Cloudmonitor(s) => Some(s.expose().as_bytes()),
                _ => None,
            };
            form::render(ctx, secret, buf)
        }
        Format::Hertzbeat => hertzbeat::render(ctx, buf),
        Format::Alertmanager => {
            alertmanager::render(ctx, wh.resend_ms, wh.generator_url.as_ref(), buf)
        }
        Format::Template => {
            let Some(body) = &wh.body else { return Ok(0) };
            let mut w = FixedWriter::new(buf);
            body.render(&mut w, ctx, body_escape(wh))
                .map_err(|_| RenderError::BufferFull)?;
            Ok(w.len())
        }
    }
}

/// How variables are escaped in `wh`'s body.
pub fn body_escape(wh: &Webhook) -> Escape {
    match (wh.format, wh.content_type) {
        (Format::CloudmonitorForm, _) | (Format::Template, Some(ContentType::Form)) => Escape::Form,
        (Format::Template, Some(ContentType::Xml)) => Escape::Xml,
        (Format::Template, Some(ContentType::Text)) => Escape::Text,
        _ => Escape::Json,
    }
}

/// The `Content-Type` of `wh`'s bodies (seed 000's table), or `None` when it sends none.
pub fn content_type(wh: &Webhook) -> Option<&'static str> {
    match wh.format {
        Format::CloudmonitorJson | Format::Hertzbeat | Format::Alertmanager => {
            Some("application/json")
        }
        // Seed 003's sample request.
        Format::CloudmonitorForm => Some("application/x-www-form-urlencoded; charset=UTF-8"),
        Format::Template if wh.body.is_none() => None,
        Format::Template => Some(match wh.content_type.unwrap_or(ContentType::Json) {
            ContentType::Json => "application/json",
            ContentType::Form => "application/x-www-form-urlencoded",
            ContentType::Xml => "text/xml; charset=utf-8",
            ContentType::Text => "text/plain; charset=utf-8",
        }),
    }
}

#[cfg(test)]
mod tests;
