//! Event fan-out to subscribers, and the short history `events tail` starts from.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::mpsc;

use super::EventFilter;
use crate::{event::Event, stats::Stats};

/// Events kept for `events tail` without `--follow`.
pub const RECENT: usize = 1024;

struct Subscriber {
    filter: EventFilter,
    tx: mpsc::Sender<Arc<Event>>,
    lost: Arc<AtomicU64>,
}

pub struct Hub {
    subs: Mutex<Vec<Subscriber>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
    queue: usize,
    stats: Arc<Stats>,
}

/// A subscription: its queue, and how many events it lost to overflow.
pub struct Subscription {
    pub rx: mpsc::Receiver<Arc<Event>>,
    pub lost: Arc<AtomicU64>,
}

impl Hub {
    pub fn new(queue: usize, stats: Arc<Stats>) -> Self {
        Self {
            subs: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            queue,
            stats,
        }
    }

    /// Called by the pipeline for every event. Serialization happens in the subscriber's
    /// task, not here, so the pipeline pays one Arc clone per subscriber.
    pub fn publish(&self, ev: Arc<Event>) {
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(ev.clone());
        }
        let Ok(mut subs) = self.subs.lock() else {
            return;
        };
        subs.retain(|s| !s.tx.is_closed());
        for s in subs.iter() {
            if !s.filter.matches(&ev) {
                continue;
            }
            if s.tx.try_send(ev.clone()).is_err() {
                s.lost.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .subscriber_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue);
        let lost = Arc::new(AtomicU64::new(0));
        if let Ok(mut subs) = self.subs.lock() {
            subs.push(Subscriber {
                filter,
                tx,
                lost: lost.clone(),
            });
        }
        Subscription { rx, lost }
    }

    pub fn recent(&self, n: usize, filter: &EventFilter) -> Vec<Arc<Event>> {
        let Ok(r) = self.recent.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = r
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(n)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    pub fn subscribers(&self) -> usize {
        self.subs
            .lock()
            .map(|s| s.iter().filter(|s| !s.tx.is_closed()).count())
            .unwrap_or(0)
    }
}
