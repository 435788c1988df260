//! Aliyun CloudMonitor's alarm callback, JSON: the fields of its JSON callback plus those of its form callback.
//!
//! Every value is a string, as in the seeds' examples: `timestamp` is unix seconds,
//! `dimensions` a JSON array of objects inside a string, `expression` a JSON array inside
//! a string (`[{"expression":"$value>90","level":3,"times":2}]`; a rule over a window
//! names its statistic as CloudMonitor does: `$Average>90`, `$Maximum`, `$Minimum`,
//! `$Sum`). Levels map to the
//! cloud monitor's numbers: CRITICAL 2, WARN 3, INFO 4 (CloudMonitor: 4 = email, 3 = SMS + email).
//!
//! With a secret a `signature` member comes last: base64(HMAC-SHA256(secret, S)), where S
//! is `name=value` of every other member in the order written, joined by `&`, names and
//! (JSON-decoded) values percent-encoded as the form callback's fields are (ASCII letters,
//! digits and `-._~` as they are, space as `+`, every other byte `%XX`): the string the
//! `cloudmonitor-form` body of the same values would be.

use super::template::write_alert_name;
use super::text::{fmt_value, json_str_into, Escape, Escaped, FixedWriter};
use super::{Ctx, RenderError, NAMESPACE};
use crate::rule::Level;
use crate::util::{base64_write, HmacWriter};
use core::fmt::Write as _;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    user_id: &'a str,
    alert_name: &'a str,
    timestamp: &'a str,
    alert_state: &'a str,
    dimensions: &'a str,
    expression: &'a str,
    cur_value: &'a str,
    metric_name: &'a str,
    metric_project: &'a str,
    instance_name: &'a str,
    namespace: &'a str,
    trigger_level: &'a str,
    pre_trigger_level: &'a str,
    rule_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
}

impl Body<'_> {
    /// Every member but `signature`, in the order they are serialised.
    fn members(&self) -> [(&'static str, &str); 14] {
        [
            ("userId", self.user_id),
            ("alertName", self.alert_name),
            ("timestamp", self.timestamp),
            ("alertState", self.alert_state),
            ("dimensions", self.dimensions),
            ("expression", self.expression),
            ("curValue", self.cur_value),
            ("metricName", self.metric_name),
            ("metricProject", self.metric_project),
            ("instanceName", self.instance_name),
            ("namespace", self.namespace),
            ("triggerLevel", self.trigger_level),
            ("preTriggerLevel", self.pre_trigger_level),
            ("ruleId", self.rule_id),
        ]
    }

    /// base64(HMAC-SHA256(key, S)) of the members (see the module documentation).
    fn signature(&self, key: &[u8]) -> heapless::String<44> {
        let mut mac = HmacWriter::new(key);
        for (i, (name, value)) in self.members().into_iter().enumerate() {
            if i > 0 {
                let _ = mac.write_char('&');
            }
            let mut enc = Escaped {
                inner: &mut mac,
                escape: Escape::Form,
            };
            let _ = enc.write_str(name);
            let _ = enc.inner.write_char('=');
            let _ = enc.write_str(value);
        }
        let mut b64 = heapless::String::<44>::new();
        // 32 bytes are 44 base64 characters: it fits.
        let _ = base64_write(mac.finish().as_ref(), &mut b64);
        b64
    }
}

/// The cloud monitor's number for a level.
pub fn level_number(l: Level) -> u8 {
    match l {
        Level::Critical => 2,
        Level::Warn => 3,
        Level::Info => 4,
    }
}

pub(super) fn render_json(
    ctx: &Ctx<'_>,
    secret: Option<&[u8]>,
    buf: &mut [u8],
) -> Result<usize, RenderError> {
    let (e, o) = (ctx.event, ctx.origin);
    let full = |_| RenderError::BufferFull;

    // `dimensions`: [{"userId":"…","instanceId":"…","mount":"/"}]
    let mut dims_buf = [0u8; 1024];
    let mut dims = FixedWriter::new(&mut dims_buf);
    (|| {
        dims.write_str("[{\"userId\":")?;
        json_str_into(&mut dims, &o.device_id)?;
        dims.write_str(",\"instanceId\":")?;
        json_str_into(&mut dims, &o.hostname)?;
        if let (Some(key), false) = (e.dimension_key(), e.dim.is_empty()) {
            dims.write_char(',')?;
            json_str_into(&mut dims, key)?;
            dims.write_char(':')?;
            json_str_into(&mut dims, &e.dim)?;
        }
        dims.write_str("}]")
    })()
    .map_err(full)?;

    // `expression`: [{"expression":"$value>90","level":3,"times":2}] — `times` is the
    // rule's configured count, as CloudMonitor defines it.
    let mut expr_buf = [0u8; 160];
    let mut expr = FixedWriter::new(&mut expr_buf);
    match e.threshold {
        Some(t) => write!(
            expr,
            "[{{\"expression\":\"{}{}{}\",\"level\":{},\"times\":{}}}]",
            e.aggregate.variable(),
            t.op.as_str(),
            fmt_value(t.value),
            level_number(e.level),
            e.rule_times.max(1)
        ),
        None => expr.write_str("[]"),
    }
    .map_err(full)?;

    let mut ts = heapless::String::<20>::new();
    let _ = write!(ts, "{}", e.timestamp_ms / 1000);
    let cur = e.value.map(fmt_value).unwrap_or_default();
    let mut name = heapless::String::<80>::new();
    let _ = write_alert_name(&mut name, e.kind, &e.rule_name);
    let mut body = Body {
        user_id: &o.device_id,
        alert_name: &name,
        timestamp: &ts,
        alert_state: e.state.as_str(),
        dimensions: dims.as_str(),
        expression: expr.as_str(),
        cur_value: &cur,
        metric_name: e.metric.map_or(e.kind.as_str(), |m| m.name()),
        metric_project: NAMESPACE,
        instance_name: &o.hostname,
        namespace: NAMESPACE,
        trigger_level: e.level.as_str(),
        pre_trigger_level: e.prev_level.as_str(),
        rule_id: &e.rule_name,
        signature: None,
    };
    let sig = secret.map(|key| body.signature(key));
    body.signature = sig.as_deref();
    serde_json_core::to_slice(&body, buf).map_err(|_| RenderError::BufferFull)
}
