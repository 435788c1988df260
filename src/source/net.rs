//! Network interfaces: counters from `/proc/net/dev`, link state from
//! `/sys/class/net/IFACE/{operstate,carrier}`, and the per-interface state that turns
//! counters into rates.

use crate::limits::MAX_IFACES;
use crate::metric::DimValue;

/// The counters of one interface that tocsin turns into rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Received bytes.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Dropped received packets.
    pub rx_drops: u64,
    /// Transmitted bytes.
    pub tx_bytes: u64,
    /// Dropped transmitted packets.
    pub tx_drops: u64,
}

/// Calls `f(iface, counters)` for each interface line of `/proc/net/dev`:
///
/// ```text
/// Inter-|   Receive                                                |  Transmit
///  face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
///   eth0: 1234 12 0 0 0 0 0 0 5678 34 0 0 0 0 0 0
/// ```
///
/// Lines without a `:`, with fewer than 16 counters, with a non-number among the first
/// 16, or with a name that does not fit a [`DimValue`] are skipped. (Old kernels print no
/// space after the colon, so the name is split at the colon, not at whitespace.)
pub fn parse_net_dev(text: &[u8], mut f: impl FnMut(&str, NetCounters)) {
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.len() > crate::limits::MAX_DIM_VALUE_LEN {
            continue;
        }
        let mut v = [0u64; 16];
        let mut n = 0;
        for (slot, field) in v.iter_mut().zip(super::ascii::tokens(&line[colon + 1..])) {
            match super::ascii::parse_u64(field) {
                Some(x) => *slot = x,
                None => break,
            }
            n += 1;
        }
        if n < 16 {
            continue;
        }
        f(
            name,
            NetCounters {
                rx_bytes: v[0],
                rx_errors: v[2],
                rx_drops: v[3],
                tx_bytes: v[8],
                tx_drops: v[11],
            },
        );
    }
}

/// Link state from the contents of `operstate` and, when it is `unknown` (many PPP, tun
/// and some Wi-Fi drivers never set it), of `carrier`. `carrier` cannot be read while the
/// interface is administratively down (EINVAL): pass `None`, which counts as down.
/// `dormant`, `lowerlayerdown`, `notpresent`, `testing` and `down` are all down.
pub fn link_up(operstate: &[u8], carrier: Option<&[u8]>) -> bool {
    match operstate.trim_ascii() {
        b"up" => true,
        b"unknown" => carrier.is_some_and(|c| c.trim_ascii() == b"1"),
        _ => false,
    }
}

/// Rates of one interface between two samples, per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetRates {
    /// Received bits per second.
    pub rx_bps: f64,
    /// Transmitted bits per second.
    pub tx_bps: f64,
    /// Receive errors per second.
    pub rx_errors_per_s: f64,
    /// Receive plus transmit drops per second.
    pub drops_per_s: f64,
}

/// The increase of a counter from `prev` to `now`.
///
/// A counter that went backwards either wrapped (the 32-bit `unsigned long` counters of
/// 32-bit ARM and MIPS kernels) or was reset (the interface was re-created, the driver
/// reloaded). It is taken as a wrap when `prev` fits 32 bits and the increase modulo 2³²
/// is below 2³¹ — 2 GiB in one interval, more than a gigabit link moves in 15 s, while a
/// reset of a busy counter to near zero would look like an increase of almost 4 GiB.
/// A reset has no increase to report (None).
pub fn counter_delta(prev: u64, now: u64) -> Option<u64> {
    if now >= prev {
        return Some(now - prev);
    }
    let span = 1u64 << 32;
    if prev >= span || now >= span {
        return None;
    }
    let wrapped = now + span - prev;
    (wrapped < 1 << 31).then_some(wrapped)
}

