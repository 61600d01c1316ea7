//! Engine tests over hand-built events: learning, stability, each anomaly type with its
//! explanation, modes, versions and the store.

use crate::{
    config::BaselineConfig,
    event::{
        Cgroup, Endpoint, Event, EventMeta, ExeInfo, File, Kind, Parent, Process, Syscall, User,
    },
};

use super::{Command, Engine, Reply, apply, model::Mode, store::Store};

/// A bare event of `kind` at t = 0 (1970, 00h UTC).
pub(crate) fn event(kind: Kind, action: &str) -> Event {
    Event {
        timestamp: "1970-01-01T00:00:00.000000000Z".into(),
        event: EventMeta {
            kind,
            action: action.into(),
            outcome: None,
            sequence: 0,
            boot_ns: 0,
        },
        process: Process {
            pid: 100,
            tid: 100,
            name: "app".into(),
            executable: Some("/usr/bin/app".into()),
            ..Process::default()
        },
        user: User::default(),
        container: None,
        service: None,
        cgroup: Cgroup::default(),
        file: None,
        source: None,
        destination: None,
        network: None,
        syscall: None,
    }
}

/// Events of the workload `/usr/bin/app` (pid 100 under sshd → bash), at `t` seconds.
struct Gen;

impl Gen {
    fn at(mut ev: Event, t: u64) -> Event {
        ev.event.boot_ns = t * 1_000_000_000 + 1;
        ev.timestamp = crate::alert::format_timestamp(
            time::OffsetDateTime::from_unix_timestamp(t as i64).unwrap(),
        );
        ev
    }

    fn root(t: u64) -> Event {
        let mut ev = event(Kind::Exec, "exec");
        ev.process.parent = Some(Parent {
            pid: 20,
            name: None,
            executable: Some("/usr/bin/bash".into()),
        });
        ev.process.ancestry = vec![Parent {
            pid: 10,
            name: None,
            executable: Some("/usr/sbin/sshd".into()),
        }];
        ev.process.args = vec!["app".into(), "--serve".into()];
        ev.process.exe = Some(ExeInfo {
            inode: 42,
            device: 1,
            memfd: false,
            deleted: false,
        });
        Self::at(ev, t)
    }

    fn child(pid: u32, exe: &str, args: &[&str], t: u64) -> Event {
        let mut ev = event(Kind::Exec, "exec");
        ev.process.pid = pid;
        ev.process.tid = pid;
        ev.process.executable = Some(exe.into());
        ev.process.args = args.iter().map(|s| s.to_string()).collect();
        ev.process.parent = Some(Parent {
            pid: 100,
            name: None,
            executable: Some("/usr/bin/app".into()),
        });
        Self::at(ev, t)
    }

    fn open(path: &str, flags: u64, t: u64) -> Event {
        let mut ev = event(Kind::File, "openat");
        ev.file = Some(File {
            path: Some(path.into()),
            flags: Some(flags),
            ..File::default()
        });
        Self::at(ev, t)
    }

    fn connect(ip: &str, port: u16, t: u64) -> Event {
        let mut ev = event(Kind::Network, "connect");
        ev.destination = Some(Endpoint {
            ip: Some(ip.into()),
            port: Some(port),
            address: None,
        });
        Self::at(ev, t)
    }

    fn setuid(uid: u32, t: u64) -> Event {
        let mut ev = event(Kind::Privilege, "setuid");
        let mut args = serde_json::Map::new();
        args.insert("id".into(), uid.into());
        ev.syscall = Some(Syscall {
            name: "setuid".into(),
            ret: 0,
            args,
            strings: vec![],
        });
        Self::at(ev, t)
    }
}

const KEY: &str = "exe:/usr/bin/app@0";

fn cfg() -> BaselineConfig {
    BaselineConfig {
        stable_after_secs: 7200,
        min_events: 50,
        time_min_span_secs: 3600,
        volume_min_minutes: 5,
        ..BaselineConfig::default()
    }
}

