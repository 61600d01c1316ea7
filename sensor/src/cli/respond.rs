//! `sensor contain`, `sensor release`, `sensor playbooks`, `sensor evidence`, `sensor audit`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::{
    api::{Request, Response, client::Client},
    config::{Config, StateDir},
    respond::{
        responder::{ContainReply, ContainRequest},
        target::Target,
    },
};

/// Which processes an action covers. Exactly one.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// One process.
    #[arg(long)]
    pid: Option<u32>,
    /// A process and all its descendants.
    #[arg(long)]
    tree: Option<u32>,
    /// A cgroup: a path under the cgroup v2 mount, or an absolute /sys/fs/cgroup/... path.
    #[arg(long)]
    cgroup: Option<String>,
    /// A container (id, or a unique prefix of at least 12 characters).
    #[arg(long)]
    container: Option<String>,
    /// The whole host (isolate only; needs respond.allow_host_isolation).
    #[arg(long)]
    host: bool,
}

impl TargetArgs {
    fn target(&self) -> Target {
        match (self.pid, self.tree, &self.cgroup, &self.container) {
            (Some(pid), ..) => Target::Process { pid, start: None },
            (_, Some(pid), ..) => Target::Tree { pid, start: None },
            (_, _, Some(path), _) => Target::Cgroup { path: path.clone() },
            (_, _, _, Some(id)) => Target::Container { id: id.clone() },
            _ => Target::Host,
        }
    }
}

#[derive(Args, Debug)]
pub struct ContainArgs {
    #[command(subcommand)]
    command: ContainCommand,
}

