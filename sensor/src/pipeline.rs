//! `Pipeline::process`: decode → enrich → detect, as plain synchronous code over owned state.
//!
//! No channels and no tokio inside: the whole detection path runs in unit and replay tests
//! without root or a kernel. The agent feeds it from the ring-buffer reader; `sensor replay`
//! feeds it recorded events.

use std::sync::{Arc, atomic::Ordering};

use crate::{
    alert::{Alert, AlertContainer, AlertProcess},
    clock::Clock,
    detect::Detector,
    enrich::enricher::{EnrichOptions, Enricher},
    event::Event,
    probes::decode::{self, RawEvent},
    stats::Stats,
};

/// What one event yields.
#[derive(Debug, Default)]
pub struct Outcome {
    pub event: Option<Event>,
    pub alerts: Vec<Alert>,
}

pub struct Pipeline {
    pub enricher: Enricher,
    pub detector: Detector,
    /// Behavioural baselines (learning and anomaly scoring), when enabled.
    pub baseline: Option<crate::baseline::Engine>,
    /// Attacks on the sensor itself (the live agent only).
    pub tamper: Option<crate::tamper::Tamper>,
    /// Secrets on command lines: found, alerted, and (when `redact`) removed from the event and
    /// the process table before anything is written anywhere.
    dlp: crate::dlp::Scanner,
    redact: bool,
    scan_files: bool,
    /// Files already scanned, by (path, mtime, size): a file read in a loop is scanned once.
    scanned: std::collections::HashSet<(String, i64, u64)>,
    stats: Arc<Stats>,
    sequence: u64,
    last_decode_warning: Option<std::time::Instant>,
}

