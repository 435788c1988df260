//! Security on the wire: a TLS matrix with certificates made here (rcgen), Standard
//! Webhooks signatures across retries, a CONNECT proxy written here, the source address,
//! and the "clock not set" hold under a faked clock (libfaketime).

use crate::common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// A one-webhook config; `extra` goes into the webhook table.
fn config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("t{}.toml", std::process::id() ^ rand_tag()));
    let text = format!(
        "[agent]\ndevice_id = \"gw\"\nhostname = \"h\"\nroot = \"{root}\"\nstate_dir = \"{root}/.state\"\n\n[[webhook]]\nname = \"w\"\nurl = \"{url}\"\nformat = \"cloudmonitor-json\"\nretries = 0\ntimeout = \"5s\"\n{extra}\n",
        root = dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn rand_tag() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    N.fetch_add(1, Ordering::SeqCst)
}

/// `tocsin test w -c cfg`: (success, stdout + stderr).
fn send_test(cfg: &Path) -> (bool, String) {
    let out = Command::new(bin())
        .args(["test", "w", "-c"])
        .arg(cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// ---- the TLS matrix --------------------------------------------------------------------

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    pub struct Ca {
        pub issuer: Issuer<'static, KeyPair>,
        pub pem: String,
    }

    pub fn ca(name: &str) -> Ca {
        ca_with_key(name, KeyPair::generate().unwrap())
    }

    /// A CA whose own key is `key` (P-256 for [`ca`]).
    pub fn ca_with_key(name: &str, key: KeyPair) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    pub struct Leaf {
        pub der: CertificateDer<'static>,
        pub key: KeyPair,
        pub pem: String,
    }

    /// A leaf for `names` (DNS names or IPs), valid between the given years, signed by `ca`
    /// (self-signed when `None`).
    pub fn leaf(ca: Option<&Ca>, names: &[&str], from: i32, to: i32) -> Leaf {
        cert(ca, names, from, to, IsCa::NoCa)
    }

    /// A CA certificate (basic constraints: CA) for `names`, signed by `ca`, which a
    /// misconfigured server presents as its own.
    pub fn ca_as_leaf(ca: &Ca, names: &[&str]) -> Leaf {
        cert(
            Some(ca),
            names,
            2020,
            2100,
            IsCa::Ca(BasicConstraints::Unconstrained),
        )
    }

    fn cert(ca: Option<&Ca>, names: &[&str], from: i32, to: i32, is_ca: IsCa) -> Leaf {
        cert_with_key(KeyPair::generate().unwrap(), ca, names, from, to, is_ca)
    }

    /// A leaf for `names` with `key` (any kind rcgen signs with), signed by `ca`.
    pub fn leaf_with_key(key: KeyPair, ca: &Ca, names: &[&str]) -> Leaf {
        cert_with_key(key, Some(ca), names, 2020, 2100, IsCa::NoCa)
    }

    fn cert_with_key(
        key: KeyPair,
        ca: Option<&Ca>,
        names: &[&str],
        from: i32,
        to: i32,
        is_ca: IsCa,
    ) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = is_ca;
        for n in names {
            p.subject_alt_names.push(match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            });
        }
        p.not_before = rcgen::date_time_ymd(from, 1, 1);
        p.not_after = rcgen::date_time_ymd(to, 1, 1);
        let cert = match ca {
            Some(ca) => p.signed_by(&key, &ca.issuer).unwrap(),
            None => p.self_signed(&key).unwrap(),
        };
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        }
    }

    pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A server presenting `leaf`; with `client_ca`, it requires a client certificate.
    pub fn server(leaf: &Leaf, client_ca: Option<&Ca>) -> Arc<rustls::ServerConfig> {
        server_with(leaf, client_ca, rustls::DEFAULT_VERSIONS, None)
    }

    /// [`server`], speaking only `versions` and, when given, only one key exchange group.
    pub fn server_with(
        leaf: &Leaf,
        client_ca: Option<&Ca>,
        versions: &[&'static rustls::SupportedProtocolVersion],
        group: Option<&'static dyn rustls::crypto::SupportedKxGroup>,
    ) -> Arc<rustls::ServerConfig> {
        let mut p = rustls::crypto::ring::default_provider();
        if let Some(g) = group {
            p.kx_groups = vec![g];
        }
        let b = rustls::ServerConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(versions)
            .unwrap();
        let b = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca_der(ca)).unwrap();
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .unwrap();
                b.with_client_cert_verifier(v)
            }
            None => b.with_no_client_auth(),
        };
        let key = PrivateKeyDer::try_from(leaf.key.serialize_der()).unwrap();
        Arc::new(b.with_single_cert(vec![leaf.der.clone()], key).unwrap())
    }

    fn ca_der(ca: &Ca) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap()
    }

    pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

