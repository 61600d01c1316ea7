//! The `sensor` command line. Flags say how to run; the config says what to watch.

mod api;
mod baseline;
mod bundle;
mod profile;
mod report;
mod respond;

use std::{
    collections::HashSet,
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    agent::{self, RunOptions},
    alert::Severity,
    api::{EventFilter, Request, Response, StatusReport, client::Client},
    clock::Clock,
    config::{Config, DEFAULT_TOML, StateDir},
    detect::{Detector, ruleset},
    enrich::enricher::EnrichOptions,
    event::{Event, Kind},
    output::{
        alert_log::{AlertFilter, Follower, StartAt, format_human, read_recent},
        event_line::format_event,
    },
    pipeline::Pipeline,
    probes::Mode,
    stats::Stats,
};

#[derive(Parser, Debug)]
#[command(name = "sensor", version, about = "eBPF host runtime security sensor")]
pub struct Cli {
    /// Where the agent keeps its alert log, socket and state.
    #[arg(long, global = true, default_value = "/var/lib/sensor")]
    pub state_dir: PathBuf,
    /// Configuration file (TOML). Without it, the embedded default is used.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log filter for the agent's own logs (tracing env-filter syntax).
    #[arg(long, global = true, default_value = "info", env = "SENSOR_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent in the foreground (this is what systemd runs).
    Run(RunArgs),
    /// Live enriched events from the running agent.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Record live events to a JSONL file (input for `sensor replay` and test corpora).
    Record(RecordArgs),
    /// Feed a recording through the pipeline offline and print what it yields.
    Replay(ReplayArgs),
    /// The local alert log.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Probes, counters, drops and table sizes of the running agent.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run harmless, self-cleaning attack simulations and report which the running sensor
    /// detected (root; the agent must be running with the same --state-dir).
    Selftest {
        /// How long to wait for the agent's alerts.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
        #[arg(long)]
        json: bool,
    },
    /// Incidents: alerts grouped by process tree or container, with their ATT&CK progression.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Detection rules: check files, list what runs.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Behavioural baselines: list, inspect, export/import, learn, freeze, reset. Acts on the
    /// running agent; when none runs, on the store file in the state dir.
    Baseline(baseline::BaselineArgs),
    /// Enforcement profiles (seccomp, AppArmor, Landlock) generated from frozen baselines.
    Profile(profile::ProfileArgs),
    /// Run a command confined by a profile: Landlock, seccomp, capabilities dropped.
    Exec(profile::ExecArgs),
    /// Signed rule, IOC and profile bundles: keygen, sign, verify.
    Bundle(bundle::BundleArgs),
    /// Containment through the running agent: kill, freeze, isolate, deny exec, quarantine;
    /// approvals, rollbacks and the list of what is in force.
    Contain(respond::ContainArgs),
    /// Undo one containment: thaw, end isolation, allow exec, restore a quarantined file.
    Release(respond::ReleaseArgs),
    /// Response playbooks.
    Playbooks(respond::PlaybooksArgs),
    /// Evidence bundles: collect, verify, list.
    Evidence(respond::EvidenceArgs),
    /// The hash-chained audit trail: containment, agent start/stop and config, rule,
    /// indicator, baseline and profile changes, refused control-socket peers, losses.
    Audit(respond::AuditArgs),
    /// Reports: compliance evidence (SOC 2, ISO 27001).
    Report(report::ReportArgs),
    /// Remote API tokens: create, rotate, revoke, list (through the running agent).
    Token(api::TokenArgs),
    /// The remote HTTPS API: GET/POST as a client, or make a private CA and certificates.
    Api(api::ApiArgs),
}

