//! `cargo xtask vm-test`: the kernel matrix. The same focused kernel tests run on this host's
//! kernel and, under qemu (TCG), on Debian's packaged Linux 6.1 booted with BPF LSM and
//! AppArmor, where the LSM enforcement backend and AppArmor profile loading are real. The
//! scripts in `vm/` build the initramfs (our binaries and their libraries) and boot it; the
//! kernel package and its extraction are cached in `target/vm-cache`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{cargo, root, sh};

/// A step of the matrix: a test binary with its filter, or (VM only) a script.
struct Step {
    name: &'static str,
    test: Option<(&'static str, &'static [&'static str])>,
    vm_only_script: Option<&'static str>,
    /// Why the host cannot run it, when it cannot.
    host_skip: Option<&'static str>,
}

/// The kernel test binaries that run in the VM: all but those needing Python (the baseline
/// and profile tests' service, two tests of `kernel`), which the initramfs does not carry.
const STEPS: &[Step] = &[
    Step {
        name: "probes and events (kernel)",
        // The two tests that drive Python (memfd, deleted executables, setuid) stay on the
        // host: the initramfs carries no Python.
        test: Some((
            "kernel",
            &[
                "--skip",
                "fileless_and_deleted_executables_are_flagged",
                "--skip",
                "privilege_changes_memfd_and_namespaces",
            ],
        )),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "containers (runc)",
        test: Some(("kernel_container", &[])),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "rules on real events",
        test: Some(("kernel_rules", &[])),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "IOCs in the kernel",
        test: Some(("kernel_ioc", &[])),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "secrets (DLP)",
        test: Some(("kernel_dlp", &[])),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "agent under its own profile",
        test: Some(("kernel_self_profile", &[])),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "shadow/enforce (exec, connect, files)",
        test: Some(("kernel_enforce", &[])),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "containment (freeze, kill, deny exec, playbooks, evidence)",
        // Isolation drives Python; the initramfs has none (it runs on the host).
        test: Some((
            "kernel_respond",
            &[
                "--skip",
                "isolation_keeps_only_the_allow_list_and_release_restores",
            ],
        )),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "self-protection (capabilities, tamper alerts, LSM refusal)",
        test: Some(("kernel_self_protect", &[])),
        vm_only_script: None,
        host_skip: None,
    },
    Step {
        name: "host isolation (root cgroup)",
        test: None,
        vm_only_script: Some("vm/tests/host-isolation.sh"),
        host_skip: Some("tests never attach to this host's root cgroup"),
    },
    Step {
        name: "AppArmor load + enforce",
        test: None,
        vm_only_script: Some("vm/tests/apparmor.sh"),
        host_skip: Some("no AppArmor in this kernel"),
    },
];

/// Build the test binaries and find them in cargo's "Executable" lines.
fn test_binaries(names: &[&str]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut cmd = cargo();
    cmd.args(["test", "-p", "sensor-tests", "--no-run"]);
    for n in names {
        cmd.args(["--test", n]);
    }
    eprintln!("+ {cmd:?}");
    let out = cmd.output().context("cargo test --no-run")?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("building the test binaries failed:\n{text}");
    }
    let mut found = BTreeMap::new();
    for line in text.lines() {
        // `Executable tests/kernel.rs (target/debug/deps/kernel-0123abcd)`
        let Some(rest) = line.trim().strip_prefix("Executable tests/") else {
            continue;
        };
        let (file, path) = rest.split_once(" (").unwrap_or_default();
        let name = file.trim_end_matches(".rs").to_owned();
        let path = root().join(path.trim_end_matches(')'));
        found.insert(name, path);
    }
    for n in names {
        if !found.contains_key(*n) {
            bail!("cargo did not report the test binary {n}:\n{text}");
        }
    }
    Ok(found)
}

/// `SENSOR_VM_ONLY=kernel_respond,kernel_self_protect` runs only those steps (a quick rerun
/// by hand; CI never sets it).
fn selected(s: &Step) -> bool {
    match std::env::var("SENSOR_VM_ONLY") {
        Ok(only) if !only.is_empty() => s
            .test
            .is_some_and(|(bin, _)| only.split(',').any(|o| o.trim() == bin)),
        _ => true,
    }
}

/// The host column: the same test steps on this machine's kernel.
fn run_host(bins: &BTreeMap<String, PathBuf>, sensor: &Path) -> Vec<(String, String)> {
    STEPS
        .iter()
        .filter(|s| selected(s))
        .map(|s| {
            let result = match (s.host_skip, s.test) {
                (Some(why), _) => format!("n/a ({why})"),
                (None, Some((bin, args))) => {
                    let t0 = Instant::now();
                    // Whichever backend this kernel allows (BPF LSM can be listed yet refused,
                    // as on a VM that blocks trampolines): the test checks the one it got.
                    let st = Command::new(&bins[bin])
                        .args(["--test-threads=1"])
                        .args(args)
                        .env("SENSOR_BIN", sensor)
                        .output();
                    match st {
                        Ok(o) if o.status.success() => {
                            format!("ok ({:.0} s)", t0.elapsed().as_secs_f64())
                        }
                        Ok(o) => {
                            eprintln!(
                                "host: {} failed:\n{}{}",
                                s.name,
                                String::from_utf8_lossy(&o.stdout),
                                String::from_utf8_lossy(&o.stderr)
                            );
                            "FAILED".into()
                        }
                        Err(e) => format!("FAILED ({e})"),
                    }
                }
                (None, None) => "n/a".into(),
            };
            (s.name.to_owned(), result)
        })
        .collect()
}

/// The in-VM script: one `vmstep` per step.
fn vm_script(bins: &BTreeMap<String, PathBuf>, sensor: &Path) -> String {
    let mut o = String::from(
        "#!/bin/sh\n# Generated by `cargo xtask vm-test`.\n. /usr/lib/vmtest-lib.sh\n",
    );
    let _ = writeln!(o, "export SENSOR_BIN={}", sensor.display());
    // This kernel loads BPF LSM programs: the agent must enforce with them.
    let _ = writeln!(o, "export SENSOR_EXPECT_BACKEND=lsm");
    // Emulated CPUs (TCG) run many times slower: latency targets are for real hardware.
    let _ = writeln!(o, "export SENSOR_EMULATED_CPU=1");
    for (i, s) in STEPS.iter().enumerate().filter(|(_, s)| selected(s)) {
        match (s.test, s.vm_only_script) {
            (Some((bin, args)), _) => {
                let _ = writeln!(
                    o,
                    "vmstep step{i} {} --test-threads=1 {}",
                    bins[bin].display(),
                    args.join(" ")
                );
            }
            (None, Some(script)) => {
                let _ = writeln!(
                    o,
                    "vmstep step{i} sh {} {}",
                    root().join(script).display(),
                    sensor.display()
                );
            }
            (None, None) => {}
        }
    }
    o
}

pub fn vm_test() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let top = root();
    sh(Command::new("bash").arg(top.join("vm/setup.sh")))?;
    sh(cargo().args(["build", "--release", "-p", "sensor"]))?;
    let sensor = top.join("target/release/sensor");
    let names: Vec<&str> = {
        let mut v: Vec<&str> = STEPS.iter().filter_map(|s| s.test.map(|t| t.0)).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let bins = test_binaries(&names)?;
    let out = top.join("target/vm");
    std::fs::create_dir_all(&out).context("creating target/vm")?;
    let script = out.join("run-tests.sh");
    std::fs::write(&script, vm_script(&bins, &sensor)).context("writing run-tests.sh")?;
    let initrd = out.join("matrix.cpio.gz");
    let mut build = Command::new("bash");
    build
        .arg(top.join("vm/build-initramfs.sh"))
        .arg("-s")
        .arg("-o")
        .arg(&initrd)
        .arg("-t")
        .arg(&script);
    for f in [
        "/etc/apparmor/parser.conf",
        "/usr/share/apparmor-features",
        "/etc/apparmor.d/abi",
        "/etc/apparmor.d/tunables",
        "/etc/apparmor.d/abstractions",
    ] {
        build.arg("-f").arg(f);
    }
    build.arg("-f").arg(top.join("vm/tests"));
    // The self-profile test reads the shipped profiles.
    build.arg("-f").arg(top.join("profiles"));
    build.arg(&sensor).args(bins.values());
    build.args(["/usr/sbin/apparmor_parser", "/usr/sbin/runc"]);
    sh(&mut build)?;

    // The VM first, while the host is quiet; then the host column.
    let log = out.join("matrix.log");
    let vm = Command::new("bash")
        .arg(top.join("vm/run-vm.sh"))
        .args(["-m", "2048", "-a", "vmtest.switchroot", "-l"])
        .arg(&log)
        .arg(&initrd)
        .arg("900")
        .status()
        .context("running the VM")?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let kernel = text
        .lines()
        .find_map(|l| l.strip_prefix("VMTEST-KERNEL "))
        .unwrap_or("6.1 (VM)")
        .to_owned();
    let mut vm_results: BTreeMap<usize, String> = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("VMTEST-END step")
            && let Some((i, tail)) = rest.split_once(' ')
            && let Ok(i) = i.parse::<usize>()
        {
            let rc = tail
                .split_whitespace()
                .find_map(|w| w.strip_prefix("rc="))
                .unwrap_or("?");
            let dt = tail
                .split_whitespace()
                .find_map(|w| w.strip_prefix("dt="))
                .unwrap_or("?");
            vm_results.insert(
                i,
                if rc == "0" {
                    format!("ok ({dt} s)")
                } else {
                    format!("FAILED (rc {rc})")
                },
            );
        }
    }
    let host = run_host(&bins, &sensor);
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();

    let host_col = format!("host {host_kernel}");
    let mut table = format!(
        "\nkernel matrix ({:.0} s)\n{:<30} {:<32} vm {kernel}\n",
        t0.elapsed().as_secs_f64(),
        "test",
        host_col,
    );
    let mut failed = !vm.success();
    // The VM numbers its steps by their place in STEPS, selected or not.
    let index: Vec<usize> = STEPS
        .iter()
        .enumerate()
        .filter(|(_, s)| selected(s))
        .map(|(i, _)| i)
        .collect();
    for ((name, h), i) in host.iter().zip(index) {
        let v = vm_results
            .get(&i)
            .cloned()
            .unwrap_or_else(|| "FAILED (did not run)".into());
        failed |= h.starts_with("FAILED") || v.starts_with("FAILED");
        let _ = writeln!(table, "{name:<30} {h:<32} {v}");
    }
    print!("{table}");
    if failed {
        bail!(
            "the kernel matrix has failures (VM console: {})",
            log.display()
        );
    }
    Ok(())
}
