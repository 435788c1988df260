//! Payload proofs: every webhook's body, request target and headers rendered for the
//! worst case before the agent may run.

use super::diag::Collector;
use super::walk::find;
use super::webhook::WebhookSpans;
use super::{AgentSettings, ContentType, Format, Signing, Webhook};
use crate::limits::*;
use crate::metric::Metric;
use crate::render;
use toml::de::DeTable;

/// `&timestamp=` + 20 digits + `&sign=` + 44 base64 characters, each up to 3 when encoded.
pub(super) const DINGTALK_SIGN_MAX: usize = 11 + 20 + 6 + 44 * 3;

/// Renders `wh`'s body, request target and headers for every kind of event and for the
/// worst case, and reports those that are invalid or can overflow their buffers.
pub(super) fn prove_webhook(
    c: &mut Collector,
    agent: &AgentSettings,
    rule_name: &str,
    wh: &Webhook,
    spans: &WebhookSpans,
) {
    use render::check::{self, prove};
    use render::Escape;
    let origin = agent.origin();
    let (payload, endpoint) = (&wh.payload, &wh.endpoint);
    let validate: Option<check::Validator> = match (payload.format, payload.content_type) {
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
        payload.language,
        rule_name,
        payload.body_limit(),
        validate,
        &|ctx, buf| payload.render(ctx, buf).ok(),
    ) {
        c.error(
            body_at,
            format!(
                "the {} body of webhook `{}`: {m}",
                payload.format.as_str(),
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
    let url_limit = match endpoint.signing {
        Signing::DingTalk(_) => MAX_URL_LEN - DINGTALK_SIGN_MAX,
        _ => MAX_URL_LEN,
    };
    if let Err(m) = check::prove_template(
        &origin,
        payload.language,
        rule_name,
        &endpoint.target,
        Escape::Url,
        url_limit,
    ) {
        c.error(
            url_at,
            format!(
                "the request target (path and query) of webhook `{}`: {m}",
                wh.name
            ),
        );
    }
    for (name, tpl) in &endpoint.headers {
        if let Err(m) = check::prove_template(
            &origin,
            payload.language,
            rule_name,
            tpl,
            Escape::Header,
            MAX_HEADER_VALUE_LEN,
        ) {
            c.error(
                spans.headers.clone().unwrap_or(spans.table.clone()),
                format!("header `{name}`: {m}"),
            );
        }
    }
}

/// Fleet labels become Alertmanager labels: they may not take the name of one tocsin sets.
pub(super) fn check_alertmanager_labels(c: &mut Collector, agent: &DeTable) {
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
