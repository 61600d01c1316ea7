//! Supply-chain checks (docs/supply-chain.md): `cargo deny` (advisories, licenses, bans,
//! sources, policy in deny.toml) and a CycloneDX SBOM of the sensor binary, validated against
//! the official schema.
//!
//! `check` prints one PASS, FAIL or SKIP line per check and fails if any check failed. The
//! RustSec advisory database is fetched from GitHub with git; when that is impossible and no
//! fresh cached copy exists the advisories check is a SKIP with the reason (a FAIL when
//! `SENSOR_REQUIRE_ADVISORIES=1`), never a PASS. A planted advisory against a crate of the
//! graph is always checked to be reported, so the advisories wiring itself is tested offline,
//! and that run (the real policy, after a crates.io index refresh) also reports yanked versions.

pub mod sbom;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};

use crate::{cargo, root, sh};

pub const CARGO_DENY_VERSION: &str = "0.20.2";
/// cargo-deny's directory for the default database URL under its db-path
/// (`advisory-db-` and an xxHash64 of the URL; fixed for a given cargo-deny version).
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";
/// A cached database is used (when the fetch fails) only if its newest commit is at most this
/// old. deny.toml's maximum-db-staleness cannot be relied on for that: cargo-deny measures the
/// FETCH_HEAD timestamp, which a failed `git fetch` refreshes.
const CACHED_DB_MAX_AGE_DAYS: u64 = 7;
/// The advisory fetch is a git clone from GitHub; do not let a black-holed network hang CI.
const FETCH_TIMEOUT_SECS: &str = "120";
const VALIDATOR_REQUIREMENTS: &str = include_str!("../sbom-validator-requirements.txt");
const VALIDATOR_SCRIPT: &str = include_str!("../validate_sbom.py");
/// Crate the self-test advisory names: xtask depends on it, so it is always in the graph.
const SELF_TEST_CRATE: &str = "anyhow";
const SELF_TEST_ID: &str = "RUSTSEC-9999-0001";

fn supply_dir() -> PathBuf {
    root().join("target/supply")
}

fn venv() -> PathBuf {
    supply_dir().join("venv")
}

pub fn default_sbom_path() -> PathBuf {
    root().join("target/sbom/sensor.cdx.json")
}

/// Install what the checks use if missing: the pinned cargo-deny and the schema validator's
/// virtualenv. Quick when both are present.
pub fn setup() -> anyhow::Result<()> {
    ensure_cargo_deny()?;
    ensure_validator()
}

fn cargo_deny_ok() -> bool {
    cargo()
        .args(["deny", "--version"])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim()
                    == format!("cargo-deny {CARGO_DENY_VERSION}")
        })
        .unwrap_or(false)
}

fn ensure_cargo_deny() -> anyhow::Result<()> {
    if cargo_deny_ok() {
        return Ok(());
    }
    let start = Instant::now();
    // cargo-deny's release profile is fat LTO with one codegen unit: about 3 minutes here,
    // nearly all on one core. Without them the build takes half that, and the checks run as
    // fast (they take under a second either way).
    sh(cargo()
        .args([
            "install",
            "cargo-deny",
            "--locked",
            "--version",
            CARGO_DENY_VERSION,
            "--force",
        ])
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"))?;
    eprintln!(
        "installed cargo-deny {CARGO_DENY_VERSION} in {:.0?}",
        start.elapsed()
    );
    if !cargo_deny_ok() {
        bail!("cargo-deny {CARGO_DENY_VERSION} installed but `cargo deny --version` disagrees");
    }
    Ok(())
}

fn ensure_validator() -> anyhow::Result<()> {
    let venv = venv();
    let stamp = venv.join("xtask-requirements.txt");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == VALIDATOR_REQUIREMENTS) {
        return Ok(());
    }
    let start = Instant::now();
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    let reqs = supply_dir().join("sbom-validator-requirements.txt");
    fs::write(&reqs, VALIDATOR_REQUIREMENTS)?;
    sh(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&reqs))?;
    fs::write(&stamp, VALIDATOR_REQUIREMENTS)?;
    eprintln!(
        "installed the SBOM schema validator in {:.0?}",
        start.elapsed()
    );
    Ok(())
}

