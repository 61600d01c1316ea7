//! One human line per event for `sensor events tail`. Every attacker-controlled string goes
//! through `escape`, so a command line cannot inject terminal escapes or extra lines.

use crate::{
    escape::escape_str,
    event::{Event, Kind},
};

const ARGS_MAX: usize = 512;
const PATH_MAX: usize = 256;

pub fn format_event(ev: &Event, color: bool) -> String {
    let (on, off) = if color {
        (
            match ev.event.kind {
                Kind::Exec => "\x1b[1;32m",
                Kind::Fork | Kind::Exit => "\x1b[2m",
                Kind::File => "\x1b[36m",
                Kind::Network => "\x1b[35m",
                Kind::Privilege => "\x1b[1;33m",
            },
            "\x1b[0m",
        )
    } else {
        ("", "")
    };
    let p = &ev.process;
    let mut line = format!(
        "{} {on}{:<9}{off} pid={} ppid={} uid={} comm={}",
        escape_str(&ev.timestamp, 40),
        escape_str(&ev.event.action, 20),
        p.pid,
        p.parent.as_ref().map_or(0, |pp| pp.pid),
        ev.user.id,
        escape_str(&p.name, 32),
    );
    if ev.user.effective_id != ev.user.id {
        line.push_str(&format!(" euid={}", ev.user.effective_id));
    }
    match ev.event.kind {
        Kind::Exec => {
            if let Some(exe) = &p.executable {
                line.push_str(&format!(" exe={}", escape_str(exe, PATH_MAX)));
            }
            line.push_str(&format!(
                " args={}",
                escape_str(&p.args.join(" "), ARGS_MAX)
            ));
            if let Some(io) = &p.stdio
                && [&io.stdin, &io.stdout, &io.stderr]
                    .iter()
                    .any(|t| *t == "socket")
            {
                line.push_str(&format!(" stdio={},{},{}", io.stdin, io.stdout, io.stderr));
            }
            if let Some(x) = &p.exe {
                if x.memfd {
                    line.push_str(" [memfd]");
                }
                if x.deleted {
                    line.push_str(" [deleted]");
                }
            }
        }
        Kind::Fork => {
            if let Some(f) = &p.fork {
                line.push_str(&format!(
                    " child={} clone_flags={:#x}",
                    f.child_pid, f.clone_flags
                ));
            }
        }
        Kind::Exit => {
            if let Some(code) = p.exit_code {
                line.push_str(&format!(" code={code}"));
            }
            if let Some(sig) = p.exit_signal {
                line.push_str(&format!(" signal={sig}"));
            }
        }
        _ => {}
    }
    if let Some(f) = &ev.file {
        if let Some(path) = &f.path {
            line.push_str(&format!(" path={}", escape_str(path, PATH_MAX)));
        }
        if let Some(t) = &f.target_path {
            line.push_str(&format!(" target={}", escape_str(t, PATH_MAX)));
        }
        if !f.flag_names.is_empty() {
            line.push_str(&format!(" flags={}", f.flag_names.join("|")));
        }
        if let Some(m) = &f.mode {
            line.push_str(&format!(" mode={m}"));
        }
    }
    for (label, ep) in [("src", &ev.source), ("dst", &ev.destination)] {
        if let Some(ep) = ep {
            match (&ep.ip, ep.port, &ep.address) {
                (Some(ip), Some(port), _) => line.push_str(&format!(" {label}={ip}:{port}")),
                (_, _, Some(addr)) => {
                    line.push_str(&format!(" {label}={}", escape_str(addr, PATH_MAX)))
                }
                _ => {}
            }
        }
    }
    if let Some(s) = &ev.syscall {
        if !s.args.is_empty() {
            let args = serde_json::to_string(&s.args).unwrap_or_default();
            line.push_str(&format!(" {}", escape_str(&args, 256)));
        }
        for st in &s.strings {
            line.push_str(&format!(" str={}", escape_str(st, 128)));
        }
    }
    if ev.event.outcome == Some(crate::event::Outcome::Failure)
        && let Some(s) = &ev.syscall
    {
        line.push_str(&format!(" ret={}", s.ret));
    } else if ev.event.outcome == Some(crate::event::Outcome::Failure) {
        line.push_str(" failed");
    }
    if let Some(c) = &ev.container {
        let short: String = c.id.chars().take(12).collect();
        line.push_str(&format!(
            " container={}({})",
            escape_str(&short, 64),
            c.runtime
        ));
    } else if let Some(s) = &ev.service {
        line.push_str(&format!(" unit={}", escape_str(&s.name, 64)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cgroup, EventMeta, Process, User};

    pub fn hostile_exec() -> Event {
        Event {
            timestamp: "2026-01-01T00:00:00.000000000Z".into(),
            event: EventMeta {
                kind: Kind::Exec,
                action: "exec".into(),
                outcome: None,
                sequence: 1,
                boot_ns: 1,
            },
            process: Process {
                pid: 1,
                name: "x\x1b]0;pwned\x07".into(),
                executable: Some("/tmp/\n/evil".into()),
                args: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo hi\n2026-01-01 exec pid=1 fake".into(),
                    "\x1b[2J\x1b[31mred".into(),
                    "\u{fffd}\u{202e}txt.exe".into(),
                    "A".repeat(100 * 1024),
                ],
                ..Process::default()
            },
            user: User::default(),
            container: None,
            service: None,
            cgroup: Cgroup::default(),
            file: None,
            source: None,
            destination: None,
            network: None,
            syscall: None,
        }
    }

    #[test]
    fn hostile_command_lines_stay_one_bounded_escaped_line() {
        let line = format_event(&hostile_exec(), false);
        assert!(!line.contains('\n') && !line.contains('\x1b') && !line.contains('\x07'));
        assert!(!line.contains('\u{202e}'));
        assert!(line.len() < 2048, "{}", line.len());
        assert!(line.contains("\\n") && line.contains("\\e"));
        // With colour on, the only escapes are ours (one on, one off).
        let colored = format_event(&hostile_exec(), true);
        assert_eq!(colored.matches('\x1b').count(), 2);
    }
}
