//! `cargo xtask bench`: what the sensor costs the workloads it watches.
//!
//! Small C programs (bench/*.c, compiled here with `cc -O2`) each time one hot path: openat on
//! one file (the in-kernel dedup filter), openat over distinct files (events reach userspace),
//! getpid (no probe: checks we add nothing elsewhere), an exec storm and a loopback connect
//! loop. Every round runs all of them under four configurations: no agent, the agent with
//! empty probes on the same hooks, the full agent in steady state (baselines do not auto-learn,
//! so the syscall recorder stays detached) and the full agent while every workload learns (the
//! default config: the `raw_syscalls/sys_enter` recorder is attached). The configurations
//! rotate order from round to round so that machine drift hits all columns alike, and results
//! are medians and ratios against "none". In full mode the agent's counters are read around
//! each benchmark to account for every event (drops above all) and its memory is read from
//! /proc.
//!
//! Missing a target is a result, not an error: the command fails only when something breaks
//! (a benchmark crashes, the agent does not start or dies).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

pub struct BenchOpts {
    pub sensor_bin: PathBuf,
    pub rounds: usize,
    pub quick: bool,
    pub out_json: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// What runs

/// Distinct files the openat_many benchmark cycles through (one pass per child process).
const DISTINCT_FILES: u64 = 4096;
/// Parallel workers in the exec storm (the machine has 2 cores).
const EXEC_WORKERS: u64 = 2;
/// The longest any one benchmark may take before it counts as hung.
const BENCH_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the agent may take to answer `status` after starting.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent may take to exit after SIGTERM before it is killed.
const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between benchmarks in every configuration, so each starts from a quiet machine (in
/// full mode the agent is also given time to drain its ring buffer, see `settle`).
const PAUSE: Duration = Duration::from_millis(200);
/// How long the learning agent may take to attach its syscall recorder after answering.
const LEARNING_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Events still in flight when a full-mode reading counts as drained: the `sensor status`
/// processes that read the counters produce a few exec/fork/exit events of their own.
const DRAIN_SLACK: u64 = 16;

/// The C programs under bench/, compiled to target/bench/.
const PROGRAMS: &[&str] = &[
    "openat_one",
    "openat_many",
    "getpid",
    "exec_storm",
    "connect_loop",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// No agent running.
    None,
    /// The agent with every probe attached, each returning at once.
    Empty,
    /// The agent as shipped, in steady state: baselines do not auto-learn, so the syscall
    /// recorder (`raw_syscalls/sys_enter`) stays detached.
    Full,
    /// The agent with the default config while every workload learns: the syscall recorder is
    /// attached and costs every syscall.
    Learning,
}

const MODES: [Mode; 4] = [Mode::None, Mode::Empty, Mode::Full, Mode::Learning];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Empty => "empty",
            Mode::Full => "full",
            Mode::Learning => "learning",
        }
    }

    /// The mode the agent reports in `status` (learning is a full agent too).
    fn agent_mode_name(self) -> &'static str {
        match self {
            Mode::Learning => Mode::Full.name(),
            m => m.name(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BenchId {
    OpenatOne,
    OpenatMany,
    Getpid,
    ExecStorm,
    Connect,
}

const BENCHES: [BenchId; 5] = [
    BenchId::OpenatOne,
    BenchId::OpenatMany,
    BenchId::Getpid,
    BenchId::ExecStorm,
    BenchId::Connect,
];

impl BenchId {
    fn key(self) -> &'static str {
        match self {
            BenchId::OpenatOne => "openat_one",
            BenchId::OpenatMany => "openat_many",
            BenchId::Getpid => "getpid",
            BenchId::ExecStorm => "exec_storm",
            BenchId::Connect => "connect",
        }
    }

    fn label(self) -> &'static str {
        match self {
            BenchId::OpenatOne => "openat+close, one file",
            BenchId::OpenatMany => "openat+close, 4096 files",
            BenchId::Getpid => "getpid (no probe)",
            BenchId::ExecStorm => "exec storm, 2 workers",
            BenchId::Connect => "TCP connect+accept",
        }
    }

    /// Unit of the reported value; lower is better for every one of them.
    fn unit(self) -> &'static str {
        match self {
            BenchId::ExecStorm => "s",
            BenchId::Connect => "us/op",
            _ => "ns/op",
        }
    }

    /// Operations per run. Full sizes kept a 3-round run of three modes under about 10 minutes
    /// here; the learning mode adds about a third to that.
    fn ops(self, quick: bool) -> u64 {
        let full = match self {
            BenchId::OpenatOne => 1_000_000,
            BenchId::OpenatMany => 100 * DISTINCT_FILES,
            BenchId::Getpid => 5_000_000,
            BenchId::ExecStorm => 20_000,
            BenchId::Connect => 20_000,
        };
        if quick { full / 10 } else { full }
    }

    /// The reported value from a run's raw numbers.
    fn value(self, s: &Sample) -> f64 {
        let ns = s.ns as f64;
        let per_op = ns / s.ops.max(1) as f64;
        match self {
            BenchId::ExecStorm => ns / 1e9,
            BenchId::Connect => per_op / 1e3,
            _ => per_op,
        }
    }
}

/// One benchmark run as the program reported it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    ops: u64,
    ns: u64,
}

// ---------------------------------------------------------------------------------------------
// Entry point