/// Write the SBOM (default target/sbom/sensor.cdx.json) and validate it against the schema.
pub fn sbom(out: Option<PathBuf>) -> anyhow::Result<()> {
    ensure_validator()?;
    let out = out.unwrap_or_else(default_sbom_path);
    let summary = generate(&out)?;
    eprintln!("wrote {}: {summary}", out.display());
    validate(&out)
}

/// Generate the SBOM at `out`; returns a one-line summary of what it lists.
pub fn generate(out: &Path) -> anyhow::Result<String> {
    let host = host_triple()?;
    let meta = cargo()
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host])
        .args(["--filter-platform", "bpfel-unknown-none"])
        .output()
        .context("running cargo metadata")?;
    if !meta.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&meta.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&meta.stdout).context("parsing cargo metadata")?;
    let lock = fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let graph = sbom::Graph::from_metadata(&meta)?;
    let info = sbom::BomInfo {
        timestamp: sbom::rfc3339(timestamp()?),
        serial: sbom::random_serial()?,
        target: host,
        git_commit: git_commit(),
    };
    let bom = sbom::build(&graph, &sbom::lock_checksums(&lock)?, "sensor", &info)?;
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(&bom)?;
    text.push('\n');
    fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;

    let comps = bom["components"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let count = |kind: &str| {
        comps
            .iter()
            .filter(|c| {
                c["properties"][0]["value"].as_str() == Some(kind)
                    && c["properties"][0]["name"] == "sensor:dependency-kind"
            })
            .count()
    };
    Ok(format!(
        "{} components ({} runtime, {} bpf, {} build-only), CycloneDX {}",
        comps.len(),
        count("runtime"),
        count("bpf"),
        count("build"),
        sbom::SPEC_VERSION
    ))
}

/// Validate `path` against the official CycloneDX JSON schema (cyclonedx-python-lib's bundled
/// copy, strict mode) in the pinned virtualenv.
pub fn validate(path: &Path) -> anyhow::Result<()> {
    let script = supply_dir().join("validate_sbom.py");
    fs::write(&script, VALIDATOR_SCRIPT)?;
    sh(Command::new(venv().join("bin/python"))
        .arg(&script)
        .arg(path))
}

fn host_triple() -> anyhow::Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .current_dir(root())
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("no host line in rustc -vV")
}

/// SOURCE_DATE_EPOCH when set (reproducible builds), else now.
fn timestamp() -> anyhow::Result<u64> {
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s
            .trim()
            .parse()
            .context("SOURCE_DATE_EPOCH is not a number");
    }
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// The source commit, with `+dirty` when the working tree differs from it.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root())
            .args(args)
            .output()
    };
    let head = git(&["rev-parse", "HEAD"])
        .ok()
        .filter(|o| o.status.success())?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let clean = git(&["diff-index", "--quiet", "HEAD", "--"])
        .map(|o| o.status.success())
        .unwrap_or(false);
    Some(if clean { head } else { format!("{head}+dirty") })
}

#[derive(Default)]
struct Report {
    failed: Vec<String>,
}

impl Report {
    fn pass(&mut self, name: &str, detail: &str, start: Instant) {
        println!("PASS {name}: {detail} ({:.1?})", start.elapsed());
    }

    fn fail(&mut self, name: &str, detail: &str) {
        println!("FAIL {name}: {detail}");
        self.failed.push(name.to_owned());
    }

    fn skip(&mut self, name: &str, detail: &str) {
        if std::env::var("SENSOR_REQUIRE_ADVISORIES").is_ok_and(|v| v == "1") {
            self.fail(name, &format!("{detail} (SENSOR_REQUIRE_ADVISORIES=1)"));
        } else {
            println!("SKIP {name}: {detail}");
        }
    }
}

/// Run, echo its output to stderr (cargo-deny's report; its summary is on stdout), and return
/// the output.
fn run_echo(cmd: &mut Command) -> anyhow::Result<Output> {
    eprintln!("+ {cmd:?}");
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(out)
}

fn last_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .rev()
        .find(|l| l.contains("fatal:") || l.contains("error"))
        .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

