//! The detection stage: rules over each event, alert context, flood folding.
//!
//! Synchronous and owned by the pipeline: a new ruleset arrives as a value (hot reload swaps
//! it between two events; nothing is half-applied).

pub mod fold;
pub mod ruleset;

use std::time::Duration;

use crate::{
    alert::Alert,
    event::Event,
    pipeline::alert_context,
    rules::{RuleMatch, RuleSet, Scratch},
};

pub struct Detector {
    rules: RuleSet,
    scratch: Scratch,
    matches: Vec<RuleMatch>,
    folder: fold::Folder,
}

impl Detector {
    pub fn new(rules: RuleSet, fold_window: Duration) -> Self {
        Self {
            rules,
            scratch: Scratch::new(),
            matches: Vec::new(),
            folder: fold::Folder::new(fold_window),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Swap the ruleset (hot reload). Open fold windows stay open: they key on rule ids.
    pub fn replace_rules(&mut self, rules: RuleSet) {
        self.rules = rules;
    }

    /// Alerts for one event: new ones pass, floods fold (see `fold`).
    pub fn detect(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        self.matches.clear();
        self.rules
            .evaluate(&mut self.scratch, ev, &mut self.matches);
        for m in self.matches.drain(..) {
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
            let (now, closed) = self.folder.offer(alert, ev.event.boot_ns);
            out.extend(closed);
            out.extend(now);
        }
    }

    /// Summaries of fold windows that closed by `boot_ns` (called on a timer).
    pub fn flush(&mut self, boot_ns: u64) -> Vec<Alert> {
        self.folder.flush(boot_ns)
    }

    /// Close every fold window (shutdown, end of a replay).
    pub fn drain(&mut self) -> Vec<Alert> {
        self.folder.drain()
    }
}
