//! The detection stage: rules over each event, alert context, flood folding.
//!
//! Synchronous and owned by the pipeline: a new ruleset arrives as a value (hot reload swaps
//! it between two events; nothing is half-applied).

pub mod fold;
pub mod ruleset;

use std::{net::IpAddr, sync::Arc, time::Duration};

use crate::{
    alert::{Alert, Severity},
    event::{Event, Kind},
    ioc::{IocMeta, IocSet, hashes::HashCache},
    pipeline::alert_context,
    rules::{
        CorrelationMatch, Correlator, RuleMatch, RuleSet, Scratch,
        incidents::{IncidentConfig, IncidentTracker},
    },
};

pub struct Detector {
    rules: RuleSet,
    scratch: Scratch,
    matches: Vec<RuleMatch>,
    folder: fold::Folder,
    correlator: Correlator,
    correlations: Vec<CorrelationMatch>,
    incidents: IncidentTracker,
    ioc: Arc<IocSet>,
    hashes: HashCache,
    /// Look up every connect's peer in userspace (replays: no kernel to flag hits).
    ioc_userspace: bool,
    /// Alerts folded away (not emitted), kept for response playbooks when they are on: a
    /// second reverse shell inside the fold window is still contained.
    keep_folded: bool,
    folded: Vec<Alert>,
}

/// Folded alerts held between two `take_folded` calls at most.
const MAX_FOLDED: usize = 4096;

pub const IOC_IP_RULE: &str = "sensor.ioc.ip";
pub const IOC_HASH_RULE: &str = "sensor.ioc.hash";

impl Detector {
    pub fn new(rules: RuleSet, fold_window: Duration) -> Self {
        Self {
            correlator: Correlator::new(&rules),
            correlations: Vec::new(),
            incidents: IncidentTracker::new(IncidentConfig::default()),
            rules,
            scratch: Scratch::new(),
            matches: Vec::new(),
            folder: fold::Folder::new(fold_window),
            ioc: Arc::new(IocSet::default()),
            hashes: HashCache::default(),
            ioc_userspace: false,
            keep_folded: false,
            folded: Vec::new(),
        }
    }

    /// Indicators to match; `userspace` looks up every connect here instead of trusting the
    /// kernel's flag (for replays).
    pub fn set_ioc(&mut self, ioc: Arc<IocSet>, userspace: bool) {
        self.ioc = ioc;
        self.ioc_userspace = userspace;
    }

    pub fn hash_cache(&self) -> &HashCache {
        &self.hashes
    }