impl Pipeline {
    pub fn new(opts: &EnrichOptions, clock: Clock, stats: Arc<Stats>, detector: Detector) -> Self {
        Self {
            enricher: Enricher::new(opts, clock),
            detector,
            baseline: None,
            tamper: None,
            dlp: crate::dlp::Scanner::new(),
            redact: true,
            // Off unless the live agent turns it on: a replay's paths are another host's.
            scan_files: false,
            scanned: std::collections::HashSet::new(),
            stats,
            sequence: 0,
            last_decode_warning: None,
        }
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// One kernel record.
    pub fn process(&mut self, bytes: &[u8]) -> Outcome {
        match decode::decode(bytes) {
            Ok(raw) => self.process_raw(raw),
            Err(error) => {
                self.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                // Counted always; logged at most once a second so bad bytes cannot flood logs.
                let now = std::time::Instant::now();
                if self
                    .last_decode_warning
                    .is_none_or(|t| now.duration_since(t).as_secs() >= 1)
                {
                    self.last_decode_warning = Some(now);
                    tracing::warn!(%error, len = bytes.len(), "undecodable kernel record");
                }
                Outcome::default()
            }
        }
    }

    pub fn process_raw(&mut self, raw: RawEvent) -> Outcome {
        self.stats.count_received(raw.header.kind);
        self.sequence += 1;
        let event = self.enricher.enrich(raw, self.sequence);
        let t = &self.enricher.table;
        self.stats
            .process_table_len
            .store(t.len() as u64, Ordering::Relaxed);
        self.stats
            .process_table_evictions
            .store(t.evictions(), Ordering::Relaxed);
        self.stats
            .cgroups_known
            .store(self.enricher.cgroups.len() as u64, Ordering::Relaxed);
        self.process_event(event)
    }

    /// DLP settings: redact secrets found on command lines; scan sensitive files when read.
    pub fn set_dlp(&mut self, redact: bool, scan_files: bool) {
        self.redact = redact;
        self.scan_files = scan_files;
    }

    /// A successful read-only open of a file whose path marks it confidential or restricted
    /// (`.env`, credentials, kubeconfig, keys, tokens): the agent reads its first 64 KiB
    /// itself and scans it, once per file version. Only kinds and classification are
    /// reported; the content never leaves the agent.
    fn secrets_in_file(&mut self, ev: &Event) -> Option<Alert> {
        const MAX_SCAN: u64 = 64 * 1024;
        const MAX_REMEMBERED: usize = 16_384;
        if !self.scan_files || ev.event.outcome != Some(crate::event::Outcome::Success) {
            return None;
        }
        let f = ev.file.as_ref()?;
        if !ev.event.action.starts_with("open")
            || f.flag_names.iter().any(|n| {
                n != "O_RDONLY" && n != "O_CLOEXEC" && n != "O_NONBLOCK" && n != "O_NOFOLLOW"
            })
        {
            return None;
        }
        let path = f.path.as_deref()?;
        let class = self.dlp.classify_path(path);
        if class < crate::dlp::Classification::Confidential {
            return None;
        }
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        if !self
            .scanned
            .insert((path.to_owned(), meta.mtime(), meta.size()))
        {
            return None;
        }
        if self.scanned.len() > MAX_REMEMBERED {
            self.scanned.clear();
        }
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(path).ok()?, MAX_SCAN),
            &mut buf,
        )
        .ok()?;
        let text = String::from_utf8_lossy(&buf);
        let mut findings = Vec::new();
        self.dlp.scan_text("file", &text, &mut findings);
        let worst = findings.iter().map(|f| f.classification).max()?.max(class);
        let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let mut a = Alert::new(
            "sensor.dlp.secret_in_file_read",
            "Credential file read",
            if worst == crate::dlp::Classification::Restricted {
                crate::alert::Severity::Medium
            } else {
                crate::alert::Severity::Low
            },
            format!(
                "{} read {} holding {} ({})",
                ev.process.executable.as_deref().unwrap_or(&ev.process.name),
                path,
                kinds.join(", "),
                worst.as_str()
            ),
        )
        .with_tag("dlp")
        .with_field("secret_kinds", kinds)
        .with_field("classification", worst.as_str())
        .with_field("file.path", path);
        if let Ok(t) = crate::alert::TechniqueId::parse("T1552.001") {
            a = a.with_technique(t);
        }
        a.time = ev.timestamp.clone();
        Some(alert_context(a, ev))
    }

    /// Scan an exec's argv for credentials; redact them in the event and the process table;
    /// one alert naming the kinds (never the values).
    fn secrets(&mut self, ev: &mut Event) -> Option<Alert> {
        let mut findings = Vec::new();
        self.dlp.scan_args(&ev.process.args, &mut findings);
        let worst = findings.iter().map(|f| f.classification).max()?;
        let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        if self.redact {
            crate::dlp::redact_event(ev, &findings);
            self.enricher
                .table
                .set_args(ev.process.pid, ev.process.args.clone());
        }
        let severity = match worst {
            crate::dlp::Classification::Restricted => crate::alert::Severity::High,
            crate::dlp::Classification::Confidential => crate::alert::Severity::Medium,
            _ => crate::alert::Severity::Low,
        };
        let mut a = Alert::new(
            "sensor.dlp.secret_in_command_line",
            "Credential on a command line",
            severity,
            format!(
                "{} found on the command line of {} ({})",
                kinds.join(", "),
                ev.process.executable.as_deref().unwrap_or(&ev.process.name),
                worst.as_str()
            ),
        )
        .with_tag("dlp")
        .with_field("secret_kinds", kinds)
        .with_field("classification", worst.as_str())
        .with_field("redacted", self.redact);
        if let Ok(t) = crate::alert::TechniqueId::parse("T1552") {
            a = a.with_technique(t);
        }
        a.time = ev.timestamp.clone();
        Some(alert_context(a, ev))
    }

    /// An already-enriched event (live, or from a recording).
    pub fn process_event(&mut self, mut event: Event) -> Outcome {
        let mut alerts = Vec::new();
        // Secrets first: nothing downstream (rules, outputs, subscribers) sees them.
        if event.event.kind == crate::event::Kind::Exec
            && let Some(a) = self.secrets(&mut event)
        {
            alerts.push(a);
        }
        if event.event.kind == crate::event::Kind::File
            && let Some(a) = self.secrets_in_file(&event)
        {
            alerts.push(a);
        }
        self.detector.detect(&event, &mut alerts);
        if let Some(a) = self.tamper.as_ref().and_then(|t| t.check(&event)) {
            alerts.push(a);
        }
        if let Some(b) = &mut self.baseline {
            b.observe(&event, &mut alerts);
        }
        self.stats
            .alerts
            .fetch_add(alerts.len() as u64, Ordering::Relaxed);
        Outcome {
            event: Some(event),
            alerts,
        }
    }

    /// Alerts due without a new event: summaries of folded floods whose window closed.
    pub fn tick(&mut self, boot_ns: u64) -> Vec<Alert> {
        let out = self.detector.flush(boot_ns);
        self.stats
            .alerts
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }

    /// Everything still held (shutdown, end of a replay).
    pub fn finish(&mut self) -> Vec<Alert> {
        let out = self.detector.drain();
        self.stats
            .alerts
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }
}

/// The process and container part of an alert, from the event that triggered it.
pub fn alert_context(alert: Alert, ev: &Event) -> Alert {
    let p = &ev.process;
    let mut proc_ = AlertProcess::new(
        p.pid,
        p.parent.as_ref().map_or(0, |pp| pp.pid),
        ev.user.id,
        p.executable.clone().unwrap_or_else(|| p.name.clone()),
    )
    .with_args(p.args.iter().cloned());
    if let Some(name) = &ev.user.name {
        proc_ = proc_.with_user_name(name.clone());
    }
    for a in p.parent.iter().chain(p.ancestry.iter()) {
        proc_ = proc_.with_ancestor(
            a.pid,
            a.executable
                .clone()
                .or_else(|| a.name.clone())
                .unwrap_or_default(),
        );
    }
    let mut alert = alert.with_process(proc_);
    if let Some(c) = &ev.container {
        alert.container = Some(AlertContainer {
            id: c.id.clone(),
            runtime: c.runtime.clone(),
            pod_uid: c.pod_uid.clone(),
        });
    }
    alert
}
