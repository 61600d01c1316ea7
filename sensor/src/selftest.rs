//! `sensor selftest`: harmless, self-cleaning simulations of attack behaviour, and which of
//! them the running sensor detected. For operators validating a deployment.
//!
//! Every simulation works on files it creates under a private temp directory (or /dev/shm),
//! talks only to 127.0.0.1, and removes what it made. Detection is read from the agent's alert
//! log: an alert carrying one of the expected ATT&CK techniques, raised for a process the
//! simulation started.

use std::{
    collections::HashSet,
    io::Write,
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    alert::Alert,
    output::alert_log::{AlertFilter, read_recent},
};

#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("selftest setup failed ({what}): {source}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot read the alert log: {0}")]
    AlertLog(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: &'static str,
    pub expect: Vec<&'static str>,
    pub detected_by: Option<String>,
    pub pids: Vec<u32>,
}

struct Sim {
    name: &'static str,
    expect: &'static [&'static str],
    run: fn(&Path) -> Result<Vec<u32>, SelftestError>,
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> SelftestError {
    move |source| SelftestError::Setup { what, source }
}

fn run(cmd: &mut Command, what: &'static str) -> Result<Vec<u32>, SelftestError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(setup(what))?;
    let pid = child.id();
    let _ = child.wait();
    Ok(vec![pid])
}

fn shadow_read(_dir: &Path) -> Result<Vec<u32>, SelftestError> {
    // An unexpected program (a shell's `head`) reading the password hashes; output discarded.
    run(
        Command::new("/bin/sh")
            .arg("-c")
            .arg("head -c 1 /etc/shadow >/dev/null 2>&1; true"),
        "read /etc/shadow",
    )
}

fn exec_from_shm(_dir: &Path) -> Result<Vec<u32>, SelftestError> {
    let shm = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let bin = shm.join(format!("sensor-selftest-{}", std::process::id()));
    std::fs::copy("/bin/true", &bin).map_err(setup("copy a binary to /dev/shm"))?;
    let r = run(&mut Command::new(&bin), "exec from /dev/shm");
    let _ = std::fs::remove_file(&bin);
    r
}

fn memfd_exec(_dir: &Path) -> Result<Vec<u32>, SelftestError> {
    use std::os::fd::AsRawFd;
    let name = c"sensor-selftest";
    let fd =
        nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::empty()).map_err(|e| {
            SelftestError::Setup {
                what: "memfd_create",
                source: e.into(),
            }
        })?;
    let bytes = std::fs::read("/bin/true").map_err(setup("read /bin/true"))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(&bytes).map_err(setup("fill the memfd"))?;
    // Exec through /proc/self/fd, as fileless malware does.
    let path = format!("/proc/self/fd/{}", f.as_raw_fd());
    let r = run(&mut Command::new(&path), "exec from a memfd");
    drop(f);
    r
}

fn setuid_chmod(dir: &Path) -> Result<Vec<u32>, SelftestError> {
    let f = dir.join("setuid-test");
    std::fs::write(&f, b"").map_err(setup("create a file"))?;
    let r = run(Command::new("chmod").arg("4755").arg(&f), "chmod 4755");
    let _ = std::fs::remove_file(&f);
    r
}

fn socket_shell(_dir: &Path) -> Result<Vec<u32>, SelftestError> {
    // The reverse-shell shape: a shell whose stdin and stdout are a TCP socket (to ourselves,
    // on loopback); it runs `true` and exits.
    let l = TcpListener::bind("127.0.0.1:0").map_err(setup("listen on loopback"))?;
    let addr = l.local_addr().map_err(setup("listen on loopback"))?;
    let s = std::net::TcpStream::connect(addr).map_err(setup("connect on loopback"))?;
    let (_peer, _) = l.accept().map_err(setup("accept on loopback"))?;
    let s2 = s.try_clone().map_err(setup("dup socket"))?;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("true")
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(s)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(s2)))
        .stderr(Stdio::null())
        .spawn()
        .map_err(setup("spawn a shell"))?;
    let pid = child.id();
    let _ = child.wait();
    Ok(vec![pid])
}