#[derive(Subcommand, Debug)]
pub enum IncidentsCommand {
    /// Open and recent incidents of the running agent.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One incident (id or unique prefix), with its alerts from the alert log.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a readable report (Markdown and HTML): timeline, ATT&CK progression, actions
    /// taken and the evidence index. Works from the running agent or, when none runs, from
    /// <state>/incidents.jsonl.
    Report {
        id: String,
        /// Directory for incident-<id>.md and incident-<id>.html.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Validate rule files and run their inline tests. Without paths, checks what the agent
    /// would load (the built-in rules and the configured paths). Errors name file:line:column.
    Check {
        paths: Vec<PathBuf>,
        /// Check only the given files, without the built-in rules (their lists and macros).
        #[arg(long)]
        only: bool,
    },
    /// List the rules the agent would load.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Ask the running agent to reload rules and indicators now (as SIGHUP does).
    Reload,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// `empty` attaches every probe but makes it return at once (benchmarks only).
    #[arg(long, value_enum, default_value_t = ProbeMode::Full, hide = true)]
    pub probe_mode: ProbeMode,
    /// Root of the host filesystem (when running in a container with the host mounted).
    #[arg(long, default_value = "/")]
    pub host_root: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMode {
    Full,
    Empty,
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only these kinds (repeatable): exec, fork, exit, file, network, privilege.
    #[arg(long = "kind", value_parser = parse_kind)]
    pub kinds: Vec<Kind>,
    #[arg(long)]
    pub pid: Option<u32>,
    /// Container id or prefix; `host` for processes outside containers.
    #[arg(long)]
    pub container: Option<String>,
    /// Process name (comm).
    #[arg(long)]
    pub comm: Option<String>,
    /// Action: exec, openat, connect, ...
    #[arg(long)]
    pub action: Option<String>,
    /// Only this process and its descendants.
    #[arg(long)]
    pub tree: Option<u32>,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        format!("unknown kind {s:?}; expected one of exec, fork, exit, file, network, privilege")
    })
}

