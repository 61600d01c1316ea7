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
    /// Render an (edited) profile file again as seccomp and AppArmor.
    Render {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = FormatArg::All)]
        format: FormatArg,
        #[arg(long, short, default_value = "profiles")]
        out: PathBuf,
        #[arg(long)]
        complain: bool,
    },
    /// Each workload's profile stage, coverage, out-of-profile counts and readiness.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Evaluate the profile without enforcing it: out-of-profile execs, connects and (where the
    /// kernel enforces files) file opens are counted and alerted (`sensor.profile.would_deny`).
    Shadow { workload: String },
    /// Enforce a shadowed profile once its promotion criterion holds (or with --force).
    Enforce {
        workload: String,
        #[arg(long)]
        force: bool,
    },
    /// Stop shadowing or enforcing.
    Off { workload: String },
    /// Learn the out-of-profile behaviour held since shadowing (self-heal after review).
    Approve { workload: String },
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

fn formats(f: FormatArg) -> &'static [Format] {
    match f {
        FormatArg::Sensor => &[Format::Sensor],
        FormatArg::Seccomp => &[Format::Seccomp],
        FormatArg::Apparmor => &[Format::AppArmor],
        FormatArg::All => &[Format::Sensor, Format::Seccomp, Format::AppArmor],
    }
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
            let written = profile::write(&p, formats(format), &out, complain)
                .with_context(|| format!("writing into {}", out.display()))?;
            for w in written {
                println!("{}", w.display());
            }
            Ok(())
        }
        ProfileCommand::Status { json } => {
            let crate::baseline::Reply::Profiles(list) = super::baseline::command(
                state,
                config,
                None,
                crate::baseline::Command::ProfileStatus,
            )?
            else {
                bail!("unexpected reply");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!(
                "{:<44} {:<10} {:<8} {:>8} {:>8} {:>6} {:>6} {:>7}  READY",
                "WORKLOAD",
                "BASELINE",
                "STAGE",
                "COVERAGE",
                "CHECKED",
                "WOULD",
                "DENIED",
                "PENDING"
            );
            for p in &list {
                println!(
                    "{:<44} {:<10} {:<8} {:>8} {:>8} {:>6} {:>6} {:>7}  {}",
                    crate::escape::escape_str(&p.workload, 44),
                    p.baseline_mode.as_str(),
                    p.stage.map_or("-", |s| s.as_str()),
                    p.coverage
                        .map_or("-".into(), |c| format!("{:.1}%", c * 100.0)),
                    p.checked,
                    p.would_deny,
                    p.denied,
                    p.pending,
                    match (&p.stage, p.ready) {
                        (Some(crate::baseline::model::Stage::Shadow), true) => "ready".to_owned(),
                        (Some(crate::baseline::model::Stage::Shadow), false) =>
                            p.readiness.clone().unwrap_or_default(),
                        _ => String::new(),
                    }
                );
                if let Some(k) = p.kernel {
                    println!(
                        "    kernel: exec denied {} / would deny {}, connect denied {} / would deny {}, file open denied {} / would deny {}",
                        k.exec_denied,
                        k.exec_would_deny,
                        k.connect_denied,
                        k.connect_would_deny,
                        k.file_denied,
                        k.file_would_deny
                    );
                }
            }
            Ok(())
        }
        ProfileCommand::Shadow { workload } => done(
            state,
            config,
            crate::baseline::Command::ProfileShadow { workload },
        ),
        ProfileCommand::Enforce { workload, force } => done(
            state,
            config,
            crate::baseline::Command::ProfileEnforce { workload, force },
        ),
        ProfileCommand::Off { workload } => done(
            state,
            config,
            crate::baseline::Command::ProfileOff { workload },
        ),
        ProfileCommand::Approve { workload } => done(
            state,
            config,
            crate::baseline::Command::ProfileApprove { workload },
        ),
        ProfileCommand::Render {
            file,
            format,
            out,
            complain,
        } => {
            let p = load(&file)?;
            let formats: Vec<Format> = formats(format)
                .iter()
                .copied()
                .filter(|f| *f != Format::Sensor)
                .collect();
            for w in profile::write(&p, &formats, &out, complain)
                .with_context(|| format!("writing into {}", out.display()))?
            {
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

fn done(
    state: &StateDir,
    config: Option<&Path>,
    cmd: crate::baseline::Command,
) -> anyhow::Result<()> {
    match super::baseline::command(state, config, None, cmd)? {
        crate::baseline::Reply::Done(m) => {
            println!("{}", crate::escape::escape_str(&m, 400));
            Ok(())
        }
        _ => bail!("unexpected reply"),
    }
}

pub fn exec(state: &StateDir, config: Option<&Path>, args: ExecArgs) -> anyhow::Result<()> {
    // The profile's bundle signature is checked as the agent checks rules ([signing]).
    let cfg = crate::config::Config::load(config)?;
    let record = crate::signing::Record::BestEffort;
    let gate = crate::signing::Gate::new(&cfg.signing, &state.0, record)?;
    gate.admit(
        crate::signing::Kind::Profiles,
        std::slice::from_ref(&args.profile),
    )?;
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
