//! Rate limits per organization: a token bucket (the `governor` crate's GCRA) that every key of the
//! organization draws from, refilled at `per_second` up to `burst`. Buckets live in each server process:
//! with N processes behind a balancer an organization gets up to N times the limit (the README says so).

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// `SCRIP_RATE_LIMIT_PER_SECOND` and `SCRIP_RATE_LIMIT_BURST`: generous by default (Scrip itself allows
/// 10/s with bursts of 30); a `per_second` of 0 turns limits off.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            per_second: 500,
            burst: 1000,
        }
    }
}

/// What one request may do, and what the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    /// The bucket's capacity.
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the bucket is full again.
    pub reset: u64,
    /// Refused: whole seconds until a request would be let through.
    pub retry_after: Option<u64>,
}

type Keyed =
    RateLimiter<Uuid, DefaultKeyedStateStore<Uuid>, DefaultClock, StateInformationMiddleware>;

pub struct Limits {
    limiter: Option<Keyed>,
    settings: Settings,
}

impl Limits {
    pub fn new(settings: Settings) -> Limits {
        let limiter = NonZeroU32::new(settings.per_second).map(|rate| {
            let burst = NonZeroU32::new(settings.burst.max(1)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
                .with_middleware::<StateInformationMiddleware>()
        });
        Limits { limiter, settings }
    }

    /// Takes one request from the organization's bucket; `None` when limits are off.
    pub fn check(&self, organization: Uuid) -> Option<Decision> {
        let limiter = self.limiter.as_ref()?;
        let limit = self.settings.burst.max(1);
        let per_token = Duration::from_secs(1) / self.settings.per_second.max(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let full_in = |remaining: u32| now + per_token * (limit - remaining.min(limit));
        Some(match limiter.check_key(&organization) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset: full_in(remaining).as_secs_f64().ceil() as u64,
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset: full_in(0).as_secs_f64().ceil() as u64,
                    retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_past_the_capacity_is_refused_and_told_when_to_return() {
        let limits = Limits::new(Settings {
            per_second: 1,
            burst: 3,
        });
        let org = Uuid::now_v7();
        let answers: Vec<Decision> = (0..4).filter_map(|_| limits.check(org)).collect();
        let remaining: Vec<u32> = answers.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert!(answers[..3].iter().all(|d| d.allowed));
        assert!(!answers[3].allowed);
        assert_eq!(answers[3].retry_after, Some(1));
        assert!(
            limits.check(Uuid::now_v7()).is_some_and(|d| d.allowed),
            "each organization has its own"
        );
        assert!(
            Limits::new(Settings {
                per_second: 0,
                burst: 0
            })
            .check(org)
            .is_none()
        );
    }
}