/// Two hours of normal life, from 10:00 to 12:00 UTC on day one: a health check every
/// minute, config reads, a backend connection, a helper program.
fn normal(start: u64, minutes: u64) -> Vec<Event> {
    let mut out = vec![Gen::root(start)];
    for m in 0..minutes {
        let t = start + m * 60 + 1;
        out.push(Gen::open("/etc/app/app.conf", 0, t));
        out.push(Gen::open(&format!("/proc/{}/stat", 1000 + m), 0, t));
        out.push(Gen::open(
            &format!("/var/log/app/{}.log", 20240101 + m),
            0o101,
            t,
        ));
        out.push(Gen::connect("10.0.0.5", 5432, t + 1));
        out.push(Gen::child(
            200 + m as u32,
            "/usr/bin/curl",
            &["curl", "-s", &format!("http://127.0.0.1:{}/health", 8080)],
            t + 2,
        ));
    }
    out
}

const DAY1_10H: u64 = 36_000;
/// Day two, 10:10 UTC: inside the learned hours.
const DAY2: u64 = DAY1_10H + 86_400 + 600;

fn learned() -> Engine {
    let mut e = Engine::new(cfg());
    let mut alerts = Vec::new();
    for ev in normal(DAY1_10H, 120) {
        e.observe(&ev, &mut alerts);
    }
    e.tick(DAY1_10H as i64 + 120 * 60 + 3600);
    assert!(alerts.is_empty(), "learning raises nothing: {alerts:?}");
    assert_eq!(e.get(KEY).unwrap().mode, Mode::Monitoring);
    e
}

fn one(e: &mut Engine, ev: Event) -> Vec<crate::alert::Alert> {
    let mut out = Vec::new();
    e.observe(&ev, &mut out);
    out
}

#[test]
fn learns_then_stays_quiet_on_more_of_the_same() {
    let mut e = learned();
    let b = e.get(KEY).unwrap();
    assert!(
        b.model.file_read.contains("/proc/*/stat"),
        "{:?}",
        b.model.file_read
    );
    assert!(b.model.file_write.contains("/var/log/app/*.log"));
    assert!(b.model.peers.contains("10.0.0.5:5432"));
    assert!(b.model.executables.contains("/usr/bin/curl"));
    assert!(b.model.edges.contains("/usr/bin/app → /usr/bin/curl"));
    let mut alerts = Vec::new();
    for ev in normal(DAY2, 30) {
        e.observe(&ev, &mut alerts);
    }
    assert!(alerts.is_empty(), "{alerts:?}");
}

fn field<'a>(a: &'a crate::alert::Alert, k: &str) -> &'a serde_json::Value {
    &a.fields[k]
}

#[test]
fn a_new_shell_is_an_explained_high_anomaly() {
    let mut e = learned();
    let t = DAY2;
    let a = one(&mut e, Gen::child(900, "/bin/sh", &["sh", "-c", "id"], t));
    assert_eq!(a.len(), 1, "{a:?}");
    let a = &a[0];
    assert_eq!(a.rule.id, "sensor.anomaly.unusual_command_sequence");
    assert!(
        a.severity >= crate::alert::Severity::High,
        "{:?}",
        a.severity
    );
    assert_eq!(a.mitre, vec!["T1059.004"]);
    let c = &field(a, "anomaly.components")[0];
    assert_eq!(c["feature"], "executables");
    assert_eq!(c["value"], "/bin/sh");
    assert_eq!(c["observations"], 121);
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("not among the 2 programs learned from 121 execs over 1h59m"),
        "{c}"
    );
    assert_eq!(field(a, "workload"), KEY);
    // The same deviation within the re-alert window is counted, not alerted again.
    assert!(
        one(
            &mut e,
            Gen::child(901, "/bin/sh", &["sh", "-c", "id"], t + 5)
        )
        .is_empty()
    );
    assert_eq!(e.stats.suppressed, 1);
    let b = e.get(KEY).unwrap();
    assert_eq!(b.deviations[0].seen.n, 2);
    // Its children are the workload's too: what the shell runs is new as well.
    let mut ev = Gen::child(902, "/usr/bin/nc", &["nc", "1.2.3.4", "4444"], t + 6);
    ev.process.parent = Some(Parent {
        pid: 900,
        name: None,
        executable: Some("/bin/sh".into()),
    });
    let a = one(&mut e, ev);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].mitre, vec!["T1059"]);
}

