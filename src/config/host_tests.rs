//! Parsing against a [`FakeHost`]: included files, secrets and the device's identity come
//! from an in-memory file system and environment, not from the machine the tests run on.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;

/// In-memory files (absolute paths; their directories are implied) and environment.
#[derive(Default)]
struct FakeHost {
    files: BTreeMap<PathBuf, Vec<u8>>,
    env: BTreeMap<String, OsString>,
}

impl FakeHost {
    fn file(mut self, path: &str, text: &str) -> FakeHost {
        self.files
            .insert(PathBuf::from(path), text.as_bytes().to_vec());
        self
    }

    fn var(mut self, key: &str, value: &str) -> FakeHost {
        self.env.insert(key.to_string(), value.into());
        self
    }

    /// Every directory that holds a file, however deep.
    fn dirs(&self) -> BTreeSet<&Path> {
        self.files
            .keys()
            .flat_map(|p| p.ancestors().skip(1))
            .collect()
    }

    fn parse(&self, src: &str) -> Result<Config, Diagnostics> {
        parse_with_host(src, "/etc/tocsin/tocsin.toml", self)
    }
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

impl Host for FakeHost {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.files.get(path) {
            Some(b) => Ok(b.clone()),
            None if self.is_dir(path) => Err(io::Error::from(io::ErrorKind::IsADirectory)),
            None => Err(not_found()),
        }
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        if !self.is_dir(dir) {
            return Err(not_found());
        }
        let children: BTreeSet<OsString> = self
            .files
            .keys()
            .flat_map(|p| p.ancestors())
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(OsString::from))
            .collect();
        Ok(children.into_iter().collect())
    }

    fn file_id(&self, path: &Path) -> Option<(u64, u64)> {
        if let Some(i) = self.files.keys().position(|p| p == path) {
            return Some((0, i as u64));
        }
        let i = self.dirs().into_iter().position(|p| p == path)?;
        Some((1, i as u64))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.dirs().contains(path)
    }

    fn open(&self, path: &Path) -> io::Result<()> {
        match self.files.contains_key(path) || self.is_dir(path) {
            true => Ok(()),
            false => Err(not_found()),
        }
    }

    fn env(&self, key: &str) -> Option<OsString> {
        self.env.get(key).cloned()
    }

    fn node(&self, path: &Path) -> Node {
        match self.files.contains_key(path) || self.is_dir(path) {
            true => Node::Other,
            false => Node::Missing,
        }
    }
}

