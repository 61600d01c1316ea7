//! Prometheus text exposition at `GET /metrics` (`[metrics] listen`): events and losses by
//! stage, alerts by rule and severity, and per-sink delivery counters and latency.

use std::{fmt::Write as _, sync::Arc, sync::atomic::Ordering};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::api::StatusReport;

use super::{Outputs, sink::LATENCY_BUCKETS};

/// A label value: `\`, `"` and newlines escaped as the exposition format requires.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(status: &StatusReport, outputs: &Outputs) -> String {
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut o,
        "sensor_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
    );
    let _ = writeln!(o, "sensor_uptime_seconds {}", status.uptime_secs);
    family(
        &mut o,
        "sensor_kernel_events_total",
        "counter",
        "Events the probes saw, by kind.",
    );
    for (k, c) in &status.kernel {
        let _ = writeln!(
            o,
            "sensor_kernel_events_total{{kind=\"{}\"}} {}",
            label(k),
            c.seen
        );
    }
    family(
        &mut o,
        "sensor_events_received_total",
        "counter",
        "Events decoded in userspace, by kind.",
    );
    for (k, n) in &status.received {
        let _ = writeln!(
            o,
            "sensor_events_received_total{{kind=\"{}\"}} {n}",
            label(k)
        );
    }
    family(
        &mut o,
        "sensor_events_filtered_total",
        "counter",
        "Events filtered in the kernel on purpose, by kind.",
    );
    for (k, c) in &status.kernel {
        let _ = writeln!(
            o,
            "sensor_events_filtered_total{{kind=\"{}\"}} {}",
            label(k),
            c.filtered
        );
    }
    family(
        &mut o,
        "sensor_dropped_total",
        "counter",
        "Events and alerts lost, by pipeline stage.",
    );
    let l = &status.losses;
    for (k, n) in &l.kernel_dropped {
        let _ = writeln!(
            o,
            "sensor_dropped_total{{stage=\"ring_buffer\",kind=\"{}\"}} {n}",
            label(k)
        );
    }
    let _ = writeln!(
        o,
        "sensor_dropped_total{{stage=\"kernel_error\",kind=\"\"}} {}",
        l.kernel_errors
    );
    let _ = writeln!(
        o,
        "sensor_dropped_total{{stage=\"decode\",kind=\"\"}} {}",
        l.decode_errors
    );
    let _ = writeln!(
        o,
        "sensor_dropped_total{{stage=\"subscriber\",kind=\"\"}} {}",
        l.subscriber_dropped
    );
    let _ = writeln!(
        o,
        "sensor_dropped_total{{stage=\"alert_log\",kind=\"\"}} {}",
        status.alert_log_errors
    );
    for s in &status.outputs {
        let _ = writeln!(
            o,
            "sensor_dropped_total{{stage=\"output\",kind=\"{}\"}} {}",
            label(&s.name),
            s.dropped + s.rejected
        );
    }
    family(
        &mut o,
        "sensor_alerts_total",
        "counter",
        "Alerts raised, by rule and severity.",
    );
    for (rule, sev, n) in outputs.alert_counts() {
        let _ = writeln!(
            o,
            "sensor_alerts_total{{rule=\"{}\",severity=\"{}\"}} {n}",
            label(&rule),
            sev.as_str()
        );
    }
    family(
        &mut o,
        "sensor_process_table_size",
        "gauge",
        "Processes tracked.",
    );
    let _ = writeln!(o, "sensor_process_table_size {}", status.process_table_len);
    for (name, kind, help, get) in [
        (
            "sensor_output_sent_total",
            "counter",
            "Alerts delivered, by sink.",
            (|s: &super::SinkStatus| s.sent) as fn(&super::SinkStatus) -> u64,
        ),
        (
            "sensor_output_failed_total",
            "counter",
            "Failed delivery attempts (retried), by sink.",
            |s| s.failed,
        ),
        (
            "sensor_output_rejected_total",
            "counter",
            "Alerts the destination refused for good, by sink.",
            |s| s.rejected,
        ),
        (
            "sensor_output_dropped_total",
            "counter",
            "Alerts lost to a full or damaged queue, by sink.",
            |s| s.dropped,
        ),
        (
            "sensor_output_queued",
            "gauge",
            "Alerts waiting for delivery, by sink.",
            |s| s.queued,
        ),
        (
            "sensor_output_queued_bytes",
            "gauge",
            "Bytes waiting for delivery, by sink.",
            |s| s.queued_bytes,
        ),
        (
            "sensor_output_plaintext",
            "gauge",
            "1 if the sink sends without TLS.",
            |s| u64::from(s.plaintext),
        ),
    ] {
        family(&mut o, name, kind, help);
        for s in &status.outputs {
            let _ = writeln!(
                o,
                "{name}{{sink=\"{}\",type=\"{}\"}} {}",
                label(&s.name),
                label(&s.kind),
                get(s)
            );
        }
    }
    family(
        &mut o,
        "sensor_output_delivery_seconds",
        "histogram",
        "Time from queueing to delivery, by sink.",
    );
    for sink in &outputs.sinks {
        let st = &sink.stats;
        let name = label(&sink.config.name);
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "sensor_output_delivery_seconds_bucket{{sink=\"{name}\",le=\"{le}\"}} {}",
                st.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = st.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "sensor_output_delivery_seconds_bucket{{sink=\"{name}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "sensor_output_delivery_seconds_sum{{sink=\"{name}\"}} {}",
            st.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "sensor_output_delivery_seconds_count{{sink=\"{name}\"}} {count}"
        );
    }
    o
}