/// Every supply-chain check: cargo deny (licenses, bans, sources; advisories when the
/// database is available; the planted-advisory self-test), then the SBOM and its schema
/// validation.
pub fn check() -> anyhow::Result<()> {
    setup()?;
    let mut r = Report::default();

    let name = "cargo deny licenses, bans, sources";
    let start = Instant::now();
    match run_echo(cargo().args(["deny", "--locked", "check", "licenses", "bans", "sources"])) {
        Ok(o) if o.status.success() => r.pass(name, "policy in deny.toml holds", start),
        Ok(o) => {
            // cargo-deny's summary, e.g. "bans FAILED, licenses ok, sources ok".
            let out = String::from_utf8_lossy(&o.stdout);
            let summary = out.lines().rev().find(|l| !l.trim().is_empty());
            r.fail(name, summary.unwrap_or("cargo deny failed").trim());
        }
        Err(e) => r.fail(name, &format!("{e:#}")),
    }

    advisories(&mut r);

    let name = "advisories self-test";
    let start = Instant::now();
    match advisories_self_test() {
        Ok(report) => {
            r.pass(
                name,
                &format!("a planted {SELF_TEST_ID} against {SELF_TEST_CRATE} is reported"),
                start,
            );
            yanked(&mut r, &report);
        }
        Err(e) => r.fail(name, &format!("{e:#}")),
    }

    let out = default_sbom_path();
    let name = "sbom";
    let start = Instant::now();
    match generate(&out) {
        Ok(summary) => {
            r.pass(name, &format!("{}: {summary}", out.display()), start);
            let name = "sbom schema";
            let start = Instant::now();
            match validate(&out) {
                Ok(()) => r.pass(name, "valid against the official CycloneDX schema", start),
                Err(e) => r.fail(name, &format!("{e:#}")),
            }
        }
        Err(e) => r.fail(name, &format!("{e:#}")),
    }

    if !r.failed.is_empty() {
        bail!("supply-chain checks failed: {}", r.failed.join(", "));
    }
    Ok(())
}

fn advisory_db() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    cargo_home.join("advisory-dbs").join(ADVISORY_DB_DIR)
}

/// The database's newest commit time (seconds since the epoch), if git can tell.
fn db_time(db: &Path) -> Option<u64> {
    Command::new("git")
        .arg("-C")
        .arg(db)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
}

fn db_date(db: &Path) -> String {
    db_time(db).map_or_else(|| "unknown".into(), |t| sbom::rfc3339(t)[..10].to_owned())
}

fn advisories(r: &mut Report) {
    let name = "cargo deny advisories";
    let start = Instant::now();
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // fetch: a shallow git clone (or fetch) of github.com/RustSec/advisory-db.
    let fetch = run_echo(
        Command::new("timeout")
            .arg(FETCH_TIMEOUT_SECS)
            .arg(&cargo_bin)
            .args(["deny", "--locked", "fetch", "db"])
            .current_dir(root()),
    );
    let fetch_error = match &fetch {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(last_line(o)),
        Err(e) => Some(format!("{e:#}")),
    };
    let db = advisory_db();
    if fetch_error.is_some() && !db.join("crates").is_dir() {
        r.skip(
            name,
            &format!(
                "the RustSec advisory database could not be fetched ({}) and there is no \
                 cached copy at {}: known vulnerabilities were NOT checked",
                fetch_error.unwrap_or_default(),
                db.display()
            ),
        );
        return;
    }
    let which = match &fetch_error {
        None => format!(
            "RustSec database fetched now, newest entry {}",
            db_date(&db)
        ),
        Some(e) => {
            let which = format!(
                "cached RustSec database from {} (fetch failed: {e})",
                db_date(&db)
            );
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let fresh = db_time(&db)
                .is_some_and(|t| now.saturating_sub(t) <= CACHED_DB_MAX_AGE_DAYS * 86_400);
            if !fresh {
                r.skip(
                    name,
                    &format!(
                        "{which} is older than {CACHED_DB_MAX_AGE_DAYS} days: known \
                         vulnerabilities were NOT checked"
                    ),
                );
                return;
            }
            which
        }
    };
    // --offline: use the copy just fetched (or the fresh cache).
    match run_echo(cargo().args(["deny", "--locked", "--offline", "check", "advisories"])) {
        Ok(o) if o.status.success() => r.pass(name, &format!("no advisories; {which}"), start),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("repository is stale") => r.skip(
            name,
            &format!(
                "{which} is older than maximum-db-staleness: known vulnerabilities were NOT \
                 checked"
            ),
        ),
        Ok(o) => r.fail(name, &format!("{}; {which}", last_line(&o))),
        Err(e) => r.fail(name, &format!("{e:#}")),
    }
}

