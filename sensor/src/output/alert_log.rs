//! Local append-only alert log: `dir/alerts.jsonl` plus rotated
//! `alerts-<UTC>-<seq>.jsonl[.gz]` files.
//!
//! Single writer ([`AlertLog`], enforced with an advisory lock), any number of
//! readers ([`read_recent`], [`Follower`]). Readers never take the lock; they
//! tolerate torn and corrupt lines by skipping and counting them.

use crate::alert::{Alert, Severity};
use crate::escape::escape_str;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::collections::VecDeque;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use tracing::warn;

/// Name of the file currently being written.
pub const ACTIVE_FILE_NAME: &str = "alerts.jsonl";
const LOCK_FILE_NAME: &str = ".alerts.lock";
const ROTATED_PREFIX: &str = "alerts-";
const PLAIN_SUFFIX: &str = ".jsonl";
const GZ_SUFFIX: &str = ".jsonl.gz";
const GZ_TMP_SUFFIX: &str = ".jsonl.gz.tmp";
/// Alerts can carry user names and command lines: group-readable at most.
const DIR_MODE: u32 = 0o750;
const FILE_MODE: u32 = 0o640;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Every failure of the alert log, with the path and operation involved.
#[derive(Debug, thiserror::Error)]
pub enum AlertLogError {
    #[error("alert log: {op} {} failed: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("alert log: {} is locked by another writer", path.display())]
    Locked { path: PathBuf },
    #[error("alert log: serializing alert {id} failed: {source}")]
    Serialize {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("alert log: compressing {} failed, plain file kept: {source}", path.display())]
    Compress {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl AlertLogError {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| AlertLogError::Io { op, path, source }
    }
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// When to rotate `alerts.jsonl` and how many rotated files to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Rotate before a write would take the file past this size. 0 disables.
    /// A single record larger than this still goes into one (fresh) file.
    pub max_bytes: u64,
    /// Rotate a non-empty file older than this. `Duration::ZERO` disables.
    pub max_age: Duration,
    /// Rotated files to keep (plain or gzip); older ones are deleted.
    pub keep_files: usize,
    /// Gzip rotated files.
    pub compress: bool,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(24 * 60 * 60),
            keep_files: 10,
            compress: true,
        }
    }
}

/// Result of a successful [`AlertLog::append`]: the alert *was* written.
#[derive(Debug, Default)]
pub struct AppendOutcome {
    /// Set when this append rotated the log: the final rotated file
    /// (`.jsonl.gz`, or `.jsonl` if not compressing or compression failed).
    pub rotated_to: Option<PathBuf>,
    /// Rotation, compression or retention failed. The alert was still written
    /// (to the old or the new active file) because losing an alert is worse
    /// than an oversized file; the error is also logged with `tracing::warn`.
    pub rotation_error: Option<AlertLogError>,
}

/// The single writer of an alert log directory.
#[derive(Debug)]
pub struct AlertLog {
    dir: PathBuf,
    active_path: PathBuf,
    policy: RotationPolicy,
    /// `None` after a rotation whose reopen failed; retried on next append.
    file: Option<File>,
    size: u64,
    created_at: OffsetDateTime,
    next_seq: u64,
    /// A previous write may have left a partial line: start the next write
    /// with a newline. Readers skip the blank line if nothing was torn.
    needs_separator: bool,
    /// Held for the lifetime of the writer; the OS drops the lock on close.
    _lock: File,
}

impl AlertLog {
    /// Opens (creating if needed) the log in `dir`, repairs a torn last line,
    /// and cleans up leftovers of an interrupted compression.
    pub fn open(dir: &Path, policy: RotationPolicy) -> Result<Self, AlertLogError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(AlertLogError::io("create directory", dir))?;
        let lock = acquire_lock(dir)?;
        recover_rotated_files(dir)?;
        let next_seq = list_rotated(dir)?.last().map_or(1, |r| r.seq + 1);
        let mut log = Self {
            dir: dir.to_path_buf(),
            active_path: dir.join(ACTIVE_FILE_NAME),
            policy,
            file: None,
            size: 0,
            created_at: OffsetDateTime::now_utc(),
            next_seq,
            needs_separator: false,
            _lock: lock,
        };
        log.open_active()?;
        Ok(log)
    }

    /// Path of the active file.
    pub fn path(&self) -> &Path {
        &self.active_path
    }

    /// Appends one alert as one JSON line, rotating first if the policy says
    /// so. `Err` means the alert was not written.
    pub fn append(&mut self, alert: &Alert) -> Result<AppendOutcome, AlertLogError> {
        self.append_at(alert, OffsetDateTime::now_utc())
    }

    /// Forces a rotation now. Returns the rotated file, or `None` if the active
    /// file was empty (rotating it would only create an empty archive).
    pub fn rotate(&mut self) -> Result<Option<PathBuf>, AlertLogError> {
        if self.size == 0 {
            return Ok(None);
        }
        self.rotate_at(OffsetDateTime::now_utc()).map(Some)
    }

    /// Writes are unbuffered (they survive a process crash as soon as
    /// `append` returns); this additionally fsyncs so they survive power loss.
    pub fn flush(&mut self) -> Result<(), AlertLogError> {
        match &self.file {
            Some(file) => file
                .sync_data()
                .map_err(AlertLogError::io("fsync", &self.active_path)),
            None => Ok(()),
        }
    }

    /// `append` with an injectable clock, so tests can age the file.
    fn append_at(
        &mut self,
        alert: &Alert,
        now: OffsetDateTime,
    ) -> Result<AppendOutcome, AlertLogError> {
        let line = encode_line(alert)?;
        let mut outcome = AppendOutcome::default();
        if self.rotation_due(line.len() as u64, now) {
            match self.rotate_at(now) {
                Ok(path) => outcome.rotated_to = Some(path),
                Err(err) => {
                    warn!(error = %err, "alert log rotation failed; still appending");
                    outcome.rotation_error = Some(err);
                }
            }
        }
        self.write_line(&line)?;
        Ok(outcome)
    }

    fn rotation_due(&self, line_len: u64, now: OffsetDateTime) -> bool {
        if self.size == 0 {
            return false;
        }
        let max_bytes = self.policy.max_bytes;
        let too_big = max_bytes > 0 && self.size.saturating_add(line_len) > max_bytes;
        let max_age = self.policy.max_age;
        too_big || (!max_age.is_zero() && self.age(now) >= max_age)
    }

    fn age(&self, now: OffsetDateTime) -> Duration {
        // A clock that went backwards gives a negative span: treat as new.
        Duration::try_from(now - self.created_at).unwrap_or(Duration::ZERO)
    }

    fn write_line(&mut self, line: &[u8]) -> Result<(), AlertLogError> {
        if self.file.is_none() {
            self.open_active()?;
        }
        let Some(file) = self.file.as_mut() else {
            // open_active sets `file` on success; this is unreachable in practice.
            return Err(AlertLogError::Io {
                op: "open",
                path: self.active_path.clone(),
                source: io::Error::other("active file not open"),
            });
        };
        let prefixed;
        let data = if self.needs_separator {
            prefixed = [b"\n".as_slice(), line].concat();
            prefixed.as_slice()
        } else {
            line
        };
        // One write_all of the whole line on an O_APPEND fd: a crash can only
        // tear the final line, never interleave two.
        match file.write_all(data) {
            Ok(()) => {
                self.size += data.len() as u64;
                self.needs_separator = false;
                Ok(())
            }
            Err(source) => {
                self.needs_separator = true;
                if let Ok(meta) = file.metadata() {
                    self.size = meta.len();
                }
                Err(AlertLogError::Io {
                    op: "write",
                    path: self.active_path.clone(),
                    source,
                })
            }
        }
    }

    /// Opens or creates the active file and makes sure it ends with a newline.
    fn open_active(&mut self) -> Result<(), AlertLogError> {
        let path = &self.active_path;
        // Readable too: the torn-line check reads the last byte.
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(AlertLogError::io("open", path))?;
        let meta = file.metadata().map_err(AlertLogError::io("stat", path))?;
        let mut size = meta.len();
        if size > 0 && last_byte(&file, size).map_err(AlertLogError::io("read", path))? != b'\n' {
            // A crash tore the last record. Terminate it so it becomes one
            // skippable corrupt line instead of corrupting the next record too.
            warn!(path = %path.display(), "alert log ends with a torn line; terminating it");
            file.write_all(b"\n")
                .map_err(AlertLogError::io("repair torn line in", path))?;
            size += 1;
        }
        // Birth time if the filesystem reports it; otherwise start counting
        // age now (rotates late rather than early).
        self.created_at = meta
            .created()
            .ok()
            .and_then(system_time_to_utc)
            .unwrap_or_else(OffsetDateTime::now_utc);
        self.size = size;
        self.file = Some(file);
        self.needs_separator = false;
        Ok(())
    }

    fn rotate_at(&mut self, now: OffsetDateTime) -> Result<PathBuf, AlertLogError> {
        if let Some(Err(err)) = self.file.as_ref().map(File::sync_data) {
            warn!(error = %err, "fsync before rotation failed");
        }
        let rotated = self.claim_rotated_path(now)?;
        fs::rename(&self.active_path, &rotated).map_err(AlertLogError::io("rename", &rotated))?;
        // From here on the old fd points at the rotated file: drop it so a
        // failed reopen is retried instead of appending to the archive.
        self.file = None;
        self.size = 0;
        sync_dir(&self.dir);
        self.open_active()?;
        // The file is brand new; don't trust a coarse or missing birth time.
        self.created_at = now;

        let compressed = if self.policy.compress {
            compress_rotated(&rotated).map(Some)
        } else {
            Ok(None)
        };
        // Retention runs even when compression failed so disk use stays bounded.
        let retention = apply_retention(&self.dir, self.policy.keep_files);
        let final_path = compressed?.unwrap_or(rotated);
        retention?;
        Ok(final_path)
    }

    fn claim_rotated_path(&mut self, now: OffsetDateTime) -> Result<PathBuf, AlertLogError> {
        loop {
            let seq = self.next_seq;
            self.next_seq += 1;
            let stem = rotated_stem(now, seq);
            let plain = self.dir.join(format!("{stem}{PLAIN_SUFFIX}"));
            let gz = self.dir.join(format!("{stem}{GZ_SUFFIX}"));
            if !exists(&plain)? && !exists(&gz)? {
                return Ok(plain);
            }
        }
    }
}

