//! Measured detection quality: the labelled corpus replayed through the real pipeline with
//! the shipped rules. Fails if detection drops below 95% or any benign recording raises an
//! alert of medium severity or above. Prints the report (`--nocapture` shows it).

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
};

use sensor::{
    alert::{Alert, Severity},
    clock::Clock,
    detect::Detector,
    enrich::enricher::EnrichOptions,
    event::Event,
    pipeline::Pipeline,
    stats::Stats,
};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn read_events(path: &Path) -> Vec<Event> {
    let raw = std::fs::read(path).unwrap();
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s
    } else {
        String::from_utf8(raw).unwrap()
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn replay(events: Vec<Event>) -> Vec<Alert> {
    let rules = sensor::detect::ruleset::load_from(true, &[]).expect("shipped rules load");
    let mut p = Pipeline::new(
        &EnrichOptions::default(),
        Clock::fixed(0),
        Arc::new(Stats::default()),
        Detector::new(rules, std::time::Duration::from_secs(60)),
    );
    let mut alerts = Vec::new();
    for ev in events {
        alerts.extend(p.process_event(ev).alerts);
    }
    alerts.extend(p.finish());
    alerts
}

/// `T1059` covers `T1059.004` and the reverse: a detector naming the parent or a sibling
/// sub-technique of the label counts as a detection of the behaviour.
fn technique_matches(got: &str, want: &str) -> bool {
    let base = |t: &str| t.split('.').next().unwrap_or(t).to_owned();
    got == want || base(got) == base(want)
}

fn labels(script: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(script).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# techniques:"))
        .unwrap_or_else(|| panic!("{}: no `# techniques:` line", script.display()));
    line.split_whitespace().map(str::to_owned).collect()
}

fn recordings(set: &str) -> Vec<(String, PathBuf)> {
    let dir = corpus_dir().join(set);
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .trim_end_matches(".jsonl.gz")
                .to_owned();
            (name, p)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn detection_rate_and_false_positives_on_the_labelled_corpus() {
    let attacks = recordings("attacks");
    assert!(
        attacks.len() >= 20,
        "the labelled attack corpus has {} recordings; record it with `cargo xtask corpus`",
        attacks.len()
    );
    let mut hits: BTreeMap<String, usize> = BTreeMap::new();
    let mut detected = 0;
    let mut missed = Vec::new();
    for (name, path) in &attacks {
        let want = labels(
            &corpus_dir()
                .join("attacks/scenarios")
                .join(format!("{name}.sh")),
        );
        let alerts = replay(read_events(path));
        for a in &alerts {
            *hits.entry(a.rule.id.clone()).or_default() += 1;
        }
        let found = alerts.iter().find(|a| {
            a.mitre
                .iter()
                .any(|g| want.iter().any(|w| technique_matches(g, w)))
        });
        match found {
            Some(a) => {
                detected += 1;
                println!(
                    "detected {name:<36} {:<24} by {}",
                    want.join(","),
                    a.rule.id
                );
            }
            None => {
                println!(
                    "MISSED   {name:<36} {:<24} (alerts: {:?})",
                    want.join(","),
                    alerts
                        .iter()
                        .map(|a| a.rule.id.as_str())
                        .collect::<Vec<_>>()
                );
                missed.push(name.clone());
            }
        }
    }

    let mut benign: Vec<(String, PathBuf)> = recordings("benign");
    benign.push((
        "benign-dev-shell".into(),
        corpus_dir().join("benign-dev-shell.jsonl"),
    ));
    let mut false_positives = Vec::new();
    let mut low = 0;
    for (name, path) in &benign {
        for a in replay(read_events(path)) {
            *hits.entry(a.rule.id.clone()).or_default() += 1;
            if a.severity >= Severity::Medium {
                false_positives.push(format!(
                    "{name}: {} {} ({})",
                    a.rule.id,
                    a.severity.as_str(),
                    a.message
                ));
            } else {
                low += 1;
            }
        }
    }
    let rate = detected as f64 / attacks.len() as f64;
    println!(
        "\ndetection: {detected}/{} = {:.1}%; benign recordings: {}, alerts >= medium: {}, low/info: {low}",
        attacks.len(),
        rate * 100.0,
        benign.len(),
        false_positives.len()
    );
    println!("per-rule hits:");
    for (rule, n) in &hits {
        println!("  {rule:<24} {n}");
    }
    assert!(
        rate >= 0.95,
        "detection {:.1}% < 95%; missed: {missed:?}",
        rate * 100.0
    );
    assert!(
        false_positives.is_empty(),
        "benign alerts >= medium:\n{}",
        false_positives.join("\n")
    );
}
