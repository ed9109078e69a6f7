//! The lease rule's arithmetic: what a lease must cover beyond a request, and how many deliveries a pass may hold
//! claimed so that each is sent and written within its lease. Pure; used when the engine is built and whenever
//! workflows (whose actions may set their own timeout) are registered.

use std::time::Duration;

/// How many deliveries a pass may hold claimed at once so that each is sent and written within its lease: one
/// round of `concurrency` requests per request timeout that fits in the lease (less the margin), or one round
/// when the client states no timeout.
pub(super) fn claim_window(concurrency: usize, lease: Duration, timeout: Option<Duration>) -> usize {
    let rounds = match timeout {
        Some(timeout) if !timeout.is_zero() => lease.saturating_sub(LEASE_MARGIN).as_nanos() / timeout.as_nanos(),
        _ => 1,
    };
    concurrency.saturating_mul(usize::try_from(rounds).unwrap_or(usize::MAX).max(1))
}

/// What a lease must cover beyond the HTTP client's request timeout (or an action's own): writing the result (and
/// clock skew between servers). See [`EngineBuilder::lease`](crate::EngineBuilder::lease).
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_window_fits_the_lease() {
        let secs = Duration::from_secs;
        assert_eq!(claim_window(16, secs(300), Some(secs(30))), 144, "nine rounds of 30 s fit in 270 s");
        assert_eq!(claim_window(16, secs(300), None), 16, "without a stated timeout: one round");
        assert_eq!(claim_window(4, secs(60), Some(secs(30))), 4, "a lease that only just covers: one round");
        assert_eq!(claim_window(4, secs(10), Some(secs(30))), 4, "never less than one round");
        assert_eq!(claim_window(usize::MAX, secs(3600), Some(Duration::from_nanos(1))), usize::MAX);
    }
}
