//! Builds the eBPF object with aya-build so a plain `cargo build` / `cargo run` is complete.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
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