#[cfg(feature = "tls")]
#[test]
fn tls_matrix_fails_closed_with_named_errors() {
    use tls::*;
    let dir = TempDir::new("tls-matrix");
    let good_ca = ca("tocsin test CA");
    let other_ca = ca("someone else's CA");
    let ca_file = write(dir.path(), "ca.pem", &good_ca.pem);
    let with_ca = format!("tls = {{ ca_file = \"{}\" }}", ca_file.display());

    // (case, certificate, host in the URL, extra config, expected: Ok, or Err(substring))
    type Case<'a> = (&'a str, Leaf, &'a str, String, Result<(), &'a str>);
    let cases: Vec<Case> = vec![
        (
            "valid, private CA via ca_file",
            leaf(Some(&good_ca), &["localhost"], 2020, 2100),
            "localhost",
            with_ca.clone(),
            Ok(()),
        ),
        (
            "IP SAN",
            leaf(Some(&good_ca), &["127.0.0.1"], 2020, 2100),
            "127.0.0.1",
            with_ca.clone(),
            Ok(()),
        ),
        (
            "expired",
            leaf(Some(&good_ca), &["localhost"], 2015, 2016),
            "localhost",
            with_ca.clone(),
            Err("xpired"),
        ),
        (
            "not yet valid",
            leaf(Some(&good_ca), &["localhost"], 2090, 2100),
            "localhost",
            with_ca.clone(),
            Err("ot valid yet"),
        ),
        (
            "wrong host",
            leaf(Some(&good_ca), &["other.example"], 2020, 2100),
            "localhost",
            with_ca.clone(),
            Err("not valid for name"),
        ),
        (
            "unknown CA",
            leaf(Some(&other_ca), &["localhost"], 2020, 2100),
            "localhost",
            with_ca.clone(),
            Err("UnknownIssuer"),
        ),
        (
            // webpki's chain error, named as webpki names it (not rustls's `Debug` of
            // its wrapper, which the router builds shorten to "Other").
            "a CA certificate as the server's",
            ca_as_leaf(&good_ca, &["localhost"]),
            "localhost",
            with_ca.clone(),
            Err("invalid peer certificate: CaUsedAsEndEntity"),
        ),
        (
            "self-signed",
            leaf(None, &["localhost"], 2020, 2100),
            "localhost",
            String::new(),
            Err("UnknownIssuer"),
        ),
        (
            "private CA without ca_file",
            leaf(Some(&good_ca), &["localhost"], 2020, 2100),
            "localhost",
            String::new(),
            Err("UnknownIssuer"),
        ),
    ];
    let mut report = Vec::new();
    for (name, cert, host, extra, want) in cases {
        let rcv = Receiver::start_tls(server(&cert, None));
        let cfg = config(
            dir.path(),
            &format!("https://{host}:{}/m", rcv.port),
            &extra,
        );
        let (ok, out) = send_test(&cfg);
        let pass = match want {
            Ok(()) => ok && rcv.received().len() == 1,
            Err(s) => {
                !ok && out.contains("TLS handshake failed")
                    && out.contains(s)
                    && rcv.received().is_empty()
            }
        };
        report.push(format!(
            "{} {name}: {}",
            if pass { "ok  " } else { "FAIL" },
            out.trim()
        ));
    }

    // mTLS: the server asks for a client certificate signed by the test CA.
    let server_cert = leaf(Some(&good_ca), &["localhost"], 2020, 2100);
    let client = leaf(Some(&good_ca), &["tocsin-client"], 2020, 2100);
    let cert_file = write(dir.path(), "client.pem", &client.pem);
    let key_file = write(dir.path(), "client.key", &client.key.serialize_pem());
    let rcv = Receiver::start_tls(server(&server_cert, Some(&good_ca)));
    let url = format!("https://localhost:{}/m", rcv.port);
    let with_client = format!(
        "tls = {{ ca_file = \"{}\", client_cert = \"{}\", client_key = \"{}\" }}",
        ca_file.display(),
        cert_file.display(),
        key_file.display()
    );
    let (ok, out) = send_test(&config(dir.path(), &url, &with_client));
    report.push(format!(
        "{} mTLS with a client certificate: {}",
        if ok { "ok  " } else { "FAIL" },
        out.trim()
    ));
    let (ok, out) = send_test(&config(dir.path(), &url, &with_ca));
    let refused = !ok && out.contains("connection failed") && out.contains("CertificateRequired");
    report.push(format!(
        "{} mTLS without one: {}",
        if refused { "ok  " } else { "FAIL" },
        out.trim()
    ));
    assert_eq!(
        rcv.received().len(),
        1,
        "only the client with a certificate got through"
    );

    // insecure_skip_verify accepts a self-signed certificate, with a loud warning.
    let rcv = Receiver::start_tls(server(&leaf(None, &["localhost"], 2020, 2100), None));
    let (ok, out) = send_test(&config(
        dir.path(),
        &format!("https://localhost:{}/m", rcv.port),
        "tls = { insecure_skip_verify = true }",
    ));
    let warned =
        ok && out.contains("insecure_skip_verify is set") && out.contains("NOT authenticated");
    report.push(format!(
        "{} insecure_skip_verify: {}",
        if warned { "ok  " } else { "FAIL" },
        out.trim()
    ));

    println!("{}", report.join("\n"));
    assert!(
        report.iter().all(|l| l.starts_with("ok")),
        "\n{}",
        report.join("\n")
    );
}

