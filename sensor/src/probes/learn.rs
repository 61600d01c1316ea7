//! The kernel side of syscall learning: enrol the cgroups and processes of learning
//! workloads, read back the syscalls they made, and attach the recorder only while anything
//! learns (it runs on every syscall of the host while attached).

use std::collections::{HashMap, HashSet};

use aya::{
    maps::{Array, MapData},
    programs::BtfTracePoint,
};
use sensor_common::{
    LEARN_FILTER_WORDS, LEARN_SYSCALLS, MAP_LEARN_BITMAPS, MAP_LEARN_CGROUPS, MAP_LEARN_EXES,
    MAP_LEARN_FILTER, MAP_LEARN_PIDS, PROG_LEARN_SYSCALLS, PidLearn, SyscallBitmap, filter_bit,
};

use super::{ProbeError, Probes, map_err, short_reason};

/// One learning workload, as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnSlot {
    pub slot: u64,
    pub cgroups: Vec<u64>,
    pub pids: Vec<u32>,
    /// The executable (device, inode) of a program workload: processes exec'ing it are
    /// enrolled by the kernel at exec.
    pub exe: Option<(u32, u64)>,
}

/// BPF_NOEXIST: keep what the kernel already has (a pid enrolled at fork, a bitmap in use).
const NOEXIST: u64 = 1;

impl Probes {
    /// Make the kernel's enrolment match `slots`, and return the syscalls recorded so far for
    /// each slot. An empty plan detaches the recorder and clears the maps.
    pub fn learn_sync(
        &mut self,
        slots: &[LearnSlot],
        proc_root: &std::path::Path,
    ) -> Result<HashMap<u64, Vec<u32>>, ProbeError> {
        let active: HashSet<u64> = slots.iter().map(|s| s.slot).collect();
        let mut seen = HashMap::new();
        {
            let mut bitmaps = self.hash_map::<u64, SyscallBitmap>(MAP_LEARN_BITMAPS)?;
            let zero = SyscallBitmap {
                words: [0; (LEARN_SYSCALLS / 64) as usize],
            };
            for s in slots {
                let _ = bitmaps.insert(s.slot, zero, NOEXIST);
            }
            let all: Vec<(u64, SyscallBitmap)> = bitmaps.iter().filter_map(Result::ok).collect();
            for (slot, bits) in all {
                if active.contains(&slot) {
                    seen.insert(slot, decode(&bits));
                } else {
                    let _ = bitmaps.remove(&slot);
                }
            }
        }
        {
            let mut cgroups = self.hash_map::<u64, u64>(MAP_LEARN_CGROUPS)?;
            let want: HashMap<u64, u64> = slots
                .iter()
                .flat_map(|s| s.cgroups.iter().map(move |c| (*c, s.slot)))
                .collect();
            let have: Vec<(u64, u64)> = cgroups.iter().filter_map(Result::ok).collect();
            for (cg, slot) in have {
                if want.get(&cg) != Some(&slot) {
                    let _ = cgroups.remove(&cg);
                }
            }
            for (cg, slot) in want {
                cgroups
                    .insert(cg, slot, 0)
                    .map_err(map_err(MAP_LEARN_CGROUPS))?;
            }
        }
        {
            let mut exes = self.hash_map::<[u64; 2], u64>(MAP_LEARN_EXES)?;
            let want: HashMap<[u64; 2], u64> = slots
                .iter()
                .filter_map(|s| s.exe.map(|(dev, ino)| ([ino, u64::from(dev)], s.slot)))
                .collect();
            let have: Vec<([u64; 2], u64)> = exes.iter().filter_map(Result::ok).collect();
            for (k, slot) in have {
                if want.get(&k) != Some(&slot) {
                    let _ = exes.remove(&k);
                }
            }
            for (k, slot) in want {
                exes.insert(k, slot, 0).map_err(map_err(MAP_LEARN_EXES))?;
            }
        }
        {
            let mut pids = self.hash_map::<u32, PidLearn>(MAP_LEARN_PIDS)?;
            let have: Vec<(u32, PidLearn)> = pids.iter().filter_map(Result::ok).collect();
            for (pid, p) in have {
                // Each process's syscalls go to its workload (an exited one's too, before it
                // is dropped).
                if active.contains(&p.slot) {
                    let calls: &mut Vec<u32> = seen.entry(p.slot).or_default();
                    calls.extend(decode(&p.bits));
                    calls.sort_unstable();
                    calls.dedup();
                }
                // Gone, or its workload stopped learning.
                if !active.contains(&p.slot) || !proc_root.join(pid.to_string()).exists() {
                    let _ = pids.remove(&pid);
                }
            }
            let zero = PidLearn {
                slot: 0,
                bits: SyscallBitmap {
                    words: [0; (LEARN_SYSCALLS / 64) as usize],
                },
            };
            for s in slots {
                for pid in &s.pids {
                    match pids.get(pid, 0) {
                        Ok(p) if p.slot == s.slot => {}
                        // The kernel's fork inheritance does not know the agent's workload
                        // boundaries (roots, containers named late): the agent's word wins,
                        // and what the process recorded goes with it.
                        Ok(p) => {
                            let _ = pids.insert(pid, PidLearn { slot: s.slot, ..p }, 0);
                        }
                        // Full map: that process goes unrecorded (its children too).
                        Err(_) => {
                            let _ = pids.insert(
                                pid,
                                PidLearn {
                                    slot: s.slot,
                                    ..zero
                                },
                                NOEXIST,
                            );
                        }
                    }
                }
            }
        }
        self.sync_filter(slots)?;
        self.set_recorder(!slots.is_empty())?;
        Ok(seen)
    }

