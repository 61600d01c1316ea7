//! Where alerts go: the local alert log (always), and any number of sinks (`[[outputs]]`):
//! stdout, syslog (RFC 5424, CEF, LEEF over UDP/TCP/TLS), webhooks (JSON, Slack, Discord,
//! OCSF) and email. Each sink filters, queues (a disk spool for network sinks) and sends on
//! its own task, so a dead or slow destination delays only itself; every loss is counted.

pub mod alert_log;
pub mod cef;
pub mod chat;
pub mod config;
pub mod event_line;
pub mod format;
pub mod http;
pub mod leef;
pub mod metrics;
pub mod ocsf;
pub mod queue;
pub mod relp;
pub mod sink;
pub mod smtp;
pub mod spool;
pub mod syslog;
pub mod tls;
pub mod transport;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
};

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Severity};

pub use config::OutputConfig;
pub use sink::{Sender, Sink, SinkError};

/// Distinct (rule, severity) pairs counted for metrics; beyond, alerts count under `other`.
const MAX_RULE_SERIES: usize = 2000;

/// One sink in `sensor status` and the metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SinkStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub format: String,
    pub destination: String,
    /// Sends without TLS (allowed by `allow_plaintext`).
    pub plaintext: bool,
    pub sent: u64,
    pub failed: u64,
    pub rejected: u64,
    pub queued: u64,
    pub queued_bytes: u64,
    pub dropped: u64,
    pub latency_avg_ms: f64,
    pub latency_max_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub last_sent_unix: u64,
}

#[derive(Default)]
pub struct Outputs {
    pub sinks: Vec<Arc<Sink>>,
    /// Alerts by rule id, one counter per severity (indexed by rank).
    counts: Mutex<BTreeMap<String, [u64; 5]>>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Outputs {
    /// Opens every sink's queue (recovering spools) and builds its sender (reading secret and
    /// TLS files). Any error stops the start: a sink that cannot work must not look configured.
    pub fn open(
        configs: &[OutputConfig],
        state_dir: &Path,
    ) -> Result<(Self, Vec<Sender>), SinkError> {
        let spool_root = state_dir.join("spool");
        let mut sinks = Vec::new();
        let mut senders = Vec::new();
        for c in configs {
            senders.push(Sender::build(c)?);
            let sink = Sink::open(c, &spool_root)?;
            let recovered = sink.pending();
            if recovered > 0 {
                tracing::info!(sink = %c.name, alerts = recovered, "undelivered alerts from the spool");
            }
            sinks.push(Arc::new(sink));
        }
        Ok((
            Self {
                sinks,
                counts: Mutex::default(),
            },
            senders,
        ))
    }

    /// Starts one task per sink. Each first checks that its destination answers (logging a
    /// clear error if not; alerts spool meanwhile), then delivers.
    pub fn start(&self, senders: Vec<Sender>) -> Vec<tokio::task::JoinHandle<()>> {
        self.sinks
            .iter()
            .cloned()
            .zip(senders)
            .map(|(sink, mut sender)| {
                tokio::spawn(async move {
                    // Ends with this task, also when it is aborted at shutdown.
                    let _flusher = AbortOnDrop(tokio::spawn(sink.clone().flush_spool()));
                    if let Err(error) = sender.probe().await {
                        tracing::error!(sink = %sink.config.name, destination = %sink.config.destination(), %error, "output unreachable; alerts are spooled until it answers");
                        sink.stats.set_error(Some(error));
                    }
                    sink.run(sender).await
                })
            })
            .collect()
    }

    /// Hands an alert to every sink whose filter takes it. Called on the pipeline thread:
    /// only appends to queues.
    pub fn deliver(&self, alert: &Alert) {
        if let Ok(mut counts) = self.counts.lock() {
            let sev = alert.severity as usize;
            match counts.get_mut(alert.rule.id.as_str()) {
                Some(c) => c[sev] += 1,
                None => {
                    let key = if counts.len() < MAX_RULE_SERIES {
                        alert.rule.id.clone()
                    } else {
                        "other".into()
                    };
                    counts.entry(key).or_default()[sev] += 1;
                }
            }
        }
        let mut json: Option<String> = None;
        for sink in &self.sinks {
            if !sink.filter.accepts(alert) {
                continue;
            }
            let body = json.get_or_insert_with(|| serde_json::to_string(alert).unwrap_or_default());
            sink.offer(body);
        }
    }

    pub fn alert_counts(&self) -> Vec<(String, Severity, u64)> {
        self.counts
            .lock()
            .map(|c| {
                c.iter()
                    .flat_map(|(rule, by_sev)| {
                        Severity::ALL
                            .iter()
                            .zip(by_sev)
                            .filter(|(_, n)| **n > 0)
                            .map(|(s, n)| (rule.clone(), *s, *n))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn status(&self) -> Vec<SinkStatus> {
        self.sinks
            .iter()
            .map(|s| {
                let (queued, queued_bytes, dropped) = s
                    .queue
                    .lock()
                    .map(|q| (q.pending(), q.bytes(), q.dropped()))
                    .unwrap_or_default();
                let st = &s.stats;
                let n = st.latency_count.load(Ordering::Relaxed);
                SinkStatus {
                    name: s.config.name.clone(),
                    kind: s.config.kind().as_str().into(),
                    format: s.config.format().as_str().into(),
                    destination: s.config.destination(),
                    plaintext: s.config.plaintext(),
                    sent: st.sent.load(Ordering::Relaxed),
                    failed: st.failed.load(Ordering::Relaxed),
                    rejected: st.rejected.load(Ordering::Relaxed),
                    queued,
                    queued_bytes,
                    dropped: dropped + st.enqueue_errors.load(Ordering::Relaxed),
                    latency_avg_ms: if n == 0 {
                        0.0
                    } else {
                        st.latency_sum_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
                    },
                    latency_max_ms: st.latency_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
                    last_error: st.last_error.lock().ok().and_then(|e| e.clone()),
                    last_sent_unix: st.last_sent_unix.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Alerts lost by all sinks (overflow, damaged spool records, refused by the destination).
    /// Read every second by the drop monitor: counters only, no status rendering.
    pub fn lost_total(&self) -> u64 {
        self.sinks
            .iter()
            .map(|s| {
                let st = &s.stats;
                s.queue.lock().map(|q| q.dropped()).unwrap_or(0)
                    + st.enqueue_errors.load(Ordering::Relaxed)
                    + st.rejected.load(Ordering::Relaxed)
            })
            .sum()
    }
}
