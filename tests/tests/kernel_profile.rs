//! From baseline to enforcement, for real: a service learned under the live agent, its
//! profile generated, then run under `sensor exec --profile` (Landlock, seccomp, capabilities)
//! where its normal requests succeed and a shell, a write outside its paths and a connect to a
//! new port are refused; the generated AppArmor profile passes `apparmor_parser`; a runc
//! container learned by cgroup runs under its generated OCI seccomp profile, where an
//! unlearned syscall fails. Root only.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use sensor_tests::{
    Agent, require_root, runc, sensor_bin,
    webapp::{Service, free_port_pair, workload},
};

fn config() -> String {
    sensor::config::DEFAULT_TOML
        .replace("roots = []", "roots = [\"/usr/bin/python3*\"]")
        .replace("min_events = 200", "min_events = 20")
        .replace("save_interval_secs = 30", "save_interval_secs = 1")
}

/// Generate every format into `out`; the paths written, by suffix.
fn generate(agent: &Agent, workload: &str, out: &Path) -> Vec<PathBuf> {
    let text = agent.cli_ok(&[
        "profile",
        "generate",
        workload,
        "--out",
        out.to_str().unwrap(),
    ]);
    text.lines().map(PathBuf::from).collect()
}

fn with_suffix<'a>(files: &'a [PathBuf], suffix: &str) -> &'a Path {
    files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {files:?}"))
}

