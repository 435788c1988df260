//! The running agent: a tick samples and evaluates; transitions become events routed to
//! webhook outboxes; signals reload (SIGHUP) or stop (SIGTERM, SIGINT) it. Under systemd
//! it reports readiness, reloads and shutdown and pings the watchdog ([`crate::notify`]).

use crate::config::{self, Config};
use crate::deliver::{self, Mode, Outbox};
use crate::event::{Event, EventId, EventType};
use crate::metric::Samples;
use crate::notify::{self, Notifier};
use crate::rule::{Evaluator, Millis, RuleSpec, Transition};
use crate::source::Sampler;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
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
        Ok(Agent {
            sampler: Sampler::new(&cfg.agent.root),
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
        self.sampler.sample(&mut self.samples);
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
/// errors is logged and the old one keeps running. Under systemd (`$NOTIFY_SOCKET`) it
/// sends `READY=1` once running, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`
/// on shutdown and, when `$WATCHDOG_USEC` is set, `WATCHDOG=1` every half period from the
/// same loop that samples, so a stuck loop stops the pings.
///
/// # Errors
/// Start-up failures: signal handlers, TLS settings.
pub async fn run(path: &Path, cfg: Config, mode: Mode) -> Result<(), String> {
    let path: PathBuf = path.to_path_buf();
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let sd = Notifier::from_env().unwrap_or_else(|e| {
        crate::warn!("NOTIFY_SOCKET unusable ({e}); not reporting to systemd");
        None
    });
    let mut watchdog = sd.as_ref().and(notify::watchdog_interval()).map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    log_rules(&cfg);
    let mut agent = Agent::new(Arc::new(cfg), mode)?;
    agent.broadcast(EventType::AgentStart, "");
    let mut ticker = new_ticker(agent.config().agent.interval_ms);
    tell(&sd, |n| n.ready(&status_line(agent.config())));
    loop {
        tokio::select! {
            _ = ticker.tick() => agent.tick(now_ms()),
            _ = watchdog_tick(&mut watchdog) => tell(&sd, Notifier::watchdog),
            _ = hup.recv() => {
                tell(&sd, Notifier::reloading);
                match config::load(&path) {
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
                }
                // Ready again either way: a rejected file leaves the old config running.
                tell(&sd, |n| n.ready(&status_line(agent.config())));
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    crate::info!("stopping");
    tell(&sd, Notifier::stopping);
    agent.broadcast(EventType::AgentStop, "");
    agent.shutdown(DRAIN_TIMEOUT).await;
    Ok(())
}

/// Sends a notification if there is a manager to tell; a failure is logged, never fatal
/// (the agent's job is alerting, not pleasing systemd).
fn tell(sd: &Option<Notifier>, send: impl FnOnce(&Notifier) -> std::io::Result<()>) {
    if let Some(n) = sd {
        if let Err(e) = send(n) {
            crate::warn!("sd_notify: {e}");
        }
    }
}

/// The next watchdog tick, or never when the watchdog is off.
async fn watchdog_tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The `STATUS=` line systemctl shows.
fn status_line(cfg: &Config) -> String {
    format!(
        "{} rules, {} webhooks, every {} ms",
        cfg.rules.len(),
        cfg.webhooks.iter().filter(|w| w.enabled).count(),
        cfg.agent.interval_ms
    )
}

fn new_ticker(interval_ms: u64) -> tokio::time::Interval {
    let mut t = tokio::time::interval(Duration::from_millis(interval_ms));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}