impl FilterArgs {
    fn filter(&self) -> EventFilter {
        EventFilter {
            kinds: self.kinds.clone(),
            pid: self.pid,
            container: self.container.clone(),
            comm: self.comm.clone(),
            action: self.action.clone(),
            tree: self.tree,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Print recent events; with --follow, keep printing live ones.
    Tail {
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        json: bool,
        /// How many recent events to start with.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    #[arg(long, short)]
    pub output: PathBuf,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// Print the events too, not only the alerts.
    #[arg(long)]
    pub events: bool,
    /// Learn and score with the baselines in this store file (created when missing, saved
    /// back at the end). Without it, a replay runs the rules only.
    #[arg(long)]
    pub baselines: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Print recent alerts; with --follow, keep printing new ones.
    Tail {
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Only alerts at least this severe: info, low, medium, high, critical.
        #[arg(long)]
        severity: Option<Severity>,
        /// Only this rule id.
        #[arg(long)]
        rule: Option<String>,
        /// Only this container (id or prefix).
        #[arg(long)]
        container: Option<String>,
    },
    /// Alerts straight from the running agent (no log file needed): the recent ones it holds,
    /// then each new one as it is raised, until interrupted.
    Watch {
        #[arg(long)]
        json: bool,
        /// Recent alerts to print first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Only alerts at least this severe.
        #[arg(long)]
        severity: Option<Severity>,
        /// Only this rule id (or a prefix ending in *).
        #[arg(long)]
        rule: Option<String>,
        /// Print the recent ones and stop.
        #[arg(long)]
        no_follow: bool,
    },
    /// Raise test alerts (rule `sensor.test`) in the running agent: they go to the alert log
    /// and every output whose filter takes them, so delivery can be checked end to end.
    Test {
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, default_value = "info")]
        severity: Severity,
        #[arg(long)]
        message: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check a config file (default: the embedded one); errors name file:line:column.
    /// Outputs are built (certificates, secret files) and their destinations contacted.
    Check {
        file: Option<PathBuf>,
        /// Do not contact output destinations.
        #[arg(long)]
        offline: bool,
    },
    /// Print the embedded default configuration.
    Default,
}

fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn main(cli: Cli) -> anyhow::Result<()> {
    let state = StateDir(cli.state_dir.clone());
    match cli.command {
        Command::Run(args) => run(cli.config.as_deref(), state, args),
        Command::Events {
            command:
                EventsCommand::Tail {
                    follow,
                    json,
                    lines,
                    filter,
                },
        } => events_tail(&state, follow, json, lines, filter.filter()),
        Command::Record(args) => record(&state, args),
        Command::Replay(args) => replay(cli.config.as_deref(), args),
        Command::Alerts {
            command:
                AlertsCommand::Test {
                    count,
                    severity,
                    message,
                },
        } => alerts_test(&state, count, severity, message),
        Command::Alerts {
            command:
                AlertsCommand::Watch {
                    json,
                    lines,
                    severity,
                    rule,
                    no_follow,
                },
        } => alerts_watch(&state, json, lines, severity, rule, !no_follow),
        Command::Alerts {
            command:
                AlertsCommand::Tail {
                    follow,
                    json,
                    lines,
                    severity,
                    rule,
                    container,
                },
        } => alerts_tail(
            &state,
            follow,
            json,
            lines,
            AlertFilter {
                min_severity: severity,
                rule,
                container,
            },
        ),
        Command::Status { json } => status(&state, json),
        Command::Rules {
            command: RulesCommand::Reload,
        } => rules_reload(&state),
        Command::Rules { command } => rules_cmd(cli.config.as_deref(), command),
        Command::Token(args) => api::token(&state, args),
        Command::Api(args) => api::api(args),
        Command::Selftest { wait, json } => selftest(&state, wait, json),
        Command::Incidents { command } => incidents_cmd(&state, command),
        Command::Baseline(args) => baseline::main(&state, cli.config.as_deref(), args),
        Command::Profile(args) => profile::main(&state, cli.config.as_deref(), args),
        Command::Exec(args) => profile::exec(&state, cli.config.as_deref(), args),
        Command::Bundle(args) => bundle::main(args),
        Command::Contain(args) => respond::contain(&state, args),
        Command::Release(args) => respond::release(&state, args),
        Command::Playbooks(args) => respond::playbooks(cli.config.as_deref(), args),
        Command::Evidence(args) => respond::evidence(&state, args),
        Command::Audit(args) => respond::audit(&state, args),
        Command::Report(args) => report::main(&state, args),
        Command::Config { command } => match command {
            ConfigCommand::Check { file, offline } => {
                let path = file.or(cli.config);
                let config = Config::load(path.as_deref())?;
                check_outputs(&config, offline)?;
                println!(
                    "{}: ok",
                    path.map_or("<embedded default>".into(), |p| p.display().to_string())
                );
                Ok(())
            }
            ConfigCommand::Default => {
                print!("{DEFAULT_TOML}");
                Ok(())
            }
        },
    }
}

fn run(config: Option<&Path>, state: StateDir, args: RunArgs) -> anyhow::Result<()> {
    let config_path = config;
    let config = Config::load(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the agent");
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        agent::run(
            RunOptions {
                config,
                state_dir: state,
                mode: match args.probe_mode {
                    ProbeMode::Full => Mode::Full,
                    ProbeMode::Empty => Mode::Empty,
                },
                host_root: args.host_root,
                config_path: config_path.map(Path::to_path_buf),
            },
            shutdown,
        )
        .await
    })?;
    Ok(())
}

fn events_tail(
    state: &StateDir,
    follow: bool,
    json: bool,
    recent: usize,
    filter: EventFilter,
) -> anyhow::Result<()> {
    let client = Client::send(
        &state.socket(),
        &Request::Events {
            follow,
            recent,
            filter,
        },
    )?;
    let color = color();
    let mut out = std::io::stdout().lock();
    for resp in client {
        match resp? {
            Response::Event(ev) => {
                let line = if json {
                    serde_json::to_string(&ev)?
                } else {
                    format_event(&ev, color)
                };
                if writeln!(out, "{line}").is_err() {
                    return Ok(()); // stdout closed (a pipe to head): done
                }
                if follow {
                    let _ = out.flush();
                }
            }
            Response::Lost(n) => {
                eprintln!("sensor: this terminal fell behind; {n} events were not shown");
            }
            Response::Subscribed => {}
            other => bail!("unexpected response from the agent: {other:?}"),
        }
    }
    Ok(())
}

fn alerts_watch(
    state: &StateDir,
    json: bool,
    recent: usize,
    severity: Option<Severity>,
    rule: Option<String>,
    follow: bool,
) -> anyhow::Result<()> {
    let client = Client::send(
        &state.socket(),
        &Request::Alerts {
            follow,
            recent,
            filter: crate::api::feed::AlertQuery {
                severity,
                rule,
                ..Default::default()
            },
        },
    )?;
    let color = color();
    let mut out = std::io::stdout().lock();
    for resp in client {
        match resp? {
            Response::Alert(n) => {
                let line = if json {
                    serde_json::to_string(&n.alert)?
                } else {
                    format_human(&n.alert, color)
                };
                if writeln!(out, "{line}").is_err() {
                    return Ok(());
                }
                let _ = out.flush();
            }
            Response::Lost(n) => {
                eprintln!(
                    "sensor: this terminal fell behind; {n} alerts were not shown (the alert log has them)"
                );
            }
            Response::Subscribed => {}
            other => bail!("unexpected response from the agent: {other:?}"),
        }
    }
    Ok(())
}

fn record(state: &StateDir, args: RecordArgs) -> anyhow::Result<()> {
    let client = Client::send(
        &state.socket(),
        &Request::Events {
            follow: true,
            recent: 0,
            filter: args.filter.filter(),
        },
    )?;
    // The agent has our subscription once it answers a status request after it.
    let mut probe = Client::send(&state.socket(), &Request::Status)?;
    let _ = probe.next();
    eprintln!("recording");
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    // The agent streams until we hang up; a reader thread lets us stop on time even when no
    // events arrive.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for r in client {
            if tx.send(r).is_err() {
                break;
            }
        }
    });
    let (mut events, mut lost) = (0u64, 0u64);
    stop_on_signals();
    loop {
        if STOP.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(w) => w.min(Duration::from_millis(100)),
                None => break,
            },
            None => Duration::from_millis(100),
        };
        match rx.recv_timeout(wait) {
            Ok(Ok(Response::Event(ev))) => {
                serde_json::to_writer(&mut out, &ev)?;
                out.write_all(b"\n")?;
                events += 1;
            }
            Ok(Ok(Response::Lost(n))) => lost += n,
            Ok(Ok(Response::Subscribed)) => {}
            Ok(Ok(other)) => bail!("unexpected response from the agent: {other:?}"),
            Ok(Err(e)) => return Err(e.into()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    out.flush()?;
    eprintln!(
        "recorded {events} events to {}{}",
        args.output.display(),
        if lost > 0 {
            format!(" ({lost} lost: the recorder fell behind)")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn incidents_cmd(state: &StateDir, command: IncidentsCommand) -> anyhow::Result<()> {
    if let IncidentsCommand::Report { id, out } = &command {
        return respond::report(state, id, out);
    }
    let Response::Incidents(list) = Client::ask(&state.socket(), &Request::Incidents)? else {
        bail!("unexpected response from the agent");
    };
    match command {
        IncidentsCommand::List { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            for i in &list {
                let scope = match &i.scope {
                    crate::rules::incidents::IncidentScope::ProcessTree {
                        root_pid,
                        root_exe,
                        ..
                    } => format!(
                        "tree {root_pid} {}",
                        crate::escape::escape_str(root_exe, 80)
                    ),
                    crate::rules::incidents::IncidentScope::Container { id } => {
                        format!("container {}", crate::escape::escape_str(id, 64))
                    }
                    crate::rules::incidents::IncidentScope::Host => "host".into(),
                };
                println!(
                    "{} {:<6} {:<8} {} alerts {:<3} {} [{}]",
                    i.id.0,
                    format!("{:?}", i.status).to_lowercase(),
                    i.severity.as_str(),
                    i.first_time,
                    i.alert_count,
                    scope,
                    i.tactics.join(" > ")
                );
            }
            Ok(())
        }
        IncidentsCommand::Report { .. } => Ok(()),
        IncidentsCommand::Show { id, json } => {
            let found: Vec<_> = list.iter().filter(|i| i.id.0.starts_with(&id)).collect();
            let [inc] = found.as_slice() else {
                bail!("{} incidents match {id:?}", found.len());
            };
            let alerts: Vec<_> = read_recent(&state.alerts(), 100_000, &AlertFilter::default())?
                .alerts
                .into_iter()
                .filter(|a| a.fields.get("incident").and_then(|v| v.as_str()) == Some(&inc.id.0))
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"incident": inc, "alerts": alerts})
                    )?
                );
            } else {
                println!("{}", serde_json::to_string_pretty(inc)?);
                for a in &alerts {
                    println!("{}", format_human(a, color()));
                }
            }
            Ok(())
        }
    }
}

