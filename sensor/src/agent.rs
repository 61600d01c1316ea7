//! `sensor run`: wire probes → reader → pipeline → outputs, and the control socket.
//!
//! ```text
//! kernel ring ──▶ reader (tokio) ──bounded, backpressure──▶ pipeline thread (sync)
//!                                                            ├─▶ alert log (JSONL, rotated)
//!                                                            └─▶ hub ──▶ subscribers (bounded each)
//! ```

use std::{
    collections::BTreeMap,
    os::unix::fs::{DirBuilderExt, MetadataExt},
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::{
    api::{
        self, RulesStatus, StatusReport,
        hub::Hub,
        server::{self, ApiContext},
    },
    clock::Clock,
    config::{Config, RulesConfig, StateDir},
    detect::{Detector, ruleset},
    enrich::enricher::EnrichOptions,
    health::DropMonitor,
    output::{
        Outputs,
        alert_log::{AlertLog, AlertLogError, RotationPolicy},
    },
    pipeline::Pipeline,
    probes::{self, Mode, ProbeError, ProbeOptions, Probes, reader},
    stats::{LossSnapshot, Stats},
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Probes(#[from] ProbeError),
    #[error(transparent)]
    AlertLog(#[from] AlertLogError),
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error("the pipeline thread failed: {0}")]
    Pipeline(String),
    #[error("the ruleset was refused:\n  {}", .0.join("\n  "))]
    Rules(Vec<String>),
    #[error(transparent)]
    Ioc(#[from] crate::ioc::IocError),
    #[error(transparent)]
    Signing(#[from] crate::signing::SigningError),
    #[error(transparent)]
    Output(#[from] crate::output::SinkError),
    #[error("the playbooks were refused:\n  {}", .0.join("\n  "))]
    Playbooks(Vec<String>),
    #[error("containment: {0}")]
    Respond(String),
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics {
        address: String,
        source: std::io::Error,
    },
}

/// Messages from the async side to the pipeline thread.
enum Control {
    /// A checked ruleset to swap in, and the status to publish once it runs.
    Rules(Box<crate::rules::RuleSet>, Box<RulesStatus>),
    /// An alert the agent raises about itself (a refused reload).
    Alert(Box<crate::alert::Alert>),
    /// New indicators (already in the kernel tries).
    Ioc(Arc<crate::ioc::IocSet>),
    /// A `sensor baseline ...` command and where its reply goes.
    Baseline(
        crate::baseline::Command,
        tokio::sync::oneshot::Sender<crate::baseline::Reply>,
    ),
}

pub struct RunOptions {
    pub config: Config,
    pub state_dir: StateDir,
    pub mode: Mode,
    /// Root of the host filesystem (/proc, /sys, /etc/passwd are read under it).
    pub host_root: PathBuf,
    /// The config file, if one was given (guarded against modification).
    pub config_path: Option<PathBuf>,
}

/// Everything the health check and status need from the running probes.
struct Shared {
    probes: Mutex<Probes>,
    stats: Arc<Stats>,
    rules: Mutex<RulesStatus>,
    /// Snapshot of the pipeline's incidents, refreshed every second.
    incidents: Mutex<Vec<crate::rules::incidents::Incident>>,
    /// Snapshot of the baselines' state, refreshed every second.
    baseline: Mutex<api::BaselineStatus>,
    outputs: Arc<Outputs>,
    /// The responder's state, published after each job.
    respond: Arc<Mutex<api::RespondStatus>>,
    history: Arc<Mutex<crate::respond::history::History>>,
    /// Playbook triggers the responder's queue refused.
    response_dropped: std::sync::atomic::AtomicU64,
    /// Capabilities, refusal and guarded files; counters are read at status time.
    self_protection: Mutex<api::SelfProtectionStatus>,
    /// Unix milliseconds of the pipeline loop's last turn: liveness for /healthz and the
    /// systemd watchdog.
    pipeline_beat: Arc<std::sync::atomic::AtomicU64>,
    ready: std::sync::atomic::AtomicBool,
    audit: crate::audit::SharedAudit,
    /// The remote API's counters and token store, once it serves.
    remote: std::sync::OnceLock<(
        Arc<crate::remote::Counters>,
        Arc<Mutex<crate::remote::tokens::TokenStore>>,
    )>,
}

impl Shared {
    /// An agent-side audit record (`actor` = agent).
    fn audit(&self, action: &str, target: &str, outcome: &str, detail: serde_json::Value) {
        crate::audit::log(
            &self.audit,
            crate::audit::Record {
                actor: "agent".into(),
                action: action.into(),
                target: target.into(),
                mode: "auto".into(),
                outcome: outcome.into(),
                detail,
                ..Default::default()
            },
        );
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The pipeline wakes at least once a second; ten without a turn is a stall.
const STALL_MS: u64 = 10_000;

impl Shared {
    fn health(&self) -> crate::output::metrics::Health {
        let beat = self.pipeline_beat.load(Ordering::Relaxed);
        let live = unix_ms().saturating_sub(beat) < STALL_MS;
        crate::output::metrics::Health {
            live,
            ready: live && self.ready.load(Ordering::Relaxed),
        }
    }
}

/// Threads of this process other than the main one (the guard's target set).
fn own_threads() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .filter(|t| *t != me)
                .collect()
        })
        .unwrap_or_default()
}

/// The tamper guard's protected files: the binary, config, rules, IOC lists, playbooks,
/// state and alert log.
fn tamper_guard(
    opts: &RunOptions,
    supervisor: u32,
    alert_dir: &std::path::Path,
) -> crate::tamper::Tamper {
    let cfg = &opts.config;
    let mut t = crate::tamper::Tamper::new(std::process::id(), supervisor);
    if let Ok(exe) = std::fs::read_link("/proc/self/exe") {
        t.protect(&exe, "sensor binary");
    }
    if let Some(p) = &opts.config_path {
        t.protect(p, "config");
    }
    for p in &cfg.rules.paths {
        t.protect(p, "rules");
    }
    for p in &cfg.ioc.paths {
        t.protect(p, "indicators");
    }
    for p in &cfg.respond.playbooks {
        t.protect(p, "playbooks");
    }
    for p in &cfg.signing.trusted_keys {
        t.protect(p, "signing key");
    }
    t.protect(alert_dir, "alert log");
    t.protect(&opts.state_dir.0, "state");
    t
}

/// The responder's window on the kernel: the probes' containment maps and programs.
struct ProbeKernel(Arc<Shared>);

impl crate::respond::responder::Kernel for ProbeKernel {
    fn set_deny_exec(&mut self, entries: &[(u32, u64)]) -> Result<(), String> {
        let mut p = self.0.probes.lock().map_err(|e| e.to_string())?;
        p.set_deny_exec(entries).map_err(|e| e.to_string())
    }
    fn set_isolate_allow(&mut self, entries: &[(std::net::IpAddr, u16)]) -> Result<(), String> {
        let mut p = self.0.probes.lock().map_err(|e| e.to_string())?;
        p.set_isolate_allow(entries).map_err(|e| e.to_string())
    }
    fn isolate_attach(
        &mut self,
        root: &std::path::Path,
        dir: &std::path::Path,
        allow_root: bool,
    ) -> Result<(), String> {
        let mut p = self.0.probes.lock().map_err(|e| e.to_string())?;
        p.isolate_attach(root, dir, allow_root)
            .map_err(|e| e.to_string())
    }
    fn isolate_detach(&mut self, dir: &std::path::Path) -> bool {
        self.0
            .probes
            .lock()
            .map(|mut p| p.isolate_detach(dir))
            .unwrap_or(false)
    }
}

/// Where the sensor's own network outputs go: kept reachable from isolated workloads.
fn output_destinations(outputs: &[crate::output::OutputConfig]) -> Vec<(std::net::IpAddr, u16)> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for o in outputs {
        // Parsed as the sinks parse them (their config check already accepted them).
        let target = match (&o.address, &o.url) {
            (Some(a), _) => crate::output::transport::split_address(a),
            (None, Some(u)) => crate::output::http::Url::parse(u)
                .ok()
                .map(|u| (u.host, u.port)),
            _ => None,
        };
        if let Some((host, port)) = target
            && let Ok(addrs) = (host.as_str(), port).to_socket_addrs()
        {
            out.extend(addrs.map(|a| (a.ip(), a.port())));
        }
    }
    out
}

impl Shared {
    fn losses(&self) -> LossSnapshot {
        let counters = self.probes.lock().map(|p| p.counters()).unwrap_or_default();
        self.losses_with(&counters)
    }

    /// Losses, from kernel counters the caller already read.
    fn losses_with(
        &self,
        counters: &BTreeMap<probes::decode::Kind, probes::KindCounters>,
    ) -> LossSnapshot {
        LossSnapshot {
            kernel_dropped: counters
                .iter()
                .map(|(k, c)| (k.as_str().to_owned(), c.dropped))
                .collect(),
            kernel_errors: counters.values().map(|c| c.errors).sum(),
            decode_errors: self.stats.decode_errors.load(Ordering::Relaxed),
            subscriber_dropped: self.stats.subscriber_dropped.load(Ordering::Relaxed),
            output_lost: self.outputs.lost_total(),
            response_dropped: self.response_dropped.load(Ordering::Relaxed),
        }
    }
}

fn status(shared: &Shared, hub: &Hub, opts: &RunOptions) -> StatusReport {
    let s = &shared.stats;
    // Userspace counts first, kernel counters second: an event in flight then shows as
    // "seen, not yet received", never the other way round.
    let received = probes::decode::Kind::ALL
        .iter()
        .map(|k| (k.as_str().to_owned(), s.received(*k)))
        .collect::<BTreeMap<_, _>>();
    let latency = s.alert_latency_ms();
    // One lock for everything the status reads from the probes.
    let (report, kernel, contain, guard) = shared
        .probes
        .lock()
        .map(|p| {
            (
                p.report.clone(),
                p.counters(),
                p.contain_counts().unwrap_or_default(),
                p.guard_counts().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_secs: s.started.elapsed().as_secs(),
        mode: match opts.mode {
            Mode::Full => "full".into(),
            Mode::Empty => "empty".into(),
        },
        probes: report,
        kernel: kernel
            .iter()
            .map(|(k, c)| (k.as_str().to_owned(), *c))
            .collect(),
        received,
        reader_records: s.reader.records.load(Ordering::Relaxed),
        reader_bytes: s.reader.bytes.load(Ordering::Relaxed),
        losses: shared.losses_with(&kernel),
        process_table_len: s.process_table_len.load(Ordering::Relaxed),
        process_table_evictions: s.process_table_evictions.load(Ordering::Relaxed),
        cgroups_known: s.cgroups_known.load(Ordering::Relaxed),
        alerts: s.alerts.load(Ordering::Relaxed),
        alert_log_errors: s.alert_log_errors.load(Ordering::Relaxed),
        ioc_indicators: s.ioc_indicators.load(Ordering::Relaxed),
        alert_latency_p50_ms: latency.0,
        alert_latency_p99_ms: latency.1,
        alert_latency_samples: latency.2,
        subscribers: hub.subscribers(),
        state_dir: opts.state_dir.0.display().to_string(),
        rules: shared.rules.lock().map(|r| r.clone()).unwrap_or_default(),
        baseline: shared
            .baseline
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default(),
        outputs: shared.outputs.status(),
        metrics_listen: opts.config.metrics.listen.clone(),
        respond: {
            let mut r = shared.respond.lock().map(|r| r.clone()).unwrap_or_default();
            if let Ok(h) = shared.history.lock() {
                r.history_processes = h.len();
                r.history_events_overwritten = h.events_overwritten;
                r.history_processes_evicted = h.processes_evicted;
            }
            r.counters.triggers_dropped = shared.response_dropped.load(Ordering::Relaxed);
            r.kernel = contain;
            r
        },
        self_protection: {
            let mut sp = shared
                .self_protection
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default();
            sp.signals_denied = guard.signals_denied;
            sp.ptrace_denied = guard.ptrace_denied;
            match crate::host::caps::current() {
                Ok((caps, uniform)) => {
                    sp.capabilities = crate::host::caps::names(caps.effective);
                    sp.threads_uniform = uniform;
                }
                Err(error) => sp.capabilities_error = Some(error.to_string()),
            }
            sp
        },
        remote_api: shared.remote.get().map(|(c, tokens)| {
            let now = crate::clock::Clock::unix_now();
            let active = tokens.lock().map(|t| t.list(false, now).len()).unwrap_or(0);
            c.snapshot(&opts.config.api.remote, active)
        }),
    }
}

/// Run until `shutdown` resolves.
pub async fn run(
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let cfg = &opts.config;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&opts.state_dir.0)
        .map_err(|source| AgentError::StateDir {
            path: opts.state_dir.0.display().to_string(),
            source,
        })?;
    let audit = crate::audit::shared(&opts.state_dir.0.join("audit.jsonl"))?;
    let alert_dir = match &cfg.alert_log.dir {
        Some(dir) => {
            link_alert_dir(&opts.state_dir.alerts(), dir);
            dir.clone()
        }
        None => opts.state_dir.alerts(),
    };
    let mut alert_log = AlertLog::open(
        &alert_dir,
        RotationPolicy {
            max_bytes: cfg.alert_log.max_bytes,
            max_age: Duration::from_secs(cfg.alert_log.max_age_hours * 3600),
            keep_files: cfg.alert_log.keep_files,
            compress: cfg.alert_log.compress,
        },
    )?;
    // Sinks before the kernel too: an unreadable certificate or secret stops the start.
    let (outputs, senders) = Outputs::open(&cfg.outputs, &opts.state_dir.0)?;
    let outputs = Arc::new(outputs);
    let metrics_listener =
        match &cfg.metrics.listen {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(
                |source| AgentError::Metrics {
                    address: address.clone(),
                    source,
                },
            )?),
            None => None,
        };

    // Signatures before any rule or indicator file is read, and before the kernel.
    let signing = Arc::new(crate::signing::Gate::new(
        &cfg.signing,
        &opts.state_dir.0,
        crate::signing::Record::Required,
    )?);
    signing.admit(crate::signing::Kind::Rules, &cfg.rules.paths)?;
    signing.admit(crate::signing::Kind::Ioc, &cfg.ioc.paths)?;
    // Rules first: a bad ruleset stops the start before anything touches the kernel.
    let verdict = ruleset::checked(cfg.rules.builtin, &cfg.rules.paths);
    for w in &verdict.warnings {
        tracing::warn!(warning = %w, "rule warning");
    }
    let Some(rules) = verdict.rules else {
        return Err(AgentError::Rules(verdict.problems));
    };
    let rules_status = rules_status(&rules, &cfg.rules, 1);
    let playbooks: Vec<Arc<crate::respond::playbook::Playbook>> =
        crate::respond::playbook::load(&cfg.respond.playbooks)
            .map_err(|errs| AgentError::Playbooks(errs.iter().map(|e| e.to_string()).collect()))?
            .into_iter()
            .map(Arc::new)
            .collect();
    let ioc = Arc::new(crate::ioc::IocSet::load(&cfg.ioc.paths)?);
    tracing::info!(
        rules = rules_status.loaded,
        enabled = rules_status.enabled,
        "ruleset loaded"
    );

    let probe_opts = ProbeOptions {
        mode: opts.mode,
        ring_buffer_bytes: cfg.probes.ring_buffer_bytes,
        wakeup_bytes: cfg.probes.wakeup_bytes,
        dedup_window_ns: cfg.probes.dedup_window_ms * 1_000_000,
        ignored_prefixes: cfg.probes.ignored_prefixes.clone(),
        agent_tgid: std::process::id(),
        btf_path: opts.host_root.join("sys/kernel/btf/vmlinux"),
        tracefs: PathBuf::from("/sys/kernel/tracing"),
    };
    let (mut probes, ring) = Probes::load(&probe_opts)?;
    probes.set_ioc(&ioc)?;
    let supervisor = nix::unistd::getppid().as_raw() as u32;
    let sp = &cfg.self_protection;
    let refusing = sp.deny_signals && probes.guard_can_deny();
    probes.guard_configure(refusing, supervisor)?;
    probes.guard_threads(&own_threads())?;
    let refusing_reason = match (&probes.guard_lsm, sp.deny_signals) {
        (_, false) => Some("self_protection.deny_signals = false".to_owned()),
        (Err(reason), true) => Some(format!("BPF LSM unavailable: {reason}")),
        (Ok(()), true) => None,
    };
    tracing::info!(
        attached = probes.report.attached.len(),
        failed = probes.report.failed.len(),
        "probes attached"
    );

    let stats = Arc::new(Stats::default());
    stats
        .ioc_indicators
        .store(ioc.len() as u64, Ordering::Relaxed);
    let mut pipeline = Pipeline::new(
        &EnrichOptions {
            host_root: opts.host_root.clone(),
            table_capacity: cfg.process_table.capacity,
            exited_grace: cfg.exited_grace(),
        },
        Clock::now(),
        stats.clone(),
        Detector::new(rules, cfg.fold_window()),
    );
    pipeline.detector.set_ioc(ioc, false);
    pipeline.set_dlp(cfg.dlp.redact, cfg.dlp.scan_files);
    pipeline.detector.keep_folded(!playbooks.is_empty());
    let (mut baseline_store, baseline_error) = match open_baselines(&cfg.baseline, &opts.state_dir)
    {
        Ok(Some((store, loaded))) => {
            tracing::info!(workloads = loaded.len(), "baselines loaded");
            let mut engine = crate::baseline::Engine::new(cfg.baseline.clone());
            engine.set_file_enforcement(cfg.baseline.enforce_files && probes.file_lsm.is_ok());
            engine.load(loaded);
            pipeline.baseline = Some(engine);
            (Some(store), None)
        }
        Ok(None) => (None, None),
        Err(error) => {
            tracing::error!(%error, "behavioural baselines are off");
            (None, Some(error))
        }
    };
    // After attach: whatever starts from here on is seen by the probes.
    let seeded = pipeline.enricher.seed();
    tracing::info!(processes = seeded, "process table seeded from /proc");
    // Published now, not at the first event: status right after start shows the seeded table.
    stats
        .process_table_len
        .store(pipeline.enricher.table.len() as u64, Ordering::Relaxed);
    // Loading parsed the kernel's BTF twice (tens of MiB, now freed); give it back to the OS
    // so the agent's resident size reflects what it keeps.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; no pointers are invalidated.
    unsafe {
        libc::malloc_trim(0);
    }

    let probes_backend = probes.enforcement_backend();
    let shared = Arc::new(Shared {
        probes: Mutex::new(probes),
        stats: stats.clone(),
        rules: Mutex::new(rules_status),
        incidents: Mutex::new(Vec::new()),
        baseline: Mutex::new(api::BaselineStatus {
            enabled: cfg.baseline.enabled,
            error: baseline_error.clone(),
            enforcement_backend: probes_backend.clone(),
            ..Default::default()
        }),
        outputs: outputs.clone(),
        respond: Arc::new(Mutex::new(api::RespondStatus {
            playbooks: playbooks.len(),
            ..Default::default()
        })),
        history: Arc::new(Mutex::new(crate::respond::history::History::new(
            cfg.respond.history_per_process,
            cfg.respond.history_processes,
        ))),
        response_dropped: std::sync::atomic::AtomicU64::new(0),
        self_protection: Mutex::new(api::SelfProtectionStatus {
            refusing,
            refusing_reason,
            supervisor_pid: supervisor,
            heartbeat_secs: cfg.self_protection.heartbeat_secs,
            ..Default::default()
        }),
        pipeline_beat: Arc::new(std::sync::atomic::AtomicU64::new(unix_ms())),
        ready: std::sync::atomic::AtomicBool::new(false),
        audit: audit.clone(),
        remote: std::sync::OnceLock::new(),
    });
    let feed = Arc::new(crate::api::feed::AlertFeed::new());
    let output_tasks = outputs.start(senders);
    if let Some(error) = &baseline_error {
        let alert = crate::alert::Alert::new(
            "sensor.baseline_store_unavailable",
            "Baseline store unavailable",
            crate::alert::Severity::High,
            format!("behavioural baselines are off: {error}"),
        )
        .with_tag("sensor-health");
        write_alert(&mut alert_log, &outputs, &stats, &feed, &alert);
    }
    // Unbounded: reloads and self-alerts are rare, and a reload must never be dropped.
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Control>();
    let baseline_tx = ctl_tx.clone();
    let test_tx = ctl_tx.clone();
    // The responder: its own thread (containment blocks on cgroups and the filesystem), fed
    // by a bounded queue; a full queue refuses (manual: "busy", playbooks: counted).
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<crate::respond::responder::Job>(1024);
    let deny_hashes = Arc::new(crate::respond::responder::DenyHashes::default());
    let responder = {
        let emit_tx = ctl_tx.clone();
        crate::respond::responder::Responder::open(
            crate::respond::responder::Options {
                cfg: cfg.respond.clone(),
                state_dir: opts.state_dir.0.clone(),
                host_root: opts.host_root.clone(),
                v2_root: crate::enrich::cgroup_cache::cgroup2_root(&opts.host_root),
                base_allow: output_destinations(&cfg.outputs),
                deny_hashes: deny_hashes.clone(),
            },
            Box::new(ProbeKernel(shared.clone())),
            shared.history.clone(),
            Box::new(move |a| {
                let _ = emit_tx.send(Control::Alert(Box::new(a)));
            }),
        )
        .map_err(AgentError::Respond)?
    };
    let responder_status = shared.respond.clone();
    let responder_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let responder_thread = {
        let stop = responder_stop.clone();
        std::thread::Builder::new()
            .name("responder".into())
            .spawn(move || responder.run(job_rx, &responder_status, &stop))
            .map_err(|e| AgentError::Respond(e.to_string()))?
    };
    let contain_tx = job_tx.clone();
    let raise_tx = ctl_tx.clone();
    let reload_now = Arc::new(tokio::sync::Notify::new());
    let reload_task = tokio::spawn(reload_loop(
        opts.config.rules.clone(),
        opts.config.ioc.paths.clone(),
        ctl_tx,
        shared.clone(),
        signing,
        reload_now.clone(),
    ));
    let hub = Arc::new(Hub::new(cfg.health.subscriber_queue, stats.clone()));
    let peers = api::peers::Peers::resolve(&cfg.api)?;
    let listener = server::bind(&opts.state_dir.socket())?;
    peers.apply_group(&opts.state_dir.socket())?;
    let tokens_path = opts.state_dir.0.join("api/tokens.json");
    let tokens = match crate::remote::tokens::TokenStore::open(&tokens_path) {
        Ok(t) => t,
        // Monitoring must not stop over a token file while the remote API is off.
        Err(error) if !cfg.api.remote.enabled => {
            tracing::error!(%error, "token store unreadable; remote API tokens start empty");
            crate::remote::tokens::TokenStore::empty(&tokens_path)
        }
        Err(error) => return Err(crate::remote::RemoteError::from(error).into()),
    };
    let tokens = Arc::new(Mutex::new(tokens));
    // Remove the socket at exit only if it is still ours (another agent may have taken over
    // the path after us).
    let socket_ino = std::fs::metadata(opts.state_dir.socket())
        .map(|m| m.ino())
        .ok();
    let opts = Arc::new(opts);
    let ctx = Arc::new(ApiContext {
        hub: hub.clone(),
        status: {
            let (shared, hub, opts) = (shared.clone(), hub.clone(), opts.clone());
            Box::new(move || status(&shared, &hub, &opts))
        },
        audit: Some(audit.clone()),
        peers,
        feed: feed.clone(),
        tokens: tokens.clone(),
        token_ttl_secs: (opts.config.api.remote.token_ttl_hours * 3600) as i64,
        token_grace_secs: opts.config.api.remote.rotation_grace_secs as i64,
        reload_rules: {
            let n = reload_now.clone();
            Box::new(move || n.notify_one())
        },
        metrics: {
            let (shared, hub, opts, outputs) =
                (shared.clone(), hub.clone(), opts.clone(), outputs.clone());
            Arc::new(move || {
                crate::output::metrics::render(&status(&shared, &hub, &opts), &outputs)
            })
        },
        stats: stats.clone(),
        incidents: {
            let shared = shared.clone();
            Box::new(move || {
                shared
                    .incidents
                    .lock()
                    .map(|i| i.clone())
                    .unwrap_or_default()
            })
        },
        baseline: Box::new(move |cmd| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            // A closed channel drops `tx`: the caller sees the agent going away.
            let _ = baseline_tx.send(Control::Baseline(cmd, tx));
            rx
        }),
        contain: Box::new(move |request, actor| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            // Refused when full: `tx` drops and the client hears "busy".
            let _ = contain_tx.try_send(crate::respond::responder::Job::Manual {
                request,
                actor,
                reply: tx,
            });
            rx
        }),
        test_alert: Box::new(move |count, severity, message| {
            let message = message.unwrap_or_else(|| "test alert from `sensor alerts test`".into());
            (0..count)
                .map(|i| {
                    let alert = crate::alert::Alert::new(
                        "sensor.test",
                        "Sensor test alert",
                        severity,
                        message.clone(),
                    )
                    .with_tag("sensor-test")
                    .with_field("sequence", i);
                    let id = alert.id.clone();
                    let _ = test_tx.send(Control::Alert(Box::new(alert)));
                    id
                })
                .collect()
        }),
    });
    let metrics_task = metrics_listener.map(|listener| {
        let health_shared = shared.clone();
        tokio::spawn(crate::output::metrics::serve(
            listener,
            ctx.metrics.clone(),
            Arc::new(move || health_shared.health()),
        ))
    });
    // Both APIs are bound now (a taken port fails the start) but answer only once the agent is
    // fully up: a client that gets an answer sees dropped capabilities and the start audited.
    let remote = if opts.config.api.remote.enabled {
        let counters = Arc::new(crate::remote::Counters::default());
        let remote = crate::remote::server::Remote::new(
            opts.config.api.remote.clone(),
            ctx.clone(),
            counters.clone(),
            Box::new(move |a| {
                let _ = raise_tx.send(Control::Alert(Box::new(a)));
            }),
        )?;
        let remote_listener = remote.bind().await?;
        let _ = shared.remote.set((counters, tokens.clone()));
        Some((remote_listener, remote))
    } else {
        None
    };
    // Token use (last use, source) is saved every 30 s and at exit, not on every request.
    let token_task = {
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                every.tick().await;
                if let Ok(mut t) = tokens.lock()
                    && let Err(error) = t.save_if_dirty()
                {
                    tracing::warn!(%error, "cannot save token use");
                }
            }
        })
    };
    // `<state>/status.json`, rewritten every second: a heartbeat for monitoring that needs no
    // socket (and no connect of its own while it watches the counters).
    let status_task = {
        let (shared, hub, opts) = (shared.clone(), hub.clone(), opts.clone());
        tokio::spawn(async move {
            let path = opts.state_dir.0.join("status.json");
            let tmp = opts.state_dir.0.join(".status.json.tmp");
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let Ok(text) = serde_json::to_vec_pretty(&status(&shared, &hub, &opts)) else {
                    continue;
                };
                if let Err(error) =
                    std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path))
                {
                    tracing::warn!(%error, "cannot write status.json");
                }
            }
        })
    };

    let (tx, mut rx) = mpsc::channel::<Vec<bytes::Bytes>>(64);
    let reader_stats = stats.reader.clone();
    let tick = Duration::from_millis(opts.config.probes.reader_tick_ms);
    let reader_task = tokio::spawn(async move {
        if let Err(error) = reader::run(ring, tx, tick, reader_stats).await {
            tracing::error!(%error, "ring buffer reader stopped");
        }
    });

    let handle = tokio::runtime::Handle::current();
    let interval = Duration::from_secs(opts.config.health.drop_alert_interval_secs);
    let pipe_shared = shared.clone();
    let pipe_hub = hub.clone();
    let incidents_file = opts.state_dir.0.join("incidents.jsonl");
    let save_every = Duration::from_secs(opts.config.baseline.save_interval_secs);
    let proc_root = opts.host_root.join("proc");
    let pipe_cfg_ignored = opts.config.probes.ignored_prefixes.clone();
    let cgroup_root = crate::enrich::cgroup_cache::cgroup2_root(&opts.host_root);
    let pipeline_outputs = outputs.clone();
    let pipeline_playbooks = playbooks.clone();
    let pipeline_deny_hashes = deny_hashes;
    let trigger_tx = job_tx;
    let beat = shared.pipeline_beat.clone();
    let heartbeat_every = Duration::from_secs(opts.config.self_protection.heartbeat_secs);
    if opts.config.self_protection.alerts {
        let guard = tamper_guard(&opts, supervisor, &alert_dir);
        if let Ok(mut st) = shared.self_protection.lock() {
            st.protected = guard
                .protected()
                .map(|(p, what)| format!("{} ({what})", p.display()))
                .collect();
        }
        pipeline.tamper = Some(guard);
    }
    let pipeline_thread = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let outputs = pipeline_outputs;
            let mut monitor = DropMonitor::new(interval);
            let mut last_health = Instant::now();
            let mut last_save = Instant::now();
            let mut learn_slots = LearnSlots::default();
            // Hashes of exec'd programs, only while some hash is denied.
            let mut exe_hashes = crate::ioc::hashes::HashCache::default();
            let mut enforce_slots = EnforceSlots {
                unreported_reads: pipe_cfg_ignored.clone(),
                proc_root: proc_root.clone(),
                ..EnforceSlots::default()
            };
            let mut last_heartbeat = Instant::now();
            let mut heartbeats = 0u64;
            let mut supervisor = supervisor;
            loop {
                beat.store(unix_ms(), Ordering::Relaxed);
                // Control first (biased), so a reload takes effect before the next batch.
                let next = handle.block_on(async {
                    tokio::select! {
                        biased;
                        Some(ctl) = ctl_rx.recv() => Ok(Err(ctl)),
                        batch = tokio::time::timeout(Duration::from_secs(1), rx.recv()) => {
                            batch.map(Ok)
                        }
                    }
                });
                match next {
                    Ok(Err(Control::Rules(r, status))) => {
                        pipeline.detector.replace_rules(*r);
                        // Published only now: status never claims rules that do not run yet.
                        if let Ok(mut cur) = pipe_shared.rules.lock() {
                            *cur = *status;
                        }
                    }
                    Ok(Err(Control::Ioc(set))) => pipeline.detector.set_ioc(set, false),
                    Ok(Err(Control::Baseline(cmd, reply))) => {
                        let r = match pipeline.baseline.as_mut() {
                            Some(engine) => crate::baseline::apply(
                                engine,
                                baseline_store.as_mut(),
                                cmd,
                                Clock::unix_now(),
                            ),
                            None => crate::baseline::Reply::Error(
                                "behavioural baselines are off (see `sensor status`)".into(),
                            ),
                        };
                        let _ = reply.send(r);
                    }
                    Ok(Err(Control::Alert(a))) => {
                        stats.alerts.fetch_add(1, Ordering::Relaxed);
                        write_alert(&mut alert_log, &outputs, &stats, &feed, &a);
                    }
                    Ok(Ok(Some(batch))) => {
                        for bytes in batch {
                            let out = pipeline.process(&bytes);
                            if !out.alerts.is_empty()
                                && let Some(ev) = &out.event
                            {
                                let lat = Clock::boot_ns_now().saturating_sub(ev.event.boot_ns);
                                stats.record_alert_latency(lat);
                            }
                            // Playbooks before the outputs: containment should not wait for
                            // alert delivery.
                            if !pipeline_playbooks.is_empty() {
                                // Folded duplicates too: the same attack again, by another
                                // process, inside the fold window.
                                let folded = pipeline.detector.take_folded();
                                for alert in out.alerts.iter().chain(folded.iter()) {
                                    trigger_playbooks(
                                        &pipeline_playbooks,
                                        &mut pipeline,
                                        alert,
                                        out.event.as_ref(),
                                        &trigger_tx,
                                        &pipe_shared,
                                        &proc_root,
                                    );
                                }
                            }
                            for alert in out.alerts {
                                write_alert(&mut alert_log, &outputs, &stats, &feed, &alert);
                            }
                            if let Some(ev) = &out.event
                                && pipeline_deny_hashes.any.load(Ordering::Relaxed)
                            {
                                check_denied_hash(
                                    ev,
                                    &pipeline_deny_hashes,
                                    &mut exe_hashes,
                                    &proc_root,
                                    &trigger_tx,
                                    &pipe_shared,
                                );
                            }
                            if let Some(ev) = out.event {
                                let ev = Arc::new(ev);
                                if let Ok(mut h) = pipe_shared.history.lock() {
                                    h.record(ev.clone());
                                }
                                pipe_hub.publish(ev);
                            }
                        }
                    }
                    Ok(Ok(None)) => break,
                    Err(_) => {}
                }
                if last_health.elapsed() >= Duration::from_secs(1) {
                    last_health = Instant::now();
                    guard_tick(&pipe_shared, &mut pipeline, &mut supervisor);
                    if !heartbeat_every.is_zero() && last_heartbeat.elapsed() >= heartbeat_every {
                        last_heartbeat = Instant::now();
                        heartbeats += 1;
                        let hb = crate::tamper::heartbeat(
                            heartbeats,
                            stats.started.elapsed().as_secs(),
                            pipe_shared.stats.reader.records.load(Ordering::Relaxed),
                            stats.alerts.load(Ordering::Relaxed),
                            pipe_shared.losses().total(),
                        );
                        write_alert(&mut alert_log, &outputs, &stats, &feed, &hb);
                    }
                    for alert in pipeline.tick(Clock::boot_ns_now()) {
                        if !pipeline_playbooks.is_empty() {
                            trigger_playbooks(
                                &pipeline_playbooks,
                                &mut pipeline,
                                &alert,
                                None,
                                &trigger_tx,
                                &pipe_shared,
                                &proc_root,
                            );
                        }
                        write_alert(&mut alert_log, &outputs, &stats, &feed, &alert);
                    }
                    let tracker = pipeline.detector.incidents();
                    persist_incidents(&incidents_file, tracker.take_closed());
                    if let Ok(mut snap) = pipe_shared.incidents.lock() {
                        *snap = tracker.all().cloned().collect();
                    }
                    if let Some(engine) = pipeline.baseline.as_mut() {
                        engine.tick(Clock::unix_now());
                        learn_slots.sync(engine, &pipe_shared, &proc_root);
                        engine.auto_promote(Clock::unix_now());
                        if let Some(root) = &cgroup_root {
                            enforce_slots.sync(engine, &pipe_shared, root);
                        }
                        if last_save.elapsed() >= save_every {
                            last_save = Instant::now();
                            save_baselines(engine, baseline_store.as_mut());
                        }
                        if let Ok(mut st) = pipe_shared.baseline.lock() {
                            fill_baseline_status(&mut st, engine, baseline_store.as_ref());
                            st.syscall_learning = learn_slots.recording;
                            st.enforced_in_kernel = enforce_slots.by_workload.len();
                            st.enforcement_error = enforce_slots.last_error.clone();
                        }
                    }
                    if let Some(alert) = monitor.check(&pipe_shared.losses(), last_health) {
                        pipe_shared.audit(
                            "events-dropped",
                            "pipeline",
                            "failed",
                            alert.fields.get("lost").cloned().unwrap_or_default(),
                        );
                        stats.alerts.fetch_add(1, Ordering::Relaxed);
                        write_alert(&mut alert_log, &outputs, &stats, &feed, &alert);
                    }
                }
            }
            for alert in pipeline.finish() {
                write_alert(&mut alert_log, &outputs, &stats, &feed, &alert);
            }
            if let Some(engine) = pipeline.baseline.as_mut() {
                save_baselines(engine, baseline_store.as_mut());
            }
            if let Err(error) = alert_log.flush() {
                tracing::warn!(%error, "alert log flush failed at shutdown");
            }
        })
        .map_err(|e| AgentError::Pipeline(e.to_string()))?;

    // Everything privileged at start is done: keep only what the running work needs.
    if opts.config.self_protection.drop_capabilities {
        let dropped = crate::host::caps::drop_to_runtime();
        if let Ok(mut st) = shared.self_protection.lock() {
            match dropped {
                Ok(r) => {
                    tracing::info!(kept = ?r.kept, dropped = r.dropped.len(), threads = r.threads, "capabilities dropped");
                    st.capabilities_dropped = r.dropped;
                }
                Err(error) => {
                    tracing::error!(%error, "capabilities not dropped");
                    st.capabilities_error = Some(error.to_string());
                }
            }
        }
    } else if let Ok(mut st) = shared.self_protection.lock() {
        st.capabilities_error = Some("self_protection.drop_capabilities = false".into());
    }
    let notifier = crate::host::notify::Notifier::from_env();
    shared.ready.store(true, Ordering::Relaxed);
    audit_start(&audit, &opts, &shared);
    let api_task = tokio::spawn(server::serve(listener, ctx.clone()));
    let remote_task = remote.map(|(remote_listener, remote)| {
        tracing::info!(
            listen = %opts.config.api.remote.listen,
            tls = !opts.config.api.remote.plain_http,
            mtls = opts.config.api.remote.client_ca.is_some(),
            "remote API serving"
        );
        tokio::spawn(crate::remote::server::serve(remote_listener, remote))
    });
    notifier.tell("READY=1\nSTATUS=probes attached, sensor running");
    if let Ok(mut st) = shared.self_protection.lock() {
        st.sd_notify = notifier.enabled();
        st.watchdog_secs = notifier.watchdog().map(|d| d.as_secs_f64());
    }
    // WATCHDOG=1 only while the pipeline turns: a stalled sensor is restarted by systemd.
    let watchdog_task = notifier.watchdog().map(|every| {
        let (notifier, shared) = (notifier.clone(), shared.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if shared.health().live {
                    notifier.tell("WATCHDOG=1");
                } else {
                    tracing::error!("pipeline stalled; withholding the systemd watchdog");
                }
            }
        })
    });
    tracing::info!(socket = %opts.state_dir.socket().display(), "sensor running");
    shutdown.await;
    tracing::info!("shutting down");
    notifier.tell("STOPPING=1");
    crate::audit::log(
        &audit,
        crate::audit::Record {
            actor: "agent".into(),
            action: "agent-stop".into(),
            target: "sensor".into(),
            mode: "auto".into(),
            outcome: "ok".into(),
            detail: serde_json::json!({
                "uptime_secs": shared.stats.started.elapsed().as_secs(),
                "lost": shared.losses(),
            }),
            ..Default::default()
        },
    );
    if let Some(t) = watchdog_task {
        t.abort();
    }
    reader_task.abort();
    let _ = reader_task.await;
    api_task.abort();
    if let Some(t) = remote_task {
        t.abort();
    }
    token_task.abort();
    if let Ok(mut t) = tokens.lock()
        && let Err(error) = t.save_if_dirty()
    {
        tracing::warn!(%error, "cannot save token use");
    }
    status_task.abort();
    for t in output_tasks {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    reload_task.abort();
    let joined = tokio::task::spawn_blocking(move || pipeline_thread.join()).await;
    // The responder finishes the job in hand, then stops.
    responder_stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || responder_thread.join()).await;
    let socket = opts.state_dir.socket();
    if std::fs::metadata(&socket).map(|m| m.ino()).ok() == socket_ino {
        let _ = std::fs::remove_file(&socket);
    }
    match joined {
        Ok(Ok(())) => Ok(()),
        _ => Err(AgentError::Pipeline("panicked".into())),
    }
}

