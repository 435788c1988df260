//! Sending one request with the webhook's retry policy.
//!
//! Each attempt carries the same idempotency key. 2xx is success; connect errors,
//! timeouts, 408, 429 and 5xx except 501 are retried up to `retries` more times,
//! `retry_interval` apart plus 0-25 % jitter, honouring `Retry-After` up to
//! `retry_after_max`; other statuses are final. A certificate that fails on time while
//! the clock may be wrong holds the event (the outbox) or reports "clock not set"
//! (`tocsin test`) instead of spending attempts.

use super::client::Client;
use super::retry::{classify, parse_retry_after, RetryPolicy, Verdict};
use super::{Error, Head, SinkSpec};
use crate::clock::Clock;
use crate::util::random_u32;
use bytes::Bytes;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How one request's delivery ended.
#[derive(Debug)]
pub struct Delivery {
    /// The last status received, if any.
    pub status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// From the first attempt to the end.
    pub elapsed: Duration,
    /// Why it was not delivered; `None` when a 2xx arrived.
    pub error: Option<Error>,
}

impl Delivery {
    /// Whether a 2xx arrived.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }

    /// Whether a later try could succeed (see [`Error::retryable`]): such an event is
    /// spooled.
    pub fn retryable(&self) -> bool {
        self.error.as_ref().is_some_and(Error::retryable)
    }

    /// A delivery that failed before any attempt.
    pub fn failed(error: Error) -> Delivery {
        Delivery {
            status: None,
            attempts: 0,
            elapsed: Duration::ZERO,
            error: Some(error),
        }
    }
}

/// One request to send.
pub struct Outgoing<'a> {
    /// Its head (signed anew per attempt).
    pub head: &'a Head,
    /// Its body.
    pub body: Bytes,
    /// The idempotency key (`X-Tocsin-Event-Id`, `webhook-id`).
    pub id: &'a str,
    /// How the log names it (`alarm <id>`, `3 alerts (1 new or changed) to …`).
    pub what: &'a str,
    /// A first-attempt success is not logged (Alertmanager's steady re-sends).
    pub quiet: bool,
    /// At most this many attempts (below the policy); `tocsin test` makes one. With
    /// `u32::MAX` (the outbox), a certificate failing under a clock not yet set holds the
    /// request until the clock is set.
    pub max_attempts: u32,
    /// Told once, after the first failed attempt that will be retried: the outbox spools
    /// the event then, while the retries go on, so a power cut during them loses nothing.
    pub first_failure: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Runs `fut` unless `stop` is (or becomes) set; `None` when stopped. `fut` comes pinned
/// by the caller: taken by value, it would be kept twice in this future's state.
pub(super) async fn unless_stopped<T>(
    stop: &mut Option<watch::Receiver<bool>>,
    fut: Pin<&mut impl std::future::Future<Output = T>>,
) -> Option<T> {
    match stop {
        None => Some(fut.await),
        Some(rx) => {
            if *rx.borrow() {
                return None;
            }
            tokio::select! {
                v = fut => Some(v),
                _ = rx.wait_for(|s| *s) => None,
            }
        }
    }
}

