//! The command line. Exit codes: 0 ok, 1 config or usage error, 2 runtime failure.

use crate::clock::Clock;
use crate::config::{self, Config};
use crate::control::Outcome;
use crate::deliver::send::{send, Outgoing};
use crate::deliver::{self, client::Client, Mode};
use crate::event::{Event, EventId, EventType};
use crate::limits::{MAX_AM_BODY_LEN, MAX_BODY_LEN};
use crate::metric::Samples;
use crate::render::fmt_value;
use crate::rule::{Evaluator, Level, RuleSpec, SeriesView, Transition, TransitionKind};
use crate::service::mute::{Target, DEFAULT_FOR_MS, MAX_FOR_MS};
use crate::service::{self, ConfigSource};
use crate::source::Sampler;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where `-c` points by default.
pub const DEFAULT_CONFIG: &str = "/etc/tocsin/tocsin.toml";

const HELP: &str = "\
tocsin — local thresholds in, HTTP(S) alert callbacks out

USAGE:
  tocsin [run] [-c FILE] [--dry-run] [-q | -v]
                                       run the agent; --dry-run prints each request instead of sending it;
                                       -q logs warnings and errors only, -v adds debug lines (both
                                       override [agent] log_level)
  tocsin check [-c FILE]               validate the config; print every error as FILE:LINE:COL: message
  tocsin once [-c FILE] [--metrics]    sample twice 1 s apart, evaluate, print a table
                                       (--metrics: every metric and dimension found, with its value)
  tocsin render WEBHOOK [-c FILE] [--rule R]
                                       print the exact request that would be sent (secrets redacted)
  tocsin test WEBHOOK [-c FILE]        send a `test` event now; print status and latency
  tocsin status [-c FILE | --socket PATH]
                                       rules, outboxes and recent deliveries of the running agent
  tocsin replay EVENT_ID [-c FILE | --socket PATH]
                                       re-send a recent or spooled event (new id, replay_of = the old)
  tocsin mute (RULE | --webhook WEBHOOK | --all) [--for DURATION (1h; at most 168h)]
  tocsin unmute (RULE | --webhook WEBHOOK | --all)     both also [-c FILE | --socket PATH]
  tocsin --version | --help