/// Kernel slots of learning workloads (the syscall recorder's bitmaps).
#[derive(Default)]
struct LearnSlots {
    by_workload: std::collections::HashMap<String, u64>,
    next: u64,
    recording: bool,
    /// The last failure, logged once until it changes.
    last_error: Option<String>,
}

impl LearnSlots {
    /// Enrol learning workloads in the kernel and fold what it recorded into them.
    fn sync(
        &mut self,
        engine: &mut crate::baseline::Engine,
        shared: &Shared,
        proc_root: &std::path::Path,
    ) {
        let targets = engine.learning_targets();
        self.by_workload
            .retain(|k, _| targets.iter().any(|t| t.workload == *k));
        let mut plan = Vec::with_capacity(targets.len());
        for t in targets {
            if plan.len() >= sensor_common::LEARN_MAX_SLOTS as usize {
                break;
            }
            let slot = *self.by_workload.entry(t.workload).or_insert_with(|| {
                self.next += 1;
                self.next
            });
            plan.push(probes::learn::LearnSlot {
                slot,
                cgroups: t.cgroups,
                pids: t.pids,
                exe: t.exe,
            });
        }
        let Ok(mut probes) = shared.probes.lock() else {
            return;
        };
        match probes.learn_sync(&plan, proc_root) {
            Ok(seen) => {
                tracing::debug!(?plan, seen = ?seen.iter().map(|(s, c)| (*s, c.len())).collect::<Vec<_>>(), "syscall learning sync");
                self.last_error = None;
                for (key, slot) in &self.by_workload {
                    if let Some(calls) = seen.get(slot) {
                        engine.merge_syscalls(key, calls);
                    }
                }
            }
            Err(error) => {
                let e = error.to_string();
                if self.last_error.as_deref() != Some(&e) {
                    tracing::warn!(error = %e, "syscall learning unavailable");
                    self.last_error = Some(e);
                }
            }
        }
        self.recording = probes.syscall_learning();
    }
}

