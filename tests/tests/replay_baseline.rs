//! Baselines over a recorded workload (no root): tests/corpus/workload/webapp.jsonl.gz is
//! five minutes of tests/workload/webapp.py serving a steady client, recorded by the real
//! probes (tests/workload/record.sh). The first 60% is learned through `sensor replay
//! --baselines`, the baseline is frozen with `sensor baseline freeze --all`, then:
//! - the held-back 40% replays without an anomaly of medium or above;
//! - the same slice with injected deviations (new child process, new outbound peer, a secret
//!   file read, a burst of execs, activity at an unseen hour) flags each with its
//!   explanation.

use std::{io::Read, path::Path, process::Command};

use sensor_tests::sensor_bin;
use serde_json::{Value, json};

/// The recording was made from /work/main: the script path is part of the workload.
const WORKLOAD: &str = "exe:/usr/bin/python3 /work/main/tests/workload/webapp.py@root";

fn events() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/workload/webapp.jsonl.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn boot_ns(ev: &Value) -> u64 {
    ev["event"]["boot_ns"].as_u64().unwrap()
}

fn config(dir: &Path) -> std::path::PathBuf {
    // Five minutes of history stand in for the defaults' hours and days.
    let text = sensor::config::DEFAULT_TOML
        .replace("roots = []", "roots = [\"/usr/bin/python3*\"]")
        .replace("time_min_span_secs = 86400", "time_min_span_secs = 60")
        .replace("volume_min_minutes = 10", "volume_min_minutes = 2")
        .replace("min_events = 200", "min_events = 50");
    let p = dir.join("sensor.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn write(dir: &Path, name: &str, events: &[Value]) -> std::path::PathBuf {
    let p = dir.join(name);
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// Replay `file` against the store; the alerts it printed.
fn replay(cfg: &Path, db: &Path, file: &Path) -> Vec<sensor::alert::Alert> {
    let out = Command::new(sensor_bin())
        .arg("--config")
        .arg(cfg)
        .arg("replay")
        .arg(file)
        .arg("--json")
        .arg("--baselines")
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn anomalies(alerts: &[sensor::alert::Alert]) -> Vec<&sensor::alert::Alert> {
    alerts
        .iter()
        .filter(|a| a.rule.id.starts_with("sensor.anomaly."))
        .collect()
}

/// Learn the first 60%, freeze; returns (config, store, held-back slice).
fn learned(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<Value>) {
    let all = events();
    assert!(all.len() > 2000, "corpus too small: {}", all.len());
    let (t0, t1) = (boot_ns(&all[0]), boot_ns(all.last().unwrap()));
    let cut = t0 + (t1 - t0) * 6 / 10;
    let (learn, hold): (Vec<Value>, Vec<Value>) = all.into_iter().partition(|e| boot_ns(e) < cut);
    let cfg = config(dir);
    let db = dir.join("baselines.db");
    let alerts = replay(&cfg, &db, &write(dir, "learn.jsonl", &learn));
    assert!(anomalies(&alerts).is_empty(), "learning alerts nothing");
    let out = Command::new(sensor_bin())
        .args(["--config"])
        .arg(&cfg)
        .args(["baseline", "--db"])
        .arg(&db)
        .args(["freeze", "--all"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{WORKLOAD} is frozen")), "{said}");
    (cfg, db, hold)
}

#[test]
fn the_held_back_slice_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, db, hold) = learned(dir.path());
    let span_h = (boot_ns(hold.last().unwrap()) - boot_ns(&hold[0])) as f64 / 3.6e12;
    let alerts = replay(&cfg, &db, &write(dir.path(), "hold.jsonl", &hold));
    let any = anomalies(&alerts);
    let loud: Vec<_> = any
        .iter()
        .filter(|a| a.severity >= sensor::alert::Severity::Medium)
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    eprintln!(
        "benign held-back replay: {} events over {:.1} min, {} anomalies of any severity ({:.1} per hour)",
        hold.len(),
        span_h * 60.0,
        any.len(),
        any.len() as f64 / span_h
    );
}

/// A copy of `ev` with `edit` applied, a fresh pid and the same time.
fn variant(ev: &Value, pid: u64, edit: impl FnOnce(&mut Value)) -> Value {
    let mut e = ev.clone();
    e["process"]["pid"] = json!(pid);
    e["process"]["tid"] = json!(pid);
    edit(&mut e);
    e
}

fn first(hold: &[Value], pred: impl Fn(&Value) -> bool) -> &Value {
    hold.iter()
        .find(|e| pred(e))
        .expect("event of that shape in the slice")
}

fn component<'a>(a: &'a sensor::alert::Alert, feature: &str) -> Option<&'a Value> {
    a.fields["anomaly.components"]
        .as_array()?
        .iter()
        .find(|c| c["feature"] == feature)
}

#[test]
fn injected_deviations_are_flagged_with_their_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, db, mut hold) = learned(dir.path());
    fn is(action: &'static str) -> impl Fn(&Value) -> bool {
        move |e| e["event"]["action"] == action
    }
    let uname = first(&hold, |e| {
        e["event"]["action"] == "exec" && e["process"]["executable"] == "/usr/bin/uname"
    })
    .clone();
    let connect = first(&hold, is("connect")).clone();
    let read = first(&hold, |e| {
        is("openat")(e)
            && e["file"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("index.html"))
    })
    .clone();
    let mut injected = vec![
        variant(&uname, 900_001, |e| {
            e["process"]["executable"] = json!("/bin/sh");
            e["process"]["name"] = json!("sh");
            e["process"]["args"] = json!(["sh", "-c", "id; cat /etc/passwd"]);
        }),
        variant(&connect, connect["process"]["pid"].as_u64().unwrap(), |e| {
            e["destination"]["ip"] = json!("198.51.100.7");
            e["destination"]["port"] = json!(4444);
        }),
        variant(&read, read["process"]["pid"].as_u64().unwrap(), |e| {
            e["file"]["path"] = json!("/etc/shadow");
        }),
    ];
    // A burst: 200 runs of the learned helper inside one second (it ran about 30 a minute).
    for i in 0..200 {
        injected.push(variant(&uname, 910_000 + i, |_| {}));
    }
    // Eight hours later than anything learned.
    let mut late = read.clone();
    late["event"]["boot_ns"] = json!(boot_ns(&read) + 8 * 3_600_000_000_000);
    let t = time::OffsetDateTime::parse(
        late["@timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
        + time::Duration::hours(8);
    late["@timestamp"] = json!(sensor::alert::format_timestamp(t));
    hold.extend(injected);
    hold.sort_by_key(boot_ns);
    hold.push(late);
    let alerts = replay(&cfg, &db, &write(dir.path(), "injected.jsonl", &hold));
    let any = anomalies(&alerts);
    let find = |rule: &str| {
        any.iter()
            .find(|a| a.rule.id == rule)
            .unwrap_or_else(|| panic!("no {rule} among {any:#?}"))
    };

    let a = find("sensor.anomaly.unusual_command_sequence");
    let c = component(a, "executables").unwrap();
    assert_eq!(c["value"], "/bin/sh");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .starts_with("ran /bin/sh, not among the"),
        "{c}"
    );
    assert_eq!(a.mitre, vec!["T1059.004"]);
    // 70 points at full confidence; 87 learned execs give 0.97 of it.
    assert!(a.severity >= sensor::alert::Severity::Medium, "{a:?}");

    let a = find("sensor.anomaly.abnormal_network_activity");
    let c = component(a, "peers").unwrap();
    assert_eq!(c["value"], "198.51.100.7:4444");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("on a port never used"),
        "{c}"
    );
    assert!(a.severity >= sensor::alert::Severity::Medium);

    let a = find("sensor.anomaly.suspicious_file_access");
    let c = component(a, "file_read").unwrap();
    assert_eq!(c["value"], "/etc/shadow");
    assert!(
        c["reason"].as_str().unwrap().contains("(restricted)"),
        "{c}"
    );
    assert_eq!(a.mitre, vec!["T1552.001"]);

    let a = find("sensor.anomaly.volume_anomaly");
    let c = component(a, "rate.exec").unwrap();
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("execs in one minute; learned max"),
        "{c}"
    );

    let a = find("sensor.anomaly.time_anomaly");
    let c = component(a, "hours").unwrap();
    assert!(
        c["reason"].as_str().unwrap().contains("were all in hours"),
        "{c}"
    );

    // Nothing else: the injected deviations, and no benign line, explain every anomaly.
    for a in &any {
        assert!(
            [
                "sensor.anomaly.unusual_command_sequence",
                "sensor.anomaly.abnormal_network_activity",
                "sensor.anomaly.suspicious_file_access",
                "sensor.anomaly.volume_anomaly",
                "sensor.anomaly.time_anomaly",
            ]
            .contains(&a.rule.id.as_str()),
            "{a:?}"
        );
    }
    assert_eq!(any.len(), 5, "{any:#?}");
}
