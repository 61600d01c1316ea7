//! `cargo xtask bench` (being written).
pub struct BenchOpts {
    pub sensor_bin: std::path::PathBuf,
    pub rounds: usize,
    pub quick: bool,
    pub out_json: Option<std::path::PathBuf>,
}

pub fn run(_opts: BenchOpts) -> anyhow::Result<()> {
    anyhow::bail!("bench: not written yet")
}
