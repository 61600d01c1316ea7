//! The profile lifecycle in the kernel, on a runc container the test creates: learned, frozen,
//! shadowed (out-of-profile exec, connect and file open run, and are counted exactly), then
//! enforced (an unlearned program is killed before it runs, an unlearned connect fails with
//! EPERM, and where `lsm/file_open` loads an unlearned file open or a write to a file only
//! read while learning fails with EPERM; learned ones and everything outside the container are
//! untouched). Root only.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use sensor_tests::{Agent, require_root, runc};

fn config() -> String {
    sensor::config::DEFAULT_TOML
        .replace("min_events = 200", "min_events = 20")
        .replace("save_interval_secs = 30", "save_interval_secs = 1")
        .replace("promote_after_events = 10000", "promote_after_events = 10")
}

fn find<'a>(list: &'a serde_json::Value, workload: &str) -> Option<&'a serde_json::Value> {
    list.as_array()?.iter().find(|s| s["workload"] == workload)
}

/// Ask the container's own loop (not a `runc exec`, whose set-up opens files of its own) to
/// open `path` for reading (`r`) or writing (`w`); what it printed and its exit status.
fn open_in_loop(c: &runc::Container, agent: &Agent, mode: &str, path: &str) -> String {
    let result = c.rootfs().join("tmp/result");
    let _ = std::fs::remove_file(&result);
    std::fs::write(c.rootfs().join("tmp/go"), format!("{mode} {path}\n")).unwrap();
    let mut text = String::new();
    wait_for(&format!("the loop to open {path} ({mode})"), agent, || {
        text = std::fs::read_to_string(&result).unwrap_or_default();
        text.contains("rc=")
    });
    text
}

/// The loop: a read, a connect, and an open on request (see [`open_in_loop`]).
const LOOP: &str = "while true; do cat /proc/version >/dev/null; nc 127.0.0.1 4100 </dev/null 2>/dev/null; \
    if [ -s /tmp/go ]; then read m f </tmp/go; : >/tmp/go; \
    if [ \"$m\" = w ]; then (echo x >\"$f\") >/tmp/result 2>&1; else cat \"$f\" >/tmp/result 2>&1; fi; \
    echo \"rc=$?\" >>/tmp/result; fi; sleep 0.1; done";

/// `runc exec` in the container: (exit code, stdout + stderr).
fn exec_in(id: &str, args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new("runc")
        .arg("exec")
        .arg(id)
        .args(args)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.code(), text)
}

