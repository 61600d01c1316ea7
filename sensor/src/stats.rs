//! Counters shared by the agent's stages, read by `sensor status`.
//!
//! Every place an event can be lost has a counter here or in the kernel's per-CPU array;
//! `sensor status` shows them all, and the drop monitor turns increases into alerts.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use crate::probes::{decode::Kind, reader::ReaderStats};

#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub reader: std::sync::Arc<ReaderStats>,
    /// Decoded records by kind (index: position in `Kind::ALL`).
    pub received: [AtomicU64; 6],
    /// Records the decoder refused (malformed bytes).
    pub decode_errors: AtomicU64,
    /// Events a slow subscriber (`events tail`, `record`) lost from its queue.
    pub subscriber_dropped: AtomicU64,
    pub alerts: AtomicU64,
    /// Alerts the local log failed to write (they still go to the agent's own log).
    pub alert_log_errors: AtomicU64,
    pub process_table_len: AtomicU64,
    pub process_table_evictions: AtomicU64,
    pub cgroups_known: AtomicU64,
    pub ioc_indicators: AtomicU64,
    /// Kernel event → alert produced, nanoseconds, for the most recent alerts (bounded).
    pub alert_latency: std::sync::Mutex<std::collections::VecDeque<u64>>,
}

/// Latency samples kept for percentiles.
const LATENCY_SAMPLES: usize = 4096;

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            reader: Default::default(),
            received: Default::default(),
            decode_errors: AtomicU64::new(0),
            subscriber_dropped: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            alert_log_errors: AtomicU64::new(0),
            process_table_len: AtomicU64::new(0),
            process_table_evictions: AtomicU64::new(0),
            cgroups_known: AtomicU64::new(0),
            ioc_indicators: AtomicU64::new(0),
            alert_latency: Default::default(),
        }
    }
}

pub fn kind_index(k: Kind) -> usize {
    Kind::ALL.iter().position(|&x| x == k).unwrap_or(0)
}

impl Stats {
    pub fn count_received(&self, k: Kind) {
        self.received[kind_index(k)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_alert_latency(&self, ns: u64) {
        if let Ok(mut v) = self.alert_latency.lock() {
            if v.len() == LATENCY_SAMPLES {
                v.pop_front();
            }
            v.push_back(ns);
        }
    }

    /// (p50, p99, samples) of event-to-alert latency in milliseconds.
    pub fn alert_latency_ms(&self) -> (f64, f64, usize) {
        let Ok(v) = self.alert_latency.lock() else {
            return (0.0, 0.0, 0);
        };
        let mut s: Vec<u64> = v.iter().copied().collect();
        if s.is_empty() {
            return (0.0, 0.0, 0);
        }
        s.sort_unstable();
        let pick = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
        (pick(0.5), pick(0.99), s.len())
    }

    pub fn received(&self, k: Kind) -> u64 {
        self.received[kind_index(k)].load(Ordering::Relaxed)
    }
}

/// Loss counters at one instant, for the drop monitor and status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossSnapshot {
    /// Ring buffer full, by kind.
    pub kernel_dropped: std::collections::BTreeMap<String, u64>,
    /// Events the kernel could not build (failed reads, full stash map).
    pub kernel_errors: u64,
    pub decode_errors: u64,
    pub subscriber_dropped: u64,
    /// Alerts sinks lost (full or damaged spool, refused by the destination).
    #[serde(default)]
    pub output_lost: u64,
    /// Playbook triggers the responder's queue could not take.
    #[serde(default)]
    pub response_dropped: u64,
}

impl LossSnapshot {
    pub fn total(&self) -> u64 {
        self.kernel_dropped.values().sum::<u64>()
            + self.kernel_errors
            + self.decode_errors
            + self.subscriber_dropped
            + self.output_lost
            + self.response_dropped
    }

    /// What grew since `earlier`.
    pub fn since(&self, earlier: &LossSnapshot) -> LossSnapshot {
        LossSnapshot {
            kernel_dropped: self
                .kernel_dropped
                .iter()
                .map(|(k, v)| {
                    let before = earlier.kernel_dropped.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(before))
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
            kernel_errors: self.kernel_errors.saturating_sub(earlier.kernel_errors),
            decode_errors: self.decode_errors.saturating_sub(earlier.decode_errors),
            subscriber_dropped: self
                .subscriber_dropped
                .saturating_sub(earlier.subscriber_dropped),
            output_lost: self.output_lost.saturating_sub(earlier.output_lost),
            response_dropped: self
                .response_dropped
                .saturating_sub(earlier.response_dropped),
        }
    }
}
