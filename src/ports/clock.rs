//! The clock port: the only way the crate learns the time.

use chrono::{DateTime, Utc};

/// Tells the time. The engine reads time only through this trait, so tests can drive it with
/// [`ManualClock`](crate::testing::ManualClock).
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one sanctioned read of the system clock.
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