#[test]
fn network_file_and_privilege_deviations_are_typed() {
    let mut e = learned();
    let t = DAY2;
    let a = one(&mut e, Gen::connect("203.0.113.9", 4444, t));
    assert_eq!(a[0].rule.id, "sensor.anomaly.abnormal_network_activity");
    assert_eq!(a[0].mitre, vec!["T1571"]);
    assert!(a[0].severity >= crate::alert::Severity::Medium);
    assert!(
        a[0].message.contains("on a port never used"),
        "{}",
        a[0].message
    );
    // A known port to a new peer weighs less.
    let a = one(&mut e, Gen::connect("10.0.0.6", 5432, t));
    assert_eq!(a[0].mitre, vec!["T1071"]);
    assert_eq!(a[0].fields["anomaly.score"], 30.0);

    let a = one(&mut e, Gen::open("/etc/shadow", 0, t));
    assert_eq!(a[0].rule.id, "sensor.anomaly.suspicious_file_access");
    assert_eq!(a[0].mitre, vec!["T1552.001"]);
    assert!(a[0].severity >= crate::alert::Severity::Medium);
    // A new ordinary file is below the alert threshold: counted only.
    assert!(one(&mut e, Gen::open("/usr/share/app/extra.txt", 0, t)).is_empty());
    assert_eq!(e.stats.below_threshold, 1);

    let a = one(&mut e, Gen::setuid(0, t));
    assert_eq!(a[0].rule.id, "sensor.anomaly.privilege_escalation_attempt");
    assert_eq!(a[0].mitre, vec!["T1548"]);
}

#[test]
fn bursts_and_unseen_hours_are_anomalies() {
    let mut e = learned();
    // Same hour next day, a burst of execs in one minute (learned max 1/min, floor 30).
    let t = DAY1_10H + 86_400 + 30;
    let mut alerts = Vec::new();
    for i in 0..40 {
        e.observe(
            &Gen::child(
                3000 + i,
                "/usr/bin/curl",
                &["curl", "-s", "http://127.0.0.1:8080/health"],
                t,
            ),
            &mut alerts,
        );
    }
    assert_eq!(alerts.len(), 1, "one alert per minute: {alerts:?}");
    assert_eq!(alerts[0].rule.id, "sensor.anomaly.volume_anomaly");
    let reason = alerts[0].fields["anomaly.components"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.starts_with("31 execs in one minute; learned max 2/min"),
        "{reason}"
    );

    // 03:00 UTC: never active in 09h-13h-only history.
    let a = one(
        &mut e,
        Gen::open("/etc/app/app.conf", 0, 3 * 3600 + 2 * 86_400),
    );
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].rule.id, "sensor.anomaly.time_anomaly");
    assert!(a[0].message.contains("03h UTC"), "{}", a[0].message);
}

#[test]
fn young_baselines_score_lower() {
    let mut e = Engine::new(BaselineConfig {
        min_events: 3,
        stable_quiet_events: 3,
        ..cfg()
    });
    let mut out = Vec::new();
    for ev in normal(DAY1_10H, 2) {
        e.observe(&ev, &mut out);
    }
    assert_eq!(e.get(KEY).unwrap().mode, Mode::Monitoring);
    // 70 points at full confidence; three execs of history scale it below the alert line.
    let a = one(&mut e, Gen::child(900, "/bin/sh", &["sh"], DAY1_10H + 300));
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(e.stats.below_threshold, 1);
}

#[test]
fn a_changed_binary_starts_a_new_version() {
    let mut e = learned();
    let mut ev = Gen::root(DAY2);
    ev.process.exe.as_mut().unwrap().inode = 43;
    let a = one(&mut e, ev);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].rule.id, "sensor.baseline.relearn");
    let b = e.get(KEY).unwrap();
    assert_eq!((b.version, b.mode), (2, Mode::Learning));
    let ch = e.take_changes();
    assert_eq!(ch.archived.len(), 1);
    assert_eq!(ch.archived[0].version, 1);
}

