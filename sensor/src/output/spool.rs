//! A sink's durable queue: alerts are appended to segment files under the state directory
//! before anything is sent, and a cursor (persisted after every delivered batch) says how
//! far delivery got. So an alert accepted by a sink survives a dead receiver, an agent
//! restart and `kill -9`, and is sent at least once (receivers deduplicate on the alert id).
//!
//! Bounded: past `max_bytes` the oldest segment goes, and every undelivered record in it is
//! counted as dropped. A record is one line: `<enqueued unix ms> <alert JSON>`.
//!
//! Durable against power loss by group commit: `push` only writes (the pipeline thread must
//! not wait on the disk); the sink's flusher task fsyncs the head segment when it changed, at
//! most `SYNC_INTERVAL` later. A finished segment is fsynced before the next one starts.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One queued alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub enqueued_ms: u64,
    pub body: String,
}

/// Where delivery stands: the segment, the byte offset in it, and the records before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    seq: u64,
    offset: u64,
    records: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    len: u64,
    records: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    head: File,
    cursor: Cursor,
    pending: u64,
    bytes: u64,
    dropped: u64,
    corrupt: u64,
    /// Records written to the head segment since its last fsync.
    dirty: bool,
}

const SUFFIX: &str = ".seg";

/// Longest time an accepted alert stays only in the page cache.
pub const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

