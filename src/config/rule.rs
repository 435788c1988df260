//! `[[rule]]`: thresholds, and the family parameters that become probes.

use super::diag::Collector;
use super::walk::*;
use super::{parse_condition, Rule};
use crate::limits::*;
use crate::metric::{DimValue, Metric};
use crate::rule::{Aggregate, Level, NoData, RuleSpec};
use crate::source::Probe;
use std::ops::Range;
use toml::de::{DeTable, DeValue};

const RULE_KEYS: &[&str] = &[
    "name",
    "metric",
    "match",
    "critical",
    "warn",
    "info",
    "times",
    "within",
    "clear",
    "clear_times",
    "repeat",
    "no_data",
    "no_data_after",
    "notify",
    "aggregate",
    "window",
    // Family parameters of the process, tcp.up, file.value and exec.value metrics.
    "pidfile",
    "target",
    "path",
    "scale",
    "command",
    "timeout",
];
/// Rule keys of the design that this build does not support yet (none left).
/// Family parameters that name a series themselves, so they are not `match` keys.
const PARAM_DIMS: &[&str] = &["pidfile", "target", "path", "command"];

/// `interval_ms` is `[agent] interval`, which sizes the windows of an `aggregate`.
pub(super) fn parse_rule(
    c: &mut Collector,
    t: &DeTable,
    span: Range<usize>,
    webhooks: &[(String, Range<usize>)],
    interval_ms: u64,
) -> Option<Rule> {
    check_keys(c, t, RULE_KEYS, &[], "[[rule]]");
    let name = get_str(c, t, "name");
    if name.is_none() && find(t, "name").is_none() {
        c.error(span.clone(), "[[rule]] is missing `name`");
    }
    let metric = match get_str(c, t, "metric") {
        Some((m, mspan)) => match Metric::from_name(m) {
            Some(m) => Some(m),
            None => {
                let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                c.error(
                    mspan,
                    format!(
                        "unknown metric `{m}`; expected one of: {}",
                        known.join(", ")
                    ),
                );
                None
            }
        },
        None => {
            if find(t, "metric").is_none() {
                c.error(span.clone(), "[[rule]] is missing `metric`");
            }
            None
        }
    };

    let mut match_key = None;
    let mut match_dim = None;
    if let Some(m) = get_table(c, t, "match") {
        // In file order, so "takes one dimension" points at the second one written.
        let mut entries: Vec<_> = m.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in entries {
            let key = k.get_ref().as_ref();
            let Some(metric) = metric else { continue };
            if match_key.is_some() {
                c.error(k.span(), "`match` takes one dimension");
                continue;
            }
            match metric.dimension_key(key) {
                Some(d) if PARAM_DIMS.contains(&d) => c.error(
                    k.span(),
                    format!(
                        "`{key}` is a parameter of metric `{}`: write `{key} = …` in the rule, not in `match`",
                        metric.name()
                    ),
                ),
                Some(d) => match v.get_ref().as_str() {
                    Some("") => c.error(
                        v.span(),
                        format!("`match.{key}` is empty; use \"*\" for every {key}"),
                    ),
                    Some(s) if s.len() <= MAX_DIM_VALUE_LEN => {
                        match_key = Some(d);
                        match_dim = DimValue::try_from(s).ok();
                    }
                    Some(_) => c.error(
                        v.span(),
                        format!("`match.{key}` is longer than {MAX_DIM_VALUE_LEN} bytes"),
                    ),
                    None => c.error(
                        v.span(),
                        format!("`match.{key}` must be a string (a glob: * and ?)"),
                    ),
                },
                None => {
                    let keys: Vec<&str> = metric
                        .dimensions()
                        .iter()
                        .copied()
                        .filter(|d| !PARAM_DIMS.contains(d))
                        .collect();
                    if keys.is_empty() {
                        c.error(
                            k.span(),
                            format!("metric `{}` has no dimensions to match", metric.name()),
                        );
                    } else {
                        c.error(
                            k.span(),
                            format!(
                                "metric `{}` has the dimension `{}`, not `{key}`",
                                metric.name(),
                                keys.join("` or `")
                            ),
                        );
                    }
                }
            }
        }
    }
    let probe = metric.and_then(|m| {
        let match_span = find(t, "match").map(|(_, v)| v.span());
        parse_probe(c, t, m, span.clone(), match_dim.as_ref(), match_span)
    });
    if let Some(p) = &probe {
        let (key, dim) = p.dim();
        match_key = Some(key);
        match_dim = Some(dim);
    }

    let mut thresholds = [None; 3];
    for (key, level) in [
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("critical", Level::Critical),
    ] {
        if let Some((s, cspan)) = get_str(c, t, key) {
            match parse_condition(s) {
                Ok(cond) => thresholds[level as usize] = Some(cond),
                Err(m) => c.error(cspan, format!("`{key}`: {m}")),
            }
        }
    }
    if thresholds.iter().all(Option::is_none)
        && ["info", "warn", "critical"]
            .iter()
            .all(|k| find(t, k).is_none())
    {
        c.error(
            span.clone(),
            "[[rule]] needs at least one threshold: `critical`, `warn` or `info`",
        );
    }

    let max = i64::from(MAX_TIMES);
    let times = get_int(c, t, "times", 1, max).unwrap_or(1) as u8;
    let within = get_int(c, t, "within", 1, max).map(|w| w as u8);
    if let Some(w) = within {
        if w < times {
            let (_, v) = find(t, "within").expect("within was read");
            c.error(
                v.span(),
                format!("`within` = {w} must be at least `times` = {times}"),
            );
        }
    }
    let clear = get_str(c, t, "clear").and_then(|(s, cspan)| match parse_condition(s) {
        Ok(cond) => Some(cond),
        Err(m) => {
            c.error(cspan, format!("`clear`: {m}"));
            None
        }
    });
    let no_data = match get_str(c, t, "no_data") {
        Some((s, nspan)) => match s {
            "alert" => NoData::Alert,
            "ok" => NoData::Ok,
            "keep" => NoData::Keep,
            _ => {
                c.error(
                    nspan,
                    format!("unknown `no_data` = \"{s}\": expected \"alert\", \"ok\" or \"keep\""),
                );
                NoData::Keep
            }
        },
        None => NoData::Keep,
    };

    let (aggregate, window_ms) = parse_window(c, t, interval_ms);

    let mut notify = Vec::new();
    if let Some(list) = get_string_list(c, t, "notify") {
        if list.len() > MAX_NOTIFY {
            c.error(
                list[MAX_NOTIFY].1.clone(),
                format!("too many webhooks in `notify`: the limit is {MAX_NOTIFY}"),
            );
        }
        for (n, nspan) in list {
            match webhooks.iter().position(|(w, _)| w == n) {
                Some(i) if notify.contains(&i) => {
                    c.error(nspan, format!("webhook `{n}` is listed twice in `notify`"))
                }
                Some(i) => notify.push(i),
                None => c.error(
                    nspan,
                    format!(
                        "`notify` names webhook `{n}`, which is not defined by any [[webhook]]"
                    ),
                ),
            }
        }
    }

    let spec = RuleSpec {
        name: heapless::String::new(),
        metric: metric?,
        match_key,
        match_dim,
        thresholds,
        times,
        within,
        clear,
        clear_times: get_int(c, t, "clear_times", 1, max).unwrap_or(1) as u8,
        repeat_ms: get_duration(c, t, "repeat"),
        no_data,
        no_data_after: get_int(c, t, "no_data_after", 1, max).unwrap_or(3) as u8,
        aggregate,
        window_ms,
        interval_ms: if aggregate == Aggregate::Last {
            0
        } else {
            interval_ms
        },
    };
    let (name, name_span) = name?;
    if !valid_name(c, name, name_span, "rule") {
        return None;
    }
    let mut spec = spec;
    spec.name = heapless::String::try_from(name).ok()?;
    Some(Rule {
        spec,
        probe,
        notify,
    })
}

