//! Routing: which sinks an event goes to.
//!
//! A rule event goes to the webhooks of its rule's `notify`; an agent event to every
//! webhook (a `delivery_failed` to every one but the webhook that failed). Each webhook's
//! [`Filter`] then says whether it takes the event: enabled, its `events`, its
//! `min_level`. A sink that keeps alert state (Alertmanager) is handed every event of its
//! routes and filters itself, because an alarm below its `min_level` still resolves the
//! series' other alerts.

use crate::event::{Event, EventMask, EventType, Level};

/// What one webhook takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    /// `false` keeps it configured but silent.
    pub enabled: bool,
    /// Which event types it receives.
    pub events: EventMask,
    /// Lowest level of rule events it receives.
    pub min_level: Level,
}

impl Filter {
    /// Whether it takes an event of `kind` (with `level` for rule events).
    pub fn wants(&self, kind: EventType, level: Option<Level>) -> bool {
        self.enabled && self.events.contains(kind) && level.is_none_or(|l| l >= self.min_level)
    }

    /// Whether it takes `event`.
    pub fn takes(&self, event: &Event) -> bool {
        self.wants(event.kind, event.has_level().then_some(event.level))
    }
}

/// One webhook as routing sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sink {
    /// Its filter.
    pub filter: Filter,
    /// It keeps alert state and filters events itself (Alertmanager).
    pub stateful: bool,
}

/// The routing table of one config: per rule its webhooks, per webhook its filter.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    notify: Vec<Vec<usize>>,
    sinks: Vec<Sink>,
}

impl Routes {
    /// `notify[r]` lists rule `r`'s webhooks; `sinks[w]` describes webhook `w`.
    pub fn new(notify: Vec<Vec<usize>>, sinks: Vec<Sink>) -> Routes {
        Routes { notify, sinks }
    }

    /// The webhooks `event` goes to, in order, leaving out `except` (the webhook whose
    /// failure the event announces).
    pub fn targets<'a>(
        &'a self,
        event: &'a Event,
        except: Option<usize>,
    ) -> impl Iterator<Item = usize> + 'a {
        let rule_hooks: &[usize] = match event.rule {
            Some(r) => self.notify.get(r).map_or(&[], Vec::as_slice),
            None => &[],
        };
        let all = event.rule.is_none();
        (0..self.sinks.len())
            .filter(move |w| all || rule_hooks.contains(w))
            .filter(move |&w| Some(w) != except)
            .filter(move |&w| {
                let s = &self.sinks[w];
                s.filter.enabled && (s.stateful || s.filter.takes(event))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventId;

    fn filter(min_level: Level) -> Filter {
        Filter {
            enabled: true,
            events: EventMask::DEFAULT,
            min_level,
        }
    }

    #[test]
    fn rule_events_follow_notify_and_filters_agent_events_go_everywhere_else() {
        let sinks = vec![
            Sink {
                filter: filter(Level::Info),
                stateful: false,
            },
            Sink {
                filter: filter(Level::Critical),
                stateful: false,
            },
            Sink {
                filter: filter(Level::Critical),
                stateful: true,
            },
            Sink {
                filter: Filter {
                    enabled: false,
                    ..filter(Level::Info)
                },
                stateful: false,
            },
        ];
        let routes = Routes::new(vec![vec![0, 1, 2, 3], vec![1]], sinks);
        let mut alarm = Event::agent(EventType::Alarm, EventId([0; 16]), 0, "");
        alarm.rule = Some(0);
        alarm.level = Level::Warn;
        // Webhook 1 wants CRITICAL only; 2 keeps state and sees everything; 3 is disabled.
        assert_eq!(routes.targets(&alarm, None).collect::<Vec<_>>(), [0, 2]);
        alarm.rule = Some(1);
        assert!(routes.targets(&alarm, None).next().is_none());
        let failed = Event::agent(EventType::DeliveryFailed, EventId([0; 16]), 0, "");
        assert_eq!(routes.targets(&failed, Some(0)).collect::<Vec<_>>(), [1, 2]);
    }
}
