//! `cargo xtask deploy-test`: the deployment artifacts under deploy/, tested for real.
//!
//! - the Debian package (cargo-deb, from the release binary) installed, restarted, upgraded
//!   and removed under a real systemd: PID 1 of a privileged podman container made from a
//!   debootstrap rootfs (cached in target/deploy/, so only the first run pays for it);
//! - the runtime container image (deploy/container/Containerfile) run as Kubernetes would,
//!   seeing a host process;
//! - the Kubernetes manifest validated strictly against the API schemas, and the Helm chart
//!   linted by Helm's own library.
//!
//! The scripts in deploy/tests/ do the work and print PASS/FAIL/SKIP per step.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{cargo, is_root, root, sh};

const CARGO_DEB_VERSION: &str = "3.8.0";
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
/// A wheel carrying Helm (v4) as a shared library: the only Helm obtainable from the
/// registries reachable here. It needs Python 3.12 as a package; its library is used directly.
const HELM_SDKPY_VERSION: &str = "0.1.32";
const APT: &[&str] = &["podman", "debootstrap", "python3-venv", "python3-yaml"];
const SYSTEMD_IMAGE: &str = "localhost/sensor-deploy-systemd:bookworm";
const RUNTIME_IMAGE: &str = "localhost/sensor:deploy-test";

fn dir() -> PathBuf {
    root().join("target/deploy")
}

fn libhelm() -> PathBuf {
    dir().join("tools/helm-sdkpy/helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so")
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn stdout(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// podman as this machine runs it: runc, cgroupfs, lowered default ulimits (MACHINE.md).
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", dir().join("containers.conf"));
    c.args(["--runtime", "runc", "--cgroup-manager=cgroupfs"]);
    c
}

/// Install what the deployment tests need; quick when everything is there.
pub fn setup() -> anyhow::Result<()> {
    std::fs::create_dir_all(dir().join("tools"))?;
    std::fs::write(
        dir().join("containers.conf"),
        "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n\
         [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )?;
    let missing: Vec<&str> = APT
        .iter()
        .copied()
        .filter(|p| {
            !stdout(Command::new("dpkg-query").args(["-W", "-f", "${Status}", p]))
                .contains("install ok installed")
        })
        .collect();
    if !missing.is_empty() {
        if !is_root() {
            bail!("apt packages missing: {}; run as root", missing.join(" "));
        }
        let apt = |args: &[&str]| {
            sh(Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"))
        };
        apt(&["update"])?;
        apt(&[&["install", "-y", "--no-install-recommends"], &missing[..]].concat())?;
    }
    if !stdout(Command::new("cargo").args(["deb", "--version"])).contains(CARGO_DEB_VERSION) {
        let t = Instant::now();
        sh(Command::new("cargo").args([
            "install",
            "cargo-deb",
            "--locked",
            "--version",
            CARGO_DEB_VERSION,
        ]))?;
        eprintln!("cargo-deb installed in {:.0?}", t.elapsed());
    }
    let venv = dir().join("venv");
    let kv = venv.join("bin/kubernetes-validate");
    if !stdout(Command::new(&kv).arg("--version")).contains(KUBERNETES_VALIDATE_VERSION) {
        sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        sh(Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            &format!("kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"),
        ]))?;
    }
    if !libhelm().exists() {
        let tools = dir().join("tools");
        sh(Command::new(venv.join("bin/pip"))
            .args(["download", "-q", "--no-deps", "--only-binary=:all:"])
            .args(["--python-version", "3.12", "-d"])
            .arg(&tools)
            .arg(format!("helm-sdkpy=={HELM_SDKPY_VERSION}")))?;
        let wheel = tools.join(format!("helm_sdkpy-{HELM_SDKPY_VERSION}-py3-none-any.whl"));
        sh(Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(\
                 'helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so', sys.argv[2])",
            )
            .arg(&wheel)
            .arg(tools.join("helm-sdkpy")))?;
        std::fs::remove_file(&wheel)?;
    }
    Ok(())
}

/// The release binary under test: $SENSOR_BIN, else this tree's (built if needed).
fn sensor_bin() -> anyhow::Result<PathBuf> {
    if let Some(b) = std::env::var_os("SENSOR_BIN") {
        return Ok(PathBuf::from(b));
    }
    sh(cargo().args(["build", "--release", "-p", "sensor"]))?;
    Ok(root().join("target/release/sensor"))
}