pub fn run(opts: BenchOpts) -> anyhow::Result<()> {
    if opts.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if !opts.sensor_bin.is_file() {
        bail!("sensor binary {} not found", opts.sensor_bin.display());
    }
    let programs = Programs::build(
        &workspace_root().join("bench"),
        &workspace_root().join("target/bench"),
    )?;
    let work = TempDir::create(
        &std::env::temp_dir().join(format!("sensor-bench-{}", std::process::id())),
    )?;
    let fixtures = Fixtures::create(work.path())?;

    let mut records = Vec::new();
    for round in 0..opts.rounds {
        for (slot, mode) in rotated(round).into_iter().enumerate() {
            eprintln!(
                "bench: round {}/{}, {} ({}/{})",
                round + 1,
                opts.rounds,
                mode.name(),
                slot + 1,
                MODES.len()
            );
            let run_dir =
                TempDir::create(&work.path().join(format!("run-{round}-{}", mode.name())))?;
            let record = run_config(&opts, &programs, &fixtures, &run_dir, round, mode)?;
            records.push(record);
        }
    }

    let report = Report::new(&opts, &programs, records);
    print!("{}", report.text());
    if let Some(path) = &opts.out_json {
        fs::write(path, report.json()).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// Round r runs the modes starting from the r-th, so each mode takes each slot equally often.
fn rotated(round: usize) -> [Mode; 4] {
    let mut m = MODES;
    m.rotate_left(round % MODES.len());
    m
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

// ---------------------------------------------------------------------------------------------
// One configuration in one round

/// Everything measured in one configuration of one round.
struct Record {
    round: usize,
    mode: Mode,
    samples: Vec<(BenchId, Sample)>,
    /// Full mode: the agent's counters over each benchmark.
    events: Vec<(BenchId, Counters)>,
    /// Agent modes: (VmHWM, VmRSS) in KiB after the benchmarks.
    rss_kib: Option<(u64, u64)>,
    /// Other `sensor` processes seen on the machine (they skew every number).
    others: Vec<u32>,
}

fn run_config(
    opts: &BenchOpts,
    programs: &Programs,
    fixtures: &Fixtures,
    run_dir: &TempDir,
    round: usize,
    mode: Mode,
) -> anyhow::Result<Record> {
    let agent = match mode {
        Mode::None => None,
        Mode::Empty | Mode::Full | Mode::Learning => {
            Some(Agent::start(&opts.sensor_bin, run_dir.path(), mode)?)
        }
    };
    let mut record = Record {
        round,
        mode,
        samples: Vec::new(),
        events: Vec::new(),
        rss_kib: None,
        others: other_agents(agent.as_ref().map(|a| a.pid)),
    };
    // Full mode: counters before each benchmark, so each gets its own delta.
    let mut before = match (&agent, mode) {
        (Some(a), Mode::Full) => Some(a.settle()?),
        _ => None,
    };
    for bench in BENCHES {
        std::thread::sleep(PAUSE);
        let sample = programs.run(bench, fixtures, opts.quick)?;
        record.samples.push((bench, sample));
        if let (Some(a), Some(prev)) = (&agent, before.as_mut()) {
            let now = a.settle()?;
            record.events.push((bench, now.minus(prev)));
            *prev = now;
        }
    }
    if let Some(mut a) = agent {
        a.check_alive()?;
        record.rss_kib = Some(a.rss_kib()?);
        // Checked at the end, once the agent has had its baseline ticks: the recorder must
        // have stayed off in steady state, and on (for some workload) while learning.
        let recording = syscall_learning(&a.status()?)?;
        match mode {
            Mode::Full if recording => bail!(
                "full (steady-state) mode: the agent attached its syscall recorder although \
                 auto_learn = false; its numbers would include learning"
            ),
            Mode::Learning if !recording => eprintln!(
                "bench: WARNING: learning mode: the syscall recorder was detached by the end \
                 (every workload stopped learning); these numbers understate learning"
            ),
            _ => {}
        }
        a.stop()?;
    }
    // Checked at both ends, so an agent that came or went meanwhile is noticed too.
    for pid in other_agents(None) {
        if !record.others.contains(&pid) {
            record.others.push(pid);
        }
    }
    if !record.others.is_empty() {
        eprintln!(
            "bench: WARNING: other sensor processes ran meanwhile ({:?}); these numbers are skewed",
            record.others
        );
    }
    Ok(record)
}

/// Other sensor agents (say, someone's kernel tests) skew every number: their probes are on
/// the same hooks, in the "none" column too. They are recorded and reported, not refused.
fn other_agents(ours: Option<u32>) -> Vec<u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| Some(pid) != ours)
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sensor")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The C programs

struct Programs {
    dir: PathBuf,
    /// The exec storm's target; static unless the toolchain cannot link statically.
    noop: PathBuf,
    noop_static: bool,
}

impl Programs {
    /// Compile every program (always: it takes a second and can never be stale).
    fn build(src: &Path, out: &Path) -> anyhow::Result<Programs> {
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        for name in PROGRAMS {
            cc(src, out, name, &[])?;
        }
        // A static no-op keeps the dynamic loader out of the exec storm; fall back to a dynamic
        // one where libc.a is missing.
        let noop_static = cc(src, out, "noop", &["-static"]).is_ok();
        if !noop_static {
            cc(src, out, "noop", &[])?;
        }
        Ok(Programs {
            dir: out.to_path_buf(),
            noop: out.join("noop"),
            noop_static,
        })
    }

    fn run(&self, bench: BenchId, fx: &Fixtures, quick: bool) -> anyhow::Result<Sample> {
        let ops = bench.ops(quick).to_string();
        let mut cmd = match bench {
            BenchId::OpenatOne => self.cmd("openat_one", [fx.one_file.as_os_str(), ops.as_ref()]),
            BenchId::OpenatMany => {
                let n = DISTINCT_FILES.to_string();
                self.cmd(
                    "openat_many",
                    [fx.files_dir.as_os_str(), n.as_ref(), ops.as_ref()],
                )
            }
            BenchId::Getpid => self.cmd("getpid", [ops.as_ref()]),
            BenchId::ExecStorm => {
                let w = EXEC_WORKERS.to_string();
                self.cmd(
                    "exec_storm",
                    [self.noop.as_os_str(), ops.as_ref(), w.as_ref()],
                )
            }
            BenchId::Connect => self.cmd("connect_loop", [ops.as_ref()]),
        };
        let out = run_with_timeout(&mut cmd, BENCH_TIMEOUT)
            .with_context(|| format!("benchmark {}", bench.key()))?;
        parse_sample(&String::from_utf8_lossy(&out.stdout))
            .with_context(|| format!("benchmark {}", bench.key()))
    }

    fn cmd<'a>(&self, name: &str, args: impl IntoIterator<Item = &'a std::ffi::OsStr>) -> Command {
        let mut c = Command::new(self.dir.join(name));
        c.args(args);
        c
    }
}

fn cc(src: &Path, out: &Path, name: &str, extra: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("cc");
    cmd.args(["-O2", "-Wall", "-Wextra", "-Werror"])
        .args(extra)
        .arg("-o")
        .arg(out.join(name))
        .arg(src.join(format!("{name}.c")));
    let output = cmd
        .output()
        .context("running cc (is a C compiler installed?)")?;
    if !output.status.success() {
        bail!(
            "compiling {name}.c failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Run a benchmark in its own process group, so a hung one can be killed with all its children.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<Output> {
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out.with_context(|| format!("waiting for {cmd:?}"))?,
        Err(_) => {
            signal(-(pid as i32), SIGKILL);
            bail!("{cmd:?} did not finish within {timeout:?}; killed it");
        }
    };
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(out)
}

/// The `BENCH ops=<n> ns=<n>` line every program prints.
fn parse_sample(stdout: &str) -> anyhow::Result<Sample> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("BENCH "))
        .with_context(|| format!("no BENCH line in output {stdout:?}"))?;
    let field = |key: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key}= in {line:?}"))?
            .parse()
            .with_context(|| format!("bad {key}= in {line:?}"))
    };
    let sample = Sample {
        ops: field("ops")?,
        ns: field("ns")?,
    };
    if sample.ops == 0 || sample.ns == 0 {
        bail!("empty result {line:?}");
    }
    Ok(sample)
}