#[test]
fn sessions_are_not_learned_and_ignore_globs_hold() {
    let mut e = Engine::new(BaselineConfig {
        ignore: vec!["exe:/usr/bin/app@*".into()],
        ..cfg()
    });
    let mut bash = event(Kind::Exec, "exec");
    bash.process.executable = Some("/usr/bin/bash".into());
    bash.process.parent = Some(Parent {
        pid: 10,
        name: None,
        executable: Some("/usr/sbin/sshd".into()),
    });
    let mut out = Vec::new();
    e.observe(&bash, &mut out);
    e.observe(&Gen::root(0), &mut out);
    assert!(e.is_empty());
    assert_eq!((e.stats.sessions, e.stats.untracked), (1, 1));
}

#[test]
fn commands_and_the_store_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baselines.db");
    let mut store = Store::open(&path, 2).unwrap();
    let mut e = learned();
    let now = DAY1_10H as i64 + 5 * 3600;
    let r = apply(&mut e, Some(&mut store), Command::List, now);
    let Reply::List(l) = r else { panic!("{r:?}") };
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].mode, Mode::Monitoring);
    assert!(l[0].values >= 6);

    let r = apply(
        &mut e,
        Some(&mut store),
        Command::Freeze {
            workload: KEY.into(),
        },
        now,
    );
    assert!(matches!(r, Reply::Done(_)), "{r:?}");
    let Reply::Baseline(exported) = apply(
        &mut e,
        Some(&mut store),
        Command::Export {
            workload: KEY.into(),
        },
        now,
    ) else {
        panic!()
    };
    assert_eq!(exported.mode, Mode::Frozen);

    // Reset archives version 1; diff compares against it.
    apply(
        &mut e,
        Some(&mut store),
        Command::Reset {
            workload: KEY.into(),
        },
        now,
    );
    let mut out = Vec::new();
    e.observe(&Gen::open("/etc/app/other.conf", 0, now as u64), &mut out);
    apply(&mut e, Some(&mut store), Command::List, now);
    let Reply::Diff(d) = apply(
        &mut e,
        Some(&mut store),
        Command::Diff {
            workload: KEY.into(),
            version: None,
            against: None,
        },
        now,
    ) else {
        panic!()
    };
    assert_eq!(d.from, "version 1");
    let fr = d
        .features
        .iter()
        .find(|f| f.feature == "file_read")
        .unwrap();
    assert_eq!(fr.added, vec!["/etc/app/other.conf"]);
    assert!(fr.removed.contains(&"/etc/app/app.conf".to_owned()));

    // Import the edited export: it becomes the current, frozen version 3.
    let mut edited = (*exported).clone();
    edited.model.executables.items.remove("/usr/bin/curl");
    let r = apply(
        &mut e,
        Some(&mut store),
        Command::Import {
            baseline: Box::new(edited),
        },
        now,
    );
    assert_eq!(
        r,
        Reply::Done(format!("imported {KEY} as version 3 (frozen)"))
    );
    drop(store);

    // A restart sees the same.
    let store = Store::open(&path, 2).unwrap();
    let (loaded, problems) = store.load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(loaded.len(), 1);
    assert_eq!((loaded[0].version, loaded[0].mode), (3, Mode::Frozen));
    assert!(!loaded[0].model.executables.contains("/usr/bin/curl"));
    let versions = store.versions(KEY).unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );

    // Errors are replies, not panics.
    let mut e2 = Engine::new(cfg());
    for cmd in [
        Command::Show {
            workload: "exe:/nope@0".into(),
        },
        Command::Freeze {
            workload: "nope".into(),
        },
        Command::Learn {
            workload: "pod:x".into(),
            for_secs: None,
        },
        Command::Diff {
            workload: "exe:/nope@0".into(),
            version: None,
            against: None,
        },
    ] {
        assert!(matches!(apply(&mut e2, None, cmd, now), Reply::Error(_)));
    }
}