/// Two builds of the package (the same binary, two versions) for the upgrade test.
fn build_debs(bin: &Path) -> anyhow::Result<[PathBuf; 2]> {
    // cargo-deb takes the binary from <target dir>/release; give it the one under test.
    let target = dir().join("cargo-target");
    std::fs::create_dir_all(target.join("release"))?;
    std::fs::copy(bin, target.join("release/sensor")).context("copying the sensor binary")?;
    let out = dir().join("pkg");
    let _ = std::fs::remove_dir_all(&out);
    let version = env!("CARGO_PKG_VERSION");
    let mut debs = Vec::new();
    for rev in ["1", "2"] {
        let v = format!("{version}-{rev}");
        sh(cargo()
            .args([
                "deb",
                "-p",
                "sensor",
                "--no-build",
                "--deb-version",
                &v,
                "--output",
            ])
            .arg(&out)
            .env("CARGO_TARGET_DIR", &target))?;
        debs.push(out.join(format!("sensor_{v}_amd64.deb")));
    }
    Ok([debs[0].clone(), debs[1].clone()])
}

/// bookworm minbase with systemd, as a podman image; the rootfs tarball is cached.
fn systemd_image() -> anyhow::Result<()> {
    if succeeds(podman().args(["image", "exists", SYSTEMD_IMAGE])) {
        return Ok(());
    }
    let tar = dir().join("rootfs-bookworm-systemd.tar");
    if !tar.exists() {
        let t = Instant::now();
        let rootfs = dir().join("rootfs");
        let _ = std::fs::remove_dir_all(&rootfs);
        sh(Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=systemd,systemd-sysv,dbus",
                "bookworm",
            ])
            .arg(&rootfs)
            .arg("http://deb.debian.org/debian"))?;
        // No apt lists or caches in the image.
        sh(Command::new("sh").arg("-c").arg(format!(
            "rm -rf {0}/var/cache/apt/archives/*.deb {0}/var/lib/apt/lists/* && \
             tar -C {0} -cf {1}.part . && mv {1}.part {1}",
            rootfs.display(),
            tar.display()
        )))?;
        std::fs::remove_dir_all(&rootfs)?;
        eprintln!("debootstrap rootfs built in {:.0?}", t.elapsed());
    }
    sh(podman()
        .arg("import")
        .arg("-q")
        .arg(&tar)
        .arg(SYSTEMD_IMAGE))
}

fn runtime_image(bin: &Path) -> anyhow::Result<()> {
    let ctx = dir().join("ctx");
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(bin, ctx.join("sensor"))?;
    sh(podman()
        .args(["build", "-q", "--layers=false", "-f"])
        .arg(root().join("deploy/container/Containerfile"))
        .args([
            "--build-arg",
            &format!("BASE={SYSTEMD_IMAGE}"),
            "-t",
            RUNTIME_IMAGE,
        ])
        .arg(&ctx))
}

/// Runs every deployment test (after [`setup`]); fails when any step fails.
pub fn test() -> anyhow::Result<()> {
    let start = Instant::now();
    let bin = sensor_bin()?;
    let tests = root().join("deploy/tests");
    let mut failed = Vec::new();
    let mut step = |name: &str, cmd: &mut Command| {
        eprintln!("== {name}");
        let t = Instant::now();
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        eprintln!(
            "== {name}: {} in {:.1?}",
            if ok { "ok" } else { "FAILED" },
            t.elapsed()
        );
        if !ok {
            failed.push(name.to_owned());
        }
    };

    step(
        "Kubernetes manifest and Helm chart",
        Command::new("python3")
            .arg(tests.join("k8s.py"))
            .arg(dir().join("venv/bin/kubernetes-validate"))
            .arg(&bin)
            .arg(libhelm()),
    );

    if !is_root() {
        println!(
            "SKIP package under systemd, runtime image: podman --privileged and eBPF need root"
        );
    } else {
        let t = Instant::now();
        let debs = build_debs(&bin)?;
        eprintln!("packages built in {:.1?}", t.elapsed());
        let t = Instant::now();
        systemd_image()?;
        eprintln!("systemd image ready in {:.1?}", t.elapsed());
        step(
            "Debian package under systemd",
            Command::new("bash")
                .arg(tests.join("systemd.sh"))
                .arg(SYSTEMD_IMAGE)
                .args(&debs)
                .env("CONTAINERS_CONF", dir().join("containers.conf")),
        );
        match runtime_image(&bin) {
            Ok(()) => step(
                "runtime container image",
                Command::new("bash")
                    .arg(tests.join("container.sh"))
                    .arg(RUNTIME_IMAGE)
                    .arg(&bin)
                    .env("CONTAINERS_CONF", dir().join("containers.conf")),
            ),
            Err(e) => {
                println!("FAIL podman build deploy/container/Containerfile: {e:#}");
                failed.push("runtime image build".to_owned());
            }
        }
        // The runtime image is rebuilt every run; the systemd base image stays cached.
        let _ = podman().args(["rmi", "-f", RUNTIME_IMAGE]).output();
    }
    eprintln!("deploy-test took {:.0?}", start.elapsed());
    if !failed.is_empty() {
        bail!("deployment tests failed: {}", failed.join(", "));
    }
    Ok(())
}