/// Kernel policy ids of shadowed and enforced workloads.
#[derive(Default)]
struct EnforceSlots {
    by_workload: std::collections::HashMap<String, u32>,
    last_error: Option<String>,
    /// Read-only opens the probes never report (a baseline cannot learn them).
    unreported_reads: Vec<String>,
    proc_root: std::path::PathBuf,
    /// File rules per workload, by (baseline version, the pid whose root resolved them).
    file_rules: std::collections::HashMap<String, ((u32, u32), Vec<probes::enforce::FileRule>)>,
}

impl EnforceSlots {
    fn sync(
        &mut self,
        engine: &mut crate::baseline::Engine,
        shared: &Shared,
        cgroup_root: &std::path::Path,
    ) {
        let targets = engine.enforcement_targets();
        self.by_workload
            .retain(|k, _| targets.iter().any(|t| t.workload == *k));
        let Ok(mut probes) = shared.probes.lock() else {
            return;
        };
        let mut policies = Vec::with_capacity(targets.len());
        for t in targets {
            let id = match self.by_workload.get(&t.workload) {
                Some(id) => *id,
                None => {
                    // The lowest free id; its counters start from zero.
                    let used: std::collections::HashSet<u32> =
                        self.by_workload.values().copied().collect();
                    let Some(id) =
                        (0..sensor_common::ENFORCE_MAX_POLICIES).find(|i| !used.contains(i))
                    else {
                        continue;
                    };
                    if probes.enforce_reset_counts(id).is_err() {
                        continue;
                    }
                    self.by_workload.insert(t.workload.clone(), id);
                    id
                }
            };
            let files = self.files_of(&t, cgroup_root);
            policies.push(probes::enforce::KernelPolicy {
                id,
                shadow: t.shadow,
                cgroups: t.cgroups,
                exec_allow: t.exe_ids,
                connect_allow: t.peers,
                files,
            });
        }
        self.file_rules
            .retain(|k, _| self.by_workload.contains_key(k));
        match probes.enforce_sync(&policies, cgroup_root) {
            Ok(counts) => {
                self.last_error = None;
                let now = Clock::unix_now();
                for (key, id) in &self.by_workload {
                    if let Some(c) = counts.get(id) {
                        engine.set_kernel_counts(key, *c, now);
                    }
                }
            }
            Err(error) => {
                let e = error.to_string();
                if self.last_error.as_deref() != Some(&e) {
                    tracing::error!(error = %e, "enforcement could not be applied");
                }
                self.last_error = Some(e);
            }
        }
    }
}

