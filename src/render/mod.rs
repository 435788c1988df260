//! Payload formats. Each renders one [`Event`] into a caller-provided fixed buffer and
//! returns the number of bytes written; a payload that does not fit is
//! [`RenderError::BufferFull`], never a panic and never a reallocation.

mod cloudmonitor;
mod text;

pub use text::{base64_into, fmt_value, json_str_into, FixedWriter};

use crate::config::Format;
use crate::event::Event;
use core::fmt;

/// What a payload needs besides the event: who the device is.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// `device_id` (seed 001's userId).
    pub device_id: &'a str,
    /// The instance name.
    pub hostname: &'a str,
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

/// Renders `event` in `format` into `buf`.
///
/// # Errors
/// [`RenderError::BufferFull`] when the payload does not fit.
pub fn render(
    format: Format,
    event: &Event,
    origin: &Origin<'_>,
    buf: &mut [u8],
) -> Result<usize, RenderError> {
    match format {
        Format::CloudmonitorJson => cloudmonitor::render_json(event, origin, buf),
    }
}

/// The `Content-Type` of `format`'s bodies.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::CloudmonitorJson => "application/json",
    }
}
