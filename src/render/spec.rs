//! What a webhook's body is: its format and, for templates, its body and content type.
//! The config builds a [`Payload`]; an outbox renders every event with it.

use super::template::Template;
use super::{alertmanager, cloudmonitor, form, hertzbeat, Ctx, Escape, FixedWriter, RenderError};
use crate::event::Language;
use crate::util::Secret;

/// Payload format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aliyun CloudMonitor's alarm callback, JSON.
    CloudmonitorJson,
    /// Aliyun CloudMonitor's alarm callback, form-urlencoded, with an optional signature.
    CloudmonitorForm,
    /// Apache HertzBeat's webhook, JSON.
    Hertzbeat,
    /// Any body with `${variables}` (the generic HTTP-callback settings).
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

/// The body type of a `template` webhook (the Content-Type choices of the generic
/// HTTP-callback settings).
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

/// How one webhook's bodies are made.
#[derive(Clone, Debug)]
pub struct Payload {
    /// The format.
    pub format: Format,
    /// The body's type (`template` format only).
    pub content_type: Option<ContentType>,
    /// The body template (`template` format only); `None` sends no body.
    pub body: Option<Template>,
    /// Language of `content` (the agent's unless overridden).
    pub language: Language,
    /// `cloudmonitor-form` and `cloudmonitor-json`: the key of their `signature` member.
    pub form_secret: Option<Secret>,
    /// `alertmanager`: how often a firing alert is re-sent (its `endsAt` is 4 × this ahead).
    pub resend_ms: u64,
    /// `alertmanager`: the `generatorURL` of every alert (variables URL-encoded).
    pub generator_url: Option<Template>,
}

impl Payload {
    /// Renders the body for `ctx.event` into `buf`; 0 bytes for a template without a body
    /// (a GET).
    ///
    /// # Errors
    /// [`RenderError::BufferFull`] when the payload does not fit.
    pub fn render(&self, ctx: &Ctx<'_>, buf: &mut [u8]) -> Result<usize, RenderError> {
        match self.format {
            Format::CloudmonitorJson => cloudmonitor::render_json(
                ctx,
                self.form_secret.as_ref().map(|s| s.expose().as_bytes()),
                buf,
            ),
            Format::CloudmonitorForm => form::render(
                ctx,
                self.form_secret.as_ref().map(|s| s.expose().as_bytes()),
                buf,
            ),
            Format::Hertzbeat => hertzbeat::render(ctx, buf),
            Format::Alertmanager => {
                alertmanager::render(ctx, self.resend_ms, self.generator_url.as_ref(), buf)
            }
            Format::Template => {
                let Some(body) = &self.body else { return Ok(0) };
                let mut w = FixedWriter::new(buf);
                body.render(&mut w, ctx, self.escape())
                    .map_err(|_| RenderError::BufferFull)?;
                Ok(w.len())
            }
        }
    }

    /// How variables are escaped in the body.
    pub fn escape(&self) -> Escape {
        match (self.format, self.content_type) {
            (Format::CloudmonitorForm, _) | (Format::Template, Some(ContentType::Form)) => {
                Escape::Form
            }
            (Format::Template, Some(ContentType::Xml)) => Escape::Xml,
            (Format::Template, Some(ContentType::Text)) => Escape::Text,
            _ => Escape::Json,
        }
    }

    /// The `Content-Type` of the bodies (the generic HTTP-callback settings' table), or
    /// `None` when it sends none.
    pub fn content_type(&self) -> Option<&'static str> {
        match self.format {
            Format::CloudmonitorJson | Format::Hertzbeat | Format::Alertmanager => {
                Some("application/json")
            }
            // Aliyun CloudMonitor's sample request.
            Format::CloudmonitorForm => Some("application/x-www-form-urlencoded; charset=UTF-8"),
            Format::Template if self.body.is_none() => None,
            Format::Template => Some(match self.content_type.unwrap_or(ContentType::Json) {
                ContentType::Json => "application/json",
                ContentType::Form => "application/x-www-form-urlencoded",
                ContentType::Xml => "text/xml; charset=utf-8",
                ContentType::Text => "text/plain; charset=utf-8",
            }),
        }
    }

    /// The buffer its bodies must fit.
    pub fn body_limit(&self) -> usize {
        if self.format == Format::Alertmanager {
            crate::limits::MAX_AM_BODY_LEN
        } else {
            crate::limits::MAX_BODY_LEN
        }
    }
}
