//! Alert flood folding: identical alerts (same rule, process image, container) inside a
//! window become one alert now and, when the window closes, one summary carrying the count.
//!
//! The first alert of a burst is never delayed (a responder may act on it); the rest are
//! counted, and the summary says how many there were. Time is the events' boot clock, so
//! replays fold exactly as live runs do.

use std::collections::HashMap;

use crate::alert::Alert;

/// Distinct open windows kept; beyond it the oldest windows are closed early (their
/// summaries are emitted, nothing is lost).
const MAX_OPEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FoldKey {
    rule: String,
    image: String,
    container: String,
}

struct Window {
    opened_ns: u64,
    suppressed: u64,
    last: Alert,
}

pub struct Folder {
    window_ns: u64,
    open: HashMap<FoldKey, Window>,
}

impl Folder {
    pub fn new(window: std::time::Duration) -> Self {
        Self {
            window_ns: window.as_nanos().min(u64::MAX as u128) as u64,
            open: HashMap::new(),
        }
    }

    fn key(alert: &Alert) -> FoldKey {
        FoldKey {
            rule: alert.rule.id.clone(),
            image: alert
                .process
                .as_ref()
                .map(|p| p.executable.clone())
                .unwrap_or_default(),
            container: alert
                .container
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
        }
    }

    /// The alert to emit now, if any: the first of its kind in a window passes, the rest fold.
    /// Also returns summaries of windows that had to be closed to make room.
    pub fn offer(&mut self, alert: Alert, now_ns: u64) -> (Option<Alert>, Vec<Alert>) {
        let mut closed = self.flush(now_ns);
        if self.window_ns == 0 {
            return (Some(alert), closed);
        }
        let key = Self::key(&alert);
        if let Some(w) = self.open.get_mut(&key) {
            w.suppressed += 1;
            w.last = alert;
            return (None, closed);
        }
        if self.open.len() >= MAX_OPEN {
            closed.extend(self.close_oldest());
        }
        self.open.insert(
            key,
            Window {
                opened_ns: now_ns,
                suppressed: 0,
                last: alert.clone(),
            },
        );
        (Some(alert), closed)
    }

    /// Summaries of every window that has closed by `now_ns`.
    pub fn flush(&mut self, now_ns: u64) -> Vec<Alert> {
        let expired: Vec<FoldKey> = self
            .open
            .iter()
            .filter(|(_, w)| now_ns.saturating_sub(w.opened_ns) >= self.window_ns)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| self.open.remove(&k))
            .filter_map(summary)
            .collect()
    }

    /// Close everything (shutdown, end of a replay).
    pub fn drain(&mut self) -> Vec<Alert> {
        self.open.drain().filter_map(|(_, w)| summary(w)).collect()
    }

    fn close_oldest(&mut self) -> Option<Alert> {
        let key = self
            .open
            .iter()
            .min_by_key(|(_, w)| w.opened_ns)
            .map(|(k, _)| k.clone())?;
        self.open.remove(&key).and_then(summary)
    }
}

fn summary(w: Window) -> Option<Alert> {
    if w.suppressed == 0 {
        return None;
    }
    let mut a = w.last;
    // A fresh id: the summary is a new record, not a copy receivers should deduplicate away.
    a.id = crate::alert::Alert::new("x", "x", a.severity, "").id;
    a.count = w.suppressed;
    a.message = format!("{} (folded: {} more like it)", a.message, w.suppressed);
    a.tags.push("folded".into());
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertProcess, Severity};

    fn alert(rule: &str, exe: &str) -> Alert {
        Alert::new(rule, rule, Severity::High, "m").with_process(AlertProcess::new(1, 0, 0, exe))
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn first_passes_rest_fold_into_one_summary() {
        let mut f = Folder::new(std::time::Duration::from_secs(60));
        let (a, _) = f.offer(alert("r1", "/bin/x"), 0);
        assert!(a.is_some());
        for i in 1..=9 {
            let (a, closed) = f.offer(alert("r1", "/bin/x"), i * S);
            assert!(a.is_none() && closed.is_empty());
        }
        // A different image is a different alert.
        assert!(f.offer(alert("r1", "/bin/y"), 10 * S).0.is_some());
        let sums = f.flush(61 * S);
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0].count, 9);
        assert!(sums[0].tags.contains(&"folded".to_owned()));
        // After the window, the next one passes again.
        assert!(f.offer(alert("r1", "/bin/x"), 62 * S).0.is_some());
        assert!(f.drain().is_empty(), "nothing folded in the new windows");
    }

    #[test]
    fn zero_window_disables_folding() {
        let mut f = Folder::new(std::time::Duration::ZERO);
        assert!(f.offer(alert("r", "/x"), 0).0.is_some());
        assert!(f.offer(alert("r", "/x"), 0).0.is_some());
    }
}
