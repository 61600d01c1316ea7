//! `sensor baseline ...`: commands go to the running agent over the control socket; when no
//! agent runs (or `--db` names a file), they act on the store directly with the same code.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::{
    api::{ApiError, Request, Response, client::Client},
    baseline::{self, Command, Reply, Summary, model::Mode, score::span, store::Store},
    config::{Config, StateDir},
    escape::escape_str,
};

#[derive(Args, Debug)]
pub struct BaselineArgs {
    /// Act on this store file directly instead of the running agent.
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: BaselineCommand,
}

#[derive(Subcommand, Debug)]
enum BaselineCommand {
    /// Every workload with its mode and learning progress.
    List {
        #[arg(long)]
        json: bool,
        /// Refresh every 2 s (the learning progress view) until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// One workload's baseline: what it learned, its deviations, its stored versions.
    Show {
        workload: String,
        #[arg(long)]
        json: bool,
    },
    /// What changed against an earlier version (default: the newest archived one) or an
    /// exported file, and the deviations seen since.
    Diff {
        workload: String,
        #[arg(long)]
        version: Option<u32>,
        #[arg(long, conflicts_with = "version")]
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write the baseline as JSON (to review, edit and import).
    Export {
        workload: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Load an exported (possibly edited) baseline; it takes effect frozen.
    Import { file: PathBuf },
    /// Start or continue learning (creates the workload if new).
    Learn {
        workload: String,
        /// Learn at least this long: `90s`, `10m`, `2h`, `1d`.
        #[arg(long = "for", value_parser = parse_duration)]
        for_secs: Option<u64>,
        /// Show the learning progress until the workload leaves learning.
        #[arg(long)]
        watch: bool,
    },
    /// Stop learning: deviations are anomalies; nothing changes the baseline but an operator.
    Freeze {
        /// A workload key, or nothing with --all.
        workload: Option<String>,
        #[arg(long, conflicts_with = "workload")]
        all: bool,
    },
    /// Archive the current version and learn from scratch.
    Reset { workload: String },
}

/// `90`, `90s`, `10m`, `2h`, `1d` → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 90s, 10m, 2h, 1d)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

/// Where commands go.
enum Target {
    Agent(PathBuf),
    Store {
        engine: Box<baseline::Engine>,
        store: Box<Store>,
    },
}

impl Target {
    fn open(state: &StateDir, config: Option<&Path>, db: Option<&Path>) -> anyhow::Result<Self> {
        let socket = state.socket();
        if db.is_none() && std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(Target::Agent(socket));
        }
        let cfg = Config::load(config)?;
        let path = db.map_or_else(|| state.baselines(), Path::to_path_buf);
        if db.is_none() {
            if !path.exists() {
                bail!(
                    "no agent at {} and no baseline store at {} (is the agent running with this --state-dir? --db FILE names a store)",
                    socket.display(),
                    path.display()
                );
            }
            eprintln!(
                "(no agent at {}: acting on {})",
                socket.display(),
                path.display()
            );
        }
        let store = Store::open(&path, cfg.baseline.keep_versions)?;
        let (loaded, problems) = store.load()?;
        for p in problems {
            eprintln!("warning: {p}");
        }
        let mut engine = baseline::Engine::new(cfg.baseline);
        engine.load(loaded);
        Ok(Target::Store {
            engine: Box::new(engine),
            store: Box::new(store),
        })
    }

    fn run(&mut self, cmd: Command) -> anyhow::Result<Reply> {
        match self {
            Target::Agent(socket) => {
                match Client::ask(socket, &Request::Baseline { command: cmd }) {
                    Ok(Response::Baseline(r)) => Ok(*r),
                    Ok(_) => bail!("unexpected response from the agent"),
                    Err(ApiError::Refused(e)) => bail!("{e}"),
                    Err(e) => Err(e.into()),
                }
            }
            Target::Store { engine, store } => {
                let now = crate::clock::Clock::unix_now();
                Ok(baseline::apply(engine, Some(&mut **store), cmd, now))
            }
        }
    }

    /// Run; an error reply is an error.
    fn ok(&mut self, cmd: Command) -> anyhow::Result<Reply> {
        match self.run(cmd)? {
            Reply::Error(e) => bail!("{e}"),
            r => Ok(r),
        }
    }
}

pub fn main(state: &StateDir, config: Option<&Path>, args: BaselineArgs) -> anyhow::Result<()> {
    let mut t = Target::open(state, config, args.db.as_deref())?;
    match args.command {
        BaselineCommand::List { json, watch } => loop {
            let Reply::List(list) = t.ok(Command::List)? else {
                bail!("unexpected reply");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", table(&list));
            }
            if !watch {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
            println!();
        },
        BaselineCommand::Show { workload, json } => {
            let Reply::Show {
                summary,
                baseline,
                versions,
            } = t.ok(Command::Show { workload })?
            else {
                bail!("unexpected reply");
            };
            if json {
                let v = serde_json::json!({"summary": summary, "baseline": baseline, "versions": versions});
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print!("{}", table(std::slice::from_ref(&summary)));
            for (name, set) in baseline.model.sets() {
                if set.is_empty() {
                    continue;
                }
                println!("{name} ({}):", set.len());
                for (v, seen) in &set.items {
                    println!("  {:<60} x{}", escape_str(v, 200), seen.n);
                }
            }
            if !baseline.model.syscalls.is_empty() {
                println!(
                    "syscalls ({}): {:?}",
                    baseline.model.syscalls.len(),
                    baseline.model.syscalls
                );
            }
            let hours: Vec<String> = (0..24)
                .filter(|h| baseline.model.hours[*h] > 0)
                .map(|h| format!("{h:02}h"))
                .collect();
            println!("active hours (UTC): {}", hours.join(" "));
            let r = &baseline.model.rates;
            println!(
                "per-minute max: exec {}, open {}, connect {} over {} active minutes",
                r.exec.max, r.open.max, r.connect.max, r.exec.minutes
            );
            print_deviations(&baseline.deviations);
            for v in versions {
                println!(
                    "stored version {} ({}, {} values, archived {})",
                    v.version,
                    v.mode,
                    v.values,
                    crate::alert::format_timestamp(
                        time::OffsetDateTime::from_unix_timestamp(v.archived)
                            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                    )
                );
            }
            Ok(())
        }
        BaselineCommand::Diff {
            workload,
            version,
            file,
            json,
        } => {
            let against = match file {
                Some(f) => Some(Box::new(read_export(&f)?)),
                None => None,
            };
            let Reply::Diff(d) = t.ok(Command::Diff {
                workload,
                version,
                against,
            })?
            else {
                bail!("unexpected reply");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(());
            }
            println!("{}: {} → {}", escape_str(&d.workload, 200), d.from, d.to);
            if d.features.is_empty() && d.syscalls_added.is_empty() && d.syscalls_removed.is_empty()
            {
                println!("  no learned differences");
            }
            for f in &d.features {
                for v in &f.added {
                    println!("  + {:<12} {}", f.feature, escape_str(v, 200));
                }
                for v in &f.removed {
                    println!("  - {:<12} {}", f.feature, escape_str(v, 200));
                }
            }
            if !d.syscalls_added.is_empty() {
                println!("  + syscalls    {:?}", d.syscalls_added);
            }
            if !d.syscalls_removed.is_empty() {
                println!("  - syscalls    {:?}", d.syscalls_removed);
            }
            print_deviations(&d.deviations);
            Ok(())
        }
        BaselineCommand::Export { workload, output } => {
            let Reply::Baseline(b) = t.ok(Command::Export { workload })? else {
                bail!("unexpected reply");
            };
            let text = serde_json::to_string_pretty(&b)? + "\n";
            match output {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        BaselineCommand::Import { file } => {
            let b = read_export(&file)?;
            done(t.ok(Command::Import {
                baseline: Box::new(b),
            })?)
        }
        BaselineCommand::Learn {
            workload,
            for_secs,
            watch,
        } => {
            done(t.ok(Command::Learn {
                workload: workload.clone(),
                for_secs,
            })?)?;
            // Until the workload leaves learning (or Ctrl-C).
            if !watch {
                return Ok(());
            }
            loop {
                std::thread::sleep(std::time::Duration::from_secs(2));
                let Reply::List(list) = t.ok(Command::List)? else {
                    bail!("unexpected reply");
                };
                let Some(s) = list.into_iter().find(|s| s.workload == workload) else {
                    bail!("{workload} disappeared");
                };
                println!("{}", progress(&s));
                if s.mode != Mode::Learning {
                    break;
                }
            }
            Ok(())
        }
        BaselineCommand::Freeze { workload, all } => {
            let keys = match (workload, all) {
                (Some(w), _) => vec![w],
                (None, true) => {
                    let Reply::List(list) = t.ok(Command::List)? else {
                        bail!("unexpected reply");
                    };
                    list.into_iter().map(|s| s.workload).collect()
                }
                (None, false) => bail!("name a workload, or use --all"),
            };
            for workload in keys {
                done(t.ok(Command::Freeze { workload })?)?;
            }
            Ok(())
        }
        BaselineCommand::Reset { workload } => done(t.ok(Command::Reset { workload })?),
    }
}

fn done(r: Reply) -> anyhow::Result<()> {
    match r {
        Reply::Done(m) => {
            println!("{}", escape_str(&m, 400));
            Ok(())
        }
        _ => bail!("unexpected reply"),
    }
}

fn read_export(path: &Path) -> anyhow::Result<baseline::model::Baseline> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    baseline::parse_export(&text, &path.display().to_string()).map_err(anyhow::Error::msg)
}

fn print_deviations(d: &[baseline::model::Deviation]) {
    if d.is_empty() {
        return;
    }
    println!("deviations since learning ended ({}):", d.len());
    for d in d {
        println!(
            "  {:<12} {:<50} x{} (score {})",
            d.feature,
            escape_str(&d.value, 200),
            d.seen.n,
            d.score
        );
    }
}

fn progress(s: &Summary) -> String {
    format!(
        "{} {}: {} events, {} values, {:.1} new per 1000 events, quiet for {}{}",
        escape_str(&s.workload, 200),
        s.mode.as_str(),
        s.events,
        s.values,
        s.novelty_per_1000,
        span(s.since_novel_secs),
        s.stable_in_secs
            .map(|x| format!(", stable in about {}", span(x)))
            .unwrap_or_default()
    )
}

pub fn table(list: &[Summary]) -> String {
    let mut o = format!(
        "{:<48} {:<10} {:>3} {:>9} {:>7} {:>8} {:>9} {:>10} {:>5}\n",
        "WORKLOAD", "MODE", "VER", "EVENTS", "VALUES", "NEW/1K", "QUIET", "STABLE IN", "DEV"
    );
    for s in list {
        o.push_str(&format!(
            "{:<48} {:<10} {:>3} {:>9} {:>7} {:>8.1} {:>9} {:>10} {:>5}\n",
            escape_str(&s.workload, 48),
            s.mode.as_str(),
            s.version,
            s.events,
            s.values,
            s.novelty_per_1000,
            span(s.since_novel_secs),
            s.stable_in_secs.map(span).unwrap_or_else(|| "-".into()),
            s.deviations
        ));
    }
    if list.is_empty() {
        o.push_str("(no workloads yet)\n");
    }
    o
}

/// Run one baseline command on the running agent or the store (for `sensor profile`).
pub fn command(
    state: &StateDir,
    config: Option<&Path>,
    db: Option<&Path>,
    cmd: Command,
) -> anyhow::Result<Reply> {
    Target::open(state, config, db)?.ok(cmd)
}

/// A workload's baseline, from the running agent or the store (for `sensor profile`).
pub fn fetch(
    state: &StateDir,
    config: Option<&Path>,
    db: Option<&Path>,
    workload: &str,
) -> anyhow::Result<baseline::model::Baseline> {
    let export = Command::Export {
        workload: workload.to_owned(),
    };
    match command(state, config, db, export)? {
        Reply::Baseline(b) => Ok(*b),
        _ => bail!("unexpected reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_explain() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        for bad in ["", "0", "5y", "m", "-3s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