fn encoded_payload(_dir: &Path) -> Result<Vec<u32>, SelftestError> {
    // `dHJ1ZQ==` is `true`.
    run(
        Command::new("/bin/sh")
            .arg("-c")
            .arg("echo dHJ1ZQ== | base64 -d | sh"),
        "base64 payload to a shell",
    )
}

fn cron_write(_dir: &Path) -> Result<Vec<u32>, SelftestError> {
    // A comment-only file in /etc/cron.d (runs nothing), removed right after.
    let target = Path::new("/etc/cron.d").join(format!("sensor-selftest-{}", std::process::id()));
    let r = run(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo '# sensor selftest' > {}", target.display())),
        "write /etc/cron.d",
    );
    let _ = std::fs::remove_file(&target);
    r
}

const SIMS: &[Sim] = &[
    Sim {
        name: "read /etc/shadow",
        expect: &["T1003.008"],
        run: shadow_read,
    },
    Sim {
        name: "exec from /dev/shm",
        expect: &["T1036.005", "T1059.004", "T1204.002", "T1620"],
        run: exec_from_shm,
    },
    Sim {
        name: "exec from a memfd (fileless)",
        expect: &["T1620", "T1055", "T1027"],
        run: memfd_exec,
    },
    Sim {
        name: "setuid bit via chmod",
        expect: &["T1548.001"],
        run: setuid_chmod,
    },
    Sim {
        name: "shell with socket stdio (reverse shell)",
        expect: &["T1059.004", "T1059"],
        run: socket_shell,
    },
    Sim {
        name: "base64 payload piped to a shell",
        expect: &["T1027", "T1140", "T1059.004"],
        run: encoded_payload,
    },
    Sim {
        name: "cron file written",
        expect: &["T1053.003"],
        run: cron_write,
    },
];

fn detected(alerts: &[Alert], sim: &Sim, pids: &HashSet<u32>) -> Option<String> {
    alerts
        .iter()
        .find(|a| {
            let ours = a.process.as_ref().is_some_and(|p| {
                pids.contains(&p.pid)
                    || pids.contains(&p.ppid)
                    || p.ancestry.iter().any(|x| pids.contains(&x.pid))
            });
            ours && a.mitre.iter().any(|t| {
                sim.expect.iter().any(|e| {
                    t == e || t.starts_with(&format!("{e}.")) || e.starts_with(&format!("{t}."))
                })
            })
        })
        .map(|a| a.rule.id.clone())
}

/// Run every simulation, wait up to `wait` for the agent's alerts, report.
pub fn run_all(alert_dir: &Path, wait: Duration) -> Result<Vec<Outcome>, SelftestError> {
    let dir = tempfile::Builder::new()
        .prefix("sensor-selftest-")
        .tempdir()
        .map_err(setup("temp dir"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(setup("temp dir"))?;
    let mut ran = Vec::new();
    for sim in SIMS {
        let pids = (sim.run)(dir.path()).unwrap_or_else(|e| {
            tracing::warn!(simulation = sim.name, error = %e, "simulation could not run");
            Vec::new()
        });
        ran.push((sim, pids));
    }
    let deadline = Instant::now() + wait;
    loop {
        let alerts = read_recent(alert_dir, 5000, &AlertFilter::default())
            .map_err(|e| SelftestError::AlertLog(e.to_string()))?
            .alerts;
        let outcomes: Vec<Outcome> = ran
            .iter()
            .map(|(sim, pids)| {
                let set: HashSet<u32> = pids.iter().copied().collect();
                Outcome {
                    name: sim.name,
                    expect: sim.expect.to_vec(),
                    detected_by: if set.is_empty() {
                        None
                    } else {
                        detected(&alerts, sim, &set)
                    },
                    pids: pids.clone(),
                }
            })
            .collect();
        if outcomes.iter().all(|o| o.detected_by.is_some()) || Instant::now() >= deadline {
            return Ok(outcomes);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
