//! Kernel tests: the real agent, real probes, real behaviour. Root only; run serially
//! (`cargo xtask test` passes `--test-threads=1`). Each waits for its event with a deadline.

use std::{
    ffi::OsString,
    net::{TcpListener, TcpStream},
    os::unix::{ffi::OsStringExt, fs::MetadataExt, fs::PermissionsExt},
    process::Command,
    time::{Duration, Instant},
};

use sensor::{
    api::EventFilter,
    event::{Kind, Outcome},
    health::DROP_RULE_ID,
};
use sensor_tests::{Agent, WAIT, kinds, require_root};

#[test]
fn probes_attach_and_report_failures_with_reasons() {
    if !require_root("probes_attach_and_report_failures_with_reasons") {
        return;
    }
    let agent = Agent::start(None);
    let s = agent.status();
    for p in [
        "sched_process_exec",
        "sched_process_fork",
        "sched_process_exit",
        "enter_openat",
        "exit_openat",
        "enter_connect",
        "exit_connect",
    ] {
        assert!(
            s.probes.attached.iter().any(|a| a == p),
            "{p} not attached: {s:?}"
        );
    }
    for (prog, why) in &s.probes.failed {
        assert!(!why.is_empty(), "{prog} failed without a reason");
    }
    assert_eq!(s.mode, "full");
    assert!(
        s.process_table_len > 10,
        "table not seeded: {}",
        s.process_table_len
    );
}

#[test]
fn exec_carries_args_parent_and_exe_identity() {
    if !require_root("exec_carries_args_parent_and_exe_identity") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::Exec]));
    let marker = format!("marker-{}", std::process::id());
    let out = Command::new("/bin/echo")
        .arg(&marker)
        .arg("second arg")
        .output()
        .unwrap();
    assert!(out.status.success());
    let ev = events
        .wait_for(WAIT, |e| e.process.args.get(1) == Some(&marker))
        .unwrap_or_else(|| panic!("no exec event\n{}", agent.log_text()));
    assert_eq!(ev.event.action, "exec");
    assert_eq!(
        ev.process.args,
        vec!["/bin/echo", marker.as_str(), "second arg"]
    );
    assert_eq!(ev.process.args_count, Some(3));
    assert_eq!(ev.process.executable.as_deref(), Some("/bin/echo"));
    assert_eq!(ev.process.name, "echo");
    let parent = ev.process.parent.as_ref().expect("parent");
    assert_eq!(parent.pid, std::process::id());
    let me = std::env::current_exe().unwrap();
    assert_eq!(
        parent.executable.as_deref(),
        Some(me.to_str().unwrap()),
        "parent exe from the seeded table"
    );
    let meta = std::fs::metadata("/bin/echo").unwrap();
    let exe = ev.process.exe.as_ref().expect("exe identity");
    assert_eq!(exe.inode, meta.ino());
    assert!(!exe.memfd && !exe.deleted);
    assert_eq!(ev.user.id, 0);
    assert!(ev.cgroup.id > 0);
    // The agent never reports itself.
    let own = agent.pid();
    let mut all = agent.subscribe(EventFilter::default());
    let _ = Command::new("/bin/true").status();
    let seen = all.drain(Duration::from_millis(500));
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|e| e.process.pid != own),
        "agent's own events leaked"
    );
}

