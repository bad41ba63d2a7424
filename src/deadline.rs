//! Timeouts that cost next to nothing per wait.
//!
//! A session waits a dozen times per message (each command, each reply,
//! each chunk of data), each wait bounded by a timeout of minutes that
//! almost never fires. A fresh tokio timer per wait is a lock and a wheel
//! insertion and removal every time, and whenever the new timer is the
//! runtime's earliest, a wake-up of its I/O driver through an eventfd
//! (tokio-rs/tokio#5207). A [`Deadline`] keeps one timer per connection
//! and moves it only lazily: a later due time is just noted, and when the
//! timer fires early it is re-armed to the time now due. An active
//! session touches its timer about once per timeout period.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Where a new deadline's timer starts, until its first due time is set.
const UNSET: Duration = Duration::from_secs(86_400);

pub struct Deadline {
    sleep: Pin<Box<Sleep>>,
    due: Instant,
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

impl Deadline {
    pub fn new() -> Self {
        let due = Instant::now() + UNSET;
        Deadline { sleep: Box::pin(tokio::time::sleep_until(due)), due }
    }

    /// The current wait ends at `due`.
    pub fn set(&mut self, due: Instant) {
        self.due = due;
        // Only a timer that would fire too late is moved now.
        if self.sleep.deadline() > due {
            self.sleep.as_mut().reset(due);
        }
    }

    /// The current wait ends `limit` from now.
    pub fn set_in(&mut self, limit: Duration) {
        self.set(Instant::now() + limit);
    }

    /// Resolves once the due time has passed. Cancel-safe: dropping it
    /// leaves the timer armed for the next wait.
    pub async fn expired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            if Instant::now() >= self.due {
                return;
            }
            let due = self.due;
            self.sleep.as_mut().reset(due);
        }
    }

    /// `future`, or `None` once the due time has passed.
    pub async fn within<F: Future>(&mut self, future: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            output = future => Some(output),
            () = self.expired() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_latest_due_time_not_the_first() {
        let started = Instant::now();
        let mut deadline = Deadline::new();
        deadline.set_in(Duration::from_secs(10));
        // A later due time before the first fires: the timer fires at 10 s,
        // finds nothing due, and waits on to 25 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        deadline.set_in(Duration::from_secs(20));
        deadline.expired().await;
        assert_eq!(started.elapsed(), Duration::from_secs(25));
        // An earlier due time moves the timer at once.
        deadline.set_in(Duration::from_secs(100));
        deadline.set_in(Duration::from_secs(3));
        let before = Instant::now();
        deadline.expired().await;
        assert_eq!(before.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn within_gives_the_output_or_nothing() {
        let mut deadline = Deadline::new();
        deadline.set_in(Duration::from_secs(30));
        assert_eq!(deadline.within(async { 7 }).await, Some(7));
        let slow = tokio::time::sleep(Duration::from_secs(31));
        assert_eq!(deadline.within(slow).await, None);
        // Cancelled waits leave it usable, and an elapsed timer re-arms.
        deadline.set_in(Duration::from_secs(60));
        let started = Instant::now();
        assert_eq!(deadline.within(tokio::time::sleep(Duration::from_secs(59))).await, Some(()));
        assert_eq!(started.elapsed(), Duration::from_secs(59));
    }
}
