//! Behavioural baselines: what is normal for *this* workload, learned from its own events,
//! and explainable anomalies when it does something else.
//!
//! - `workload`: which workload an event belongs to (container, service unit, program tree);
//! - `generalize`: variable parts of paths and command lines become wildcards;
//! - `model`: what a baseline holds (and its JSON export format);
//! - `engine`: learning, the stability criterion, scoring, modes;
//! - `score`: scores, severities and their explanation;
//! - `store`: the SQLite file under the state dir.
//!
//! `apply` runs one `sensor baseline ...` command against an engine and a store; the agent
//! runs it on its pipeline thread (commands reach it over the control socket), the CLI runs it
//! directly on the store when no agent is running.

pub mod engine;
pub mod generalize;
pub mod model;
pub mod score;
pub mod store;
pub mod workload;

#[cfg(test)]
pub(crate) mod tests;

use serde::{Deserialize, Serialize};

pub use engine::Engine;
use model::{Baseline, Mode};
use store::{Store, VersionInfo};

/// What `sensor baseline ...` asks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    List,
    Show {
        workload: String,
    },
    /// The current baseline against an earlier version (the newest archived one by default)
    /// or against a given baseline.
    Diff {
        workload: String,
        #[serde(default)]
        version: Option<u32>,
        #[serde(default)]
        against: Option<Box<Baseline>>,
    },
    Export {
        workload: String,
    },
    Import {
        baseline: Box<Baseline>,
    },
    Learn {
        workload: String,
        #[serde(default)]
        for_secs: Option<u64>,
    },
    Freeze {
        workload: String,
    },
    Reset {
        workload: String,
    },
    /// The profile lifecycle: status of every workload, and stage changes.
    ProfileStatus,
    ProfileShadow {
        workload: String,
    },
    ProfileEnforce {
        workload: String,
        #[serde(default)]
        force: bool,
    },
    ProfileOff {
        workload: String,
    },
    ProfileApprove {
        workload: String,
    },
}

/// One workload in `baseline list` and the learning progress view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub workload: String,
    pub mode: Mode,
    pub version: u32,
    /// Events learned, and seconds learned over.
    pub events: u64,
    pub learned_over_secs: i64,
    /// Learned values across features.
    pub values: usize,
    pub syscalls: usize,
    /// New values per 1000 recent events.
    pub novelty_per_1000: f64,
    /// Seconds since something new was learned.
    pub since_novel_secs: i64,
    /// Estimated seconds until the stability criterion holds (learning only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_in_secs: Option<i64>,
    pub deviations: usize,
    /// Values not learned because a feature set was full.
    pub overflow: u64,
}

/// What a command returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    List(Vec<Summary>),
    Show {
        summary: Box<Summary>,
        baseline: Box<Baseline>,
        versions: Vec<VersionInfo>,
    },
    Diff(Box<Diff>),
    Baseline(Box<Baseline>),
    Profiles(Vec<engine::ProfileSummary>),
    Done(String),
    Error(String),
}