fn acquire_lock(dir: &Path) -> Result<File, AlertLogError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(AlertLogError::io("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(AlertLogError::Locked { path }),
        Err(TryLockError::Error(source)) => Err(AlertLogError::Io {
            op: "lock",
            path,
            source,
        }),
    }
}

fn encode_line(alert: &Alert) -> Result<Vec<u8>, AlertLogError> {
    let mut line = Vec::with_capacity(512);
    serde_json::to_writer(&mut line, alert).map_err(|source| AlertLogError::Serialize {
        id: alert.id.clone(),
        source,
    })?;
    // Compact serde_json never emits a raw newline (control chars in strings
    // are escaped), so this is the only one.
    line.push(b'\n');
    Ok(line)
}

fn last_byte(file: &File, size: u64) -> io::Result<u8> {
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, size - 1)?;
    Ok(byte[0])
}

fn exists(path: &Path) -> Result<bool, AlertLogError> {
    path.try_exists().map_err(AlertLogError::io("stat", path))
}

/// Best effort: makes the rename durable. Failure only risks the rename being
/// lost on power failure, which readers survive.
fn sync_dir(dir: &Path) {
    if let Err(err) = File::open(dir).and_then(|d| d.sync_all()) {
        warn!(dir = %dir.display(), error = %err, "fsync of alert log directory failed");
    }
}

