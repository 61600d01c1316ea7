//! Harness for the kernel tests: start the real agent binary on a private state directory,
//! subscribe to its live events, trigger real behaviour, wait for the matching event with a
//! deadline (never a fixed sleep).

pub mod receivers;
pub mod runc;
pub mod webapp;
pub mod webdriver;

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use sensor::{
    alert::Alert,
    api::{EventFilter, Request, Response, StatusReport, client::Client},
    event::Event,
    output::alert_log::{AlertFilter, read_recent},
};

/// The agent binary: `SENSOR_BIN` (set by `cargo xtask test`), else the workspace's debug build.
pub fn sensor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SENSOR_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/sensor")
}

/// How long a kernel test waits for an event it caused.
pub const WAIT: Duration = Duration::from_secs(10);

/// A filter for these event kinds only.
pub fn kinds(k: &[sensor::event::Kind]) -> EventFilter {
    EventFilter {
        kinds: k.to_vec(),
        ..EventFilter::default()
    }
}

/// A rule firing on an exec whose arguments contain `marker`, with inline tests.
pub fn marker_rule(id: &str, marker: &str) -> String {
    format!(
        r#"- rule:
    id: {id}
    name: Marker exec {id}
    description: test rule
    severity: high
    mitre: {{tactics: [execution], techniques: [T1059.004]}}
    condition: evt.type = exec and proc.args contains {marker}
    output: "marker exec %proc.cmdline"
    tests:
      match:
        - {{evt.type: exec, proc.exe: /bin/true, proc.args: [{marker}]}}
      no_match:
        - {{evt.type: exec, proc.exe: /bin/true, proc.args: [other]}}
"#
    )
}

/// `sensor api tls-init` into a fresh directory: a private CA, server and client certificates.
pub fn tls_init(hosts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(sensor_bin());
    cmd.args(["api", "tls-init", "--dir"]).arg(dir.path());
    for h in hosts {
        cmd.args(["--host", h]);
    }
    let out = cmd.output().expect("run tls-init");
    assert!(
        out.status.success(),
        "tls-init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// `config` (the default's text, or one made from it) with `[api.remote]` enabled on
/// `listen`, then `rest` (more `[api.remote]` lines, or `tls_cert`/`tls_key`).
pub fn with_remote_api(config: &str, listen: &str, rest: &str) -> String {
    let head = "enabled = false\nlisten = \"127.0.0.1:8443\"\n";
    assert!(
        config.contains(head),
        "the config has no default [api.remote]"
    );
    config.replace(
        head,
        &format!("enabled = true\nlisten = \"{listen}\"\n{rest}\n"),
    )
}

/// [`with_remote_api`] serving HTTPS with the certificates of [`tls_init`] in `certs`.
pub fn with_tls_api(config: &str, port: u16, certs: &Path, extra: &str) -> String {
    with_remote_api(
        config,
        &format!("127.0.0.1:{port}"),
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n{extra}",
            certs.join("server.crt").display(),
            certs.join("server.key").display()
        ),
    )
}

/// Kernel tests need root to load probes. Says why when it cannot run (never silently).
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "SKIP {test}: kernel tests load eBPF programs and need root (run `cargo xtask test` as root)"
    );
    false
}

pub struct Agent {
    child: Option<Child>,
    pub state: tempfile::TempDir,
    pub log: PathBuf,
}

impl Agent {
    /// Start with the embedded default config, or with `config` (TOML text).
    pub fn start(config: Option<&str>) -> Agent {
        let state = tempfile::Builder::new()
            .prefix("sensor-kt-")
            .tempdir()
            .expect("state dir");
        Self::start_in(state, config)
    }

    /// Start on a given state directory (owned by the agent handle from now on).
    pub fn start_in(state: tempfile::TempDir, config: Option<&str>) -> Agent {
        Self::start_env(state, config, &[])
    }

