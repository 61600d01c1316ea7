//! Smoke tests of the runc helper (`sensor_tests::runc`) that the kernel tests build on: a
//! container runs, reports output and exit codes, sits in the cgroup the sensor attributes to
//! it, and leaves nothing behind when dropped. Root and runc only; each says why it skips.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use sensor_tests::runc::{self, Container};

const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Prints why `test` cannot run here, if it cannot.
fn skip(test: &str) -> bool {
    match runc::available() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("SKIP {test}: {why}");
            true
        }
    }
}

/// Whether `pid` still runs. A zombie counts as gone: it has exited, and reaping it is up to
/// its parent (the host's PID 1 for a detached container's init), not to runc.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ") ".
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn echo_prints_hello_and_exits_zero() {
    if skip("echo_prints_hello_and_exits_zero") {
        return;
    }
    let ct = Container::create(&runc::unique_id("smoke-echo"), &["echo", "hello"]).expect("bundle");
    let out = ct.run(RUN_TIMEOUT).expect("runc run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n", "{out:?}");
}

#[test]
fn exit_code_is_passed_through() {
    if skip("exit_code_is_passed_through") {
        return;
    }
    let ct =
        Container::create(&runc::unique_id("smoke-exit"), &["sh", "-c", "exit 7"]).expect("bundle");
    let out = ct.run(RUN_TIMEOUT).expect("runc run");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}

#[test]
fn detached_container_is_in_its_cgroup_and_gone_after_drop() {
    if skip("detached_container_is_in_its_cgroup_and_gone_after_drop") {
        return;
    }
    let id = runc::unique_id("smoke-detached");
    let ct = Container::create(&id, &["sleep", "30"]).expect("bundle");
    ct.start_detached().expect("runc run -d");
    assert_eq!(ct.id(), id);

    let pid = ct.init_pid().expect("init pid");
    assert!(running(pid), "init {pid} runs");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let v2 = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    assert!(
        v2.ends_with(&format!("/{id}")),
        "cgroup v2 path {v2:?} ends with /{id}"
    );
    assert_eq!(ct.cgroup_v2_path().expect("helper's cgroup path"), v2);
    let state_json = Path::new("/run/runc").join(&id).join("state.json");
    assert!(
        state_json.exists(),
        "{} exists while it runs",
        state_json.display()
    );
    assert!(runc::list_ids().expect("runc list").contains(&id));

    drop(ct);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!running(pid), "init {pid} still runs after drop");
    let ids = runc::list_ids().expect("runc list");
    assert!(!ids.contains(&id), "runc still lists {id}: {ids:?}");
    assert!(!state_json.exists(), "{} removed", state_json.display());
    let cgroup_dir = Path::new("/sys/fs/cgroup/unified").join(v2.trim_start_matches('/'));
    assert!(!cgroup_dir.exists(), "{} removed", cgroup_dir.display());
}

#[test]
fn run_past_its_timeout_is_killed_and_cleaned_up() {
    if skip("run_past_its_timeout_is_killed_and_cleaned_up") {
        return;
    }
    let id = runc::unique_id("smoke-timeout");
    let ct = Container::create(&id, &["sh", "-c", "echo started; sleep 30"]).expect("bundle");
    let began = Instant::now();
    let err = ct
        .run(Duration::from_secs(1))
        .expect_err("a 30 s sleep outlives a 1 s timeout");
    assert!(began.elapsed() < Duration::from_secs(10), "{err:#}");
    assert!(
        format!("{err:#}").contains("started"),
        "partial output kept: {err:#}"
    );
    let ids = runc::list_ids().expect("runc list");
    assert!(!ids.contains(&id), "runc still lists {id}: {ids:?}");
}
