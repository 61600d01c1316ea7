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
        if self.alert_log.keep_files == 0 {
            return Err(invalid("alert_log.keep_files", "must be at least 1".into()));
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
    fn semantic_errors_name_the_key() {
        let text = DEFAULT_TOML.replace("ring_buffer_bytes = 4194304", "ring_buffer_bytes = 5000");
        let e = Config::parse(&text, "x").unwrap_err();
        assert!(e.to_string().contains("probes.ring_buffer_bytes"), "{e}");
        let text = DEFAULT_TOML.replace("\"/dev/null\",", "\"relative/path\",");
        let e = Config::parse(&text, "x").unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }
}
