//! The running agent, a thin shell: a tick samples and evaluates, each transition becomes
//! an event that [`crate::route`] sends to webhook sinks ([`crate::deliver`]); signals
//! reload (SIGHUP) or stop (SIGTERM, SIGINT) it; the control socket is served beside the
//! loop. Under systemd it reports readiness, reloads and shutdown and pings the watchdog
//! ([`crate::notify`]). The status text is in `status.rs`, the last-known-good copy in
//! `lkg.rs`.

pub mod boot;
mod drain;
pub mod firing;
mod lkg;
pub mod mute;
mod reconcile;
mod status;
mod ticker;

pub use lkg::{decode_pointer, encode_pointer, last_good_path, save_last_good, ConfigSource};

use crate::clock::Clock;
use crate::config::{self, Config};
use crate::deliver::{self, Ack, Env, Failure, Mode, Sink};
use crate::event::{Event, EventId, EventType};
use crate::metric::{Metric, Samples};
use crate::notify::{self, Notifier};
use crate::route::{self, Routes};
use crate::rule::{Evaluator, Millis, RuleSpec, Transition};
use crate::source::{Families, Sampler};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticker::Ticker;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

/// How long SIGTERM waits for in-flight deliveries.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Time the outboxes get to write their queues to the spool once the drain time is up.
pub const SPOOL_GRACE: Duration = Duration::from_secs(3);

