//! runc containers for kernel tests: a throwaway OCI bundle (a static busybox rootfs and a
//! `runc spec` config edited for this host), run in the foreground or detached, and torn down on
//! drop.
//!
//! The default runc root (/run/runc) is kept on purpose: while a container runs,
//! /run/runc/<id>/state.json exists, as it does on a real host, and the sensor may read it. The
//! default cgroup placement is kept too, so a container's cgroup v2 path is `/<id>`, the layout
//! the sensor attributes to runc.
//!
//! Every runc invocation has a deadline and no stdin, so a wedged runc fails a test instead of
//! hanging it, and nothing ever waits for a terminal (CI has none).

use std::{
    ffi::OsStr,
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const RUNC: &str = "runc";
/// busybox-static: one binary that needs no loader or libraries, so a rootfs holding just it
/// (plus applet symlinks) is complete.
const BUSYBOX: &str = "/bin/busybox";
/// Applets linked into the rootfs's /bin, enough for the shell scripts tests run inside.
const APPLETS: &[&str] = &["sh", "echo", "cat", "sleep", "ls", "wget", "nc", "true"];
/// runc's bookkeeping commands (spec, state, kill, delete, list) take well under a second here.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// `runc run -d` returns once the container's process has started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// After a foreground run times out and its container is killed, how long runc gets to notice
/// and exit on its own before it is killed too.
const RUN_GRACE: Duration = Duration::from_secs(5);
/// Where a detached container's stdout and stderr (and runc's own errors) go, in the bundle.
const DETACHED_LOG: &str = "detached.log";

/// Whether runc containers can run here: root, a working runc, a static busybox, and a probe
/// container that actually runs. Checked once per test binary. `Err` says why not, for a
/// `SKIP` line.
pub fn available() -> Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED.get_or_init(check_available).clone()
}

fn check_available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("runc containers need root".into());
    }
    match runc_cmd(["--version"]) {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Err(format!("`runc --version` failed: {}", failure(&out))),
        Err(e) => return Err(format!("runc is not usable (apt-get install runc): {e:#}")),
    }
    let elf = fs::read(BUSYBOX)
        .map_err(|e| format!("cannot read {BUSYBOX} (apt-get install busybox-static): {e}"))?;
    if !is_static_elf(&elf) {
        return Err(format!(
            "{BUSYBOX} is not a static x86-64 ELF, so it cannot run alone in a rootfs \
             (apt-get install busybox-static)"
        ));
    }
    // Only a real run proves the cgroup setup works (crun, for one, fails on this host's
    // hybrid cgroups although its binary runs fine).
    let probe = Container::create(&unique_id("sensor-runc-probe"), &["true"])
        .map_err(|e| format!("cannot make a probe bundle: {e:#}"))?;
    match probe.run(START_TIMEOUT) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("a probe container failed: {}", failure(&out))),
        Err(e) => Err(format!("a probe container failed: {e:#}")),
    }
}

/// A container id no other test, concurrent test binary, or earlier run uses: the prefix, this
/// process's pid, a per-process counter, and the time (pids are reused across runs, and a
/// killed run may leave its containers behind). Only characters valid in runc ids and cgroup
/// names, and no dots, so the sensor never mistakes it for a systemd unit.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{}-{n}-{micros:x}", std::process::id())
}