#[derive(Subcommand, Debug)]
enum ContainCommand {
    /// Kill a process, a tree, or everything in a cgroup or container.
    Kill {
        #[command(flatten)]
        target: TargetArgs,
        /// Check the guards and say what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Freeze (stop every task of) a process, tree, cgroup or container; `sensor release ID`
    /// thaws it.
    Freeze {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cut a process, tree, cgroup, container (or the host) off the network, except the
    /// allow-list (`respond.isolation_allow`, the sensor's outputs, and --allow).
    Isolate {
        #[command(flatten)]
        target: TargetArgs,
        /// Also keep this reachable: `ip`, `ip:port` or `[v6]:port` (repeatable).
        #[arg(long)]
        allow: Vec<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Deny executing a file from now on (by device and inode; its SHA-256 is recorded), or
    /// with --sha256 every program with that hash (killed at its first exec, its inode then
    /// denied in the kernel).
    DenyExec {
        #[arg(required_unless_present = "sha256", conflicts_with = "sha256")]
        path: Option<String>,
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Move a file into quarantine (hash, metadata and original path kept, permissions
    /// removed); `sensor release ID` restores it exactly.
    Quarantine {
        path: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run a playbook run that waits for approval.
    Approve {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Undo every reversible step of a playbook run.
    Rollback {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Containments in force, runs waiting for approval, and quarantined files.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The containment id (`sensor contain list`).
    id: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct PlaybooksArgs {
    #[command(subcommand)]
    command: PlaybooksCommand,
}

#[derive(Subcommand, Debug)]
enum PlaybooksCommand {
    /// Check playbook files (without paths: the configured ones). Errors name file:line:column.
    Check { paths: Vec<PathBuf> },
}

#[derive(Args, Debug)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    command: EvidenceCommand,
}

#[derive(Subcommand, Debug)]
enum EvidenceCommand {
    /// Collect a signed evidence bundle for a process tree (through the running agent).
    Collect {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        incident: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Verify a bundle: every item's hash, nothing missing, added or reordered, the custody
    /// chain, and the signature. Exit status 1 when anything is wrong.
    Verify {
        bundle: PathBuf,
        /// The signer's public key file (default: <state>/keys/evidence-signing.pub; without
        /// it the key inside the manifest is used, which proves integrity, not origin).
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Bundles under <state>/evidence.
    List,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the audit trail's hash chain.
    Verify,
    /// Print the audit trail.
    Show {
        #[arg(long)]
        json: bool,
    },
}

fn ask(state: &StateDir, request: ContainRequest) -> anyhow::Result<ContainReply> {
    match Client::ask(&state.socket(), &Request::Contain { request })? {
        Response::Contain(r) => Ok(*r),
        _ => bail!("unexpected response from the agent"),
    }
}

fn show(reply: ContainReply, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    }
    match reply {
        ContainReply::Done {
            message,
            containment,
            ..
        } => {
            if !json {
                match containment {
                    Some(id) => println!("{message}\nrelease with: sensor release {id}"),
                    None => println!("{message}"),
                }
            }
            Ok(())
        }
        ContainReply::Refused(m) => bail!("refused: {m}"),
        ContainReply::Failed(m) => bail!("failed: {m}"),
        ContainReply::Listing(l) => {
            if !json {
                if l.active.is_empty() {
                    println!("no containment in force");
                }
                for c in &l.active {
                    println!(
                        "{:<18} {:<10} {} (since {}, by {})",
                        c.id,
                        serde_json::to_value(c.kind)?.as_str().unwrap_or(""),
                        crate::escape::escape_str(&c.target, 200),
                        c.created,
                        c.actor
                    );
                }
                for p in &l.pending {
                    println!(
                        "pending {} playbook {}: {} (approve with `sensor contain approve {}`)",
                        p.run,
                        p.playbook,
                        p.steps.join(", "),
                        p.run
                    );
                }
            }
            Ok(())
        }
    }
}

pub fn contain(state: &StateDir, args: ContainArgs) -> anyhow::Result<()> {
    let (req, json) = match args.command {
        ContainCommand::Kill {
            target,
            dry_run,
            json,
        } => (
            ContainRequest::Kill {
                target: target.target(),
                dry_run,
            },
            json,
        ),
        ContainCommand::Freeze {
            target,
            dry_run,
            json,
        } => (
            ContainRequest::Freeze {
                target: target.target(),
                dry_run,
            },
            json,
        ),
        ContainCommand::Isolate {
            target,
            allow,
            dry_run,
            json,
        } => (
            ContainRequest::Isolate {
                target: target.target(),
                allow,
                dry_run,
            },
            json,
        ),
        ContainCommand::DenyExec {
            path,
            sha256,
            dry_run,
            json,
        } => (
            ContainRequest::DenyExec {
                path: path.as_deref().map(absolute).transpose()?,
                sha256,
                dry_run,
            },
            json,
        ),
        ContainCommand::Quarantine {
            path,
            dry_run,
            json,
        } => (
            ContainRequest::Quarantine {
                path: absolute(&path)?,
                dry_run,
            },
            json,
        ),
        ContainCommand::Approve { run, json } => (ContainRequest::Approve { run }, json),
        ContainCommand::Rollback { run, json } => (ContainRequest::Rollback { run }, json),
        ContainCommand::List { json } => (ContainRequest::List, json),
    };
    show(ask(state, req)?, json)
}

/// The agent resolves paths in its own working directory: send absolute ones.
fn absolute(path: &str) -> anyhow::Result<String> {
    let p = std::path::Path::new(path);
    Ok(if p.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(p).display().to_string()
    })
}

pub fn release(state: &StateDir, args: ReleaseArgs) -> anyhow::Result<()> {
    show(
        ask(state, ContainRequest::Release { id: args.id })?,
        args.json,
    )
}

pub fn playbooks(config: Option<&std::path::Path>, args: PlaybooksArgs) -> anyhow::Result<()> {
    let PlaybooksCommand::Check { paths } = args.command;
    let paths = if paths.is_empty() {
        Config::load(config)?.respond.playbooks
    } else {
        paths
    };
    match crate::respond::playbook::load(&paths) {
        Ok(pbs) => {
            for p in &pbs {
                let steps: Vec<&str> = p.steps.iter().map(|s| s.name()).collect();
                println!(
                    "ok  {:<32} {:<8} {} ({})",
                    p.id,
                    p.mode.as_str(),
                    steps.join(" → "),
                    p.source
                );
            }
            println!("{} playbooks OK", pbs.len());
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!("{} problems in playbooks", errors.len())
        }
    }
}

pub fn evidence(state: &StateDir, args: EvidenceArgs) -> anyhow::Result<()> {
    match args.command {
        EvidenceCommand::Collect {
            pid,
            incident,
            json,
        } => show(ask(state, ContainRequest::Collect { pid, incident })?, json),
        EvidenceCommand::Verify {
            bundle,
            public_key,
            json,
        } => {
            let default_key = state
                .0
                .join("keys")
                .join(crate::respond::bundle::PUBLIC_KEY_FILE);
            let key_file = public_key.or_else(|| default_key.exists().then_some(default_key));
            let public_key = match &key_file {
                Some(f) => Some(
                    crate::respond::bundle::load_public(f)
                        .with_context(|| format!("public key {}", f.display()))?,
                ),
                None => None,
            };
            let aead_file = state
                .0
                .join("keys")
                .join(crate::respond::bundle::AEAD_KEY_FILE);
            let aead_key = if aead_file.exists() {
                Some(crate::respond::bundle::load_aead_key(&aead_file)?)
            } else {
                None
            };
            let report = crate::respond::bundle::verify(
                &bundle,
                &crate::respond::bundle::VerifyOptions {
                    public_key,
                    aead_key,
                },
            )?;
            // Reading a bundle is an access: recorded in its custody log when the key is here.
            let key_dir = state.0.join("keys");
            if key_dir
                .join(crate::respond::bundle::SIGNING_KEY_FILE)
                .exists()
                && let Ok(keys) = crate::respond::bundle::Keys::load_or_create(&key_dir, false)
            {
                let _ = crate::respond::bundle::record(
                    &bundle,
                    &keys,
                    &format!("cli:uid={}", nix::unistd::getuid()),
                    "verify",
                    serde_json::json!({"ok": report.ok, "problems": report.problems.len()}),
                );
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            if !report.ok {
                bail!("bundle {} failed verification", bundle.display());
            }
            Ok(())
        }
        EvidenceCommand::List => {
            let root = state.0.join("evidence");
            let mut names: Vec<_> = std::fs::read_dir(&root)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for n in names {
                println!("{}", root.join(n).display());
            }
            Ok(())
        }
    }
}

pub fn audit(state: &StateDir, args: AuditArgs) -> anyhow::Result<()> {
    let path = state.0.join("audit.jsonl");
    match args.command {
        AuditCommand::Verify => match crate::respond::audit::verify(&path) {
            Ok(n) => {
                println!("audit trail OK: {n} entries, hash chain intact");
                Ok(())
            }
            Err(e) => bail!("audit trail {}: {e}", path.display()),
        },
        AuditCommand::Show { json } => {
            for e in crate::respond::audit::read(&path) {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{} {:<16} {:<8} {:<8} {:<18} {}{}",
                        e.time,
                        crate::escape::escape_str(&e.action, 40),
                        e.mode,
                        e.outcome,
                        crate::escape::escape_str(&e.actor, 40),
                        crate::escape::escape_str(&e.target, 200),
                        e.latency_ms
                            .map(|l| format!(" ({l:.1} ms after the event)"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
    }
}

/// `sensor incidents report ID`.
pub fn report(state: &StateDir, id: &str, out: &std::path::Path) -> anyhow::Result<()> {
    use crate::rules::incidents::Incident;
    // The live agent knows open incidents; closed ones are in incidents.jsonl.
    let mut known: Vec<Incident> = Vec::new();
    if let Ok(mut c) = Client::send(&state.socket(), &Request::Incidents)
        && let Some(Ok(Response::Incidents(list))) = c.next()
    {
        known = list;
    }
    if let Ok(text) = std::fs::read_to_string(state.0.join("incidents.jsonl")) {
        known.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    let mut found: Vec<Incident> = known
        .into_iter()
        .filter(|i| i.id.0.starts_with(id))
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found.dedup_by(|a, b| a.id == b.id);
    let [incident] = found.as_slice() else {
        bail!("{} incidents match {id:?}", found.len());
    };
    let alerts: Vec<_> = crate::output::alert_log::read_recent(
        &state.alerts(),
        100_000,
        &crate::output::alert_log::AlertFilter::default(),
    )?
    .alerts
    .into_iter()
    .filter(|a| a.fields.get("incident").and_then(|v| v.as_str()) == Some(&incident.id.0))
    .collect();
    let actions: Vec<_> = crate::respond::audit::read(&state.0.join("audit.jsonl"))
        .into_iter()
        .filter(|e| e.incident.as_deref() == Some(&incident.id.0))
        .collect();
    let key_dir = state.0.join("keys");
    let keys = if key_dir
        .join(crate::respond::bundle::SIGNING_KEY_FILE)
        .exists()
    {
        crate::respond::bundle::Keys::load_or_create(&key_dir, false).ok()
    } else {
        None
    };
    let mut bundles = Vec::new();
    let root = state.0.join("evidence");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let Ok(bytes) = std::fs::read(dir.join("manifest.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<crate::respond::bundle::Manifest>(&bytes) else {
            continue;
        };
        if m.subject.get("incident").and_then(|v| v.as_str()) != Some(&incident.id.0) {
            continue;
        }
        let opts = crate::respond::bundle::VerifyOptions {
            public_key: keys.as_ref().map(|k| k.public()),
            aead_key: keys.as_ref().and_then(|k| k.aead_key()),
        };
        let ok = crate::respond::bundle::verify(&dir, &opts)
            .map(|r| r.ok)
            .unwrap_or(false);
        if let Some(k) = &keys {
            let _ = crate::respond::bundle::record(
                &dir,
                k,
                &format!("cli:uid={}", nix::unistd::getuid()),
                "report",
                serde_json::json!({"incident": incident.id.0}),
            );
        }
        bundles.push((dir.display().to_string(), m, ok));
    }
    let input = crate::respond::report::Input {
        incident,
        alerts: &alerts,
        actions: &actions,
        bundles: &bundles,
    };
    std::fs::create_dir_all(out)?;
    let md_path = out.join(format!("incident-{}.md", incident.id.0));
    let html_path = out.join(format!("incident-{}.html", incident.id.0));
    std::fs::write(&md_path, crate::respond::report::markdown(&input))?;
    std::fs::write(&html_path, crate::respond::report::html_page(&input))?;
    println!(
        "{} alerts, {} actions, {} evidence bundles\n{}\n{}",
        alerts.len(),
        actions.len(),
        bundles.len(),
        md_path.display(),
        html_path.display()
    );
    Ok(())
}