impl EnforceSlots {
    /// A target's file rules, with symlinks resolved in the root of a process of its cgroup
    /// (a container sees its own /etc). Kept until the baseline or that process changes.
    fn files_of(
        &mut self,
        t: &crate::baseline::engine::EnforceTarget,
        cgroup_root: &std::path::Path,
    ) -> Vec<probes::enforce::FileRule> {
        if t.read.is_empty() && t.write.is_empty() {
            return Vec::new();
        }
        let pid = t
            .cgroups
            .iter()
            .find_map(|(_, path)| {
                let procs = cgroup_root
                    .join(path.trim_start_matches('/'))
                    .join("cgroup.procs");
                std::fs::read_to_string(procs)
                    .ok()?
                    .lines()
                    .find_map(|l| l.trim().parse::<u32>().ok())
            })
            .unwrap_or(0);
        let stamp = (t.version, pid);
        if let Some((s, rules)) = self.file_rules.get(&t.workload)
            && *s == stamp
        {
            return rules.clone();
        }
        let root = (pid != 0).then(|| self.proc_root.join(pid.to_string()).join("root"));
        let rules = crate::profile::files::rules(
            &t.read,
            &t.write,
            &self.unreported_reads,
            root.as_deref(),
        );
        self.file_rules
            .insert(t.workload.clone(), (stamp, rules.clone()));
        rules
    }
}