/// Files the openat benchmarks use, created once per run (not under an ignored prefix).
struct Fixtures {
    one_file: PathBuf,
    files_dir: PathBuf,
}

impl Fixtures {
    fn create(dir: &Path) -> anyhow::Result<Fixtures> {
        let one_file = dir.join("one");
        fs::write(&one_file, b"sensor bench\n")
            .with_context(|| format!("creating {}", one_file.display()))?;
        let files_dir = dir.join("files");
        fs::create_dir(&files_dir).with_context(|| format!("creating {}", files_dir.display()))?;
        for i in 0..DISTINCT_FILES {
            // Names must match openat_many.c's "f%05ld".
            let p = files_dir.join(format!("f{i:05}"));
            fs::write(&p, b"").with_context(|| format!("creating {}", p.display()))?;
        }
        Ok(Fixtures {
            one_file,
            files_dir,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The agent

struct Agent {
    bin: PathBuf,
    state_dir: PathBuf,
    log: PathBuf,
    child: Child,
    /// The agent's pid as it reports it in `status`.
    pid: u32,
    exited: Option<ExitStatus>,
}

impl Agent {
    /// Start the agent on a fresh state dir under `run_dir` and wait until it answers.
    fn start(bin: &Path, run_dir: &Path, mode: Mode) -> anyhow::Result<Agent> {
        let state_dir = run_dir.join("state");
        let log = run_dir.join("agent.log");
        let log_file =
            fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .context("duplicating the agent log handle")?;
        let mut cmd = Command::new(bin);
        cmd.arg("--state-dir").arg(&state_dir);
        match mode {
            Mode::Full => {
                cmd.arg("--config").arg(derived_config(
                    bin,
                    run_dir,
                    "steady.toml",
                    &[("auto_learn = true", "auto_learn = false")],
                )?);
            }
            // Learning that does not end by itself during the run (the default ends it after
            // 50 000 quiet events, which the benchmarks reach).
            Mode::Learning => {
                cmd.arg("--config").arg(derived_config(
                    bin,
                    run_dir,
                    "learning.toml",
                    &[
                        (
                            "stable_quiet_events = 50000",
                            "stable_quiet_events = 1000000000",
                        ),
                        ("stable_after_secs = 3600", "stable_after_secs = 86400"),
                    ],
                )?);
            }
            Mode::None | Mode::Empty => {}
        }
        cmd.arg("run");
        if mode == Mode::Empty {
            cmd.args(["--probe-mode", "empty"]);
        }
        cmd.stdin(Stdio::null()).stdout(log_file).stderr(log_err);
        // SAFETY: the closure only calls prctl, which is async-signal-safe. It makes the kernel
        // SIGTERM the agent should this process die without cleaning up (e.g. SIGKILL).
        unsafe {
            cmd.pre_exec(|| {
                prctl(PR_SET_PDEATHSIG, SIGTERM as u64);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut agent = Agent {
            bin: bin.to_path_buf(),
            state_dir,
            log,
            pid: child.id(),
            child,
            exited: None,
        };
        let status = agent.wait_ready()?;
        agent.pid = get_u64(&status, &["pid"])? as u32;
        let reported = status
            .path(&["mode"])
            .ok()
            .and_then(json::Value::as_str)
            .unwrap_or("?");
        if reported != mode.agent_mode_name() {
            bail!(
                "agent reports mode {reported:?}, expected {:?}",
                mode.agent_mode_name()
            );
        }
        if mode == Mode::Learning {
            agent.wait_syscall_learning()?;
        }
        Ok(agent)
    }

    /// Learning mode: wait until the syscall recorder is attached, so that the numbers really
    /// include it. Workloads appear (and start learning) as soon as anything runs, the
    /// `sensor status` processes polling here included.
    fn wait_syscall_learning(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + LEARNING_START_TIMEOUT;
        loop {
            self.check_alive()?;
            if syscall_learning(&self.status()?)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "learning mode: the agent did not attach its syscall recorder \
                     (status baseline.syscall_learning still false after \
                     {LEARNING_START_TIMEOUT:?}); its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_ready(&mut self) -> anyhow::Result<json::Value> {
        let deadline = Instant::now() + AGENT_START_TIMEOUT;
        loop {
            self.check_alive()?;
            match self.status() {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!(
                        "agent not ready after {AGENT_START_TIMEOUT:?}; its log:\n{}",
                        self.log_tail()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn status(&self) -> anyhow::Result<json::Value> {
        let out = Command::new(&self.bin)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["status", "--json"])
            .stdin(Stdio::null())
            .output()
            .context("running sensor status")?;
        if !out.status.success() {
            bail!(
                "sensor status failed: {}",
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
        json::parse(&String::from_utf8_lossy(&out.stdout)).context("parsing sensor status --json")
    }

    /// Counters once the ring buffer is drained (or after 5 s, whichever comes first), so
    /// that what a benchmark produced is all accounted for before the next one starts.
    fn settle(&self) -> anyhow::Result<Counters> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = Counters::from_status(&self.status()?)?;
            if c.backlog() <= DRAIN_SLACK || Instant::now() > deadline {
                return Ok(c);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An agent that died mid-run is an error, not a result.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(st) = self.child.try_wait().context("checking on the agent")? {
            self.exited = Some(st);
            bail!(
                "the agent exited unexpectedly ({st}); its log:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// (VmHWM, VmRSS) in KiB.
    fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        let path = format!("/proc/{}/status", self.pid);
        let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |key: &str| -> anyhow::Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {key} in {path}"))
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// SIGTERM, then wait; SIGKILL if it does not exit in time. Idempotent.
    fn shutdown(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(st) = self.exited {
            return Ok(st);
        }
        signal(self.child.id() as i32, SIGTERM);
        let deadline = Instant::now() + AGENT_STOP_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().context("waiting for the agent")? {
                self.exited = Some(st);
                return Ok(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let st = self.child.wait().context("waiting for the killed agent")?;
                self.exited = Some(st);
                bail!("the agent ignored SIGTERM for {AGENT_STOP_TIMEOUT:?}; killed it");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        let st = self.shutdown()?;
        if !st.success() {
            eprintln!(
                "bench: warning: the agent exited with {st} on SIGTERM; log:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// The embedded default config (`sensor config default`) with whole lines replaced, written
/// to `run_dir/name`. Full mode turns `auto_learn` off (no workload learns, the syscall
/// recorder stays detached, as once every workload has learned); learning mode keeps every
/// workload learning for the whole run.
fn derived_config(
    bin: &Path,
    run_dir: &Path,
    name: &str,
    replace: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    let out = Command::new(bin)
        .args(["config", "default"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} config default", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} config default failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let text = String::from_utf8(out.stdout).context("sensor config default: not UTF-8")?;
    let derived = replace_lines(&text, replace)?;
    let path = run_dir.join(name);
    fs::write(&path, derived).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The config text with each `(line, replacement)` applied; every line must be present.
fn replace_lines(config: &str, replace: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut found = vec![false; replace.len()];
    let lines: Vec<&str> = config
        .lines()
        .map(
            |l| match replace.iter().position(|(from, _)| l.trim() == *from) {
                Some(i) => {
                    found[i] = true;
                    replace[i].1
                }
                None => l,
            },
        )
        .collect();
    if let Some(i) = found.iter().position(|f| !f) {
        bail!(
            "the default config (sensor config default) has no `{}` line; cannot derive the \
             benchmark's config",
            replace[i].0
        );
    }
    Ok(lines.join("\n") + "\n")
}

impl Drop for Agent {
    /// Error paths included: never leave an agent running.
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("bench: stopping the agent: {e:#}");
        }
    }
}

/// The agent's counters from `status --json`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Counters {
    /// Kernel counters by kind: [seen, dropped, filtered, errors].
    kernel: BTreeMap<String, [u64; 4]>,
    received: BTreeMap<String, u64>,
    /// `losses`: [kernel_dropped (all kinds), kernel_errors, decode_errors, subscriber_dropped].
    losses: [u64; 4],
}

const KERNEL_FIELDS: [&str; 4] = ["seen", "dropped", "filtered", "errors"];
const LOSS_FIELDS: [&str; 4] = [
    "kernel_dropped",
    "kernel_errors",
    "decode_errors",
    "subscriber_dropped",
];

impl Counters {
    fn from_status(s: &json::Value) -> anyhow::Result<Counters> {
        let mut c = Counters::default();
        for (kind, v) in entries(s, &["kernel"])? {
            let mut k = [0; 4];
            for (slot, field) in k.iter_mut().zip(KERNEL_FIELDS) {
                *slot = get_u64(v, &[field]).with_context(|| format!("kernel.{kind}"))?;
            }
            c.kernel.insert(kind.clone(), k);
        }
        for (kind, v) in entries(s, &["received"])? {
            let n = v
                .as_u64()
                .with_context(|| format!("received.{kind} is not a count"))?;
            c.received.insert(kind.clone(), n);
        }
        for (kind, v) in entries(s, &["losses", "kernel_dropped"])? {
            c.losses[0] += v
                .as_u64()
                .with_context(|| format!("losses.kernel_dropped.{kind} is not a count"))?;
        }
        for (slot, field) in c.losses.iter_mut().zip(LOSS_FIELDS).skip(1) {
            *slot = get_u64(s, &["losses", field])?;
        }
        Ok(c)
    }

    /// Events the kernel emitted that userspace has not decoded yet.
    fn backlog(&self) -> u64 {
        let emitted: u64 = self
            .kernel
            .values()
            .map(|k| k[0].saturating_sub(k[1]))
            .sum();
        emitted.saturating_sub(self.received.values().sum())
    }

    fn minus(&self, before: &Counters) -> Counters {
        let kernel = self
            .kernel
            .iter()
            .map(|(kind, now)| {
                let was = before.kernel.get(kind).copied().unwrap_or_default();
                (
                    kind.clone(),
                    std::array::from_fn(|i| now[i].saturating_sub(was[i])),
                )
            })
            .collect();
        let received = self
            .received
            .iter()
            .map(|(kind, now)| {
                (
                    kind.clone(),
                    now.saturating_sub(before.received.get(kind).copied().unwrap_or(0)),
                )
            })
            .collect();
        Counters {
            kernel,
            received,
            losses: std::array::from_fn(|i| self.losses[i].saturating_sub(before.losses[i])),
        }
    }

    fn add(&mut self, other: &Counters) {
        for (kind, k) in &other.kernel {
            let mine = self.kernel.entry(kind.clone()).or_default();
            for i in 0..4 {
                mine[i] += k[i];
            }
        }
        for (kind, n) in &other.received {
            *self.received.entry(kind.clone()).or_default() += n;
        }
        for i in 0..4 {
            self.losses[i] += other.losses[i];
        }
    }

    fn kernel_total(&self, field: usize) -> u64 {
        self.kernel.values().map(|k| k[field]).sum()
    }

    fn dropped(&self) -> u64 {
        self.kernel_total(1)
    }

    fn losses_total(&self) -> u64 {
        self.losses.iter().sum()
    }
}

fn get_u64(v: &json::Value, path: &[&str]) -> anyhow::Result<u64> {
    v.path(path)?
        .as_u64()
        .with_context(|| format!("status field {} is not a count", path.join(".")))
}

/// `baseline.syscall_learning`: the kernel's syscall recorder is attached.
fn syscall_learning(v: &json::Value) -> anyhow::Result<bool> {
    let path = ["baseline", "syscall_learning"];
    v.path(&path)?
        .as_bool()
        .with_context(|| format!("status field {} is not a bool", path.join(".")))
}

fn entries<'a>(v: &'a json::Value, path: &[&str]) -> anyhow::Result<&'a [(String, json::Value)]> {
    v.path(path)?
        .as_object()
        .with_context(|| format!("status field {} is not an object", path.join(".")))
}

// The few libc calls std does not wrap (xtask has no libc dependency).
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
const PR_SET_PDEATHSIG: i32 = 1;

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, ...) -> i32;
}

/// kill(2); a negative pid signals a process group. Failure (already gone) is fine.
fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc_kill(pid, sig);
    }
}

/// A directory removed (with its contents) when dropped, error paths included.
struct TempDir(PathBuf);

impl TempDir {
    fn create(path: &Path) -> anyhow::Result<TempDir> {
        // A leftover from an earlier run that had this pid cannot be in use any more.
        if path.exists() {
            fs::remove_dir_all(path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path.to_path_buf()))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("bench: removing {}: {e}", self.0.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results

const OPENAT_TARGET: f64 = 1.25;
const GETPID_TARGET: f64 = 1.02;
const EXEC_TARGET: f64 = 1.05;
const RSS_TARGET_MIB: f64 = 64.0;

/// Medians of one benchmark per mode (as in MODES: none, empty, full, learning), in the
/// benchmark's unit.
struct Row {
    bench: BenchId,
    medians: [f64; 4],
    /// Largest (max - min) / median over the modes: how much to trust a ratio.
    spread: f64,
}

impl Row {
    fn median(&self, mode: Mode) -> f64 {
        let i = MODES.iter().position(|&m| m == mode).unwrap_or(0);
        self.medians[i]
    }

    fn ratio(&self, mode: Mode) -> f64 {
        self.median(mode) / self.median(Mode::None)
    }
}

struct Target {
    name: &'static str,
    goal: String,
    got: String,
    met: bool,
}

struct Report {
    rounds: usize,
    quick: bool,
    noop_static: bool,
    records: Vec<Record>,
    rows: Vec<Row>,
    /// Full mode, summed over rounds, per benchmark.
    events: Vec<(BenchId, Counters)>,
    peak_rss_mib: Option<f64>,
    last_rss_mib: Option<f64>,
    contended_runs: usize,
    targets: Vec<Target>,
}

impl Report {
    fn new(opts: &BenchOpts, programs: &Programs, records: Vec<Record>) -> Report {
        let rows: Vec<Row> = BENCHES.iter().map(|&b| row(&records, b)).collect();
        let events: Vec<(BenchId, Counters)> = BENCHES
            .iter()
            .map(|&b| {
                let mut sum = Counters::default();
                for r in &records {
                    for (_, c) in r.events.iter().filter(|(id, _)| *id == b) {
                        sum.add(c);
                    }
                }
                (b, sum)
            })
            .collect();
        let full_rss = || {
            records
                .iter()
                .filter(|r| r.mode == Mode::Full)
                .filter_map(|r| r.rss_kib)
        };
        let peak_rss_mib = full_rss()
            .map(|(hwm, _)| hwm)
            .max()
            .map(|k| k as f64 / 1024.0);
        let last_rss_mib = full_rss()
            .map(|(_, rss)| rss)
            .max()
            .map(|k| k as f64 / 1024.0);
        let contended_runs = records.iter().filter(|r| !r.others.is_empty()).count();
        let mut report = Report {
            rounds: opts.rounds,
            quick: opts.quick,
            noop_static: programs.noop_static,
            records,
            rows,
            events,
            peak_rss_mib,
            last_rss_mib,
            contended_runs,
            targets: Vec::new(),
        };
        report.targets = report.targets();
        report
    }

    fn row(&self, b: BenchId) -> &Row {
        // Every benchmark has a row (built from BENCHES); index by position.
        &self.rows[BENCHES.iter().position(|&x| x == b).unwrap_or(0)]
    }

    fn event_sum(&self, b: BenchId) -> Option<&Counters> {
        self.events.iter().find(|(id, _)| *id == b).map(|(_, c)| c)
    }

    fn targets(&self) -> Vec<Target> {
        let ratio_target = |name, b, limit: f64| {
            let r = self.row(b).ratio(Mode::Full);
            Target {
                name,
                goal: format!("full/none <= {limit:.2}x"),
                got: format!("{r:.3}x"),
                met: r <= limit,
            }
        };
        let exec = self
            .event_sum(BenchId::ExecStorm)
            .cloned()
            .unwrap_or_default();
        let lost = exec.dropped() + exec.losses_total();
        vec![
            ratio_target("openat (one file)", BenchId::OpenatOne, OPENAT_TARGET),
            ratio_target("getpid", BenchId::Getpid, GETPID_TARGET),
            Target {
                name: "exec storm drops",
                goal: "0 kernel drops, 0 losses".into(),
                got: format!("{} dropped, {} losses", exec.dropped(), exec.losses_total()),
                met: lost == 0,
            },
            ratio_target("exec storm time", BenchId::ExecStorm, EXEC_TARGET),
            Target {
                name: "agent peak RSS",
                goal: format!("VmHWM <= {RSS_TARGET_MIB:.0} MiB"),
                got: self
                    .peak_rss_mib
                    .map_or("n/a".into(), |m| format!("{m:.1} MiB")),
                met: self.peak_rss_mib.is_some_and(|m| m <= RSS_TARGET_MIB),
            },
        ]
    }

    fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\nsensor bench: {} round(s){}, medians; modes interleaved in rotating order",
            self.rounds,
            if self.quick {
                ", QUICK (smoke run, not for publishing)"
            } else {
                ""
            }
        );
        self.table(&mut o);
        self.event_table(&mut o);
        self.target_table(&mut o);
        let _ = writeln!(
            o,
            "\nlearning-mode cost on openat (one file): learning/full = {:.2}x (informational)",
            self.learning_over_full()
        );
        o
    }

    /// What the syscall recorder adds on the openat hot path, against steady state.
    fn learning_over_full(&self) -> f64 {
        let r = self.row(BenchId::OpenatOne);
        r.median(Mode::Learning) / r.median(Mode::Full)
    }

    fn table(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "\n{:<26} {:>9} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>7}",
            "benchmark",
            "ops",
            "unit",
            "none",
            "empty",
            "full",
            "learning",
            "empty/n",
            "full/n",
            "learn/n",
            "spread"
        );
        for r in &self.rows {
            let _ = writeln!(
                o,
                "{:<26} {:>9} {:>6} {:>10} {:>10} {:>10} {:>10} {:>7.3}x {:>7.3}x {:>7.3}x {:>6.1}%",
                r.bench.label(),
                self.records
                    .first()
                    .map_or(0, |rec| sample_of(rec, r.bench).map_or(0, |s| s.ops)),
                r.bench.unit(),
                fmt_num(r.median(Mode::None)),
                fmt_num(r.median(Mode::Empty)),
                fmt_num(r.median(Mode::Full)),
                fmt_num(r.median(Mode::Learning)),
                r.ratio(Mode::Empty),
                r.ratio(Mode::Full),
                r.ratio(Mode::Learning),
                r.spread * 100.0
            );
            if r.bench == BenchId::ExecStorm {
                let ops = self
                    .records
                    .first()
                    .and_then(|rec| sample_of(rec, r.bench))
                    .map_or(0, |s| s.ops) as f64;
                let rate = |m: Mode| fmt_num(ops / r.median(m));
                let _ = writeln!(
                    o,
                    "{:<26} {:>9} {:>6} {:>10} {:>10} {:>10} {:>10}",
                    "  (execs per second)",
                    "",
                    "/s",
                    rate(Mode::None),
                    rate(Mode::Empty),
                    rate(Mode::Full),
                    rate(Mode::Learning)
                );
            }
        }
        let _ = writeln!(
            o,
            "full: steady state (auto_learn = false, syscall recorder detached); learning: default \
             config, every workload learning (recorder attached)\n\
             spread: largest (max-min)/median over the rounds of one mode; exec target: {}",
            if self.noop_static {
                "static no-op"
            } else {
                "dynamic no-op (no libc.a)"
            }
        );
    }

    fn event_table(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "\nfull mode (steady state), agent counters per benchmark (summed over {} round(s)):",
            self.rounds
        );
        let _ = writeln!(
            o,
            "{:<26} {:>10} {:>10} {:>8} {:>7} {:>10} {:>7}",
            "benchmark", "seen", "filtered", "dropped", "errors", "received", "losses"
        );
        for (b, c) in &self.events {
            let _ = writeln!(
                o,
                "{:<26} {:>10} {:>10} {:>8} {:>7} {:>10} {:>7}",
                b.label(),
                c.kernel_total(0),
                c.kernel_total(2),
                c.dropped(),
                c.kernel_total(3),
                c.received.values().sum::<u64>(),
                c.losses_total()
            );
        }
        if let Some(c) = self.event_sum(BenchId::ExecStorm) {
            let per_kind: Vec<String> = c
                .kernel
                .iter()
                .map(|(k, v)| format!("{k}={}", v[1]))
                .collect();
            let losses: Vec<String> = LOSS_FIELDS
                .iter()
                .zip(c.losses)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(o, "exec storm kernel drops by kind: {}", per_kind.join(" "));
            let _ = writeln!(o, "exec storm losses: {}", losses.join(" "));
        }
        if let (Some(peak), Some(rss)) = (self.peak_rss_mib, self.last_rss_mib) {
            let _ = writeln!(
                o,
                "agent memory (full mode, max over rounds): VmHWM {peak:.1} MiB, VmRSS {rss:.1} MiB at the end"
            );
        }
        if self.contended_runs > 0 {
            let _ = writeln!(
                o,
                "WARNING: other sensor processes ran during {} of {} configuration runs: numbers are skewed",
                self.contended_runs,
                self.records.len()
            );
        }
    }

    fn target_table(&self, o: &mut String) {
        let _ = writeln!(o, "\ntargets:");
        for t in &self.targets {
            let verdict = if t.met { "met" } else { "NOT MET" };
            let _ = writeln!(
                o,
                "  {:<20} {:<26} got {:<28} {verdict}",
                t.name, t.goal, t.got
            );
        }
    }

    fn json(&self) -> String {
        let raw: Vec<String> = self.records.iter().map(record_json).collect();
        let summary: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                obj(&[
                    ("benchmark", jstr(r.bench.key())),
                    ("unit", jstr(r.bench.unit())),
                    ("none", jnum(r.median(Mode::None))),
                    ("empty", jnum(r.median(Mode::Empty))),
                    ("full", jnum(r.median(Mode::Full))),
                    ("learning", jnum(r.median(Mode::Learning))),
                    ("empty_over_none", jnum(r.ratio(Mode::Empty))),
                    ("full_over_none", jnum(r.ratio(Mode::Full))),
                    ("learning_over_none", jnum(r.ratio(Mode::Learning))),
                    ("spread", jnum(r.spread)),
                ])
            })
            .collect();
        let events: Vec<String> = self
            .events
            .iter()
            .map(|(b, c)| obj(&[("benchmark", jstr(b.key())), ("counters", counters_json(c))]))
            .collect();
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|t| {
                obj(&[
                    ("name", jstr(t.name)),
                    ("goal", jstr(&t.goal)),
                    ("got", jstr(&t.got)),
                    ("met", t.met.to_string()),
                ])
            })
            .collect();
        let opt_num = |v: Option<f64>| v.map_or("null".into(), jnum);
        obj(&[
            ("rounds", self.rounds.to_string()),
            ("quick", self.quick.to_string()),
            ("exec_target_static", self.noop_static.to_string()),
            ("contended_runs", self.contended_runs.to_string()),
            ("summary", arr(&summary)),
            ("full_mode_events", arr(&events)),
            ("peak_rss_mib", opt_num(self.peak_rss_mib)),
            ("end_rss_mib", opt_num(self.last_rss_mib)),
            ("targets", arr(&targets)),
            (
                "openat_one_learning_over_full",
                jnum(self.learning_over_full()),
            ),
            ("raw", arr(&raw)),
        ]) + "\n"
    }
}

fn sample_of(r: &Record, b: BenchId) -> Option<Sample> {
    r.samples.iter().find(|(id, _)| *id == b).map(|(_, s)| *s)
}

fn row(records: &[Record], bench: BenchId) -> Row {
    let mut medians = [f64::NAN; MODES.len()];
    let mut spread: f64 = 0.0;
    for (i, mode) in MODES.iter().enumerate() {
        let values: Vec<f64> = records
            .iter()
            .filter(|r| r.mode == *mode)
            .filter_map(|r| sample_of(r, bench))
            .map(|s| bench.value(&s))
            .collect();
        medians[i] = median(&values);
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if values.len() > 1 {
            spread = spread.max((hi - lo) / medians[i]);
        }
    }
    Row {
        bench,
        medians,
        spread,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A few significant digits whatever the magnitude.
fn fmt_num(v: f64) -> String {
    match v.abs() {
        x if x >= 1000.0 => format!("{v:.0}"),
        x if x >= 100.0 => format!("{v:.1}"),
        x if x >= 10.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

// The JSON written is small and flat; a few helpers keep it readable without serde.

fn record_json(r: &Record) -> String {
    let samples: Vec<(&str, String)> = r
        .samples
        .iter()
        .map(|(b, s)| {
            let v = obj(&[
                ("ops", s.ops.to_string()),
                ("elapsed_ns", s.ns.to_string()),
                ("value", jnum(b.value(s))),
                ("unit", jstr(b.unit())),
            ]);
            (b.key(), v)
        })
        .collect();
    let events: Vec<(&str, String)> = r
        .events
        .iter()
        .map(|(b, c)| (b.key(), counters_json(c)))
        .collect();
    let rss = r.rss_kib.map_or("null".into(), |(hwm, rss)| {
        obj(&[
            ("vm_hwm_kib", hwm.to_string()),
            ("vm_rss_kib", rss.to_string()),
        ])
    });
    let others: Vec<String> = r.others.iter().map(u32::to_string).collect();
    obj(&[
        ("round", r.round.to_string()),
        ("mode", jstr(r.mode.name())),
        ("results", obj(&samples)),
        ("events", obj(&events)),
        ("agent_rss", rss),
        ("other_sensor_pids", arr(&others)),
    ])
}

fn counters_json(c: &Counters) -> String {
    let kernel: Vec<(&str, String)> = c
        .kernel
        .iter()
        .map(|(kind, k)| {
            let fields: Vec<(&str, String)> = KERNEL_FIELDS
                .iter()
                .zip(k)
                .map(|(f, v)| (*f, v.to_string()))
                .collect();
            (kind.as_str(), obj(&fields))
        })
        .collect();
    let received: Vec<(&str, String)> = c
        .received
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    let losses: Vec<(&str, String)> = LOSS_FIELDS
        .iter()
        .zip(c.losses)
        .map(|(f, v)| (*f, v.to_string()))
        .collect();
    obj(&[
        ("kernel", obj(&kernel)),
        ("received", obj(&received)),
        ("losses", obj(&losses)),
    ])
}

fn obj(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", jstr(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn arr(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

fn jnum(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn jstr(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

// ---------------------------------------------------------------------------------------------

/// Just enough JSON to read `sensor status --json` without a serde dependency.
mod json {
    use anyhow::{Context, bail};

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        /// The number's text: counters are u64 and must not round-trip through f64.
        Num(String),
        Str(String),
        Arr(Vec<Value>),
        /// Key order as in the input.
        Obj(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            self.as_object()?
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
        }

        /// The value at a path of object keys; the error names the missing key.
        pub fn path(&self, keys: &[&str]) -> anyhow::Result<&Value> {
            let mut v = self;
            for (i, k) in keys.iter().enumerate() {
                v = v
                    .get(k)
                    .with_context(|| format!("status has no field {}", keys[..=i].join(".")))?;
            }
            Ok(v)
        }

        pub fn as_u64(&self) -> Option<u64> {
            match self {
                Value::Num(n) => n.parse().ok(),
                _ => None,
            }
        }

        pub fn as_bool(&self) -> Option<bool> {
            match self {
                Value::Bool(b) => Some(*b),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::Str(s) => Some(s),
                _ => None,
            }
        }

        pub fn as_object(&self) -> Option<&[(String, Value)]> {
            match self {
                Value::Obj(o) => Some(o),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Value> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            bail!("trailing data at byte {}", p.i);
        }
        Ok(v)
    }

    /// Nesting deeper than this is not something the agent writes.
    const MAX_DEPTH: usize = 64;

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> anyhow::Result<u8> {
            self.ws();
            self.s
                .get(self.i)
                .copied()
                .context("unexpected end of JSON")
        }

        fn expect(&mut self, b: u8) -> anyhow::Result<()> {
            if self.peek()? != b {
                bail!("expected {:?} at byte {}", b as char, self.i);
            }
            self.i += 1;
            Ok(())
        }

        fn literal(&mut self, word: &str, v: Value) -> anyhow::Result<Value> {
            if !self.s[self.i..].starts_with(word.as_bytes()) {
                bail!("bad literal at byte {}", self.i);
            }
            self.i += word.len();
            Ok(v)
        }

        fn value(&mut self, depth: usize) -> anyhow::Result<Value> {
            if depth > MAX_DEPTH {
                bail!("JSON nested too deeply");
            }
            match self.peek()? {
                b'{' => self.object(depth),
                b'[' => self.array(depth),
                b'"' => Ok(Value::Str(self.string()?)),
                b't' => self.literal("true", Value::Bool(true)),
                b'f' => self.literal("false", Value::Bool(false)),
                b'n' => self.literal("null", Value::Null),
                b'-' | b'0'..=b'9' => Ok(self.number()),
                c => bail!("unexpected {:?} at byte {}", c as char, self.i),
            }
        }

        fn object(&mut self, depth: usize) -> anyhow::Result<Value> {
            self.expect(b'{')?;
            let mut fields = Vec::new();
            if self.peek()? == b'}' {
                self.i += 1;
                return Ok(Value::Obj(fields));
            }
            loop {
                self.peek()?;
                let k = self.string()?;
                self.expect(b':')?;
                fields.push((k, self.value(depth + 1)?));
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        return Ok(Value::Obj(fields));
                    }
                    _ => bail!("expected , or }} at byte {}", self.i),
                }
            }
        }

        fn array(&mut self, depth: usize) -> anyhow::Result<Value> {
            self.expect(b'[')?;
            let mut items = Vec::new();
            if self.peek()? == b']' {
                self.i += 1;
                return Ok(Value::Arr(items));
            }
            loop {
                items.push(self.value(depth + 1)?);
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        return Ok(Value::Arr(items));
                    }
                    _ => bail!("expected , or ] at byte {}", self.i),
                }
            }
        }

        fn number(&mut self) -> Value {
            let start = self.i;
            while self.s.get(self.i).is_some_and(|c| {
                c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
            }) {
                self.i += 1;
            }
            Value::Num(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        }

        fn string(&mut self) -> anyhow::Result<String> {
            self.expect(b'"')?;
            let mut out = Vec::new();
            loop {
                let c = *self.s.get(self.i).context("unterminated string")?;
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).context("invalid UTF-8 in string"),
                    b'\\' => {
                        let e = *self.s.get(self.i).context("unterminated escape")?;
                        self.i += 1;
                        let ch = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => self.unicode_escape()?,
                            _ => bail!("bad escape at byte {}", self.i),
                        };
                        let mut buf = [0; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => out.push(c),
                }
            }
        }

        /// `\uXXXX`; surrogate halves (never in the agent's output) become U+FFFD.
        fn unicode_escape(&mut self) -> anyhow::Result<char> {
            let hex = self.s.get(self.i..self.i + 4).context("short \\u escape")?;
            let code =
                u32::from_str_radix(std::str::from_utf8(hex)?, 16).context("bad \\u escape")?;
            self.i += 4;
            Ok(char::from_u32(code).unwrap_or('\u{fffd}'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"{
      "pid": 42, "mode": "full", "name": "a \"q\" \u00e9",
      "kernel": {"exec": {"seen": 10, "dropped": 1, "filtered": 0, "errors": 0},
                 "file": {"seen": 5, "dropped": 0, "filtered": 7, "errors": 2}},
      "received": {"exec": 9, "file": 3},
      "losses": {"kernel_dropped": {"exec": 1}, "kernel_errors": 2, "decode_errors": 0,
                 "subscriber_dropped": 0},
      "list": [1, -2.5e3, true, null, []], "big": 18446744073709551615
    }"#;

    #[test]
    fn parses_status() {
        let v = json::parse(STATUS).expect("valid JSON");
        assert_eq!(get_u64(&v, &["pid"]).ok(), Some(42));
        assert_eq!(
            v.path(&["name"]).ok().and_then(json::Value::as_str),
            Some("a \"q\" é")
        );
        assert_eq!(get_u64(&v, &["big"]).ok(), Some(u64::MAX));
        let c = Counters::from_status(&v).expect("counters");
        assert_eq!(c.kernel["file"], [5, 0, 7, 2]);
        assert_eq!(c.losses, [1, 2, 0, 0]);
        // Emitted 9 + 5, received 12.
        assert_eq!(c.backlog(), 2);
    }

    #[test]
    fn missing_keys_are_errors() {
        let v = json::parse(r#"{"kernel": {}, "received": {}}"#).expect("valid JSON");
        let err = Counters::from_status(&v).expect_err("no losses");
        assert!(format!("{err:#}").contains("losses"), "{err:#}");
        assert!(json::parse("{\"a\": 1,}").is_err());
        assert!(json::parse("[1, 2").is_err());
        assert!(json::parse("{} x").is_err());
    }

    #[test]
    fn counter_deltas() {
        let v = json::parse(STATUS).expect("valid JSON");
        let after = Counters::from_status(&v).expect("counters");
        let d = after.minus(&Counters::default());
        assert_eq!(d, after);
        assert_eq!(after.minus(&after).losses_total(), 0);
        let mut sum = Counters::default();
        sum.add(&after);
        sum.add(&after);
        assert_eq!(sum.dropped(), 2);
    }

    #[test]
    fn sample_lines() {
        let s = parse_sample("noise\nBENCH ops=100 ns=2500\n").expect("sample");
        assert_eq!(s, Sample { ops: 100, ns: 2500 });
        assert_eq!(BenchId::OpenatOne.value(&s), 25.0);
        assert!(parse_sample("BENCH ops=1").is_err());
        assert!(parse_sample("BENCH ops=0 ns=5").is_err());
    }

    #[test]
    fn medians_and_rotation() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(
            rotated(1),
            [Mode::Empty, Mode::Full, Mode::Learning, Mode::None]
        );
        assert_eq!(rotated(4), MODES);
        assert_eq!(Mode::Learning.agent_mode_name(), "full");
        assert_eq!(Mode::Empty.agent_mode_name(), "empty");
    }

    #[test]
    fn steady_config_turns_auto_learn_off() {
        let text = "[baseline]\nenabled = true\nauto_learn = true\nmin_events = 200\n";
        let steady = replace_lines(text, &[("auto_learn = true", "auto_learn = false")])
            .expect("has the line");
        assert_eq!(
            steady,
            "[baseline]\nenabled = true\nauto_learn = false\nmin_events = 200\n"
        );
        assert!(
            replace_lines(
                "[baseline]\nauto_learn = false\n",
                &[("auto_learn = true", "x")]
            )
            .is_err()
        );
    }

    #[test]
    fn syscall_learning_flag() {
        let on = json::parse(r#"{"baseline": {"syscall_learning": true}}"#).expect("valid");
        assert!(syscall_learning(&on).expect("bool"));
        let bad = json::parse(r#"{"baseline": {"syscall_learning": 1}}"#).expect("valid");
        assert!(syscall_learning(&bad).is_err());
        assert!(syscall_learning(&json::parse("{}").expect("valid")).is_err());
    }

    #[test]
    fn hung_benchmarks_are_killed_with_their_children() {
        let t0 = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 60 & echo $!; wait"]);
        let err = run_with_timeout(&mut cmd, Duration::from_millis(300)).expect_err("hangs");
        assert!(format!("{err:#}").contains("did not finish"), "{err:#}");
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(run_with_timeout(&mut Command::new("false"), Duration::from_secs(10)).is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(jstr("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        let round_trip =
            json::parse(&obj(&[("k", jstr("x\"y")), ("n", jnum(f64::NAN))])).expect("valid");
        assert_eq!(
            round_trip.path(&["k"]).ok().and_then(json::Value::as_str),
            Some("x\"y")
        );
    }
}
