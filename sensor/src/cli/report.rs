//! `sensor report compliance`: evidence for SOC 2 or ISO 27001 from the audit trail and the
//! alert log (works with or without a running agent: both are files in the state dir).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::{
    compliance::{self, Framework},
    config::StateDir,
    output::alert_log::{AlertFilter, read_recent},
};

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Map the sensor's controls to a framework's criteria, with evidence counts.
    Compliance {
        /// soc2 or iso27001.
        #[arg(long)]
        framework: String,
        /// Start of the period: YYYY-MM-DD (UTC midnight) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        /// Directory for compliance-<framework>.md, .html and .json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the JSON report instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

/// Alerts read for a report at most (the newest).
const MAX_ALERTS: usize = 1_000_000;

pub fn main(state: &StateDir, args: ReportArgs) -> anyhow::Result<()> {
    let ReportCommand::Compliance {
        framework,
        since,
        out,
        json,
    } = args.command;
    let framework: Framework = framework.parse()?;
    let since = compliance::parse_since(&since)?;
    let trail = state.0.join("audit.jsonl");
    let entries = crate::audit::read(&trail);
    let chain = if trail.exists() {
        crate::audit::verify(&trail)
    } else {
        Err(format!("{}: no audit trail yet", trail.display()))
    };
    let recent = read_recent(&state.alerts(), MAX_ALERTS, &AlertFilter::default())
        .with_context(|| format!("reading the alert log in {}", state.alerts().display()))?;
    let report = compliance::build(
        framework,
        since,
        &entries,
        chain,
        &recent.alerts,
        recent.skipped_lines,
    );
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = match framework {
            Framework::Soc2 => "compliance-soc2",
            Framework::Iso27001 => "compliance-iso27001",
        };
        for (ext, body) in [
            ("md", compliance::markdown(&report)),
            ("html", compliance::html(&report)),
            ("json", text.clone()),
        ] {
            let path = dir.join(format!("{stem}.{ext}"));
            std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
            println!("{}", path.display());
        }
    } else if json {
        println!("{text}");
    } else {
        print!("{}", compliance::markdown(&report));
    }
    Ok(())
}