impl Spool {
    /// Opens (or creates) the spool in `dir`, recovering what a previous run left: segments,
    /// the cursor, and a torn last record (cut off, counted as corrupt).
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let mut seqs: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(SUFFIX)?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        seqs.sort_unstable();
        let cursor_path = dir.join("cursor");
        let saved = std::fs::read_to_string(&cursor_path).ok().and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u64>().ok());
            Some((it.next()??, it.next()??))
        });
        let mut corrupt = 0;
        let mut segments = VecDeque::new();
        let mut cursor = Cursor::default();
        let mut pending = 0;
        let mut bytes = 0;
        for seq in seqs {
            let path = seg_path(dir, seq);
            if saved.is_some_and(|(s, _)| seq < s) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io(&path))?;
            let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete < data.len() {
                // The process died inside a write: the record was never whole.
                corrupt += 1;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(complete as u64))
                    .map_err(io(&path))?;
            }
            let data = &data[..complete];
            let records = data.iter().filter(|b| **b == b'\n').count() as u64;
            let mut before = 0;
            if let Some((s, off)) = saved
                && s == seq
            {
                let off = (off as usize).min(data.len());
                // Only a record boundary is a valid position.
                let off = if off == 0 || data[off - 1] == b'\n' {
                    off
                } else {
                    data[..off]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |i| i + 1)
                };
                before = data[..off].iter().filter(|b| **b == b'\n').count() as u64;
                cursor = Cursor {
                    seq,
                    offset: off as u64,
                    records: before,
                };
            }
            if segments.is_empty() && saved.is_none_or(|(s, _)| s != seq) {
                cursor = Cursor {
                    seq,
                    offset: 0,
                    records: 0,
                };
            }
            pending += records - before;
            bytes += complete as u64;
            segments.push_back(Segment {
                seq,
                len: complete as u64,
                records,
            });
        }
        let next = segments.back().map_or(cursor.seq.max(1), |s| s.seq + 1);
        if segments.is_empty() {
            cursor = Cursor {
                seq: next,
                offset: 0,
                records: 0,
            };
        }
        let head = create_segment(dir, next)?;
        segments.push_back(Segment {
            seq: next,
            len: 0,
            records: 0,
        });
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            // At least four segments fit, so dropping the oldest frees a quarter at most.
            segment_bytes: (max_bytes / 8).clamp(4096, 4 << 20),
            segments,
            head,
            cursor,
            pending,
            bytes,
            dropped: 0,
            corrupt,
            dirty: false,
        })
    }

    /// Records waiting for delivery.
    pub fn pending(&self) -> u64 {
        self.pending
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// Records lost to the size bound since open.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    /// Torn records found at open.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    pub fn push(&mut self, enqueued_ms: u64, body: &str) -> Result<(), SpoolError> {
        debug_assert!(!body.contains('\n'));
        let line = format!("{enqueued_ms} {}\n", body.replace('\n', " "));
        let len = line.len() as u64;
        let head_len = self.segments.back().map_or(0, |s| s.len);
        if head_len > 0 && head_len + len > self.segment_bytes {
            let seq = self.segments.back().map_or(1, |s| s.seq + 1);
            // The finished segment is made durable before the next one takes writes.
            if self.dirty {
                let path = self.head_path();
                self.head.sync_data().map_err(io(&path))?;
                self.dirty = false;
            }
            self.head = create_segment(&self.dir, seq)?;
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
            self.segments.push_back(Segment {
                seq,
                len: 0,
                records: 0,
            });
        }
        while self.bytes + len > self.max_bytes && self.segments.len() > 1 {
            self.drop_oldest();
        }
        if self.bytes + len > self.max_bytes {
            // Larger than the whole spool: refused, and counted.
            self.dropped += 1;
            return Ok(());
        }
        let path = self.head_path();
        self.head.write_all(line.as_bytes()).map_err(io(&path))?;
        if let Some(h) = self.segments.back_mut() {
            h.len += len;
            h.records += 1;
        }
        self.bytes += len;
        self.pending += 1;
        self.dirty = true;
        Ok(())
    }

    /// If records were written since the last call, a handle on the head segment to fsync
    /// (outside the caller's lock: the pipeline keeps appending meanwhile).
    pub fn take_sync(&mut self) -> Option<(File, PathBuf)> {
        if !self.dirty {
            return None;
        }
        let file = self.head.try_clone().ok()?;
        self.dirty = false;
        Some((file, self.head_path()))
    }

    fn head_path(&self) -> PathBuf {
        seg_path(&self.dir, self.segments.back().map_or(0, |s| s.seq))
    }

    fn drop_oldest(&mut self) {
        let Some(seg) = self.segments.pop_front() else {
            return;
        };
        let lost = match seg.seq.cmp(&self.cursor.seq) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => seg.records - self.cursor.records.min(seg.records),
            std::cmp::Ordering::Greater => seg.records,
        };
        self.dropped += lost;
        self.pending -= lost.min(self.pending);
        self.bytes -= seg.len.min(self.bytes);
        let _ = std::fs::remove_file(seg_path(&self.dir, seg.seq));
        if seg.seq >= self.cursor.seq
            && let Some(next) = self.segments.front()
        {
            self.cursor = Cursor {
                seq: next.seq,
                offset: 0,
                records: 0,
            };
        }
    }

    /// Up to `max` records from the cursor on, each with the cursor just after it. Lines that
    /// are not records (damaged files) are skipped and counted as corrupt.
    pub fn read(&mut self, max: usize) -> Result<Vec<(Record, Cursor)>, SpoolError> {
        let mut out = Vec::new();
        let mut pos = self.cursor;
        for seg in self.segments.iter().filter(|s| s.seq >= self.cursor.seq) {
            if out.len() >= max {
                break;
            }
            if seg.seq != pos.seq {
                pos = Cursor {
                    seq: seg.seq,
                    offset: 0,
                    records: 0,
                };
            }
            if pos.offset >= seg.len {
                continue;
            }
            let path = seg_path(&self.dir, seg.seq);
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| {
                    f.seek(SeekFrom::Start(pos.offset))?;
                    f.take(seg.len - pos.offset).read_to_end(&mut data)
                })
                .map_err(io(&path))?;
            for line in data.split_inclusive(|b| *b == b'\n') {
                if out.len() >= max || line.last() != Some(&b'\n') {
                    break;
                }
                pos.offset += line.len() as u64;
                pos.records += 1;
                match parse_line(&line[..line.len() - 1]) {
                    Some(rec) => out.push((rec, pos)),
                    None => self.corrupt += 1,
                }
            }
        }
        Ok(out)
    }

    /// Everything up to `to` was delivered (or given up on): advance, drop finished
    /// segments, and persist the cursor.
    pub fn ack(&mut self, to: Cursor) -> Result<(), SpoolError> {
        let before: u64 = self
            .segments
            .iter()
            .map(|s| records_between(s, self.cursor, to))
            .sum();
        self.pending -= before.min(self.pending);
        self.cursor = to;
        let head_seq = self.segments.back().map_or(0, |s| s.seq);
        while let Some(front) = self.segments.front() {
            let done = front.seq < to.seq || (front.seq == to.seq && to.offset >= front.len);
            if !done || front.seq == head_seq {
                break;
            }
            let seq = front.seq;
            self.bytes -= front.len.min(self.bytes);
            self.segments.pop_front();
            let _ = std::fs::remove_file(seg_path(&self.dir, seq));
            if seq == self.cursor.seq
                && let Some(next) = self.segments.front()
            {
                self.cursor = Cursor {
                    seq: next.seq,
                    offset: 0,
                    records: 0,
                };
            }
        }
        let path = self.dir.join("cursor");
        let tmp = self.dir.join(".cursor.tmp");
        std::fs::write(
            &tmp,
            format!("{} {}\n", self.cursor.seq, self.cursor.offset),
        )
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io(&path))
    }
}

