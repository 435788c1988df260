//! The config file and the files its `[agent] include` brings in, through `tocsin check`'s
//! path (`config::load_with_host`, on an in-memory host: no real file, secret or device is
//! read). Input: NUL-separated files: the first is /etc/tocsin/tocsin.toml, the others
//! /etc/tocsin/conf.d/01.toml, 02.toml, … (TOML has no NUL, so nothing is lost).
//! Invariants: an error is a non-empty list of diagnostics, each at a FILE:LINE:COL
//! inside one of the files and printed on one line; a config that is accepted renders
//! every webhook's body and head for a hostile event within its fixed buffers, and the
//! body parses in its own content type; bounded allocation.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use tocsin::config::load_with_host;
use tocsin::limits::{MAX_BODY_LEN, MAX_CONFIG_LEN};
use tocsin::render::{ContentType, Format};
use tocsin_fuzz::{event, measure, FakeHost};

const MAIN: &str = "/etc/tocsin/tocsin.toml";

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let main = parts.next().unwrap_or_default();
    let mut host = FakeHost::default();
    host.files.insert(PathBuf::from(MAIN), main.to_vec());
    for (i, p) in parts.by_ref().take(8).enumerate() {
        host.files.insert(
            PathBuf::from(format!("/etc/tocsin/conf.d/{:02}.toml", i + 1)),
            p.to_vec(),
        );
    }
    // What is left shapes the hostile events an accepted config is rendered for.
    let rest: Vec<u8> = parts.flatten().copied().collect();

    let (result, a) = measure(|| load_with_host(Path::new(MAIN), &host));
    assert!(
        a.peak <= 64 * data.len() + 16 * 1024 * 1024,
        "check held {a:?} for {} bytes",
        data.len()
    );
    let cfg = match result {
        Ok(cfg) => cfg,
        Err(diags) => {
            assert!(!diags.0.is_empty(), "an error without a diagnostic");
            for d in &diags.0 {
                let text = host
                    .files
                    .get(Path::new(&d.file))
                    .unwrap_or_else(|| panic!("diagnostic in an unknown file: {d}"));
                let text = String::from_utf8_lossy(text);
                assert!(d.line >= 1 && d.col >= 1, "{d}");
                if text.len() > MAX_CONFIG_LEN {
                    continue;
                }
                let lines: Vec<&str> = text.split('\n').collect();
                assert!(
                    d.line <= lines.len(),
                    "{d}: the file has {} lines",
                    lines.len()
                );
                let line = lines[d.line - 1];
                let chars = line.strip_suffix('\r').unwrap_or(line).chars().count();
                // One past the end is where "expected more" points.
                assert!(
                    d.col <= chars + 2,
                    "{d}: line {} has {chars} characters",
                    d.line
                );
                let shown = d.to_string();
                assert!(!shown.contains('\n') && !shown.contains('\r'), "{shown:?}");
            }
            return;
        }
    };
    let mut u = Unstructured::new(&rest);
    let mut buf = vec![0u8; MAX_BODY_LEN];
    for i in 0..cfg.webhooks.len() {
        let spec = cfg.sink(i);
        if spec.payload.format == Format::Alertmanager {
            continue; // batches: the alertmanager target
        }
        for r in 0..=cfg.rules.len() {
            let Ok(mut e) = event(&mut u) else {
                return;
            };
            match cfg.rules.get(r) {
                Some(rule) => {
                    e.rule = Some(r);
                    e.rule_name = rule.spec.name.clone();
                }
                None => {
                    e.rule = None;
                    e.rule_name.clear();
                }
            }
            let now = e.timestamp_ms;
            let p = spec.prepare(&e, now, &mut buf).unwrap_or_else(|err| {
                panic!("accepted webhook {} cannot send {e:?}: {err}", spec.name)
            });
            let body = std::str::from_utf8(&p.body).expect("a body is UTF-8");
            let kind = match spec.payload.format {
                Format::CloudmonitorJson | Format::Hertzbeat => Some(ContentType::Json),
                Format::CloudmonitorForm => Some(ContentType::Form),
                Format::Template => spec.payload.content_type,
                Format::Alertmanager => None,
            };
            match kind {
                Some(ContentType::Json) if !body.is_empty() => {
                    serde_json::from_str::<serde_json::Value>(body).unwrap_or_else(|err| {
                        panic!("webhook {}: body is not JSON ({err}): {body}", spec.name)
                    });
                }
                Some(ContentType::Xml) if !body.is_empty() => {
                    roxmltree::Document::parse(body).unwrap_or_else(|err| {
                        panic!("webhook {}: body is not XML ({err}): {body}", spec.name)
                    });
                }
                Some(ContentType::Form) => {
                    for (k, _) in form_urlencoded::parse(body.as_bytes()) {
                        assert!(!k.is_empty() || body.is_empty(), "{body:?}");
                    }
                }
                _ => {}
            }
        }
    }
});