impl NetCounters {
    fn rates(&self, prev: &NetCounters, seconds: f64) -> Option<NetRates> {
        let rx = counter_delta(prev.rx_bytes, self.rx_bytes)?;
        let tx = counter_delta(prev.tx_bytes, self.tx_bytes)?;
        let err = counter_delta(prev.rx_errors, self.rx_errors)?;
        let rxd = counter_delta(prev.rx_drops, self.rx_drops)?;
        let txd = counter_delta(prev.tx_drops, self.tx_drops)?;
        Some(NetRates {
            rx_bps: rx as f64 * 8.0 / seconds,
            tx_bps: tx as f64 * 8.0 / seconds,
            rx_errors_per_s: err as f64 / seconds,
            drops_per_s: (rxd + txd) as f64 / seconds,
        })
    }
}

/// What one interface looked like at the previous sample.
#[derive(Clone, Debug)]
struct Iface {
    name: DimValue,
    counters: NetCounters,
    at_ms: u64,
    /// Present in the current cycle.
    seen: bool,
    /// Was present once, is not now (a PPP link that went away).
    gone: bool,
}

/// The previous counters of every interface seen, in a fixed-size table
/// ([`MAX_IFACES`]).
///
/// An interface that disappears keeps its slot, marked gone, so that `net.up` can report
/// 0 for it (OpenWrt's `pppoe-wan` vanishes when the PPP session drops); when it comes
/// back its counters start afresh, so no bogus rate spans the gap. When the table is full,
/// a new interface takes the slot of a gone one, or is not tracked.
#[derive(Clone, Debug, Default)]
pub struct NetState {
    ifaces: heapless::Vec<Iface, MAX_IFACES>,
}

/// What [`NetState::update`] reports for one interface.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// First sight (or back after being gone, or counters reset): no rates yet.
    First,
    /// Rates since the previous sample.
    Rates(NetRates),
    /// The table is full: this interface is not tracked.
    Untracked,
}

impl NetState {
    /// Marks every interface unseen; call before the cycle's [`NetState::update`]s.
    pub fn begin(&mut self) {
        for i in self.ifaces.iter_mut() {
            i.seen = false;
        }
    }

    /// Stores `counters` of `name` sampled at `now_ms` (monotonic) and returns the rates
    /// since its previous sample. No rates when no time has passed or a counter was reset.
    pub fn update(&mut self, name: &str, counters: NetCounters, now_ms: u64) -> Update {
        let pos = match self.ifaces.iter().position(|i| i.name == name) {
            Some(p) => p,
            None => {
                let Ok(dim) = DimValue::try_from(name) else {
                    return Update::Untracked;
                };
                let fresh = Iface {
                    name: dim,
                    counters,
                    at_ms: now_ms,
                    seen: true,
                    gone: false,
                };
                if self.ifaces.push(fresh.clone()).is_err() {
                    match self.ifaces.iter().position(|i| i.gone) {
                        Some(p) => self.ifaces[p] = fresh,
                        None => return Update::Untracked,
                    }
                }
                return Update::First;
            }
        };
        let iface = &mut self.ifaces[pos];
        let was_gone = std::mem::replace(&mut iface.gone, false);
        iface.seen = true;
        let prev = std::mem::replace(&mut iface.counters, counters);
        let prev_ms = std::mem::replace(&mut iface.at_ms, now_ms);
        if was_gone || now_ms <= prev_ms {
            return Update::First;
        }
        let seconds = (now_ms - prev_ms) as f64 / 1000.0;
        counters
            .rates(&prev, seconds)
            .map_or(Update::First, Update::Rates)
    }

