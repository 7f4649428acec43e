//! Incremental windows: from a stored cursor (the end of the last committed
//! window) to "now", cut into pieces no longer than the platform allows, with
//! a look-back overlap so late updates are picked up again.

use chrono::{DateTime, Duration, Utc};

/// A half-open time range `[start, end)` of platform modification times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end (platforms that take an inclusive end get `end - 1s`).
    pub end: DateTime<Utc>,
}

impl Window {
    /// The window's length.
    pub fn len(&self) -> Duration {
        self.end - self.start
    }

    /// True for an empty window.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The last second in the window, for a platform that takes inclusive
    /// bounds at one-second resolution: `end - 1 s`, and never before
    /// `start` (a window shorter than a second asks for its first second).
    pub fn inclusive_end(&self) -> DateTime<Utc> {
        (self.end - Duration::seconds(1)).max(self.start)
    }

    /// The window as inclusive Unix-second bounds `[start, end - 1 s]`
    /// (see [`Window::inclusive_end`]).
    pub fn inclusive_seconds(&self) -> (i64, i64) {
        (self.start.timestamp(), self.inclusive_end().timestamp())
    }
}

/// How to cut windows for one stream.
#[derive(Debug, Clone, Copy)]
pub struct WindowPlan {
    /// Longest window the platform accepts (Taobao: 1 day, PDD: 30 min).
    pub max_window: Duration,
    /// How far before the cursor to start again, for late updates.
    pub lookback: Duration,
    /// Where to start when the stream has no cursor yet.
    pub initial_start: DateTime<Utc>,
    /// Stay this far behind "now": platforms index updates with a delay.
    pub end_lag: Duration,
}

impl WindowPlan {
    /// Windows of `window_minutes`, looking back `lookback_minutes` (none
    /// when negative), starting `initial_days` before now on the first
    /// pull, staying `end_lag` behind now: a config's settings as a plan.
    pub fn from_settings(
        window_minutes: i64,
        lookback_minutes: i64,
        initial_days: i64,
        end_lag: Duration,
    ) -> WindowPlan {
        WindowPlan {
            max_window: Duration::minutes(window_minutes),
            lookback: Duration::minutes(lookback_minutes.max(0)),
            initial_start: Utc::now() - Duration::days(initial_days),
            end_lag,
        }
    }
}

/// Windows from `cursor - lookback` (or `initial_start`) to `now - end_lag`,
/// each at most `max_window` long, in order. Empty when there is nothing to do.
pub fn plan_windows(
    plan: &WindowPlan,
    cursor: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Window> {
    let end = now - plan.end_lag;
    let start = match cursor {
        Some(c) => (c - plan.lookback).max(plan.initial_start),
        None => plan.initial_start,
    };
    let step = if plan.max_window > Duration::zero() {
        plan.max_window
    } else {
        Duration::days(1)
    };
    let mut windows = Vec::new();
    let mut s = start;
    while s < end {
        let e = (s + step).min(end);
        windows.push(Window { start: s, end: e });
        s = e;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_704_067_200 + h * 3600, 0).unwrap()
    }

    #[test]
    fn inclusive_bounds_end_a_second_early_but_never_before_the_start() {
        let w = Window {
            start: t(0),
            end: t(1),
        };
        assert_eq!(
            w.inclusive_seconds(),
            (t(0).timestamp(), t(1).timestamp() - 1)
        );
        let short = Window {
            start: t(0),
            end: t(0) + Duration::milliseconds(300),
        };
        assert_eq!(short.inclusive_end(), t(0));
    }

    fn plan() -> WindowPlan {
        WindowPlan {
            max_window: Duration::hours(24),
            lookback: Duration::minutes(30),
            initial_start: t(0),
            end_lag: Duration::minutes(1),
        }
    }

    #[test]
    fn first_run_starts_at_initial_and_respects_max_window() {
        let w = plan_windows(&plan(), None, t(50));
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[0],
            Window {
                start: t(0),
                end: t(24)
            }
        );
        assert_eq!(
            w[1],
            Window {
                start: t(24),
                end: t(48)
            }
        );
        assert_eq!(w[2].end, t(50) - Duration::minutes(1));
        assert!(w.iter().all(|w| w.len() <= Duration::hours(24)));
        // contiguous
        assert!(w.windows(2).all(|p| p[0].end == p[1].start));
    }

    #[test]
    fn resumes_with_lookback_but_not_before_initial_start() {
        let w = plan_windows(&plan(), Some(t(10)), t(12));
        assert_eq!(w[0].start, t(10) - Duration::minutes(30));
        let w = plan_windows(&plan(), Some(t(0)), t(2));
        assert_eq!(w[0].start, t(0));
    }

    #[test]
    fn nothing_to_do_when_caught_up() {
        assert!(plan_windows(&plan(), Some(t(5)), t(5) - Duration::hours(1)).is_empty());
    }
}