    fn ioc_alerts(&mut self, ev: &Event) -> Vec<Alert> {
        if self.ioc.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<(&'static str, String, IocMeta)> = Vec::new();
        if ev.event.kind == Kind::Exec && !self.ioc.hashes.is_empty() {
            // /proc/<pid>/exe is the exact inode that runs, even if the path was replaced.
            let proc_exe = std::path::PathBuf::from(format!("/proc/{}/exe", ev.process.pid));
            let h = self.hashes.sha256(&proc_exe).or_else(|| {
                ev.process
                    .executable
                    .as_deref()
                    .and_then(|p| self.hashes.sha256(std::path::Path::new(p)))
            });
            if let Some(h) = h
                && let Some(m) = self.ioc.match_hash(&h)
            {
                hits.push((IOC_HASH_RULE, crate::ioc::hashes::hex(&h), m.clone()));
            }
        }
        if let Some(n) = &ev.network
            && (n.ioc || self.ioc_userspace)
        {
            let peer = ev.destination.as_ref().or(ev.source.as_ref());
            if let Some(ip) = peer
                .and_then(|e| e.ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                && let Some(m) = self.ioc.match_ip(ip)
            {
                hits.push((IOC_IP_RULE, ip.to_string(), m.clone()));
            }
        }
        hits.into_iter()
            .map(|(rule, observed, m)| {
                let (name, what) = if rule == IOC_HASH_RULE {
                    ("Known-bad executable ran", "executable SHA-256")
                } else {
                    ("Connection to a known-bad address", "peer address")
                };
                let mut a = Alert::new(
                    rule,
                    name,
                    Severity::High,
                    format!(
                        "{what} {observed} matches indicator {} ({})",
                        m.indicator, m.source
                    ),
                )
                .with_tag("ioc")
                .with_field("indicator", serde_json::to_value(&m).unwrap_or_default())
                .with_field("observed", observed);
                a.time = ev.timestamp.clone();
                alert_context(a, ev)
            })
            .collect()
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Swap the ruleset (hot reload). Open fold windows stay open: they key on rule ids.
    pub fn replace_rules(&mut self, rules: RuleSet) {
        // Partial sequences belong to the old definitions; they start over with the new ones.
        self.correlator = Correlator::new(&rules);
        self.rules = rules;
    }

    pub fn incidents(&mut self) -> &mut IncidentTracker {
        &mut self.incidents
    }

    pub fn correlator(&self) -> &Correlator {
        &self.correlator
    }

    /// Keep folded alerts for [`Detector::take_folded`] (the agent turns this on when
    /// playbooks are loaded).
    pub fn keep_folded(&mut self, on: bool) {
        self.keep_folded = on;
        self.folded.clear();
    }

    /// Alerts folded since the last call (at most 4096; more are not kept).
    pub fn take_folded(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.folded)
    }

    /// Emit `alert` unless it folds, after attaching it to its incident.
    fn emit(&mut self, mut alert: Alert, ev: &Event, out: &mut Vec<Alert>) {
        let id = self.incidents.add(&alert, ev, ev.event.boot_ns);
        alert = alert.with_field("incident", id.0.clone());
        let kept = (self.keep_folded && self.folded.len() < MAX_FOLDED).then(|| alert.clone());
        let (now, closed) = self.folder.offer(alert, ev.event.boot_ns);
        out.extend(closed);
        match now {
            Some(a) => out.push(a),
            None => self.folded.extend(kept),
        }
    }

    /// Alerts for one event: new ones pass, floods fold (see `fold`).
    pub fn detect(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        for alert in self.ioc_alerts(ev) {
            self.emit(alert, ev, out);
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.rules.evaluate(&mut self.scratch, ev, &mut matches);
        for m in matches.drain(..) {
            let rule = &m.rule;
            let mut alert =
                Alert::new(rule.id.clone(), rule.name.clone(), rule.severity, m.message);
            // The alert's time is the triggering event's, not the moment it was processed.
            alert.time = ev.timestamp.clone();
            for t in &rule.techniques {
                alert = alert.with_technique(t.clone());
            }
            for t in &rule.tags {
                alert = alert.with_tag(t.clone());
            }
            if !rule.tactics.is_empty() {
                alert = alert.with_field("tactics", rule.tactics.clone());
            }
            alert = alert.with_field(
                "event",
                serde_json::json!({
                    "action": ev.event.action,
                    "sequence": ev.event.sequence,
                }),
            );
            if let Some(f) = &ev.file
                && let Some(p) = &f.path
            {
                alert = alert.with_field("file.path", p.clone());
            }
            if let Some(d) = &ev.destination {
                alert =
                    alert.with_field("destination", serde_json::to_value(d).unwrap_or_default());
            }
            let alert = alert_context(alert, ev);
            self.emit(alert, ev, out);
        }
        // Reuse the buffer: no allocation per event once warmed up.
        self.matches = matches;
        self.correlations.clear();
        let mut matches = std::mem::take(&mut self.correlations);
        self.correlator.observe(&mut self.scratch, ev, &mut matches);
        for m in matches.drain(..) {
            let mut alert = m.to_alert(ev);
            alert.time = ev.timestamp.clone();
            self.emit(alert, ev, out);
        }
        self.correlations = matches;
    }

    /// Summaries of fold windows that closed by `boot_ns` (called on a timer).
    pub fn flush(&mut self, boot_ns: u64) -> Vec<Alert> {
        self.correlator.expire(boot_ns);
        self.incidents.tick(boot_ns);
        self.folder.flush(boot_ns)
    }

    /// Close every fold window (shutdown, end of a replay).
    pub fn drain(&mut self) -> Vec<Alert> {
        self.folder.drain()
    }
}
