//! Project tasks: `cargo xtask run | test | bench | setup`.
//!
//! `run` and `test` first install whatever is missing on a fresh machine (the pinned eBPF
//! toolchain pieces and the apt packages the runtime and tests use), so the README's two
//! commands are all a new user needs.

mod bench;
mod corpus;
mod deploy;
mod supply;
mod vm;

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// bpf-linker that loads the pinned toolchain's LLVM 22 (newer ones want a system LLVM 23).
const BPF_LINKER_VERSION: &str = "0.10.4";
const TOOLCHAIN: &str = "1.95.0";
/// apt packages the build, the runtime and the tests use: libseccomp (linked by `sensor exec`),
/// runc and a static busybox for container tests, apparmor_parser to check generated profiles,
/// rsyslog, aiosmtpd and openssl for the delivery tests.
const APT_PACKAGES: &[&str] = &[
    // Headless browser tests of the dashboard.
    "chromium",
    "chromium-driver",
    "runc",
    "busybox-static",
    "libseccomp-dev",
    "pkg-config",
    "apparmor",
    // Real receivers for the output tests: syslog (TCP/TLS), SMTP, and certificates for TLS.
    "rsyslog",
    "rsyslog-gnutls",
    "rsyslog-relp",
    "python3-aiosmtpd",
    "openssl",
];

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing, build, and run the sensor in the foreground (as root) with its
    /// embedded default config. Extra arguments go to `sensor run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install what is missing, then run every test tier: lint, unit, replay, kernel (root).
    Test,
    /// Benchmarks: no sensor vs empty probes vs full sensor, interleaved, as ratios.
    Bench {
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Fewer iterations (a smoke run, not numbers to publish).
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Re-record the labelled corpus (tests/corpus/*/scenarios/*.sh) with the real agent
    /// (root). The recordings are committed; CI replays them.
    Corpus {
        /// Only this scenario (file stem).
        #[arg(long)]
        only: Option<String>,
    },
    /// Only install what is missing.
    Setup,
    /// The kernel matrix (root): focused kernel tests on this host's kernel and on Debian's
    /// Linux 6.1 under qemu, where BPF LSM and AppArmor are real.
    VmTest,
    /// Write a CycloneDX SBOM of the sensor binary's dependencies and validate it against the
    /// CycloneDX JSON schema.
    Sbom {
        /// Where to write it (default target/sbom/sensor.cdx.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Supply-chain checks: cargo deny (advisories, licenses, bans, sources) and the SBOM.
    SupplyCheck,
    /// The deployment artifacts (root): the Debian package under a real systemd, the runtime
    /// container image, the Kubernetes manifest and Helm chart (deploy/).
    DeployTest,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn setup() -> anyhow::Result<()> {
    // rust-src for the pinned toolchain: the eBPF crate builds `core` from source.
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", TOOLCHAIN])
        .output()
        .context("running rustup")?;
    if !String::from_utf8_lossy(&installed.stdout).contains("rust-src") {
        sh(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            TOOLCHAIN,
        ]))?;
    }
    let linker_ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false);
    if !linker_ok {
        sh(Command::new("cargo").args([
            &format!("+{TOOLCHAIN}"),
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
        ]))?;
    }
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .output()
                .map(|o| {
                    o.status.success()
                        && String::from_utf8_lossy(&o.stdout)
                            .contains("Status: install ok installed")
                })
                .unwrap_or(false)
        })
        .collect();
    if !missing.is_empty() {
        if !is_root() {
            bail!(
                "apt packages missing ({}); run as root or install them: apt-get install {}",
                missing.join(" "),
                missing.join(" ")
            );
        }
        sh(Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        sh(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn test() -> anyhow::Result<()> {
    setup()?;
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    sh(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    // Supply chain: cargo deny (advisories when the database is reachable), the SBOM.
    supply::setup()?;
    supply::check()?;
    // The default members: everything but the eBPF crate, which only builds for BPF (through
    // sensor/build.rs).
    sh(cargo().args(["build"]))?;
    // Unit tests (no root) in parallel.
    sh(cargo().args(["test", "-p", "sensor-common", "-p", "sensor", "-p", "xtask"]))?;
    // Replay and kernel tests: serial, because kernel tests each run a real agent.
    let bin = root().join("target/debug/sensor");
    if !is_root() {
        eprintln!("NOTE: not root: kernel tests will report SKIP (they load eBPF programs)");
    }
    sh(cargo()
        // --tests: no doc-test run, whose "0 passed" would be the last line CI reads.
        .args([
            "test",
            "-p",
            "sensor-tests",
            "--tests",
            "--",
            "--test-threads=1",
        ])
        .env("SENSOR_BIN", &bin))?;
    // The kernel matrix: the same focused kernel tests on Linux 6.1 under qemu (BPF LSM and
    // AppArmor), about two minutes.
    if is_root() {
        vm::vm_test()?;
        // Deployment: the Debian package under a real systemd, the container image, the
        // Kubernetes manifests (uses the release binary the matrix built).
        deploy::setup()?;
        deploy::test()?;
    } else {
        eprintln!("SKIP kernel matrix (vm-test): needs root to load eBPF programs");
        eprintln!("SKIP deployment tests (deploy-test): need root for podman and systemd");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup(),
        Cmd::VmTest => {
            setup()?;
            vm::vm_test()
        }
        Cmd::Run { args } => {
            setup()?;
            sh(cargo().args(["build", "--release", "-p", "sensor"]))?;
            if !is_root() {
                bail!("the sensor loads eBPF programs: run `cargo xtask run` as root");
            }
            let bin = root().join("target/release/sensor");
            eprintln!("+ {} run {}", bin.display(), args.join(" "));
            // Replace this process, so Ctrl-C and SIGTERM reach the agent directly.
            let err = Command::new(&bin).arg("run").args(&args).exec();
            Err(err).with_context(|| format!("exec {}", bin.display()))
        }
        Cmd::Test => test(),
        Cmd::Sbom { out } => supply::sbom(out),
        Cmd::SupplyCheck => supply::check(),
        Cmd::DeployTest => {
            deploy::setup()?;
            deploy::test()
        }
        Cmd::Corpus { only } => {
            sh(cargo().args(["build", "-p", "sensor"]))?;
            if !is_root() {
                bail!("recording runs the real agent: run `cargo xtask corpus` as root");
            }
            corpus::run(
                &root().join("target/debug/sensor"),
                &root(),
                only.as_deref(),
            )
        }
        Cmd::Bench {
            rounds,
            quick,
            json,
        } => {
            setup()?;
            sh(cargo().args(["build", "--release", "-p", "sensor"]))?;
            bench::run(bench::BenchOpts {
                sensor_bin: root().join("target/release/sensor"),
                rounds,
                quick,
                out_json: json,
            })?;
            // The userspace micro-benchmarks (rule evaluation, secret scanning) are ignored
            // tests so unit runs stay fast; they run here, in release mode.
            sh(cargo().args([
                "test",
                "--release",
                "-p",
                "sensor",
                "--lib",
                "--",
                "--ignored",
                "bench_",
                "--nocapture",
            ]))
        }
    }
}