type LoadedBaselines = (
    crate::baseline::store::Store,
    Vec<crate::baseline::model::Baseline>,
);

/// The baseline store and what it holds (`None` when baselines are disabled), or why it
/// cannot be used.
fn open_baselines(
    cfg: &crate::config::BaselineConfig,
    state: &StateDir,
) -> Result<Option<LoadedBaselines>, String> {
    if !cfg.enabled {
        return Ok(None);
    }
    let store = crate::baseline::store::Store::open(&state.baselines(), cfg.keep_versions)
        .map_err(|e| e.to_string())?;
    let (loaded, problems) = store.load().map_err(|e| e.to_string())?;
    for p in problems {
        tracing::warn!(problem = %p, "baseline skipped");
    }
    Ok(Some((store, loaded)))
}

fn save_baselines(
    engine: &mut crate::baseline::Engine,
    store: Option<&mut crate::baseline::store::Store>,
) {
    let Some(store) = store else {
        return;
    };
    let changes = engine.take_changes();
    if let Err(error) = store.save(&changes, Clock::unix_now()) {
        tracing::error!(%error, "cannot save baselines; they stay in memory and are retried");
        engine.restore_changes(changes);
    }
}

fn fill_baseline_status(
    st: &mut api::BaselineStatus,
    engine: &crate::baseline::Engine,
    store: Option<&crate::baseline::store::Store>,
) {
    use crate::baseline::model::Mode;
    let count = |m: Mode| engine.baselines().filter(|b| b.mode == m).count();
    st.workloads = engine.len();
    st.learning = count(Mode::Learning);
    st.monitoring = count(Mode::Monitoring);
    st.frozen = count(Mode::Frozen);
    st.values = engine.baselines().map(|b| b.model.size()).sum();
    st.store_bytes = store.map_or(0, |s| s.size());
    st.processes_tracked = engine.tracked_processes();
    st.stats = engine.stats;
}