/// The longest window, in sampling intervals.
pub const MAX_WINDOW_INTERVALS: u64 = 64;

/// `aggregate` and `window`: an aggregate other than `last` needs a window of one to
/// [`MAX_WINDOW_INTERVALS`] intervals; `last` takes none. The window's errors point at
/// `window` (at `aggregate` when the window is missing). Returns the aggregate and the
/// window in ms (0 with `last`, or after an error).
fn parse_window(c: &mut Collector, t: &DeTable, interval_ms: u64) -> (Aggregate, u64) {
    let aggregate = match get_str(c, t, "aggregate") {
        Some((s, aspan)) => match Aggregate::from_config(s) {
            Some(a) => Some((a, aspan)),
            None => {
                c.error(
                    aspan,
                    format!(
                        "unknown `aggregate` = \"{s}\": expected \"avg\", \"max\", \"min\", \"sum\" or \"last\""
                    ),
                );
                None
            }
        },
        None => Some((Aggregate::Last, 0..0)),
    };
    let window_span = find(t, "window").map(|(_, v)| v.span());
    let window = get_duration(c, t, "window");
    let Some((aggregate, aspan)) = aggregate else {
        return (Aggregate::Last, 0);
    };
    match (aggregate, window, window_span) {
        (Aggregate::Last, Some(_), Some(wspan)) => {
            c.error(
                wspan,
                "`window` needs an `aggregate` (avg, max, min or sum): with `last` the rule compares each sample itself",
            );
            (Aggregate::Last, 0)
        }
        (Aggregate::Last, _, _) => (Aggregate::Last, 0),
        (a, None, None) => {
            c.error(
                aspan,
                format!(
                    "`aggregate = \"{}\"` needs a `window`, like window = \"1m\"",
                    a.as_str()
                ),
            );
            (Aggregate::Last, 0)
        }
        (_, None, Some(_)) => (Aggregate::Last, 0),
        (a, Some(w), Some(wspan)) if w < interval_ms => {
            c.error(
                wspan,
                format!(
                    "`window` = {w} ms is shorter than `[agent] interval` = {interval_ms} ms: a window holds at least one sample"
                ),
            );
            (a, 0)
        }
        (a, Some(w), Some(wspan)) if w.div_ceil(interval_ms.max(1)) > MAX_WINDOW_INTERVALS => {
            c.error(
                wspan,
                format!(
                    "`window` = {w} ms is more than {MAX_WINDOW_INTERVALS} × `[agent] interval` ({interval_ms} ms): make the window shorter or the interval longer"
                ),
            );
            (a, 0)
        }
        (a, Some(w), _) => (a, w),
    }
}