/// Ids of the containers runc knows about (in its default root).
pub fn list_ids() -> anyhow::Result<Vec<String>> {
    let out = runc_ok(["list", "--format", "json"])?;
    // runc prints `null`, not `[]`, when there are none.
    let list: Value = serde_json::from_slice(&out.stdout).context("parse `runc list` output")?;
    let Some(list) = list.as_array() else {
        return Ok(Vec::new());
    };
    Ok(list
        .iter()
        .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

/// One runc container and its bundle. Dropping it force-deletes the container (whatever state
/// it is in) and then removes the bundle.
pub struct Container {
    id: String,
    bundle: tempfile::TempDir,
}

impl Container {
    /// A fresh bundle for `args` (run as pid 1 of the container; a bare name is looked up in
    /// the rootfs's /bin). Nothing runs until [`Container::run`] or
    /// [`Container::start_detached`].
    pub fn create(id: &str, args: &[&str]) -> anyhow::Result<Container> {
        if !is_valid_id(id) {
            bail!("invalid runc container id {id:?}: use letters, digits, `_`, `+`, `-`, `.`");
        }
        if args.is_empty() {
            bail!("a container needs a command to run");
        }
        let bundle = tempfile::Builder::new()
            .prefix("sensor-runc-")
            .tempdir()
            .context("create bundle directory")?;
        let container = Container {
            id: id.to_owned(),
            bundle,
        };
        container.make_rootfs()?;
        let bundle_dir = container.bundle().as_os_str();
        runc_ok([OsStr::new("spec"), OsStr::new("--bundle"), bundle_dir])?;
        container.edit_config(|config| configure(config, args))?;
        Ok(container)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bundle directory (config.json and rootfs/).
    pub fn bundle(&self) -> &Path {
        self.bundle.path()
    }

    /// The rootfs, to put files into before starting.
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// Change the OCI config before starting, e.g. to set `linux.cgroupsPath` or a seccomp
    /// profile.
    pub fn edit_config(
        &self,
        edit: impl FnOnce(&mut Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let path = self.bundle().join("config.json");
        let text = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let mut config: Value =
            serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))?;
        edit(&mut config)?;
        let text = serde_json::to_vec_pretty(&config).context("serialize config.json")?;
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    }

    /// `runc run` in the foreground, stdin from /dev/null: the container's exit status and
    /// everything it (and runc) wrote. runc removes the container when it exits. Past
    /// `timeout` the container is killed and deleted, and this is an error carrying what was
    /// written so far.
    pub fn run(&self, timeout: Duration) -> anyhow::Result<Output> {
        let mut cmd = Command::new(RUNC);
        cmd.arg("run")
            .arg("--bundle")
            .arg(self.bundle())
            .arg(&self.id);
        let mut runc = Spawned::spawn(cmd)?;
        if let Some(status) = runc.wait_until(Instant::now() + timeout)? {
            return Ok(runc.output(status));
        }
        // Kill the container rather than runc: runc then reaps it and cleans up as usual.
        // Killing runc first could leave the container running without its parent.
        let _ = self.kill(Signal::SIGKILL);
        let status = match runc.wait_until(Instant::now() + RUN_GRACE)? {
            Some(status) => status,
            None => runc.kill()?,
        };
        // No-op when runc cleaned up; otherwise this ends whatever still holds the output pipes,
        // which reading them to the end below waits for.
        let _ = self.delete_force();
        let out = runc.output(status);
        Err(anyhow!(
            "container {} still running after {timeout:?}; killed it. stdout: {:?} stderr: {:?}",
            self.id,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        ))
    }

    /// `runc run -d`: returns once the container's process has started, and leaves it running
    /// until [`Container::kill`], [`Container::delete_force`] or drop. Its stdout and stderr go
    /// to a file (see [`Container::detached_log`]): a pipe would be held open by the container
    /// and never reach end of file.
    pub fn start_detached(&self) -> anyhow::Result<()> {
        let log_path = self.bundle().join(DETACHED_LOG);
        let log = fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicate log file handle")?;
        let mut runc = Command::new(RUNC)
            .arg("run")
            .arg("--detach")
            .arg("--bundle")
            .arg(self.bundle())
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .context("spawn `runc run --detach`")?;
        let status = match wait_until(&mut runc, Instant::now() + START_TIMEOUT)? {
            Some(status) => status,
            None => {
                let _ = runc.kill();
                let _ = runc.wait();
                let _ = self.delete_force();
                bail!(
                    "`runc run --detach {}` did not return within {START_TIMEOUT:?}: {}",
                    self.id,
                    self.detached_log()
                );
            }
        };
        if !status.success() {
            // runc may have got as far as creating the container.
            let _ = self.delete_force();
            bail!(
                "`runc run --detach {}` failed ({status}): {}",
                self.id,
                self.detached_log()
            );
        }
        Ok(())
    }

    /// What a detached container (and runc starting it) has written so far.
    pub fn detached_log(&self) -> String {
        fs::read(self.bundle().join(DETACHED_LOG))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `runc state`: the OCI state (id, pid, status, bundle, ...) as runc reports it.
    pub fn state(&self) -> anyhow::Result<Value> {
        let out = runc_ok(["state", &self.id])?;
        serde_json::from_slice(&out.stdout).context("parse `runc state` output")
    }

    /// Host pid of the container's init (its first process), while it exists (detached).
    pub fn init_pid(&self) -> anyhow::Result<u32> {
        let state = self.state()?;
        let status = state.get("status").and_then(Value::as_str).unwrap_or("?");
        if status == "stopped" {
            bail!("container {} has stopped", self.id);
        }
        state
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 0)
            .ok_or_else(|| anyhow!("no init pid in `runc state {}`: {state}", self.id))
    }

    /// The cgroup v2 path of the container's init (the `0::` line of /proc/<pid>/cgroup), e.g.
    /// `/<id>`: what the sensor sees and attributes to the container.
    pub fn cgroup_v2_path(&self) -> anyhow::Result<String> {
        let pid = self.init_pid()?;
        let path = format!("/proc/{pid}/cgroup");
        let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no cgroup v2 (`0::`) line in {path}: {text:?}"))
    }

    /// `runc kill`: send `signal` to the container's init.
    pub fn kill(&self, signal: Signal) -> anyhow::Result<()> {
        runc_ok(["kill", &self.id, signal.as_str()]).map(drop)
    }

    /// `runc delete -f`: kill the container if it runs, wait for it to stop, and remove its
    /// cgroups and its state under /run/runc. An error when runc does not know the container
    /// (never started, or already deleted).
    pub fn delete_force(&self) -> anyhow::Result<()> {
        runc_ok(["delete", "--force", &self.id]).map(drop)
    }

    fn make_rootfs(&self) -> anyhow::Result<()> {
        let rootfs = self.rootfs();
        let bin = rootfs.join("bin");
        // runc creates the mount points in the spec (/proc, /dev, /sys); /tmp is for scripts.
        for dir in [&bin, &rootfs.join("tmp")] {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let busybox = bin.join("busybox");
        fs::copy(BUSYBOX, &busybox)
            .with_context(|| format!("copy {BUSYBOX} to {}", busybox.display()))?;
        for applet in APPLETS {
            let link = bin.join(applet);
            std::os::unix::fs::symlink("busybox", &link)
                .with_context(|| format!("symlink {}", link.display()))?;
        }
        Ok(())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Fails harmlessly when the container never started or runc already removed it (a
        // foreground run); the bundle is removed after this, by the TempDir.
        let _ = self.delete_force();
    }
}

/// The edits to `runc spec`'s default config that the tests need.
fn configure(config: &mut Value, args: &[&str]) -> anyhow::Result<()> {
    let process = config
        .get_mut("process")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("config.json has no process object"))?;
    // The default wants a terminal (a console socket), which neither `runc run` under a test
    // nor CI has; without one, runc passes its own stdio to the container.
    process.insert("terminal".into(), json!(false));
    process.insert("args".into(), json!(args));
    let root = config
        .get_mut("root")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("config.json has no root object"))?;
    // Tests write files inside the container.
    root.insert("readonly".into(), json!(false));
    root.insert("path".into(), json!("rootfs"));
    // A private network namespace (the default; made sure of here) keeps container traffic off
    // the host: it gets only its own loopback, which is all the tests use.
    let namespaces = config
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow!("config.json has no linux.namespaces array"))?;
    if let Some(net) = namespaces
        .iter_mut()
        .find(|ns| ns.get("type").and_then(Value::as_str) == Some("network"))
    {
        // A path would join an existing namespace instead of making a new one.
        if let Some(ns) = net.as_object_mut() {
            ns.remove("path");
        }
    } else {
        namespaces.push(json!({ "type": "network" }));
    }
    Ok(())
}

/// runc container ids: what runc itself accepts.
fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
}