FILE defaults to /etc/tocsin/tocsin.toml. status, replay, mute and unmute reach the agent at FILE's
control_socket, or at PATH; with an invalid FILE, at the control_socket of the
last-known-good copy in its state_dir (with a warning).
Exit codes: 0 ok, 1 config or usage error, 2 runtime failure.
Signals: SIGHUP reloads the config (a bad one is rejected, the old one keeps running);
SIGTERM drains in-flight deliveries for up to 5 s and stops.
";

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `run`.
    Run {
        /// `-c`.
        config: PathBuf,
        /// `--dry-run`.
        dry_run: bool,
        /// `-q` (warn) or `-v` (debug): overrides `[agent] log_level`.
        log_level: Option<crate::log::Level>,
    },
    /// `check`.
    Check {
        /// `-c`.
        config: PathBuf,
    },
    /// `once`.
    Once {
        /// `-c`.
        config: PathBuf,
        /// `--metrics`.
        metrics: bool,
    },
    /// `render WEBHOOK`.
    Render {
        /// `-c`.
        config: PathBuf,
        /// The webhook.
        webhook: String,
        /// `--rule`.
        rule: Option<String>,
    },
    /// `test WEBHOOK`.
    Test {
        /// `-c`.
        config: PathBuf,
        /// The webhook.
        webhook: String,
    },
    /// `status`.
    Status {
        /// `-c`.
        config: PathBuf,
        /// `--socket`: the control socket, instead of the config's.
        socket: Option<PathBuf>,
    },
    /// `replay EVENT_ID`.
    Replay {
        /// `-c`.
        config: PathBuf,
        /// The event to re-send.
        id: String,
        /// `--socket`: the control socket, instead of the config's.
        socket: Option<PathBuf>,
    },
    /// `mute TARGET` or `unmute TARGET`.
    Mute {
        /// `-c`.
        config: PathBuf,
        /// What to mute or unmute.
        target: Target,
        /// `mute`: `--for`, in ms; `None`: `unmute`.
        for_ms: Option<u64>,
        /// `--socket`.
        socket: Option<PathBuf>,
    },
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Parses arguments (without the program name).
///
/// # Errors
/// A usage message.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter().map(String::as_str).peekable();
    let verb = match it.peek() {
        Some(
            &("run" | "check" | "once" | "render" | "test" | "status" | "replay" | "mute"
            | "unmute"),
        ) => it.next().unwrap_or("run"),
        Some(&("-h" | "--help" | "help")) => return Ok(Command::Help),
        Some(&("-V" | "--version")) => return Ok(Command::Version),
        Some(a) if !a.starts_with('-') => {
            return Err(format!("unknown command `{a}`; see tocsin --help"))
        }
        _ => "run",
    };
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    let (mut dry_run, mut metrics, mut rule, mut positional) = (false, false, None, Vec::new());
    let mut socket = None;
    let (mut mute_hook, mut mute_all, mut for_ms) = (None, false, None);
    let muting = matches!(verb, "mute" | "unmute");
    let mut log_level = None;
    while let Some(a) = it.next() {
        match a {
            "--webhook" if muting => {
                mute_hook = Some(
                    it.next()
                        .ok_or("--webhook needs a webhook name")?
                        .to_string(),
                )
            }
            "--all" if muting => mute_all = true,
            "--for" if verb == "mute" => {
                let d = it.next().ok_or("--for needs a duration")?;
                let ms = config::parse_duration(d)
                    .map_err(|e| format!("--for: {e} (at most 7 days)"))?;
                if ms > MAX_FOR_MS {
                    return Err(format!("--for: {d} is longer than 7 days"));
                }
                for_ms = Some(ms);
            }
            "-q" | "--quiet" | "-v" | "--verbose" if verb == "run" => {
                let l = if matches!(a, "-q" | "--quiet") {
                    crate::log::Level::Warn
                } else {
                    crate::log::Level::Debug
                };
                if log_level.is_some_and(|o| o != l) {
                    return Err("-q and -v exclude each other".into());
                }
                log_level = Some(l);
            }
            "-c" | "--config" => config = PathBuf::from(it.next().ok_or("-c needs a file")?),
            "--dry-run" if verb == "run" => dry_run = true,
            "--metrics" if verb == "once" => metrics = true,
            "--rule" if verb == "render" => {
                rule = Some(it.next().ok_or("--rule needs a rule name")?.to_string())
            }
            "--socket" if matches!(verb, "status" | "replay") || muting => {
                socket = Some(PathBuf::from(it.next().ok_or("--socket needs a path")?))
            }
            "-h" | "--help" => return Ok(Command::Help),
            _ if a.starts_with('-') => {
                return Err(format!(
                    "unknown option `{a}` for `{verb}`; see tocsin --help"
                ))
            }
            _ => positional.push(a.to_string()),
        }
    }
    let webhook = || -> Result<String, String> {
        match positional.as_slice() {
            [w] => Ok(w.clone()),
            [] => Err(format!("`{verb}` needs a webhook name")),
            _ => Err(format!("`{verb}` takes one webhook name")),
        }
    };
    if muting {
        let target = match (positional.as_slice(), mute_hook, mute_all) {
            ([r], None, false) => Target::Rule(name(r)?),
            ([], Some(w), false) => Target::Webhook(name(&w)?),
            ([], None, true) => Target::All,
            _ => {
                return Err(format!(
                    "`{verb}` takes one of RULE, --webhook WEBHOOK, --all"
                ))
            }
        };
        return Ok(Command::Mute {
            config,
            target,
            for_ms: (verb == "mute").then(|| for_ms.unwrap_or(DEFAULT_FOR_MS)),
            socket,
        });
    }
    if !matches!(verb, "render" | "test" | "replay") && !positional.is_empty() {
        return Err(format!("unexpected argument `{}`", positional[0]));
    }
    Ok(match verb {
        "check" => Command::Check { config },
        "once" => Command::Once { config, metrics },
        "render" => Command::Render {
            config,
            webhook: webhook()?,
            rule,
        },
        "test" => Command::Test {
            config,
            webhook: webhook()?,
        },
        "status" => Command::Status { config, socket },
        "replay" => match positional.as_slice() {
            [id] => Command::Replay {
                config,
                id: id.clone(),
                socket,
            },
            _ => return Err("`replay` takes one EVENT_ID".into()),
        },
        _ => Command::Run {
            config,
            dry_run,
            log_level,
        },
    })
}

