//! `cargo xtask corpus`: (re)record the labelled corpus under `tests/corpus/`.
//!
//! Each scenario is a shell script (`tests/corpus/{attacks,benign}/scenarios/NAME.sh`, first
//! lines `# techniques: T....` for attacks). The script's shell is started blocked on a read,
//! a `sensor record --tree <its pid>` subscribes, then the script runs; the recording holds
//! exactly that process tree. Root only (it runs the real agent). Scenarios must be harmless:
//! loopback only, files under their own temp directory, everything removed at the end.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

struct AgentGuard(Child);

impl Drop for AgentGuard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc_kill(self.0.id() as i32, 15) };
        let _ = self.0.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn start_agent(bin: &Path, state: &Path) -> anyhow::Result<AgentGuard> {
    let child = Command::new(bin)
        .arg("--state-dir")
        .arg(state)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the agent")?;
    let guard = AgentGuard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ok = Command::new(bin)
            .arg("--state-dir")
            .arg(state)
            .arg("status")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Ok(guard);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("agent not ready within 30 s")
}

fn record_one(bin: &Path, state: &Path, script: &Path, out: &Path) -> anyhow::Result<usize> {
    let work = std::env::temp_dir().join(format!(
        "sensor-corpus-{}",
        script.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    // The shell waits for a line on stdin before running the script, so the recorder can
    // subscribe to its pid first.
    let mut shell = Command::new("/bin/sh")
        .arg("-c")
        .arg("read _go; exec /bin/sh \"$0\"")
        .arg(script)
        .current_dir(&work)
        // cargo's library path would add dozens of failed opens to every exec recorded.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the scenario shell")?;
    let mut rec = Command::new(bin)
        .arg("--state-dir")
        .arg(state)
        .args(["record", "--duration", "120", "--tree"])
        .arg(shell.id().to_string())
        .arg("--output")
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the recorder")?;
    let stderr = rec.stderr.take().context("recorder stderr")?;
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line)?;
    if line.trim() != "recording" {
        bail!("recorder did not start: {line}");
    }
    shell
        .stdin
        .take()
        .context("scenario stdin")?
        .write_all(b"go\n")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if shell.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = shell.kill();
            bail!("scenario {} ran past 90 s", script.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Late events (exits of children) reach the recorder within the reader's tick.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: SIGINT to our own child; `record` flushes and exits on it.
    unsafe { libc_kill(rec.id() as i32, 2) };
    rec.wait()?;
    let _ = std::fs::remove_dir_all(&work);
    let n = std::fs::read_to_string(out)?.lines().count();
    // Recordings are committed: gzip them (-n: no name or time, so re-recording the same
    // events gives the same bytes).
    let gz = out.with_extension("jsonl.gz");
    let file = std::fs::File::create(&gz)?;
    let status = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(out)
        .stdout(file)
        .status()
        .context("running gzip")?;
    if !status.success() {
        bail!("gzip failed for {}", out.display());
    }
    std::fs::remove_file(out)?;
    Ok(n)
}

pub fn run(bin: &Path, root: &Path, only: Option<&str>) -> anyhow::Result<()> {
    let state = tempfile_dir()?;
    let _agent = start_agent(bin, &state)?;
    let mut total = 0;
    for set in ["attacks", "benign"] {
        let dir = root.join("tests/corpus").join(set);
        let mut scripts: Vec<PathBuf> = std::fs::read_dir(dir.join("scenarios"))
            .with_context(|| format!("listing {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sh"))
            .collect();
        scripts.sort();
        for s in scripts {
            let name = s
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let out = dir.join(format!("{name}.jsonl"));
            let n =
                record_one(bin, &state, &s, &out).with_context(|| format!("scenario {name}"))?;
            eprintln!("{set}/{name}: {n} events");
            total += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&state);
    eprintln!("recorded {total} scenarios");
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("sensor-corpus-state-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
