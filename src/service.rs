//! The running agent: a tick samples and evaluates; transitions become events routed to
//! webhook outboxes; signals reload (SIGHUP) or stop (SIGTERM, SIGINT) it.

use crate::config::{self, Config};
use crate::deliver::{self, Mode, Outbox};
use crate::event::{Event, EventId, EventType};
use crate::metric::{Metric, Samples};
use crate::rule::{Evaluator, Millis, RuleSpec, Transition};
use crate::source::Sampler;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::error::TrySendError;

/// How long SIGTERM waits for in-flight deliveries.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Wall-clock milliseconds since the Unix epoch: the one place the agent reads the clock.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new unique event id.
pub fn new_event_id(now: Millis) -> EventId {
    let mut r = [0u8; 10];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
    EventId::new(now, r)
}

/// One configuration's worth of running state.
pub struct Agent {
    cfg: Arc<Config>,
    specs: Vec<RuleSpec>,
    sampler: Sampler,
    evaluator: Evaluator,
    samples: Box<Samples>,
    /// One per webhook; `None` when disabled.
    outboxes: Vec<Option<Outbox>>,
    /// Events dropped because an outbox was full.
    pub dropped: u64,
    /// The origin of the monotonic time handed to the sampler (rates must not jump when
    /// the wall clock is set, as it is on a router whose NTP sync comes late).
    started: Instant,
    /// `uptime.seconds` of the previous cycle, to notice a reboot.
    last_uptime: Option<f64>,
}

/// Whether uptime went backwards since the previous cycle (the host rebooted under a
/// running agent: a container or a suspended VM resumed elsewhere, or a root pointing at
/// a device whose /proc is mirrored). Remembers the latest uptime; a cycle without one
/// keeps the previous. Returns the old and new uptime when it went back.
pub fn uptime_went_back(last: &mut Option<f64>, samples: &Samples) -> Option<(f64, f64)> {
    let now = samples.iter().find(|s| s.metric == Metric::Uptime)?.value;
    let prev = last.replace(now)?;
    (now < prev).then_some((prev, now))
}

impl Agent {
    /// Starts an outbox per enabled webhook.
    ///
    /// # Errors
    /// A webhook's TLS settings cannot be built.
    pub fn new(cfg: Arc<Config>, mode: Mode) -> Result<Agent, String> {
        let specs: Vec<RuleSpec> = cfg.rules.iter().map(|r| r.spec.clone()).collect();
        let mut outboxes = Vec::with_capacity(cfg.webhooks.len());
        for (i, wh) in cfg.webhooks.iter().enumerate() {
            outboxes.push(if wh.enabled {
                Some(
                    deliver::spawn_outbox(cfg.clone(), i, mode)
                        .map_err(|e| format!("webhook {}: {e}", wh.name))?,
                )
            } else {
                None
            });
        }
        let probes: Vec<_> = cfg.rules.iter().filter_map(|r| r.probe.clone()).collect();
        Ok(Agent {
            sampler: Sampler::with_probes(&cfg.agent.root, &probes),
            started: Instant::now(),
            last_uptime: None,
            evaluator: Evaluator::new(&specs),
            samples: Box::default(),
            specs,
            outboxes,
            cfg,
            dropped: 0,
        })
    }

    /// The config this agent runs.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// One cycle: sample, evaluate, route the resulting events.
    pub fn tick(&mut self, now: Millis) {
        self.samples.clear();
        let mono_ms = self.started.elapsed().as_millis() as u64;
        self.sampler.sample(mono_ms, &mut self.samples);
        if let Some((prev, now)) = uptime_went_back(&mut self.last_uptime, &self.samples) {
            let detail = format!("uptime went back from {prev:.0} s to {now:.0} s");
            crate::warn!("reboot detected: {detail}");
            self.broadcast(EventType::Reboot, &detail);
        }
        let Agent {
            cfg,
            specs,
            evaluator,
            samples,
            outboxes,
            dropped,
            ..
        } = self;
        evaluator.evaluate(specs, samples, now, &mut |t: Transition| {
            let rule = &cfg.rules[t.rule];
            let event = Event::from_transition(&t, &rule.spec, new_event_id(now), now);
            for &w in &rule.notify {
                enqueue(cfg, outboxes, dropped, w, &event);
            }
        });
    }

    /// Sends an agent event (`agent_start`, `config_reload`, …) to every webhook that wants it.
    pub fn broadcast(&mut self, kind: EventType, detail: &str) {
        let now = now_ms();
        let event = Event::agent(kind, new_event_id(now), now, detail);
        for w in 0..self.cfg.webhooks.len() {
            enqueue(&self.cfg, &mut self.outboxes, &mut self.dropped, w, &event);
        }
    }