/// Which metrics take a family parameter.
pub(super) fn takes_param(metric: Metric, key: &str) -> bool {
    use Metric::*;
    match key {
        "pidfile" => matches!(metric, ProcessCount | ProcessUp | ProcessRss | ProcessCpu),
        "target" => metric == TcpUp,
        "timeout" => matches!(metric, TcpUp | ExecValue),
        "path" | "scale" => metric == FileValue,
        "command" => metric == ExecValue,
        _ => true,
    }
}

/// The family parameters of a rule on `metric`: each a diagnostic when missing, of the
/// wrong type, or given to a metric that does not take it.
pub(super) fn parse_probe(
    c: &mut Collector,
    t: &DeTable,
    metric: Metric,
    span: Range<usize>,
    name_glob: Option<&DimValue>,
    match_span: Option<Range<usize>>,
) -> Option<Probe> {
    let mut ok = true;
    for key in ["pidfile", "target", "timeout", "path", "scale", "command"] {
        if let Some((kspan, _)) = find(t, key) {
            if !takes_param(metric, key) {
                let owners = match key {
                    "pidfile" => "process.*",
                    "target" => "tcp.up",
                    "timeout" => "tcp.up and exec.value",
                    "path" | "scale" => "file.value",
                    _ => "exec.value",
                };
                c.error(
                    kspan,
                    format!(
                        "`{key}` does not apply to metric `{}`; it is a parameter of {owners}",
                        metric.name()
                    ),
                );
                ok = false;
            }
        }
    }
    let timeout = |c: &mut Collector, default: u64| -> u64 {
        let Some(ms) = get_duration(c, t, "timeout") else {
            return default;
        };
        if ms > MAX_PROBE_TIMEOUT_MS {
            let (_, v) = find(t, "timeout").expect("timeout was read");
            c.error(
                v.span(),
                format!(
                    "`timeout` is at most {} s: the sampling tick waits for it",
                    MAX_PROBE_TIMEOUT_MS / 1000
                ),
            );
        }
        ms
    };
    let probe = match metric {
        Metric::ProcessCount | Metric::ProcessUp | Metric::ProcessRss | Metric::ProcessCpu => {
            let pidfile = abs_path(c, t, "pidfile");
            match (name_glob, pidfile, find(t, "pidfile").is_some()) {
                (Some(_), _, true) => {
                    let (kspan, _) = find(t, "pidfile").expect("pidfile was read");
                    c.error(kspan, "give `match = { name = … }` or `pidfile`, not both");
                    None
                }
                (Some(glob), None, false) => {
                    let literal = !glob.contains(['*', '?']);
                    if literal && glob.len() > MAX_COMM_LEN {
                        let cut: String = glob.chars().take(MAX_COMM_LEN).collect();
                        c.error(
                            match_span.unwrap_or(span),
                            format!(
                                "the kernel keeps {MAX_COMM_LEN} bytes of a process name, so `{glob}` never matches; use \"{cut}\" or a glob"
                            ),
                        );
                        None
                    } else {
                        Some(Probe::ProcessName(glob.clone()))
                    }
                }
                (None, Some(p), _) => Some(Probe::Pidfile(p)),
                (None, None, false) => {
                    if match_span.is_none() {
                        c.error(
                            span,
                            format!(
                                "metric `{}` needs `match = {{ name = \"…\" }}` or `pidfile = \"…\"`",
                                metric.name()
                            ),
                        );
                    }
                    None
                }
                _ => None,
            }
        }
        Metric::TcpUp => {
            let t_ms = timeout(c, DEFAULT_TCP_TIMEOUT_MS);
            match get_str(c, t, "target") {
                Some((s, tspan)) => match s.parse::<std::net::SocketAddr>() {
                    Ok(target) => Some(Probe::Tcp {
                        target,
                        timeout_ms: t_ms,
                    }),
                    Err(_) => {
                        c.error(
                            tspan,
                            format!("`target` = \"{s}\" must be an IP address and port, like \"127.0.0.1:53\" or \"[::1]:53\" (no host names: resolving them would block the tick)"),
                        );
                        None
                    }
                },
                None => {
                    if find(t, "target").is_none() {
                        c.error(span, "metric `tcp.up` needs `target = \"IP:PORT\"`");
                    }
                    None
                }
            }
        }
        Metric::FileValue => {
            let scale = match find(t, "scale") {
                Some((_, v)) => {
                    let n = match v.get_ref() {
                        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
                        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                            .ok()
                            .map(|i| i as f64),
                        _ => None,
                    };
                    match n {
                        Some(n) if n.is_finite() => Some(n),
                        _ => {
                            c.error(v.span(), "`scale` must be a finite number, like 0.001");
                            None
                        }
                    }
                }
                None => Some(1.0),
            };
            let path = abs_path(c, t, "path");
            if path.is_none() && find(t, "path").is_none() {
                c.error(
                    span,
                    "metric `file.value` needs `path = \"/absolute/path\"`",
                );
            }
            Some(Probe::File {
                path: path?,
                scale: scale?,
            })
        }
        Metric::ExecValue => {
            let t_ms = timeout(c, DEFAULT_EXEC_TIMEOUT_MS);
            let Some(list) = get_string_list(c, t, "command") else {
                if find(t, "command").is_none() {
                    c.error(
                        span,
                        "metric `exec.value` needs `command = [\"/absolute/program\", \"arg\", …]`",
                    );
                }
                return None;
            };
            let (_, cv) = find(t, "command").expect("command was read");
            match list.first() {
                None => {
                    c.error(
                        cv.span(),
                        "`command` is empty: give the program and its arguments",
                    );
                    return None;
                }
                Some((prog, pspan)) if !prog.starts_with('/') => {
                    c.error(
                        pspan.clone(),
                        "the program must be an absolute path: tocsin runs it directly, without a shell or PATH lookup",
                    );
                    return None;
                }
                _ => {}
            }
            if let Some((_, aspan)) = list.iter().find(|(a, _)| a.contains('\0')) {
                c.error(
                    aspan.clone(),
                    "a command argument cannot contain a NUL byte",
                );
                return None;
            }
            let joined: usize = list.iter().map(|(a, _)| a.len() + 1).sum::<usize>() - 1;
            if joined > MAX_DIM_VALUE_LEN {
                c.error(
                    cv.span(),
                    format!("`command` is {joined} bytes with its arguments; it names the series, so the limit is {MAX_DIM_VALUE_LEN} (wrap a long command in a script)"),
                );
                return None;
            }
            Some(Probe::Exec {
                command: list.iter().map(|(a, _)| a.to_string()).collect(),
                timeout_ms: t_ms,
            })
        }
        _ => None,
    };
    probe.filter(|_| ok)
}