    /// Set the pre-filter bits of every enrolled process and cgroup (bits are only added while
    /// anything learns: a stale bit costs a hash lookup, a missing one loses syscalls), and
    /// clear it when nothing learns.
    fn sync_filter(&mut self, slots: &[LearnSlot]) -> Result<(), ProbeError> {
        let pids: Vec<u32> = {
            let pids = self.hash_map::<u32, PidLearn>(MAP_LEARN_PIDS)?;
            pids.keys().filter_map(Result::ok).collect()
        };
        let mut filter: Array<&mut MapData, u64> =
            Array::try_from(self.map_named(MAP_LEARN_FILTER)?)
                .map_err(map_err(MAP_LEARN_FILTER))?;
        let mut words = [0u64; LEARN_FILTER_WORDS as usize];
        if !slots.is_empty() {
            for (i, w) in words.iter_mut().enumerate() {
                *w = filter.get(&(i as u32), 0).unwrap_or(0);
            }
            let mut set = |base: usize, x: u64| {
                let b = filter_bit(x) as usize;
                words[base + b / 64] |= 1 << (b % 64);
            };
            for pid in pids {
                set(0, u64::from(pid));
            }
            for s in slots {
                for cg in &s.cgroups {
                    set(64, *cg);
                }
            }
        }
        for (i, w) in words.iter().enumerate() {
            filter
                .set(i as u32, *w, 0)
                .map_err(map_err(MAP_LEARN_FILTER))?;
        }
        Ok(())
    }

    pub fn syscall_learning(&self) -> bool {
        self.learn_link.is_some()
    }

    fn set_recorder(&mut self, on: bool) -> Result<(), ProbeError> {
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut(PROG_LEARN_SYSCALLS)
            .ok_or_else(|| ProbeError::Load(format!("{PROG_LEARN_SYSCALLS} missing")))?
            .try_into()
            .map_err(|e| ProbeError::Load(short_reason(&e)))?;
        match (on, self.learn_link.take()) {
            (true, None) => {
                let link = prog
                    .attach()
                    .map_err(|e| ProbeError::Load(short_reason(&e)))?;
                self.learn_link = Some(link);
            }
            (false, Some(link)) => {
                prog.detach(link)
                    .map_err(|e| ProbeError::Load(short_reason(&e)))?;
            }
            (_, link) => self.learn_link = link,
        }
        Ok(())
    }
}

pub fn decode(bits: &SyscallBitmap) -> Vec<u32> {
    let mut out = Vec::new();
    for (w, word) in bits.words.iter().enumerate() {
        for b in 0..64 {
            if word & (1 << b) != 0 {
                out.push((w * 64 + b) as u32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_decode_to_syscall_numbers() {
        let mut words = [0u64; 8];
        words[0] = 1 | 1 << 59;
        words[7] = 1 << 63;
        assert_eq!(decode(&SyscallBitmap { words }), vec![0, 59, 511]);
    }
}