/// Records of `seg` between cursors `from` and `to`.
fn records_between(seg: &Segment, from: Cursor, to: Cursor) -> u64 {
    let start = if seg.seq < from.seq {
        return 0;
    } else if seg.seq == from.seq {
        from.records
    } else {
        0
    };
    let end = if seg.seq < to.seq {
        seg.records
    } else if seg.seq == to.seq {
        to.records
    } else {
        return 0;
    };
    end.saturating_sub(start)
}

fn parse_line(line: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(line).ok()?;
    let (ms, body) = text.split_once(' ')?;
    Some(Record {
        enqueued_ms: ms.parse().ok()?,
        body: body.to_owned(),
    })
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

fn create_segment(dir: &Path, seq: u64) -> Result<File, SpoolError> {
    let path = seg_path(dir, seq);
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(r: &[(Record, Cursor)]) -> Vec<String> {
        r.iter().map(|(rec, _)| rec.body.clone()).collect()
    }

    #[test]
    fn only_written_segments_are_handed_out_for_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(s.take_sync().is_none(), "nothing written yet");
        s.push(1, "a").unwrap();
        let (file, path) = s.take_sync().expect("dirty after a push");
        file.sync_data().unwrap();
        assert!(path.exists());
        assert!(s.take_sync().is_none(), "clean until the next push");
        s.push(2, "b").unwrap();
        assert!(s.take_sync().is_some());
    }

    #[test]
    fn delivers_in_order_and_resumes_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 0..10 {
            s.push(1000 + i, &format!("{{\"n\":{i}}}")).unwrap();
        }
        assert_eq!(s.pending(), 10);
        let batch = s.read(4).unwrap();
        assert_eq!(bodies(&batch)[0], "{\"n\":0}");
        assert_eq!(batch[0].0.enqueued_ms, 1000);
        s.ack(batch[3].1).unwrap();
        assert_eq!(s.pending(), 6);
        // Read but not acked: comes again after a crash.
        let _ = s.read(2).unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.pending(), 6);
        let rest = s.read(100).unwrap();
        assert_eq!(rest.len(), 6);
        assert_eq!(rest[0].0.body, "{\"n\":4}");
        s.push(5, "late").unwrap();
        s.ack(rest[5].1).unwrap();
        assert_eq!(bodies(&s.read(10).unwrap()), ["late"]);
    }

    #[test]
    fn spans_segments_and_removes_delivered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 64 * 1024).unwrap();
        let body = "x".repeat(1000);
        for i in 0..50 {
            s.push(i, &body).unwrap();
        }
        let files = || std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files() > 5, "several segments");
        let all = s.read(1000).unwrap();
        assert_eq!(all.len(), 50);
        s.ack(all[49].1).unwrap();
        assert_eq!(s.pending(), 0);
        assert!(files() <= 3, "delivered segments removed: {}", files());
        assert_eq!(s.read(10).unwrap().len(), 0);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 32 * 1024).unwrap();
        let body = "y".repeat(500);
        for i in 0..200 {
            s.push(i, &format!("{i} {body}")).unwrap();
        }
        assert!(s.bytes() <= 32 * 1024);
        assert!(s.dropped() > 0);
        assert_eq!(
            s.dropped() + s.pending(),
            200,
            "every record delivered or counted"
        );
        let first = s.read(1).unwrap();
        let n: u64 = first[0].0.body.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, s.dropped(), "the oldest went first");
    }

    #[test]
    fn a_torn_record_is_cut_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.push(1, "whole").unwrap();
        let path = s.head_path();
        drop(s);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"2 {\"torn\":").unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.corrupt(), 1);
        assert_eq!(bodies(&s.read(10).unwrap()), ["whole"]);
    }

    #[test]
    fn garbage_lines_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("00000000000000000001.seg"),
            b"\xff\xfe\nnot-a-number x\n7 ok\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("cursor"), b"garbage").unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(bodies(&s.read(10).unwrap()), ["ok"]);
        assert_eq!(s.corrupt(), 2);
    }
}
