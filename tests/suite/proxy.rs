//! Proxy authentication against a real Squid (Debian's `squid`, installed by tests/run.sh):
//! a CONNECT proxy on 127.0.0.1 that requires Basic credentials (`basic_ncsa_auth` over a
//! password file made here). Without `proxy_auth` it refuses (407), with it it tunnels
//! (plain HTTP and HTTPS end to end), and a wrong password costs exactly one attempt: the
//! event is spooled, not retried against the proxy.

use crate::common::am::free_port;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SQUID: &str = "/usr/sbin/squid";
const NCSA: &str = "/usr/lib/squid/basic_ncsa_auth";
const USER: &str = "alice";
const PASSWORD: &str = "s3cret pw";

/// A Squid of its own: config, password file, logs and pid in `dir`, stopped on drop.
struct Squid {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Squid {
    /// `None` (after a skip) when Squid or openssl is missing.
    fn start(dir: &Path) -> Option<Squid> {
        if !Path::new(SQUID).exists() || !Path::new(NCSA).exists() {
            skip("Squid is not installed (apt-get install squid)");
            return None;
        }
        let hash = Command::new("openssl")
            .args(["passwd", "-apr1", PASSWORD])
            .output();
        let hash = match hash {
            Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
            _ => {
                skip("openssl is not installed (apt-get install openssl)");
                return None;
            }
        };
        let dir = dir.join("squid");
        std::fs::create_dir_all(&dir).unwrap();
        // Squid started as root runs as `cache_effective_user`, which must write its logs.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let passwd = dir.join("passwd");
        std::fs::write(&passwd, format!("{USER}:{}", hash.trim())).unwrap();
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {d}/squid.pid\n\
             cache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\n\
             coredump_dir {d}\n\
             cache deny all\n\
             cache_mem 1 MB\n\
             netdb_filename none\n\
             pinger_enable off\n\
             shutdown_lifetime 0 seconds\n\
             {user}\
             auth_param basic program {NCSA} {d}/passwd\n\
             auth_param basic realm tocsin-test\n\
             auth_param basic children 1 startup=1 idle=1\n\
             auth_param basic credentialsttl 1 second\n\
             acl authed proxy_auth REQUIRED\n\
             http_access allow authed\n\
             http_access deny all\n",
            user = if root {
                "cache_effective_user proxy\n"
            } else {
                ""
            },
        );
        let conf_path = dir.join("squid.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // -N: in the foreground, no daemon, so the test owns the process.
        let mut child = Command::new(SQUID)
            .arg("-N")
            .arg("-f")
            .arg(&conf_path)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "squid exited ({status}): {}\n{}",
                    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default(),
                    std::fs::read_to_string(dir.join("cache.log")).unwrap_or_default()
                );
            }
            let log = std::fs::read_to_string(dir.join("cache.log")).unwrap_or_default();
            if log.contains("Accepting HTTP Socket connections")
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "squid did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Squid { child, port, dir })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Squid's access log: one line per request it answered (written when answered).
    fn access(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Whether a line of the access log satisfies `pred` within 10 s. Squid writes a
    /// CONNECT's line when the tunnel ends, which can be a moment after the client exits.
    fn logged(&self, pred: impl Fn(&str) -> bool) -> bool {
        let t0 = Instant::now();
        loop {
            if self.access().iter().any(|l| pred(l)) {
                return true;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The access-log lines of CONNECTs refused with 407, once at least one is logged.
    fn refused(&self) -> usize {
        self.logged(|l| l.contains("/407 ") && l.contains(" CONNECT "));
        self.access()
            .iter()
            .filter(|l| l.contains("/407 ") && l.contains(" CONNECT "))
            .count()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        unsafe_kill(self.child.id(), 15);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-webhook config for `tocsin test`/`render`; `extra` goes into the webhook table.
fn config(dir: &Path, name: &str, url: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[agent]\ndevice_id = \"gw\"\nhostname = \"h\"\nroot = \"{root}\"\nstate_dir = \"{root}/.state\"\n\n[[webhook]]\nname = \"w\"\nurl = \"{url}\"\nformat = \"cloudmonitor-json\"\nretries = 0\ntimeout = \"5s\"\n{extra}\n",
            root = dir.display()
        ),
    )
    .unwrap();
    path
}

/// `tocsin VERB w -c cfg`: (success, stdout + stderr).
fn tocsin(verb: &str, cfg: &Path) -> (bool, String) {
    let out = Command::new(bin())
        .args([verb, "w", "-c"])
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

#[test]
fn squid_refuses_without_proxy_auth_and_tunnels_with_it() {
    let dir = TempDir::new("squid-auth");
    let Some(squid) = Squid::start(dir.path()) else {
        return;
    };
    let rcv = Receiver::start();
    let via = format!("proxy = \"{}\"", squid.url());

    // No credentials: Squid answers 407, and nothing reaches the receiver.
    let (ok, out) = tocsin(
        "test",
        &config(dir.path(), "none.toml", &rcv.url("/p"), &via),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("proxy authentication failed"), "{out}");
    assert!(out.contains("set `proxy_auth`"), "{out}");
    assert_eq!(squid.refused(), 1, "{:?}", squid.access());
    assert!(rcv.received().is_empty());

    // With them (the password from a file, as a secret should be): tunnelled.
    let pw = dir.path().join("proxy-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let auth = format!(
        "{via}\nproxy_auth = {{ username = \"{USER}\", password_file = \"{}\" }}",
        pw.display()
    );
    let cfg = config(dir.path(), "auth.toml", &rcv.url("/p"), &auth);
    let (ok, out) = tocsin("test", &cfg);
    assert!(ok, "{out}\n{:?}", squid.access());
    assert!(!out.contains(PASSWORD), "{out}");
    let got = rcv.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].target, "/p");
    assert_eq!(
        got[0].header("proxy-authorization"),
        None,
        "the credentials are for the proxy, not the receiver"
    );
    let tunnel = format!("CONNECT 127.0.0.1:{} {USER} ", rcv.port);
    assert!(
        squid.logged(|l| l.contains(&tunnel)),
        "{:?}",
        squid.access()
    );

    // `render` says the proxy is used with credentials and shows none of them.
    let (ok, out) = tocsin("render", &cfg);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "# through the proxy {} (CONNECT, Proxy-Authorization: Basic <redacted>)",
            squid.url()
        )),
        "{out}"
    );
    assert!(!out.contains(PASSWORD) && !out.contains(USER), "{out}");