/// A throwaway database holding one advisory against a crate of the graph, in the directory
/// cargo-deny uses for the default URL under a private db-path, checked offline with the real
/// deny.toml: cargo-deny must report it.
fn advisories_self_test() -> anyhow::Result<SelfTest> {
    // cargo-deny reads yanked flags from cargo's local index cache: refresh it (the sparse
    // index is one small request per crate; --dry-run leaves Cargo.lock alone).
    let index_refreshed = cargo()
        .args(["update", "--dry-run", "--quiet"])
        .output()
        .is_ok_and(|o| o.status.success());
    let dir = supply_dir().join("advisory-self-test");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    let dbs = dir.join("dbs");
    let db = dbs.join(ADVISORY_DB_DIR);
    let crate_dir = db.join("crates").join(SELF_TEST_CRATE);
    fs::create_dir_all(&crate_dir)?;
    fs::write(
        crate_dir.join(format!("{SELF_TEST_ID}.md")),
        format!(
            "```toml\n[advisory]\nid = \"{SELF_TEST_ID}\"\npackage = \"{SELF_TEST_CRATE}\"\n\
             date = \"2099-01-01\"\nurl = \"https://example.invalid/supply-self-test\"\n\
             categories = []\nkeywords = []\n\n[versions]\npatched = []\n```\n\n\
             # Planted self-test advisory\n\nNot a real vulnerability: cargo xtask \
             supply-check plants it to prove that the advisories check reports a match.\n"
        ),
    )?;
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&db)
            .args(["-c", "user.name=xtask", "-c", "user.email=xtask@localhost"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "."])?;
    git(&["commit", "-q", "-m", "self-test advisory"])?;

    let policy = fs::read_to_string(root().join("deny.toml")).context("reading deny.toml")?;
    if !policy.contains("\n[advisories]\n") {
        bail!("deny.toml has no [advisories] table");
    }
    let policy = policy.replacen(
        "\n[advisories]\n",
        &format!(
            "\n[advisories]\ndb-path = {:?}\n",
            dbs.display().to_string()
        ),
        1,
    );
    let config = dir.join("deny.toml");
    fs::write(&config, policy)?;
    let out = cargo()
        .args(["deny", "--locked", "--offline", "--config"])
        .arg(&config)
        .args(["check", "advisories"])
        .output()
        .context("running cargo deny")?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() || !err.contains(SELF_TEST_ID) {
        eprint!("{err}");
        bail!("cargo deny did not report the planted advisory");
    }
    Ok(SelfTest {
        report: err,
        index_refreshed,
    })
}

struct SelfTest {
    /// cargo-deny's report: the planted advisory, and anything else the advisories check
    /// found without the real database (yanked versions).
    report: String,
    index_refreshed: bool,
}

/// The self-test ran the real policy's advisories check, which includes `yanked = "deny"`:
/// without the RustSec database that still tells whether Cargo.lock holds yanked versions.
fn yanked(r: &mut Report, t: &SelfTest) {
    let name = "yanked versions";
    let start = Instant::now();
    let lines: Vec<&str> = t
        .report
        .lines()
        .filter(|l| l.contains("[yanked]") || l.contains("[index-cache-load-failure]"))
        .collect();
    let index = if t.index_refreshed {
        "crates.io index refreshed now"
    } else {
        "cargo's cached crates.io index: the refresh failed"
    };
    if lines.is_empty() {
        r.pass(name, &format!("none in Cargo.lock ({index})"), start);
    } else {
        eprint!("{}", t.report);
        r.fail(name, &format!("{} ({index})", lines.join("; ")));
    }
}
