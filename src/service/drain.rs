//! Handing held events out once their state is written, and stopping: the drain that
//! records the 2xx answers arriving meanwhile, and those of the previous config's sinks.

use super::*;

impl Agent {
    /// Hands the first `n` held events to their sinks.
    pub(super) fn release(&mut self, n: usize) {
        let n = n.min(self.held.len());
        for event in self.held.drain(..n) {
            offer(
                &self.routes,
                &self.sinks,
                &self.cfg,
                &self.failed_tx,
                &mut self.mutes,
                &event,
                None,
            );
        }
    }

    /// The firing-state write finished (or failed, logged): the events it recorded go
    /// out, and the next write starts if something changed meanwhile.
    pub fn on_written(&mut self) {
        let Some((_, n)) = self.writing.take() else {
            return;
        };
        self.release(n);
        self.flush_firing();
        if self.writing.is_none() {
            self.release(usize::MAX);
        }
    }

    /// Before a stop: waits for the write in flight, then hands over every held event.
    pub async fn settle(&mut self) {
        if let Some((h, _)) = self.writing.take() {
            let _ = h.await;
        }
        self.release(usize::MAX);
    }

    /// Closes the sinks and waits up to `limit` for queued deliveries to finish,
    /// recording the 2xx answers that arrive meanwhile, then writes the firing state one
    /// last time if they changed it.
    pub async fn shutdown(mut self, limit: Duration) {
        let mut tasks: Vec<_> = std::mem::take(&mut self.sinks)
            .into_iter()
            .flatten()
            .flat_map(Sink::into_tasks)
            .collect();
        let finished = {
            let Agent {
                acks, firing, cfg, ..
            } = &mut self;
            let drain = async {
                let mut done = std::pin::pin!(join_all(&mut tasks));
                loop {
                    tokio::select! {
                        () = &mut done => break,
                        Some(a) = acks.recv() => {
                            if let Some(wh) = cfg.webhooks.get(a.webhook) {
                                firing.on_ack(&a, &wh.name);
                            }
                        }
                    }
                }
            };
            tokio::time::timeout(limit, drain).await.is_ok()
        };
        if !finished {
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
        while let Ok(a) = self.acks.try_recv() {
            if let Some(wh) = self.cfg.webhooks.get(a.webhook) {
                self.firing.on_ack(&a, &wh.name);
            }
        }
        if let Some((h, _)) = self.writing.take() {
            let _ = h.await;
        }
        self.flush_firing();
        if let Some((h, _)) = self.writing.take() {
            let _ = h.await;
        }
    }

    /// A 2xx from a sink of the config before the last reload: recorded under its
    /// webhook's name, so a restart does not send it again.
    pub fn on_retired_ack(&mut self, ack: Option<Ack>) {
        match ack {
            Some(a) => {
                if let Some(wh) = self
                    .retired
                    .as_ref()
                    .and_then(|(_, c)| c.webhooks.get(a.webhook))
                {
                    let name = wh.name.clone();
                    self.firing.on_ack(&a, &name);
                }
            }
            None => self.retired = None,
        }
    }
}