/// The messages, each with its place, as `file:line:col: message`.
fn errors(r: Result<Config, Diagnostics>) -> Vec<String> {
    match r {
        Ok(_) => panic!("the config was accepted"),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

const WEBHOOK: &str = r#"
[[webhook]]
name = "ops"
url = "http://127.0.0.1:9/"
format = "hertzbeat"
"#;

#[test]
fn included_files_come_from_the_host() {
    let main = r#"[agent]
hostname = "h"
include = "*.toml"
labels = { site = "north-3" }
"#;
    let host = FakeHost::default()
        .file("/etc/tocsin/tocsin.toml", main)
        .file(
            "/etc/tocsin/20-webhook.toml",
            &format!("[agent]\nlabels = {{ rack = \"7\" }}\n{WEBHOOK}"),
        )
        .file(
            "/etc/tocsin/10-device.toml",
            "[agent]\ndevice_id = \"gw-7\"\n",
        )
        .file("/etc/tocsin/.20-webhook.toml.tmp", "not toml")
        .file("/etc/tocsin/notes.txt", "not toml")
        .file("/etc/tocsin/old.toml/x", "a directory is not included");
    let cfg = host.parse(main).unwrap();
    // In name order; the main file, which the pattern matches too, only once.
    assert_eq!(
        cfg.includes,
        [
            PathBuf::from("/etc/tocsin/10-device.toml"),
            PathBuf::from("/etc/tocsin/20-webhook.toml"),
        ]
    );
    assert_eq!(cfg.agent.device_id, "gw-7");
    assert_eq!(
        cfg.agent.labels,
        [
            ("site".into(), "north-3".into()),
            ("rack".into(), "7".into())
        ]
    );
    assert_eq!(cfg.webhooks[0].name, "ops");

    // An error in an included file is reported at its place there.
    let host = host.file("/etc/tocsin/30-bad.toml", "\n[agent]\ninterval = 7\n");
    assert_eq!(
        errors(host.parse(main)),
        ["/etc/tocsin/30-bad.toml:3:12: `interval` must be a string, not integer"]
    );
}

#[test]
fn a_token_file_is_read_from_the_credentials_directory() {
    let src = format!(
        "[agent]\nhostname = \"h\"\n{WEBHOOK}auth = {{ type = \"bearer\", token_file = \"ops-token\" }}\n"
    );
    let host = FakeHost::default()
        .var("CREDENTIALS_DIRECTORY", "/run/credentials/tocsin.service")
        .file("/run/credentials/tocsin.service/ops-token", "s3cret\n");
    let cfg = host.parse(&src).unwrap();
    assert_eq!(
        cfg.webhooks[0].endpoint.auth,
        Auth::Bearer(Secret::new("s3cret".into()))
    );
    // Without the directory, the relative name is the file itself; it is not there.
    let e = errors(FakeHost::default().parse(&src));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("/etc/tocsin/tocsin.toml:8:40: `token_file`: cannot read `ops-token`: "),
        "{e:?}"
    );
}

#[test]
fn a_token_env_is_read_from_the_environment() {
    let src = format!(
        "[agent]\nhostname = \"h\"\n{WEBHOOK}auth = {{ type = \"bearer\", token_env = \"OPS_TOKEN\" }}\n"
    );
    let host = FakeHost::default().var("OPS_TOKEN", "t0ken");
    let cfg = host.parse(&src).unwrap();
    assert_eq!(
        cfg.webhooks[0].endpoint.auth,
        Auth::Bearer(Secret::new("t0ken".into()))
    );
    assert_eq!(
        errors(FakeHost::default().parse(&src)),
        ["/etc/tocsin/tocsin.toml:8:39: `token_env`: environment variable `OPS_TOKEN` is not set"]
    );
}

const AUTO_ID: &str = "[agent]\nhostname = \"h\"\nroot = \"/r\"\ndevice_id = \"auto\"\n";

#[test]
fn device_id_auto_is_the_machine_id() {
    let host = FakeHost::default()
        .file("/r/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        .file("/r/sys/class/net/eth0/address", "aa:bb:cc:00:11:22\n");
    let cfg = host.parse(AUTO_ID).unwrap();
    assert_eq!(cfg.agent.device_id, "0123456789abcdef0123456789abcdef");
}

#[test]
fn device_id_auto_without_a_machine_id_is_the_first_real_mac() {
    let host = FakeHost::default()
        // Not 32 hex digits: not a machine id.
        .file("/r/etc/machine-id", "uninitialized\n")
        .file("/r/sys/class/net/lo/address", "00:00:00:00:00:00\n")
        .file("/r/sys/class/net/eth0/address", "00:00:00:00:00:00\n")
        .file("/r/sys/class/net/wan/address", "AA:BB:CC:00:11:22\n")
        .file("/r/sys/class/net/wlan0/address", "aa:bb:cc:00:11:33\n");
    let cfg = host.parse(AUTO_ID).unwrap();
    assert_eq!(cfg.agent.device_id, "aa:bb:cc:00:11:22");
    // Nothing to read: an error at the value.
    assert_eq!(
        errors(FakeHost::default().parse(AUTO_ID)),
        ["/etc/tocsin/tocsin.toml:4:13: `device_id = \"auto\"`: neither /etc/machine-id nor a network interface's MAC address could be read"]
    );
}

#[test]
fn hostname_auto_is_the_kernels_host_name() {
    let src = "[agent]\nroot = \"/r\"\nhostname = \"auto\"\n";
    let host = FakeHost::default().file("/r/proc/sys/kernel/hostname", "gw-north\n");
    let agent = host.parse(src).unwrap().agent;
    assert_eq!(agent.hostname, "gw-north");
    // The device id defaults to the host name.
    assert_eq!(agent.device_id, "gw-north");
    // Unreadable: `localhost`, not an error.
    let agent = FakeHost::default().parse(src).unwrap().agent;
    assert_eq!(agent.hostname, "localhost");
}

#[test]
fn tls_files_must_exist_on_the_host() {
    let src = format!(
        "[agent]\nhostname = \"h\"\n{WEBHOOK}tls = {{ ca_file = \"/etc/tocsin/ca.pem\" }}\n"
    );
    let host = FakeHost::default().file("/etc/tocsin/ca.pem", "PEM");
    let cfg = host.parse(&src).unwrap();
    assert_eq!(
        cfg.webhooks[0].endpoint.tls.ca_file.as_deref(),
        Some(Path::new("/etc/tocsin/ca.pem"))
    );
    let e = errors(FakeHost::default().parse(&src));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "/etc/tocsin/tocsin.toml:8:19: `tls.ca_file`: cannot read `/etc/tocsin/ca.pem`: "
        ),
        "{e:?}"
    );
}

#[test]
fn proxy_credentials_and_no_proxy_forms() {
    use crate::deliver::endpoint::{NoProxy, ProxyAuth};
    let src = format!(
        "[agent]\nhostname = \"h\"\n{WEBHOOK}proxy = \"http://proxy.lan:3128\"\nproxy_auth = {{ username_env = \"PROXY_USER\", password_file = \"proxy-pw\" }}\nno_proxy = \" localhost ,.lan,10.0.0.0/8, [fd00::1], fd00::/8 \"\n"
    );
    let host = FakeHost::default()
        .var("PROXY_USER", "alice")
        .var("CREDENTIALS_DIRECTORY", "/run/credentials/tocsin.service")
        .file(
            "/run/credentials/tocsin.service/proxy-pw",
            "pw with spaces\n",
        );
    let cfg = host.parse(&src).unwrap();
    let egress = &cfg.webhooks[0].endpoint.egress;
    assert_eq!(
        egress.proxy_auth,
        Some(ProxyAuth {
            username: "alice".into(),
            password: Secret::new("pw with spaces".into()),
        })
    );
    assert_eq!(
        egress.no_proxy,
        [
            NoProxy::Exact("localhost".into()),
            NoProxy::Suffix(".lan".into()),
            NoProxy::Cidr("10.0.0.0".parse().unwrap(), 8),
            NoProxy::Exact("fd00::1".into()),
            NoProxy::Cidr("fd00::".parse().unwrap(), 8),
        ]
    );
    assert!(
        !format!("{cfg:?}").contains("pw with spaces"),
        "Debug redacts"
    );
    // A user name from the environment is checked like one written in the file.
    let host = FakeHost::default()
        .var("PROXY_USER", "al:ice")
        .var("CREDENTIALS_DIRECTORY", "/run/credentials/tocsin.service")
        .file("/run/credentials/tocsin.service/proxy-pw", "pw\n");
    let e = errors(host.parse(&src));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "/etc/tocsin/tocsin.toml:9:31: a `proxy_auth` `username` cannot contain `:`"
        ),
        "{e:?}"
    );
}