    /// Closes the outboxes and waits up to `limit` for queued deliveries to finish.
    pub async fn shutdown(self, limit: Duration) {
        let mut tasks = Vec::new();
        let mut queued = 0;
        for o in self.outboxes.into_iter().flatten() {
            queued += o.tx.max_capacity() - o.tx.capacity();
            tasks.push(o.task);
        }
        let all = async {
            for t in tasks.iter_mut() {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            crate::warn!(
                "stopping with deliveries still in flight after {} ms (up to {queued} events were queued); they are lost",
                limit.as_millis()
            );
            for t in &tasks {
                t.abort();
            }
        }
    }
}

fn enqueue(
    cfg: &Config,
    outboxes: &mut [Option<Outbox>],
    dropped: &mut u64,
    w: usize,
    event: &Event,
) {
    let wh = &cfg.webhooks[w];
    let level = event.has_level().then_some(event.level);
    let Some(outbox) = outboxes[w].as_ref() else {
        return;
    };
    if !wh.wants(event.kind, level) {
        return;
    }
    match outbox.tx.try_send(event.clone()) {
        Ok(()) => {}
        Err(TrySendError::Full(e)) => {
            *dropped += 1;
            crate::error!(
                "webhook {}: outbox full ({} events); dropped {} {}",
                wh.name,
                crate::limits::OUTBOX_CAPACITY,
                e.kind.as_str(),
                e.id.to_text()
            );
        }
        Err(TrySendError::Closed(_)) => {}
    }
}

fn log_rules(cfg: &Config) {
    let enabled = cfg.webhooks.iter().filter(|w| w.enabled).count();
    crate::info!(
        "device {} ({}): {} rules, {} webhooks ({} enabled), every {} ms, root {}",
        cfg.agent.device_id,
        cfg.agent.hostname,
        cfg.rules.len(),
        cfg.webhooks.len(),
        enabled,
        cfg.agent.interval_ms,
        cfg.agent.root.display()
    );
}

/// Runs the agent on `cfg` until SIGTERM or SIGINT. SIGHUP reloads `path`: a config with
/// errors is logged and the old one keeps running.
///
/// # Errors
/// Start-up failures: signal handlers, TLS settings.
pub async fn run(path: &Path, cfg: Config, mode: Mode) -> Result<(), String> {
    let path: PathBuf = path.to_path_buf();
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    log_rules(&cfg);
    let mut agent = Agent::new(Arc::new(cfg), mode)?;
    agent.broadcast(EventType::AgentStart, "");
    let mut ticker = new_ticker(agent.config().agent.interval_ms);
    loop {
        tokio::select! {
            _ = ticker.tick() => agent.tick(now_ms()),
            _ = hup.recv() => match config::load(&path) {
                Ok(new) => {
                    log_rules(&new);
                    match Agent::new(Arc::new(new), mode) {
                        Ok(mut next) => {
                            ticker = new_ticker(next.config().agent.interval_ms);
                            crate::info!("reloaded {}", path.display());
                            next.broadcast(EventType::ConfigReload, "reloaded");
                            let old = std::mem::replace(&mut agent, next);
                            // The old outboxes finish what they hold in the background.
                            tokio::spawn(old.shutdown(DRAIN_TIMEOUT));
                        }
                        Err(e) => crate::error!("reload of {} failed, keeping the running config: {e}", path.display()),
                    }
                }
                Err(diags) => {
                    for d in &diags.0 {
                        crate::error!("{d}");
                    }
                    crate::error!("reload of {} rejected ({} errors); keeping the running config", path.display(), diags.0.len());
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    crate::info!("stopping");
    agent.broadcast(EventType::AgentStop, "");
    agent.shutdown(DRAIN_TIMEOUT).await;
    Ok(())
}

fn new_ticker(interval_ms: u64) -> tokio::time::Interval {
    let mut t = tokio::time::interval(Duration::from_millis(interval_ms));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{DimValue, Sample};

    fn with_uptime(v: f64) -> Samples {
        let mut s = Samples::new();
        let _ = s.push(Sample {
            metric: Metric::Uptime,
            key: None,
            dim: DimValue::new(),
            value: v,
        });
        s
    }

    #[test]
    fn reboot_is_uptime_going_back() {
        let mut last = None;
        assert_eq!(uptime_went_back(&mut last, &with_uptime(100.0)), None);
        assert_eq!(uptime_went_back(&mut last, &with_uptime(105.0)), None);
        // A cycle without uptime keeps the previous value.
        assert_eq!(uptime_went_back(&mut last, &Samples::new()), None);
        assert_eq!(
            uptime_went_back(&mut last, &with_uptime(3.0)),
            Some((105.0, 3.0))
        );
        assert_eq!(uptime_went_back(&mut last, &with_uptime(8.0)), None);
    }
}
