//! Kernel test with a real runc container (busybox rootfs). Root only.

use std::time::Duration;

use sensor::event::Kind;
use sensor_tests::{Agent, WAIT, kinds, require_root, runc};

#[test]
fn container_process_is_attributed_to_its_runc_container() {
    if !require_root("container_process_is_attributed_to_its_runc_container") {
        return;
    }
    if let Err(why) = runc::available() {
        eprintln!("SKIP container_process_is_attributed_to_its_runc_container: {why}");
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::Exec]));
    let id = runc::unique_id("sensor-kt");
    // The container's own process, exec'd by runc (busybox sh would run applets without exec).
    let ct =
        runc::Container::create(&id, &["/bin/echo", "in-container", "marker-x"]).expect("bundle");
    let out = ct.run(Duration::from_secs(30)).expect("runc run");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("in-container"),
        "{out:?}"
    );
    let ev = events
        .wait_for(WAIT, |e| {
            e.process.args.iter().any(|a| a == "marker-x") && e.process.name == "echo"
        })
        .unwrap_or_else(|| panic!("no exec from the container\n{}", agent.log_text()));
    let c = ev.container.expect("container attribution");
    assert_eq!(c.id, id);
    assert_eq!(c.runtime, "runc");
}
