//! The agent's side of the firing-state file: loading it at start, reconciling every
//! webhook with what it was told (at start and after a reload), pacing what is owed,
//! recording 2xx answers, and writing the file at most once per cycle.

use super::*;

impl Agent {
    /// At start: loads the firing-state file and reconciles (see [`Agent::reconcile`]).
    pub fn restore_firing(&mut self) {
        if self.mode != Mode::Send {
            return;
        }
        let Some(set) = firing::load(&self.cfg.agent.state_dir) else {
            return;
        };
        if set.device_id != self.cfg.agent.device_id {
            crate::warn!(
                "firing state was recorded for device {:?}, this is {:?}: dropping its {} series (their events would go out under the old identity)",
                set.device_id,
                self.cfg.agent.device_id,
                set.entries.len()
            );
            self.firing.dirty = true;
            return;
        }
        crate::info!("firing state: {} series restored", set.entries.len());
        self.firing.set = set;
        self.reconcile(true);
    }

    /// Reconciles every series of the firing state with this config. With `restart`, a
    /// series of a rule that still exists continues its episode in the evaluator (no new
    /// alarm; its next repeat `repeat` after this start). A series of a rule that is gone
    /// is OK now (its recovery is owed), and so is one whose window a reload restarted
    /// ([`crate::rule::Evaluator::window_restarted`]). Then each webhook gets the event it owes: the
    /// recorded last event again, with its id, when that was never acknowledged, else a
    /// new event with the current state — honouring its `events` and `min_level`, paced.
    /// An Alertmanager webhook is handed the current state of every series (its table
    /// starts empty).
    pub(super) fn reconcile(&mut self, restart: bool) {
        self.reconcile_where(restart, None);
    }

