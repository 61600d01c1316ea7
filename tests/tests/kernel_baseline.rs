//! Behavioural baselines on the live agent: a real service (tests/workload/webapp.py on
//! loopback) is learned from its real events, frozen, then made to do something new; the
//! anomaly alert comes within a second, explained. The kernel records the service's syscalls
//! while it learns, and the baseline survives a restart. Root only.

use std::time::{Duration, Instant};

use sensor::alert::Alert;
use sensor_tests::{
    Agent, require_root,
    webapp::{Service, free_port_pair, workload},
};

fn config() -> String {
    sensor::config::DEFAULT_TOML
        .replace("roots = []", "roots = [\"/usr/bin/python3*\"]")
        .replace("min_events = 200", "min_events = 20")
        // A short learning run: let a handful of observations count fully.
        .replace("maturity_events = 100", "maturity_events = 10")
        .replace("save_interval_secs = 30", "save_interval_secs = 1")
}

fn anomaly<'a>(a: &'a Alert, rule: &str) -> Option<&'a serde_json::Value> {
    (a.rule.id == rule
        && a.fields.get("workload").and_then(|w| w.as_str()) == Some(workload().as_str()))
    .then(|| &a.fields["anomaly.components"])
}

#[test]
fn a_learned_service_doing_something_new_is_an_anomaly_within_a_second() {
    if !require_root("a_learned_service_doing_something_new_is_an_anomaly_within_a_second") {
        return;
    }
    let cfg = config();
    let agent = Agent::start(Some(&cfg));
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), free_port_pair(), &[]);
    // Exercise it until its events reached its baseline and the kernel recorded its syscalls
    // (processes are enrolled for syscall recording within a second of being seen).
    let deadline = Instant::now() + Duration::from_secs(20);
    let learned = loop {
        svc.exercise();
        let s = agent.baseline(&workload());
        if let Some(s) = &s
            && s["events"].as_u64().unwrap_or(0) >= 100
            && s["syscalls"].as_u64().unwrap_or(0) > 10
        {
            break s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "not learned: {s:?}\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(learned["mode"], "learning");
    let out = agent.cli(&["baseline", "freeze", &workload()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Normal requests stay quiet once frozen.
    svc.exercise();

    // A shell: new program for this workload.
    let t0 = Instant::now();
    assert!(svc.get("/x/shell").contains("hello"));
    let a = agent
        .wait_alert(Duration::from_secs(5), |a| {
            anomaly(a, "sensor.anomaly.unusual_command_sequence").is_some()
        })
        .unwrap_or_else(|| panic!("no anomaly for the shell:\n{}", agent.log_text()));
    let took = t0.elapsed();
    let c = anomaly(&a, "sensor.anomaly.unusual_command_sequence").unwrap();
    assert!(
        c.as_array()
            .unwrap()
            .iter()
            .any(|c| c["feature"] == "executables" && c["value"] == "/bin/sh"),
        "{c}"
    );
    assert_eq!(a.mitre, vec!["T1059.004"]);
    assert!(a.severity >= sensor::alert::Severity::Medium, "{a:?}");
    assert!(took < Duration::from_secs(1), "shell anomaly took {took:?}");

    // A connect to a port it never used.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let new_port = listener.local_addr().unwrap().port();
    let t0 = Instant::now();
    svc.get(&format!("/x/connect?port={new_port}"));
    let peer = format!("127.0.0.1:{new_port}");
    let a = agent
        .wait_alert(Duration::from_secs(5), |a| {
            anomaly(a, "sensor.anomaly.abnormal_network_activity")
                .is_some_and(|c| c.to_string().contains(&peer))
        })
        .unwrap_or_else(|| panic!("no anomaly for the connect:\n{}", agent.log_text()));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "network anomaly took {took:?}"
    );
    assert!(a.message.contains("on a port never used"), "{}", a.message);
    eprintln!("anomaly latency: request → alert in the log {took:?} (log polled every 100 ms)");
    // The normal requests after freezing raised nothing.
    let noisy: Vec<_> = agent
        .alerts()
        .into_iter()
        .filter(|a| a.rule.id.starts_with("sensor.anomaly.") && !a.message.contains("/x/"))
        .filter(|a| {
            let c = a.fields["anomaly.components"].to_string();
            !c.contains("/bin/sh") && !c.contains(&peer) && !c.contains("echo")
        })
        .collect();
    assert!(noisy.is_empty(), "false anomalies: {noisy:#?}");

    // The baseline survives a restart, frozen, with its syscalls.
    let agent = agent.restart(Some(&cfg));
    let s = agent.baseline(&workload()).expect("baseline after restart");
    assert_eq!(s["mode"], "frozen");
    assert!(s["syscalls"].as_u64().unwrap() > 10, "{s}");
    let out = agent.cli(&["baseline", "show", &workload()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("deviations since learning ended"), "{text}");
    assert!(text.contains("/bin/sh"), "{text}");
    drop(svc);
}