/// Every kind of server key and client key the agent accepts (ECDSA P-256 and P-384,
/// Ed25519, RSA; client keys as PKCS#8 and SEC1), over TLS 1.2 and 1.3 and every key
/// exchange group it offers, against a rustls server on ring that allows only that one.
/// P-256 is RustCrypto's on x86_64 and aarch64 and ring's elsewhere, so this is where the
/// two meet: a P-256 CA signs every chain, and one chain has a P-384 CA.
#[cfg(feature = "tls")]
#[test]
fn every_key_kind_protocol_version_and_key_exchange_group_completes_a_handshake() {
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    use rustls::version::{TLS12, TLS13};
    use tls::*;
    let dir = TempDir::new("tls-kinds");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    // (name, key PEM as PKCS#8, and as SEC1 for EC keys)
    let mut kinds: Vec<(&str, String, Option<String>)> = Vec::new();
    for (name, alg) in [
        ("P-256", &PKCS_ECDSA_P256_SHA256),
        ("P-384", &PKCS_ECDSA_P384_SHA384),
        ("Ed25519", &PKCS_ED25519),
    ] {
        let pem = KeyPair::generate_for(alg).unwrap().serialize_pem();
        let sec1 = (name != "Ed25519").then(|| {
            let p8 = write(dir.path(), &format!("{name}.p8.pem"), &pem);
            let out = dir.path().join(format!("{name}.sec1.pem"));
            let (p8, out_s) = (p8.display().to_string(), out.display().to_string());
            openssl(&["ec", "-in", &p8, "-out", &out_s]);
            std::fs::read_to_string(out).unwrap()
        });
        kinds.push((name, pem, sec1));
    }
    let rsa = dir.path().join("rsa.pem");
    let rsa_s = rsa.display().to_string();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &rsa_s,
    ]);
    kinds.push(("RSA", std::fs::read_to_string(&rsa).unwrap(), None));
    for (_, _, sec1) in &kinds {
        if let Some(s) = sec1 {
            assert!(s.contains("BEGIN EC PRIVATE KEY"), "{s}");
        }
    }

    let good_ca = ca("tocsin test CA");
    let ca_file = write(dir.path(), "ca.pem", &good_ca.pem);
    let with_ca = format!("tls = {{ ca_file = \"{}\" }}", ca_file.display());
    let versions: [(&str, &'static rustls::SupportedProtocolVersion); 2] =
        [("TLS 1.2", &TLS12), ("TLS 1.3", &TLS13)];
    let mut report = Vec::new();
    let mut run = |case: String, server: Arc<rustls::ServerConfig>, extra: &str| {
        let rcv = Receiver::start_tls(server);
        let cfg = config(
            dir.path(),
            &format!("https://localhost:{}/m", rcv.port),
            extra,
        );
        let (ok, out) = send_test(&cfg);
        let pass = ok && rcv.received().len() == 1;
        report.push(format!(
            "{} {case}: {}",
            if pass { "ok  " } else { "FAIL" },
            out.trim()
        ));
    };

    // The server's key and certificate, each version, each group.
    for (kind, pem, _) in &kinds {
        let key = KeyPair::from_pem(pem).unwrap();
        let cert = leaf_with_key(key, &good_ca, &["localhost"]);
        for (vname, v) in versions {
            for (gname, g) in [
                ("X25519", X25519),
                ("secp256r1", SECP256R1),
                ("secp384r1", SECP384R1),
            ] {
                run(
                    format!("{kind} server, {vname}, {gname}"),
                    server_with(&cert, None, &[v], Some(g)),
                    &with_ca,
                );
            }
        }
    }
    let ca384 = ca_with_key(
        "P-384 CA",
        KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
    );
    let ca384_file = write(dir.path(), "ca384.pem", &ca384.pem);
    run(
        "P-256 server under a P-384 CA".into(),
        server_with(
            &leaf(Some(&ca384), &["localhost"], 2020, 2100),
            None,
            rustls::DEFAULT_VERSIONS,
            None,
        ),
        &format!("tls = {{ ca_file = \"{}\" }}", ca384_file.display()),
    );

    // The client's key (mTLS), in each form, each version.
    let server_cert = leaf(Some(&good_ca), &["localhost"], 2020, 2100);
    for (kind, pem, sec1) in &kinds {
        let client = leaf_with_key(
            KeyPair::from_pem(pem).unwrap(),
            &good_ca,
            &["tocsin-client"],
        );
        let cert_file = write(dir.path(), &format!("client-{kind}.pem"), &client.pem);
        let forms = std::iter::once(("PKCS#8", pem)).chain(sec1.iter().map(|s| ("SEC1", s)));
        for (form, text) in forms {
            let key_file = write(dir.path(), &format!("client-{kind}-{form}.key"), text);
            let extra = format!(
                "tls = {{ ca_file = \"{}\", client_cert = \"{}\", client_key = \"{}\" }}",
                ca_file.display(),
                cert_file.display(),
                key_file.display()
            );
            for (vname, v) in versions {
                run(
                    format!("{kind} client key ({form}), {vname}"),
                    server_with(&server_cert, Some(&good_ca), &[v], None),
                    &extra,
                );
            }
        }
    }

    println!("{}", report.join("\n"));
    assert_eq!(report.len(), 4 * 2 * 3 + 1 + (2 + 2 + 1 + 1) * 2);
    assert!(
        report.iter().all(|l| l.starts_with("ok")),
        "\n{}",
        report.join("\n")
    );
}

// ---- Standard Webhooks ---------------------------------------------------------------------

#[test]
fn standard_webhooks_every_attempt_signed_anew_with_every_secret() {
    let dir = TempDir::new("signing");
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let rcv = Receiver::start();
    rcv.script([Reply::Status(503, "")]);
    // Two secrets while one is rotated: both sign.
    let (a, b) = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_c2Vjb25kIHNlY3JldA==",
    );
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhostname = \"h\"\ninterval = \"100ms\"\nroot = \"{}\"\nstate_dir = \"{}/.state\"\n\n[[rule]]\nname = \"m\"\nmetric = \"mem.used_percent\"\ncritical = \"> 95\"\nnotify = [\"w\"]\n\n[[webhook]]\nname = \"w\"\nurl = \"{}\"\nformat = \"cloudmonitor-json\"\nevents = [\"alarm\"]\nretry_interval = \"1s\"\nsigning = {{ scheme = \"standard-webhooks\", secret = \"{a} {b}\" }}\n",
            root.display(),
            root.display(),
            rcv.url("/s")
        ),
    )
    .unwrap();
    let agent = Agent::start(&cfg, dir.path());
    let r = rcv.wait_for(WAIT, "two attempts", |r| r.len() >= 2);
    let keys = [b64_decode(&a[6..]), b64_decode(&b[6..])];
    let id = r[0].header("x-tocsin-event-id").unwrap();
    let mut stamps = Vec::new();
    for x in &r[..2] {
        assert_eq!(
            x.header("webhook-id"),
            Some(id),
            "every attempt carries the event id"
        );
        let ts = x.header("webhook-timestamp").unwrap();
        stamps.push(ts.to_string());
        let sigs: Vec<&str> = x.header("webhook-signature").unwrap().split(' ').collect();
        assert_eq!(sigs.len(), 2, "one signature per secret");
        for (sig, key) in sigs.iter().zip(&keys) {
            let mut msg = format!("{id}.{ts}.").into_bytes();
            msg.extend_from_slice(&x.body);
            let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), &msg);
            assert_eq!(
                *sig,
                format!("v1,{}", base64(tag.as_ref())),
                "signature verifies"
            );
        }
    }
    assert_ne!(
        stamps[0], stamps[1],
        "the retry, a second later, is signed with its own timestamp"
    );
    drop(agent);
}