    /// [`reconcile`](Self::reconcile), for the (series, webhook) pairs `only` covers when
    /// given (a mute just lifted or expired). A pair a mute covers now is left as it is:
    /// what it owes goes when that mute ends.
    pub(super) fn reconcile_where(&mut self, restart: bool, only: Option<&super::mute::Target>) {
        let now = self.clock.now_ms();
        let mut entries = std::mem::take(&mut self.firing.set.entries);
        for e in &mut entries {
            let dim_key = e.key.or_else(|| e.metric.dimension());
            let rule = self.specs.iter().position(|r| {
                r.name == e.rule_name
                    && r.metric == e.metric
                    && (r.match_key.is_none() || r.match_key == dim_key)
            });
            match rule {
                Some(idx) if restart && e.state != crate::event::AlertState::Ok => {
                    // The repeat is due `repeat` after the later of the stored last
                    // notification and this start: this start, or, with a wall clock that
                    // is implausible (before 2020, earlier than the stored time), this
                    // start all the same — never a timer derived from a stored time.
                    let restored = self.evaluator.restore(
                        idx,
                        &crate::rule::Restore {
                            key: e.key,
                            dim: e.dim.clone(),
                            state: e.state,
                            level: e.level,
                            first_ms: e.first_ms,
                            last_ms: e.last_ms,
                            times: e.times,
                            last_notified_ms: now,
                        },
                    );
                    if !restored {
                        crate::warn!(
                            "firing state: rule {} has no room for series {:?}; it recovers",
                            e.rule_name,
                            e.dim.as_str()
                        );
                        e.state = crate::event::AlertState::Ok;
                    }
                }
                Some(idx)
                    if e.state != crate::event::AlertState::Ok
                        && self.evaluator.window_restarted(idx, e.key, &e.dim) =>
                {
                    // A reload changed the rule's aggregate, window or interval: its
                    // windows start over, and the alarm about the old one recovers.
                    crate::info!(
                        "rule {}: aggregate, window or interval changed: series {:?} starts a new window and recovers",
                        e.rule_name,
                        e.dim.as_str()
                    );
                    e.state = crate::event::AlertState::Ok;
                    self.firing.dirty = true;
                }
                Some(_) => {}
                None => {
                    if e.state != crate::event::AlertState::Ok {
                        crate::info!(
                            "firing state: rule {} ({}) is gone from the config: series {:?} recovers",
                            e.rule_name,
                            e.metric.name(),
                            e.dim.as_str()
                        );
                        e.state = crate::event::AlertState::Ok;
                        self.firing.dirty = true;
                    }
                }
            }
            let rule_idx = rule;
            let state = e.state;
            let level = e.level;
            let before = e.hooks.len();
            let mut hooks = std::mem::take(&mut e.hooks);
            let recorded = hooks.len();
            if let (Some(idx), true) = (rule_idx, state != crate::event::AlertState::Ok) {
                // A webhook added to the rule's `notify` (or newly taking this state) is
                // owed the episode: it gets the recorded event, never acknowledged by it.
                if let Some(template) = hooks.first().map(|h| h.last.clone()) {
                    let mut probe = template.clone();
                    probe.rule = Some(idx);
                    for w in self.routes.targets(&probe, None) {
                        let name = &self.cfg.webhooks[w].name;
                        if !hooks.iter().any(|h| h.webhook.as_str() == name.as_str())
                            && hooks.len() < firing::MAX_HOOKS
                        {
                            hooks.push(firing::Hook {
                                webhook: crate::event::truncated(name),
                                delivered: None,
                                last: probe.clone(),
                            });
                        }
                    }
                }
                e.notify = self.cfg.rules[idx]
                    .notify
                    .iter()
                    .map(|&w| crate::event::truncated(&self.cfg.webhooks[w].name))
                    .collect();
            }
            let mut nth = 0;
            hooks.retain_mut(|h| {
                let added = nth >= recorded;
                nth += 1;
                let Some(w) = self
                    .cfg
                    .webhooks
                    .iter()
                    .position(|c| c.name == h.webhook.as_str())
                else {
                    return false;
                };
                let stateful = matches!(self.sinks[w], Some(Sink::Alerts(_)));
                if self.mutes.covers_series(&e.rule_name, &h.webhook, stateful)
                    || only.is_some_and(|t| !t.covers_series(&e.rule_name, &h.webhook, stateful))
                {
                    return true;
                }
                let owes = e.owes(h);
                if !owes && !stateful {
                    return true;
                }
                let never_acked = h.delivered.is_none_or(|d| d.id != h.last.id);
                let same = h.last.state == state
                    && (state == crate::event::AlertState::Ok || h.last.level == level);
                if !restart && !added && !stateful && never_acked && same {
                    // At a reload: the previous config's sink still holds it (in its
                    // queue, in flight or spooled) and its 2xx is recorded here.
                    return true;
                }
                let mut event = h.last.clone();
                if !(stateful || (never_acked && same)) {
                    event.id = EventId::generate(now);
                    event.timestamp_ms = now;
                    event.state = state;
                    event.kind = match state {
                        crate::event::AlertState::Ok => EventType::Recovery,
                        crate::event::AlertState::Alert => EventType::Alarm,
                        crate::event::AlertState::InsufficientData => EventType::NoData,
                    };
                    event.prev_level = h.delivered.map_or(level, |d| d.level);
                    event.level = level;
                    if state == crate::event::AlertState::Ok {
                        event.prev_level = event.level;
                    }
                    event.replay_of = None;
                } else if stateful {
                    if event.state != state {
                        event.kind = match state {
                            crate::event::AlertState::Ok => EventType::Recovery,
                            crate::event::AlertState::Alert => EventType::Alarm,
                            crate::event::AlertState::InsufficientData => EventType::NoData,
                        };
                    }
                    event.state = state;
                    event.level = level;
                    // The alert fires (again) with the episode's start as its startsAt.
                    event.first_trigger_ms = e.first_ms;
                    event.prev_level = level;
                    // Alertmanager keeps the state from here: it counts as told.
                    if h.delivered
                        .is_none_or(|d| (d.state, d.level) != (state, level))
                    {
                        self.firing.dirty = true;
                    }
                    h.delivered = Some(firing::Delivered {
                        state,
                        level,
                        id: event.id,
                    });
                }
                if let Some(idx) = rule_idx {
                    event.rule = Some(idx);
                }
                if !self.cfg.webhooks[w].filter.takes(&event) {
                    // It does not take this state: nothing is owed to it.
                    return false;
                }
                // An unacknowledged event still in the spool goes from there.
                let spooled = self.cfg.webhooks.get(w).is_some_and(|wh| {
                    deliver::spool::Spool::new(&self.cfg.agent.state_dir, &wh.name)
                        .path_of(&event)
                        .exists()
                });
                if !spooled {
                    if event.id != h.last.id {
                        self.firing.dirty = true;
                    }
                    h.last = event.clone();
                    self.owed.push_back((w, event));
                    self.owed_total += 1;
                }
                true
            });
            if hooks.len() != before {
                self.firing.dirty = true;
            }
            e.hooks = hooks;
        }
        self.firing.set.entries = entries;
        self.firing.set.device_id = self.cfg.agent.device_id.clone();
        self.firing.prune();
        self.pace();
    }

