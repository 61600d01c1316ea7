//! Anomaly scores and their explanation.
//!
//! A score is the sum of its components, capped at 100. Each component is one novelty (a
//! value the baseline never saw, or a rate or hour out of range) with a weight from the
//! config, scaled by the confidence of the baseline for that family of behaviour: a baseline
//! that saw 3 file opens knows little, one that saw 3000 knows a lot. The alert carries every
//! component with the numbers behind it.

use serde::Serialize;

use crate::{
    alert::{Alert, Severity},
    config::AnomalySeverity,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyType {
    UnusualCommandSequence,
    PrivilegeEscalationAttempt,
    SuspiciousFileAccess,
    AbnormalNetworkActivity,
    TimeAnomaly,
    VolumeAnomaly,
}

impl AnomalyType {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyType::UnusualCommandSequence => "unusual_command_sequence",
            AnomalyType::PrivilegeEscalationAttempt => "privilege_escalation_attempt",
            AnomalyType::SuspiciousFileAccess => "suspicious_file_access",
            AnomalyType::AbnormalNetworkActivity => "abnormal_network_activity",
            AnomalyType::TimeAnomaly => "time_anomaly",
            AnomalyType::VolumeAnomaly => "volume_anomaly",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            AnomalyType::UnusualCommandSequence => "Unusual command for this workload",
            AnomalyType::PrivilegeEscalationAttempt => "Privilege change new to this workload",
            AnomalyType::SuspiciousFileAccess => "File access new to this workload",
            AnomalyType::AbnormalNetworkActivity => "Network activity new to this workload",
            AnomalyType::TimeAnomaly => "Activity at an hour this workload is never active",
            AnomalyType::VolumeAnomaly => "Activity volume far above this workload's baseline",
        }
    }
}

/// One reason a score is what it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    #[serde(rename = "type")]
    pub anomaly: AnomalyType,
    /// The feature (`executables`, `peers`, `rate.exec`, `hours`, ...).
    pub feature: &'static str,
    /// The observed value (generalized).
    pub value: String,
    /// In words: what was expected and what was seen.
    pub reason: String,
    /// Learned values of this feature, and observations of its family behind them.
    pub learned_values: usize,
    pub observations: u64,
    /// Seconds the baseline was learned over.
    pub learned_over_secs: i64,
    pub weight: f64,
    /// 0-1: how much the baseline knows about this family.
    pub confidence: f64,
    pub points: f64,
    /// ATT&CK technique this novelty suggests, if one fits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technique: Option<&'static str>,
}

/// Confidence from the number of observations: log-scaled to 1 at `maturity`.
pub fn confidence(observations: u64, maturity: u64) -> f64 {
    if maturity == 0 {
        return 1.0;
    }
    let c = ((1 + observations) as f64).ln() / ((1 + maturity) as f64).ln();
    c.clamp(0.0, 1.0)
}

/// A component's points: its weight scaled by confidence, to one decimal.
pub fn points(weight: f64, confidence: f64) -> f64 {
    (weight * confidence * 10.0).round() / 10.0
}

/// Confidence as an alert shows it, to two decimals.
pub fn rounded_confidence(confidence: f64) -> f64 {
    (confidence * 100.0).round() / 100.0
}

pub fn total(components: &[Component]) -> f64 {
    let t: f64 = components.iter().map(|c| c.points).sum();
    (t.min(100.0) * 10.0).round() / 10.0
}

pub fn severity(score: f64, t: &AnomalySeverity) -> Option<Severity> {
    if score >= t.critical {
        Some(Severity::Critical)
    } else if score >= t.high {
        Some(Severity::High)
    } else if score >= t.medium {
        Some(Severity::Medium)
    } else if score >= t.low {
        Some(Severity::Low)
    } else {
        None
    }
}

/// A human span: `3h12m`, `45s`, `2d4h`.
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The alert for a set of components of one event (non-empty), or `None` below `low`.
pub fn alert(
    workload: &str,
    mode: &str,
    version: u32,
    mut components: Vec<Component>,
    thresholds: &AnomalySeverity,
) -> Option<Alert> {
    let score = total(&components);
    let severity = severity(score, thresholds)?;
    components.sort_by(|a, b| b.points.total_cmp(&a.points));
    let lead = components.first()?;
    let kind = lead.anomaly;
    let mut types: Vec<&str> = components.iter().map(|c| c.anomaly.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let reasons: Vec<&str> = components.iter().map(|c| c.reason.as_str()).collect();
    let message = format!(
        "{workload}: {} (score {score}: {})",
        kind.title().to_lowercase(),
        reasons.join("; ")
    );
    let mut a = Alert::new(
        format!("sensor.anomaly.{}", kind.as_str()),
        kind.title(),
        severity,
        message,
    )
    .with_tag("anomaly")
    .with_tag("baseline")
    .with_field("workload", workload)
    .with_field("baseline.mode", mode)
    .with_field("baseline.version", version)
    .with_field("anomaly.type", kind.as_str())
    .with_field("anomaly.types", types)
    .with_field("anomaly.score", score)
    .with_field(
        "anomaly.components",
        serde_json::to_value(&components).unwrap_or_default(),
    );
    let mut techniques: Vec<&str> = components.iter().filter_map(|c| c.technique).collect();
    techniques.dedup();
    for t in techniques {
        if let Ok(t) = crate::alert::TechniqueId::parse(t) {
            a = a.with_technique(t);
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(points: f64, anomaly: AnomalyType) -> Component {
        Component {
            anomaly,
            feature: "executables",
            value: "/bin/sh".into(),
            reason: "new".into(),
            learned_values: 3,
            observations: 100,
            learned_over_secs: 60,
            weight: points,
            confidence: 1.0,
            points,
            technique: Some("T1059.004"),
        }
    }

    #[test]
    fn confidence_grows_with_observations() {
        assert_eq!(confidence(0, 200), 0.0);
        assert!(confidence(10, 200) < confidence(100, 200));
        assert_eq!(confidence(200, 200), 1.0);
        assert_eq!(confidence(5000, 200), 1.0);
        assert_eq!(confidence(3, 0), 1.0);
    }

    #[test]
    fn severity_follows_the_thresholds_and_low_scores_are_not_alerts() {
        let t = AnomalySeverity::default();
        assert_eq!(severity(10.0, &t), None);
        assert_eq!(severity(25.0, &t), Some(Severity::Low));
        assert_eq!(severity(50.0, &t), Some(Severity::Medium));
        assert_eq!(severity(75.0, &t), Some(Severity::High));
        assert_eq!(severity(100.0, &t), Some(Severity::Critical));
        assert!(
            alert(
                "w",
                "monitoring",
                1,
                vec![component(5.0, AnomalyType::TimeAnomaly)],
                &t
            )
            .is_none()
        );
    }

    #[test]
    fn the_alert_explains_its_score() {
        let t = AnomalySeverity::default();
        let a = alert(
            "exe:/usr/sbin/nginx@root",
            "frozen",
            2,
            vec![
                component(30.0, AnomalyType::UnusualCommandSequence),
                component(80.0, AnomalyType::AbnormalNetworkActivity),
            ],
            &t,
        )
        .unwrap();
        assert_eq!(a.rule.id, "sensor.anomaly.abnormal_network_activity");
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.fields["anomaly.score"], 100.0);
        let comps = a.fields["anomaly.components"].as_array().unwrap();
        assert_eq!(comps.len(), 2);
        assert_eq!(comps[0]["points"], 80.0);
        assert_eq!(a.mitre, vec!["T1059.004"]);
        assert_eq!(span(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(span(-5), "0s");
    }
}