#[test]
fn foreign_and_corrupt_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not sqlite at all, just some bytes ....................................................").unwrap();
    let e = Store::open(&junk, 1).err().unwrap().to_string();
    assert!(
        e.contains("damaged") || e.contains("not a baseline database"),
        "{e}"
    );

    let other = dir.path().join("other.db");
    let c = rusqlite::Connection::open(&other).unwrap();
    c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(c);
    let e = Store::open(&other, 1).err().unwrap().to_string();
    assert!(e.contains("not a baseline database"), "{e}");

    // A row that no longer parses is skipped and named; the rest load.
    let good = dir.path().join("good.db");
    let mut s = Store::open(&good, 1).unwrap();
    let mut e = learned();
    s.save(&e.take_changes(), 0).unwrap();
    s.conn_for_tests()
        .execute(
            "INSERT INTO baselines VALUES ('exe:/x@0', 1, 'learning', 0, '{broken')",
            [],
        )
        .unwrap();
    let (ok, problems) = s.load().unwrap();
    assert_eq!(ok.len(), 1);
    assert!(
        problems[0].starts_with("exe:/x@0: unreadable baseline"),
        "{problems:?}"
    );
}

#[test]
fn imports_are_checked() {
    assert!(
        super::parse_export("{", "f.json")
            .unwrap_err()
            .starts_with("f.json:1:")
    );
    let mut e = learned();
    let mut b = e.get(KEY).unwrap().clone();
    b.format = 99;
    let r = apply(
        &mut e,
        None,
        Command::Import {
            baseline: Box::new(b),
        },
        0,
    );
    assert!(matches!(r, Reply::Error(m) if m.contains("format 99")));
}

/// Memory per learned workload: the recorded webapp workload's baseline, cloned into 1000
/// workloads, against the process's resident size. `cargo test --release -p sensor --lib
/// measure_memory_per_workload -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test"]
fn measure_memory_per_workload() {
    use std::io::Read;
    fn rss_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus/workload/webapp.jsonl.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut e = Engine::new(BaselineConfig {
        roots: vec!["/usr/bin/python3*".into()],
        ..BaselineConfig::default()
    });
    let mut out = Vec::new();
    for l in text.lines() {
        e.observe(&serde_json::from_str(l).unwrap(), &mut out);
    }
    let b = e
        .get("exe:/usr/bin/python3 /work/main/tests/workload/webapp.py@root")
        .unwrap()
        .clone();
    let json = serde_json::to_string(&b).unwrap().len();
    const N: usize = 1000;
    let before = rss_kib();
    let mut big = Engine::new(BaselineConfig::default());
    for i in 0..N {
        let mut c = b.clone();
        c.workload.name = format!("/usr/bin/python3-{i}");
        big.import(c).unwrap();
    }
    let _ = big.take_changes();
    let after = rss_kib();
    eprintln!(
        "one learned workload: {} values, {} syscalls, {} bytes as JSON; {} workloads: +{} KiB RSS = {:.1} KiB each",
        b.model.size(),
        b.model.syscalls.len(),
        json,
        N,
        after - before,
        (after - before) as f64 / N as f64
    );
    assert_eq!(big.len(), N);
    // A large one: 1000 learned paths (typical lengths) and 120 syscalls.
    let mut large = b.clone();
    for i in 0..1000 {
        large.model.file_read.learn(
            &format!("/usr/lib/python3/dist-packages/pkg{i}/module_{i}.py"),
            0,
            4096,
            0,
        );
    }
    large.model.syscalls.extend(0..120);
    let before = rss_kib();
    let mut big = Engine::new(BaselineConfig::default());
    for i in 0..100 {
        let mut c = large.clone();
        c.workload.name = format!("/usr/bin/python3-{i}");
        big.import(c).unwrap();
    }
    let _ = big.take_changes();
    let after = rss_kib();
    eprintln!(
        "a large workload: {} values, {} bytes as JSON; 100 of them: +{} KiB RSS = {:.1} KiB each",
        large.model.size(),
        serde_json::to_string(&large).unwrap().len(),
        after - before,
        (after - before) as f64 / 100.0
    );
}