/// A 64-bit little-endian x86-64 ELF with no PT_INTERP program header, i.e. one that needs no
/// dynamic loader and so runs in a rootfs holding nothing else.
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    const EM_X86_64: u16 = 62;
    if !elf.starts_with(b"\x7fELF\x02\x01")
        || le_bytes(elf, 18).map(u16::from_le_bytes) != Some(EM_X86_64)
    {
        return false;
    }
    let phoff = le_bytes(elf, 32)
        .map(u64::from_le_bytes)
        .and_then(|o| usize::try_from(o).ok());
    let phentsize = le_bytes(elf, 54).map(u16::from_le_bytes);
    let phnum = le_bytes(elf, 56).map(u16::from_le_bytes);
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let p_type = (i * usize::from(phentsize))
            .checked_add(phoff)
            .and_then(|entry| le_bytes(elf, entry))
            .map(u32::from_le_bytes);
        matches!(p_type, Some(t) if t != PT_INTERP)
    })
}

/// `N` bytes of `data` at `offset`, if it is that long.
fn le_bytes<const N: usize>(data: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    data.get(offset..end)?.try_into().ok()
}

/// `runc ARGS` with [`ADMIN_TIMEOUT`]; any exit status.
fn runc_cmd<I, S>(args: I) -> anyhow::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(RUNC);
    cmd.args(args);
    let shown = format!("{cmd:?}");
    let mut runc = Spawned::spawn(cmd)?;
    match runc.wait_until(Instant::now() + ADMIN_TIMEOUT)? {
        Some(status) => Ok(runc.output(status)),
        None => {
            let _ = runc.kill();
            bail!("{shown} did not finish within {ADMIN_TIMEOUT:?}")
        }
    }
}