fn rules_status(rules: &crate::rules::RuleSet, cfg: &RulesConfig, generation: u64) -> RulesStatus {
    let mut sources = Vec::new();
    if cfg.builtin {
        sources.push("<builtin>".to_owned());
    }
    sources.extend(cfg.paths.iter().map(|p| p.display().to_string()));
    RulesStatus {
        loaded: rules.rules().len(),
        enabled: rules
            .rules()
            .iter()
            .filter(|r| r.mode == crate::rules::Mode::Alert)
            .count(),
        sources,
        generation,
        last_error: Vec::new(),
    }
}

/// Hot reload: on SIGHUP, or when a rule file changes. A refused ruleset leaves the running
/// one in place, and says why (log, status, and an alert).
async fn reload_loop(
    cfg: RulesConfig,
    ioc_paths: Vec<PathBuf>,
    tx: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
    signing: Arc<crate::signing::Gate>,
    now: Arc<tokio::sync::Notify>,
) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP; rules reload on file change only");
            None
        }
    };
    let mut every = tokio::time::interval(Duration::from_secs(cfg.reload_check_secs));
    let mut seen = ruleset::fingerprint(&cfg.paths);
    let mut seen_ioc = ruleset::fingerprint(&ioc_paths);
    // The start-up load was generation 1.
    let mut generation = 1u64;
    loop {
        let by_signal = tokio::select! {
            _ = every.tick() => false,
            () = now.notified() => true,
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let now_ioc = ruleset::fingerprint(&ioc_paths);
        if by_signal || now_ioc != seen_ioc {
            seen_ioc = now_ioc;
            if !reload_ioc(&ioc_paths, &tx, &shared, &signing).await {
                return;
            }
        }
        let now = ruleset::fingerprint(&cfg.paths);
        if !by_signal && now == seen {
            continue;
        }
        seen = now;
        let (builtin, paths, gate) = (cfg.builtin, cfg.paths.clone(), signing.clone());
        // A bundle that fails its signature check is refused like a rule that fails its test.
        let Ok(verdict) = tokio::task::spawn_blocking(move || {
            match gate.admit(crate::signing::Kind::Rules, &paths) {
                Ok(_) => ruleset::checked(builtin, &paths),
                Err(e) => ruleset::Verdict {
                    rules: None,
                    problems: vec![e.to_string()],
                    warnings: Vec::new(),
                    tests_run: 0,
                },
            }
        })
        .await
        else {
            continue;
        };
        match verdict.rules {
            Some(rules) => {
                generation += 1;
                let status = rules_status(&rules, &cfg, generation);
                tracing::info!(
                    rules = status.loaded,
                    generation,
                    by_signal,
                    "ruleset reloaded"
                );
                shared.audit(
                    "rules-reload",
                    "rules",
                    "ok",
                    serde_json::json!({"rules": status.loaded, "generation": generation, "by_signal": by_signal}),
                );
                if tx
                    .send(Control::Rules(Box::new(rules), Box::new(status)))
                    .is_err()
                {
                    return;
                }
            }
            None => {
                for p in &verdict.problems {
                    tracing::error!(problem = %p, "ruleset refused; the running rules stay");
                }
                if let Ok(mut r) = shared.rules.lock() {
                    r.last_error = verdict.problems.clone();
                }
                shared.audit(
                    "rules-reload",
                    "rules",
                    "refused",
                    serde_json::json!({"problems": verdict.problems}),
                );
                let alert = crate::alert::Alert::new(
                    "sensor.rules_reload_refused",
                    "Rule reload refused",
                    crate::alert::Severity::Medium,
                    format!(
                        "a new ruleset was refused ({} problems); the previous rules keep running",
                        verdict.problems.len()
                    ),
                )
                .with_tag("sensor-health")
                .with_field("problems", verdict.problems);
                if tx.send(Control::Alert(Box::new(alert))).is_err() {
                    return;
                }
            }
        }
    }
}