    // HTTPS through the tunnel: TLS end to end with the receiver's test-made certificate.
    #[cfg(feature = "tls")]
    {
        let files = make_tls(dir.path());
        let trcv = Receiver::start_tls(files.server.clone());
        let extra = format!(
            "{auth}\ntls = {{ ca_file = \"{}\" }}",
            files.ca_pem.display()
        );
        let url = format!("https://127.0.0.1:{}/tls", trcv.port);
        let (ok, out) = tocsin("test", &config(dir.path(), "tls.toml", &url, &extra));
        assert!(ok, "{out}\n{:?}", squid.access());
        assert_eq!(trcv.received()[0].target, "/tls");
        let tunnel = format!("CONNECT 127.0.0.1:{} {USER} ", trcv.port);
        assert!(
            squid.logged(|l| l.contains(&tunnel)),
            "{:?}",
            squid.access()
        );
    }
    drop(squid);
}

#[test]
fn a_wrong_proxy_password_is_one_attempt_and_a_spooled_event() {
    let dir = TempDir::new("squid-wrong");
    let Some(squid) = Squid::start(dir.path()) else {
        return;
    };
    let rcv = Receiver::start();
    let root = dir.path().join("root");
    put(&root, "proc/meminfo", &meminfo(97));
    let wrong = "not the password";
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[agent]
device_id = "gw"
hostname = "h"
interval = "1s"
root = "{root}"
state_dir = "{state}"

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
notify = ["rcv"]

[[webhook]]
name = "rcv"
url = "{url}"
format = "cloudmonitor-json"
events = ["alarm"]
retries = 3
retry_interval = "100ms"
timeout = "2s"
proxy = "{proxy}"
proxy_auth = {{ username = "{USER}", password = "{wrong}" }}
"#,
            root = root.display(),
            state = dir.path().join("state").display(),
            url = rcv.url("/a"),
            proxy = squid.url(),
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    let t0 = Instant::now();
    let spool = dir.path().join("state/spool/rcv");
    let spooled = || {
        std::fs::read_dir(&spool)
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    while !(agent.log().contains("proxy authentication failed") && spooled() == 1)
        && t0.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Three retries 100 ms apart would be over well within this; none may come. (The
    // spool's first probe of the receiver comes ten intervals later: a later try.)
    std::thread::sleep(Duration::from_millis(1500));
    let refused = squid.refused();
    assert!(agent.stop(), "the agent stops on SIGTERM");
    let log = agent.log();
    assert!(log.contains("proxy authentication failed"), "{log}");
    assert!(
        log.contains("the `proxy_auth` credentials were refused"),
        "{log}"
    );
    assert!(!log.contains(wrong), "no secret in the log: {log}");
    assert_eq!(refused, 1, "one attempt: {:?}\n{log}", squid.access());
    assert!(
        !log.contains("attempt 1/4 failed"),
        "no retry was announced: {log}"
    );
    assert_eq!(spooled(), 1, "the alarm waits in the spool: {log}");
    assert!(rcv.received().is_empty());
}
