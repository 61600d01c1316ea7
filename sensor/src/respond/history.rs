//! Recent events per process, bounded, for evidence bundles: the pipeline records every
//! event; collection reads a process tree's share. Evicted histories are counted.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use crate::event::Event;

pub struct History {
    per_process: usize,
    max_processes: usize,
    by_pid: HashMap<u32, VecDeque<Arc<Event>>>,
    /// Pids in first-recorded order, for eviction.
    order: VecDeque<u32>,
    /// Events dropped from full per-process rings, and whole histories evicted.
    pub events_overwritten: u64,
    pub processes_evicted: u64,
}

impl History {
    pub fn new(per_process: usize, max_processes: usize) -> History {
        History {
            per_process: per_process.max(1),
            max_processes: max_processes.max(1),
            by_pid: HashMap::new(),
            order: VecDeque::new(),
            events_overwritten: 0,
            processes_evicted: 0,
        }
    }

    pub fn record(&mut self, ev: Arc<Event>) {
        let pid = ev.process.pid;
        if !self.by_pid.contains_key(&pid) {
            while self.by_pid.len() >= self.max_processes {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if self.by_pid.remove(&old).is_some() {
                    self.processes_evicted += 1;
                }
            }
            self.order.push_back(pid);
        }
        let ring = self.by_pid.entry(pid).or_default();
        if ring.len() >= self.per_process {
            ring.pop_front();
            self.events_overwritten += 1;
        }
        ring.push_back(ev);
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// Events of `root` and every process whose recorded parent or ancestry includes it,
    /// in pipeline order.
    pub fn tree(&self, root: u32) -> Vec<Arc<Event>> {
        let mut out: Vec<Arc<Event>> = self
            .by_pid
            .values()
            .filter(|ring| {
                ring.back().is_some_and(|e| {
                    let p = &e.process;
                    p.pid == root
                        || p.parent.as_ref().is_some_and(|pp| pp.pid == root)
                        || p.ancestry.iter().any(|a| a.pid == root)
                })
            })
            .flat_map(|ring| ring.iter().cloned())
            .collect();
        out.sort_by_key(|e| e.event.sequence);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Parent;

    fn ev(pid: u32, ppid: u32, seq: u64) -> Arc<Event> {
        let mut e = crate::baseline::tests::event(crate::event::Kind::Exec, "exec");
        e.process.pid = pid;
        e.process.parent = Some(Parent {
            pid: ppid,
            name: None,
            executable: None,
        });
        e.event.sequence = seq;
        Arc::new(e)
    }

    #[test]
    fn bounded_per_process_and_overall_and_tree_ordered() {
        let mut h = History::new(2, 3);
        h.record(ev(10, 1, 1));
        h.record(ev(11, 10, 2));
        h.record(ev(10, 1, 3));
        h.record(ev(10, 1, 4));
        assert_eq!(h.events_overwritten, 1);
        let t: Vec<u64> = h.tree(10).iter().map(|e| e.event.sequence).collect();
        assert_eq!(t, vec![2, 3, 4]);
        h.record(ev(12, 1, 5));
        h.record(ev(13, 1, 6));
        assert_eq!(h.processes_evicted, 1);
        assert_eq!(h.len(), 3);
        assert!(h.tree(10).iter().all(|e| e.process.pid != 10));
    }
}