fn b64_decode(s: &str) -> Vec<u8> {
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut acc, mut bits, mut out) = (0u32, 0, Vec::new());
    for c in s.trim_end_matches('=').chars() {
        acc = (acc << 6) | A.find(c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

// ---- egress: CONNECT proxy, source address, interface --------------------------------------

/// A CONNECT proxy: records each request line, then tunnels (or refuses with 403).
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(refuse: bool) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let born = Instant::now();
            while !stop2.load(Ordering::Relaxed) && born.elapsed() < Duration::from_secs(60) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                let seen = seen2.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
                        head.push(b[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let line = text.lines().next().unwrap_or("").to_string();
                    seen.lock().unwrap().push(line.clone());
                    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let upstream = if refuse {
                        None
                    } else {
                        TcpStream::connect(&target).ok()
                    };
                    let Some(up) = upstream else {
                        let _ = c.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
                        return;
                    };
                    let _ = c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                    let (mut c, mut up) = (c, up);
                    let t = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut up2, &mut c2);
                        let _ = c2.shutdown(std::net::Shutdown::Both);
                    });
                    let _ = std::io::copy(&mut c, &mut up);
                    let _ = up.shutdown(std::net::Shutdown::Both);
                    let _ = t.join();
                });
            }
        });
        Proxy { port, seen, stop }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn delivery_through_a_connect_proxy() {
    let dir = TempDir::new("proxy");
    let proxy = Proxy::start(false);
    let via = format!("proxy = \"http://127.0.0.1:{}\"", proxy.port);

    // http through the tunnel
    let rcv = Receiver::start();
    let (ok, out) = send_test(&config(dir.path(), &rcv.url("/p"), &via));
    assert!(ok, "{out}");
    assert_eq!(
        proxy.seen(),
        [format!("CONNECT 127.0.0.1:{} HTTP/1.1", rcv.port)]
    );
    assert_eq!(rcv.received()[0].target, "/p");

    // no_proxy: straight to the receiver
    let (ok, out) = send_test(&config(
        dir.path(),
        &rcv.url("/direct"),
        &format!("{via}\nno_proxy = [\"127.0.0.1\"]"),
    ));
    assert!(ok, "{out}");
    assert_eq!(proxy.seen().len(), 1, "the proxy saw nothing more");

    // no_proxy as one comma-separated string, the host matched by a CIDR network.
    let (ok, out) = send_test(&config(
        dir.path(),
        &rcv.url("/cidr"),
        &format!("{via}\nno_proxy = \"localhost, .lan ,127.0.0.0/8\""),
    ));
    assert!(ok, "{out}");
    assert_eq!(proxy.seen().len(), 1, "127.0.0.0/8 holds 127.0.0.1: direct");
    // A network that does not hold it: through the proxy.
    let (ok, out) = send_test(&config(
        dir.path(),
        &rcv.url("/other"),
        &format!("{via}\nno_proxy = \"10.0.0.0/8, ::1/128\""),
    ));
    assert!(ok, "{out}");
    assert_eq!(proxy.seen().len(), 2, "10.0.0.0/8 does not hold 127.0.0.1");

    // https through the tunnel: TLS end to end
    #[cfg(feature = "tls")]
    {
        use tls::*;
        let test_ca = ca("tocsin test CA");
        let ca_file = write(dir.path(), "ca.pem", &test_ca.pem);
        let rcv = Receiver::start_tls(server(
            &leaf(Some(&test_ca), &["localhost"], 2020, 2100),
            None,
        ));
        let extra = format!("{via}\ntls = {{ ca_file = \"{}\" }}", ca_file.display());
        let (ok, out) = send_test(&config(
            dir.path(),
            &format!("https://localhost:{}/tls", rcv.port),
            &extra,
        ));
        assert!(ok, "{out}");
        assert_eq!(
            proxy.seen().last().unwrap(),
            &format!("CONNECT localhost:{} HTTP/1.1", rcv.port)
        );
        assert_eq!(rcv.received()[0].target, "/tls");
    }

    // A proxy that refuses: a named error, nothing delivered.
    let refusing = Proxy::start(true);
    let rcv = Receiver::start();
    let (ok, out) = send_test(&config(
        dir.path(),
        &rcv.url("/no"),
        &format!("proxy = \"http://127.0.0.1:{}\"", refusing.port),
    ));
    assert!(
        !ok && out.contains("proxy: refused CONNECT") && out.contains("403"),
        "{out}"
    );
    assert!(rcv.received().is_empty());
}