/// Why an agent could not start.
#[derive(Debug)]
pub enum StartError {
    /// A webhook's sink could not be built (its TLS settings).
    Webhook {
        /// The webhook.
        name: String,
        /// Why.
        error: deliver::Error,
    },
    /// A signal handler could not be installed.
    Signal(&'static str, std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Webhook { name, error } => write!(f, "webhook {name}: {error}"),
            StartError::Signal(which, e) => write!(f, "{which} handler: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// What a sink reports to the agent.
#[derive(Debug)]
pub enum Report {
    /// It gave up on an event.
    Failure(Failure),
    /// A receiver took a rule event.
    Ack(Ack),
    /// A sink of the config before the last reload reported a 2xx (`None`: all of
    /// them have finished).
    RetiredAck(Option<Ack>),
    /// The firing-state write in flight finished: the events it recorded may go out.
    Written,
}

/// One configuration's worth of running state.
pub struct Agent {
    cfg: Arc<Config>,
    specs: Vec<RuleSpec>,
    /// Boxed: its fixed tables (mounts, interfaces) are ~13 KB, which inline would be
    /// copied through the loop future's stack frames (resident stack pages for good).
    sampler: Box<Sampler>,
    evaluator: Evaluator,
    samples: Box<Samples>,
    routes: Routes,
    /// One per webhook; `None` when disabled.
    sinks: Vec<Option<Sink>>,
    /// Sinks report events they gave up on here.
    failures: mpsc::Receiver<Failure>,
    failed_tx: mpsc::Sender<Failure>,
    /// Sinks report each 2xx of a rule event here.
    acks: mpsc::Receiver<Ack>,
    /// After a reload: the previous config's sinks, still draining, report their 2xx
    /// here (their webhook indices are that config's).
    retired: Option<(mpsc::Receiver<Ack>, Arc<Config>)>,
    /// The delivered state and the firing-state file's content.
    firing: firing::Firing,
    /// Owed events not yet handed over (paced: at most what an outbox holds at once).
    owed: std::collections::VecDeque<(usize, Event)>,
    /// The firing-state write in flight, if any (one at a time, in order), and how many
    /// of `held` it records.
    writing: Option<(tokio::task::JoinHandle<()>, usize)>,
    /// Transition events waiting for the write that records them: an event reaches a
    /// sink only once the file says it is owed, so a crash can never leave a receiver
    /// holding an alarm the next start does not know was sent.
    held: Vec<Event>,
    /// Mutes in force (`tocsin mute`), and what they suppressed.
    mutes: mute::Mutes,
    /// Owed events queued by reconciliations, in all.
    owed_total: u64,
    mode: Mode,
    /// Set when the drain time is up: sinks spool what they still hold.
    stop: watch::Sender<bool>,
    clock: Clock,
    /// `uptime.seconds` of the previous cycle, to notice a reboot.
    last_uptime: Option<f64>,
}

/// The mounts the disk rules can see: the globs of their `match`, or `None` (every
/// mount) when one of them has none. A mount no rule matches costs no statvfs.
fn mount_globs(specs: &[RuleSpec]) -> Option<Vec<crate::metric::DimValue>> {
    specs
        .iter()
        .filter(|s| matches!(s.metric, Metric::DiskUsed | Metric::DiskInodesUsed))
        .map(|s| s.match_dim.clone())
        .collect()
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
    /// Starts a sink per enabled webhook; `clock` is the agent's time from here on.
    ///
    /// # Errors
    /// A webhook's TLS settings cannot be built.
    pub fn new(cfg: Arc<Config>, mode: Mode, clock: Clock) -> Result<Agent, StartError> {
        let specs: Vec<RuleSpec> = cfg.rules.iter().map(|r| r.spec.clone()).collect();
        let (failed_tx, failures) = mpsc::channel(deliver::FAILURE_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let (acks_tx, acks) = mpsc::channel(deliver::ACK_CAPACITY);
        let env = Env {
            mode,
            clock: clock.clone(),
            failures: failed_tx.clone(),
            acks: acks_tx,
            stop: stop_rx,
        };
        let mut sinks = Vec::with_capacity(cfg.webhooks.len());
        for (i, wh) in cfg.webhooks.iter().enumerate() {
            sinks.push(if wh.filter.enabled {
                let spec = Arc::new(cfg.sink(i));
                Some(
                    Sink::spawn(spec, i, &env).map_err(|error| StartError::Webhook {
                        name: wh.name.clone(),
                        error,
                    })?,
                )
            } else {
                None
            });
        }
        let routes = Routes::new(
            cfg.rules.iter().map(|r| r.notify.clone()).collect(),
            cfg.webhooks
                .iter()
                .map(|w| route::Sink {
                    filter: w.filter,
                    stateful: w.payload.format == crate::render::Format::Alertmanager,
                })
                .collect(),
        );
        let probes: Vec<_> = cfg.rules.iter().filter_map(|r| r.probe.clone()).collect();
        Ok(Agent {
            // Only the families the rules use, and uptime (a reboot under the agent).
            sampler: Box::new(
                Sampler::with_probes(&cfg.agent.root, &probes)
                    .only(
                        Families::of_all(cfg.rules.iter().map(|r| r.spec.metric))
                            | Families::UPTIME,
                    )
                    .only_mounts(mount_globs(&specs)),
            ),
            last_uptime: None,
            evaluator: Evaluator::new(&specs),
            samples: Box::default(),
            specs,
            routes,
            sinks,
            cfg,
            failures,
            failed_tx,
            acks,
            retired: None,
            firing: firing::Firing::default(),
            owed: std::collections::VecDeque::new(),
            writing: None,
            held: Vec::new(),
            mutes: mute::Mutes::default(),
            owed_total: 0,
            mode,
            stop,
            clock,
        })
    }

    /// Re-sends a recent or spooled event with a new id and `replay_of` set to the old one.
    ///
    /// # Errors
    /// No recent or spooled event has that id, or the outbox is full.
    pub fn replay(&mut self, id: &str) -> Result<String, String> {
        for (i, wh) in self.cfg.webhooks.iter().enumerate() {
            let recent = self.sinks[i].as_ref().and_then(Sink::queue).and_then(|o| {
                o.stats
                    .lock()
                    .ok()?
                    .recent
                    .iter()
                    .find(|r| r.event.id.to_text().as_str() == id)
                    .map(|r| r.event.clone())
            });
            let spooled = || {
                let spool = deliver::spool::Spool::new(&self.cfg.agent.state_dir, &wh.name);
                spool
                    .list()
                    .iter()
                    .filter_map(|p| deliver::spool::load(p))
                    .find(|e| e.id.to_text().as_str() == id)
            };
            let Some(old) = recent.or_else(spooled) else {
                continue;
            };
            let now = self.clock.now_ms();
            let mut event = old.clone();
            event.id = EventId::generate(now);
            event.replay_of = Some(old.id);
            event.timestamp_ms = now;
            let Some(o) = self.sinks[i].as_ref().and_then(Sink::queue) else {
                return Err(format!(
                    "webhook {} is disabled or sends alert state (alertmanager), not events",
                    wh.name
                ));
            };
            if o.offer(&event) != deliver::Offer::Queued {
                return Err(format!("the outbox of {} is full; try again", wh.name));
            }
            crate::info!(
                "replaying {id} as {} to webhook {}",
                event.id.to_text(),
                wh.name
            );
            return Ok(format!(
                "replayed {id} as {} to webhook {}\n",
                event.id.to_text(),
                wh.name
            ));
        }
        Err(format!("no recent or spooled event has the id {id}"))
    }

    /// Takes over the rule state of `old` for every unchanged rule (see
    /// [`Evaluator::carry_over`]); returns how many kept their state.
    pub fn adopt_rule_state(&mut self, old: &mut Agent) -> usize {
        let old_evaluator = std::mem::replace(&mut old.evaluator, Evaluator::new(&[]));
        let kept = self
            .evaluator
            .carry_over(&self.specs, old_evaluator, &old.specs);
        // The delivered state goes on; a rule whose identity changed is a removed one
        // (its firing series recover) and a new one.
        self.firing = std::mem::take(&mut old.firing);
        // Mutes name rules and webhooks: they go on, even those whose target is gone.
        self.mutes = std::mem::take(&mut old.mutes);
        self.owed_total = old.owed_total;
        self.owed = std::mem::take(&mut old.owed);
        self.writing = old.writing.take();
        self.held = std::mem::take(&mut old.held);
        self.owed.retain(|(w, e)| {
            old.cfg.webhooks.get(*w).map(|o| &o.name) == self.cfg.webhooks.get(*w).map(|n| &n.name)
                && e.rule.is_some_and(|r| r < self.specs.len())
        });
        self.reconcile(false);
        kept
    }

    /// Takes over the alerts of `old`'s `alertmanager` webhooks for the webhooks of the
    /// same name here (see [`deliver::alertmanager::Table::adopt`]): without it, a reload
    /// would stop re-sending firing alerts and Alertmanager would resolve them.
    pub fn adopt_alerts(&mut self, old: &Agent) {
        let rule_map: Vec<Option<usize>> = old
            .specs
            .iter()
            .map(|o| self.specs.iter().position(|n| n.same_identity(o)))
            .collect();
        for (i, wh) in self.cfg.webhooks.iter().enumerate() {
            let Some(Sink::Alerts(new)) = &self.sinks[i] else {
                continue;
            };
            let Some(j) = old.cfg.webhooks.iter().position(|o| o.name == wh.name) else {
                continue;
            };
            if let Some(Sink::Alerts(prev)) = &old.sinks[j] {
                new.adopt(prev, &rule_map);
            }
        }
    }

    /// Waits for a sink to give up on an event.
    pub async fn next_failure(&mut self) -> Option<Failure> {
        self.failures.recv().await
    }

    /// Announces a failure as a `delivery_failed` event to every other webhook that wants it.
    pub fn announce_failure(&mut self, f: &Failure) {
        self.broadcast_except(EventType::DeliveryFailed, &f.detail, Some(f.webhook));
    }

    /// The config this agent runs.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// One cycle: sample, evaluate, route the resulting events.
    pub fn tick(&mut self) {
        let now = self.clock.now_ms();
        if self.writing.as_ref().is_some_and(|(h, _)| h.is_finished()) {
            // Also without a loop that waits for [`Report::Written`] (a bench driving
            // agents), what the last write recorded goes out by the next cycle.
            self.on_written();
        }
        if !self.owed.is_empty() {
            self.pace();
        }
        if !self.mutes.is_empty() {
            self.expire_mutes();
        }
        self.samples.clear();
        let mono = self.clock.mono_ms();
        self.sampler.sample(mono, &mut self.samples);
        if let Some((prev, up)) = uptime_went_back(&mut self.last_uptime, &self.samples) {
            let agent = &self.cfg.agent;
            if boot::announce_once(&agent.root, &agent.state_dir, now) {
                let detail = format!("uptime went back from {prev:.0} s to {up:.0} s");
                crate::warn!("reboot detected: {detail}");
                self.broadcast(EventType::Reboot, &detail);
            }
        }
        let Agent {
            specs,
            evaluator,
            samples,
            routes,
            sinks,
            failed_tx,
            cfg,
            firing,
            owed,
            held,
            mode,
            mutes,
            ..
        } = self;
        evaluator.evaluate(specs, samples, now, mono, &mut |t: Transition| {
            let event = t.to_event(&specs[t.rule], EventId::generate(now), now);
            // Only transitions get here: a steady cycle allocates nothing.
            let hooks: Vec<(&str, bool)> = routes
                .targets(&event, None)
                .map(|w| {
                    (
                        cfg.webhooks[w].name.as_str(),
                        matches!(sinks[w], Some(Sink::Alerts(_))),
                    )
                })
                .collect();
            let notify: Vec<&str> = cfg.rules[t.rule]
                .notify
                .iter()
                .map(|&w| cfg.webhooks[w].name.as_str())
                .collect();
            if !owed.is_empty() {
                // A newer state of the series supersedes an owed one not yet handed over.
                let series = event.series_key();
                owed.retain(|(_, e)| e.series_key() != series);
            }
            let muted: Vec<&str> = if mutes.is_empty() {
                Vec::new()
            } else {
                hooks
                    .iter()
                    .filter(|(n, stateful)| mutes.suppresses(&event, n, *stateful))
                    .map(|(n, _)| *n)
                    .collect()
            };
            firing.on_event_muted(&event, t.key, &notify, &hooks, &muted);
            if *mode == Mode::Send {
                held.push(event);
            } else {
                offer(routes, sinks, cfg, failed_tx, mutes, &event, None);
            }
        });
        self.flush_firing();
        if self.writing.is_none() {
            self.release(usize::MAX);
        }
    }

    /// Sends an agent event (`agent_start`, `config_reload`, …) to every webhook that wants it.
    pub fn broadcast(&mut self, kind: EventType, detail: &str) {
        self.broadcast_except(kind, detail, None);
    }

    /// [`broadcast`](Self::broadcast), leaving out webhook `except`.
    fn broadcast_except(&mut self, kind: EventType, detail: &str, except: Option<usize>) {
        let now: Millis = self.clock.now_ms();
        let event = Event::agent(kind, EventId::generate(now), now, detail);
        offer(
            &self.routes,
            &self.sinks,
            &self.cfg,
            &self.failed_tx,
            &mut self.mutes,
            &event,
            except,
        );
    }
}

/// Hands `event` to every sink its routes name, but those a mute covers (counted).
fn offer(
    routes: &Routes,
    sinks: &[Option<Sink>],
    cfg: &Config,
    failures: &mpsc::Sender<Failure>,
    mutes: &mut mute::Mutes,
    event: &Event,
    except: Option<usize>,
) {
    for w in routes.targets(event, except) {
        if !mutes.is_empty() {
            let stateful = matches!(sinks[w], Some(Sink::Alerts(_)));
            if mutes.suppresses(event, &cfg.webhooks[w].name, stateful) {
                mutes.count(&cfg.webhooks[w].name);
                continue;
            }
        }
        if let Some(s) = &sinks[w] {
            s.offer(event, &cfg.webhooks[w].name, w, failures);
        }
    }
}

/// Waits for every unfinished task (a finished handle is never polled again).
async fn join_all(tasks: &mut [tokio::task::JoinHandle<()>]) {
    for t in tasks.iter_mut() {
        if !t.is_finished() {
            let _ = t.await;
        }
    }
}

fn log_rules(cfg: &Config) {
    let enabled = cfg.webhooks.iter().filter(|w| w.filter.enabled).count();
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

/// A control request, read by its connection's task, answered by the loop.
type ControlRequest = (Option<String>, oneshot::Sender<String>);

/// At most this many control connections are served at once; more are answered `busy`.
pub const CONTROL_CLIENTS: usize = 4;

/// Serves the control socket beside the loop: each connection's request is read (bounded
/// in size and time) in its own task, so an idle or slow client holds back neither
/// sampling nor delivery; the loop only computes the answer. At most [`CONTROL_CLIENTS`]
/// connections hold a place; when all do, the one that has waited longest without a
/// request gives its place to the newcomer ([`crate::control::Admission`]), so idle
/// clients cannot lock `tocsin status` out.
fn serve_control(listener: tokio::net::UnixListener, to_loop: mpsc::Sender<ControlRequest>) {
    tokio::spawn(async move {
        let mut admission = crate::control::Admission::new(CONTROL_CLIENTS);
        let me = crate::control::own_uid();
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                // Out of descriptors, most likely: pause rather than spin on the error.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            // Only this agent's user and root (SO_PEERCRED): the socket's mode is the
            // first fence, this the second (a socket made group- or world-writable).
            if let Err(why) = crate::control::check_peer(&conn, me) {
                crate::warn!("control socket: refused a request from {why}");
                tokio::spawn(crate::control::turn_away(conn, Some(me)));
                continue;
            }
            let Some(mut ticket) = admission.admit().await else {
                tokio::spawn(crate::control::turn_away(conn, None));
                continue;
            };
            let to_loop = to_loop.clone();
            tokio::spawn(async move {
                let Ok(request) = ticket.read_request(&mut conn).await else {
                    crate::control::refuse(conn).await;
                    return;
                };
                let (tx, rx) = oneshot::channel();
                if to_loop.send((request, tx)).await.is_err() {
                    return;
                }
                if let Ok(answer) = rx.await {
                    crate::control::answer(conn, answer).await;
                }
                drop(ticket);
            });
            // Let the new connection's task read what its client sent (and the loop
            // tick) before the next connection may claim a place.
            tokio::task::yield_now().await;
        }
    });
}

/// The answer to one control request.
fn answer(agent: &mut Agent, request: Option<&str>, started: Instant) -> String {
    use crate::control::Request;
    match request.map(Request::parse) {
        Some(Request::Status) => agent.status(started),
        Some(Request::Replay(id)) => agent.replay(id).unwrap_or_else(|e| format!("error: {e}\n")),
        Some(Request::Mute(line)) => agent.mute_request(line),
        Some(Request::Unknown(other)) => {
            format!("error: unknown request `{other}`: expected `status`, `replay EVENT_ID`, `mute` or `unmute`\n")
        }
        None => "error: no request within 1 s\n".into(),
    }
}

/// Runs the agent on `cfg` until SIGTERM or SIGINT. SIGHUP reloads `path`: a config with
/// errors is logged and the old one keeps running. Under systemd (`$NOTIFY_SOCKET`) it
/// sends `READY=1` once running, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`
/// on shutdown and, when `$WATCHDOG_USEC` is set, `WATCHDOG=1` every half period from the
/// same loop that samples, so a stuck loop stops the pings.
///
/// `source` says whether `cfg` is the file given or its last-known-good copy.
///
/// # Errors
/// Start-up failures: signal handlers, TLS settings.
pub async fn run(
    path: &Path,
    cfg: Config,
    mode: Mode,
    source: ConfigSource,
) -> Result<(), StartError> {
    let clock = Clock::system();
    let path: PathBuf = path.to_path_buf();
    let mut hup = signal(SignalKind::hangup()).map_err(|e| StartError::Signal("SIGHUP", e))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| StartError::Signal("SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| StartError::Signal("SIGINT", e))?;
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
    if let Some(w) = boot::volatile_warning(&cfg.agent.state_dir) {
        crate::warn!("{w}");
    }
    let rebooted = (mode == Mode::Send)
        .then(|| boot::at_start(&cfg.agent.root, &cfg.agent.state_dir, clock.now_ms()))
        .flatten();
    if source == ConfigSource::Given && mode == Mode::Send {
        save_last_good(&path, &cfg.includes, &cfg.agent.state_dir);
    }
    let mut agent = Agent::new(Arc::new(cfg), mode, clock.clone())?;
    // Before anything is sent: a maintenance mute holds across the restart.
    agent.restore_mutes();
    agent.broadcast(EventType::AgentStart, "");
    if let Some(detail) = rebooted {
        crate::warn!("reboot detected: {detail}");
        agent.broadcast(EventType::Reboot, &detail);
    }
    agent.restore_firing();
    if let ConfigSource::LastGood(lkg) = &source {
        agent.broadcast(
            EventType::ConfigReload,
            &format!("{} is invalid: running {}", path.display(), lkg.display()),
        );
    }
    let mut ticker = new_ticker(agent.config().agent.interval_ms);
    let mut heartbeat = agent.config().agent.heartbeat_ms.map(new_heartbeat);
    let started = Instant::now();
    let control_path = agent.config().agent.control_socket.clone();
    let (control_tx, mut control) = mpsc::channel::<ControlRequest>(CONTROL_CLIENTS);
    let bound = match crate::control::bind(&control_path) {
        Ok(l) => {
            serve_control(l, control_tx);
            true
        }
        Err(e) => {
            crate::warn!(
                "no control socket at {} ({e}): tocsin status and replay will not reach this agent",
                control_path.display()
            );
            false
        }
    };
    tell(&sd, |n| n.ready(&status_line(agent.config())));
    loop {
        tokio::select! {
            Some((request, reply)) = control.recv() => {
                let _ = reply.send(answer(&mut agent, request.as_deref(), started));
            }
            _ = ticker.tick() => agent.tick(),
            // Dead-man's switch: a receiver that stops hearing this knows the device is gone.
            _ = async { match heartbeat.as_mut() { Some(h) => { h.tick().await; } None => std::future::pending().await } } => {
                agent.broadcast(EventType::Heartbeat, "");
            }
            Some(r) = agent.next_report() => match r {
                Report::Failure(f) => agent.announce_failure(&f),
                Report::Ack(a) => agent.on_ack(&a),
                Report::Written => agent.on_written(),
                Report::RetiredAck(a) => agent.on_retired_ack(a),
            },
            _ = watchdog_tick(&mut watchdog) => tell(&sd, Notifier::watchdog),
            _ = hup.recv() => {
                tell(&sd, Notifier::reloading);
                reload(&path, &mut agent, mode, &clock, &mut ticker, &mut heartbeat);
                // Ready again either way: a rejected file leaves the old config running.
                tell(&sd, |n| n.ready(&status_line(agent.config())));
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    crate::info!("stopping");
    if bound {
        let _ = std::fs::remove_file(&control_path);
    }
    tell(&sd, Notifier::stopping);
    agent.settle().await;
    agent.broadcast(EventType::AgentStop, "");
    agent.shutdown(DRAIN_TIMEOUT).await;
    Ok(())
}

/// SIGHUP: loads `path`; a valid config replaces `agent` (rule state and Alertmanager
/// alerts carried over), an invalid one is logged and the old one keeps running.
fn reload(
    path: &Path,
    agent: &mut Agent,
    mode: Mode,
    clock: &Clock,
    ticker: &mut Ticker,
    heartbeat: &mut Option<tokio::time::Interval>,
) {
    let new = match config::load(path) {
        Ok(new) => new,
        Err(diags) => {
            for d in &diags.0 {
                crate::error!("{d}");
            }
            crate::error!(
                "reload of {} rejected ({} errors); keeping the running config",
                path.display(),
                diags.0.len()
            );
            return;
        }
    };
    crate::log::set_config_level(new.agent.log_level);
    log_rules(&new);
    let mut next = match Agent::new(Arc::new(new), mode, clock.clone()) {
        Ok(next) => next,
        Err(e) => {
            crate::error!(
                "reload of {} failed, keeping the running config: {e}",
                path.display()
            );
            return;
        }
    };
    *ticker = new_ticker(next.config().agent.interval_ms);
    *heartbeat = next.config().agent.heartbeat_ms.map(new_heartbeat);
    let kept = next.adopt_rule_state(agent);
    next.adopt_alerts(agent);
    crate::info!(
        "reloaded {} ({kept} unchanged rules kept their state)",
        path.display()
    );
    save_last_good(
        path,
        &next.config().includes,
        &next.config().agent.state_dir,
    );
    next.broadcast(EventType::ConfigReload, "reloaded");
    let mut old = std::mem::replace(agent, next);
    // The old sinks finish what they hold in the background; their 2xx answers reach
    // the new agent (the delivered state is its now).
    let (_, closed) = mpsc::channel(1);
    let acks = std::mem::replace(&mut old.acks, closed);
    agent.retired = Some((acks, Arc::clone(&old.cfg)));
    tokio::spawn(old.shutdown(DRAIN_TIMEOUT));
}

/// The heartbeat timer; its first tick is one period after start (`agent_start` says
/// hello already).
fn new_heartbeat(period_ms: u64) -> tokio::time::Interval {
    let period = Duration::from_millis(period_ms);
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
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
        cfg.webhooks.iter().filter(|w| w.filter.enabled).count(),
        cfg.agent.interval_ms
    )
}

fn new_ticker(interval_ms: u64) -> Ticker {
    Ticker::new(interval_ms)
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
    fn the_disk_rules_matches_bound_the_mounts_sampled() {
        let specs = |rules: &str| -> Vec<RuleSpec> {
            let src = format!(
                "[agent]\ndevice_id = \"t\"\n{rules}\n[[webhook]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/x\"\nformat = \"cloudmonitor-json\"\n"
            );
            let cfg = crate::config::parse(&src, "t.toml").expect("valid");
            cfg.rules.iter().map(|r| r.spec.clone()).collect()
        };
        let root = "[[rule]]\nname = \"root\"\nmetric = \"disk.used_percent\"\nmatch = { mount = \"/\" }\nwarn = \"> 90\"\n";
        let data = "[[rule]]\nname = \"data\"\nmetric = \"disk.inodes_used_percent\"\nmatch = { mount = \"/data*\" }\nwarn = \"> 90\"\n";
        let any = "[[rule]]\nname = \"any\"\nmetric = \"disk.used_percent\"\nwarn = \"> 90\"\n";
        let mem = "[[rule]]\nname = \"mem\"\nmetric = \"mem.used_percent\"\nwarn = \"> 90\"\n";
        let globs = |rules: &[&str]| {
            mount_globs(&specs(&rules.concat()))
                .map(|g| g.iter().map(|d| d.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            globs(&[root, mem, data]),
            Some(vec!["/".into(), "/data*".into()])
        );
        // One disk rule without `match` sees every mount.
        assert_eq!(globs(&[root, any]), None);
        assert_eq!(globs(&[mem]), Some(vec![]));
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