#[test]
fn file_open_chmod_setuid_rename_unlink() {
    if !require_root("file_open_chmod_setuid_rename_unlink") {
        return;
    }
    let agent = Agent::start(None);
    let me = std::process::id();
    let mut events = agent.subscribe(EventFilter {
        kinds: vec![Kind::File],
        pid: Some(me),
        ..EventFilter::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe-target");
    let p = path.to_str().unwrap().to_owned();
    std::fs::write(&path, b"x").unwrap();
    let ev = events
        .wait_for(WAIT, |e| {
            e.file.as_ref().and_then(|f| f.path.as_deref()) == Some(&p)
        })
        .expect("open event");
    assert!(ev.event.action.starts_with("open"), "{}", ev.event.action);
    assert_eq!(ev.event.outcome, Some(Outcome::Success));
    let f = ev.file.as_ref().unwrap();
    assert!(
        f.flag_names.contains(&"O_CREAT".to_owned()),
        "{:?}",
        f.flag_names
    );
    assert!(f.flag_names.contains(&"O_WRONLY".to_owned()));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let ev = events
        .wait_for(WAIT, |e| e.event.action.contains("chmod"))
        .expect("chmod event");
    let f = ev.file.unwrap();
    assert_eq!(f.mode.as_deref(), Some("4755"), "setuid bit visible");
    assert_eq!(f.path.as_deref(), Some(p.as_str()));

    let renamed = dir.path().join("renamed");
    std::fs::rename(&path, &renamed).unwrap();
    let ev = events
        .wait_for(WAIT, |e| e.event.action.starts_with("rename"))
        .expect("rename event");
    let f = ev.file.unwrap();
    assert_eq!(f.path.as_deref(), Some(p.as_str()));
    assert_eq!(f.target_path.as_deref(), renamed.to_str());

    std::fs::remove_file(&renamed).unwrap();
    let ev = events
        .wait_for(WAIT, |e| e.event.action.starts_with("unlink"))
        .expect("unlink event");
    assert_eq!(ev.file.unwrap().path.as_deref(), renamed.to_str());

    // A failed open is reported with its outcome.
    let missing = dir.path().join("missing");
    assert!(std::fs::File::open(&missing).is_err());
    let ev = events
        .wait_for(WAIT, |e| {
            e.file.as_ref().and_then(|f| f.path.as_deref()) == missing.to_str()
        })
        .expect("failed open event");
    assert_eq!(ev.event.outcome, Some(Outcome::Failure));
}

#[test]
fn relative_paths_resolve_against_the_working_directory() {
    if !require_root("relative_paths_resolve_against_the_working_directory") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::File]));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "cd {d} && cd sub 2>/dev/null; mkdir -p sub && cd sub && : > ./rel-file"
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let want = format!("{d}/sub/rel-file");
    events
        .wait_for(WAIT, |e| {
            e.file.as_ref().and_then(|f| f.path.as_deref()) == Some(&want)
        })
        .unwrap_or_else(|| panic!("no open of {want}"));
}

#[test]
fn tcp_bind_listen_connect_accept_on_loopback() {
    if !require_root("tcp_bind_listen_connect_accept_on_loopback") {
        return;
    }
    let agent = Agent::start(None);
    let me = std::process::id();
    let mut events = agent.subscribe(EventFilter {
        kinds: vec![Kind::Network],
        pid: Some(me),
        ..EventFilter::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let port_is = |ep: &Option<sensor::event::Endpoint>| {
        ep.as_ref()
            .is_some_and(|e| e.ip.as_deref() == Some("127.0.0.1") && e.port == Some(port))
    };
    // The bind asked for port 0; the listen reports the port the kernel chose.
    let bind = events
        .wait_for(WAIT, |e| {
            e.event.action == "bind"
                && e.source
                    .as_ref()
                    .is_some_and(|s| s.ip.as_deref() == Some("127.0.0.1"))
        })
        .expect("bind event");
    assert_eq!(bind.network.unwrap().family.as_deref(), Some("ipv4"));
    events
        .wait_for(WAIT, |e| e.event.action == "listen" && port_is(&e.source))
        .expect("listen event carries the bound address");
    let connect = events
        .wait_for(WAIT, |e| {
            e.event.action == "connect" && port_is(&e.destination)
        })
        .expect("connect event");
    assert_eq!(connect.event.outcome, Some(Outcome::Success));
    let accept = events
        .wait_for(WAIT, |e| e.event.action.starts_with("accept"))
        .expect("accept event");
    let peer = accept.source.expect("peer address");
    assert_eq!(peer.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(peer.port, Some(client.local_addr().unwrap().port()));
    let _ = client.shutdown(std::net::Shutdown::Both);
}

#[test]
fn fork_and_exit_code() {
    if !require_root("fork_and_exit_code") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::Fork, Kind::Exit]));
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("exit 7")
        .spawn()
        .unwrap();
    let pid = child.id();
    assert_eq!(child.wait().unwrap().code(), Some(7));
    let fork = events
        .wait_for_or_seen(WAIT, |e| {
            e.event.action == "fork" && e.process.fork.as_ref().is_some_and(|f| f.child_pid == pid)
        })
        .unwrap_or_else(|seen| {
            let shown: Vec<String> = seen
                .iter()
                .map(|e| {
                    format!(
                        "{} pid {} fork {:?}",
                        e.event.action,
                        e.process.pid,
                        e.process.fork.as_ref().map(|f| f.child_pid)
                    )
                })
                .collect();
            panic!(
                "no fork event for child {pid} (test pid {}); lost {}; seen: {shown:?}; kernel: {:?}",
                std::process::id(),
                events.lost,
                agent.status().kernel
            )
        });
    assert_eq!(fork.process.pid, std::process::id());
    let exit = events
        .wait_for(WAIT, |e| e.event.action == "exit" && e.process.pid == pid)
        .expect("exit event");
    assert_eq!(exit.process.exit_code, Some(7));
    assert_eq!(exit.process.exit_signal, None);
}

