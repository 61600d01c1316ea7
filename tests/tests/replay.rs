//! Replay tests (no root): recorded event streams through the real `Pipeline`.

use std::{path::Path, process::Command, sync::Arc};

use sensor::{
    clock::Clock, enrich::enricher::EnrichOptions, event::Event, pipeline::Pipeline,
    probes::decode, stats::Stats,
};
use sensor_tests::sensor_bin;

fn corpus(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

fn pipeline() -> Pipeline {
    let rules = sensor::detect::ruleset::load_from(true, &[]).expect("shipped rules load");
    Pipeline::new(
        &EnrichOptions::default(),
        Clock::fixed(0),
        Arc::new(Stats::default()),
        sensor::detect::Detector::new(rules, std::time::Duration::from_secs(60)),
    )
}

/// A recorded developer shell session (git, gcc, python, tar, ps): every line is a valid
/// event, and the shipped rules raise nothing of medium severity or above on it.
#[test]
fn benign_recording_replays_in_silence() {
    let text = std::fs::read_to_string(corpus("benign-dev-shell.jsonl")).unwrap();
    let mut p = pipeline();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let ev: Event =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let out = p.process_event(ev);
        for a in &out.alerts {
            assert!(
                a.severity < sensor::alert::Severity::Medium,
                "line {}: {} {}",
                i + 1,
                a.rule.id,
                a.message
            );
        }
        n += 1;
    }
    assert!(n > 1000, "corpus too small: {n}");
    // The recording is what the probes really produced: execs with args, relative paths
    // resolved, and failed opens carrying their outcome.
    let events: Vec<Event> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(events.iter().any(
        |e| e.event.action == "exec" && e.process.executable.as_deref() == Some("/usr/bin/gcc")
    ));
    assert!(events.iter().all(|e| {
        e.file
            .as_ref()
            .and_then(|f| f.path.as_deref())
            .is_none_or(|p| p.starts_with('/') || p.is_empty() || !p.contains('/'))
    }));
}

/// Serialized events read back identically: the schema round-trips.
#[test]
fn events_round_trip_through_json() {
    let text = std::fs::read_to_string(corpus("benign-dev-shell.jsonl")).unwrap();
    for line in text.lines().take(300) {
        let ev: Event = serde_json::from_str(line).unwrap();
        let again: Event = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
        assert_eq!(ev, again);
    }
}

/// `sensor replay` on a recording with damaged lines: each bad line is reported with its
/// location, the good ones are still processed, and the command fails overall.
#[test]
fn replay_cli_reports_bad_lines_and_keeps_going() {
    let text = std::fs::read_to_string(corpus("benign-dev-shell.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().take(50).map(str::to_owned).collect();
    lines.insert(10, "{\"not\": \"an event\"}".into());
    lines.insert(20, "garbage \u{1b}[31m".into());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("damaged.jsonl");
    std::fs::write(&f, lines.join("\n")).unwrap();
    let out = Command::new(sensor_bin())
        .arg("replay")
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged.jsonl:11:"), "{err}");
    assert!(err.contains("damaged.jsonl:21:"), "{err}");
    assert!(err.contains("replayed 50 events"), "{err}");

    let ok = dir.path().join("ok.jsonl");
    std::fs::write(&ok, text.lines().take(50).collect::<Vec<_>>().join("\n")).unwrap();
    let out = Command::new(sensor_bin())
        .arg("replay")
        .arg(&ok)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Kernel record bytes that are garbage are counted, never a panic.
#[test]
fn garbage_records_are_counted_not_fatal() {
    let mut p = pipeline();
    let mut seed = 0x1234_5678_u64;
    for len in 0..600 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let out = p.process(&bytes);
        assert!(out.alerts.is_empty());
    }
    let errors = p
        .stats()
        .decode_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(errors > 500, "{errors}");
    // A valid record still decodes after all that.
    let ev = decode::RawEvent {
        header: decode::Header {
            kind: decode::Kind::Exit,
            ts_ns: 1,
            cgroup_id: 0,
            pid: 4242,
            tid: 4242,
            ppid: 1,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: b"x".to_vec(),
        },
        body: decode::Body::Exit { exit_code: 3 << 8 },
    };
    let out = p.process(&decode::encode(&ev));
    assert_eq!(out.event.unwrap().process.exit_code, Some(3));
}