/// An absolute path that fits a dimension value.
pub(super) fn abs_path(c: &mut Collector, t: &DeTable, key: &str) -> Option<DimValue> {
    let (s, span) = get_str(c, t, key)?;
    if !s.starts_with('/') {
        c.error(span, format!("`{key}` must be an absolute path"));
        None
    } else if s.len() > MAX_DIM_VALUE_LEN || s.contains('\0') {
        c.error(
            span,
            format!("`{key}` must be at most {MAX_DIM_VALUE_LEN} bytes, without NUL"),
        );
        None
    } else {
        DimValue::try_from(s).ok()
    }
}

/// Two rules on the same series (same file, target or command) must agree on how it is
/// sampled: one sample per series and cycle feeds both.
pub(super) fn check_probe_conflict(
    c: &mut Collector,
    seen: &[(Probe, Range<usize>)],
    p: &Probe,
    t: &DeTable,
    span: Range<usize>,
) {
    let dim = p.dim();
    for (q, _) in seen {
        if q != p && q.dim() == dim && std::mem::discriminant(q) == std::mem::discriminant(p) {
            let at = ["scale", "timeout"]
                .iter()
                .find_map(|k| find(t, k).map(|(s, _)| s))
                .unwrap_or(span.clone());
            c.error(
                at,
                format!(
                    "another rule samples `{}` = \"{}\" with a different `scale` or `timeout`; rules on the same series must agree",
                    dim.0, dim.1
                ),
            );
            return;
        }
    }
}