/// Values added and removed per feature between two baselines, and the deviations the newer
/// one has seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Diff {
    pub workload: String,
    pub from: String,
    pub to: String,
    pub features: Vec<FeatureDiff>,
    pub syscalls_added: Vec<u32>,
    pub syscalls_removed: Vec<u32>,
    pub deviations: Vec<model::Deviation>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FeatureDiff {
    pub feature: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

pub fn summary(b: &Baseline, cfg: &crate::config::BaselineConfig, now: i64) -> Summary {
    let stable_in = (b.mode == Mode::Learning).then(|| {
        let by_time = cfg.stable_after_secs as i64 - (now - b.progress.last_novel);
        let by_until = b.learn_until.map_or(0, |u| u - now);
        by_time.max(by_until).max(0)
    });
    Summary {
        workload: b.workload.key(),
        mode: b.mode,
        version: b.version,
        events: b.progress.events,
        learned_over_secs: b.span(),
        values: b.model.size(),
        syscalls: b.model.syscalls.len(),
        novelty_per_1000: (b.progress.recent_novel * 10.0).round() / 10.0,
        since_novel_secs: (now - b.progress.last_novel).max(0),
        stable_in_secs: stable_in,
        deviations: b.deviations.len(),
        overflow: b.model.sets().iter().map(|(_, s)| s.overflow).sum(),
    }
}

pub fn diff(from: &Baseline, to: &Baseline, from_label: String, to_label: String) -> Diff {
    let features = from
        .model
        .sets()
        .iter()
        .zip(to.model.sets().iter())
        .filter_map(|((name, a), (_, b))| {
            let added: Vec<String> = b
                .items
                .keys()
                .filter(|k| !a.items.contains_key(*k))
                .cloned()
                .collect();
            let removed: Vec<String> = a
                .items
                .keys()
                .filter(|k| !b.items.contains_key(*k))
                .cloned()
                .collect();
            (!added.is_empty() || !removed.is_empty()).then(|| FeatureDiff {
                feature: (*name).to_owned(),
                added,
                removed,
            })
        })
        .collect();
    Diff {
        workload: to.workload.key(),
        from: from_label,
        to: to_label,
        features,
        syscalls_added: to
            .model
            .syscalls
            .difference(&from.model.syscalls)
            .copied()
            .collect(),
        syscalls_removed: from
            .model
            .syscalls
            .difference(&to.model.syscalls)
            .copied()
            .collect(),
        deviations: to.deviations.clone(),
    }
}

/// Run one command. Changes are written to the store at once when one is given.
pub fn apply(engine: &mut Engine, store: Option<&mut Store>, cmd: Command, now: i64) -> Reply {
    let reply = run(engine, store.as_deref(), cmd, now);
    if let Some(s) = store {
        let changes = engine.take_changes();
        if let Err(e) = s.save(&changes, now) {
            return Reply::Error(format!("the change was made but not saved: {e}"));
        }
    }
    reply
}

fn run(engine: &mut Engine, store: Option<&Store>, cmd: Command, now: i64) -> Reply {
    let cfg = engine.config().clone();
    let need = |engine: &Engine, w: &str| {
        engine
            .get(w)
            .cloned()
            .ok_or_else(|| format!("no baseline for {w:?} (see `sensor baseline list`)"))
    };
    let result: Result<Reply, String> = match cmd {
        Command::List => {
            let mut list: Vec<Summary> = engine.baselines().map(|b| summary(b, &cfg, now)).collect();
            list.sort_by(|a, b| a.workload.cmp(&b.workload));
            Ok(Reply::List(list))
        }
        Command::Show { workload } => need(engine, &workload).and_then(|b| {
            let versions = match store {
                Some(s) => s.versions(&workload).map_err(|e| e.to_string())?,
                None => Vec::new(),
            };
            Ok(Reply::Show {
                summary: Box::new(summary(&b, &cfg, now)),
                baseline: Box::new(b),
                versions,
            })
        }),
        Command::Export { workload } => need(engine, &workload).map(|b| Reply::Baseline(Box::new(b))),
        Command::Diff {
            workload,
            version,
            against,
        } => need(engine, &workload).and_then(|cur| {
            let (old, label) = match against {
                Some(b) => (*b, "the given file".to_owned()),
                None => {
                    let s = store.ok_or("no store to read earlier versions from")?;
                    let old = s
                        .version(&workload, version)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| match version {
                            Some(v) => format!("{workload} has no stored version {v}"),
                            None => format!(
                                "{workload} has no earlier version yet (versions are kept on reset, import and binary change); showing nothing to compare"
                            ),
                        })?;
                    let label = format!("version {}", old.version);
                    (old, label)
                }
            };
            let to = format!("version {} ({})", cur.version, cur.mode.as_str());
            Ok(Reply::Diff(Box::new(diff(&old, &cur, label, to))))
        }),
        Command::Import { baseline } => {
            if baseline.format != model::FORMAT {
                Err(format!(
                    "baseline format {} is not supported (this sensor reads format {})",
                    baseline.format,
                    model::FORMAT
                ))
            } else {
                engine
                    .import(*baseline)
                    .map(|(k, v)| Reply::Done(format!("imported {k} as version {v} (frozen)")))
            }
        }
        Command::Learn { workload, for_secs } => engine.learn(&workload, for_secs, now).map(|()| {
            Reply::Done(match for_secs {
                Some(s) => format!("{workload} is learning for at least {}", score::span(s as i64)),
                None => format!("{workload} is learning until its behaviour is stable"),
            })
        }),
        Command::Freeze { workload } => engine
            .freeze(&workload)
            .map(|()| Reply::Done(format!("{workload} is frozen"))),
        Command::ProfileStatus => Ok(Reply::Profiles(engine.profile_status(now))),
        Command::ProfileShadow { workload } => engine
            .set_stage(&workload, Some(model::Stage::Shadow), false, now)
            .map(Reply::Done),
        Command::ProfileEnforce { workload, force } => engine
            .set_stage(&workload, Some(model::Stage::Enforce), force, now)
            .map(Reply::Done),
        Command::ProfileOff { workload } => {
            engine.set_stage(&workload, None, false, now).map(Reply::Done)
        }
        Command::ProfileApprove { workload } => engine.approve(&workload, now).map(|n| {
            Reply::Done(format!(
                "{workload}: {n} held behaviours learned into its baseline (the profile allows them now)"
            ))
        }),
        Command::Reset { workload } => engine.reset(&workload, now).map(|v| {
            Reply::Done(format!(
                "{workload}: the old baseline was archived; version {v} is learning from scratch"
            ))
        }),
    };
    result.unwrap_or_else(Reply::Error)
}

/// Parse an exported baseline, with a located error.
pub fn parse_export(text: &str, source: &str) -> Result<Baseline, String> {
    serde_json::from_str::<Baseline>(text).map_err(|e| {
        format!(
            "{source}:{}:{}: not a sensor baseline export: {e}",
            e.line(),
            e.column()
        )
    })
}