#[test]
fn source_ip_and_interface_choose_how_requests_leave() {
    let dir = TempDir::new("egress");
    let rcv = Receiver::start();
    let (ok, out) = send_test(&config(
        dir.path(),
        &rcv.url("/s"),
        "source_ip = \"127.0.0.2\"",
    ));
    assert!(ok, "{out}");
    assert_eq!(
        rcv.peer(0).ip().to_string(),
        "127.0.0.2",
        "the receiver sees the chosen source address"
    );

    // SO_BINDTODEVICE needs CAP_NET_RAW: the test runs as root in CI.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return skip("bind_interface needs root (CAP_NET_RAW); the test runs as root in CI");
    }
    let (ok, out) = send_test(&config(
        dir.path(),
        &rcv.url("/lo"),
        "bind_interface = \"lo\"",
    ));
    assert!(ok, "{out}");
    let (ok, out) = send_test(&config(
        dir.path(),
        &rcv.url("/none"),
        "bind_interface = \"nosuchif0\"",
    ));
    assert!(!ok && out.contains("cannot connect"), "{out}");
}

// ---- "clock not set" -----------------------------------------------------------------------

#[cfg(feature = "tls")]
#[test]
fn clock_not_set_keeps_the_event_and_delivers_it_once_the_clock_is_right() {
    use tls::*;
    let dir = TempDir::new("clock");
    // The agent boots with its clock in 2001, as a router without RTC might.
    let Some(clock) = FakeClock::new(dir.path(), "2001-01-01 00:00:00") else {
        return;
    };
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let test_ca = ca("tocsin test CA");
    let ca_file = write(dir.path(), "ca.pem", &test_ca.pem);
    let rcv = Receiver::start_tls(server(
        &leaf(Some(&test_ca), &["localhost"], 2025, 2100),
        None,
    ));
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhostname = \"h\"\ninterval = \"100ms\"\nroot = \"{}\"\nstate_dir = \"{}/.state\"\n\n[[rule]]\nname = \"m\"\nmetric = \"mem.used_percent\"\ncritical = \"> 95\"\nnotify = [\"w\"]\n\n[[webhook]]\nname = \"w\"\nurl = \"https://localhost:{}/c\"\nformat = \"cloudmonitor-json\"\nevents = [\"alarm\"]\nretries = 0\nretry_interval = \"200ms\"\ntls = {{ ca_file = \"{}\" }}\n",
            root.display(),
            root.display(),
            rcv.port,
            ca_file.display()
        ),
    )
    .unwrap();
    // Stopped on drop, so a failing assertion never leaves an agent running.
    let mut agent = Agent::start_with_clock(&cfg, dir.path(), &clock);
    let t0 = Instant::now();
    while !agent.log().contains("clock not set") && t0.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let held = rcv.received().is_empty();
    // NTP sets the clock.
    clock.set_now();
    let delivered = rcv.wait_for(WAIT, "the held alarm", |r| !r.is_empty());
    agent.stop();
    let log = agent.log();
    assert!(
        log.contains("clock not set") && log.contains("holding alarm"),
        "{log}"
    );
    assert!(held, "nothing is delivered while the clock is wrong");
    assert!(
        !log.contains("giving up"),
        "the event was held, not dropped: {log}"
    );
    assert_eq!(delivered[0].json()["alertState"], "ALERT");
    assert!(log.contains("delivered alarm"), "{log}");
}

