//! The running agent: a tick samples and evaluates; transitions become events routed to
//! webhook outboxes; signals reload (SIGHUP) or stop (SIGTERM, SIGINT) it. Under systemd
//! it reports readiness, reloads and shutdown and pings the watchdog ([`crate::notify`]).

use crate::config::{self, Config};
use crate::deliver::{self, Failure, Mode, Sink};
use crate::event::{Event, EventId, EventType};
use crate::metric::{Metric, Samples};
use crate::notify::{self, Notifier};
use crate::rule::{Evaluator, Millis, RuleSpec, Transition};
use crate::source::Sampler;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;

/// How long SIGTERM waits for in-flight deliveries.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::deliver::clock::now_ms;

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
    outboxes: Vec<Option<Sink>>,
    /// Per webhook: events dropped because its outbox and spool were both full.
    pub dropped: Vec<u64>,
    /// Outboxes report events they gave up on here.
    failures: mpsc::Receiver<Failure>,
    /// And so does the agent itself, for events dropped when memory and spool are full.
    failed_tx: mpsc::Sender<Failure>,
    /// Set when the drain time is up: outboxes spool what they still hold.
    stop: watch::Sender<bool>,
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
        let (failed_tx, failures) = mpsc::channel(deliver::FAILURE_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        for (i, wh) in cfg.webhooks.iter().enumerate() {
            outboxes.push(if wh.enabled {
                Some(
                    Sink::spawn(cfg.clone(), i, mode, failed_tx.clone(), stop_rx.clone())
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
            dropped: vec![0; cfg.webhooks.len()],
            cfg,
            failures,
            failed_tx,
            stop,
        })
    }

    /// The text `tocsin status` prints: rules, webhooks, recent deliveries.
    pub fn status(&self, started: std::time::Instant) -> String {
        use std::fmt::Write as _;
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
            let spooled = crate::deliver::spool::Spool::new(&cfg.agent.state_dir, &wh.name).len();
            let o = match &self.outboxes[i] {
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
                    for l in &a.lanes {
                        let Ok(st) = l.stats.lock() else { continue };
                        let name = format!("{}@{}", wh.name, l.url.host_header());
                        stats_row(&mut s, &name, firing + resolved, &"-", &st, self.dropped[i]);
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
            let queue = o.tx.max_capacity() - o.tx.capacity();
            let Ok(st) = o.stats.lock() else { continue };
            stats_row(&mut s, &wh.name, queue, &spooled, &st, self.dropped[i]);
            recent.extend(st.recent.iter().map(|r| (wh.name.clone(), r.clone())));
        }
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

    /// Re-sends a recent or spooled event with a new id and `replay_of` set to the old one.
    ///
    /// # Errors
    /// No recent or spooled event has that id, or the outbox is full.
    pub fn replay(&mut self, id: &str) -> Result<String, String> {
        let cfg = self.cfg.clone();
        for (i, wh) in cfg.webhooks.iter().enumerate() {
            let recent = self.outboxes[i]
                .as_ref()
                .and_then(Sink::queue)
                .and_then(|o| {
                    o.stats
                        .lock()
                        .ok()?
                        .recent
                        .iter()
                        .find(|r| r.event.id.to_text().as_str() == id)
                        .map(|r| r.event.clone())
                });
            let spooled = || {
                crate::deliver::spool::Spool::new(&cfg.agent.state_dir, &wh.name)
                    .list()
                    .iter()
                    .filter_map(|p| crate::deliver::spool::load(p))
                    .find(|e| e.id.to_text().as_str() == id)
            };
            let Some(old) = recent.or_else(spooled) else {
                continue;
            };
            let now = now_ms();
            let mut event = old.clone();
            event.id = new_event_id(now);
            event.replay_of = Some(old.id);
            event.timestamp_ms = now;
            let Some(o) = self.outboxes[i].as_ref().and_then(Sink::queue) else {
                return Err(format!(
                    "webhook {} is disabled or sends alert state (alertmanager), not events",
                    wh.name
                ));
            };
            o.tx.try_send(event.clone())
                .map_err(|_| format!("the outbox of {} is full; try again", wh.name))?;
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
        self.evaluator
            .carry_over(&self.specs, old_evaluator, &old.specs)
    }

    /// Takes over the alerts of `old`'s `alertmanager` webhooks for the webhooks of the
    /// same name here (see [`deliver::alertmanager::Table::adopt`]): without it, a reload
    /// would stop re-sending firing alerts and Alertmanager would resolve them.
    pub fn adopt_alerts(&mut self, old: &Agent) {
        let rule_map: Vec<Option<usize>> = old
            .specs
            .iter()
            .map(|o| self.specs.iter().position(|n| n == o))
            .collect();
        let now = now_ms();
        for (i, wh) in self.cfg.webhooks.iter().enumerate() {
            let Some(Sink::Alerts(new)) = &self.outboxes[i] else {
                continue;
            };
            let Some(j) = old.cfg.webhooks.iter().position(|o| o.name == wh.name) else {
                continue;
            };
            let Some(Sink::Alerts(prev)) = &old.outboxes[j] else {
                continue;
            };
            if let (Ok(mut n), Ok(mut p)) = (new.table.lock(), prev.table.lock()) {
                n.adopt(&mut p, &rule_map, now);
            }
            new.wake();
        }
    }

    /// Waits for an outbox to give up on an event.
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
            failed_tx,
            ..
        } = self;
        evaluator.evaluate(specs, samples, now, &mut |t: Transition| {
            let rule = &cfg.rules[t.rule];
            let event = t.to_event(&rule.spec, new_event_id(now), now);
            for &w in &rule.notify {
                enqueue(cfg, outboxes, dropped, failed_tx, w, &event);
            }
        });
    }

    /// Sends an agent event (`agent_start`, `config_reload`, …) to every webhook that wants it.
    pub fn broadcast(&mut self, kind: EventType, detail: &str) {
        self.broadcast_except(kind, detail, None);
    }

    /// [`broadcast`](Self::broadcast), leaving out webhook `except`.
    fn broadcast_except(&mut self, kind: EventType, detail: &str, except: Option<usize>) {
        let now = now_ms();
        let event = Event::agent(kind, new_event_id(now), now, detail);
        for w in (0..self.cfg.webhooks.len()).filter(|&w| Some(w) != except) {
            enqueue(
                &self.cfg,
                &mut self.outboxes,
                &mut self.dropped,
                &self.failed_tx,
                w,
                &event,
            );
        }
    }

    /// Closes the outboxes and waits up to `limit` for queued deliveries to finish.
    pub async fn shutdown(self, limit: Duration) {
        let mut tasks: Vec<_> = self
            .outboxes
            .into_iter()
            .flatten()
            .flat_map(Sink::into_tasks)
            .collect();
        if tokio::time::timeout(limit, join_all(&mut tasks))
            .await
            .is_err()
        {
            crate::warn!(
                "deliveries still in flight after {} ms: spooling what is left under {}",
                limit.as_millis(),
                self.cfg.agent.state_dir.display()
            );
            let _ = self.stop.send(true);
            if tokio::time::timeout(SPOOL_GRACE, join_all(&mut tasks))
                .await
                .is_err()
            {
                crate::error!(
                    "outboxes did not finish spooling in {} ms; what they held is lost",
                    SPOOL_GRACE.as_millis()
                );
                for t in &tasks {
                    t.abort();
                }
            }
        }
    }
}

/// One row of the webhook table of `tocsin status`.
fn stats_row(
    s: &mut String,
    name: &str,
    queue: usize,
    spooled: &dyn std::fmt::Display,
    st: &deliver::Stats,
    dropped: u64,
) {
    use std::fmt::Write as _;
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

/// Time the outboxes get to write their queues to the spool once the drain time is up.
pub const SPOOL_GRACE: Duration = Duration::from_secs(3);

/// Waits for every unfinished task (a finished handle is never polled again).
async fn join_all(tasks: &mut [tokio::task::JoinHandle<()>]) {
    for t in tasks.iter_mut() {
        if !t.is_finished() {
            let _ = t.await;
        }
    }
}

fn enqueue(
    cfg: &Config,
    outboxes: &mut [Option<Sink>],
    dropped: &mut [u64],
    failed: &mpsc::Sender<Failure>,
    w: usize,
    event: &Event,
) {
    let wh = &cfg.webhooks[w];
    let level = event.has_level().then_some(event.level);
    let outbox = match outboxes[w].as_ref() {
        None => return,
        // The table filters itself: an alarm below `min_level` still resolves the
        // series' other alerts.
        Some(Sink::Alerts(a)) => {
            if let Some((name, severity)) = a.apply(event, event.timestamp_ms).dropped {
                dropped[w] += 1;
                let detail = format!(
                    "{}: alert table full ({} alerts), dropped {name} ({severity})",
                    wh.name,
                    crate::limits::MAX_AM_ALERTS
                );
                crate::error!("webhook {detail}");
                let _ = failed.try_send(Failure { webhook: w, detail });
            }
            return;
        }
        Some(Sink::Queue(o)) => o,
    };
    if !wh.wants(event.kind, level) {
        return;
    }
    match outbox.tx.try_send(event.clone()) {
        Ok(()) => {}
        Err(TrySendError::Full(e)) => {
            // Memory is full (the endpoint is slow or down): overflow to the spool, whose
            // bounds drop INFO first, then WARN, CRITICAL last.
            let spool = crate::deliver::spool::Spool::new(&cfg.agent.state_dir, &wh.name);
            match spool.put(&e) {
                Ok(evicted) => {
                    crate::warn!(
                        "webhook {}: outbox full ({} events); {} {} spooled",
                        wh.name,
                        crate::limits::OUTBOX_CAPACITY,
                        e.kind.as_str(),
                        e.id.to_text()
                    );
                    for (kind, id, level) in evicted.dropped {
                        dropped[w] += 1;
                        let detail = format!(
                            "{}: outbox and spool full, dropped {} {} ({})",
                            wh.name,
                            kind.as_str(),
                            id.to_text(),
                            level.as_str()
                        );
                        crate::error!("webhook {detail}");
                        let _ = failed.try_send(Failure { webhook: w, detail });
                    }
                }
                Err(err) => {
                    dropped[w] += 1;
                    crate::error!(
                        "webhook {}: outbox full and spool unwritable ({err}); dropped {} {}",
                        wh.name,
                        e.kind.as_str(),
                        e.id.to_text()
                    );
                }
            }
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

/// How the running config was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The file given.
    Given,
    /// The file given was invalid; this last-known-good copy runs instead.
    LastGood(PathBuf),
}

/// The last-known-good copy of the config under `state_dir`.
pub fn last_good_path(state_dir: &Path) -> PathBuf {
    state_dir.join("last-good.toml")
}

/// Keeps a copy of a config that validated, so a broken rollout does not take the device
/// down at its next start: the file, and the files it included in `last-good.d/` (named
/// `NNN-name` so their order stays). Written only when something changed (flash wear),
/// each file atomically.
pub fn save_last_good(config: &Path, includes: &[PathBuf], state_dir: &Path) {
    let Ok(text) = std::fs::read(config) else {
        return;
    };
    let mut copies = Vec::with_capacity(includes.len());
    for (i, p) in includes.iter().enumerate() {
        let Ok(t) = std::fs::read(p) else { return };
        let name = p
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
        copies.push((format!("{i:03}-{name}"), t));
    }
    let dest = last_good_path(state_dir);
    let dir = state_dir.join(config::LAST_GOOD_DIR);
    let same_dir = {
        let mut have: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        have.sort();
        have.len() == copies.len()
            && copies
                .iter()
                .zip(&have)
                .all(|((n, t), h)| n == h && std::fs::read(dir.join(h)).is_ok_and(|o| &o == t))
    };
    if same_dir && std::fs::read(&dest).is_ok_and(|old| old == text) {
        return;
    }
    let put = |path: &Path, bytes: &[u8]| -> std::io::Result<()> {
        // A dot file: one left by a crash is never read back as an included copy.
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(path.file_name().unwrap_or_default());
        let tmp = path.with_file_name(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        if !same_dir {
            // The copies go first: a last-good.toml never names files that are not there.
            let _ = std::fs::remove_dir_all(&dir);
            if !copies.is_empty() {
                std::fs::create_dir_all(&dir)?;
                for (n, t) in &copies {
                    put(&dir.join(n), t)?;
                }
                std::fs::File::open(&dir)?.sync_all()?;
            }
        }
        put(&dest, &text)?;
        std::fs::File::open(state_dir)?.sync_all()
    };
    if let Err(e) = write() {
        crate::warn!(
            "cannot keep a last-known-good copy in {}: {e}",
            state_dir.display()
        );
    }
}

/// Runs the agent on `cfg` until SIGTERM or SIGINT. SIGHUP reloads `path`: a config with
/// errors is logged and the old one keeps running. Under systemd (`$NOTIFY_SOCKET`) it
/// sends `READY=1` once running, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`
/// on shutdown and, when `$WATCHDOG_USEC` is set, `WATCHDOG=1` every half period from the
/// same loop that samples, so a stuck loop stops the pings.
///
/// `origin` says whether `cfg` is the file given or its last-known-good copy.
///
/// # Errors
/// Start-up failures: signal handlers, TLS settings.
pub async fn run(path: &Path, cfg: Config, mode: Mode, origin: Origin) -> Result<(), String> {
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
    if origin == Origin::Given && mode == Mode::Send {
        save_last_good(&path, &cfg.includes, &cfg.agent.state_dir);
    }
    let mut agent = Agent::new(Arc::new(cfg), mode)?;
    agent.broadcast(EventType::AgentStart, "");
    if let Origin::LastGood(lkg) = &origin {
        agent.broadcast(
            EventType::ConfigReload,
            &format!("{} is invalid: running {}", path.display(), lkg.display()),
        );
    }
    let mut ticker = new_ticker(agent.config().agent.interval_ms);
    let mut heartbeat = agent.config().agent.heartbeat_ms.map(new_heartbeat);
    let started = std::time::Instant::now();
    let control_path = agent.config().agent.control_socket.clone();
    let control = match crate::control::bind(&control_path) {
        Ok(l) => Some(l),
        Err(e) => {
            crate::warn!(
                "no control socket at {} ({e}): tocsin status and replay will not reach this agent",
                control_path.display()
            );
            None
        }
    };
    tell(&sd, |n| n.ready(&status_line(agent.config())));
    loop {
        tokio::select! {
            Some(mut conn) = async { match &control { Some(l) => l.accept().await.ok().map(|(c, _)| c), None => std::future::pending().await } } => {
                let answer = match crate::control::read_request(&mut conn).await.as_deref() {
                    Some("status") => agent.status(started),
                    Some(r) if r.starts_with("replay ") => agent.replay(r[7..].trim()).unwrap_or_else(|e| format!("error: {e}\n")),
                    Some(other) => format!("error: unknown request `{other}`: expected `status` or `replay EVENT_ID`\n"),
                    None => "error: no request within 1 s\n".into(),
                };
                crate::control::answer(conn, &answer).await;
            }
            _ = ticker.tick() => agent.tick(now_ms()),
            // Dead-man's switch: a receiver that stops hearing this knows the device is gone.
            _ = async { match heartbeat.as_mut() { Some(h) => { h.tick().await; } None => std::future::pending().await } } => {
                agent.broadcast(EventType::Heartbeat, "");
            }
            Some(f) = agent.next_failure() => agent.announce_failure(&f),
            _ = watchdog_tick(&mut watchdog) => tell(&sd, Notifier::watchdog),
            _ = hup.recv() => {
                tell(&sd, Notifier::reloading);
                match config::load(&path) {
                    Ok(new) => {
                        log_rules(&new);
                        match Agent::new(Arc::new(new), mode) {
                            Ok(mut next) => {
                                ticker = new_ticker(next.config().agent.interval_ms);
                                heartbeat = next.config().agent.heartbeat_ms.map(new_heartbeat);
                                let kept = next.adopt_rule_state(&mut agent);
                                next.adopt_alerts(&agent);
                                crate::info!("reloaded {} ({kept} unchanged rules kept their state)", path.display());
                                save_last_good(&path, &next.config().includes, &next.config().agent.state_dir);
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
    if control.is_some() {
        let _ = std::fs::remove_file(&control_path);
    }
    tell(&sd, Notifier::stopping);
    agent.broadcast(EventType::AgentStop, "");
    agent.shutdown(DRAIN_TIMEOUT).await;
    Ok(())
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
        cfg.webhooks.iter().filter(|w| w.enabled).count(),
        cfg.agent.interval_ms
    )
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