#[test]
fn a_learned_service_runs_confined_by_its_generated_profile() {
    if !require_root("a_learned_service_runs_confined_by_its_generated_profile") {
        return;
    }
    let agent = Agent::start(Some(&config()));
    // A stable name prefix: the learned path generalizes to `/tmp/webapp-svc-*`, which the
    // profile expands to this directory, not to all of /tmp.
    let dir = tempfile::Builder::new()
        .prefix("webapp-svc-")
        .tempdir()
        .unwrap();
    let port = free_port_pair();
    // First run: the agent learns the workload and its executable.
    let mut svc = Service::start(dir.path(), port, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent
        .baseline(&workload())
        .is_none_or(|s| s["syscalls"].as_u64().unwrap_or(0) < 10)
    {
        assert!(
            Instant::now() < deadline,
            "not learning:\n{}",
            agent.log_text()
        );
        svc.exercise();
        std::thread::sleep(Duration::from_millis(200));
    }
    // Second run: its executable is known now, so the kernel records it from exec on
    // (start-up included).
    svc.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let mut svc = Service::start(dir.path(), port, &[]);
    for _ in 0..5 {
        svc.exercise();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(1500));
    svc.stop();
    agent.cli_ok(&["baseline", "freeze", &workload()]);

    let out = tempfile::tempdir().unwrap();
    let files = generate(&agent, &workload(), out.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let profile = with_suffix(&files, ".profile.json");
    assert!(
        profile.to_string_lossy().contains(".v1."),
        "versioned with the baseline: {profile:?}"
    );
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(profile).unwrap()).unwrap();
    assert!(
        p["executables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "/usr/bin/uname"),
        "{p}"
    );
    assert!(
        p["bind_ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == port),
        "{p}"
    );
    agent.cli_ok(&["profile", "check", profile.to_str().unwrap()]);

    // AppArmor: valid as generated; a broken copy is refused with its line.
    let aa = with_suffix(&files, ".apparmor");
    if Path::new("/usr/sbin/apparmor_parser").exists() {
        let o = Command::new("apparmor_parser")
            .args(["-Q", "-K"])
            .arg(aa)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(aa).unwrap()
        );
        let broken = out.path().join("broken.apparmor");
        let text = std::fs::read_to_string(aa).unwrap().replace(
            "  network unix stream,\n",
            "  network unix stream\n  bogus rule here,\n",
        );
        std::fs::write(&broken, text).unwrap();
        let o = Command::new("apparmor_parser")
            .args(["-Q", "-K"])
            .arg(&broken)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("line"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    } else {
        eprintln!(
            "SKIP apparmor_parser check: /usr/sbin/apparmor_parser missing (cargo xtask setup installs it)"
        );
    }

    // Confined: normal work succeeds.
    let svc = Service::start(
        dir.path(),
        port,
        &[
            sensor_bin().to_str().unwrap(),
            "exec",
            "--profile",
            profile.to_str().unwrap(),
            "--verbose",
            "--",
        ],
    );
    svc.exercise();
    assert!(svc.get("/report").contains("Linux"));
    // Out of profile: refused.
    let r = svc.get("/x/shell");
    assert!(r.contains("refused") && !r.contains("hello"), "{r}");
    let outside = std::env::temp_dir().join(format!("sensor-outside-{}", std::process::id()));
    let r = svc.get(&format!("/x/write?path={}", outside.display()));
    assert!(r.contains("refused"), "{r}");
    assert!(!outside.exists());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let new_port = listener.local_addr().unwrap().port();
    let r = svc.get(&format!("/x/connect?port={new_port}"));
    assert!(r.contains("refused"), "{r}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the connect never arrived");
    // And the learned connect still works.
    assert!(svc.get("/data").contains("42"));
    drop(svc);

    // A malformed profile runs nothing.
    let bad = out.path().join("bad.profile.json");
    let text = std::fs::read_to_string(profile)
        .unwrap()
        .replace("\"openat\"", "\"no_such_call\"");
    std::fs::write(&bad, text).unwrap();
    let marker = out.path().join("ran");
    let o = Command::new(sensor_bin())
        .args([
            "exec",
            "--profile",
            bad.to_str().unwrap(),
            "--",
            "/usr/bin/touch",
        ])
        .arg(&marker)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown syscall \"no_such_call\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!marker.exists(), "nothing ran");
}

#[test]
fn a_learned_container_runs_under_its_generated_oci_seccomp_profile() {
    if !require_root("a_learned_container_runs_under_its_generated_oci_seccomp_profile") {
        return;
    }
    if let Err(why) = runc::available() {
        eprintln!("SKIP a_learned_container_runs_under_its_generated_oci_seccomp_profile: {why}");
        return;
    }
    let agent = Agent::start(Some(&config()));
    let image = format!("sensor-test/loop-{}", std::process::id());
    let workload = format!("container:{image}");
    let annotate = |c: &runc::Container| {
        let image = image.clone();
        c.edit_config(move |cfg| {
            cfg["annotations"] = serde_json::json!({ "sensor.image": image });
            Ok(())
        })
        .unwrap();
    };
    // Learn: a container reading a file in a loop.
    let learn = runc::Container::create(
        &runc::unique_id("learn"),
        &[
            "sh",
            "-c",
            "while true; do cat /proc/version >/dev/null; sleep 0.1; done",
        ],
    )
    .unwrap();
    annotate(&learn);
    learn.start_detached().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent
        .baseline(&workload)
        .is_none_or(|s| s["syscalls"].as_u64().unwrap_or(0) < 5)
    {
        assert!(
            Instant::now() < deadline,
            "container not learning: {:?}\n{}",
            agent.baseline(&workload),
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    drop(learn);
    agent.cli_ok(&["baseline", "freeze", &workload]);
    let out = tempfile::tempdir().unwrap();
    let text = agent.cli_ok(&[
        "profile",
        "generate",
        &workload,
        "--format",
        "seccomp",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let seccomp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(text.trim()).unwrap()).unwrap();
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    let names = seccomp["syscalls"][0]["names"].as_array().unwrap();
    assert!(
        !names.iter().any(|n| n == "mkdir" || n == "mkdirat"),
        "not learned: {names:?}"
    );

    // Enforced by runc: the learned work succeeds, an unlearned syscall fails.
    let run = |cmd: &str| {
        let c = runc::Container::create(&runc::unique_id("enforce"), &["sh", "-c", cmd]).unwrap();
        let s = seccomp.clone();
        c.edit_config(move |cfg| {
            cfg["linux"]["seccomp"] = s;
            Ok(())
        })
        .unwrap();
        c.run(Duration::from_secs(20)).unwrap()
    };
    let o = run("cat /proc/version && echo done");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("done"));
    let o = run("busybox mkdir /new-dir && echo made");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("made"),
        "{o:?}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
