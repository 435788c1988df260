//! The text `tocsin status` prints: rules and their series, webhooks and their counters,
//! recent deliveries.

use super::Agent;
use crate::deliver::spool::Spool;
use crate::deliver::{Sink, Stats};
use std::fmt::Write as _;
use std::time::Instant;

impl Agent {
    /// The status text, for an agent that started at `started`.
    pub fn status(&self, started: Instant) -> String {
        let cfg = &self.cfg;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "tocsin {} — device {} ({}), up {} s, every {} ms",
            env!("CARGO_PKG_VERSION"),
            cfg.agent.device_id,
            cfg.agent.hostname,
            started.elapsed().as_secs(),
            cfg.agent.interval_ms
        );
        if let Some(w) = super::boot::volatile_warning(&cfg.agent.state_dir) {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(
            s,
            "\n{:<20} {:<20} {:>14} {:<9} STATE",
            "RULE", "SERIES", "VALUE", "LEVEL"
        );
        self.evaluator.view(&self.specs, &mut |v| {
            let spec = &self.specs[v.rule];
            let value = v
                .value
                .map(crate::render::fmt_value)
                .map(|x| format!("{x}{}", spec.metric.unit()))
                .unwrap_or_else(|| "-".into());
            let series = if v.dim.is_empty() {
                "-"
            } else {
                v.dim.as_str()
            };
            let _ = writeln!(
                s,
                "{:<20} {:<20} {:>14} {:<9} {}",
                spec.name,
                series,
                value,
                v.level.map_or("-", |l| l.as_str()),
                v.state
            );
        });
        let _ = writeln!(
            s,
            "\n{:<16} {:>5} {:>7} {:>9} {:>7} {:>6} {:>7} {:>6}  LAST ERROR",
            "WEBHOOK", "QUEUE", "SPOOLED", "DELIVERED", "RETRIED", "FAILED", "DROPPED", "STATUS"
        );
        let mut recent = Vec::new();
        for (i, wh) in cfg.webhooks.iter().enumerate() {
            let spooled = Spool::new(&cfg.agent.state_dir, &wh.name).len();
            let o = match &self.sinks[i] {
                None => {
                    let _ = writeln!(
                        s,
                        "{:<16} disabled (enabled = false), {spooled} spooled",
                        wh.name
                    );
                    continue;
                }
                Some(Sink::Alerts(a)) => {
                    let (firing, resolved) = a.table.lock().map_or((0, 0), |t| t.counts());
                    let dropped = self.sinks[i].as_ref().map_or(0, Sink::dropped);
                    for l in &a.lanes {
                        let Ok(st) = l.stats.lock() else { continue };
                        let name = format!("{}@{}", wh.name, l.url.host_header());
                        stats_row(&mut s, &name, firing + resolved, &"-", &st, dropped);
                    }
                    let _ = writeln!(
                        s,
                        "{:<16} alerts: {firing} firing, {resolved} resolved and still repeated",
                        ""
                    );
                    continue;
                }
                Some(Sink::Queue(o)) => o,
            };
            let dropped = o.dropped.load(std::sync::atomic::Ordering::Relaxed) as u64;
            let Ok(st) = o.stats.lock() else { continue };
            stats_row(&mut s, &wh.name, o.queued(), &spooled, &st, dropped);
            recent.extend(st.recent.iter().map(|r| (wh.name.clone(), r.clone())));
        }
        self.mute_status(&mut s);
        let _ = writeln!(
            s,
            "\n{:<16} {:<36} {:<15} {:>8} {:>6} {:>9}",
            "WEBHOOK", "EVENT ID", "TYPE", "ATTEMPTS", "STATUS", "LATENCY"
        );
        for (name, r) in recent {
            let _ = writeln!(
                s,
                "{:<16} {:<36} {:<15} {:>8} {:>6} {:>6} ms{}",
                name,
                r.event.id.to_text(),
                r.event.kind.as_str(),
                r.attempts,
                r.status.map_or("-".into(), |c| c.to_string()),
                r.latency_ms,
                if r.delivered { "" } else { "  (not delivered)" }
            );
        }
        s
    }
}

/// One row of the webhook table.
fn stats_row(
    s: &mut String,
    name: &str,
    queue: usize,
    spooled: &dyn std::fmt::Display,
    st: &Stats,
    dropped: u64,
) {
    let _ = writeln!(
        s,
        "{:<16} {:>5} {:>7} {:>9} {:>7} {:>6} {:>7} {:>6}  {}",
        name,
        queue,
        spooled,
        st.delivered,
        st.retried,
        st.failed,
        dropped,
        st.last_status.map_or("-".into(), |c| c.to_string()),
        st.last_error.as_deref().unwrap_or("-")
    );
}
