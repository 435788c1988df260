//! One webhook's HTTP/1.1 connection: hyper's connection API plus what it leaves to us —
//! name resolution, a bounded connect, TLS, keep-alive reuse.
//!
//! hyper's `handshake` gives a `SendRequest` and a `Connection` future; the connection is
//! spawned and lives while the server keeps it open. A request on a reused connection that
//! fails because the connection was already gone (closed by the server or a NAT while idle)
//! is sent again on a fresh one and does not count as an attempt. A timeout drops the
//! connection, so the next attempt reconnects.

use super::endpoint::Egress;
use super::url::{Scheme, Url};
use crate::limits::MAX_RESPONSE_BODY_LEN;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The parts of a response delivery cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The raw `Retry-After` value, if any.
    pub retry_after: Option<heapless::String<64>>,
}

/// Why an attempt got no response.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The host name did not resolve.
    Resolve(io::Error),
    /// No address could be connected to.
    Connect(io::Error),
    /// The TLS handshake failed (certificate, protocol).
    Tls(io::Error),
    /// The server's certificate failed on time: not yet valid, or expired. Under a wall
    /// clock that may be wrong this says nothing about the certificate.
    CertificateTime(io::Error),
    /// HTTP-level failure: reset, malformed response, closed mid-response.
    Http(hyper::Error),
    /// No complete response within the webhook's `timeout`.
    Timeout,
    /// The proxy would not open a tunnel.
    Proxy(String),
    /// The proxy answered 407: its credentials (`proxy_auth`) are missing or wrong. Final
    /// for the attempt: the same credentials would be refused again.
    ProxyAuth(String),
    /// The connection failed under the request (its error chain, e.g. a TLS alert).
    Connection(String),
}

/// `e` and its sources, joined by ": ".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Resolve(e) => write!(f, "cannot resolve host: {e}"),
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Tls(e) | SendError::CertificateTime(e) => {
                f.write_str("TLS handshake failed: ")?;
                #[cfg(feature = "tls")]
                return super::tls::write_handshake_error(f, e);
                #[cfg(not(feature = "tls"))]
                write!(f, "{e}")
            }
            SendError::Http(e) => write!(f, "HTTP error: {e}"),
            SendError::Timeout => f.write_str("timed out"),
            SendError::Proxy(m) => write!(f, "proxy: {m}"),
            SendError::ProxyAuth(m) => write!(f, "proxy authentication failed: {m}"),
            SendError::Connection(m) => write!(f, "connection failed: {m}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Resolve(e)
            | SendError::Connect(e)
            | SendError::Tls(e)
            | SendError::CertificateTime(e) => Some(e),
            SendError::Http(e) => Some(e),
            SendError::Timeout
            | SendError::Proxy(_)
            | SendError::ProxyAuth(_)
            | SendError::Connection(_) => None,
        }
    }
}

/// A plain or TLS stream.
enum Inner {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The connection's stream; it keeps its first I/O error (a TLS alert such as
/// "certificate required" shows up here), so a failed request can name its cause even
/// when hyper only reports that the connection went away.
struct Stream {
    inner: Inner,
    error: ErrorSlot,
}

type ErrorSlot = std::sync::Arc<std::sync::Mutex<Option<String>>>;

impl Stream {
    fn note<T>(&self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &r {
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert_with(|| error_chain(e));
            }
        }
        r
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s).poll_read(cx, buf),
        };
        this.note(r)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s).poll_write(cx, buf),
        };
        this.note(r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s).poll_flush(cx),
        };
        this.note(r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Largest proxy response head read, in bytes.
const MAX_PROXY_HEAD: usize = 8192;

/// Asks the proxy on `tcp` for a tunnel to `host:port` (RFC 9110 §9.3.6), with
/// `Proxy-Authorization` when `auth` is given (the header's value; never logged).
async fn tunnel(
    tcp: &mut TcpStream,
    host: &str,
    port: u16,
    auth: Option<&str>,
) -> Result<(), SendError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {}\r\n",
        super::USER_AGENT
    );
    if let Some(v) = auth {
        req.push_str("Proxy-Authorization: ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes())
        .await
        .map_err(SendError::Connect)?;
    // Read the response head one byte at a time: nothing after it may be consumed, the
    // tunnel's bytes belong to TLS or HTTP.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_PROXY_HEAD {
            return Err(SendError::Proxy("response head too long".into()));
        }
        let mut b = [0u8; 1];
        if tcp.read(&mut b).await.map_err(SendError::Connect)? == 0 {
            return Err(SendError::Proxy("closed the connection".into()));
        }
        head.push(b[0]);
    }
    match proxy_reply(&head) {
        Ok(()) => Ok(()),
        Err(ProxyRefusal { auth: true, line }) => {
            let given = if auth.is_some() {
                "the `proxy_auth` credentials were refused"
            } else {
                "the proxy wants credentials: set `proxy_auth`"
            };
            Err(SendError::ProxyAuth(format!(
                "CONNECT {authority}: {line}; {given}"
            )))
        }
        Err(ProxyRefusal { line, .. }) => Err(SendError::Proxy(format!(
            "refused CONNECT {authority}: {line}"
        ))),
    }
}

