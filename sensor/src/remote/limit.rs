//! Request rate limits (a token bucket per source address and per token) and the failed
//! authentication detector (a sliding window per source).

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    time::{Duration, Instant},
};

/// Most keys a limiter tracks; past it, the least recently seen is forgotten.
pub const MAX_KEYS: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets: `rate` requests per second, bursts up to `burst`.
pub struct Limiter<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, Bucket>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Take one request for `key`: `Ok`, or `Err(seconds until one is available)`.
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        if !self.buckets.contains_key(key) && self.buckets.len() >= MAX_KEYS {
            // Forget the key idle longest; a forgotten key starts with a full bucket, which
            // is what an idle key would have anyway.
            if let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone())
            {
                self.buckets.remove(&oldest);
            }
        }
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

/// Failed authentications per source in a sliding window; says when a source crosses the
/// threshold (once per window, so a long attack raises one alert a window, not one a try).
pub struct FailureWindow<K> {
    window: Duration,
    threshold: usize,
    seen: HashMap<K, (VecDeque<Instant>, Option<Instant>)>,
}

impl<K: Eq + Hash + Clone> FailureWindow<K> {
    pub fn new(window: Duration, threshold: usize) -> Self {
        Self {
            window,
            threshold: threshold.max(1),
            seen: HashMap::new(),
        }
    }

    /// Count a failure; `Some(failures in the window)` when this one should raise an alert.
    pub fn fail(&mut self, key: &K, now: Instant) -> Option<usize> {
        if !self.seen.contains_key(key) && self.seen.len() >= MAX_KEYS {
            let window = self.window;
            self.seen.retain(|_, (q, _)| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            if self.seen.len() >= MAX_KEYS {
                return None;
            }
        }
        let (q, alerted) = self.seen.entry(key.clone()).or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        // Never more than one window's worth kept.
        if q.len() < self.threshold * 4 {
            q.push_back(now);
        }
        let quiet = alerted.is_none_or(|a| now.saturating_duration_since(a) >= self.window);
        if q.len() >= self.threshold && quiet {
            *alerted = Some(now);
            Some(q.len())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_and_refills_and_keys_are_independent() {
        let mut l = Limiter::new(10.0, 5);
        let t = Instant::now();
        for _ in 0..5 {
            assert!(l.take(&"a", t).is_ok());
        }
        let wait = l.take(&"a", t).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another key is untouched.
        assert!(l.take(&"b", t).is_ok());
        // 100 ms later one more request fits for "a".
        let later = t + Duration::from_millis(100);
        assert!(l.take(&"a", later).is_ok());
        assert!(l.take(&"a", later).is_err());
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let mut l = Limiter::new(0.0, 1);
        let t = Instant::now();
        assert!((0..1000).all(|_| l.take(&1, t).is_ok()));
    }

    #[test]
    fn the_key_table_is_bounded() {
        let mut l = Limiter::new(1.0, 1);
        let t = Instant::now();
        for i in 0..(MAX_KEYS + 50) {
            let _ = l.take(&i, t + Duration::from_micros(i as u64));
        }
        assert!(l.buckets.len() <= MAX_KEYS);
    }

    #[test]
    fn failures_alert_once_per_window() {
        let mut w = FailureWindow::new(Duration::from_secs(60), 3);
        let t = Instant::now();
        assert_eq!(w.fail(&"x", t), None);
        assert_eq!(w.fail(&"x", t), None);
        assert_eq!(w.fail(&"x", t), Some(3));
        assert_eq!(w.fail(&"x", t), None, "second alert in the same window");
        assert_eq!(w.fail(&"y", t), None, "other sources have their own count");
        // A window later, the old failures have expired: three new ones alert again.
        let later = t + Duration::from_secs(61);
        assert_eq!(w.fail(&"x", later), None);
        assert_eq!(w.fail(&"x", later), None);
        assert_eq!(w.fail(&"x", later), Some(3));
    }
}
