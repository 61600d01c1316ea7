//! Kernel boot-time nanoseconds → wall-clock time.
//!
//! Events carry `bpf_ktime_get_boot_ns()` (monotonic, counts suspend). The offset to the wall
//! clock is measured at start and can be refreshed (after an NTP step, say).

use nix::time::{ClockId, clock_gettime};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall-clock nanoseconds since the epoch at boot.
    boot_epoch_ns: i128,
}

fn ns(ts: nix::sys::time::TimeSpec) -> i128 {
    ts.tv_sec() as i128 * 1_000_000_000 + ts.tv_nsec() as i128
}

impl Clock {
    pub fn now() -> Self {
        let real = clock_gettime(ClockId::CLOCK_REALTIME).map(ns).unwrap_or(0);
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).map(ns).unwrap_or(0);
        Self {
            boot_epoch_ns: real - boot,
        }
    }

    /// A clock whose boot happened at `boot_epoch_ns` (tests and replays).
    pub fn fixed(boot_epoch_ns: i128) -> Self {
        Self { boot_epoch_ns }
    }

    /// Boot-time nanoseconds now.
    /// Wall-clock unix seconds.
    pub fn unix_now() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    /// Wall-clock unix milliseconds.
    pub fn unix_ms() -> u64 {
        (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).max(0) as u64
    }

    pub fn boot_ns_now() -> u64 {
        clock_gettime(ClockId::CLOCK_BOOTTIME)
            .map(ns)
            .unwrap_or(0)
            .max(0) as u64
    }

    pub fn wall(&self, boot_ns: u64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.boot_epoch_ns + boot_ns as i128)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn rfc3339(&self, boot_ns: u64) -> String {
        crate::alert::format_timestamp(self.wall(boot_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_boot_time_to_rfc3339() {
        let c = Clock::fixed(1_700_000_000_000_000_000);
        assert_eq!(c.rfc3339(1_500), "2023-11-14T22:13:20.000001500Z");
    }
}