fn system_time_to_utc(t: SystemTime) -> Option<OffsetDateTime> {
    let nanos = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

// ---------------------------------------------------------------------------
// Rotated files: naming, listing, compression, retention
// ---------------------------------------------------------------------------

/// `alerts-20240501T120000Z-000042`: the timestamp is for humans, the
/// monotonically increasing sequence number defines order (immune to clock
/// jumps and to several rotations within one second).
fn rotated_stem(now: OffsetDateTime, seq: u64) -> String {
    format!(
        "{ROTATED_PREFIX}{:04}{:02}{:02}T{:02}{:02}{:02}Z-{seq:06}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RotatedFile {
    seq: u64,
    /// `dir/alerts-<ts>-<seq>` without extension.
    stem: PathBuf,
    compressed: bool,
}

impl RotatedFile {
    fn plain(&self) -> PathBuf {
        with_suffix(&self.stem, PLAIN_SUFFIX)
    }

    fn gz(&self) -> PathBuf {
        with_suffix(&self.stem, GZ_SUFFIX)
    }

    fn path(&self) -> PathBuf {
        if self.compressed {
            self.gz()
        } else {
            self.plain()
        }
    }
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Parses `alerts-YYYYMMDDTHHMMSSZ-<seq>.jsonl[.gz]` into (stem, seq, gz).
fn parse_rotated_name(name: &str) -> Option<(&str, u64, bool)> {
    let (stem, compressed) = match name.strip_suffix(GZ_SUFFIX) {
        Some(stem) => (stem, true),
        None => (name.strip_suffix(PLAIN_SUFFIX)?, false),
    };
    let (ts, seq) = stem.strip_prefix(ROTATED_PREFIX)?.rsplit_once('-')?;
    let ts_ok = ts.len() == 16
        && ts.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !ts_ok || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem, seq.parse().ok()?, compressed))
}

/// Rotated files, oldest first, one entry per sequence number. If both the
/// plain and gz variant exist (compression in progress) the plain one wins;
/// readers fall back to gz if it disappears under them.
fn list_rotated(dir: &Path) -> Result<Vec<RotatedFile>, AlertLogError> {
    let mut files: Vec<RotatedFile> = Vec::new();
    for entry in fs::read_dir(dir).map_err(AlertLogError::io("list", dir))? {
        let entry = entry.map_err(AlertLogError::io("list", dir))?;
        let name = entry.file_name();
        let Some((stem, seq, compressed)) = name.to_str().and_then(parse_rotated_name) else {
            continue;
        };
        files.push(RotatedFile {
            seq,
            stem: dir.join(stem),
            compressed,
        });
    }
    // Plain sorts before gz for equal seq, so dedup keeps the plain one.
    files.sort_by_key(|f| (f.seq, f.compressed));
    files.dedup_by_key(|f| f.seq);
    Ok(files)
}

/// Undoes the effects of a crash during compression: a `.gz.tmp` is
/// incomplete (delete it); a `.gz` next to its plain file is complete because
/// it is renamed into place only after fsync (delete the plain duplicate).
/// Best effort: a leftover that cannot be removed must not stop alert logging.
fn recover_rotated_files(dir: &Path) -> Result<(), AlertLogError> {
    for entry in fs::read_dir(dir).map_err(AlertLogError::io("list", dir))? {
        let entry = entry.map_err(AlertLogError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = if let Some(stem) = name.strip_suffix(GZ_TMP_SUFFIX) {
            stem.starts_with(ROTATED_PREFIX).then(|| entry.path())
        } else if let Some((stem, _, true)) = parse_rotated_name(name) {
            Some(dir.join(format!("{stem}{PLAIN_SUFFIX}")))
        } else {
            None
        };
        if let Some(Err(err)) = stale.map(|path| remove_if_exists(&path)) {
            warn!(error = %err, "could not clean up after an interrupted compression");
        }
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), AlertLogError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(AlertLogError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Gzips `plain` to `plain.gz` via a temp file; only a fully written and
/// fsynced archive replaces the plain file. On failure the plain file stays.
fn compress_rotated(plain: &Path) -> Result<PathBuf, AlertLogError> {
    let gz = with_suffix(plain, ".gz");
    let tmp = with_suffix(plain, ".gz.tmp");
    if let Err(source) = gzip_file(plain, &tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(AlertLogError::Compress {
            path: plain.to_path_buf(),
            source,
        });
    }
    if let Err(source) = fs::rename(&tmp, &gz) {
        let _ = fs::remove_file(&tmp);
        return Err(AlertLogError::Compress {
            path: plain.to_path_buf(),
            source,
        });
    }
    remove_if_exists(plain)?;
    Ok(gz)
}

fn gzip_file(src: &Path, dst: &Path) -> io::Result<()> {
    let mut input = BufReader::new(File::open(src)?);
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(dst)?;
    let mut encoder = GzEncoder::new(BufWriter::new(out), Compression::default());
    io::copy(&mut input, &mut encoder)?;
    let file = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Deletes the oldest rotated files beyond `keep`. Keeps going after a failed
/// delete so one bad file does not block retention; returns the first error.
fn apply_retention(dir: &Path, keep: usize) -> Result<(), AlertLogError> {
    let rotated = list_rotated(dir)?;
    let excess = rotated.len().saturating_sub(keep);
    let mut first_err = None;
    for old in &rotated[..excess] {
        for path in [old.plain(), old.gz()] {
            if let Err(err) = remove_if_exists(&path) {
                warn!(error = %err, "alert log retention could not delete a file");
                first_err.get_or_insert(err);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

// ---------------------------------------------------------------------------
// Filtering and reading
// ---------------------------------------------------------------------------

/// Selects alerts. `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Exact rule id.
    pub rule: Option<String>,
    /// Container id prefix, so the 12-character short id works.
    pub container: Option<String>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.min_severity.is_none_or(|min| alert.severity >= min)
            && self
                .rule
                .as_deref()
                .is_none_or(|rule| alert.rule.id == rule)
            && self.container.as_deref().is_none_or(|prefix| {
                alert
                    .container
                    .as_ref()
                    .is_some_and(|c| c.id.starts_with(prefix))
            })
    }
}

/// Result of [`read_recent`].
#[derive(Debug, Default)]
pub struct RecentAlerts {
    /// Matching alerts, oldest first (newest last).
    pub alerts: Vec<Alert>,
    /// Lines that were not valid alerts (torn, corrupt, foreign) in the files
    /// that were read, plus unreadable tails of damaged gzip files.
    pub skipped_lines: u64,
}

enum ParsedLine {
    Blank,
    Alert(Box<Alert>),
    Corrupt,
}

fn parse_line(line: &[u8]) -> ParsedLine {
    if line.iter().all(u8::is_ascii_whitespace) {
        return ParsedLine::Blank;
    }
    match serde_json::from_slice::<Alert>(line) {
        Ok(alert) => ParsedLine::Alert(Box::new(alert)),
        Err(_) => ParsedLine::Corrupt,
    }
}

/// Returns the last `n` alerts matching `filter` across the rotated files and
/// the active file, newest last. Stops reading older files once it has `n`.
/// A missing directory means "no alerts yet", not an error.
///
/// Readers take no lock; a rotation racing with this call can make the
/// snapshot miss or repeat the records of the file being rotated.
pub fn read_recent(
    dir: &Path,
    n: usize,
    filter: &AlertFilter,
) -> Result<RecentAlerts, AlertLogError> {
    let mut result = RecentAlerts::default();
    if n == 0 {
        return Ok(result);
    }
    let rotated = match list_rotated(dir) {
        Ok(rotated) => rotated,
        Err(AlertLogError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(result);
        }
        Err(err) => return Err(err),
    };
    let active = dir.join(ACTIVE_FILE_NAME);
    // Newest first: the active file, then rotated files by descending seq.
    let mut per_file: Vec<VecDeque<Alert>> = Vec::new();
    let mut found = 0;
    let active_src = std::iter::once(Source::Active(active));
    let rotated_src = rotated.into_iter().rev().map(Source::Rotated);
    for source in active_src.chain(rotated_src) {
        let Some(reader) = source.open()? else {
            continue;
        };
        let tail = read_matching_tail(reader, &source, n - found, filter, &mut result);
        found += tail.len();
        per_file.push(tail);
        if found >= n {
            break;
        }
    }
    result.alerts = per_file.into_iter().rev().flatten().collect();
    Ok(result)
}

enum Source {
    Active(PathBuf),
    Rotated(RotatedFile),
}

impl Source {
    fn display_path(&self) -> PathBuf {
        match self {
            Source::Active(path) => path.clone(),
            Source::Rotated(rotated) => rotated.path(),
        }
    }

    /// `None` if the file vanished (rotated away, deleted by retention).
    fn open(&self) -> Result<Option<Box<dyn BufRead>>, AlertLogError> {
        match self {
            Source::Active(path) => {
                Ok(open_optional(path)?.map(|f| Box::new(BufReader::new(f)) as Box<dyn BufRead>))
            }
            Source::Rotated(rotated) => {
                if !rotated.compressed
                    && let Some(file) = open_optional(&rotated.plain())?
                {
                    return Ok(Some(Box::new(BufReader::new(file))));
                }
                // Plain file may have just been replaced by its archive.
                Ok(open_optional(&rotated.gz())?
                    .map(|f| Box::new(BufReader::new(MultiGzDecoder::new(f))) as Box<dyn BufRead>))
            }
        }
    }
}

fn open_optional(path: &Path) -> Result<Option<File>, AlertLogError> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AlertLogError::Io {
            op: "open",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Streams one file, keeping only the last `want` matches. A read error
/// (typically a truncated gzip) ends the file but keeps what was read.
fn read_matching_tail(
    mut reader: Box<dyn BufRead>,
    source: &Source,
    want: usize,
    filter: &AlertFilter,
    result: &mut RecentAlerts,
) -> VecDeque<Alert> {
    let mut tail = VecDeque::with_capacity(want.min(1024));
    let mut skipped = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                warn!(path = %source.display_path().display(), error = %err,
                      "alert log file unreadable past this point");
                skipped += 1;
                break;
            }
        }
        let terminated = line.last() == Some(&b'\n');
        if !terminated && matches!(source, Source::Active(_)) {
            // The writer may be mid-write: not a record yet, not corrupt.
            break;
        }
        match parse_line(&line) {
            ParsedLine::Blank => {}
            ParsedLine::Corrupt => skipped += 1,
            ParsedLine::Alert(alert) if filter.matches(&alert) => {
                tail.push_back(*alert);
                if tail.len() > want {
                    tail.pop_front();
                }
            }
            ParsedLine::Alert(_) => {}
        }
    }
    if skipped > 0 {
        warn!(path = %source.display_path().display(), skipped, "skipped unparseable alert log lines");
    }
    result.skipped_lines += skipped;
    tail
}

// ---------------------------------------------------------------------------
// Follower
// ---------------------------------------------------------------------------

/// Where a new [`Follower`] starts in the file that exists when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

/// Bytes read per poll, so one poll over a large backlog stays bounded.
const MAX_READ_PER_POLL: u64 = 8 * 1024 * 1024;
/// A "line" longer than this is dropped (and counted) instead of buffered.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Follows `alerts.jsonl` like `tail -F`: survives rotation (inode change) and
/// truncation, buffers a partial last line until its newline arrives.
///
/// Limitation: if the log rotates twice between two polls, the middle file is
/// not read (poll at least as often as the log can rotate).
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    current: Option<Tracked>,
    partial: Vec<u8>,
    /// Inside an over-long line, or joined mid-line: drop bytes until '\n'.
    discarding: bool,
    skipped_lines: u64,
}

#[derive(Debug)]
struct Tracked {
    file: File,
    dev: u64,
    ino: u64,
    pos: u64,
}

impl Follower {
    /// Starts following `dir/alerts.jsonl`. The file need not exist yet.
    /// With [`StartAt::End`] the position is fixed now, so alerts appended
    /// between this call and the first poll are still returned.
    pub fn open(dir: &Path, start: StartAt) -> Result<Self, AlertLogError> {
        let mut follower = Self {
            path: dir.join(ACTIVE_FILE_NAME),
            current: None,
            partial: Vec::new(),
            discarding: false,
            skipped_lines: 0,
        };
        if follower.try_open()? && start == StartAt::End {
            follower.seek_to_end()?;
        }
        Ok(follower)
    }

    /// Lines skipped so far because they were not valid alerts.
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// Returns alerts appended since the last poll. Never blocks.
    pub fn poll(&mut self) -> Result<Vec<Alert>, AlertLogError> {
        let mut alerts = Vec::new();
        // Bounded: each iteration either stops or switches to a newer file.
        for _ in 0..4 {
            if self.current.is_none() && !self.try_open()? {
                break;
            }
            // Stat the name *before* draining: if it already points elsewhere,
            // the writer finished with our file before renaming it, so what we
            // drain next is all it will ever contain.
            let on_disk = self.identity_on_disk()?;
            if !self.drain(&mut alerts)? {
                break; // read budget used; continue next poll
            }
            let same = self
                .current
                .as_ref()
                .is_some_and(|cur| on_disk == Some((cur.dev, cur.ino)));
            if same {
                break;
            }
            self.finish_file(&mut alerts);
        }
        Ok(alerts)
    }

    /// Opens the active file if present; a new file is read from the start.
    fn try_open(&mut self) -> Result<bool, AlertLogError> {
        let Some(file) = open_optional(&self.path)? else {
            return Ok(false);
        };
        let meta = file
            .metadata()
            .map_err(AlertLogError::io("stat", &self.path))?;
        self.current = Some(Tracked {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            pos: 0,
        });
        Ok(true)
    }

    fn seek_to_end(&mut self) -> Result<(), AlertLogError> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let len = cur
            .file
            .metadata()
            .map_err(AlertLogError::io("stat", &self.path))?
            .len();
        cur.pos = len;
        if len > 0 {
            let last = last_byte(&cur.file, len).map_err(AlertLogError::io("read", &self.path))?;
            // Joined mid-record: its head is gone, so drop its tail too.
            self.discarding = last != b'\n';
        }
        Ok(())
    }

    fn identity_on_disk(&self) -> Result<Option<(u64, u64)>, AlertLogError> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(Some((meta.dev(), meta.ino()))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AlertLogError::Io {
                op: "stat",
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Reads the current file from `pos`. Returns true if EOF was reached.
    fn drain(&mut self, alerts: &mut Vec<Alert>) -> Result<bool, AlertLogError> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(true);
        };
        let len = cur
            .file
            .metadata()
            .map_err(AlertLogError::io("stat", &self.path))?
            .len();
        if len < cur.pos {
            warn!(path = %self.path.display(), "alert log truncated; reading from start");
            cur.pos = 0;
            self.partial.clear();
            self.discarding = false;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let mut read_total = 0u64;
        loop {
            if read_total >= MAX_READ_PER_POLL {
                return Ok(false);
            }
            let n = cur
                .file
                .read_at(&mut buf, cur.pos)
                .map_err(AlertLogError::io("read", &self.path))?;
            if n == 0 {
                return Ok(true);
            }
            cur.pos += n as u64;
            read_total += n as u64;
            feed_lines(
                &buf[..n],
                &mut self.partial,
                &mut self.discarding,
                &mut self.skipped_lines,
                alerts,
            );
        }
    }

    /// The file was rotated away and fully drained. A leftover partial line
    /// means it ended without a newline (crash): try it, then start fresh.
    fn finish_file(&mut self, alerts: &mut Vec<Alert>) {
        if !self.partial.is_empty() && !self.discarding {
            let line = std::mem::take(&mut self.partial);
            handle_line(&line, &mut self.skipped_lines, alerts);
        }
        self.partial.clear();
        self.discarding = false;
        self.current = None;
    }
}

/// Splits `data` into lines, completing a buffered partial line first.
fn feed_lines(
    data: &[u8],
    partial: &mut Vec<u8>,
    discarding: &mut bool,
    skipped: &mut u64,
    alerts: &mut Vec<Alert>,
) {
    let mut rest = data;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let (line, tail) = (&rest[..nl], &rest[nl + 1..]);
        if *discarding {
            *discarding = false;
        } else if partial.is_empty() {
            handle_line(line, skipped, alerts);
        } else {
            partial.extend_from_slice(line);
            handle_line(partial, skipped, alerts);
            partial.clear();
        }
        rest = tail;
    }
    if *discarding {
        return;
    }
    partial.extend_from_slice(rest);
    if partial.len() > MAX_LINE_BYTES {
        warn!(
            bytes = partial.len(),
            "alert log line too long; skipping it"
        );
        partial.clear();
        *discarding = true;
        *skipped += 1;
    }
}

fn handle_line(line: &[u8], skipped: &mut u64, alerts: &mut Vec<Alert>) {
    match parse_line(line) {
        ParsedLine::Blank => {}
        ParsedLine::Alert(alert) => alerts.push(*alert),
        ParsedLine::Corrupt => {
            warn!("skipping unparseable alert log line");
            *skipped += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// Human-readable rendering
// ---------------------------------------------------------------------------

// Output budgets (bytes of escaped text) per attacker-controlled part; they
// bound a line to a few KiB whatever the alert contains.
const TIME_MAX: usize = 40;
const RULE_MAX: usize = 128;
const MITRE_ID_MAX: usize = 16;
const MITRE_MAX_IDS: usize = 8;
const MESSAGE_MAX: usize = 1024;
const EXE_MAX: usize = 256;
const ARGS_TOTAL_MAX: usize = 512;
const USER_MAX: usize = 32;
const ANCESTRY_MAX_ENTRIES: usize = 8;
const ANCESTOR_EXE_MAX: usize = 96;
const CONTAINER_ID_MAX: usize = 80;
const RUNTIME_MAX: usize = 32;
const TAGS_TOTAL_MAX: usize = 128;
const FIELD_KEY_MAX: usize = 48;
const FIELDS_TOTAL_MAX: usize = 512;

const RESET: &str = "\x1b[0m";

fn severity_color(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "\x1b[1;91m",
        Severity::High => "\x1b[31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
        Severity::Info => "\x1b[2m",
    }
}

/// Renders one alert as exactly one terminal line (no trailing newline).
///
/// Every string from the record is escaped with [`escape_str`] and bounded, so
/// a hostile alert can neither emit terminal escapes nor start a new line;
/// values containing spaces or quotes are double-quoted so a crafted value
/// cannot pass for another `key=value` field. The only ESC bytes in the output
/// are the colour codes emitted when `color` is true.
pub fn format_human(alert: &Alert, color: bool) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(&quoted(&alert.time, TIME_MAX));
    out.push(' ');
    push_severity(&mut out, alert.severity, color);
    out.push(' ');
    out.push_str(&quoted(&alert.rule.id, RULE_MAX));
    push_mitre(&mut out, &alert.mitre);
    out.push(' ');
    out.push_str(&always_quoted(&alert.message, MESSAGE_MAX));
    if let Some(process) = &alert.process {
        push_process(&mut out, process);
    }
    if let Some(container) = &alert.container {
        out.push_str(" container=");
        out.push_str(&quoted(&container.id, CONTAINER_ID_MAX));
        out.push('(');
        out.push_str(&quoted(&container.runtime, RUNTIME_MAX));
        out.push(')');
    }
    if alert.count > 1 {
        out.push_str(&format!(" count={}", alert.count));
    }
    push_tags(&mut out, &alert.tags);
    push_fields(&mut out, &alert.fields);
    out
}

fn push_severity(out: &mut String, severity: Severity, color: bool) {
    let label = format!("{:<8}", severity.as_str().to_ascii_uppercase());
    if color {
        out.push_str(severity_color(severity));
        out.push_str(&label);
        out.push_str(RESET);
    } else {
        out.push_str(&label);
    }
}

fn push_mitre(out: &mut String, mitre: &[String]) {
    if mitre.is_empty() {
        return;
    }
    let shown: Vec<String> = mitre
        .iter()
        .take(MITRE_MAX_IDS)
        .map(|id| quoted(id, MITRE_ID_MAX))
        .collect();
    out.push_str(" [");
    out.push_str(&shown.join(","));
    push_omitted(out, mitre.len() - shown.len(), "");
    out.push(']');
}

fn push_process(out: &mut String, p: &crate::alert::AlertProcess) {
    out.push_str(&format!(" pid={} ppid={} uid={}", p.pid, p.ppid, p.uid));
    if let Some(user) = &p.user_name {
        out.push('(');
        out.push_str(&quoted(user, USER_MAX));
        out.push(')');
    }
    out.push_str(" exe=");
    out.push_str(&quoted(&p.executable, EXE_MAX));
    out.push_str(" args=[");
    push_bounded_list(out, p.args.iter().map(String::as_str), ARGS_TOTAL_MAX, " ");
    out.push(']');
    if !p.ancestry.is_empty() {
        out.push_str(" ancestry=[");
        let shown = p.ancestry.iter().take(ANCESTRY_MAX_ENTRIES);
        let parts: Vec<String> = shown
            .map(|a| format!("{}:{}", a.pid, quoted(&a.executable, ANCESTOR_EXE_MAX)))
            .collect();
        out.push_str(&parts.join(" "));
        push_omitted(out, p.ancestry.len() - parts.len(), " ");
        out.push(']');
    }
}

fn push_tags(out: &mut String, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    out.push_str(" tags=");
    push_bounded_list(out, tags.iter().map(String::as_str), TAGS_TOTAL_MAX, ",");
}

fn push_fields(out: &mut String, fields: &serde_json::Map<String, serde_json::Value>) {
    let mut used = 0;
    for (i, (key, value)) in fields.iter().enumerate() {
        let remaining = FIELDS_TOTAL_MAX.saturating_sub(used);
        if remaining == 0 {
            push_omitted(out, fields.len() - i, " ");
            return;
        }
        // Non-string values are rendered as compact JSON, which can still hold
        // bidi or C1 characters, so they are escaped too.
        let text = match value {
            serde_json::Value::String(s) => quoted(s, remaining),
            other => quoted(&other.to_string(), remaining),
        };
        let part = format!(" {}={}", quoted(key, FIELD_KEY_MAX), text);
        used += part.len();
        out.push_str(&part);
    }
}

/// Appends items separated by `sep` until `budget` bytes are used, then a
/// `…[+N]` marker for the items not shown.
fn push_bounded_list<'a>(
    out: &mut String,
    items: impl ExactSizeIterator<Item = &'a str>,
    budget: usize,
    sep: &str,
) {
    let total = items.len();
    let mut used = 0;
    for (i, item) in items.enumerate() {
        let remaining = budget.saturating_sub(used);
        if remaining == 0 {
            push_omitted(out, total - i, sep);
            return;
        }
        if i > 0 {
            out.push_str(sep);
            used += sep.len();
        }
        let part = quoted(item, remaining);
        used += part.len();
        out.push_str(&part);
    }
}

fn push_omitted(out: &mut String, omitted: usize, sep: &str) {
    if omitted > 0 {
        out.push_str(&format!("{sep}…[+{omitted}]"));
    }
}

/// Escaped, and double-quoted if it is empty or contains a space, quote,
/// `=`, `,` or bracket, i.e. anything that could blur field boundaries.
fn quoted(s: &str, max_len: usize) -> String {
    let escaped = escape_str(s, max_len);
    let needs_quotes = escaped.is_empty()
        || escaped
            .chars()
            .any(|c| matches!(c, ' ' | '"' | '=' | ',' | '[' | ']') || c.is_whitespace());
    if needs_quotes {
        wrap_quotes(&escaped)
    } else {
        escaped
    }
}

fn always_quoted(s: &str, max_len: usize) -> String {
    wrap_quotes(&escape_str(s, max_len))
}

/// Backslashes are already doubled by `escape_str`, so `\"` is unambiguous.
fn wrap_quotes(escaped: &str) -> String {
    format!("\"{}\"", escaped.replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertProcess;
    use crate::escape::is_unsafe_unicode;
    use proptest::prelude::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use tempfile::TempDir;

    fn tempdir() -> TempDir {
        tempfile::tempdir().unwrap()
    }

    fn sample(i: usize) -> Alert {
        let severity = Severity::ALL[i % Severity::ALL.len()];
        Alert::new(
            format!("rule.{}", i % 3),
            "Sample rule",
            severity,
            format!("alert {i}"),
        )
        .with_container(["a", "b"][i % 2].repeat(64), "containerd", None)
    }

    fn messages(alerts: &[Alert]) -> Vec<String> {
        alerts.iter().map(|a| a.message.clone()).collect()
    }

    fn expected(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("alert {i}")).collect()
    }

    fn policy(max_bytes: u64, keep_files: usize, compress: bool) -> RotationPolicy {
        RotationPolicy {
            max_bytes,
            max_age: Duration::ZERO,
            keep_files,
            compress,
        }
    }

    fn rotated_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(ROTATED_PREFIX))
            .collect();
        names.sort();
        names
    }

    fn all(dir: &Path) -> RecentAlerts {
        read_recent(dir, usize::MAX, &AlertFilter::default()).unwrap()
    }

    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    fn line_of(alert: &Alert) -> Vec<u8> {
        encode_line(alert).unwrap()
    }

    #[test]
    fn append_then_read_round_trip() {
        let tmp = tempdir();
        let mut log = AlertLog::open(tmp.path(), RotationPolicy::default()).unwrap();
        let written: Vec<Alert> = (0..5).map(sample).collect();
        for alert in &written {
            let outcome = log.append(alert).unwrap();
            assert!(outcome.rotated_to.is_none() && outcome.rotation_error.is_none());
        }
        log.flush().unwrap();
        let read = all(tmp.path());
        assert_eq!(read.alerts, written);
        assert_eq!(read.skipped_lines, 0);
        let text = fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn creates_dir_and_file_with_restrictive_modes() {
        let tmp = tempdir();
        let dir = tmp.path().join("nested/alerts");
        let mut log = AlertLog::open(&dir, RotationPolicy::default()).unwrap();
        log.append(&sample(0)).unwrap();
        let dir_mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        let file_mode = fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode & !DIR_MODE, 0, "dir mode {dir_mode:o}");
        assert_eq!(file_mode & !FILE_MODE, 0, "file mode {file_mode:o}");
    }

    #[test]
    fn second_writer_is_rejected_until_first_is_dropped() {
        let tmp = tempdir();
        let first = AlertLog::open(tmp.path(), RotationPolicy::default()).unwrap();
        let err = AlertLog::open(tmp.path(), RotationPolicy::default()).unwrap_err();
        assert!(matches!(err, AlertLogError::Locked { .. }), "{err}");
        drop(first);
        AlertLog::open(tmp.path(), RotationPolicy::default()).unwrap();
    }

    #[test]
    fn size_rotation_compresses_and_retention_deletes_oldest() {
        let tmp = tempdir();
        let line_len = line_of(&sample(0)).len() as u64;
        // Three records per file.
        let mut log = AlertLog::open(tmp.path(), policy(3 * line_len + 10, 2, true)).unwrap();
        let mut rotations = 0;
        for i in 0..20 {
            let outcome = log.append(&sample(i)).unwrap();
            assert!(
                outcome.rotation_error.is_none(),
                "{:?}",
                outcome.rotation_error
            );
            if let Some(path) = outcome.rotated_to {
                assert!(path.to_string_lossy().ends_with(GZ_SUFFIX), "{path:?}");
                rotations += 1;
            }
            assert!(fs::metadata(log.path()).unwrap().len() <= 3 * line_len + 10);
        }
        assert_eq!(rotations, 6, "20 records at 3 per file");
        let names = rotated_names(tmp.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(GZ_SUFFIX)), "{names:?}");
        // The survivors are the two newest rotations (seq 5 and 6).
        let seqs: Vec<u64> = names
            .iter()
            .map(|n| parse_rotated_name(n).unwrap().1)
            .collect();
        assert_eq!(seqs, [5, 6]);
        // Records 12..18 are in those archives, 18..20 in the active file.
        let read = all(tmp.path());
        assert_eq!(messages(&read.alerts), expected(12..20));
    }

    #[test]
    fn gz_archives_hold_the_rotated_lines() {
        let tmp = tempdir();
        let mut log = AlertLog::open(tmp.path(), policy(0, 5, true)).unwrap();
        log.append(&sample(1)).unwrap();
        let gz = log.rotate().unwrap().unwrap();
        let mut text = String::new();
        MultiGzDecoder::new(File::open(&gz).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let archived: Alert = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(archived.message, "alert 1");
        assert!(text.ends_with('\n'));
        assert_eq!(
            log.rotate().unwrap(),
            None,
            "empty active file is not rotated"
        );
        let mode = fs::metadata(&gz).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !FILE_MODE, 0);
    }

    #[test]
    fn rotation_without_compression_keeps_plain_files() {
        let tmp = tempdir();
        let mut log = AlertLog::open(tmp.path(), policy(1, 10, false)).unwrap();
        for i in 0..3 {
            log.append(&sample(i)).unwrap();
        }
        let names = rotated_names(tmp.path());
        assert_eq!(names.len(), 2);
        assert!(names.iter().all(|n| n.ends_with(PLAIN_SUFFIX)));
        assert_eq!(messages(&all(tmp.path()).alerts), expected(0..3));
    }

    #[test]
    fn age_rotation_uses_file_age() {
        let tmp = tempdir();
        let hour = Duration::from_secs(3600);
        let policy = RotationPolicy {
            max_age: hour,
            ..policy(0, 10, false)
        };
        let mut log = AlertLog::open(tmp.path(), policy).unwrap();
        let start = OffsetDateTime::now_utc();
        assert!(
            log.append_at(&sample(0), start)
                .unwrap()
                .rotated_to
                .is_none()
        );
        let later = start + time::Duration::minutes(59);
        assert!(
            log.append_at(&sample(1), later)
                .unwrap()
                .rotated_to
                .is_none()
        );
        let much_later = start + time::Duration::minutes(61);
        let rotated = log.append_at(&sample(2), much_later).unwrap().rotated_to;
        assert!(rotated.is_some());
        // The new file is young again.
        let next = much_later + time::Duration::minutes(1);
        assert!(
            log.append_at(&sample(3), next)
                .unwrap()
                .rotated_to
                .is_none()
        );
        assert_eq!(messages(&all(tmp.path()).alerts), expected(0..4));
    }

    #[test]
    fn read_recent_spans_rotated_gz_files_in_order() {
        let tmp = tempdir();
        let line_len = line_of(&sample(0)).len() as u64;
        let mut log = AlertLog::open(tmp.path(), policy(2 * line_len + 10, 100, true)).unwrap();
        for i in 0..11 {
            log.append(&sample(i)).unwrap();
        }
        assert_eq!(rotated_names(tmp.path()).len(), 5);
        let recent = read_recent(tmp.path(), 6, &AlertFilter::default()).unwrap();
        assert_eq!(messages(&recent.alerts), expected(5..11));
        let everything = read_recent(tmp.path(), 1000, &AlertFilter::default()).unwrap();
        assert_eq!(messages(&everything.alerts), expected(0..11));
        assert!(
            read_recent(tmp.path(), 0, &AlertFilter::default())
                .unwrap()
                .alerts
                .is_empty()
        );
    }

    #[test]
    fn read_recent_on_missing_dir_is_empty() {
        let tmp = tempdir();
        let read = read_recent(&tmp.path().join("nope"), 10, &AlertFilter::default()).unwrap();
        assert!(read.alerts.is_empty());
    }

    #[test]
    fn sequence_continues_after_reopen() {
        let tmp = tempdir();
        let mut log = AlertLog::open(tmp.path(), policy(0, 10, true)).unwrap();
        log.append(&sample(0)).unwrap();
        log.rotate().unwrap();
        drop(log);
        let mut log = AlertLog::open(tmp.path(), policy(0, 10, true)).unwrap();
        log.append(&sample(1)).unwrap();
        log.rotate().unwrap();
        let seqs: Vec<u64> = rotated_names(tmp.path())
            .iter()
            .map(|n| parse_rotated_name(n).unwrap().1)
            .collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(messages(&all(tmp.path()).alerts), expected(0..2));
    }

    #[test]
    fn failed_compression_keeps_plain_rotated_file() {
        let tmp = tempdir();
        let mut log = AlertLog::open(tmp.path(), policy(1, 10, true)).unwrap();
        let now = OffsetDateTime::now_utc();
        log.append_at(&sample(0), now).unwrap();
        // Occupy the temp name the compressor will use, so it must fail.
        let stem = rotated_stem(now, 1);
        fs::create_dir(tmp.path().join(format!("{stem}{GZ_TMP_SUFFIX}"))).unwrap();
        let outcome = log.append_at(&sample(1), now).unwrap();
        let err = outcome.rotation_error.expect("compression should fail");
        assert!(matches!(err, AlertLogError::Compress { .. }), "{err}");
        assert!(tmp.path().join(format!("{stem}{PLAIN_SUFFIX}")).exists());
        assert!(!tmp.path().join(format!("{stem}{GZ_SUFFIX}")).exists());
        // Nothing was lost and later rotations still work.
        log.append_at(&sample(2), now).unwrap();
        assert_eq!(messages(&all(tmp.path()).alerts), expected(0..3));
    }

    #[test]
    fn open_cleans_up_interrupted_compression() {
        let tmp = tempdir();
        let dir = tmp.path();
        let stem = "alerts-20240101T000000Z-000001";
        let line = line_of(&sample(0));
        fs::write(dir.join(format!("{stem}.jsonl")), &line).unwrap();
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&line).unwrap();
        fs::write(dir.join(format!("{stem}.jsonl.gz")), enc.finish().unwrap()).unwrap();
        let partial = "alerts-20240101T000000Z-000002";
        fs::write(dir.join(format!("{partial}.jsonl")), &line).unwrap();
        fs::write(dir.join(format!("{partial}.jsonl.gz.tmp")), b"junk").unwrap();
        let _log = AlertLog::open(dir, RotationPolicy::default()).unwrap();
        assert_eq!(
            rotated_names(dir),
            [format!("{stem}.jsonl.gz"), format!("{partial}.jsonl")]
        );
        assert_eq!(all(dir).alerts.len(), 2);
    }

    #[test]
    fn torn_last_line_is_terminated_on_open() {
        let tmp = tempdir();
        let path = tmp.path().join(ACTIVE_FILE_NAME);
        append_raw(&path, &line_of(&sample(0)));
        let torn = line_of(&sample(1));
        append_raw(&path, &torn[..torn.len() / 2]);
        // Before repair a reader treats the unterminated tail as in-flight.
        let before = all(tmp.path());
        assert_eq!((before.alerts.len(), before.skipped_lines), (1, 0));

        let mut log = AlertLog::open(tmp.path(), RotationPolicy::default()).unwrap();
        log.append(&sample(2)).unwrap();
        let after = all(tmp.path());
        assert_eq!(messages(&after.alerts), ["alert 0", "alert 2"]);
        assert_eq!(
            after.skipped_lines, 1,
            "the torn record is one corrupt line"
        );
        let text = fs::read(&path).unwrap();
        assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 3);
    }

    #[test]
    fn corrupt_lines_are_skipped_and_counted() {
        let tmp = tempdir();
        let dir = tmp.path();
        let mut log = AlertLog::open(dir, policy(0, 10, true)).unwrap();
        log.append(&sample(0)).unwrap();
        append_raw(log.path(), b"not json\n{\"id\":1}\n\xff\xfe\n\n");
        log.append(&sample(1)).unwrap();
        log.rotate().unwrap();
        log.append(&sample(2)).unwrap();
        append_raw(log.path(), b"{truncated\n");
        log.append(&sample(3)).unwrap();
        let read = all(dir);
        assert_eq!(messages(&read.alerts), expected(0..4));
        assert_eq!(read.skipped_lines, 4, "blank lines are not counted");
    }

    #[test]
    fn truncated_gzip_keeps_readable_prefix() {
        let tmp = tempdir();
        let dir = tmp.path();
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        for i in 0..50 {
            enc.write_all(&line_of(&sample(i))).unwrap();
        }
        let gz = enc.finish().unwrap();
        let name = "alerts-20240101T000000Z-000001.jsonl.gz";
        fs::write(dir.join(name), &gz[..gz.len() - 20]).unwrap();
        let read = all(dir);
        assert!(read.skipped_lines >= 1);
        let got = messages(&read.alerts);
        assert_eq!(got, expected(0..got.len()), "a clean prefix survives");
    }

    #[test]
    fn filters_select_by_severity_rule_and_container() {
        let tmp = tempdir();
        let mut log = AlertLog::open(tmp.path(), RotationPolicy::default()).unwrap();
        for i in 0..10 {
            log.append(&sample(i)).unwrap();
        }
        log.append(&Alert::new(
            "rule.0",
            "no container",
            Severity::Critical,
            "host",
        ))
        .unwrap();
        let run =
            |filter: AlertFilter| messages(&read_recent(tmp.path(), 100, &filter).unwrap().alerts);
        let high = AlertFilter {
            min_severity: Some(Severity::High),
            ..Default::default()
        };
        assert_eq!(
            run(high),
            ["alert 3", "alert 4", "alert 8", "alert 9", "host"]
        );
        let rule = AlertFilter {
            rule: Some("rule.1".into()),
            ..Default::default()
        };
        assert_eq!(run(rule), ["alert 1", "alert 4", "alert 7"]);
        let short_id = "a".repeat(12);
        let container = AlertFilter {
            container: Some(short_id),
            min_severity: Some(Severity::Medium),
            ..Default::default()
        };
        assert_eq!(run(container), ["alert 2", "alert 4", "alert 8"]);
        let limited = read_recent(
            tmp.path(),
            2,
            &AlertFilter {
                rule: Some("rule.0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(messages(&limited.alerts), ["alert 9", "host"]);
    }

    #[test]
    fn follower_survives_rotation_without_loss_or_duplication() {
        let tmp = tempdir();
        let line_len = line_of(&sample(0)).len() as u64;
        let mut log = AlertLog::open(tmp.path(), policy(3 * line_len + 10, 100, true)).unwrap();
        let mut follower = Follower::open(tmp.path(), StartAt::Beginning).unwrap();
        let mut seen = Vec::new();
        let mut rotations = 0;
        for i in 0..40 {
            if log.append(&sample(i)).unwrap().rotated_to.is_some() {
                rotations += 1;
            }
            // At most one rotation between polls (see Follower docs).
            if i % 2 == 1 {
                seen.extend(follower.poll().unwrap());
            }
        }
        seen.extend(follower.poll().unwrap());
        assert!(rotations >= 10);
        assert_eq!(messages(&seen), expected(0..40));
        assert_eq!(follower.skipped_lines(), 0);
        assert!(follower.poll().unwrap().is_empty());
    }

    #[test]
    fn follower_drains_old_file_written_just_before_rotation() {
        let tmp = tempdir();
        let mut log = AlertLog::open(tmp.path(), policy(0, 10, true)).unwrap();
        log.append(&sample(0)).unwrap();
        let mut follower = Follower::open(tmp.path(), StartAt::Beginning).unwrap();
        assert_eq!(messages(&follower.poll().unwrap()), ["alert 0"]);
        log.append(&sample(1)).unwrap();
        log.rotate().unwrap(); // old file is compressed and unlinked
        log.append(&sample(2)).unwrap();
        assert_eq!(messages(&follower.poll().unwrap()), ["alert 1", "alert 2"]);
    }

    #[test]
    fn follower_waits_for_file_and_buffers_partial_lines() {
        let tmp = tempdir();
        let mut follower = Follower::open(tmp.path(), StartAt::End).unwrap();
        assert!(follower.poll().unwrap().is_empty(), "no file yet");
        let path = tmp.path().join(ACTIVE_FILE_NAME);
        let line = line_of(&sample(7));
        let (head, tail) = line.split_at(line.len() / 2);
        append_raw(&path, head);
        assert!(
            follower.poll().unwrap().is_empty(),
            "half a line is held back"
        );
        append_raw(&path, tail);
        assert_eq!(messages(&follower.poll().unwrap()), ["alert 7"]);
        assert_eq!(follower.skipped_lines(), 0);
    }

    #[test]
    fn follower_start_at_end_skips_history_and_partial_record() {
        let tmp = tempdir();
        let path = tmp.path().join(ACTIVE_FILE_NAME);
        append_raw(&path, &line_of(&sample(0)));
        let line = line_of(&sample(1));
        let (head, tail) = line.split_at(10);
        append_raw(&path, head);
        let mut follower = Follower::open(tmp.path(), StartAt::End).unwrap();
        append_raw(&path, tail);
        append_raw(&path, &line_of(&sample(2)));
        assert_eq!(messages(&follower.poll().unwrap()), ["alert 2"]);
        assert_eq!(follower.skipped_lines(), 0);
    }

    #[test]
    fn follower_restarts_after_truncation() {
        let tmp = tempdir();
        let path = tmp.path().join(ACTIVE_FILE_NAME);
        for i in 0..3 {
            append_raw(&path, &line_of(&sample(i)));
        }
        let mut follower = Follower::open(tmp.path(), StartAt::Beginning).unwrap();
        assert_eq!(follower.poll().unwrap().len(), 3);
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append_raw(&path, &line_of(&sample(9)));
        assert_eq!(messages(&follower.poll().unwrap()), ["alert 9"]);
    }

    #[test]
    fn follower_counts_corrupt_lines() {
        let tmp = tempdir();
        let path = tmp.path().join(ACTIVE_FILE_NAME);
        append_raw(&path, b"garbage\n");
        append_raw(&path, &line_of(&sample(1)));
        let mut follower = Follower::open(tmp.path(), StartAt::Beginning).unwrap();
        assert_eq!(messages(&follower.poll().unwrap()), ["alert 1"]);
        assert_eq!(follower.skipped_lines(), 1);
    }

    #[test]
    fn rotated_names_parse_strictly() {
        assert_eq!(
            parse_rotated_name("alerts-20240102T030405Z-000007.jsonl.gz"),
            Some(("alerts-20240102T030405Z-000007", 7, true))
        );
        assert_eq!(
            parse_rotated_name("alerts-20240102T030405Z-12.jsonl").map(|p| p.1),
            Some(12)
        );
        for bad in [
            "alerts.jsonl",
            "alerts-20240102T030405Z-.jsonl",
            "alerts-20240102T030405Z-+1.jsonl",
            "alerts-2024010T030405Z-1.jsonl",
            "alerts-20240102T030405Z-1.jsonl.gz.tmp",
            "other-20240102T030405Z-1.jsonl",
        ] {
            assert_eq!(parse_rotated_name(bad), None, "{bad}");
        }
        let now = OffsetDateTime::from_unix_timestamp(1_704_164_645).unwrap();
        assert_eq!(rotated_stem(now, 3), "alerts-20240102T030405Z-000003");
    }

    // -- format_human -------------------------------------------------------

    fn hostile_alert() -> Alert {
        let invalid = String::from_utf8_lossy(b"\xff\xfe\xc0\x80bad").into_owned();
        let huge: Vec<String> = (0..2000)
            .map(|i| format!("arg{i}-{}", "A".repeat(50)))
            .collect();
        let mut args = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "echo hi\n2024-01-01 CRITICAL fake\x1b[2J\x1b]0;title\x07".to_owned(),
            invalid,
            "\u{202e}txt.exe\u{9b}31m\r".to_owned(),
        ];
        args.extend(huge); // ~100 KiB
        Alert::new(
            "rule\n\x1b[31m",
            "n",
            Severity::Critical,
            "msg\nline2\x1b[0m\u{2028}",
        )
        .with_process(
            AlertProcess::new(42, 1, 0, "/tmp/\x1b[1mevil\n")
                .with_args(args)
                .with_user_name("root\x1b")
                .with_ancestor(1, "init\r\n\x1b[K"),
        )
        .with_container("abc\n\x1b[5m", "docker\x1b", Some("p".into()))
        .with_tag("t\x1b")
        .with_field("note\n", "v\x1b[31m\n")
        .with_field("nested", serde_json::json!({"k": "\u{202e}\u{1b}"}))
    }

    fn assert_single_safe_line(out: &str) {
        assert!(!out.contains('\n') && !out.contains('\r'), "{out:?}");
        for c in out.chars() {
            assert!(c >= ' ' && c != '\x7f', "control {c:?} in {out:?}");
            assert!(!is_unsafe_unicode(c), "unsafe {c:?} in {out:?}");
        }
    }

    #[test]
    fn format_human_neutralizes_hostile_alert() {
        let alert = hostile_alert();
        let plain = format_human(&alert, false);
        assert_single_safe_line(&plain);
        assert_eq!(plain.matches('\x1b').count(), 0);
        assert!(plain.len() < 4096, "bounded, got {} bytes", plain.len());
        assert!(plain.contains(r"\e[2J"), "escapes are visible: {plain}");
        assert!(plain.contains(r"\u{202e}"));
        assert!(plain.contains(r"\n"));
        assert!(plain.contains("\u{fffd}"), "lossy bytes shown as U+FFFD");
        assert!(plain.contains("…[+"), "args are truncated");

        let colored = format_human(&alert, true);
        assert_eq!(colored.matches('\x1b').count(), 2, "only our colour codes");
        assert!(colored.contains("\x1b[1;91mCRITICAL\x1b[0m"));
        assert_single_safe_line(&colored.replace("\x1b[1;91m", "").replace(RESET, ""));
    }

    #[test]
    fn format_human_layout() {
        let alert = Alert::new("shell.container", "n", Severity::Medium, "Shell spawned")
            .with_time(OffsetDateTime::from_unix_timestamp(1_704_164_645).unwrap())
            .try_with_technique("T1059.004")
            .unwrap()
            .with_process(
                AlertProcess::new(42, 7, 0, "/bin/sh")
                    .with_args(["sh", "-c", "echo hi"])
                    .with_user_name("root")
                    .with_ancestor(7, "/usr/bin/containerd-shim"),
            )
            .with_container("0123456789ab", "containerd", None)
            .with_count(3)
            .with_field("dropped", 2);
        assert_eq!(
            format_human(&alert, false),
            "2024-01-02T03:04:05.000000000Z MEDIUM   shell.container [T1059.004] \
             \"Shell spawned\" pid=42 ppid=7 uid=0(root) exe=/bin/sh \
             args=[sh -c \"echo hi\"] ancestry=[7:/usr/bin/containerd-shim] \
             container=0123456789ab(containerd) count=3 dropped=2"
        );
        for (sev, code) in [
            (Severity::High, "\x1b[31m"),
            (Severity::Low, "\x1b[36m"),
            (Severity::Info, "\x1b[2m"),
        ] {
            let a = Alert::new("r", "n", sev, "m");
            assert!(format_human(&a, true).contains(code));
        }
    }

    #[test]
    fn format_human_quotes_values_that_could_spoof_fields() {
        let alert = Alert::new("r", "n", Severity::Low, "m").with_process(
            AlertProcess::new(1, 0, 0, "/x pid=1 exe=/bin/ok").with_args(["a\"b", ""]),
        );
        let out = format_human(&alert, false);
        assert!(out.contains(r#"exe="/x pid=1 exe=/bin/ok""#), "{out}");
        assert!(out.contains(r#"args=["a\"b" ""]"#), "{out}");
    }

    proptest! {
        #[test]
        fn format_human_is_always_one_safe_line(
            message in any::<String>(),
            exe in any::<String>(),
            args in proptest::collection::vec(any::<String>(), 0..8),
            container in any::<String>(),
            field in any::<String>(),
        ) {
            let alert = Alert::new("r", "n", Severity::High, message)
                .with_process(AlertProcess::new(1, 0, 0, exe).with_args(args))
                .with_container(container, "rt", None)
                .with_field("f", field);
            let out = format_human(&alert, false);
            assert_single_safe_line(&out);
            prop_assert!(!out.contains('\x1b'));
        }
    }
}
