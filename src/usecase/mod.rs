//! The relay's use cases, written against the traits in [`crate::ports`]: the same code runs
//! under Lambda, under `serve`, and in tests.

pub mod accept;
pub mod process;
pub mod subscribe;

use std::time::Duration;

use tokio::time::Instant;

/// The moment by which work must be finished: the Lambda invocation's deadline, or a budget in
/// serve mode. Retries and waits never run past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Instant);

/// Time kept in hand before a deadline, to report the outcome of the work.
const SAFETY_MARGIN: Duration = Duration::from_millis(500);

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// A deadline given as milliseconds since the Unix epoch, as Lambda's context gives it.
    pub fn from_epoch_millis(deadline_ms: u64) -> Self {
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        Self::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// Time left before the deadline, less the safety margin.
    pub fn remaining(&self) -> Duration {
        self.0
            .saturating_duration_since(Instant::now())
            .saturating_sub(SAFETY_MARGIN)
    }

    /// Whether waiting `wait` and then doing `work` still fits before the deadline.
    pub fn allows(&self, wait: Duration, work: Duration) -> bool {
        wait + work <= self.remaining()
    }
}
