use super::*;
use crate::render::template::Segment;

const GOOD: &str = r#"
[agent]
device_id = "gw-0042"
hostname = "gw"
interval = "2s"
labels = { site = "north-3" }

[[rule]]
name = "mem-high"
metric = "mem.used_percent"
critical = "> 95"
warn = "> 85"
times = 3
notify = ["ops"]

[[rule]]
name = "root-full"
metric = "disk.used_percent"
match = { mount = "/" }
warn = ">= 90"
within = 5
times = 2
repeat = "30m"
no_data = "alert"
notify = ["ops"]

[[webhook]]
name = "ops"
url = "http://127.0.0.1:9/alarm"
format = "cloudmonitor-json"
query = { device = "gw 42" }
headers = { "X-Site" = "north-3" }
auth = { type = "bearer", token = "s3cret" }
"#;

fn errors(src: &str) -> Vec<String> {
    match parse(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn a_good_config_validates() {
    let c = parse(GOOD, "t.toml").expect("valid");
    assert_eq!(c.agent.device_id, "gw-0042");
    assert_eq!(c.agent.interval_ms, 2000);
    assert_eq!(
        c.agent.labels,
        vec![("site".to_string(), "north-3".to_string())]
    );
    assert_eq!(c.rules.len(), 2);
    assert_eq!(c.rules[0].spec.times, 3);
    assert_eq!(c.rules[1].spec.within, Some(5));
    assert_eq!(c.rules[1].spec.match_dim.as_deref(), Some("/"));
    assert_eq!(c.rules[1].spec.repeat_ms, Some(1_800_000));
    assert_eq!(c.rules[1].notify, vec![0]);
    let w = &c.webhooks[0];
    assert_eq!(
        (
            w.endpoint.timeout_ms,
            w.endpoint.retries,
            w.endpoint.retry_interval_ms
        ),
        (5000, 3, 2000),
        "CloudMonitor's defaults (5 s, 3 retries)"
    );
    assert_eq!(
        w.endpoint.target.segments,
        vec![
            Segment::Lit("/alarm".into()),
            Segment::Lit("?device=".into()),
            Segment::Lit("gw%2042".into())
        ]
    );
    assert_eq!(w.endpoint.auth, Auth::Bearer(Secret::new("s3cret".into())));
    assert!(
        !format!("{:?}", w.endpoint.auth).contains("s3cret"),
        "Debug must not show secrets"
    );
}

#[test]
fn every_error_is_reported_with_its_position() {
    let src = "[agent]\ninterval = \"5 s\"\nbogus = 1\n\n[[rule]]\nname = \"r\"\nmetric = \"cpu.usage\"\ncritical = \"=> 3\"\nnotify = [\"nobody\"]\n";
    let e = errors(src);
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(
        e[0].starts_with("t.toml:2:12: `interval`: invalid duration"),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with("t.toml:3:1: unknown key `bogus` in [agent]"),
        "{}",
        e[1]
    );
    assert!(
        e[2].starts_with("t.toml:7:10: unknown metric `cpu.usage`"),
        "{}",
        e[2]
    );
    assert!(
        e[3].starts_with("t.toml:8:12: `critical`: invalid condition"),
        "{}",
        e[3]
    );
    assert!(
        e[4].starts_with("t.toml:9:11: `notify` names webhook `nobody`"),
        "{}",
        e[4]
    );
}

#[test]
fn defaults() {
    let c = parse(
        "[[webhook]]\nname = \"w\"\nurl = \"http://h/\"\nformat = \"cloudmonitor-json\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.agent.interval_ms, 5000);
    assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/tocsin"));
    assert_eq!(c.webhooks[0].filter.events, EventMask::DEFAULT);
    assert_eq!(c.webhooks[0].endpoint.retry_after_max_ms, 300_000);
    assert!(c.webhooks[0].filter.enabled);
}

#[test]
fn a_broken_webhook_does_not_add_follow_on_errors() {
    // The webhook's url is bad; the rule that names it must not also be reported.
    let src = "[[rule]]\nname = \"r\"\nmetric = \"load.1\"\nwarn = \"> 1\"\nnotify = [\"w\"]\n\n[[webhook]]\nname = \"w\"\nurl = \"ftp://x\"\nformat = \"cloudmonitor-json\"\n";
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("t.toml:9:7: `url`"), "{}", e[0]);
}

#[test]
fn a_custom_user_agent_replaces_ours_and_reserved_headers_are_refused() {
    let base = "[[webhook]]\nname = \"w\"\nurl = \"http://h/\"\nformat = \"cloudmonitor-json\"\n";
    let c = parse(
        &format!("{base}headers = {{ User-Agent = \"fleet/1\" }}\n"),
        "t",
    )
    .unwrap();
    let (name, value) = &c.webhooks[0].endpoint.headers[0];
    assert_eq!(
        (name.as_str(), value.segments.as_slice()),
        ("User-Agent", &[Segment::Lit("fleet/1".into())][..])
    );
    for h in [
        "Content-Type",
        "authorization",
        "X-Tocsin-Event-Type",
        "webhook-signature",
        "Connection",
    ] {
        let e = errors(&format!("{base}headers = {{ {h} = \"x\" }}\n"));
        assert!(
            e.len() == 1 && e[0].contains("is set by tocsin itself"),
            "{h}: {e:?}"
        );
    }
}

const FAMILIES: &str = r#"
[agent]
hostname = "gw"

[[rule]]
name = "wan-down"
metric = "net.up"
match = { iface = "wan*" }
critical = "== 0"

[[rule]]
name = "nvme-hot"
metric = "temp.celsius"
match = { sensor = "Composite" }
warn = "> 70"

[[rule]]
name = "dnsmasq"
metric = "process.up"
match = { name = "dnsmasq" }
critical = "== 0"

[[rule]]
name = "odhcpd"
metric = "process.cpu_percent"
pidfile = "/var/run/odhcpd.pid"
warn = "> 50"

[[rule]]
name = "dns"
metric = "tcp.up"
target = "127.0.0.1:53"
critical = "== 0"

[[rule]]
name = "gpio"
metric = "file.value"
path = "/sys/class/gpio/gpio17/value"
scale = 2
critical = "== 0"

[[rule]]
name = "modem"
metric = "exec.value"
command = ["/usr/bin/modem-signal", "--dbm"]
timeout = "3s"
warn = "< -100"
"#;

#[test]
fn family_parameters_become_probes_and_series_keys() {
    let cfg = parse(FAMILIES, "t.toml").expect("valid");
    let keys: Vec<(Option<&str>, Option<String>)> = cfg
        .rules
        .iter()
        .map(|r| {
            (
                r.spec.match_key,
                r.spec.match_dim.as_ref().map(|d| d.to_string()),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (Some("iface"), Some("wan*".into())),
            (Some("sensor"), Some("Composite".into())),
            (Some("name"), Some("dnsmasq".into())),
            (Some("pidfile"), Some("/var/run/odhcpd.pid".into())),
            (Some("target"), Some("127.0.0.1:53".into())),
            (Some("path"), Some("/sys/class/gpio/gpio17/value".into())),
            (Some("command"), Some("/usr/bin/modem-signal --dbm".into())),
        ]
    );
    let probes: Vec<Option<Probe>> = cfg.rules.iter().map(|r| r.probe.clone()).collect();
    assert_eq!(probes[0], None);
    assert_eq!(probes[1], None);
    assert!(matches!(&probes[2], Some(Probe::ProcessName(n)) if n == "dnsmasq"));
    assert!(
        matches!(&probes[4], Some(Probe::Tcp { timeout_ms: 1000, target }) if target.port() == 53)
    );
    assert!(matches!(&probes[5], Some(Probe::File { scale, .. }) if *scale == 2.0));
    assert!(
        matches!(&probes[6], Some(Probe::Exec { timeout_ms: 3000, command }) if command.len() == 2)
    );
}

#[test]
fn rules_on_one_series_must_agree() {
    let src = r#"
[[rule]]
name = "a"
metric = "file.value"
path = "/tmp/x"
critical = "> 1"

[[rule]]
name = "b"
metric = "file.value"
path = "/tmp/x"
scale = 0.5
critical = "> 1"
"#;
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains(":12:1:") && e[0].contains("must agree"),
        "{e:?}"
    );
}

#[test]
fn device_id_auto_reads_machine_id_then_the_first_mac() {
    let root = std::env::temp_dir().join(format!("tocsin-auto-id-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (iface, mac) in [
        ("lo", "00:00:00:00:00:00"),
        ("wan", "AA:BB:CC:00:11:22"),
        ("eth0", "00:00:00:00:00:00"),
    ] {
        std::fs::create_dir_all(root.join("sys/class/net").join(iface)).unwrap();
        std::fs::write(
            root.join("sys/class/net").join(iface).join("address"),
            format!("{mac}\n"),
        )
        .unwrap();
    }
    let cfg = |r: &std::path::Path| {
        format!(
            "[agent]\nhostname = \"h\"\nroot = \"{}\"\ndevice_id = \"auto\"\n",
            r.display()
        )
    };
    // No machine-id: the first interface (by name) with a real MAC, lower-cased.
    assert_eq!(
        parse(&cfg(&root), "t").unwrap().agent.device_id,
        "aa:bb:cc:00:11:22"
    );
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/machine-id"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    assert_eq!(
        parse(&cfg(&root), "t").unwrap().agent.device_id,
        "0123456789abcdef0123456789abcdef"
    );
    // Nothing to read: an error at the value.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = parse(&cfg(&empty), "t").unwrap_err().0;
    assert!(e[0].message.contains("device_id = \"auto\""), "{e:?}");
    assert_eq!((e[0].line, e[0].col), (4, 13));
    let _ = std::fs::remove_dir_all(&root);
}

/// A temp dir with `files` (relative path, text); removed on drop.
struct Files(std::path::PathBuf);

impl Files {
    fn new(tag: &str, files: &[(&str, &str)]) -> Files {
        let dir = std::env::temp_dir().join(format!("tocsin-inc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Files(dir)
    }

    fn load(&self) -> Result<Config, Diagnostics> {
        load(&self.0.join("tocsin.toml"))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const FLEET: &str = r#"[agent]
hostname = "h"
include = "conf.d/*.toml"
labels = { site = "north-3" }

[[rule]]
name = "mem"
metric = "mem.used_percent"
critical = "> 95"
notify = ["ops"]
"#;

const DEVICE: &str = r#"[agent]
device_id = "gw-7"
labels = { customer = "acme" }

[[webhook]]
name = "ops"
url = "http://127.0.0.1:9/"
format = "hertzbeat"
"#;

#[test]
fn included_files_merge_in_name_order_relative_to_the_main_file() {
    let f = Files::new(
        "merge",
        &[
            ("tocsin.toml", FLEET),
            ("conf.d/20-device.toml", DEVICE),
            (
                "conf.d/10-more.toml",
                "[[rule]]\nname = \"load\"\nmetric = \"load.1\"\nwarn = \"> 4\"\nnotify = [\"ops\"]\n",
            ),
            ("conf.d/notes.txt", "not toml"),
        ],
    );
    let cfg = f.load().unwrap();
    assert_eq!(cfg.agent.device_id, "gw-7");
    assert_eq!(
        cfg.agent.labels,
        vec![
            ("site".to_string(), "north-3".to_string()),
            ("customer".to_string(), "acme".to_string())
        ]
    );
    let names: Vec<&str> = cfg.rules.iter().map(|r| r.spec.name.as_str()).collect();
    assert_eq!(names, ["mem", "load"]);
    // A rule of one file notifies a webhook of another.
    assert_eq!(cfg.rules[0].notify, vec![0]);
    let inc: Vec<String> = cfg
        .includes
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(inc, ["10-more.toml", "20-device.toml"]);
}

#[test]
fn conflicts_across_files_name_both_places() {
    let f = Files::new(
        "conflict",
        &[
            ("tocsin.toml", FLEET),
            ("conf.d/10-device.toml", DEVICE),
            (
                "conf.d/20-again.toml",
                "[agent]\nhostname = \"x\"\nlabels = { site = \"south\" }\ninclude = \"y/*\"\n\n[[webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"hertzbeat\"\n",
            ),
        ],
    );
    let d = f.load().unwrap_err().to_string();
    let main = f.0.join("tocsin.toml").display().to_string();
    let dev = f.0.join("conf.d/10-device.toml").display().to_string();
    let again = f.0.join("conf.d/20-again.toml").display().to_string();
    let want = [
        format!("{again}:2:1: `hostname` is already set at {main}:2:1"),
        format!("{again}:3:12: label `site` is already set at {main}:4:12"),
        format!("{again}:4:1: `include` may stand only in the main config file"),
        format!("{again}:7:8: duplicate webhook name `ops` (first defined at {dev}:6:8)"),
    ];
    for w in &want {
        assert!(d.contains(w.as_str()), "missing {w} in:\n{d}");
    }
}

#[test]
fn an_empty_or_missing_conf_d_is_no_error_and_errors_in_included_files_point_there() {
    let f = Files::new("empty", &[("tocsin.toml", &FLEET.replace("ops", "x"))]);
    let d = f.load().unwrap_err().to_string();
    // Nothing included: the rule's webhook is unknown, in the main file.
    assert!(d.contains("tocsin.toml:10:"), "{d}");
    let f = Files::new(
        "syntax",
        &[
            ("tocsin.toml", FLEET),
            ("conf.d/10-device.toml", "[agent]\ndevice_id = \n"),
        ],
    );
    let d = f.load().unwrap_err().to_string();
    let dev = f.0.join("conf.d/10-device.toml").display().to_string();
    assert!(d.starts_with(&format!("{dev}:2:")), "{d}");
}

#[test]
fn a_labels_that_is_not_a_table_is_reported_when_another_file_sets_labels() {
    // The per-label merge set the other file's table aside and wrote it over this one at
    // the end, so the error was lost and the config passed.
    let f = Files::new(
        "labels-type",
        &[
            (
                "tocsin.toml",
                &FLEET.replace("{ site = \"north-3\" }", "\"north-3\""),
            ),
            ("conf.d/10-device.toml", DEVICE),
        ],
    );
    let d = f.load().unwrap_err().to_string();
    let main = f.0.join("tocsin.toml").display().to_string();
    assert!(d.starts_with(&format!("{main}:4:10: ")), "{d}");
    assert_eq!(d.lines().count(), 1, "{d}");
}

#[test]
fn the_size_limit_is_for_all_files_together() {
    let big = format!("# {}\n", "x".repeat(MAX_CONFIG_LEN / 2));
    let f = Files::new(
        "total",
        &[
            ("tocsin.toml", FLEET),
            ("conf.d/10-device.toml", DEVICE),
            ("conf.d/20-big.toml", &big),
            ("conf.d/30-big.toml", &big),
        ],
    );
    let d = f.load().unwrap_err().to_string();
    let main = f.0.join("tocsin.toml").display().to_string();
    let second = f.0.join("conf.d/30-big.toml").display().to_string();
    let total = FLEET.len() + DEVICE.len() + 2 * big.len();
    assert_eq!(
        d,
        format!(
            "{main}:3:11: included {second} brings the config to {total} bytes; \
             the limit for all files together is {MAX_CONFIG_LEN}"
        )
    );
}

#[test]
fn an_array_of_patterns_a_rule_defined_twice_and_an_unreadable_file_name_their_places() {
    let f = Files::new(
        "array",
        &[
            (
                "tocsin.toml",
                &FLEET.replace(
                    "\"conf.d/*.toml\"",
                    "[\"conf.d/*.toml\", \"more/?-*.toml\"]",
                ),
            ),
            ("conf.d/10-device.toml", DEVICE),
            (
                "more/1-rule.toml",
                "\n[[rule]]\nname = \"mem\"\nmetric = \"load.1\"\nwarn = \"> 4\"\n",
            ),
            ("more/10-skipped.toml", "not toml"),
        ],
    );
    std::fs::write(f.0.join("more/2-bad.toml"), b"# \xff\n").unwrap();
    let d = f.load().unwrap_err().to_string();
    let main = f.0.join("tocsin.toml").display().to_string();
    let rule = f.0.join("more/1-rule.toml").display().to_string();
    let bad = f.0.join("more/2-bad.toml").display().to_string();
    assert_eq!(
        d,
        format!(
            "{main}:3:29: included {bad} is not valid UTF-8\n\
             {rule}:3:8: duplicate rule name `mem` (first defined at {main}:7:8)"
        )
    );
}
