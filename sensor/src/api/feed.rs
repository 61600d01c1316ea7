//! The recent alerts the agent raised, numbered, with counts by rule and severity since
//! start, and a live broadcast for streams (the remote API's WebSocket, the dashboard).
//!
//! The history is bounded ([`RECENT_ALERTS`]); the alert log on disk keeps everything. A
//! stream that falls behind the broadcast loses alerts; it is told how many, and they are
//! counted as subscriber losses.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::alert::{Alert, Severity};

/// Alerts kept in memory for paging and incident timelines.
pub const RECENT_ALERTS: usize = 10_000;
/// Alerts a stream may fall behind before it loses some.
pub const STREAM_QUEUE: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Numbered {
    pub seq: u64,
    pub alert: Arc<Alert>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub total: u64,
    pub by_rule: BTreeMap<String, u64>,
    pub by_severity: BTreeMap<String, u64>,
}

/// Most distinct rule ids counted (rules are few; this bounds a flood of odd ids).
const MAX_RULE_COUNTERS: usize = 4096;

pub struct AlertFeed {
    recent: Mutex<VecDeque<Numbered>>,
    next: AtomicU64,
    counts: Mutex<Counts>,
    tx: broadcast::Sender<Numbered>,
}

impl Default for AlertFeed {
    fn default() -> Self {
        Self::new()
    }
}

/// Which alerts a page or stream wants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertQuery {
    /// At least this severe.
    pub severity: Option<Severity>,
    /// This rule id, or a prefix of it ending in `*`.
    pub rule: Option<String>,
    /// Older than this sequence number (paging back).
    pub before: Option<u64>,
    pub limit: usize,
}

impl AlertQuery {
    pub fn matches(&self, a: &Alert) -> bool {
        self.severity.is_none_or(|s| a.severity >= s)
            && self
                .rule
                .as_deref()
                .is_none_or(|r| match r.strip_suffix('*') {
                    Some(prefix) => a.rule.id.starts_with(prefix),
                    None => a.rule.id == r,
                })
    }
}

impl AlertFeed {
    pub fn new() -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(1024)),
            next: AtomicU64::new(1),
            counts: Mutex::new(Counts::default()),
            tx: broadcast::channel(STREAM_QUEUE).0,
        }
    }

    /// Called for every alert written (after the identity stamp).
    pub fn publish(&self, alert: &Alert) {
        let n = Numbered {
            seq: self.next.fetch_add(1, Ordering::Relaxed),
            alert: Arc::new(alert.clone()),
        };
        if let Ok(mut c) = self.counts.lock() {
            c.total += alert.count.max(1);
            *c.by_severity
                .entry(alert.severity.as_str().to_owned())
                .or_default() += alert.count.max(1);
            let rules = c.by_rule.len();
            let key = if rules < MAX_RULE_COUNTERS || c.by_rule.contains_key(&alert.rule.id) {
                alert.rule.id.clone()
            } else {
                "(other)".to_owned()
            };
            *c.by_rule.entry(key).or_default() += alert.count.max(1);
        }
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT_ALERTS {
                r.pop_front();
            }
            r.push_back(n.clone());
        }
        // No receivers is fine: nobody is streaming.
        let _ = self.tx.send(n);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.tx.subscribe()
    }

    /// Newest first, up to `q.limit`; with the `before` of the next (older) page, if any.
    pub fn page(&self, q: &AlertQuery) -> (Vec<Numbered>, Option<u64>) {
        let Ok(r) = self.recent.lock() else {
            return (Vec::new(), None);
        };
        let mut out = Vec::new();
        let mut more = false;
        for n in r
            .iter()
            .rev()
            .filter(|n| q.before.is_none_or(|b| n.seq < b))
            .filter(|n| q.matches(&n.alert))
        {
            if out.len() == q.limit {
                more = true;
                break;
            }
            out.push(n.clone());
        }
        let next = if more {
            out.last().map(|n| n.seq)
        } else {
            None
        };
        (out, next)
    }

    /// The alerts with these ids still held, in time order.
    pub fn by_ids(&self, ids: &[String]) -> Vec<Arc<Alert>> {
        let Ok(r) = self.recent.lock() else {
            return Vec::new();
        };
        let want: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut out: Vec<_> = r
            .iter()
            .filter(|n| want.contains(n.alert.id.as_str()))
            .map(|n| n.alert.clone())
            .collect();
        out.sort_by(|a, b| a.time.cmp(&b.time));
        out
    }

    pub fn counts(&self) -> Counts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, sev: Severity) -> Alert {
        Alert::new(rule, "r", sev, "m")
    }

    #[test]
    fn pages_go_back_in_time_and_filters_apply() {
        let f = AlertFeed::new();
        for i in 0..25 {
            let sev = if i % 5 == 0 {
                Severity::High
            } else {
                Severity::Low
            };
            f.publish(&alert(if i % 2 == 0 { "a.x" } else { "b.y" }, sev));
        }
        let q = AlertQuery {
            limit: 10,
            ..Default::default()
        };
        let (p1, next) = f.page(&q);
        assert_eq!(p1.first().map(|n| n.seq), Some(25));
        assert_eq!(next, Some(16));
        let (p2, _) = f.page(&AlertQuery {
            before: next,
            ..q.clone()
        });
        assert_eq!(p2.first().map(|n| n.seq), Some(15));
        let (p3, next3) = f.page(&AlertQuery {
            before: Some(6),
            ..q.clone()
        });
        assert_eq!((p3.len(), next3), (5, None));
        let (high, _) = f.page(&AlertQuery {
            severity: Some(Severity::High),
            limit: 100,
            ..Default::default()
        });
        assert_eq!(high.len(), 5);
        let (a, _) = f.page(&AlertQuery {
            rule: Some("a.*".into()),
            limit: 100,
            ..Default::default()
        });
        assert_eq!(a.len(), 13);
        let c = f.counts();
        assert_eq!(
            (c.total, c.by_rule["a.x"], c.by_severity["high"]),
            (25, 13, 5)
        );
    }

    #[test]
    fn history_is_bounded_and_streams_are_told_of_losses() {
        let f = AlertFeed::new();
        let mut rx = f.subscribe();
        for _ in 0..(RECENT_ALERTS + 10) {
            f.publish(&alert("r", Severity::Info));
        }
        let (all, _) = f.page(&AlertQuery {
            limit: usize::MAX,
            ..Default::default()
        });
        assert_eq!(all.len(), RECENT_ALERTS);
        assert!(
            matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(n)) if n as usize == RECENT_ALERTS + 10 - STREAM_QUEUE)
        );
    }
}