/// Load indicators, put them in the kernel, hand them to the pipeline; a bad file is refused
/// with an alert and the old indicators stay. False once the pipeline is gone.
async fn reload_ioc(
    paths: &[PathBuf],
    tx: &mpsc::UnboundedSender<Control>,
    shared: &Arc<Shared>,
    signing: &Arc<crate::signing::Gate>,
) -> bool {
    let (p, gate) = (paths.to_vec(), signing.clone());
    let loaded = tokio::task::spawn_blocking(move || {
        gate.admit(crate::signing::Kind::Ioc, &p)
            .map_err(|e| e.to_string())?;
        crate::ioc::IocSet::load(&p).map_err(|e| e.to_string())
    })
    .await;
    let result = match loaded {
        Ok(Ok(set)) => shared
            .probes
            .lock()
            .map_err(|_| "probe lock poisoned".to_owned())
            .and_then(|mut p| p.set_ioc(&set).map_err(|e| e.to_string()))
            .map(|()| set),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(set) => {
            tracing::info!(indicators = set.len(), "indicators reloaded");
            shared.audit(
                "ioc-reload",
                "indicators",
                "ok",
                serde_json::json!({"indicators": set.len()}),
            );
            shared
                .stats
                .ioc_indicators
                .store(set.len() as u64, Ordering::Relaxed);
            tx.send(Control::Ioc(Arc::new(set))).is_ok()
        }
        Err(problem) => {
            tracing::error!(%problem, "indicators refused; the previous ones stay");
            shared.audit(
                "ioc-reload",
                "indicators",
                "refused",
                serde_json::json!({"problem": problem}),
            );
            let alert = crate::alert::Alert::new(
                "sensor.ioc_reload_refused",
                "Indicator reload refused",
                crate::alert::Severity::Medium,
                format!("new indicators were refused: {problem}"),
            )
            .with_tag("sensor-health");
            tx.send(Control::Alert(Box::new(alert))).is_ok()
        }
    }
}