/// A rule or webhook name as the agent keeps it.
fn name(s: &str) -> Result<crate::event::Name, String> {
    match crate::event::Name::try_from(s) {
        Ok(n) if !s.is_empty() && !s.contains(['\n', '\r']) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a rule or webhook name (1 to 64 bytes, one line)"
        )),
    }
}

/// The program: parses arguments, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tocsin: {e}");
            return ExitCode::from(1);
        }
    };
    match cmd {
        Command::Help => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("tocsin {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check { config } => match load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} rules, {} webhooks)",
                    config.display(),
                    cfg.rules.len(),
                    cfg.webhooks.len()
                );
                for f in &cfg.includes {
                    println!("  included {}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            config,
            dry_run,
            log_level,
        } => {
            if let Some(l) = log_level {
                crate::log::set_override(l);
            }
            let (cfg, origin) = match load(&config) {
                Ok(c) => (c, ConfigSource::Given),
                Err(code) => match last_good(&config) {
                    Some((cfg, lkg)) => {
                        crate::error!(
                            "CONFIG {} IS INVALID (errors above): running the last-known-good copy {} instead; fix the file and reload",
                            config.display(),
                            lkg.display()
                        );
                        (cfg, ConfigSource::LastGood(lkg))
                    }
                    None => return code,
                },
            };
            crate::log::set_config_level(cfg.agent.log_level);
            let mode = if dry_run { Mode::DryRun } else { Mode::Send };
            runtime(async move {
                service::run(&config, cfg, mode, origin)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        Command::Once { config, metrics } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            once(&cfg, metrics);
            ExitCode::SUCCESS
        }
        Command::Render {
            config,
            webhook,
            rule,
        } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            render(&cfg, &webhook, rule.as_deref())
        }
        Command::Status { config, socket } => control(&config, socket, "status"),
        Command::Replay { config, id, socket } => control(&config, socket, &format!("replay {id}")),
        Command::Mute {
            config,
            target,
            for_ms,
            socket,
        } => {
            let verb = for_ms.map_or_else(|| "unmute".to_string(), |ms| format!("mute {ms}"));
            control(&config, socket, &format!("{verb} {target}"))
        }
        Command::Test { config, webhook } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(i) = cfg.webhooks.iter().position(|w| w.name == webhook) else {
                eprintln!(
                    "tocsin: no webhook named `{webhook}` in {}",
                    config.display()
                );
                return ExitCode::from(1);
            };
            runtime(async move { send_test(&cfg, i).await })
        }
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|diags| {
        for d in &diags.0 {
            eprintln!("{d}");
        }
        ExitCode::from(1)
    })
}

