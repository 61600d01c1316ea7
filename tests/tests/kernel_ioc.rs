//! IOC matching on the live agent: an IP indicator is flagged in the kernel, an executable's
//! hash matches, other connects are untouched, and a changed indicator file reloads. Root only.

use std::{
    net::{TcpListener, TcpStream},
    process::Command,
    time::Duration,
};

use sensor::{
    api::EventFilter,
    detect::{IOC_HASH_RULE, IOC_IP_RULE},
    event::Kind,
};
use sensor_tests::{Agent, require_root};

fn sha256_hex(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[test]
fn ip_and_hash_indicators_match_and_others_do_not() {
    if !require_root("ip_and_hash_indicators_match_and_others_do_not") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A copy of `true`, so its hash is an indicator but /bin/true's path is not involved.
    let evil = dir.path().join("evil-tool");
    std::fs::copy("/bin/true", &evil).unwrap();
    let list = dir.path().join("iocs.txt");
    std::fs::write(
        &list,
        format!(
            "127.0.0.77  # test c2\n{}  # test binary\n",
            sha256_hex(evil.to_str().unwrap())
        ),
    )
    .unwrap();
    let cfg = sensor::config::DEFAULT_TOML
        .replace("builtin = true", "builtin = false")
        .replace(
            "paths = []\n\n[dlp]",
            &format!("paths = [{:?}]\n\n[dlp]", list.display().to_string()),
        );
    let agent = Agent::start(Some(&cfg));
    assert_eq!(agent.status().ioc_indicators, 2);
    let mut events = agent.subscribe(EventFilter {
        kinds: vec![Kind::Network],
        pid: Some(std::process::id()),
        ..EventFilter::default()
    });

    // A connect to an ordinary loopback address: no flag, no alert.
    let ok = TcpListener::bind("127.0.0.1:0").unwrap();
    let ok_port = ok.local_addr().unwrap().port();
    drop(TcpStream::connect(("127.0.0.1", ok_port)).unwrap());
    let ev = events
        .wait_for(Duration::from_secs(10), |e| {
            e.event.action == "connect"
                && e.destination.as_ref().and_then(|d| d.port) == Some(ok_port)
        })
        .expect("plain connect event");
    assert!(!ev.network.unwrap().ioc);

    // The indicator address: flagged by the kernel, alerted with its metadata.
    let bad = TcpListener::bind("127.0.0.77:0").unwrap();
    let bad_port = bad.local_addr().unwrap().port();
    drop(TcpStream::connect(("127.0.0.77", bad_port)).unwrap());
    let ev = events
        .wait_for(Duration::from_secs(10), |e| {
            e.event.action == "connect"
                && e.destination.as_ref().and_then(|d| d.port) == Some(bad_port)
        })
        .expect("indicator connect event");
    assert!(ev.network.unwrap().ioc, "kernel flag");
    let a = agent
        .wait_alert(Duration::from_secs(10), |a| a.rule.id == IOC_IP_RULE)
        .expect("ip alert");
    assert_eq!(a.fields["indicator"]["description"], "test c2");
    assert_eq!(a.fields["observed"], "127.0.0.77");

    // The executable hash.
    Command::new(&evil).status().unwrap();
    let a = agent
        .wait_alert(Duration::from_secs(10), |a| a.rule.id == IOC_HASH_RULE)
        .expect("hash alert");
    assert_eq!(a.process.unwrap().executable, evil.to_str().unwrap());
    assert!(
        agent
            .alerts()
            .iter()
            .filter(|a| a.rule.id == IOC_IP_RULE)
            .count()
            == 1
    );
}
