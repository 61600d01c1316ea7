//! The sensor's configuration: what to watch, detect and send.
//!
//! TOML with unknown keys refused; an embedded default (`config/default.toml`) so `sensor run`
//! needs no file. Every error names the file, line and column.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: outputs[{index}] ({name}): {message}")]
    Output {
        file: String,
        index: usize,
        name: String,
        message: String,
    },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: String,
        key: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub probes: ProbesConfig,
    pub rules: RulesConfig,
    pub ioc: IocConfig,
    pub dlp: DlpConfig,
    pub process_table: ProcessTableConfig,
    pub alert_log: AlertLogConfig,
    pub health: HealthConfig,
    /// Optional in a config file: the defaults apply to what it leaves out.
    #[serde(default)]
    pub baseline: BaselineConfig,
    /// Alert sinks besides the local log (`[[outputs]]`, any number).
    #[serde(default)]
    pub outputs: Vec<crate::output::OutputConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Containment: playbooks, guards, isolation allow-list, evidence.
    #[serde(default)]
    pub respond: crate::respond::config::RespondConfig,
    /// Least privilege, tamper alerts, signal and ptrace refusal, heartbeat.
    #[serde(default)]
    pub self_protection: crate::tamper::SelfProtectionConfig,
    /// Signed rule, indicator and profile bundles (`[signing]`).
    #[serde(default)]
    pub signing: crate::signing::SigningConfig,
    /// Who may use the control socket; the remote API (`[api.remote]`, off by default).
    #[serde(default)]
    pub api: crate::api::ApiConfig,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` to serve `GET /metrics` on (plain HTTP: keep it on loopback or a
    /// management network). Unset: no endpoint.
    pub listen: Option<String>,
}

/// Behavioural baselines: what is learned, when learning ends, how anomalies are scored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    pub enabled: bool,
    /// New workloads start learning on their own; off, only `sensor baseline learn W` does.
    pub auto_learn: bool,
    /// Learning ends (→ monitoring) once nothing new was seen for this long ...
    pub stable_after_secs: u64,
    /// ... or for this many events, and at least `min_events` were learned.
    pub stable_quiet_events: u64,
    pub min_events: u64,
    /// Workloads tracked; beyond, the least recently active learning one makes room.
    pub max_workloads: usize,
    /// Values per feature (executables, paths, peers, ...); beyond, new values count as
    /// overflow and the workload is reported as too varied.
    pub max_items: usize,
    /// A directory with more distinct learned entries than this is learned as `dir/**`.
    pub collapse_at: usize,
    /// Time-of-day anomalies need a baseline learned over at least this long.
    pub time_min_span_secs: u64,
    /// Volume anomaly: a per-minute count above max(learned max × factor, floor), once the
    /// baseline has `volume_min_minutes` active minutes.
    pub volume_factor: f64,
    pub volume_floor_per_min: u64,
    pub volume_min_minutes: u64,
    /// Observations of a family (exec, file, network) after which its novelties score in
    /// full; fewer scale the score down (confidence).
    pub maturity_events: u64,
    /// The same deviation alerts again only after this long.
    pub realert_secs: u64,
    /// How often changed baselines are written to the store.
    pub save_interval_secs: u64,
    /// Earlier versions kept per workload (for diff and rollback).
    pub keep_versions: u32,
    /// Programs that never start a workload below another one (shells, sudo, env, ...).
    pub launchers: Vec<String>,
    /// Programs below which every child starts a new workload (sshd, init, tmux, shims).
    pub boundaries: Vec<String>,
    /// Executables (globs with `*`) that always start their own workload.
    pub roots: Vec<String>,
    /// Workload keys (globs with `*`) never learned.
    pub ignore: Vec<String>,
    pub severity: AnomalySeverity,
    pub weights: AnomalyWeights,
    /// A shadowed profile is ready for enforcement once nothing was out of profile for this
    /// long or for this many checked actions.
    pub promote_after_secs: u64,
    pub promote_after_events: u64,
    /// Promote ready profiles by themselves (off: `sensor profile enforce W`).
    pub auto_promote: bool,
    /// In shadow, learn out-of-profile behaviour at once (a permissive profile) instead of
    /// holding it for `sensor profile approve W`.
    pub self_heal_auto: bool,
    /// Profiles also hold file opens (what a workload reads and writes), enforced in the kernel
    /// where `lsm/file_open` loads; elsewhere files are confined by `sensor exec` only.
    pub enforce_files: bool,
}

/// Score (0-100) at which an anomaly becomes an alert of each severity; below `low` it is
/// only counted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySeverity {
    pub low: f64,
    pub medium: f64,
    pub high: f64,
    pub critical: f64,
}

impl Default for AnomalySeverity {
    fn default() -> Self {
        Self {
            low: 25.0,
            medium: 45.0,
            high: 70.0,
            critical: 90.0,
        }
    }
}

/// Points each kind of novelty adds to a score (before confidence scaling).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyWeights {
    pub new_executable: f64,
    /// Added when the new program is a shell or interpreter.
    pub new_shell: f64,
    pub new_edge: f64,
    pub new_command: f64,
    pub new_file_read: f64,
    pub new_file_write: f64,
    /// Replaces the read/write weight for files that hold secrets.
    pub confidential_file: f64,
    pub restricted_file: f64,
    pub new_peer: f64,
    /// Added when the destination port is new too.
    pub new_port: f64,
    pub new_listen: f64,
    pub new_privilege: f64,
    pub new_user: f64,
    pub unseen_hour: f64,
    pub volume: f64,
}

impl Default for AnomalyWeights {
    fn default() -> Self {
        Self {
            new_executable: 50.0,
            new_shell: 20.0,
            new_edge: 30.0,
            new_command: 15.0,
            new_file_read: 15.0,
            new_file_write: 25.0,
            confidential_file: 45.0,
            restricted_file: 60.0,
            new_peer: 30.0,
            new_port: 20.0,
            new_listen: 55.0,
            new_privilege: 60.0,
            new_user: 40.0,
            unseen_hour: 50.0,
            volume: 50.0,
        }
    }
}

impl Default for BaselineConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect();
        Self {
            enabled: true,
            auto_learn: true,
            stable_after_secs: 3600,
            stable_quiet_events: 50_000,
            min_events: 200,
            max_workloads: 1024,
            max_items: 2048,
            collapse_at: 64,
            time_min_span_secs: 86_400,
            volume_factor: 3.0,
            volume_floor_per_min: 30,
            volume_min_minutes: 10,
            maturity_events: 100,
            realert_secs: 3600,
            save_interval_secs: 30,
            keep_versions: 3,
            launchers: s(crate::baseline::workload::DEFAULT_LAUNCHERS),
            boundaries: s(crate::baseline::workload::DEFAULT_BOUNDARIES),
            roots: Vec::new(),
            ignore: Vec::new(),
            severity: AnomalySeverity::default(),
            weights: AnomalyWeights::default(),
            promote_after_secs: 3600,
            promote_after_events: 10_000,
            auto_promote: false,
            self_heal_auto: false,
            enforce_files: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {
    pub ring_buffer_bytes: u32,
    pub wakeup_bytes: u32,
    pub reader_tick_ms: u64,
    pub dedup_window_ms: u64,
    pub ignored_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub builtin: bool,
    pub paths: Vec<PathBuf>,
    pub fold_window_secs: u64,
    pub reload_check_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DlpConfig {
    pub redact: bool,
    pub scan_files: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IocConfig {
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessTableConfig {
    pub capacity: usize,
    pub exited_grace_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertLogConfig {
    /// Where the alert log lives (default: `<state-dir>/alerts`). Elsewhere, e.g.
    /// /var/log/sensor, `<state-dir>/alerts` becomes a symlink to it so `sensor alerts`
    /// finds it.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    pub max_bytes: u64,
    pub max_age_hours: u64,
    pub keep_files: usize,
    pub compress: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub drop_alert_interval_secs: u64,
    pub subscriber_queue: usize,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    /// The embedded default.
    pub fn default_config() -> Config {
        // The default is checked by a unit test; a broken one cannot ship.
        Self::parse(DEFAULT_TOML, "<embedded default>").unwrap_or_else(|e| {
            panic!("embedded default config is invalid: {e}");
        })
    }

    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Self::default_config()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&text, &p.display().to_string())
            }
        }
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                file: file.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key,
            message,
        };
        let rb = self.probes.ring_buffer_bytes;
        if !rb.is_power_of_two() || rb < 4096 {
            return Err(invalid(
                "probes.ring_buffer_bytes",
                format!("{rb} must be a power of two and at least 4096"),
            ));
        }
        if self.probes.reader_tick_ms == 0 || self.probes.reader_tick_ms > 1000 {
            return Err(invalid(
                "probes.reader_tick_ms",
                "must be between 1 and 1000".into(),
            ));
        }
        for p in &self.probes.ignored_prefixes {
            if !p.starts_with('/') {
                return Err(invalid(
                    "probes.ignored_prefixes",
                    format!("{p:?} is not an absolute path"),
                ));
            }
            if p.len() > sensor_common::PREFIX_KEY_LEN {
                return Err(invalid(
                    "probes.ignored_prefixes",
                    format!(
                        "{p:?} is longer than {} bytes",
                        sensor_common::PREFIX_KEY_LEN
                    ),
                ));
            }
        }
        if self.probes.ignored_prefixes.len() > 256 {
            return Err(invalid(
                "probes.ignored_prefixes",
                "at most 256 prefixes".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (index, o) in self.outputs.iter().enumerate() {
            let output = |message: String| ConfigError::Output {
                file: file.to_owned(),
                index,
                name: o.name.clone(),
                message,
            };
            o.check().map_err(output)?;
            if !names.insert(o.name.as_str()) {
                return Err(output("another output has this name".into()));
            }
        }
        if let Some(l) = &self.metrics.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics.listen",
                format!("{l:?} is not an address:port (e.g. 127.0.0.1:9464)"),
            ));
        }
        if self.api.remote.enabled
            && let Err(e) = self.api.remote.check()
        {
            return Err(invalid("api.remote", e.to_string()));
        }
        if self.rules.reload_check_secs == 0 {
            return Err(invalid(
                "rules.reload_check_secs",
                "must be at least 1".into(),
            ));
        }
        if self.process_table.capacity < 64 {
            return Err(invalid(
                "process_table.capacity",
                "must be at least 64".into(),
            ));
        }
        if self.health.subscriber_queue == 0 {
            return Err(invalid(
                "health.subscriber_queue",
                "must be at least 1".into(),
            ));
        }
        let b = &self.baseline;
        let sev = &b.severity;
        if !(0.0 < sev.low
            && sev.low <= sev.medium
            && sev.medium <= sev.high
            && sev.high <= sev.critical
            && sev.critical <= 100.0)
        {
            return Err(invalid(
                "baseline.severity",
                "thresholds must rise: 0 < low <= medium <= high <= critical <= 100".into(),
            ));
        }
        if !(b.volume_factor.is_finite() && b.volume_factor >= 1.0) {
            return Err(invalid(
                "baseline.volume_factor",
                "must be a number of at least 1".into(),
            ));
        }
        let w = &b.weights;
        let weights = [
            w.new_executable,
            w.new_shell,
            w.new_edge,
            w.new_command,
            w.new_file_read,
            w.new_file_write,
            w.confidential_file,
            w.restricted_file,
            w.new_peer,
            w.new_port,
            w.new_listen,
            w.new_privilege,
            w.new_user,
            w.unseen_hour,
            w.volume,
        ];
        if weights
            .iter()
            .any(|v| !v.is_finite() || *v < 0.0 || *v > 100.0)
        {
            return Err(invalid(
                "baseline.weights",
                "every weight must be between 0 and 100".into(),
            ));
        }
        if b.max_workloads == 0 || b.max_items == 0 {
            return Err(invalid(
                "baseline.max_workloads",
                "max_workloads and max_items must be at least 1".into(),
            ));
        }
        if b.save_interval_secs == 0 {
            return Err(invalid(
                "baseline.save_interval_secs",
                "must be at least 1".into(),
            ));
        }
        if self.alert_log.keep_files == 0 {
            return Err(invalid("alert_log.keep_files", "must be at least 1".into()));
        }
        if let Err((key, message)) = self.respond.validate() {
            return Err(invalid(key, message));
        }
        if let Err((key, message)) = self.signing.validate() {
            return Err(invalid(key, message));
        }
        Ok(())
    }

    pub fn fold_window(&self) -> Duration {
        Duration::from_secs(self.rules.fold_window_secs)
    }

    pub fn exited_grace(&self) -> Duration {
        Duration::from_millis(self.process_table.exited_grace_ms)
    }
}

/// Where the agent keeps its state (alert log, socket, recordings).
#[derive(Debug, Clone)]
pub struct StateDir(pub PathBuf);

impl StateDir {
    pub fn alerts(&self) -> PathBuf {
        self.0.join("alerts")
    }
    pub fn socket(&self) -> PathBuf {
        self.0.join("sensor.sock")
    }
    pub fn baselines(&self) -> PathBuf {
        self.0.join("baselines.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::default_config();
        assert!(c.probes.ring_buffer_bytes.is_power_of_two());
    }

    #[test]
    fn unknown_key_is_located() {
        let text = DEFAULT_TOML.replace("[health]", "[health]\nbogus = 1");
        let e = Config::parse(&text, "x.toml").unwrap_err();
        let ConfigError::Parse {
            line,
            column,
            message,
            ..
        } = &e
        else {
            panic!("{e}");
        };
        let expect_line = text.lines().position(|l| l == "bogus = 1").unwrap() + 1;
        assert_eq!((*line, *column), (expect_line, 1));
        assert!(message.contains("bogus"), "{message}");
        assert!(
            e.to_string()
                .starts_with(&format!("x.toml:{expect_line}:1:"))
        );
    }

    #[test]
    fn wrong_type_and_garbage_are_located_errors() {
        let text = DEFAULT_TOML.replace("reader_tick_ms = 10", "reader_tick_ms = \"ten\"");
        assert!(matches!(
            Config::parse(&text, "x"),
            Err(ConfigError::Parse { .. })
        ));
        for junk in ["\u{0}\u{1}", "[[[", "probes = 3", "\u{feff}garbage ="] {
            assert!(Config::parse(junk, "j").is_err(), "{junk:?}");
        }
    }

    #[test]
    fn baseline_settings_are_checked_and_optional() {
        let bad = [
            ("low = 25.0", "low = 80.0", "baseline.severity"),
            ("critical = 90.0", "critical = 200.0", "baseline.severity"),
            (
                "volume_factor = 3.0",
                "volume_factor = 0.5",
                "baseline.volume_factor",
            ),
            ("new_shell = 20.0", "new_shell = -1.0", "baseline.weights"),
            (
                "max_items = 2048",
                "max_items = 0",
                "baseline.max_workloads",
            ),
        ];
        for (from, to, key) in bad {
            assert!(DEFAULT_TOML.contains(from), "{from}");
            let e = Config::parse(&DEFAULT_TOML.replace(from, to), "x").unwrap_err();
            assert!(e.to_string().contains(key), "{to}: {e}");
        }
        let e = Config::parse(
            &DEFAULT_TOML.replace("auto_learn = true", "auto_learn = 3"),
            "x",
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        // A config written before baselines existed still loads, with the defaults.
        let i = DEFAULT_TOML.find("[baseline]").unwrap();
        let old = Config::parse(&DEFAULT_TOML[..i], "old").unwrap();
        assert_eq!(old.baseline, BaselineConfig::default());
        // The embedded file and the code's defaults agree.
        assert_eq!(Config::default_config().baseline, BaselineConfig::default());
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let text = DEFAULT_TOML.replace("ring_buffer_bytes = 4194304", "ring_buffer_bytes = 5000");
        let e = Config::parse(&text, "x").unwrap_err();
        assert!(e.to_string().contains("probes.ring_buffer_bytes"), "{e}");
        let text = DEFAULT_TOML.replace("\"/dev/null\",", "\"relative/path\",");
        let e = Config::parse(&text, "x").unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }
}