#[test]
fn a_cgroup_is_credited_to_the_workload_last_seen_in_it() {
    let mut e = Engine::new(cfg());
    let mut ev = event(Kind::File, "openat");
    ev.cgroup.id = 77;
    ev.container = Some(crate::event::Container {
        id: "abc123".into(),
        runtime: "runc".into(),
        pod_uid: None,
        name: None,
        image: None,
    });
    let mut out = Vec::new();
    e.observe(&ev, &mut out);
    // The runtime's state became readable: the same container now has its image name.
    ev.container.as_mut().unwrap().image = Some("nginx:1.25".into());
    e.observe(&ev, &mut out);
    let targets = e.learning_targets();
    let cg = |w: &str| {
        targets
            .iter()
            .find(|t| t.workload == w)
            .unwrap()
            .cgroups
            .clone()
    };
    assert_eq!(cg("container:nginx:1.25"), vec![77]);
    assert!(cg("container:abc123").is_empty());
}

#[test]
fn file_opens_are_checked_only_with_file_enforcement_and_kernel_denials_hold_promotion() {
    let mut e = learned();
    let now = DAY2 as i64;
    e.set_stage(KEY, Some(crate::baseline::model::Stage::Shadow), true, now)
        .unwrap();
    let would = |alerts: &[crate::alert::Alert]| {
        alerts
            .iter()
            .filter(|a| a.rule.id == "sensor.profile.would_deny")
            .map(|a| {
                (
                    field(a, "profile.feature")
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    field(a, "profile.value").as_str().unwrap_or("").to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    // Without the kernel's file hook, files are not part of the profile check.
    assert!(would(&one(&mut e, Gen::open("/etc/passwd", 0, DAY2))).is_empty());
    e.set_file_enforcement(true);
    // Learned paths (and a read of a path learned as written, and what every process
    // reads) are inside; a new read and a new write are out, each with what and why.
    for (path, flags) in [
        ("/etc/app/app.conf", 0),
        ("/proc/4242/stat", 0),
        ("/var/log/app/20240101.log", 0),
        ("/proc/self/status", 0),
        ("/etc/ld.so.cache", 0),
    ] {
        let a = one(&mut e, Gen::open(path, flags, DAY2 + 1));
        assert!(would(&a).is_empty(), "{path}: {a:?}");
    }
    let a = one(&mut e, Gen::open("/etc/passwd", 0, DAY2 + 2));
    assert_eq!(
        would(&a),
        vec![("file_read".to_owned(), "/etc/passwd".to_owned())]
    );
    assert!(
        a[0].message.contains("open of /etc/passwd for reading"),
        "{}",
        a[0].message
    );
    let a = one(&mut e, Gen::open("/etc/app/app.conf", 0o1, DAY2 + 3));
    assert_eq!(
        would(&a),
        vec![("file_write".to_owned(), "/etc/app/app.conf".to_owned())]
    );
    // Readiness: quiet checks count up; a kernel file refusal restarts them, even with no
    // event to tell what it was.
    for i in 0..5 {
        one(&mut e, Gen::open("/etc/app/app.conf", 0, DAY2 + 10 + i));
    }
    let since = |e: &Engine| {
        e.get(KEY)
            .and_then(|b| b.enforcement.as_ref())
            .map(|x| (x.checked_since_violation, x.last_violation))
            .unwrap()
    };
    assert_eq!(since(&e).0, 5);
    let mut k = crate::probes::enforce::EnforceCounts::default();
    e.set_kernel_counts(KEY, k, now + 20);
    assert_eq!(
        since(&e).0,
        5,
        "the first reading is a baseline, not a violation"
    );
    k.exec_would_deny = 3;
    e.set_kernel_counts(KEY, k, now + 21);
    assert_eq!(
        since(&e).0,
        5,
        "exec and connect are counted from their events"
    );
    k.file_would_deny = 1;
    e.set_kernel_counts(KEY, k, now + 22);
    assert_eq!(since(&e), (0, Some(now + 22)));
}