/// The "clock not set" decision, in process with an injected clock: a certificate valid
/// only from 2030 fails on time. Under a wall clock of 2001 that is the clock's fault: a
/// one-shot send (`tocsin test`) says "clock not set", the outbox's send holds the event
/// without spending attempts. Once the clock reads a plausible, synchronised time the
/// same failure is a certificate error, retried and given up as usual.
#[cfg(feature = "tls")]
#[test]
fn clock_not_set_is_decided_by_the_injected_clock() {
    use tls::*;
    use tocsin::clock::Clock;
    use tocsin::deliver::client::{Client, SendError};
    use tocsin::deliver::send::{send, Delivery, Outgoing};
    use tocsin::deliver::Error;
    use tocsin::event::{Event, EventId, EventType};
    const Y2001: u64 = 978_307_200_000;
    const Y2026: u64 = 1_767_225_600_000;
    let dir = TempDir::new("clock-injected");
    let test_ca = ca("tocsin test CA");
    let ca_file = write(dir.path(), "ca.pem", &test_ca.pem);
    let rcv = Receiver::start_tls(server(
        &leaf(Some(&test_ca), &["localhost"], 2030, 2100),
        None,
    ));
    let cfg = tocsin::config::parse(
        &format!(
            "[agent]\nhostname = \"h\"\n\n[[webhook]]\nname = \"w\"\nurl = \"https://localhost:{}/c\"\nformat = \"cloudmonitor-json\"\nretries = 1\nretry_interval = \"100ms\"\ntls = {{ ca_file = \"{}\" }}\n",
            rcv.port,
            ca_file.display()
        ),
        "t.toml",
    )
    .unwrap();
    let spec = cfg.sink(0);
    let tls_config = tocsin::deliver::tls_for(&spec).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // One delivery of a test event under `clock`; with `then`, the clock moves there
    // after 600 ms (NTP sets it while the event is held).
    let deliver = |clock: Clock, max_attempts: u32, then: Option<u64>| -> Delivery {
        rt.block_on(async {
            let now = clock.now_ms();
            let event = Event::agent(EventType::Test, EventId::generate(now), now, "");
            let mut buf = vec![0u8; 64 * 1024];
            let prepared = spec.prepare(&event, now, &mut buf).unwrap();
            #[allow(clippy::clone_on_copy, reason = "Copy only in a build without TLS")]
            let mut client = Client::new(
                spec.endpoint.url.clone(),
                tls_config.clone(),
                spec.endpoint.egress.clone(),
            );
            let id = event.id.to_text();
            let out = Outgoing {
                head: &prepared.head,
                body: prepared.body.clone(),
                id: &id,
                what: "test",
                quiet: false,
                max_attempts,
                first_failure: None,
            };
            let setter = clock.clone();
            let sending = send(&mut client, &spec, &clock, out, None);
            let set = async move {
                if let Some(at) = then {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    setter.set(at, 600);
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                d = sending => d,
                _ = set => unreachable!(),
            }
        })
    };
    let cert_on_time =
        |e: &Option<Error>| matches!(e, Some(Error::Send(SendError::CertificateTime(_))));

    let d = deliver(Clock::fake(Y2001), 1, None);
    assert!(
        matches!(&d.error, Some(Error::ClockNotSet { .. })),
        "{:?}",
        d.error
    );
    assert_eq!(d.attempts, 1);
    assert!(d
        .error
        .unwrap()
        .to_string()
        .starts_with("clock not set (now 2001-01-01T00:00:00Z"));

    let d = deliver(Clock::fake(Y2026), 1, None);
    assert!(cert_on_time(&d.error), "{:?}", d.error);

    // An unsynchronised kernel makes even a 2026 clock suspect.
    let unsynced = Clock::fake(Y2026);
    unsynced.set_unsynchronised(true);
    let d = deliver(unsynced, 1, None);
    assert!(
        matches!(&d.error, Some(Error::ClockNotSet { .. })),
        "{:?}",
        d.error
    );

    // The outbox's way: held while the clock says 2001 (no attempt spent, however many
    // handshakes fail), then two attempts (retries = 1) once it says 2026.
    let t0 = Instant::now();
    let d = deliver(Clock::fake(Y2001), u32::MAX, Some(Y2026));
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "held until the clock was set"
    );
    assert!(cert_on_time(&d.error), "{:?}", d.error);
    assert_eq!(d.attempts, 2, "held tries are not attempts");
    assert!(rcv.received().is_empty());
}

#[test]
fn secrets_come_from_systemd_credentials_and_never_show() {
    let dir = TempDir::new("creds");
    let creds = dir.path().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("ops.token"), "cr3dential-t0ken\n").unwrap();
    let rcv = Receiver::start();
    let cfg = config(
        dir.path(),
        &rcv.url("/c"),
        "auth = { type = \"bearer\", token_file = \"ops.token\" }",
    );
    // A relative *_file is looked up in $CREDENTIALS_DIRECTORY (systemd's LoadCredential=),
    // so a DynamicUser service reads a root-owned 0600 secret.
    let out = Command::new(bin())
        .args(["test", "w", "-c"])
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rcv.received()[0].header("authorization"),
        Some("Bearer cr3dential-t0ken")
    );
    let rendered = Command::new(bin())
        .args(["render", "w", "-c"])
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    let all = [out.stdout, out.stderr, rendered.stdout, rendered.stderr].concat();
    assert!(
        !String::from_utf8_lossy(&all).contains("cr3dential"),
        "the secret never shows"
    );
    // Without the directory, check names the file it could not read.
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&cfg)
        .env_remove("CREDENTIALS_DIRECTORY")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read `ops.token`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
