//! `tcp.up`: whether a TCP connect to a local service succeeds within a timeout.
//!
//! The connect runs on a probe worker (see `pool`) with std's `connect_timeout` (a
//! non-blocking connect plus `poll`), so it takes at most the rule's `timeout` and the
//! sampling tick never waits for it: the result is the sample of the next tick after it
//! returns. A local service answers or refuses in microseconds; only a filtered address
//! or a listener whose accept queue is full costs the full timeout.

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
        // A closed port that stays ours: bound, never listening, so a test running beside
        // this one cannot be given it (a dropped listener's port could be, and answer).
        let bound = tokio::net::TcpSocket::new_v4().expect("socket");
        bound.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let closed = bound.local_addr().expect("addr");
        assert_eq!(probe(&closed, Duration::from_secs(1)), 0.0);
    }
}
