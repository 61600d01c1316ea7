//! The sensor's own profiles (profiles/sensor-agent.*): the AppArmor profile passes
//! `apparmor_parser`, the OCI seccomp profile matches the profile file, and the agent runs
//! under its own profile (`sensor exec`: its seccomp allow-list, Landlock, its capability
//! list), sees a process and alerts on it, then stops cleanly. Root only.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::{require_root, sensor_bin};

fn profiles() -> std::path::PathBuf {
    // No `..`: in the kernel matrix's VM only the files themselves exist.
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests.parent().unwrap_or(tests).join("profiles")
}

#[test]
fn shipped_profiles_are_valid_and_consistent() {
    let p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(profiles().join("sensor-agent.profile.json")).unwrap(),
    )
    .unwrap();
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(profiles().join("sensor-agent.seccomp.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        p["syscalls"], s["syscalls"][0]["names"],
        "seccomp JSON rendered from the profile"
    );
    assert!(p["syscalls"].as_array().unwrap().iter().any(|n| n == "bpf"));
    let o = Command::new(sensor_bin())
        .args(["profile", "check"])
        .arg(profiles().join("sensor-agent.profile.json"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if Path::new("/usr/sbin/apparmor_parser").exists() {
        let o = Command::new("apparmor_parser")
            .args(["-Q", "-K"])
            .arg(profiles().join("sensor-agent.apparmor"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        eprintln!("SKIP apparmor_parser check: not installed (cargo xtask setup installs it)");
    }
}

#[test]
fn the_agent_runs_under_its_own_profile() {
    if !require_root("the_agent_runs_under_its_own_profile") {
        return;
    }
    let state = Path::new("/var/lib/sensor").join(format!("test-self-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let _cleanup = Cleanup(state.clone());
    // The shipped profile, with this build's binary as the executable.
    let mut p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(profiles().join("sensor-agent.profile.json")).unwrap(),
    )
    .unwrap();
    let bin = std::fs::canonicalize(sensor_bin()).unwrap();
    p["executables"]
        .as_array_mut()
        .unwrap()
        .push(bin.display().to_string().into());
    let prof = state.join("agent.profile.json");
    std::fs::write(&prof, p.to_string()).unwrap();
    let log = std::fs::File::create(state.join("agent.log")).unwrap();
    let mut cmd = Command::new(&bin);
    // The agent must not outlive a failed test.
    // SAFETY: set_pdeathsig is async-signal-safe (a single prctl call).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let agent = cmd
        .args(["exec", "--profile"])
        .arg(&prof)
        .arg("--")
        .arg(&bin)
        .arg("--state-dir")
        .arg(&state)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut agent = KillOnDrop(agent);
    let status = || {
        Command::new(&bin)
            .arg("--state-dir")
            .arg(&state)
            .args(["status", "--json"])
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while status().is_none() {
        if let Ok(Some(s)) = agent.0.try_wait() {
            panic!(
                "agent under its profile exited ({s}):\n{}",
                std::fs::read_to_string(state.join("agent.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not ready:\n{}",
            std::fs::read_to_string(state.join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // It sees a real exec, and its secret scanner alerts on the command line (rules with
    // exceptions for build tools would stay quiet under `cargo test`).
    let token = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
    let _ = Command::new("/bin/true")
        .arg(format!("--token={token}"))
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = Command::new(&bin)
            .arg("--state-dir")
            .arg(&state)
            .args(["alerts", "tail", "--json", "-n", "100"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        if text.contains("sensor.dlp.secret_in_command_line")
            && text.contains("\"executable\":\"/bin/true\"")
        {
            assert!(!text.contains(&token), "redacted");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no alert from the confined agent: {text:?}\nstatus {}\n{}",
            status()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default(),
            std::fs::read_to_string(state.join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let s: serde_json::Value = serde_json::from_slice(&status().unwrap().stdout).unwrap();
    assert!(
        s["probes"]["attached"].as_array().unwrap().len() > 40,
        "{s}"
    );
    // SIGTERM: a clean stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = agent.0.wait().unwrap();
    assert!(
        code.success(),
        "{code}:\n{}",
        std::fs::read_to_string(state.join("agent.log")).unwrap_or_default()
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
