//! Which rules run: the embedded shipped ruleset plus operator files and directories, loaded
//! together (all or nothing), and the change detection that drives hot reload.

use std::{path::PathBuf, time::SystemTime};

use crate::{
    config::RulesConfig,
    rules::{RuleError, RuleSet},
};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Every `*.yaml`/`*.yml` file named by `paths`, directories expanded (sorted, not recursive).
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RuleError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| RuleError::Io {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Load the configured ruleset.
pub fn load(cfg: &RulesConfig) -> Result<RuleSet, RuleError> {
    load_from(cfg.builtin, &cfg.paths)
}

pub fn load_from(builtin: bool, paths: &[PathBuf]) -> Result<RuleSet, RuleError> {
    let mut sources: Vec<(String, String)> = Vec::new();
    if builtin {
        for (name, text) in BUILTIN_RULES {
            sources.push((format!("<builtin>/{name}"), (*text).to_owned()));
        }
    }
    let mut errors = Vec::new();
    for f in rule_files(paths)? {
        match std::fs::read_to_string(&f) {
            Ok(text) => sources.push((f.display().to_string(), text)),
            Err(e) => errors.push(RuleError::Io {
                path: f.display().to_string(),
                message: e.to_string(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            RuleError::Many(errors)
        });
    }
    RuleSet::from_sources(&sources)
}

/// What the rule files look like now (path, modification time, size), to notice edits.
pub fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut files = rule_files(paths).unwrap_or_default();
    // A directory's own mtime changes when files are added or removed.
    files.extend(paths.iter().filter(|p| p.is_dir()).cloned());
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let mtime = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (f, mtime, len)
        })
        .collect()
}

/// A ruleset is accepted only when it loads and every inline test passes; otherwise the
/// report lists every problem, one located line each.
pub struct Verdict {
    pub rules: Option<RuleSet>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub tests_run: usize,
}

pub fn checked(builtin: bool, paths: &[PathBuf]) -> Verdict {
    match load_from(builtin, paths) {
        Err(e) => Verdict {
            rules: None,
            problems: e.errors().iter().map(ToString::to_string).collect(),
            warnings: Vec::new(),
            tests_run: 0,
        },
        Ok(rules) => {
            let failures = rules.run_inline_tests();
            let warnings = rules.warnings().iter().map(ToString::to_string).collect();
            let tests_run = rules.rules().iter().map(|r| r.test_count()).sum::<usize>()
                + rules
                    .sequences()
                    .iter()
                    .map(|r| r.test_count())
                    .sum::<usize>()
                + rules
                    .thresholds()
                    .iter()
                    .map(|r| r.test_count())
                    .sum::<usize>();
            if failures.is_empty() {
                Verdict {
                    rules: Some(rules),
                    problems: Vec::new(),
                    warnings,
                    tests_run,
                }
            } else {
                Verdict {
                    rules: None,
                    problems: failures.iter().map(ToString::to_string).collect(),
                    warnings,
                    tests_run,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped ruleset: loads with no warnings, every inline test passes, and it covers
    /// at least 40 ATT&CK techniques across the eleven tactics the product promises.
    #[test]
    fn shipped_ruleset_loads_passes_its_tests_and_covers_attack() {
        let v = checked(true, &[]);
        assert!(v.problems.is_empty(), "{:#?}", v.problems);
        assert!(v.warnings.is_empty(), "{:#?}", v.warnings);
        let rules = v.rules.expect("ruleset");
        assert!(
            v.tests_run >= rules.rules().len() * 2,
            "every rule has match and no_match tests"
        );
        let techniques: std::collections::HashSet<&str> = rules
            .rules()
            .iter()
            .flat_map(|r| r.techniques.iter().map(|t| t.as_str()))
            .collect();
        assert!(techniques.len() >= 40, "{} techniques", techniques.len());
        for tactic in [
            "execution",
            "persistence",
            "privilege-escalation",
            "defense-evasion",
            "credential-access",
            "discovery",
            "lateral-movement",
            "collection",
            "command-and-control",
            "exfiltration",
            "impact",
        ] {
            assert!(
                rules
                    .rules()
                    .iter()
                    .any(|r| r.tactics.iter().any(|t| t == tactic)),
                "no rule for {tactic}"
            );
        }
    }
}

#[cfg(test)]
mod bench {
    use super::*;

    /// Rule evaluation throughput with the shipped ruleset on one core, over the recorded
    /// developer session. A benchmark, not a test: `cargo xtask bench` runs it in release.
    #[test]
    #[ignore = "benchmark: run with `cargo test --release -p sensor --lib -- --ignored bench_ --nocapture`"]
    fn bench_shipped_ruleset_throughput() {
        let text = include_str!("../../../tests/corpus/benign-dev-shell.jsonl");
        let events: Vec<crate::event::Event> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let rules = load_from(true, &[]).expect("shipped rules");
        let mut scratch = crate::rules::Scratch::new();
        let mut out = Vec::new();
        let rounds = 200;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for ev in &events {
                out.clear();
                rules.evaluate(&mut scratch, ev, &mut out);
            }
        }
        let n = (rounds * events.len()) as f64;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "bench: shipped ruleset ({} rules) x {} events x {rounds}: {:.0} events/s ({:.0} ns/event)",
            rules.rules().len(),
            events.len(),
            n / secs,
            secs * 1e9 / n
        );
    }
}