    /// Hands owed events over, no more to a webhook than its outbox has room for.
    pub(super) fn pace(&mut self) {
        let mut room = [0usize; crate::limits::MAX_WEBHOOKS];
        for (w, s) in self.sinks.iter().enumerate().take(room.len()) {
            room[w] = match s {
                Some(Sink::Queue(o)) => crate::limits::OUTBOX_CAPACITY.saturating_sub(o.queued()),
                Some(Sink::Alerts(_)) => usize::MAX,
                None => 0,
            };
        }
        let mut left = std::collections::VecDeque::new();
        while let Some((w, event)) = self.owed.pop_front() {
            if w < room.len() && room[w] > 0 {
                room[w] -= 1;
                if let Some(s) = &self.sinks[w] {
                    s.offer(&event, &self.cfg.webhooks[w].name, w, &self.failed_tx);
                }
            } else if self.sinks.get(w).is_some_and(Option::is_some) {
                left.push_back((w, event));
            }
        }
        self.owed = left;
    }

    /// A sink's 2xx of a rule event: the delivered state.
    pub fn on_ack(&mut self, ack: &Ack) {
        if let Some(wh) = self.cfg.webhooks.get(ack.webhook) {
            self.firing.on_ack(ack, &wh.name);
        }
    }

    /// Waits for a sink to give up on an event or to report a 2xx.
    pub async fn next_report(&mut self) -> Option<Report> {
        let writing = &mut self.writing;
        let retired = &mut self.retired;
        tokio::select! {
            a = async {
                match retired.as_mut() {
                    Some((rx, _)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => Some(Report::RetiredAck(a)),
            Some(f) = self.failures.recv() => Some(Report::Failure(f)),
            Some(a) = self.acks.recv() => Some(Report::Ack(a)),
            () = async {
                match writing.as_mut() {
                    Some((h, _)) => {
                        let _ = h.await;
                    }
                    None => std::future::pending().await,
                }
            } => Some(Report::Written),
            else => None,
        }
    }

    /// Writes the firing-state file when something in it changed, one write at a time
    /// (the next one waits for the next cycle), on the blocking pool.
    pub(super) fn flush_firing(&mut self) {
        if !self.firing.dirty || self.mode != Mode::Send {
            return;
        }
        if self.writing.is_some() {
            return;
        }
        self.firing.dirty = false;
        self.firing
            .set
            .device_id
            .clone_from(&self.cfg.agent.device_id);
        let bytes = firing::encode(&self.firing.set);
        let dir = self.cfg.agent.state_dir.clone();
        let held = self.held.len();
        self.writing = Some((
            tokio::task::spawn_blocking(move || {
                if let Err(e) = firing::write(&dir, &bytes) {
                    crate::error!("cannot write the firing state under {}: {e}", dir.display());
                }
            }),
            held,
        ));
    }
}
