//! The foundation's own alert: events were lost. A sensor that silently drops telemetry is
//! blind exactly when an attacker floods it, so every loss counter that grows becomes an alert
//! (at most one per interval, carrying everything counted since the previous one).

use std::time::{Duration, Instant};

use crate::{
    alert::{Alert, Severity, TechniqueId},
    stats::LossSnapshot,
};

pub const DROP_RULE_ID: &str = "sensor.events_dropped";

pub struct DropMonitor {
    reported: LossSnapshot,
    last_alert: Option<Instant>,
    interval: Duration,
}

impl DropMonitor {
    pub fn new(interval: Duration) -> Self {
        Self {
            reported: LossSnapshot::default(),
            last_alert: None,
            interval,
        }
    }

    /// An alert when losses grew since the last alert and the interval has passed.
    pub fn check(&mut self, now: &LossSnapshot, at: Instant) -> Option<Alert> {
        let delta = now.since(&self.reported);
        if delta.total() == 0 {
            return None;
        }
        if let Some(last) = self.last_alert
            && at.duration_since(last) < self.interval
        {
            return None;
        }
        self.reported = now.clone();
        self.last_alert = Some(at);
        let mut alert = Alert::new(
            DROP_RULE_ID,
            "Sensor lost events",
            Severity::High,
            format!(
                "{} events or alerts lost since the last report (kernel ring full: {}, unbuildable: {}, undecodable: {}, slow subscribers: {}, alerts lost by outputs: {}, playbook triggers dropped: {})",
                delta.total(),
                delta.kernel_dropped.values().sum::<u64>(),
                delta.kernel_errors,
                delta.decode_errors,
                delta.subscriber_dropped,
                delta.output_lost,
                delta.response_dropped
            ),
        )
        .with_tag("sensor-health")
        .with_field("lost", serde_json::to_value(&delta).unwrap_or_default())
        .with_field("lost_total", serde_json::to_value(now).unwrap_or_default());
        // A flood that blinds the sensor is an attempt to impair defenses.
        if let Ok(t) = TechniqueId::parse("T1562.001") {
            alert = alert.with_technique(t);
        }
        Some(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(dropped: u64, decode: u64) -> LossSnapshot {
        let mut s = LossSnapshot::default();
        s.kernel_dropped.insert("file".into(), dropped);
        s.decode_errors = decode;
        s
    }

    #[test]
    fn alerts_once_per_interval_with_the_delta() {
        let t0 = Instant::now();
        let mut m = DropMonitor::new(Duration::from_secs(10));
        assert!(m.check(&snap(0, 0), t0).is_none());
        let a = m.check(&snap(5, 1), t0).expect("alert");
        assert_eq!(a.rule.id, DROP_RULE_ID);
        assert_eq!(a.fields["lost"]["kernel_dropped"]["file"], 5);
        // More loss inside the interval: held back, then reported as the full delta.
        assert!(m.check(&snap(9, 1), t0 + Duration::from_secs(1)).is_none());
        let b = m
            .check(&snap(12, 1), t0 + Duration::from_secs(11))
            .expect("alert");
        assert_eq!(b.fields["lost"]["kernel_dropped"]["file"], 7);
        assert!(
            m.check(&snap(12, 1), t0 + Duration::from_secs(30))
                .is_none()
        );
    }
}
