//! Rate control: [`RateSchedule`] says when each transaction of an open-loop run is due
//! (constant rate, optionally after a linear ramp), [`SendMode`] chooses between open and
//! closed loop, and [`SenderBound`] classifies what limited the sending rate.

use std::time::Duration;

/// How transactions are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SendMode {
    /// Open loop: transaction `i` is sent at [`RateSchedule::due`]`(i)`, whatever the node does.
    Open(RateSchedule),
    /// Closed loop: as fast as possible while at most `window` transactions are sent but not
    /// yet included (or rejected).
    Closed {
        /// Most transactions in flight.
        window: usize,
    },
}

/// An open-loop rate: linear from `start_tps` to `target_tps` over `ramp`, then constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSchedule {
    /// Rate after the ramp, in transactions per second.
    pub target_tps: f64,
    /// Rate at time zero.
    pub start_tps: f64,
    /// Length of the ramp (zero for a constant rate).
    pub ramp: Duration,
}

impl RateSchedule {
    /// A constant rate.
    pub fn constant(tps: f64) -> Self {
        Self {
            target_tps: tps,
            start_tps: tps,
            ramp: Duration::ZERO,
        }
    }

    /// A ramp from (almost) zero to `tps` over `ramp`, then `tps`.
    pub fn ramped(tps: f64, ramp: Duration) -> Self {
        // A small non-zero start keeps the first transaction's due time finite and early.
        Self {
            target_tps: tps,
            start_tps: (tps / 100.0).max(1.0).min(tps),
            ramp,
        }
    }

    fn slope(&self) -> f64 {
        (self.target_tps - self.start_tps) / self.ramp.as_secs_f64()
    }

    /// Transactions due in `[0, t)`: the integral of the rate.
    pub fn due_by(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        let ramp = self.ramp.as_secs_f64();
        if ramp <= 0.0 {
            return self.target_tps * t;
        }
        let in_ramp = t.min(ramp);
        let ramped = self.start_tps * in_ramp + self.slope() * in_ramp * in_ramp / 2.0;
        ramped + self.target_tps * (t - ramp).max(0.0)
    }

    /// When transaction `index` (0-based) is due: the time at which `index + 1` transactions
    /// are due, so that the generator never sends ahead of the schedule.
    pub fn due(&self, index: u64) -> Duration {
        let count = index as f64 + 1.0;
        let ramp = self.ramp.as_secs_f64();
        if ramp > 0.0 {
            let ramp_total = self.due_by(self.ramp);
            if count <= ramp_total {
                let a = self.slope() / 2.0;
                let b = self.start_tps;
                let t = if a.abs() < f64::EPSILON {
                    count / b
                } else {
                    // Positive root of a t^2 + b t - count = 0, in a form that stays accurate
                    // when `a` is small.
                    2.0 * count / (b + (b * b + 4.0 * a * count).sqrt())
                };
                return Duration::from_secs_f64(t);
            }
            return Duration::from_secs_f64(ramp + (count - ramp_total) / self.target_tps);
        }
        Duration::from_secs_f64(count / self.target_tps)
    }

    /// Transactions sent by a run of `duration` on this schedule.
    pub fn total_over(&self, duration: Duration) -> u64 {
        // Rounded so that `due(total - 1) <= duration` up to float error.
        (self.due_by(duration) + 1e-6).floor() as u64
    }
}

/// What held the sending rate below its target, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderBound {
    /// The schedule was kept (the last send at most 2% of the duration late).
    KeptUp,
    /// Behind schedule while every connection was waiting for the node: the node (its RPC
    /// server or pool admission) is the bottleneck.
    Node,
    /// Behind schedule although connections were free: this process could not go faster.
    Generator,
    /// Closed loop: the window of in-flight transactions decided the rate.
    Window,
    /// The pre-signed transactions ran out before the duration.
    Exhausted,
}

/// Lateness on the schedule, as a share of the duration, that still counts as keeping up.
pub const KEPT_UP_LAG_SHARE: f64 = 0.02;

/// Classifies an open-loop run of `duration` whose last dispatch was `final_lag` behind its
/// due time; `blocked` is the time the dispatcher spent waiting for a connection with a free
/// request slot (the node had not answered earlier requests yet).
pub fn classify_open_loop(
    duration: Duration,
    final_lag: Duration,
    blocked: Duration,
) -> SenderBound {
    if final_lag.as_secs_f64() <= KEPT_UP_LAG_SHARE * duration.as_secs_f64() {
        SenderBound::KeptUp
    } else if blocked >= final_lag {
        SenderBound::Node
    } else {
        SenderBound::Generator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_spaces_transactions_evenly() {
        let schedule = RateSchedule::constant(1000.0);
        assert_eq!(schedule.due(0), Duration::from_millis(1));
        assert_eq!(schedule.due(999), Duration::from_secs(1));
        assert_eq!(schedule.total_over(Duration::from_secs(60)), 60_000);
    }

    #[test]
    fn ramp_integrates_to_the_due_times() {
        let schedule = RateSchedule::ramped(10_000.0, Duration::from_secs(10));
        let mut previous = Duration::ZERO;
        for index in (0..200_000).step_by(997) {
            let due = schedule.due(index);
            assert!(due >= previous, "due times must not decrease");
            previous = due;
            let counted = schedule.due_by(due);
            assert!(
                (counted - (index as f64 + 1.0)).abs() < 1e-3 * (index as f64 + 1.0),
                "{index}: {counted}"
            );
        }
        // Half-way through a linear ramp from 100 to 10,000 tps the rate is 5,050 tps.
        let at = |s: f64| schedule.due_by(Duration::from_secs_f64(s));
        assert!((at(5.001) - at(5.0) - 5.05).abs() < 0.01);
        // After the ramp, constant.
        assert!((at(20.0) - at(19.0) - 10_000.0).abs() < 1e-6);
        assert_eq!(schedule.total_over(Duration::from_secs(10)), 50_500);
    }

    #[test]
    fn classifies_what_held_the_rate() {
        let s = Duration::from_secs(1);
        let minute = 60 * s;
        assert_eq!(
            classify_open_loop(minute, Duration::from_millis(1100), 5 * s),
            SenderBound::KeptUp
        );
        assert_eq!(classify_open_loop(minute, 3 * s, 5 * s), SenderBound::Node);
        assert_eq!(classify_open_loop(minute, 3 * s, s), SenderBound::Generator);
        assert_eq!(classify_open_loop(5 * s, s, 3 * s), SenderBound::Node);
    }
}