#[test]
fn hostile_command_line_is_escaped_and_bounded() {
    if !require_root("hostile_command_line_is_escaped_and_bounded") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::Exec]));
    let marker = format!("hostile-{}", std::process::id());
    let huge = "A".repeat(100 * 1024);
    let invalid = OsString::from_vec(vec![b'x', 0xff, 0xfe, b'y']);
    let status = Command::new("/bin/true")
        .arg(&marker)
        .arg("line1\nline2 2026-01-01T00:00:00Z exec pid=1 fake")
        .arg("\x1b[2J\x1b[31mred\x1b]0;title\x07")
        .arg(&invalid)
        .arg(&huge)
        .status()
        .unwrap();
    assert!(status.success());
    let ev = events
        .wait_for(WAIT, |e| e.process.args.get(1) == Some(&marker))
        .expect("exec event");
    assert_eq!(ev.process.args_count, Some(6));
    assert!(
        ev.process.args_truncated,
        "100 KiB of args must be cut to the bound"
    );
    let total: usize = ev.process.args.iter().map(String::len).sum();
    assert!(
        total < 9000,
        "args bounded in the kernel, got {total} bytes"
    );
    assert_eq!(ev.process.args[4], "x\u{fffd}\u{fffd}y");

    // The human renderings: one line, no raw control characters.
    let out = agent.cli(&["events", "tail", "--kind", "exec", "-n", "1024"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(&marker)).collect();
    assert_eq!(lines.len(), 1, "one line for the hostile exec: {lines:?}");
    let line = lines[0];
    assert!(!line.contains('\x1b') && !line.contains('\x07') && !line.contains('\r'));
    assert!(line.contains("line1\\nline2"), "{line}");
    assert!(line.contains("\\e[2J"), "{line}");
    assert!(line.len() < 4096, "line is bounded: {}", line.len());
}

#[test]
fn overload_counts_every_drop_and_raises_the_drop_alert() {
    if !require_root("overload_counts_every_drop_and_raises_the_drop_alert") {
        return;
    }
    // A one-page ring, no wakeups and a slow drain: a burst must overflow it.
    let cfg = sensor::config::DEFAULT_TOML
        .replace("ring_buffer_bytes = 4194304", "ring_buffer_bytes = 4096")
        .replace("wakeup_bytes = 65536", "wakeup_bytes = 16777216")
        .replace("reader_tick_ms = 10", "reader_tick_ms = 200")
        .replace("dedup_window_ms = 1000", "dedup_window_ms = 0")
        .replace(
            "drop_alert_interval_secs = 10",
            "drop_alert_interval_secs = 1",
        );
    let state = tempfile::Builder::new()
        .prefix("sensor-ov-")
        .tempdir()
        .unwrap();
    // The counters are read from status.json under an ignored prefix: watching them must not
    // itself produce events (a status request over the socket is a connect).
    let cfg = cfg.replace(
        "ignored_prefixes = [",
        &format!(
            "ignored_prefixes = [\n  {:?},",
            state.path().display().to_string()
        ),
    );
    let agent = Agent::start_in(state, Some(&cfg));
    let read_status = || -> sensor::api::StatusReport {
        let text = std::fs::read(agent.state.path().join("status.json")).unwrap_or_default();
        serde_json::from_slice(&text).unwrap_or_default()
    };
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3000 {
        std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
    }
    // Per kind, seen = received + dropped exactly once nothing is in flight. Other processes
    // keep the machine busy, so each kind is checked at its own quiet moment. (Status reads
    // `received` before the kernel counters, so a silent loss can never look balanced.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut balanced = std::collections::BTreeSet::new();
    let mut last = read_status();
    while Instant::now() < deadline
        && (last.kernel.is_empty() || balanced.len() < last.kernel.len())
    {
        last = read_status();
        for (k, c) in &last.kernel {
            if c.seen == last.received.get(k).copied().unwrap_or(0) + c.dropped
                && (k != "file" || c.dropped > 0)
            {
                balanced.insert(k.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(balanced.len(), 6, "kinds that never balanced: {last:?}");
    let s = last;
    let file = s.kernel["file"];
    assert!(file.dropped > 0 && file.seen > file.dropped, "{file:?}");
    assert_eq!(s.losses.kernel_dropped["file"], file.dropped);

    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        if let Some(a) = agent
            .alerts()
            .into_iter()
            .find(|a| a.rule.id == DROP_RULE_ID)
        {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no drop alert\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let lost = alert.fields["lost"]["kernel_dropped"]["file"]
        .as_u64()
        .unwrap_or(0);
    assert!(lost > 0, "{alert:?}");
    assert!(alert.mitre.contains(&"T1562.001".to_owned()));
}

#[test]
fn fileless_and_deleted_executables_are_flagged() {
    if !require_root("fileless_and_deleted_executables_are_flagged") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::Exec]));
    // Exec a copy of /bin/true from a memfd, then from an unlinked file, by fd.
    let script = r#"
import os, shutil, sys
data = open("/bin/true", "rb").read()
fd = os.memfd_create("sensor-kt-memfd", 0)
os.write(fd, data)
pid = os.fork()
if pid == 0:
    os.execv(f"/proc/self/fd/{fd}", ["memfd-marker"])
os.waitpid(pid, 0)
path = sys.argv[1]
shutil.copy("/bin/true", path)
fd2 = os.open(path, os.O_RDONLY)
os.unlink(path)
pid = os.fork()
if pid == 0:
    os.execv(f"/proc/self/fd/{fd2}", ["deleted-marker"])
os.waitpid(pid, 0)
"#;
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("gone"))
        .status()
        .unwrap();
    assert!(status.success());
    let memfd = events
        .wait_for(WAIT, |e| {
            e.process.args.first().is_some_and(|a| a == "memfd-marker")
        })
        .expect("memfd exec");
    let x = memfd.process.exe.unwrap();
    // A memfd has no name on disk, so it is also "deleted" (nlink 0); memfd is what matters.
    assert!(x.memfd, "{x:?}");
    let deleted = events
        .wait_for(WAIT, |e| {
            e.process
                .args
                .first()
                .is_some_and(|a| a == "deleted-marker")
        })
        .expect("deleted exec");
    let x = deleted.process.exe.unwrap();
    assert!(x.deleted && !x.memfd, "{x:?}");
}

#[test]
fn privilege_changes_memfd_and_namespaces() {
    if !require_root("privilege_changes_memfd_and_namespaces") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::Privilege]));
    let script = r#"