/// A proxy's refusal to open a tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProxyRefusal {
    /// The status is 407: the proxy wants (other) credentials.
    pub auth: bool,
    /// The first line of its reply, trimmed, to report.
    pub line: String,
}

/// What a proxy's reply head to CONNECT says (RFC 9110 §9.3.6): `Ok` when its status
/// line is `HTTP/1.x 2xx` (RFC 9112 §4: version, one space, three digits), else the
/// refusal to report. Pure, so it can be tested and fuzzed apart from the socket.
///
/// # Errors
/// A [`ProxyRefusal`] when it is not a 2xx status line.
pub(crate) fn proxy_reply(head: &[u8]) -> Result<(), ProxyRefusal> {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let mut parts = first.splitn(3, |&b| b == b' ');
    let (version, status) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let http1 =
        version.len() == 8 && version.starts_with(b"HTTP/1.") && version[7].is_ascii_digit();
    if http1 && status.len() == 3 && status[0] == b'2' && status.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(ProxyRefusal {
            auth: http1 && status == b"407",
            line: String::from_utf8_lossy(first).trim().to_string(),
        })
    }
}

/// TLS settings of a client: `None` for plain HTTP.
#[cfg(feature = "tls")]
pub type TlsConfig = Option<std::sync::Arc<rustls::ClientConfig>>;
/// TLS settings of a client (this build has no TLS).
#[cfg(not(feature = "tls"))]
pub type TlsConfig = Option<std::convert::Infallible>;

/// One endpoint's connection, reused between requests while the server keeps it open.
pub struct Client {
    url: Url,
    egress: Egress,
    #[cfg_attr(
        not(feature = "tls"),
        allow(dead_code, reason = "a build without TLS only has plain HTTP")
    )]
    tls: TlsConfig,
    conn: Option<SendRequest<Full<Bytes>>>,
    /// What the current connection's task failed with, if it did.
    conn_error: ErrorSlot,
    /// The current connection's task.
    conn_task: Option<tokio::task::JoinHandle<()>>,
    /// Connections opened so far (for status and tests).
    pub connects: u64,
}

impl Client {
    /// A client for `url`'s host and port; `tls` must be set for https.
    pub fn new(url: Url, tls: TlsConfig, egress: Egress) -> Client {
        Client {
            url,
            egress,
            tls,
            conn: None,
            conn_error: Default::default(),
            conn_task: None,
            connects: 0,
        }
    }