fn wait_for(what: &str, agent: &Agent, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn shadow_counts_exactly_and_enforce_denies_only_what_is_out_of_profile() {
    let name = "shadow_counts_exactly_and_enforce_denies_only_what_is_out_of_profile";
    if !require_root(name) {
        return;
    }
    if let Err(why) = runc::available() {
        eprintln!("SKIP {name}: {why}");
        return;
    }
    let agent = Agent::start(Some(&config()));
    let image = format!("sensor-test/enforce-{}", std::process::id());
    let workload = format!("container:{image}");
    // Learned: reading a file, trying port 4100 on the container's own loopback, and (once
    // each) reading /etc/learned.txt and writing /tmp/written.
    let c = runc::Container::create(&runc::unique_id("enforce"), &["sh", "-c", LOOP]).unwrap();
    {
        let image = image.clone();
        c.edit_config(move |cfg| {
            cfg["annotations"] = serde_json::json!({ "sensor.image": image });
            Ok(())
        })
        .unwrap();
    }
    // A second program file (another inode) the container never runs while learning
    // (busybox picks its applet from argv[0], so the copy keeps the name).
    std::fs::create_dir(c.rootfs().join("opt")).unwrap();
    std::fs::copy(
        c.rootfs().join("bin/busybox"),
        c.rootfs().join("opt/busybox"),
    )
    .unwrap();
    std::fs::create_dir_all(c.rootfs().join("etc")).unwrap();
    std::fs::write(c.rootfs().join("etc/learned.txt"), "learned\n").unwrap();
    std::fs::write(c.rootfs().join("etc/secret.txt"), "secret\n").unwrap();
    c.start_detached().unwrap();
    // Once the agent knows the container as the workload (its first events may come before).
    wait_for("the workload", &agent, || {
        let l = agent.cli_json(&["baseline", "list", "--json"]);
        find(&l, &workload).is_some_and(|s| s["events"].as_u64().unwrap_or(0) >= 5)
    });
    assert!(open_in_loop(&c, &agent, "r", "/etc/learned.txt").contains("learned\nrc=0"));
    assert!(open_in_loop(&c, &agent, "w", "/tmp/written").contains("rc=0"));
    wait_for("learning", &agent, || {
        let l = agent.cli_json(&["baseline", "list", "--json"]);
        find(&l, &workload).is_some_and(|s| s["events"].as_u64().unwrap_or(0) >= 60)
    });
    agent.cli_ok(&["baseline", "freeze", &workload]);
    agent.cli_ok(&["profile", "shadow", &workload]);
    let kernel = |agent: &Agent| {
        let l = agent.cli_json(&["profile", "status", "--json"]);
        find(&l, &workload)
            .and_then(|s| s.get("kernel").cloned())
            .filter(|k| !k.is_null())
    };
    wait_for("the kernel policy", &agent, || kernel(&agent).is_some());
    let status = agent.cli_json(&["status", "--json"]);
    let backend = status["baseline"]["enforcement_backend"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!("enforcement backend: {backend}");
    let lsm = backend.starts_with("exec: lsm/");
    let files = backend.contains("lsm/file_open (EPERM)");
    // The kernel matrix says which backend each kernel must pick.
    if let Ok(want) = std::env::var("SENSOR_EXPECT_BACKEND") {
        assert_eq!(
            (lsm, files),
            (want == "lsm", want == "lsm"),
            "expected the {want} backend, got: {backend}"
        );
    }
    if !files {
        eprintln!(
            "file-open enforcement not checked on this kernel (it needs lsm/file_open): {backend}"
        );
    }
    let file_counts = |agent: &Agent| {
        let k = kernel(agent).unwrap_or_default();
        (
            k["file_denied"].as_u64().unwrap_or(0),
            k["file_would_deny"].as_u64().unwrap_or(0),
        )
    };
    // The agent reads the kernel's counters every second: wait until two readings agree.
    let settled = |agent: &Agent| {
        let mut last = file_counts(agent);
        loop {
            std::thread::sleep(Duration::from_millis(1200));
            let now = file_counts(agent);
            if now == last {
                return now;
            }
            last = now;
        }
    };

    // Shadow: out of profile, but nothing is blocked; each is counted once.
    let (code, out) = exec_in(c.id(), &["/opt/busybox", "echo", "ran"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ran"));
    let (_, out) = exec_in(c.id(), &["nc", "127.0.0.1", "4200"]);
    assert!(
        !out.contains("not permitted"),
        "shadow blocks nothing: {out}"
    );
    wait_for("shadow counters", &agent, || {
        kernel(&agent).is_some_and(|k| k["exec_would_deny"] == 1 && k["connect_would_deny"] == 1)
    });
    let k = kernel(&agent).unwrap();
    assert_eq!(
        (k["exec_denied"].as_u64(), k["connect_denied"].as_u64()),
        (Some(0), Some(0)),
        "{k}"
    );
    // An unlearned file opens in shadow, and is counted once (the loop opens nothing else
    // that is new).
    let before = settled(&agent);
    let out = open_in_loop(&c, &agent, "r", "/etc/secret.txt");
    assert!(out.contains("secret\nrc=0"), "shadow blocks nothing: {out}");
    if files {
        wait_for("the file would-deny count", &agent, || {
            file_counts(&agent).1 > before.1
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(file_counts(&agent), (before.0, before.1 + 1));
        let a = agent
            .wait_alert(Duration::from_secs(5), |a| {
                a.rule.id == "sensor.profile.would_deny"
                    && a.fields.get("profile.value").and_then(|v| v.as_str())
                        == Some("/etc/secret.txt")
            })
            .expect("would-deny alert for the file");
        assert_eq!(a.fields["profile.feature"], "file_read", "{a:?}");
    } else {
        assert_eq!(file_counts(&agent), (0, 0));
    }
    let a = agent
        .wait_alert(Duration::from_secs(5), |a| {
            a.rule.id == "sensor.profile.would_deny"
                && a.fields.get("profile.feature").and_then(|v| v.as_str()) == Some("peers")
        })
        .expect("would-deny alert for the connect");
    assert!(a.message.contains("127.0.0.1:4200"), "{}", a.message);

    // Ready once enough in-profile actions followed; then enforced.
    wait_for("promotion criterion", &agent, || {
        let l = agent.cli_json(&["profile", "status", "--json"]);
        find(&l, &workload).is_some_and(|s| s["ready"] == true)
    });
    agent.cli_ok(&["profile", "enforce", &workload]);
    wait_for("enforce in the kernel", &agent, || {
        let l = agent.cli_json(&["profile", "status", "--json"]);
        find(&l, &workload).is_some_and(|s| s["stage"] == "enforce")
    });
    std::thread::sleep(Duration::from_millis(1500));

    // The unlearned program does not run: refused with EPERM by BPF LSM where the kernel
    // loads it, killed before its first instruction otherwise. The unlearned connect gets
    // EPERM either way.
    let (code, out) = exec_in(c.id(), &["/opt/busybox", "echo", "ran"]);
    assert!(!out.contains("ran"), "{out}");
    assert_ne!(code, Some(0));
    if lsm {
        assert!(
            out.contains("permission denied") || out.contains("not permitted"),
            "EPERM: {out}"
        );
    } else {
        assert_eq!(code, Some(137), "SIGKILL: {out}");
    }
    let (_, out) = exec_in(c.id(), &["nc", "127.0.0.1", "4200"]);
    assert!(out.contains("not permitted"), "{out}");
    // Learned ones still work (refused by the empty port, not by the policy).
    // A learned command through `runc exec`: runc's own set-up in the container opens
    // nothing the file policy refuses.
    let before = settled(&agent);
    let (code, out) = exec_in(c.id(), &["cat", "/proc/version"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(settled(&agent), before, "runc exec tripped the file policy");
    let (_, out) = exec_in(c.id(), &["nc", "127.0.0.1", "4100"]);
    assert!(!out.contains("not permitted"), "{out}");
    wait_for("enforce counters", &agent, || {
        kernel(&agent).is_some_and(|k| k["exec_denied"] == 1 && k["connect_denied"] == 1)
    });
    // Files: the unlearned one and a write to one only read are refused with EPERM; learned
    // reads and writes go on. Each refusal is counted once.
    let before = settled(&agent);
    assert!(
        open_in_loop(&c, &agent, "r", "/etc/learned.txt").contains("learned\nrc=0"),
        "a learned read"
    );
    let secret = open_in_loop(&c, &agent, "r", "/etc/secret.txt");
    let overwrite = open_in_loop(&c, &agent, "w", "/etc/learned.txt");
    assert!(
        open_in_loop(&c, &agent, "w", "/tmp/written").ends_with("rc=0\n"),
        "a learned write"
    );
    if files {
        for out in [&secret, &overwrite] {
            assert!(
                out.contains("Operation not permitted") && !out.contains("rc=0"),
                "EPERM: {out}"
            );
        }
        wait_for("the file denial counts", &agent, || {
            file_counts(&agent).0 >= before.0 + 2
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(file_counts(&agent), (before.0 + 2, before.1));
        assert_eq!(
            std::fs::read_to_string(c.rootfs().join("etc/learned.txt")).unwrap(),
            "learned\n"
        );
    } else {
        assert!(secret.contains("secret\nrc=0"), "{secret}");
        assert!(overwrite.ends_with("rc=0\n"), "{overwrite}");
    }
    // Outside the container nothing changed: the same connect from the host is refused by
    // the empty port, not by a policy.
    let e = std::net::TcpStream::connect(("127.0.0.1", 4200)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        agent
            .wait_alert(Duration::from_secs(5), |a| a.rule.id
                == "sensor.profile.denied")
            .is_some()
    );
    let status = agent.cli_ok(&["status"]);
    let shown = if lsm {
        "lsm/bprm_check_security"
    } else {
        "SIGKILL"
    };
    assert!(status.contains(shown), "backend shown: {status}");

    // Off: the policy leaves the kernel.
    agent.cli_ok(&["profile", "off", &workload]);
    std::thread::sleep(Duration::from_millis(1500));
    let (code, out) = exec_in(c.id(), &["/opt/busybox", "echo", "ran"]);
    assert_eq!(code, Some(0), "{out}");
}