import ctypes, os
os.memfd_create("kt-name", 0)
pid = os.fork()
if pid == 0:
    if ctypes.CDLL(None, use_errno=True).unshare(0x04000000) != 0:
        os._exit(1)
    os.setgid(65534)
    os.setuid(65534)
    os._exit(0)
os.waitpid(pid, 0)
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success());
    // The forked child's result is checked through its events below.
    let m = events
        .wait_for(WAIT, |e| e.event.action == "memfd_create")
        .expect("memfd_create event");
    assert_eq!(m.syscall.unwrap().strings, vec!["kt-name"]);
    let u = events
        .wait_for(WAIT, |e| e.event.action == "unshare")
        .expect("unshare event");
    assert_eq!(u.syscall.unwrap().args["flags"], 0x0400_0000);
    let g = events
        .wait_for(WAIT, |e| e.event.action == "setgid")
        .expect("setgid event");
    assert_eq!(g.syscall.unwrap().args["id"], 65534);
    let s = events
        .wait_for(WAIT, |e| e.event.action == "setuid")
        .expect("setuid event");
    assert_eq!(s.syscall.as_ref().unwrap().args["id"], 65534);
    assert_eq!(s.event.outcome, Some(Outcome::Success));
}

#[test]
fn exec_records_what_the_standard_fds_are() {
    if !require_root("exec_records_what_the_standard_fds_are") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(kinds(&[Kind::Exec]));
    // stdin and stdout a connected socket (the reverse-shell shape), stderr a pipe.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a2 = a.try_clone().unwrap();
    let status = Command::new("/bin/true")
        .arg("stdio-marker")
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(a)))
        .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(a2)))
        .stderr(std::process::Stdio::piped())
        .status()
        .unwrap();
    assert!(status.success());
    let ev = events
        .wait_for(WAIT, |e| {
            e.process.args.get(1).is_some_and(|a| a == "stdio-marker")
        })
        .expect("exec event");
    let io = ev.process.stdio.expect("stdio types");
    assert_eq!(
        (io.stdin.as_str(), io.stdout.as_str(), io.stderr.as_str()),
        ("socket", "socket", "pipe")
    );
    let status = Command::new("/bin/true")
        .arg("stdio-marker-2")
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let ev = events
        .wait_for(WAIT, |e| {
            e.process.args.get(1).is_some_and(|a| a == "stdio-marker-2")
        })
        .expect("exec event");
    assert_eq!(ev.process.stdio.unwrap().stdin, "char");
}
