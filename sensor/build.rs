//! Builds the eBPF object with aya-build so a plain `cargo build` / `cargo run` is complete.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// The shipped ruleset (`rules/*.yaml` at the workspace root) is embedded in the binary so
/// `sensor run` detects with no files installed.
fn embed_rules() -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    let mut out = String::from(
        "/// (file name, contents) of every shipped rule file.\npub static BUILTIN_RULES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("rule file name is not UTF-8: {}", f.display()))?;
        let abs = f.canonicalize().context("canonicalize rule file")?;
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR")?;
    std::fs::write(std::path::Path::new(&out_dir).join("builtin_rules.rs"), out)
        .context("write builtin_rules.rs")?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    embed_rules()?;
    let meta = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "sensor-ebpf")
        .ok_or_else(|| anyhow!("sensor-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("sensor-ebpf manifest has no parent directory"))?;
    // The pinned stable toolchain builds `core` for the BPF target only with bootstrap enabled;
    // set it for the nested eBPF cargo alone (aya-build reads it and adds -Z build-std=core).
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::Custom("1.95.0"),
    )
}
