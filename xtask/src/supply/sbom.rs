//! A CycloneDX 1.6 JSON SBOM of the sensor binary, built from `cargo metadata` and Cargo.lock.
//!
//! What is in it, starting from the `sensor` package and never following dev-dependency edges:
//!
//! - **runtime** (`scope: required`): crates reached through normal dependency edges, not
//!   entering proc-macro crates: their code is compiled into the binary.
//! - **bpf** (`scope: required`): `sensor-ebpf` (a build-dependency of `sensor` that aya-build
//!   compiles for BPF; the object is embedded in the binary) and its normal dependencies.
//! - **build** (`scope: excluded`): everything else reached through build-dependency edges or
//!   proc-macros (build scripts, code generators, and their dependencies). They run on the
//!   build machine and shape the binary, so they are listed, but none of their code ships.
//!
//! Dev-dependencies (proptest, and the `tests` and `xtask` crates) are not listed. The graph is
//! resolved for the host triple and `bpfel-unknown-none`, so other platforms' crates
//! (windows-sys...) are not listed either. Each registry crate carries its Cargo.lock SHA-256;
//! workspace (path) crates have no registry checksum, and are pinned by the source commit
//! recorded in the metadata instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The crate that is compiled for BPF and embedded in the sensor binary.
const EMBEDDED_BPF_CRATE: &str = "sensor-ebpf";
pub const SPEC_VERSION: &str = "1.6";
const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Runtime,
    Bpf,
    Build,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Runtime => "runtime",
            Kind::Bpf => "bpf",
            Kind::Build => "build",
        }
    }
}

/// What the SBOM needs from outside the dependency data (kept out so the builder is pure).
pub struct BomInfo {
    pub timestamp: String,
    pub serial: String,
    pub target: String,
    pub git_commit: Option<String>,
}

pub struct Package<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub source: Option<&'a str>,
    pub license: Option<String>,
    pub license_file: Option<&'a str>,
    pub description: Option<&'a str>,
    pub proc_macro: bool,
}

/// `cargo metadata` reduced to what the SBOM uses: packages by id and non-dev edges.
pub struct Graph<'a> {
    pub packages: HashMap<&'a str, Package<'a>>,
    /// id -> (dependency id, reached through a normal edge?, reached through a build edge?)
    pub edges: HashMap<&'a str, Vec<(&'a str, bool, bool)>>,
}

impl<'a> Graph<'a> {
    pub fn from_metadata(meta: &'a Value) -> anyhow::Result<Self> {
        let mut packages = HashMap::new();
        for p in meta["packages"]
            .as_array()
            .context("metadata: no packages")?
        {
            let s = |k: &str| p[k].as_str();
            let id = s("id").context("package without id")?;
            let proc_macro = p["targets"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
                })
            });
            packages.insert(
                id,
                Package {
                    name: s("name").context("package without name")?,
                    version: s("version").context("package without version")?,
                    source: s("source"),
                    license: s("license").map(spdx_expression),
                    license_file: s("license_file"),
                    description: s("description"),
                    proc_macro,
                },
            );
        }
        let mut edges = HashMap::new();
        let nodes = meta["resolve"]["nodes"]
            .as_array()
            .context("metadata: no resolve graph")?;
        for n in nodes {
            let id = n["id"].as_str().context("node without id")?;
            let mut out = Vec::new();
            for d in n["deps"].as_array().into_iter().flatten() {
                let pkg = d["pkg"].as_str().context("dep without pkg")?;
                let kinds: Vec<Option<&str>> = d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| k["kind"].as_str())
                    .collect();
                let normal = kinds.contains(&None);
                let build = kinds.contains(&Some("build"));
                if normal || build {
                    out.push((pkg, normal, build));
                }
            }
            edges.insert(id, out);
        }
        Ok(Self { packages, edges })
    }

    pub fn find(&self, name: &str) -> anyhow::Result<&'a str> {
        let mut ids = self
            .packages
            .iter()
            .filter(|(_, p)| p.name == name && p.source.is_none())
            .map(|(id, _)| *id);
        match (ids.next(), ids.next()) {
            (Some(id), None) => Ok(id),
            _ => bail!("metadata: no single workspace package named {name}"),
        }
    }

    /// Every package reachable from `root` without dev edges, with its kind (see the module
    /// docs). A crate reached both ways keeps the stronger kind (runtime, then bpf, then build).
    pub fn classify(&self, root: &'a str) -> BTreeMap<&'a str, Kind> {
        let mut kinds: BTreeMap<&str, Kind> = BTreeMap::new();
        // Shipped code first: normal edges, never into proc-macros; the BPF crate is a
        // build-dependency whose output is embedded.
        let mut queue = VecDeque::from([(root, Kind::Runtime)]);
        while let Some((id, kind)) = queue.pop_front() {
            if kinds.get(id).is_some_and(|k| *k <= kind) {
                continue;
            }
            kinds.insert(id, kind);
            for &(dep, normal, build) in self.edges.get(id).into_iter().flatten() {
                let Some(p) = self.packages.get(dep) else {
                    continue;
                };
                if normal && !p.proc_macro {
                    queue.push_back((dep, kind));
                } else if build && p.name == EMBEDDED_BPF_CRATE && p.source.is_none() {
                    queue.push_back((dep, Kind::Bpf));
                }
            }
        }
        // Then whatever else the build needs, through any non-dev edge.
        let mut queue: VecDeque<&str> = kinds.keys().copied().collect();
        let mut seen: BTreeSet<&str> = queue.iter().copied().collect();
        while let Some(id) = queue.pop_front() {
            for &(dep, _, _) in self.edges.get(id).into_iter().flatten() {
                if seen.insert(dep) {
                    kinds.entry(dep).or_insert(Kind::Build);
                    queue.push_back(dep);
                }
            }
        }
        kinds
    }
}

