//! Baselines on disk: one SQLite file (`<state>/baselines.db`), WAL mode so the CLI can read
//! while the agent writes. The current baseline of each workload, plus a bounded number of
//! earlier versions. A file that is not ours, or is damaged, is refused with a clear error.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::{engine::Changes, model::Baseline};

/// `PRAGMA application_id`: "SNSB". A SQLite file with another id is someone else's.
const APPLICATION_ID: i64 = 0x534e_5342;
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path}: not a baseline database (it is {what}); move it away or point --state-dir elsewhere"
    )]
    Foreign { path: String, what: String },
    #[error(
        "{path}: the baseline database is damaged ({detail}); move it away to start fresh (the agent keeps running without baselines until then)"
    )]
    Corrupt { path: String, detail: String },
    #[error("{path}: written by a newer sensor (schema {found}, this one reads {SCHEMA_VERSION})")]
    TooNew { path: String, found: i64 },
    #[error("{path}: {cause}")]
    Sqlite {
        path: String,
        cause: rusqlite::Error,
    },
    #[error("baseline {workload}: {cause}")]
    Encode {
        workload: String,
        cause: serde_json::Error,
    },
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    keep_versions: u32,
}

/// A stored earlier version.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct VersionInfo {
    pub version: u32,
    pub archived: i64,
    pub mode: String,
    pub values: usize,
}

impl Store {
    pub fn open(path: &Path, keep_versions: u32) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        let sql = |cause| StoreError::Sqlite {
            path: p.clone(),
            cause,
        };
        let conn = Connection::open(path).map_err(sql)?;
        let corrupt = |e: rusqlite::Error| classify(&p, e);
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        let app: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(corrupt)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(corrupt)?;
        if app != APPLICATION_ID && (app != 0 || tables != 0) {
            return Err(StoreError::Foreign {
                path: p,
                what: if app == 0 {
                    format!("a SQLite database with {tables} other objects")
                } else {
                    format!("a SQLite database with application id {app:#x}")
                },
            });
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: p,
                detail: check,
            });
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: p,
                found: version,
            });
        }
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA application_id = {APPLICATION_ID};
             PRAGMA user_version = {SCHEMA_VERSION};
             CREATE TABLE IF NOT EXISTS baselines (
                 workload TEXT PRIMARY KEY,
                 version INTEGER NOT NULL,
                 mode TEXT NOT NULL,
                 updated INTEGER NOT NULL,
                 doc TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS versions (
                 workload TEXT NOT NULL,
                 version INTEGER NOT NULL,
                 archived INTEGER NOT NULL,
                 doc TEXT NOT NULL,
                 PRIMARY KEY (workload, version)
             );"
        ))
        .map_err(corrupt)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            keep_versions,
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        classify(&self.path.display().to_string(), source)
    }

    /// Every current baseline. Rows that no longer parse are reported, not fatal.
    pub fn load(&self) -> Result<(Vec<Baseline>, Vec<String>), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT workload, doc FROM baselines ORDER BY workload")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for row in rows {
            let (workload, doc) = row.map_err(|e| self.err(e))?;
            match serde_json::from_str::<Baseline>(&doc) {
                Ok(b) if b.workload.key() == workload => out.push(b),
                Ok(b) => problems.push(format!(
                    "{workload}: row holds the baseline of {}; skipped",
                    b.workload.key()
                )),
                Err(e) => problems.push(format!("{workload}: unreadable baseline ({e}); skipped")),
            }
        }
        Ok((out, problems))
    }

    /// Write what changed, in one transaction.
    pub fn save(&mut self, changes: &Changes, now: i64) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let p = self.path.display().to_string();
        let keep = self.keep_versions;
        let tx = self.conn.transaction().map_err(|e| classify(&p, e))?;
        for b in &changes.archived {
            let doc = encode(b)?;
            tx.execute(
                "INSERT OR REPLACE INTO versions (workload, version, archived, doc) VALUES (?1, ?2, ?3, ?4)",
                params![b.workload.key(), b.version, now, doc],
            )
            .map_err(|e| classify(&p, e))?;
            tx.execute(
                "DELETE FROM versions WHERE workload = ?1 AND version NOT IN
                   (SELECT version FROM versions WHERE workload = ?1 ORDER BY version DESC LIMIT ?2)",
                params![b.workload.key(), keep],
            )
            .map_err(|e| classify(&p, e))?;
        }
        for b in &changes.changed {
            let doc = encode(b)?;
            tx.execute(
                "INSERT OR REPLACE INTO baselines (workload, version, mode, updated, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![b.workload.key(), b.version, b.mode.as_str(), now, doc],
            )
            .map_err(|e| classify(&p, e))?;
        }
        for k in &changes.removed {
            tx.execute("DELETE FROM baselines WHERE workload = ?1", params![k])
                .map_err(|e| classify(&p, e))?;
        }
        tx.commit().map_err(|e| classify(&p, e))
    }

    pub fn versions(&self, workload: &str) -> Result<Vec<VersionInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT version, archived, doc FROM versions WHERE workload = ?1 ORDER BY version DESC")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![workload], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (version, archived, doc) = row.map_err(|e| self.err(e))?;
            let b = serde_json::from_str::<Baseline>(&doc).ok();
            out.push(VersionInfo {
                version,
                archived,
                mode: b
                    .as_ref()
                    .map_or("unreadable", |b| b.mode.as_str())
                    .to_owned(),
                values: b.map_or(0, |b| b.model.size()),
            });
        }
        Ok(out)
    }

    /// An archived version (the newest when `version` is `None`).
    pub fn version(
        &self,
        workload: &str,
        version: Option<u32>,
    ) -> Result<Option<Baseline>, StoreError> {
        let doc: Option<String> = match version {
            Some(v) => self
                .conn
                .query_row(
                    "SELECT doc FROM versions WHERE workload = ?1 AND version = ?2",
                    params![workload, v],
                    |r| r.get(0),
                )
                .optional(),
            None => self
                .conn
                .query_row(
                    "SELECT doc FROM versions WHERE workload = ?1 ORDER BY version DESC LIMIT 1",
                    params![workload],
                    |r| r.get(0),
                )
                .optional(),
        }
        .map_err(|e| self.err(e))?;
        Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
    }

    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// Bytes on disk (main file; the WAL is checkpointed into it).
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

fn encode(b: &Baseline) -> Result<String, StoreError> {
    serde_json::to_string(b).map_err(|cause| StoreError::Encode {
        workload: b.workload.key(),
        cause,
    })
}

/// SQLite's "not a database" and "malformed" become `Corrupt`; the rest stay SQL errors.
fn classify(path: &str, e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e
        && matches!(
            f.code,
            rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
        )
    {
        return StoreError::Corrupt {
            path: path.to_owned(),
            detail: msg.clone().unwrap_or_else(|| f.to_string()),
        };
    }
    StoreError::Sqlite {
        path: path.to_owned(),
        cause: e,
    }
}