/// What the liveness and readiness probes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The pipeline turned recently (it wakes at least once a second).
    pub live: bool,
    /// Probes attached and the agent serving.
    pub ready: bool,
}

/// Serves `GET /metrics`, `GET /healthz` (200 while the pipeline is alive, else 503) and
/// `GET /readyz` (200 once the probes are attached and the pipeline alive) until the task is
/// cancelled. Anything else gets a 404.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    health: Arc<dyn Fn() -> Health + Send + Sync>,
) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let (render, health) = (render.clone(), health.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            let read = async {
                while len < buf.len() {
                    let n = conn.read(&mut buf[len..]).await?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            };
            if tokio::time::timeout(std::time::Duration::from_secs(5), read)
                .await
                .is_err()
            {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let (code, body) = match head.split_whitespace().take(2).collect::<Vec<_>>()[..] {
                ["GET", path] if path == "/metrics" || path.starts_with("/metrics?") => {
                    ("200 OK", render())
                }
                ["GET", "/healthz"] => match health().live {
                    true => ("200 OK", "ok\n".into()),
                    false => ("503 Service Unavailable", "pipeline stalled\n".into()),
                },
                ["GET", "/readyz"] => match health() {
                    Health {
                        live: true,
                        ready: true,
                    } => ("200 OK", "ready\n".into()),
                    _ => ("503 Service Unavailable", "not ready\n".into()),
                },
                _ => (
                    "404 Not Found",
                    "not found; try /metrics, /healthz or /readyz\n".into(),
                ),
            };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_are_well_formed() {
        let mut st = StatusReport::default();
        st.outputs.push(super::super::SinkStatus {
            name: "a\"b".into(),
            kind: "syslog".into(),
            sent: 3,
            ..Default::default()
        });
        let outputs = Outputs::default();
        outputs.deliver(&crate::alert::Alert::new(
            "R\"1\n",
            "n",
            crate::alert::Severity::High,
            "m",
        ));
        let text = render(&st, &outputs);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(!series.contains('\n'));
        }
        assert!(text.contains("sensor_output_sent_total{sink=\"a\\\"b\",type=\"syslog\"} 3"));
        assert!(text.contains("sensor_alerts_total{rule=\"R\\\"1\\n\",severity=\"high\"} 1"));
    }
}