/// Closed incidents are appended to `<state>/incidents.jsonl` (the agent keeps only recent
/// ones in memory).
fn persist_incidents(path: &std::path::Path, closed: Vec<crate::rules::incidents::Incident>) {
    if closed.is_empty() {
        return;
    }
    let mut text = String::new();
    for i in &closed {
        if let Ok(line) = serde_json::to_string(i) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    if let Err(error) = written {
        tracing::warn!(%error, path = %path.display(), "cannot persist closed incidents");
    }
}

/// The one way out for every alert: the local log, then the sinks' queues.
/// An exec whose program has a denied SHA-256: the responder kills it and denies its inode.
fn check_denied_hash(
    ev: &crate::event::Event,
    deny: &crate::respond::responder::DenyHashes,
    cache: &mut crate::ioc::hashes::HashCache,
    proc_root: &std::path::Path,
    tx: &std::sync::mpsc::SyncSender<crate::respond::responder::Job>,
    shared: &Shared,
) {
    if ev.event.kind != crate::event::Kind::Exec {
        return;
    }
    let Some(exe) = &ev.process.exe else { return };
    let pid = ev.process.pid;
    // /proc/<pid>/exe reaches the exact inode even if the path was replaced or deleted.
    let Some(h) = cache.sha256(&proc_root.join(format!("{pid}/exe"))) else {
        return;
    };
    if !deny.contains(&h) {
        return;
    }
    let job = crate::respond::responder::Job::DeniedHash {
        pid,
        start: crate::respond::target::start_ticks(proc_root, pid),
        exe: (exe.device, exe.inode),
        sha256: h,
        event_boot_ns: ev.event.boot_ns,
    };
    if tx.try_send(job).is_err() {
        shared.response_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hand each playbook this alert fires to the responder (never blocking the pipeline; a
/// full queue is counted as a loss).
fn trigger_playbooks(
    playbooks: &[Arc<crate::respond::playbook::Playbook>],
    pipeline: &mut Pipeline,
    alert: &crate::alert::Alert,
    ev: Option<&crate::event::Event>,
    tx: &std::sync::mpsc::SyncSender<crate::respond::responder::Job>,
    shared: &Shared,
    proc_root: &std::path::Path,
) {
    // The responder's own alerts never trigger playbooks (no loops).
    if alert.rule.id.starts_with("sensor.") {
        return;
    }
    let incident = alert
        .fields
        .get("incident")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let incident_alerts = incident
        .as_ref()
        .and_then(|i| {
            pipeline
                .detector
                .incidents()
                .get(&crate::rules::incidents::IncidentId(i.clone()))
                .map(|x| x.alert_count)
        })
        .unwrap_or(1);
    for pb in playbooks {
        if !pb.trigger.matches(alert, incident_alerts) {
            continue;
        }
        let pid = ev
            .map(|e| e.process.pid)
            .or(alert.process.as_ref().map(|p| p.pid));
        let ctx = crate::respond::responder::RunContext {
            alert: Some(alert.clone()),
            event_boot_ns: ev.map(|e| e.event.boot_ns),
            pid,
            // Read now, while the process surely runs: the responder then refuses a pid
            // that was reused in between.
            start: pid.and_then(|p| crate::respond::target::start_ticks(proc_root, p)),
            exe_id: ev
                .and_then(|e| e.process.exe.as_ref())
                .map(|x| (x.device, x.inode)),
            exe_path: ev
                .and_then(|e| e.process.executable.clone())
                .or(alert.process.as_ref().map(|p| p.executable.clone())),
            file_path: ev
                .and_then(|e| e.file.as_ref())
                .and_then(|f| f.path.clone()),
            cgroup_path: ev.and_then(|e| e.cgroup.path.clone()),
            container_id: ev
                .and_then(|e| e.container.as_ref())
                .map(|c| c.id.clone())
                .or(alert.container.as_ref().map(|c| c.id.clone())),
            incident: incident.clone(),
        };
        let job = crate::respond::responder::Job::Trigger {
            playbook: pb.clone(),
            ctx: Box::new(ctx),
        };
        if tx.try_send(job).is_err() {
            shared.response_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `agent-start` with what runs (version, config hash, rules, privileges), and `config-change`
/// when the config differs from the previous start's.
fn audit_start(audit: &crate::audit::SharedAudit, opts: &RunOptions, shared: &Shared) {
    let text = toml::to_string(&opts.config).unwrap_or_default();
    let hash = crate::ioc::hashes::hex(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
    let previous = audit
        .lock()
        .map(|a| a.path().to_path_buf())
        .map(|p| crate::audit::read(&p))
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find(|e| e.action == "agent-start")
        .and_then(|e| e.detail.get("config_sha256")?.as_str().map(str::to_owned));
    let rules = shared.rules.lock().map(|r| r.loaded).unwrap_or(0);
    let sp = shared
        .self_protection
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let config = opts
        .config_path
        .as_ref()
        .map_or("embedded default".into(), |p| p.display().to_string());
    if let Some(old) = previous.filter(|old| *old != hash) {
        crate::audit::log(
            audit,
            crate::audit::Record {
                actor: "agent".into(),
                action: "config-change".into(),
                target: config.clone(),
                mode: "auto".into(),
                outcome: "ok".into(),
                detail: serde_json::json!({"old_sha256": old, "new_sha256": hash}),
                ..Default::default()
            },
        );
    }
    crate::audit::log(
        audit,
        crate::audit::Record {
            actor: "agent".into(),
            action: "agent-start".into(),
            target: "sensor".into(),
            mode: "auto".into(),
            outcome: "ok".into(),
            detail: serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "config": config,
                "config_sha256": hash,
                "rules": rules,
                "capabilities": crate::host::caps::current()
                    .map(|(c, _)| crate::host::caps::names(c.effective))
                    .unwrap_or_default(),
                "refusing_signals": sp.refusing,
            }),
            ..Default::default()
        },
    );
}

/// Every second: the agent's current threads for the kernel guard, and a new supervisor when
/// the old one died and the agent was re-parented.
fn guard_tick(shared: &Shared, pipeline: &mut Pipeline, supervisor: &mut u32) {
    let now = nix::unistd::getppid().as_raw() as u32;
    let changed = now != *supervisor;
    *supervisor = now;
    if let Ok(mut p) = shared.probes.lock() {
        let refusing = shared
            .self_protection
            .lock()
            .map(|s| s.refusing)
            .unwrap_or(false);
        if changed && let Err(error) = p.guard_configure(refusing, now) {
            tracing::warn!(%error, "cannot update the guard's supervisor");
        }
        if let Err(error) = p.guard_threads(&own_threads()) {
            tracing::warn!(%error, "cannot update the guard's thread set");
        }
    }
    if changed {
        if let Some(t) = pipeline.tamper.as_mut() {
            t.set_supervisor(now);
        }
        if let Ok(mut st) = shared.self_protection.lock() {
            st.supervisor_pid = now;
        }
    }
}

/// `<state>/alerts` points at a configured alert-log directory, so every `sensor alerts`
/// command finds it without the config. A real directory there is left alone.
fn link_alert_dir(link: &std::path::Path, dir: &std::path::Path) {
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(link).ok().as_deref() == Some(dir) {
                return;
            }
            let _ = std::fs::remove_file(link);
        }
        Ok(_) => {
            tracing::warn!(old = %link.display(), new = %dir.display(), "alert log moved; the old directory stays (sensor alerts reads the new one only with --config)");
            return;
        }
        Err(_) => {}
    }
    if let Err(error) = std::os::unix::fs::symlink(dir, link) {
        tracing::warn!(%error, link = %link.display(), "cannot link the alert-log directory");
    }
}

fn write_alert(
    log: &mut AlertLog,
    outputs: &Outputs,
    stats: &Stats,
    feed: &crate::api::feed::AlertFeed,
    alert: &crate::alert::Alert,
) {
    let mut alert = alert.clone();
    crate::host::identity::stamp(&mut alert);
    let alert = &alert;
    outputs.deliver(alert);
    feed.publish(alert);
    match log.append(alert) {
        Ok(outcome) => {
            if let Some(error) = outcome.rotation_error {
                tracing::warn!(%error, "alert log rotation failed; still writing");
            }
        }
        Err(error) => {
            stats.alert_log_errors.fetch_add(1, Ordering::Relaxed);
            // The alert must not vanish: it goes to the agent's own log instead.
            tracing::error!(%error, alert = %serde_json::to_string(alert).unwrap_or_default(), "alert log write failed");
        }
    }
}