fn selftest(state: &StateDir, wait: f64, json: bool) -> anyhow::Result<()> {
    // Refuse early, with the usual message, when no agent is there to detect anything.
    let mut c = Client::send(&state.socket(), &Request::Status)?;
    let _ = c.next();
    let outcomes = crate::selftest::run_all(
        &state.alerts(),
        Duration::from_secs_f64(wait.clamp(0.0, 600.0)),
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        for o in &outcomes {
            let verdict = match (&o.detected_by, o.pids.is_empty()) {
                (Some(rule), _) => format!("detected by {rule}"),
                (None, true) => "could not run".to_owned(),
                (None, false) => "MISSED".to_owned(),
            };
            println!("{:<42} {:<28} {}", o.name, o.expect.join(","), verdict);
        }
    }
    let missed = outcomes.iter().filter(|o| o.detected_by.is_none()).count();
    if missed > 0 {
        bail!(
            "{missed} of {} simulations were not detected",
            outcomes.len()
        );
    }
    Ok(())
}

fn rules_reload(state: &StateDir) -> anyhow::Result<()> {
    let Response::Accepted(msg) = Client::ask(&state.socket(), &Request::ReloadRules)? else {
        bail!("unexpected response from the agent");
    };
    println!("{msg}");
    Ok(())
}