    /// Ends the cycle: interfaces not seen are marked gone. Calls `f` for every gone one.
    pub fn end(&mut self, mut f: impl FnMut(&DimValue)) {
        for i in self.ifaces.iter_mut() {
            if !i.seen {
                i.gone = true;
                f(&i.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     789    0    0    0     0          0         0   123456     789    0    0    0     0       0          0
  eth0:1000 10 1 2 0 0 0 0 2000 20 0 3 0 0 0 0
pppoe-wan: 5 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0
 short: 1 2 3
  bad: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16
";

    fn parse(text: &str) -> Vec<(String, NetCounters)> {
        let mut out = Vec::new();
        parse_net_dev(text.as_bytes(), |n, c| out.push((n.to_string(), c)));
        out
    }

    #[test]
    fn parses_proc_net_dev() {
        let got = parse(DEV);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "pppoe-wan"]);
        assert_eq!(
            got[1].1,
            NetCounters {
                rx_bytes: 1000,
                rx_errors: 1,
                rx_drops: 2,
                tx_bytes: 2000,
                tx_drops: 3
            }
        );
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(parse("").is_empty());
        assert!(parse(":\n: 1 2\n\u{1}").is_empty());
        assert!(
            parse_net_dev_bytes(b"\xff\xfe: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16").is_empty()
        );
    }

    fn parse_net_dev_bytes(b: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        parse_net_dev(b, |n, _| out.push(n.to_string()));
        out
    }

    #[test]
    fn link_state() {
        assert!(link_up(b"up\n", None));
        assert!(!link_up(b"down\n", Some(b"1\n")));
        assert!(!link_up(b"dormant\n", Some(b"1\n")));
        assert!(!link_up(b"lowerlayerdown\n", None));
        assert!(link_up(b"unknown\n", Some(b"1\n")));
        assert!(!link_up(b"unknown\n", Some(b"0\n")));
        assert!(!link_up(b"unknown\n", None));
        assert!(!link_up(b"", None));
    }

    #[test]
    fn deltas_and_wraps() {
        assert_eq!(counter_delta(10, 15), Some(5));
        assert_eq!(counter_delta(u64::from(u32::MAX) - 9, 5), Some(15));
        // A 64-bit counter going backwards is a reset, not a wrap.
        assert_eq!(counter_delta(1 << 40, 5), None);
        // So is a small 32-bit one dropping to near zero (the wrap would be ~4 GiB).
        assert_eq!(counter_delta(1_250_000, 5), None);
        assert_eq!(counter_delta(3 << 30, 1 << 20), Some((1 << 30) + (1 << 20)));
    }

    fn c(rx: u64, tx: u64) -> NetCounters {
        NetCounters {
            rx_bytes: rx,
            tx_bytes: tx,
            ..NetCounters::default()
        }
    }

    #[test]
    fn rates_over_elapsed_time_and_disappearance() {
        let mut st = NetState::default();
        st.begin();
        assert_eq!(st.update("eth0", c(0, 0), 1000), Update::First);
        st.end(|_| panic!("nothing gone"));
        st.begin();
        let Update::Rates(r) = st.update("eth0", c(1000, 500), 3000) else {
            panic!("rates")
        };
        assert_eq!((r.rx_bps, r.tx_bps), (4000.0, 2000.0));
        // Same instant again: no rate.
        st.begin();
        assert_eq!(st.update("eth0", c(2000, 500), 3000), Update::First);
        // Gone for a cycle, then back: fresh start.
        st.begin();
        let mut gone = Vec::new();
        st.end(|n| gone.push(n.to_string()));
        assert_eq!(gone, ["eth0"]);
        st.begin();
        assert_eq!(st.update("eth0", c(9, 9), 9000), Update::First);
    }

    #[test]
    fn full_table_reuses_gone_slots() {
        let mut st = NetState::default();
        st.begin();
        for i in 0..MAX_IFACES {
            assert_eq!(st.update(&format!("if{i}"), c(0, 0), 0), Update::First);
        }
        assert_eq!(st.update("extra", c(0, 0), 0), Update::Untracked);
        st.end(|_| {});
        st.begin();
        for i in 1..MAX_IFACES {
            st.update(&format!("if{i}"), c(0, 0), 1000);
        }
        st.end(|_| {});
        st.begin();
        assert_eq!(st.update("extra", c(0, 0), 2000), Update::First);
    }
}