/// Cargo.lock checksums by (name, version, source).
pub fn lock_checksums(lock: &str) -> anyhow::Result<HashMap<(String, String, String), String>> {
    let table: toml::Table = toml::from_str(lock).context("parsing Cargo.lock")?;
    let mut out = HashMap::new();
    for p in table
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        if let (Some(n), Some(v), Some(src), Some(sum)) =
            (s("name"), s("version"), s("source"), s("checksum"))
        {
            out.insert((n, v, src), sum);
        }
    }
    Ok(out)
}

/// `pkg:cargo/name@version`, the version percent-encoded (`+` build metadata becomes `%2B`).
pub fn purl(name: &str, version: &str) -> String {
    let mut v = String::new();
    for c in version.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~') {
            v.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                v.push_str(&format!("%{b:02X}"));
            }
        }
    }
    format!("pkg:cargo/{name}@{v}")
}

/// Old manifests write `MIT/Apache-2.0`; SPDX says `MIT OR Apache-2.0`.
fn spdx_expression(license: &str) -> String {
    if license.contains('/') {
        license
            .split('/')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" OR ")
    } else {
        license.to_owned()
    }
}

fn licenses(p: &Package) -> Value {
    match (&p.license, p.license_file) {
        (Some(expr), _) => json!([{ "expression": expr }]),
        (None, Some(file)) => json!([{ "license": { "name": format!("see {file}") } }]),
        (None, None) => json!([]),
    }
}