fn rules_cmd(config: Option<&Path>, command: RulesCommand) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    match command {
        RulesCommand::Check { paths, only } => {
            let (builtin, paths) = if paths.is_empty() {
                (cfg.rules.builtin, cfg.rules.paths.clone())
            } else {
                (!only, paths)
            };
            let v = ruleset::checked(builtin, &paths);
            for w in &v.warnings {
                eprintln!("warning: {w}");
            }
            for p in &v.problems {
                eprintln!("{p}");
            }
            match v.rules {
                Some(r) => {
                    let techniques: HashSet<&str> = r
                        .rules()
                        .iter()
                        .flat_map(|r| r.techniques.iter().map(|t| t.as_str()))
                        .chain(
                            r.sequences()
                                .iter()
                                .flat_map(|x| x.techniques.iter().map(|t| t.as_str())),
                        )
                        .chain(
                            r.thresholds()
                                .iter()
                                .flat_map(|x| x.techniques.iter().map(|t| t.as_str())),
                        )
                        .collect();
                    println!(
                        "ok: {} rules, {} sequences, {} thresholds, {} ATT&CK techniques, {} inline tests passed",
                        r.rules().len(),
                        r.sequences().len(),
                        r.thresholds().len(),
                        techniques.len(),
                        v.tests_run
                    );
                    Ok(())
                }
                None => bail!("{} problems; nothing was loaded", v.problems.len()),
            }
        }
        RulesCommand::List { json } => {
            let r = ruleset::load(&cfg.rules)?;
            for rule in r.rules() {
                let techniques: Vec<&str> = rule.techniques.iter().map(|t| t.as_str()).collect();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": rule.id, "name": rule.name, "severity": rule.severity,
                            "techniques": techniques, "tactics": rule.tactics,
                            "enabled": rule.mode == crate::rules::Mode::Alert,
                            "location": rule.location.to_string(),
                        })
                    );
                } else {
                    println!(
                        "{:<16} {:<8} {:<24} {}",
                        rule.id,
                        rule.severity.as_str(),
                        techniques.join(","),
                        rule.name
                    );
                }
            }
            Ok(())
        }
        RulesCommand::Reload => bail!("`rules reload` talks to the running agent"),
    }
}

/// Set by SIGINT/SIGTERM so `record` stops cleanly and flushes what it has.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop(_: nix::libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn stop_on_signals() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(error) = unsafe { signal(sig, SigHandler::Handler(on_stop)) } {
            tracing::warn!(%error, ?sig, "cannot catch signal; stopping may lose buffered events");
        }
    }
}

