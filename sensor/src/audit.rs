//! The audit trail: containment actions, refusals and results; agent start and stop with the
//! config's hash; rule, indicator, baseline and profile changes; control-socket requests that
//! were refused; event losses. One JSON line each, hash-chained (`prev` is the SHA-256 of the
//! previous line), in `<state>/audit.jsonl`, fsynced.

use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time: String,
    /// SHA-256 (hex) of the previous line; 64 zeros for the first.
    pub prev: String,
    /// `cli:uid=0`, `playbook:<id>`, `agent`.
    pub actor: String,
    /// `freeze`, `thaw`, `kill`, `isolate`, `release`, `deny-exec`, `quarantine`, ...
    pub action: String,
    pub target: String,
    /// `manual`, `dry-run`, `approved`, `auto`.
    pub mode: String,
    /// `ok`, `refused`, `failed`, `would`, `pending`.
    pub outcome: String,
    #[serde(default)]
    pub detail: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// From the triggering event to the action's completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// What the caller fills in; `seq`, `time` and `prev` come from the trail.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub mode: String,
    pub outcome: String,
    pub detail: serde_json::Value,
    pub containment: Option<String>,
    pub run: Option<String>,
    pub incident: Option<String>,
    pub alert: Option<String>,
    pub latency_ms: Option<f64>,
}

/// One trail shared by every writer of a process (the responder, the agent, the API):
/// two handles on one file would fork the chain.
pub type SharedAudit = std::sync::Arc<std::sync::Mutex<Audit>>;

/// The process's handle on the trail at `path` (opened on first use).
pub fn shared(path: &Path) -> Result<SharedAudit, AuditError> {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex, OnceLock, Weak},
    };
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<Audit>>>>> = OnceLock::new();
    let mut open = OPEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(a) = open.get(path).and_then(Weak::upgrade) {
        return Ok(a);
    }
    let a = Arc::new(Mutex::new(Audit::open(path)?));
    open.retain(|_, w| w.strong_count() > 0);
    open.insert(path.to_path_buf(), Arc::downgrade(&a));
    Ok(a)
}

/// Appends `r`; a failure is logged (the action it records has already happened).
pub fn log(audit: &SharedAudit, r: Record) {
    let result = match audit.lock() {
        Ok(mut a) => a.append(r).map(|_| ()),
        Err(_) => return tracing::error!("audit trail lock poisoned"),
    };
    if let Err(error) = result {
        tracing::error!(%error, "audit trail write failed");
    }
}

pub struct Audit {
    path: PathBuf,
    seq: u64,
    prev: String,
}

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hash_line(line: &[u8]) -> String {
    crate::ioc::hashes::hex(&Sha256::digest(line))
}

impl Audit {
    /// Open (or start) the trail; continues the chain from its last complete line.
    pub fn open(path: &Path) -> Result<Audit, AuditError> {
        let mut a = Audit {
            path: path.to_path_buf(),
            seq: 0,
            prev: ZERO.into(),
        };
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).split(b'\n') {
                let line = line.map_err(|source| AuditError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                if line.is_empty() {
                    continue;
                }
                if let Ok(e) = serde_json::from_slice::<Entry>(&line) {
                    a.seq = e.seq;
                }
                a.prev = hash_line(&line);
            }
        }
        Ok(a)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record (fsynced: the trail is evidence).
    pub fn append(&mut self, r: Record) -> Result<Entry, AuditError> {
        let entry = Entry {
            seq: self.seq + 1,
            time: crate::alert::format_timestamp(time::OffsetDateTime::now_utc()),
            prev: self.prev.clone(),
            actor: r.actor,
            action: r.action,
            target: r.target,
            mode: r.mode,
            outcome: r.outcome,
            detail: r.detail,
            containment: r.containment,
            run: r.run,
            incident: r.incident,
            alert: r.alert,
            latency_ms: r.latency_ms,
        };
        let err = |source| AuditError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let line = serde_json::to_vec(&entry).map_err(|e| err(std::io::Error::other(e)))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        let mut buf = line.clone();
        buf.push(b'\n');
        f.write_all(&buf).map_err(err)?;
        f.sync_data().map_err(err)?;
        self.seq = entry.seq;
        self.prev = hash_line(&line);
        Ok(entry)
    }
}

/// Every entry of a trail (unparseable lines are skipped; [`verify`] reports them).
pub fn read(path: &Path) -> Vec<Entry> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Check the chain: every line parses, `seq` counts up by one, `prev` matches.
pub fn verify(path: &Path) -> Result<usize, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prev = ZERO.to_owned();
    let mut seq = 0u64;
    let mut n = 0;
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let e: Entry = serde_json::from_slice(line)
            .map_err(|e| format!("line {}: not an audit entry: {e}", i + 1))?;
        if e.prev != prev {
            return Err(format!(
                "line {}: chain broken (prev does not match the line before)",
                i + 1
            ));
        }
        if e.seq != seq + 1 {
            return Err(format!("line {}: seq {} follows {seq}", i + 1, e.seq));
        }
        prev = hash_line(line);
        seq = e.seq;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_continues_across_reopen_and_detects_edits() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.jsonl");
        let mut a = Audit::open(&p).unwrap();
        for i in 0..3 {
            a.append(Record {
                action: format!("a{i}"),
                ..Record::default()
            })
            .unwrap();
        }
        let mut a = Audit::open(&p).unwrap();
        assert_eq!(a.append(Record::default()).unwrap().seq, 4);
        assert_eq!(verify(&p), Ok(4));
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replacen("\"a1\"", "\"a9\"", 1)).unwrap();
        assert!(verify(&p).unwrap_err().contains("line 3"));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&p, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(verify(&p).unwrap_err().contains("line 2"));
    }
}