    /// Sends one request and reads the whole response (bounded), within `timeout`.
    /// `make` builds the request; it may be called twice when a kept-alive connection
    /// turns out to be dead.
    ///
    /// # Errors
    /// No response: resolve, connect, TLS or HTTP failure, or timeout.
    pub async fn send(
        &mut self,
        make: &(dyn Fn() -> Request<Full<Bytes>> + Sync),
        timeout: Duration,
    ) -> Result<Response, SendError> {
        match tokio::time::timeout(timeout, self.send_inner(make)).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(SendError::Timeout)
            }
        }
    }

    async fn send_inner(
        &mut self,
        make: &(dyn Fn() -> Request<Full<Bytes>> + Sync),
    ) -> Result<Response, SendError> {
        loop {
            let (mut sender, reused) = match self.conn.take() {
                Some(s) if !s.is_closed() => (s, true),
                _ => (self.connect().await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(self.http_error(e).await);
            }
            let resp = match sender.send_request(make()).await {
                Ok(r) => r,
                // The idle connection died before our request got an answer: not an attempt.
                Err(e)
                    if reused
                        && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) =>
                {
                    continue
                }
                Err(e) => return Err(self.http_error(e).await),
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| heapless::String::try_from(v).ok());
            // Read (and drop) the body so the connection can be reused; a huge body is
            // not read to its end and the connection is dropped instead.
            let mut body = resp.into_body();
            let mut seen = 0usize;
            let mut reusable = true;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        seen += f.data_ref().map_or(0, Bytes::len);
                        if seen > MAX_RESPONSE_BODY_LEN {
                            reusable = false;
                            break;
                        }
                    }
                    Err(_) => {
                        reusable = false;
                        break;
                    }
                }
            }
            if reusable {
                self.conn = Some(sender);
            }
            return Ok(Response {
                status,
                retry_after,
            });
        }
    }

    /// A request error, with the connection's own error when it has one (it may land a
    /// moment after the request saw the connection go).
    async fn http_error(&mut self, e: hyper::Error) -> SendError {
        if let Some(task) = self.conn_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(200), task).await;
        }
        match self.conn_error.lock().ok().and_then(|s| s.clone()) {
            Some(cause) => SendError::Connection(cause),
            None => SendError::Http(e),
        }
    }

    /// Opens a TCP connection to `addr`, bound to the source address and interface asked for.
    async fn dial(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(dev) = &self.egress.bind_interface {
            socket.bind_device(Some(dev.as_bytes()))?;
        }
        if let Some(ip) = self.egress.source_ip {
            if ip.is_ipv4() != addr.is_ipv4() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("source_ip {ip} cannot reach {addr}"),
                ));
            }
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(addr).await
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let host = self.url.host.as_str();
        let port = self.url.port;
        let proxy = self
            .egress
            .proxy
            .as_ref()
            .filter(|_| !self.egress.bypasses_proxy(host));
        let (dial_host, dial_port) = proxy.map_or((host, port), |p| (p.host.as_str(), p.port));
        let mut addrs: heapless::Vec<SocketAddr, 8> = heapless::Vec::new();
        if let Ok(ip) = dial_host.parse::<IpAddr>() {
            let _ = addrs.push(SocketAddr::new(ip, dial_port));
        } else {
            for a in tokio::net::lookup_host((dial_host, dial_port))
                .await
                .map_err(SendError::Resolve)?
            {
                if addrs.push(a).is_err() {
                    break;
                }
            }
        }
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for host");
        let mut tcp = None;
        for a in &addrs {
            match self.dial(*a).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut tcp = tcp.ok_or(SendError::Connect(last))?;
        let _ = tcp.set_nodelay(true);
        if proxy.is_some() {
            let auth = self.egress.proxy_auth.as_ref().map(|a| a.header_value());
            tunnel(&mut tcp, host, port, auth.as_deref()).await?;
        }
        self.connects += 1;
        let stream = match self.url.scheme {
            Scheme::Http => Inner::Plain(tcp),
            #[cfg(feature = "tls")]
            Scheme::Https => {
                let config = self.tls.clone().ok_or_else(|| {
                    SendError::Tls(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "https without TLS settings",
                    ))
                })?;
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| SendError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(super::tls::handshake_error)?;
                Inner::Tls(Box::new(tls))
            }
            #[cfg(not(feature = "tls"))]
            Scheme::Https => {
                return Err(SendError::Tls(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "built without TLS",
                )));
            }
        };
        let slot: ErrorSlot = Default::default();
        self.conn_error = slot.clone();
        let stream = Stream {
            inner: stream,
            error: slot.clone(),
        };
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        // The connection's own error (a TLS alert such as "certificate required" arrives
        // here, not at the request) is kept so a failed request can name its cause.
        self.conn_task = Some(tokio::spawn(async move {
            if let Err(e) = conn.await {
                if let Ok(mut s) = slot.lock() {
                    s.get_or_insert_with(|| error_chain(&e));
                }
            }
        }));
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::{proxy_reply, ProxyRefusal};

    /// Found by fuzzing (connect_reply): any line whose second word was three characters
    /// starting with `2` opened the tunnel (`HTTP/1".1 200`, `FOO 2xx`), and the status was
    /// looked for past the first line.
    #[test]
    fn a_connect_reply_is_a_tunnel_only_for_an_http_2xx_status_line() {
        for ok in [
            &b"HTTP/1.1 200 Connection established\r\n\r\n"[..],
            b"HTTP/1.0 200\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nVia: x\r\n\r\n",
        ] {
            assert_eq!(proxy_reply(ok), Ok(()), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"HTTP/1\".1 200 Connection established\r\n\r\n"[..],
            b"FOO 2xx bar\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1\r\n200 OK\r\n\r\n",
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
        ] {
            assert!(
                proxy_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            proxy_reply(b"HTTP/1.1 502 Bad Gateway\r\nX: y\r\n\r\n"),
            Err(ProxyRefusal {
                auth: false,
                line: "HTTP/1.1 502 Bad Gateway".into()
            })
        );
        assert_eq!(
            proxy_reply(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
            Err(ProxyRefusal {
                auth: true,
                line: "HTTP/1.1 407 Proxy Authentication Required".into()
            })
        );
        assert!(!proxy_reply(b"FOO 407 x\r\n\r\n").unwrap_err().auth);
    }
}