    /// Like [`Agent::start_in`], with extra environment variables for the agent.
    pub fn start_env(
        state: tempfile::TempDir,
        config: Option<&str>,
        env: &[(&str, &str)],
    ) -> Agent {
        let log = state.path().join("agent.log");
        let mut cmd = Command::new(sensor_bin());
        cmd.envs(env.iter().copied());
        cmd.arg("--state-dir").arg(state.path());
        if let Some(text) = config {
            let cfg = state.path().join("sensor.toml");
            std::fs::write(&cfg, text).expect("write config");
            cmd.arg("--config").arg(&cfg);
        }
        let logf = std::fs::File::create(&log).expect("agent log");
        // If the test process dies without running Drop (killed by a timeout), the agent must
        // not outlive it.
        // SAFETY: set_pdeathsig is async-signal-safe (a single prctl call).
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .arg("run")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", sensor_bin().display()));
        let mut agent = Agent {
            child: Some(child),
            state,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if agent.try_status().is_some() {
                return agent;
            }
            if let Some(c) = agent.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("agent exited early ({status}):\n{}", agent.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agent not ready within 30 s:\n{}", agent.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn socket(&self) -> PathBuf {
        self.state.path().join("sensor.sock")
    }

    fn try_status(&self) -> Option<StatusReport> {
        let mut c = Client::send(&self.socket(), &Request::Status).ok()?;
        match c.next()? {
            Ok(Response::Status(s)) => Some(*s),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusReport {
        self.try_status().expect("agent status")
    }

    /// Live events matching `filter`, from now on.
    pub fn subscribe(&self, filter: EventFilter) -> EventStream {
        let mut client = Client::send(
            &self.socket(),
            &Request::Events {
                follow: true,
                recent: 0,
                filter,
            },
        )
        .expect("subscribe");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for r in client.by_ref().map_while(Result::ok) {
                if tx.send(r).is_err() {
                    break;
                }
            }
        });
        // The agent's first line says the subscription is registered: from then on nothing
        // the test triggers can be missed. (A status round trip on another connection did
        // not guarantee that: the two connections' handlers run concurrently.)
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Response::Subscribed) => {}
            other => panic!("subscription not confirmed: {other:?}"),
        }
        EventStream { rx, lost: 0 }
    }

    pub fn alerts(&self) -> Vec<Alert> {
        read_recent(
            &self.state.path().join("alerts"),
            10_000,
            &AlertFilter::default(),
        )
        .map(|r| r.alerts)
        .unwrap_or_default()
    }

    /// The first alert matching `pred` in the alert log within `within`.
    pub fn wait_alert(&self, within: Duration, pred: impl Fn(&Alert) -> bool) -> Option<Alert> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(a) = self.alerts().into_iter().find(|a| pred(a)) {
                return Some(a);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run a CLI command against this agent's state dir.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(sensor_bin())
            .arg("--state-dir")
            .arg(self.state.path())
            .args(args)
            .output()
            .expect("run sensor cli")
    }

    /// A CLI command that must succeed; its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "sensor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The audit trail's records (`sensor audit show --json`).
    pub fn audit_entries(&self) -> Vec<serde_json::Value> {
        self.cli_ok(&["audit", "show", "--json"])
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A CLI command that must succeed and print JSON.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.cli_ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("sensor {args:?}: {e}: {text}"))
    }

    /// A workload's line of `sensor baseline list --json`.
    pub fn baseline(&self, workload: &str) -> Option<serde_json::Value> {
        let list = self.cli_json(&["baseline", "list", "--json"]);
        list.as_array()?
            .iter()
            .find(|s| s["workload"] == workload)
            .cloned()
    }

    /// Stop, then start again on the same state directory.
    pub fn restart(mut self, config: Option<&str>) -> Agent {
        self.stop();
        let placeholder = tempfile::tempdir().expect("tempdir");
        let state = std::mem::replace(&mut self.state, placeholder);
        Agent::start_in(state, config)
    }

    /// Kill with SIGKILL (no shutdown work at all), then start again on the same state
    /// directory: what a crash or an OOM kill leaves behind must be recovered.
    pub fn kill9_and_restart(mut self, config: Option<&str>) -> Agent {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let placeholder = tempfile::tempdir().expect("tempdir");
        let state = std::mem::replace(&mut self.state, placeholder);
        Agent::start_in(state, config)
    }

    /// Stop with SIGTERM (as systemd does) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct EventStream {
    rx: mpsc::Receiver<Response>,
    /// Events the agent said this subscriber lost.
    pub lost: u64,
}

impl EventStream {
    /// The first event matching `pred` within `within`.
    pub fn wait_for(&mut self, within: Duration, pred: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(Response::Event(ev)) if pred(&ev) => return Some(*ev),
                Ok(Response::Lost(n)) => self.lost += n,
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Like [`EventStream::wait_for`], but on a timeout returns every event seen meanwhile
    /// (for a failure message that shows what arrived instead).
    pub fn wait_for_or_seen(
        &mut self,
        within: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event, Vec<Event>> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(seen);
            };
            match self.rx.recv_timeout(left) {
                Ok(Response::Event(ev)) if pred(&ev) => return Ok(*ev),
                Ok(Response::Event(ev)) => seen.push(*ev),
                Ok(Response::Lost(n)) => self.lost += n,
                Ok(_) => {}
                Err(_) => return Err(seen),
            }
        }
    }

    /// Every event until `within` passes with nothing new.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.recv_timeout(quiet) {
            match r {
                Response::Event(ev) => out.push(*ev),
                Response::Lost(n) => self.lost += n,
                _ => {}
            }
        }
        out
    }
}