fn component(p: &Package, kind: Kind, checksum: Option<&String>) -> Value {
    let purl = purl(p.name, p.version);
    let mut c = json!({
        "type": "library",
        "bom-ref": purl,
        "name": p.name,
        "version": p.version,
        "purl": purl,
        "licenses": licenses(p),
    });
    if let Some(d) = p.description {
        c["description"] = json!(d.trim());
    }
    if let Some(sum) = checksum {
        c["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
    }
    let source = match p.source {
        None => "workspace",
        Some(CRATES_IO) => "crates.io",
        Some(other) => other,
    };
    c["properties"] = json!([
        { "name": "sensor:dependency-kind", "value": kind.as_str() },
        { "name": "sensor:source", "value": source },
    ]);
    c
}

/// The SBOM of `root` (the sensor package) as CycloneDX 1.6 JSON.
pub fn build(
    graph: &Graph,
    checksums: &HashMap<(String, String, String), String>,
    root_name: &str,
    ctx: &BomInfo,
) -> anyhow::Result<Value> {
    let root = graph.find(root_name)?;
    let kinds = graph.classify(root);
    let checksum = |p: &Package| {
        p.source
            .and_then(|s| checksums.get(&(p.name.to_owned(), p.version.to_owned(), s.to_owned())))
    };

    let mut components = Vec::new();
    for (&id, &kind) in &kinds {
        if id == root {
            continue;
        }
        let p = &graph.packages[id];
        if p.source.is_some() && checksum(p).is_none() {
            bail!(
                "{} {} ({:?}) has no checksum in Cargo.lock",
                p.name,
                p.version,
                p.source
            );
        }
        let mut c = component(p, kind, checksum(p));
        c["scope"] = json!(if kind == Kind::Build {
            "excluded"
        } else {
            "required"
        });
        components.push(c);
    }
    components.sort_by(|a, b| {
        (a["name"].as_str(), a["version"].as_str())
            .cmp(&(b["name"].as_str(), b["version"].as_str()))
    });

    let mut dependencies = Vec::new();
    for &id in kinds.keys() {
        let p = &graph.packages[id];
        let depends_on: BTreeSet<String> = graph
            .edges
            .get(id)
            .into_iter()
            .flatten()
            .filter(|(dep, _, _)| kinds.contains_key(dep))
            .map(|(dep, _, _)| {
                let d = &graph.packages[dep];
                purl(d.name, d.version)
            })
            .collect();
        dependencies.push(json!({
            "ref": purl(p.name, p.version),
            "dependsOn": depends_on,
        }));
    }
    dependencies.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));

    let root_pkg = &graph.packages[root];
    let mut root_component = component(root_pkg, Kind::Runtime, None);
    root_component["type"] = json!("application");
    let mut properties = vec![json!({ "name": "sensor:target", "value": ctx.target })];
    if let Some(commit) = &ctx.git_commit {
        properties.push(json!({ "name": "sensor:git-commit", "value": commit }));
    }
    Ok(json!({
        "$schema": format!("http://cyclonedx.org/schema/bom-{SPEC_VERSION}.schema.json"),
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": ctx.serial,
        "version": 1,
        "metadata": {
            "timestamp": ctx.timestamp,
            "lifecycles": [{ "phase": "build" }],
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "xtask",
                    "version": env!("CARGO_PKG_VERSION"),
                    "description": "cargo xtask sbom (from cargo metadata and Cargo.lock)",
                }],
            },
            "component": root_component,
            "properties": properties,
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

/// RFC 3339 UTC from seconds since the epoch (days-to-civil, no date crate needed).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `urn:uuid:` with a random (version 4) UUID.
pub fn random_serial() -> anyhow::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> BomInfo {
        BomInfo {
            timestamp: rfc3339(0),
            serial: "urn:uuid:00000000-0000-4000-8000-000000000000".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            git_commit: None,
        }
    }

    #[test]
    fn purl_percent_encodes_build_metadata() {
        assert_eq!(purl("anyhow", "1.0.104"), "pkg:cargo/anyhow@1.0.104");
        assert_eq!(
            purl("toml", "0.9.12+spec-1.1.0"),
            "pkg:cargo/toml@0.9.12%2Bspec-1.1.0"
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_954_123), "2026-11-29T12:08:43Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn slash_licenses_become_spdx_or() {
        assert_eq!(spdx_expression("MIT/Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_expression("Apache-2.0 / MIT"), "Apache-2.0 OR MIT");
        assert_eq!(spdx_expression("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
    }

    /// A made-up graph with every kind of edge the classifier distinguishes.
    fn fixture() -> Value {
        let reg = CRATES_IO;
        let pkg = |name: &str, source: Option<&str>, kind: &str| {
            json!({
                "id": format!("{name}-id"), "name": name, "version": "1.0.0+x",
                "source": source, "license": "MIT/Apache-2.0",
                "targets": [{ "kind": [kind] }],
            })
        };
        let dep = |name: &str, kinds: &[Option<&str>]| {
            json!({
                "pkg": format!("{name}-id"),
                "dep_kinds": kinds.iter().map(|k| json!({ "kind": k, "target": null })).collect::<Vec<_>>(),
            })
        };
        let node =
            |name: &str, deps: Vec<Value>| json!({ "id": format!("{name}-id"), "deps": deps });
        json!({
            "packages": [
                pkg("sensor", None, "bin"),
                pkg("sensor-ebpf", None, "bin"),
                pkg("a", Some(reg), "lib"),
                pkg("b", Some(reg), "lib"),
                pkg("shared", Some(reg), "lib"),
                pkg("pm", Some(reg), "proc-macro"),
                pkg("syn", Some(reg), "lib"),
                pkg("cc", Some(reg), "lib"),
                pkg("bb", Some(reg), "lib"),
                pkg("ebpf-lib", Some(reg), "lib"),
                pkg("which", Some(reg), "lib"),
                pkg("proptest", Some(reg), "lib"),
                pkg("dev-only", Some(reg), "lib"),
            ],
            "resolve": { "nodes": [
                node("sensor", vec![
                    dep("a", &[None]),
                    dep("pm", &[None]),
                    dep("bb", &[Some("build")]),
                    dep("sensor-ebpf", &[Some("build")]),
                    dep("proptest", &[Some("dev")]),
                ]),
                node("a", vec![dep("b", &[None]), dep("cc", &[Some("build")])]),
                node("b", vec![dep("shared", &[None])]),
                node("pm", vec![dep("syn", &[None])]),
                node("syn", vec![]),
                node("cc", vec![dep("shared", &[None])]),
                node("bb", vec![]),
                node("sensor-ebpf", vec![dep("ebpf-lib", &[None]), dep("which", &[Some("build")])]),
                node("ebpf-lib", vec![]),
                node("which", vec![]),
                node("shared", vec![]),
                node("proptest", vec![dep("dev-only", &[None])]),
                node("dev-only", vec![]),
            ]},
        })
    }

    #[test]
    fn classifies_runtime_bpf_build_and_drops_dev() {
        let meta = fixture();
        let g = Graph::from_metadata(&meta).unwrap();
        let kinds: BTreeMap<&str, Kind> = g
            .classify(g.find("sensor").unwrap())
            .into_iter()
            .map(|(id, k)| (g.packages[id].name, k))
            .collect();
        let expect = BTreeMap::from([
            ("sensor", Kind::Runtime),
            ("a", Kind::Runtime),
            ("b", Kind::Runtime),
            // Reached by runtime code and by a build script: runtime wins.
            ("shared", Kind::Runtime),
            ("sensor-ebpf", Kind::Bpf),
            ("ebpf-lib", Kind::Bpf),
            ("pm", Kind::Build),
            ("syn", Kind::Build),
            ("cc", Kind::Build),
            ("bb", Kind::Build),
            ("which", Kind::Build),
        ]);
        assert_eq!(kinds, expect);

        let checksums = [
            "a", "b", "shared", "pm", "syn", "cc", "bb", "ebpf-lib", "which",
        ]
        .iter()
        .map(|n| {
            (
                (n.to_string(), "1.0.0+x".to_string(), CRATES_IO.to_string()),
                format!("{n}-sum"),
            )
        })
        .collect();
        let bom = build(&g, &checksums, "sensor", &info()).unwrap();
        let comps = bom["components"].as_array().unwrap();
        assert_eq!(
            comps.len(),
            expect.len() - 1,
            "the root is the metadata component"
        );
        let by_name = |n: &str| comps.iter().find(|c| c["name"] == n).unwrap();
        assert_eq!(by_name("syn")["scope"], "excluded");
        assert_eq!(by_name("ebpf-lib")["scope"], "required");
        assert_eq!(by_name("a")["hashes"][0]["content"], "a-sum");
        assert_eq!(by_name("a")["purl"], "pkg:cargo/a@1.0.0%2Bx");
        assert_eq!(
            by_name("a")["licenses"][0]["expression"],
            "MIT OR Apache-2.0"
        );
        assert!(by_name("sensor-ebpf").get("hashes").is_none());
        assert_eq!(bom["metadata"]["component"]["name"], "sensor");
        assert_eq!(bom["metadata"]["component"]["type"], "application");
        let root_deps = bom["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == "pkg:cargo/sensor@1.0.0%2Bx")
            .unwrap();
        let names: Vec<&str> = root_deps["dependsOn"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains("proptest")), "{names:?}");
        assert_eq!(names.len(), 4, "a, pm, bb, sensor-ebpf: {names:?}");

        // A registry crate without a Cargo.lock checksum is an error, not a hashless entry.
        let partial = checksums_without(&checksums, "b");
        assert!(build(&g, &partial, "sensor", &info()).is_err());
    }

    fn checksums_without(
        all: &HashMap<(String, String, String), String>,
        name: &str,
    ) -> HashMap<(String, String, String), String> {
        all.iter()
            .filter(|((n, _, _), _)| n != name)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The real workspace: every crate the sensor's Cargo.lock entry reaches (dev-dependencies
    /// of the sensor aside) is listed exactly once with its purl and Cargo.lock SHA-256, unless
    /// cargo resolved it away for this platform; nothing outside that set is listed.
    #[test]
    fn workspace_sbom_covers_the_lockfile() {
        let root = crate::root();
        let out = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .current_dir(&root)
            .args(["metadata", "--format-version", "1", "--locked"])
            .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
            .args(["--filter-platform", "bpfel-unknown-none"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
        let lock_text = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        let g = Graph::from_metadata(&meta).unwrap();
        let sums = lock_checksums(&lock_text).unwrap();
        let bom = build(&g, &sums, "sensor", &info()).unwrap();

        // Independently: walk Cargo.lock's own dependency lists from sensor.
        let lock: toml::Table = toml::from_str(&lock_text).unwrap();
        let pkgs = lock["package"].as_array().unwrap();
        let key = |p: &toml::Value| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        };
        let resolve = |spec: &str| -> (String, String) {
            // "name" or "name version" (or "name version (source)").
            let mut it = spec.split(' ');
            let name = it.next().unwrap();
            match it.next() {
                Some(v) => (name.to_owned(), v.to_owned()),
                None => key(pkgs
                    .iter()
                    .find(|p| p["name"].as_str() == Some(name))
                    .unwrap()),
            }
        };
        let sensor_dev: BTreeSet<String> = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "sensor" && p["source"].is_null())
            .unwrap()["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "dev")
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        assert!(sensor_dev.contains("proptest"));
        let mut reach = BTreeSet::new();
        let mut queue = VecDeque::from([("sensor".to_owned(), "0.1.0".to_owned())]);
        while let Some(k) = queue.pop_front() {
            if !reach.insert(k.clone()) {
                continue;
            }
            let p = pkgs.iter().find(|p| key(p) == k).unwrap();
            for d in p
                .get("dependencies")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
            {
                let d = resolve(d.as_str().unwrap());
                if k.0 == "sensor" && sensor_dev.contains(&d.0) {
                    continue;
                }
                queue.push_back(d);
            }
        }
        reach.remove(&("sensor".to_owned(), "0.1.0".to_owned()));

        let comps = bom["components"].as_array().unwrap();
        let mut listed = BTreeSet::new();
        for c in comps {
            let k = (
                c["name"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap().to_owned(),
            );
            assert!(listed.insert(k.clone()), "{k:?} listed twice");
            assert!(
                reach.contains(&k),
                "{k:?} listed but not reachable in Cargo.lock"
            );
            assert_eq!(c["purl"], purl(&k.0, &k.1));
            assert_eq!(c["bom-ref"], c["purl"]);
            assert!(
                !c["licenses"].as_array().unwrap().is_empty(),
                "{k:?} has no license"
            );
            let registry = c["properties"][1]["value"] == "crates.io";
            if registry {
                let sum = &sums[&(k.0.clone(), k.1.clone(), CRATES_IO.to_owned())];
                assert_eq!(c["hashes"][0]["alg"], "SHA-256");
                assert_eq!(c["hashes"][0]["content"].as_str(), Some(sum.as_str()));
            } else {
                assert!(
                    k.0.starts_with("sensor-"),
                    "{k:?} is neither crates.io nor ours"
                );
            }
        }
        // Whatever the lockfile reaches but the SBOM leaves out must be a crate cargo resolved
        // away for Linux/BPF (windows-sys and the like), i.e. absent from the filtered graph.
        let resolved: BTreeSet<(String, String)> = g
            .edges
            .keys()
            .map(|id| {
                let p = &g.packages[id];
                (p.name.to_owned(), p.version.to_owned())
            })
            .collect();
        for k in reach.difference(&listed) {
            assert!(
                !resolved.contains(k),
                "{k:?} is resolved for Linux but not listed"
            );
        }
        // Every edge points at something listed (or the root).
        let refs: BTreeSet<&str> = comps
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .chain([bom["metadata"]["component"]["bom-ref"].as_str().unwrap()])
            .collect();
        let deps = bom["dependencies"].as_array().unwrap();
        assert_eq!(deps.len(), refs.len());
        for d in deps {
            assert!(refs.contains(d["ref"].as_str().unwrap()));
            for on in d["dependsOn"].as_array().unwrap() {
                assert!(refs.contains(on.as_str().unwrap()), "dangling {on}");
            }
        }
        let scope = |n: &str| {
            comps.iter().find(|c| c["name"] == n).unwrap()["scope"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(scope("aya"), "required");
        assert_eq!(scope("sensor-ebpf"), "required");
        assert_eq!(scope("aya-ebpf"), "required");
        assert_eq!(scope("aya-build"), "excluded");
        assert_eq!(scope("serde_derive"), "excluded");
        assert!(!listed.iter().any(|(n, _)| n == "proptest"));
    }
}