fn replay(config: Option<&Path>, args: ReplayArgs) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let mut text =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    // Recordings in the corpus are gzipped.
    if text.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&text[..]), &mut plain)
            .with_context(|| format!("decompressing {}", args.file.display()))?;
        text = plain;
    }
    let verdict = ruleset::checked(cfg.rules.builtin, &cfg.rules.paths);
    let Some(rules) = verdict.rules else {
        for p in &verdict.problems {
            eprintln!("{p}");
        }
        bail!("the ruleset was refused");
    };
    let stats = std::sync::Arc::new(Stats::default());
    let mut pipeline = Pipeline::new(
        &EnrichOptions::default(),
        Clock::now(),
        stats,
        Detector::new(rules, cfg.fold_window()),
    );
    // File contents are not in a recording: never scan this host's files for a replay.
    pipeline.set_dlp(cfg.dlp.redact, false);
    pipeline.detector.set_ioc(
        std::sync::Arc::new(crate::ioc::IocSet::load(&cfg.ioc.paths)?),
        true,
    );
    let mut store = match &args.baselines {
        Some(path) => {
            let store = crate::baseline::store::Store::open(path, cfg.baseline.keep_versions)?;
            let (loaded, problems) = store.load()?;
            for p in problems {
                eprintln!("warning: {p}");
            }
            let mut engine = crate::baseline::Engine::new(cfg.baseline.clone());
            engine.load(loaded);
            pipeline.baseline = Some(engine);
            Some(store)
        }
        None => None,
    };
    let color = color();
    let mut out = std::io::stdout().lock();
    let (mut events, mut alerts, mut bad) = (0u64, 0u64, 0u64);
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let ev: Event = match serde_json::from_slice(line) {
            Ok(ev) => ev,
            Err(e) => {
                bad += 1;
                eprintln!(
                    "{}:{}:{}: not an event: {e}",
                    args.file.display(),
                    i + 1,
                    e.column()
                );
                continue;
            }
        };
        events += 1;
        let outcome = pipeline.process_event(ev);
        if args.events
            && let Some(ev) = &outcome.event
        {
            let l = if args.json {
                serde_json::to_string(ev)?
            } else {
                format_event(ev, color)
            };
            writeln!(out, "{l}")?;
        }
        for a in outcome.alerts {
            alerts += 1;
            let l = if args.json {
                serde_json::to_string(&a)?
            } else {
                format_human(&a, color)
            };
            writeln!(out, "{l}")?;
        }
    }
    for a in pipeline.finish() {
        alerts += 1;
        let l = if args.json {
            serde_json::to_string(&a)?
        } else {
            format_human(&a, color)
        };
        writeln!(out, "{l}")?;
    }
    eprintln!("replayed {events} events: {alerts} alerts, {bad} unreadable lines");
    if let (Some(engine), Some(store)) = (pipeline.baseline.as_mut(), store.as_mut()) {
        // The replay's own clock decides whether quiet learners became stable.
        if let Some(t) = engine.event_clock() {
            engine.tick(t);
        }
        let st = engine.stats;
        store.save(&engine.take_changes(), Clock::unix_now())?;
        eprintln!(
            "baselines: {} workloads, {} events learned or scored, {} anomalies ({} below threshold, {} repeats suppressed), {} sessions not learned",
            engine.len(),
            st.events,
            st.anomalies,
            st.below_threshold,
            st.suppressed,
            st.sessions
        );
    }
    if bad > 0 {
        bail!("{bad} lines of {} were not events", args.file.display());
    }
    Ok(())
}

