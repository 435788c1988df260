//! `tcp.up`: whether a TCP connect to a local service succeeds within a timeout.
//!
//! The connect runs on the sampling tick with std's `connect_timeout` (a non-blocking
//! connect plus `poll`), so the tick waits at most the rule's `timeout` per target. A local
//! service answers or refuses in microseconds; only a filtered or remote address costs the
//! full timeout, which is why `timeout` defaults to 1 s and is capped at load. (A
//! connect that spans ticks would never block, but would report a result one tick late and
//! keep a socket per target open; for services on the device itself the bound is enough.)

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// 1 when a connection to `target` is established within `timeout`, else 0. The
/// connection is closed at once.
pub fn probe(target: &SocketAddr, timeout: Duration) -> f64 {
    match TcpStream::connect_timeout(target, timeout) {
        Ok(s) => {
            let _ = s.shutdown(Shutdown::Both);
            1.0
        }
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_and_closed_ports() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        assert_eq!(probe(&addr, Duration::from_secs(1)), 1.0);
        drop(l);
        assert_eq!(probe(&addr, Duration::from_secs(1)), 0.0);
    }
}
