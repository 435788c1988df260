//! Payload formats. Each renders one [`Event`] into a caller-provided fixed buffer and
//! returns the number of bytes written; a payload that does not fit is
//! [`RenderError::BufferFull`], never a panic and never a reallocation.
//!
//! - `cloudmonitor-json` ([`cloudmonitor`]): Aliyun CloudMonitor's alarm callback, JSON, values as strings.
//! - `cloudmonitor-form` ([`form`]): CloudMonitor's alarm callback, form-urlencoded, optional `signature`.
//! - `hertzbeat` ([`hertzbeat`]): Apache HertzBeat's webhook JSON body.
//! - `alertmanager` ([`alertmanager`]): Prometheus Alertmanager's v2 alerts array.
//! - `template` ([`template`]): any body with `${variables}`, escaped by content type.

pub mod alarm;
pub mod alertmanager;
pub mod check;
pub mod cloudmonitor;
pub mod content;
pub mod form;
pub mod hertzbeat;
mod spec;
pub mod template;
mod text;

pub use spec::{ContentType, Format, Payload};

pub use text::{fmt_value, json_escape_into, json_str_into, Escape, Escaped, FixedWriter};

use crate::event::{Event, Language};
use core::fmt;

/// The namespace / metricProject tocsin reports its metrics under.
pub const NAMESPACE: &str = "tocsin";

/// Who the device is: the parts of a payload that come from the config, not the event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// `device_id` (CloudMonitor's `userId`).
    pub device_id: String,
    /// The instance name.
    pub hostname: String,
    /// The sampling interval (HertzBeat's `nextEvalInterval`).
    pub interval_ms: u64,
    /// Fleet labels.
    pub labels: Vec<(String, String)>,
}

/// Everything one rendering needs.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    /// The event.
    pub event: &'a Event,
    /// The device.
    pub origin: &'a Origin,
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

/// Renders the body `payload` describes for `ctx.event` into `buf` (see [`Payload::render`]).
///
/// # Errors
/// [`RenderError::BufferFull`] when the payload does not fit.
pub fn render(payload: &Payload, ctx: &Ctx<'_>, buf: &mut [u8]) -> Result<usize, RenderError> {
    payload.render(ctx, buf)
}