/// `runc ARGS` that must succeed; the error carries runc's message.
fn runc_ok<I, S>(args: I) -> anyhow::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let out = runc_cmd(&args)?;
    if !out.status.success() {
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        bail!("`runc {}` failed: {}", shown.join(" "), failure(&out));
    }
    Ok(out)
}

/// The exit status and stderr of a failed command, for an error message.
fn failure(out: &Output) -> String {
    format!(
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Poll `child` until it exits or `deadline` passes (`None`; the child is left running).
fn wait_until(child: &mut Child, deadline: Instant) -> anyhow::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait().context("wait for runc")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child with stdin from /dev/null whose stdout and stderr are drained by threads, so it
/// never blocks on a full pipe while we wait for it with a deadline.
struct Spawned {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Spawned {
    fn spawn(mut cmd: Command) -> anyhow::Result<Spawned> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {cmd:?}"))?;
        let stdout = child.stdout.take().map(drain::<ChildStdout>);
        let stderr = child.stderr.take().map(drain::<ChildStderr>);
        Ok(Spawned {
            child,
            stdout,
            stderr,
        })
    }

    fn wait_until(&mut self, deadline: Instant) -> anyhow::Result<Option<ExitStatus>> {
        wait_until(&mut self.child, deadline)
    }

    fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        // Fails only when it has already exited, which the wait below then reports.
        let _ = self.child.kill();
        self.child.wait().context("wait for killed runc")
    }

    /// Everything written to the pipes. Returns when every writer has closed them: runc and,
    /// for a foreground run, the container's processes (gone once runc has exited, since
    /// killing a pid namespace's init kills the rest).
    fn output(self, status: ExitStatus) -> Output {
        // A reader thread only fails by panicking, which it does not; empty output then.
        let join =
            |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Output {
            status,
            stdout: join(self.stdout),
            stderr: join(self.stderr),
        }
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error ends the output early; what was read is still worth returning.
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_valid_and_distinct() {
        let a = unique_id("kt/odd name.x");
        let b = unique_id("kt/odd name.x");
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(is_valid_id(id), "{id}");
            assert!(!id.contains('.'), "{id}");
        }
        assert!(!is_valid_id("") && !is_valid_id("..") && !is_valid_id("a/b"));
    }

    /// An ELF64 header followed by one program header of type `p_type`.
    fn elf_with_phdr(p_type: u32) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        elf[64..68].copy_from_slice(&p_type.to_le_bytes());
        elf
    }

    #[test]
    fn static_elf_check() {
        assert!(is_static_elf(&elf_with_phdr(1))); // PT_LOAD only
        assert!(!is_static_elf(&elf_with_phdr(3))); // PT_INTERP
        assert!(!is_static_elf(&elf_with_phdr(1)[..66]), "truncated");
        assert!(!is_static_elf(b""));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // Debian's coreutils are dynamically linked.
        if let Ok(ls) = fs::read("/bin/ls") {
            assert!(!is_static_elf(&ls));
        }
    }

    #[test]
    fn config_edits() {
        let mut config = json!({
            "process": { "terminal": true, "args": ["sh"] },
            "root": { "path": "rootfs", "readonly": true },
            "linux": { "namespaces": [{ "type": "pid" }, { "type": "network", "path": "/proc/1/ns/net" }] },
        });
        configure(&mut config, &["echo", "hi"]).expect("configure");
        assert_eq!(config["process"]["terminal"], json!(false));
        assert_eq!(config["process"]["args"], json!(["echo", "hi"]));
        assert_eq!(config["root"]["readonly"], json!(false));
        assert_eq!(
            config["linux"]["namespaces"][1],
            json!({ "type": "network" })
        );

        let mut without_net = json!({
            "process": {}, "root": {}, "linux": { "namespaces": [{ "type": "pid" }] },
        });
        configure(&mut without_net, &["true"]).expect("configure");
        assert_eq!(
            without_net["linux"]["namespaces"][1],
            json!({ "type": "network" })
        );
        assert!(configure(&mut json!({}), &["true"]).is_err());
    }
}
