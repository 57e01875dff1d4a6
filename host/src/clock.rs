//! The time schedules are read against. It runs with the system clock, shifted by an offset an operator (or a
//! test) sets with `SCRIP_CLOCK`, so that a birthday or a monthly cron can be brought due without waiting for
//! it. Only automations read it (when they are due, and what `trigger_at` must be after); the ledger, lots
//! and request times keep the system clock.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A clock shared by the scheduler and whoever sets it; clones share one offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_nanos: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `at` now and runs on from there.
    pub fn starting_at(at: DateTime<Utc>) -> Clock {
        let clock = Clock::default();
        clock.set(at);
        clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        let offset = chrono::Duration::nanoseconds(self.offset_nanos.load(Ordering::Relaxed));
        Utc::now() + offset
    }

    /// Makes the clock read `at` now; it runs on from there.
    pub fn set(&self, at: DateTime<Utc>) {
        // Nanoseconds, the system clock's own precision, so that a clock just set never reads before `at`.
        let offset = (at - Utc::now()).num_nanoseconds().unwrap_or(0);
        self.offset_nanos.store(offset, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_clock_reads_the_time_it_was_set_to_and_runs_on() {
        let at = "2030-06-14T23:59:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = Clock::starting_at(at);
        let read = clock.now();
        assert!(read >= at && read - at < chrono::Duration::seconds(5));
        let shared = clock.clone();
        shared.set(at + chrono::Duration::days(1));
        assert!(clock.now() >= at + chrono::Duration::days(1));
    }
}