/// Sends `out` with `spec`'s retry policy, logging each outcome. With `stop`, it returns
/// [`Error::Stopped`] as soon as the agent stops.
pub async fn send(
    client: &mut Client,
    spec: &SinkSpec,
    clock: &Clock,
    out: Outgoing<'_>,
    mut stop: Option<watch::Receiver<bool>>,
) -> Delivery {
    let ep = &spec.endpoint;
    let name = &spec.name;
    let (id, what) = (out.id, out.what);
    let mut first_failure = out.first_failure;
    let policy = RetryPolicy {
        retries: ep.retries,
        interval_ms: ep.retry_interval_ms,
        retry_after_max_ms: ep.retry_after_max_ms,
    };
    let attempts_allowed = (1 + policy.retries).min(out.max_attempts.max(1));
    let timeout = Duration::from_millis(ep.timeout_ms);
    let start = Instant::now();
    let mut last_status = None;
    let mut attempt = 0;
    let mut held = false;
    let end = |attempts: u32, status: Option<u16>, error: Option<Error>| Delivery {
        status,
        attempts,
        elapsed: start.elapsed(),
        error,
    };
    loop {
        attempt += 1;
        let t0 = Instant::now();
        let attempt_head = out.head.signed(ep, id, clock.now_ms() / 1000, &out.body);
        let make = || attempt_head.request(out.body.clone());
        let connects = client.connects;
        let result = {
            let sending = pin!(client.send(&make, timeout));
            unless_stopped(&mut stop, sending).await
        };
        let Some(result) = result else {
            return end(attempt - 1, last_status, Some(Error::Stopped));
        };
        let ms = t0.elapsed().as_millis();
        if client.connects != connects && crate::log::enabled(crate::log::Level::Debug) {
            crate::debug!(
                "webhook {name}: opened connection {} to {}:{}{}",
                client.connects,
                ep.url.host,
                ep.url.port,
                match &ep.egress.proxy {
                    Some(p) if !ep.egress.bypasses_proxy(&ep.url.host) =>
                        format!(" through the proxy {}", p.text),
                    _ => String::new(),
                }
            );
        }
        let (verdict, retry_after, error) = match result {
            Ok(r) => {
                last_status = Some(r.status);
                let ra = r
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, clock.now_ms()));
                (classify(r.status), ra, Error::Status(r.status))
            }
            // A certificate failing on time under a clock that may be wrong: hold the
            // event, without spending attempts, until the clock is set; `test` reports it.
            Err(e)
                if matches!(e, super::client::SendError::CertificateTime(_)) && clock.suspect() =>
            {
                let error = Error::ClockNotSet {
                    now_ms: clock.now_ms(),
                    cause: e,
                };
                if out.max_attempts != u32::MAX {
                    return end(attempt, last_status, Some(error));
                }
                if !held {
                    crate::error!("webhook {name}: {error}; holding {what} until the clock is set");
                    held = true;
                }
                attempt -= 1;
                let wait = pin!(tokio::time::sleep(Duration::from_millis(
                    policy.delay_ms(None, random_u32())
                )));
                if unless_stopped(&mut stop, wait).await.is_none() {
                    return end(attempt, last_status, Some(Error::Stopped));
                }
                continue;
            }
            // The proxy refused its credentials: another attempt with the same ones would
            // be refused too, and hammering a proxy with bad credentials can lock the
            // account. The attempt is final; the event waits in the spool for a fix.
            Err(e @ super::client::SendError::ProxyAuth(_)) => {
                let error = Error::Send(e);
                crate::error!("webhook {name}: {what}: {error}; not retried");
                return end(attempt, last_status, Some(error));
            }
            Err(e) => (Verdict::Retry, None, Error::Send(e)),
        };
        match verdict {
            Verdict::Delivered => {
                if !(out.quiet && attempt == 1) {
                    crate::info!(
                        "webhook {name}: delivered {what}: {error} in {ms} ms (attempt {attempt})"
                    );
                } else {
                    // A steady re-send (Alertmanager's): routine even for `info`.
                    crate::debug!(
                        "webhook {name}: delivered {what}: {error} in {ms} ms (attempt {attempt})"
                    );
                }
                return end(attempt, last_status, None);
            }
            Verdict::Final => {
                crate::error!("webhook {name}: {what} rejected: {error}; not retried");
                return end(attempt, last_status, Some(error));
            }
            Verdict::Retry if attempt < attempts_allowed => {
                if let Some(tell) = first_failure.take() {
                    let _ = tell.send(());
                }
                let delay = policy.delay_ms(retry_after, random_u32());
                crate::warn!(
                    "webhook {name}: {what} attempt {attempt}/{attempts_allowed} failed: {error}; retrying in {delay} ms"
                );
                let wait = pin!(tokio::time::sleep(Duration::from_millis(delay)));
                if unless_stopped(&mut stop, wait).await.is_none() {
                    return end(attempt, last_status, Some(Error::Stopped));
                }
            }
            Verdict::Retry => {
                crate::error!(
                    "webhook {name}: giving up on {what} after {attempt} attempts: {error}"
                );
                return end(attempt, last_status, Some(error));
            }
        }
    }
}