fn alerts_tail(
    state: &StateDir,
    follow: bool,
    json: bool,
    lines: usize,
    filter: AlertFilter,
) -> anyhow::Result<()> {
    let dir = state.alerts();
    // Open the follower first, so an alert written while we read history is not missed;
    // anything seen twice is skipped by id.
    let mut follower = if follow {
        Some(Follower::open(&dir, StartAt::End)?)
    } else {
        None
    };
    let recent = read_recent(&dir, lines, &filter)?;
    if recent.skipped_lines > 0 {
        eprintln!(
            "sensor: {} unreadable lines in the alert log were skipped",
            recent.skipped_lines
        );
    }
    let color = color();
    let mut out = std::io::stdout().lock();
    let mut shown: HashSet<String> = HashSet::new();
    let print = |a: &crate::alert::Alert, out: &mut std::io::StdoutLock| -> bool {
        let l = if json {
            serde_json::to_string(a).unwrap_or_default()
        } else {
            format_human(a, color)
        };
        writeln!(out, "{l}").is_ok() && out.flush().is_ok()
    };
    for a in &recent.alerts {
        shown.insert(a.id.clone());
        if !print(a, &mut out) {
            return Ok(());
        }
    }
    let Some(follower) = follower.as_mut() else {
        return Ok(());
    };
    loop {
        for a in follower.poll()? {
            if filter.matches(&a) && shown.insert(a.id.clone()) && !print(&a, &mut out) {
                return Ok(());
            }
        }
        if shown.len() > 100_000 {
            shown.clear();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Builds every output (reading its TLS and secret files) and, unless `offline`, connects to
/// its destination; every failure is listed, then the check fails.
fn check_outputs(config: &Config, offline: bool) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let mut senders = Vec::new();
    for o in &config.outputs {
        match crate::output::Sender::build(o) {
            Ok(s) => senders.push((o, s)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !offline && !senders.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            for (o, s) in &mut senders {
                match s.probe().await {
                    Ok(()) if o.kind() == crate::output::config::SinkKind::Stdout => {}
                    Ok(()) => println!("output {}: {} reachable", o.name, o.destination()),
                    Err(e) => problems.push(format!(
                        "output {}: cannot reach {}: {e}",
                        o.name,
                        o.destination()
                    )),
                }
            }
        });
    }
    for (o, _) in &senders {
        if o.plaintext() {
            eprintln!(
                "warning: output {} sends without TLS ({})",
                o.name,
                o.destination()
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

fn alerts_test(
    state: &StateDir,
    count: u32,
    severity: Severity,
    message: Option<String>,
) -> anyhow::Result<()> {
    let mut client = Client::send(
        &state.socket(),
        &Request::TestAlert {
            count,
            severity,
            message,
        },
    )?;
    match client.next() {
        Some(Ok(Response::TestAlerts(ids))) => {
            println!(
                "{} test alert(s) raised; first id {}",
                ids.len(),
                ids.first().map_or("-", String::as_str)
            );
            Ok(())
        }
        Some(Ok(Response::Error(e))) => bail!("the agent refused: {e}"),
        Some(Err(e)) => Err(e.into()),
        _ => bail!("unexpected response from the agent"),
    }
}

fn status(state: &StateDir, json: bool) -> anyhow::Result<()> {
    let Response::Status(s) = Client::ask(&state.socket(), &Request::Status)? else {
        bail!("unexpected response from the agent");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", human_status(&s));
    }
    Ok(())
}

pub fn human_status(s: &StatusReport) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "sensor {} pid {} up {}s mode {}\nstate dir {}\n",
        s.version, s.pid, s.uptime_secs, s.mode, s.state_dir
    ));
    o.push_str(&format!(
        "probes: {} attached, {} failed\n",
        s.probes.attached.len(),
        s.probes.failed.len()
    ));
    for (p, why) in &s.probes.failed {
        o.push_str(&format!("  failed {p}: {why}\n"));
    }
    if !s.probes.absent.is_empty() {
        let names: Vec<&str> = s.probes.absent.keys().map(String::as_str).collect();
        o.push_str(&format!(
            "  not applicable here (no such syscall in this kernel): {}\n",
            names.join(", ")
        ));
    }
    o.push_str("events by kind   seen(kernel)  received  dropped  filtered  errors\n");
    for (k, c) in &s.kernel {
        o.push_str(&format!(
            "  {:<12} {:>14} {:>9} {:>8} {:>9} {:>7}\n",
            k,
            c.seen,
            s.received.get(k).copied().unwrap_or(0),
            c.dropped,
            c.filtered,
            c.errors
        ));
    }
    o.push_str(&format!(
        "losses: {} total (ring full {}, unbuildable {}, undecodable {}, slow subscribers {})\n",
        s.losses.total(),
        s.losses.kernel_dropped.values().sum::<u64>(),
        s.losses.kernel_errors,
        s.losses.decode_errors,
        s.losses.subscriber_dropped
    ));
    o.push_str(&format!(
        "rules: {} ({} enabled), generation {}; indicators: {}; event-to-alert latency p50 {:.1} ms, p99 {:.1} ms over {} alerts\n",
        s.rules.loaded,
        s.rules.enabled,
        s.rules.generation,
        s.ioc_indicators,
        s.alert_latency_p50_ms,
        s.alert_latency_p99_ms,
        s.alert_latency_samples
    ));
    o.push_str(&format!(
        "process table: {} entries, {} evicted; cgroups known: {}\nalerts: {} ({} log write errors); subscribers: {}\n",
        s.process_table_len,
        s.process_table_evictions,
        s.cgroups_known,
        s.alerts,
        s.alert_log_errors,
        s.subscribers
    ));
    let b = &s.baseline;
    if let Some(e) = &b.error {
        o.push_str(&format!("baselines: OFF: {e}\n"));
    } else if b.enabled {
        o.push_str(&format!(
            "baselines: {} workloads ({} learning, {} monitoring, {} frozen), {} values, store {} KiB; syscall learning {}; anomalies {} ({} below threshold, {} repeats suppressed)\n",
            b.workloads,
            b.learning,
            b.monitoring,
            b.frozen,
            b.values,
            b.store_bytes / 1024,
            if b.syscall_learning { "on" } else { "idle" },
            b.stats.anomalies,
            b.stats.below_threshold,
            b.stats.suppressed
        ));
    } else {
        o.push_str("baselines: disabled in the config\n");
    }
    if b.enabled && b.error.is_none() {
        o.push_str(&format!(
            "enforcement: {} workloads shadowed or enforced in the kernel; backends: {}\n",
            b.enforced_in_kernel, b.enforcement_backend
        ));
        if let Some(e) = &b.enforcement_error {
            o.push_str(&format!("  enforcement error: {e}\n"));
        }
    }
    let r = &s.respond;
    o.push_str(&format!(
        "response: {} playbooks; {} containments in force, {} runs waiting for approval; actions ok {}, dry-run {}, refused {}, failed {}; kernel: {} execs denied, {} connects refused, {} packets dropped{}\n",
        r.playbooks,
        r.active,
        r.pending_approval,
        r.counters.actions_ok,
        r.counters.dry_run,
        r.counters.actions_refused,
        r.counters.actions_failed,
        r.kernel.exec_denied,
        r.kernel.connect_denied,
        r.kernel.packets_dropped,
        if r.counters.auto_latency_ms_max > 0.0 {
            format!(
                "; automatic action latency last {:.1} ms, max {:.1} ms",
                r.counters.auto_latency_ms_last, r.counters.auto_latency_ms_max
            )
        } else {
            String::new()
        }
    ));
    if s.outputs.is_empty() {
        o.push_str("outputs: none besides the alert log\n");
    } else {
        o.push_str("outputs          sent  failed  rejected  queued  dropped  latency avg/max ms  destination\n");
    }
    for out in &s.outputs {
        o.push_str(&format!(
            "  {:<12} {:>6} {:>7} {:>9} {:>7} {:>8} {:>9.1}/{:<9.1} {} {}{}\n",
            crate::escape::escape_str(&out.name, 40),
            out.sent,
            out.failed,
            out.rejected,
            out.queued,
            out.dropped,
            out.latency_avg_ms,
            out.latency_max_ms,
            if out.destination == out.kind {
                ""
            } else {
                &out.kind
            },
            crate::escape::escape_str(&out.destination, 200),
            if out.plaintext { " PLAINTEXT" } else { "" }
        ));
        if let Some(e) = &out.last_error {
            o.push_str(&format!(
                "    last error: {}\n",
                crate::escape::escape_str(e, 300)
            ));
        }
    }
    if let Some(m) = &s.metrics_listen {
        o.push_str(&format!("metrics: http://{m}/metrics\n"));
    }
    o
}
