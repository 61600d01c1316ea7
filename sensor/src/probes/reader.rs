//! The ring-buffer reader: the one async piece between the kernel and the pipeline.
//!
//! It copies records out of the ring in batches and hands them to the pipeline over a bounded
//! channel. It applies backpressure rather than dropping: when the pipeline falls behind, the
//! ring fills and the kernel counts what it cannot store, by kind, exactly. So no record is
//! ever lost between the ring and the pipeline without a counter saying so.

use std::{
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use bytes::Bytes;
use tokio::{io::unix::AsyncFd, sync::mpsc};

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("cannot register the ring buffer fd {fd} with the reactor: {source}")]
    Register { fd: i32, source: std::io::Error },
    #[error("waiting on the ring buffer failed: {0}")]
    Wait(std::io::Error),
}

#[derive(Debug, Default)]
pub struct ReaderStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
}

/// Largest batch handed over at once; bounds the memory one batch can pin.
const MAX_BATCH: usize = 4096;

/// Read until `tx` closes. `tick` bounds how long a record waits when the kernel batches
/// wakeups (it wakes us only for exec/privilege events or once enough bytes are waiting).
pub async fn run(
    ring: RingBuf<MapData>,
    tx: mpsc::Sender<Vec<Bytes>>,
    tick: Duration,
    stats: Arc<ReaderStats>,
) -> Result<(), ReaderError> {
    let fd = ring.as_raw_fd();
    // SAFETY: the RingBuf owns its map fd and keeps it open for as long as the AsyncFd
    // (which owns the RingBuf) lives; nothing replaces or closes it meanwhile.
    let mut afd = unsafe { AsyncFd::register(ring) }.map_err(|e| ReaderError::Register {
        fd,
        source: e.into(),
    })?;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            guard = afd.readable_mut() => {
                let mut guard = guard.map_err(ReaderError::Wait)?;
                if !drain(guard.get_inner_mut(), &tx, &stats).await {
                    return Ok(());
                }
                guard.clear_ready();
            }
            _ = interval.tick() => {
                if !drain(afd.get_mut(), &tx, &stats).await {
                    return Ok(());
                }
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}

/// Move everything waiting in the ring to the pipeline. False once the pipeline is gone.
async fn drain(
    ring: &mut RingBuf<MapData>,
    tx: &mpsc::Sender<Vec<Bytes>>,
    stats: &ReaderStats,
) -> bool {
    loop {
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        while batch.len() < MAX_BATCH {
            let Some(item) = ring.next() else { break };
            bytes += item.len() as u64;
            batch.push(Bytes::copy_from_slice(&item));
        }
        if batch.is_empty() {
            return true;
        }
        let full = batch.len() == MAX_BATCH;
        stats
            .records
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        if tx.send(batch).await.is_err() {
            return false;
        }
        if !full {
            return true;
        }
    }
}
