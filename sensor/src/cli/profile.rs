//! `sensor profile ...` and `sensor exec --profile`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::{
    config::StateDir,
    profile::{self, DefaultAction, Format, Profile},
};

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FormatArg {
    /// The sensor profile (for `sensor exec --profile`).
    Sensor,
    /// OCI seccomp JSON (runc, podman, Docker, Kubernetes localhost profiles).
    Seccomp,
    Apparmor,
    All,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ActionArg {
    Errno,
    Log,
    Kill,
}

#[derive(Subcommand, Debug)]
enum ProfileCommand {
    /// Render enforcement profiles from a frozen baseline.
    Generate {
        workload: String,
        #[arg(long, value_enum, default_value_t = FormatArg::All)]
        format: FormatArg,
        /// Directory to write into.
        #[arg(long, short, default_value = "profiles")]
        out: PathBuf,
        /// What seccomp does with a syscall the profile does not list.
        #[arg(long, value_enum, default_value_t = ActionArg::Errno)]
        default_action: ActionArg,
        /// The AppArmor profile in complain mode (log, do not deny).
        #[arg(long)]
        complain: bool,
        /// Read the baseline from this store file instead of the agent.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Validate a profile file (`*.profile.json`): every problem names its field.
    Check { file: PathBuf },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The sensor profile (`*.profile.json` from `sensor profile generate`).
    #[arg(long)]
    profile: PathBuf,
    /// Print what was applied to stderr before running the command.
    #[arg(long)]
    verbose: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn load(path: &Path) -> anyhow::Result<Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Profile::parse(&text, &path.display().to_string())?)
}

pub fn main(state: &StateDir, config: Option<&Path>, args: ProfileArgs) -> anyhow::Result<()> {
    match args.command {
        ProfileCommand::Generate {
            workload,
            format,
            out,
            default_action,
            complain,
            db,
        } => {
            let b = super::baseline::fetch(state, config, db.as_deref(), &workload)?;
            let mut p = Profile::from_baseline(&b, crate::clock::Clock::unix_now())?;
            p.seccomp_default = match default_action {
                ActionArg::Errno => DefaultAction::Errno,
                ActionArg::Log => DefaultAction::Log,
                ActionArg::Kill => DefaultAction::Kill,
            };
            let formats: &[Format] = match format {
                FormatArg::Sensor => &[Format::Sensor],
                FormatArg::Seccomp => &[Format::Seccomp],
                FormatArg::Apparmor => &[Format::AppArmor],
                FormatArg::All => &[Format::Sensor, Format::Seccomp, Format::AppArmor],
            };
            let written = profile::write(&p, formats, &out, complain)
                .with_context(|| format!("writing into {}", out.display()))?;
            for w in written {
                println!("{}", w.display());
            }
            Ok(())
        }
        ProfileCommand::Check { file } => {
            let p = load(&file)?;
            println!(
                "{}: ok ({}, baseline version {}: {} executables, {} read, {} write paths, {} syscalls, {} ports)",
                file.display(),
                crate::escape::escape_str(&p.workload, 200),
                p.baseline_version,
                p.executables.len(),
                p.read.len(),
                p.write.len(),
                p.syscalls.len(),
                p.connect_ports.len() + p.bind_ports.len()
            );
            Ok(())
        }
    }
}

pub fn exec(args: ExecArgs) -> anyhow::Result<()> {
    let p = load(&args.profile)?;
    let verbose = args.verbose;
    let e = profile::exec::exec(&p, &args.command, |a| {
        if verbose {
            eprintln!(
                "sensor exec: landlock ABI {} ({} paths, {} absent here{}), seccomp {} syscalls (default {:?}), {} capabilities kept",
                a.landlock_abi,
                a.landlock_paths,
                a.landlock_missing,
                if a.tcp_ports {
                    ", TCP ports"
                } else {
                    ", no TCP port rules on this ABI"
                },
                a.syscalls,
                p.seccomp_default,
                a.caps_kept
            );
        }
    });
    bail!("{e}")
}
