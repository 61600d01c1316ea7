use std::path::PathBuf;

/// Rebuild when bpf-linker changes, so a toolchain update is picked up.
fn main() {
    let bpf_linker = which::which("bpf-linker").unwrap_or_else(|_| PathBuf::from("bpf-linker"));
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
}