/// `status` and `replay`: one request to the running agent's control socket — `socket`
/// when given, else `config`'s, else (`config` is invalid: the agent may well be running
/// its last-known-good copy, and this is when the operator needs `status`) the
/// last-known-good copy's, with a warning.
fn control(config: &std::path::Path, socket: Option<PathBuf>, request: &str) -> ExitCode {
    let path = match socket {
        Some(p) => p,
        None => match load(config) {
            Ok(cfg) => cfg.agent.control_socket,
            Err(code) => match last_good(config) {
                Some((cfg, lkg)) => {
                    eprintln!(
                        "tocsin: warning: {} is invalid (errors above); asking the agent at {}, the control_socket of the last-known-good copy {}",
                        config.display(),
                        cfg.agent.control_socket.display(),
                        lkg.display()
                    );
                    cfg.agent.control_socket
                }
                None => {
                    eprintln!(
                        "tocsin: {} is invalid and has no last-known-good copy; name the socket with --socket PATH",
                        config.display()
                    );
                    return code;
                }
            },
        },
    };
    let path = &path;
    match ask(path, request) {
        Ok(Outcome::Answer(answer)) => {
            print!("{answer}");
            if answer.starts_with("error:") {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(Outcome::Busy) => {
            eprintln!(
                "tocsin: the agent on {} is busy with other control clients; try again",
                path.display()
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!(
                "tocsin: no running agent answers on {} ({e})",
                path.display()
            );
            ExitCode::from(2)
        }
    }
}

/// Tries of one control request while the agent answers busy, and the pause between them:
/// about a second in all.
const BUSY_TRIES: u32 = 8;
const BUSY_PAUSE: Duration = Duration::from_millis(125);

/// One control request, asked again (up to [`BUSY_TRIES`] times) while the agent is busy.
fn ask(path: &std::path::Path, request: &str) -> std::io::Result<Outcome> {
    let mut tries = 1;
    loop {
        match crate::control::request(path, request)? {
            Outcome::Busy if tries < BUSY_TRIES => {
                tries += 1;
                std::thread::sleep(BUSY_PAUSE);
            }
            outcome => return Ok(outcome),
        }
    }
}

/// For an invalid config: the last-known-good copy under its `state_dir` (read leniently
/// from the broken file, else the default), if there is one and it validates.
fn last_good(config: &std::path::Path) -> Option<(Config, PathBuf)> {
    // Through the real host: a FIFO given as the config is refused, never waited on.
    let state_dir = config::Host::read_file(&config::RealHost, config)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("agent")?
                .get("state_dir")?
                .as_str()
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/var/lib/tocsin"));
    let lkg = service::last_good_path(&state_dir)?;
    let cfg = config::load_last_good(&lkg).ok()?;
    Some((cfg, lkg))
}

fn runtime(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(crate::limits::MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tocsin: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // On the heap, not the main thread's stack: the agent's loop is a large future.
    match rt.block_on(Box::pin(f)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tocsin: {e}");
            ExitCode::from(2)
        }
    }
}

/// `tocsin once`: two samples 1 s apart (rates need two), then one evaluation.
fn once(cfg: &Config, metrics: bool) {
    let probes: Vec<_> = cfg.rules.iter().filter_map(|r| r.probe.clone()).collect();
    let mut sampler = Sampler::with_probes(&cfg.agent.root, &probes);
    let mut samples: Box<Samples> = Box::default();
    let start = std::time::Instant::now();
    sampler.sample(0, &mut samples);
    std::thread::sleep(Duration::from_secs(1));
    sampler.settle(start + Duration::from_millis(2 * crate::limits::MAX_PROBE_TIMEOUT_MS));
    samples.clear();
    sampler.sample(start.elapsed().as_millis() as u64, &mut samples);
    if metrics {
        println!("{:<28} {:<24} {:>16} UNIT", "METRIC", "DIMENSION", "VALUE");
        for s in samples.iter() {
            let dim = match s.key {
                Some(k) => format!("{k}={}", s.dim),
                None => "-".into(),
            };
            println!(
                "{:<28} {:<24} {:>16} {}",
                s.metric.name(),
                dim,
                fmt_value(s.value),
                s.metric.unit()
            );
        }
        return;
    }
    let specs: Vec<RuleSpec> = cfg.rules.iter().map(|r| r.spec.clone()).collect();
    let mut ev = Evaluator::new(&specs);
    let clock = Clock::system();
    ev.evaluate(
        &specs,
        &samples,
        clock.now_ms(),
        clock.mono_ms(),
        &mut |_| {},
    );
    println!(
        "{:<20} {:<20} {:>14} {:<9} STATE",
        "RULE", "SERIES", "VALUE", "LEVEL"
    );
    ev.view(&specs, &mut |v: SeriesView| {
        let spec = &specs[v.rule];
        let series = if v.dim.is_empty() {
            "-"
        } else {
            v.dim.as_str()
        };
        let value = v.value.map(fmt_value).unwrap_or_default();
        let value = if value.is_empty() {
            "-".to_string()
        } else {
            format!("{value}{}", spec.metric.unit())
        };
        let level = v.level.map_or("-", Level::as_str);
        println!(
            "{:<20} {:<20} {:>14} {:<9} {}",
            spec.name, series, value, level, v.state
        );
    });
}

/// An example event for `render`: an alarm of `rule` at its highest threshold, or a `test`.
fn example_event(cfg: &Config, rule: Option<usize>, now: u64) -> Event {
    let Some(r) = rule else {
        return Event::agent(EventType::Test, EventId::generate(now), now, "render");
    };
    let spec = &cfg.rules[r].spec;
    let (level, cond) = [Level::Critical, Level::Warn, Level::Info]
        .into_iter()
        .find_map(|l| spec.thresholds[l as usize].map(|c| (l, c)))
        .unwrap_or((
            Level::Info,
            crate::rule::Condition {
                op: crate::rule::Op::Gt,
                value: 0.0,
            },
        ));
    let t = Transition {
        rule: r,
        key: spec.match_key.or_else(|| spec.metric.dimension()),
        dim: spec.match_dim.clone().unwrap_or_default(),
        kind: TransitionKind::Alarm,
        state: crate::rule::AlertState::Alert,
        level,
        prev_level: level,
        value: Some(cond.value),
        threshold: Some(cond),
        first_trigger_ms: now,
        last_trigger_ms: now,
        times: u32::from(spec.times),
    };
    t.to_event(spec, EventId::generate(now), now)
}

fn render(cfg: &Config, webhook: &str, rule: Option<&str>) -> ExitCode {
    let Some(wh) = cfg.webhooks.iter().find(|w| w.name == webhook) else {
        eprintln!("tocsin: no webhook named `{webhook}`");
        return ExitCode::from(1);
    };
    let r = match rule {
        Some(name) => match cfg.rules.iter().position(|r| r.spec.name.as_str() == name) {
            Some(i) => Some(i),
            None => {
                eprintln!("tocsin: no rule named `{name}`");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let now = Clock::system().now_ms();
    let event = example_event(cfg, r, now);
    let mut buf = vec![0u8; MAX_BODY_LEN.max(MAX_AM_BODY_LEN)];
    let i = cfg
        .webhooks
        .iter()
        .position(|w| w.name == webhook)
        .unwrap_or(0);
    let spec = cfg.sink(i);
    match spec.print(&event, now, &mut buf) {
        Some(text) => {
            println!("# {} {}", wh.endpoint.method.as_str(), wh.endpoint.url.text);
            let egress = &wh.endpoint.egress;
            if let Some(p) = egress
                .proxy
                .as_ref()
                .filter(|_| !egress.bypasses_proxy(&wh.endpoint.url.host))
            {
                let auth = if egress.proxy_auth.is_some() {
                    ", Proxy-Authorization: Basic <redacted>"
                } else {
                    ""
                };
                println!("# through the proxy {} (CONNECT{auth})", p.text);
            }
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("tocsin: {}", crate::render::RenderError::BufferFull);
            ExitCode::from(2)
        }
    }
}

/// `tocsin test`: one `test` event, one attempt, status and latency printed (the webhook-management screen's
/// "Send test"). Works on a config that is not installed yet, even a disabled webhook.
async fn send_test(cfg: &Config, i: usize) -> Result<(), String> {
    let spec = cfg.sink(i);
    let tls = deliver::tls_for(&spec).map_err(|e| e.to_string())?;
    let clock = Clock::system();
    let now = clock.now_ms();
    let event = Event::agent(EventType::Test, EventId::generate(now), now, "tocsin test");
    let mut buf = vec![0u8; MAX_BODY_LEN.max(MAX_AM_BODY_LEN)];
    let prepared = spec
        .prepare(&event, now, &mut buf)
        .map_err(|e| e.to_string())?;
    let id = event.id.to_text();
    let what = format!("{} {id}", event.kind.as_str());
    let am = spec.payload.format == crate::render::Format::Alertmanager;
    let mut failed = Vec::new();
    // Every peer of an Alertmanager cluster gets it, as every alert does.
    for url in &spec.endpoint.peers {
        let head = if am {
            spec.alerts_head(url, event.id, now)
                .map_err(|e| e.to_string())?
        } else {
            prepared.head.clone()
        };
        #[allow(clippy::clone_on_copy, reason = "Copy only in a build without TLS")]
        let mut client = Client::new(url.clone(), tls.clone(), spec.endpoint.egress.clone());
        let out = Outgoing {
            head: &head,
            body: prepared.body.clone(),
            id: &id,
            what: &what,
            quiet: false,
            max_attempts: 1,
            first_failure: None,
        };
        let d = send(&mut client, &spec, &clock, out, None).await;
        let ms = d.elapsed.as_millis();
        let to = if spec.endpoint.peers.len() > 1 {
            format!("{} ({})", spec.name, url.host_header())
        } else {
            spec.name.clone()
        };
        match (&d.error, d.status) {
            (None, Some(s)) => println!("{to}: HTTP {s} in {ms} ms (event {id})"),
            (e, _) => failed.push(format!(
                "{to}: test failed after {ms} ms: {}",
                e.as_ref()
                    .map_or_else(|| "unknown error".into(), |e| e.to_string())
            )),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn verbs_and_flags() {
        let d = || PathBuf::from(DEFAULT_CONFIG);
        assert_eq!(
            parse_args(&args("")),
            Ok(Command::Run {
                config: d(),
                dry_run: false,
                log_level: None
            })
        );
        assert_eq!(
            parse_args(&args("--dry-run -c x.toml")),
            Ok(Command::Run {
                config: "x.toml".into(),
                dry_run: true,
                log_level: None
            })
        );
        for (line, level) in [
            ("-q", crate::log::Level::Warn),
            ("run -c f --quiet", crate::log::Level::Warn),
            ("run -v", crate::log::Level::Debug),
            ("-v --verbose", crate::log::Level::Debug),
        ] {
            match parse_args(&args(line)) {
                Ok(Command::Run { log_level, .. }) => assert_eq!(log_level, Some(level), "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(
            parse_args(&args("check -c a")),
            Ok(Command::Check { config: "a".into() })
        );
        assert_eq!(
            parse_args(&args("once --metrics")),
            Ok(Command::Once {
                config: d(),
                metrics: true
            })
        );
        assert_eq!(
            parse_args(&args("render ops --rule cpu -c f")),
            Ok(Command::Render {
                config: "f".into(),
                webhook: "ops".into(),
                rule: Some("cpu".into())
            })
        );
        assert_eq!(
            parse_args(&args("test ops")),
            Ok(Command::Test {
                config: d(),
                webhook: "ops".into()
            })
        );
        assert_eq!(
            parse_args(&args("status --socket /run/s")),
            Ok(Command::Status {
                config: d(),
                socket: Some("/run/s".into())
            })
        );
        assert_eq!(
            parse_args(&args("replay E -c f --socket s")),
            Ok(Command::Replay {
                config: "f".into(),
                id: "E".into(),
                socket: Some("s".into())
            })
        );
        assert_eq!(
            parse_args(&args("status")),
            Ok(Command::Status {
                config: d(),
                socket: None
            })
        );
        assert_eq!(
            parse_args(&args("mute cpu")),
            Ok(Command::Mute {
                config: d(),
                target: Target::Rule("cpu".try_into().unwrap()),
                for_ms: Some(3_600_000),
                socket: None
            })
        );
        assert_eq!(
            parse_args(&args("mute --webhook ops --for 7d -c f")).map(|_| ()),
            Err("--for: invalid duration `7d`: expected a number with a unit (ms, s, m, h), like \"5s\" or \"1m30s\" (at most 7 days)".into())
        );
        assert_eq!(
            parse_args(&args("mute --webhook ops --for 168h -c f")),
            Ok(Command::Mute {
                config: "f".into(),
                target: Target::Webhook("ops".try_into().unwrap()),
                for_ms: Some(168 * 3_600_000),
                socket: None
            })
        );
        assert_eq!(
            parse_args(&args("unmute --all --socket s")),
            Ok(Command::Mute {
                config: d(),
                target: Target::All,
                for_ms: None,
                socket: Some("s".into())
            })
        );
        assert_eq!(parse_args(&args("--version")), Ok(Command::Version));
        assert_eq!(parse_args(&args("check --help")), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        for a in [
            "frobnicate",
            "check --dry-run",
            "once --rule x",
            "render",
            "test a b",
            "run -c",
            "check extra",
            "status x",
            "replay",
            "status --socket",
            "check --socket s",
            "run --socket s",
            "mute",
            "mute a b",
            "mute a --all",
            "mute --webhook",
            "mute a --for",
            "mute a --for 169h",
            "mute a --for 0s",
            "unmute a --for 1h",
            "status --all",
            "-q -v",
            "check -q",
            "test w -v",
        ] {
            assert!(parse_args(&args(a)).is_err(), "{a}");
        }
    }
}
