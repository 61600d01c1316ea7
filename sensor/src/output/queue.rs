//! A sink's queue: the disk spool for network sinks, a bounded memory queue for stdout.
//! Both hand out records with a position and forget them only when that position is acked.

use std::collections::VecDeque;

use super::spool::{Cursor, Record, Spool, SpoolError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    Disk(Cursor),
    Memory(u64),
}

#[derive(Debug)]
pub struct MemoryQueue {
    items: VecDeque<(u64, Record)>,
    max: usize,
    next: u64,
    dropped: u64,
}

#[derive(Debug)]
pub enum Queue {
    Disk(Spool),
    Memory(MemoryQueue),
}

impl Queue {
    pub fn memory(max: usize) -> Self {
        Queue::Memory(MemoryQueue {
            items: VecDeque::new(),
            max: max.max(1),
            next: 1,
            dropped: 0,
        })
    }

    pub fn push(&mut self, enqueued_ms: u64, body: &str) -> Result<(), SpoolError> {
        match self {
            Queue::Disk(s) => s.push(enqueued_ms, body),
            Queue::Memory(m) => {
                if m.items.len() >= m.max {
                    m.items.pop_front();
                    m.dropped += 1;
                }
                m.items.push_back((
                    m.next,
                    Record {
                        enqueued_ms,
                        body: body.to_owned(),
                    },
                ));
                m.next += 1;
                Ok(())
            }
        }
    }

    pub fn read(&mut self, max: usize) -> Result<Vec<(Record, Position)>, SpoolError> {
        match self {
            Queue::Disk(s) => Ok(s
                .read(max)?
                .into_iter()
                .map(|(r, c)| (r, Position::Disk(c)))
                .collect()),
            Queue::Memory(m) => Ok(m
                .items
                .iter()
                .take(max)
                .map(|(seq, r)| (r.clone(), Position::Memory(*seq)))
                .collect()),
        }
    }

    pub fn ack(&mut self, to: Position) -> Result<(), SpoolError> {
        match (self, to) {
            (Queue::Disk(s), Position::Disk(c)) => s.ack(c),
            (Queue::Memory(m), Position::Memory(seq)) => {
                while m.items.front().is_some_and(|(s, _)| *s <= seq) {
                    m.items.pop_front();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The disk spool's head segment to fsync, if it changed (memory queues: never).
    pub fn take_sync(&mut self) -> Option<(std::fs::File, std::path::PathBuf)> {
        match self {
            Queue::Disk(s) => s.take_sync(),
            Queue::Memory(_) => None,
        }
    }

    pub fn pending(&self) -> u64 {
        match self {
            Queue::Disk(s) => s.pending(),
            Queue::Memory(m) => m.items.len() as u64,
        }
    }

    pub fn bytes(&self) -> u64 {
        match self {
            Queue::Disk(s) => s.bytes(),
            Queue::Memory(m) => m.items.iter().map(|(_, r)| r.body.len() as u64).sum(),
        }
    }

    /// Records lost to the bound, or found torn or damaged on disk.
    pub fn dropped(&self) -> u64 {
        match self {
            Queue::Disk(s) => s.dropped() + s.corrupt(),
            Queue::Memory(m) => m.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_queue_drops_oldest_and_acks_by_position() {
        let mut q = Queue::memory(3);
        for i in 0..5 {
            q.push(i, &format!("r{i}")).unwrap();
        }
        assert_eq!(q.dropped(), 2);
        let batch = q.read(2).unwrap();
        assert_eq!(batch[0].0.body, "r2");
        // Overflow while a batch is out does not confuse the ack.
        q.push(9, "r5").unwrap();
        q.ack(batch[1].1).unwrap();
        let rest: Vec<String> = q
            .read(9)
            .unwrap()
            .into_iter()
            .map(|(r, _)| r.body)
            .collect();
        assert_eq!(rest, ["r4", "r5"]);
    }
}
