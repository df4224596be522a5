//! The live line while a run goes: an indicatif bar on a terminal, a plain line every few
//! seconds otherwise (so that logs of scripted runs show progress too).

use crate::tracker::LiveStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::{io::IsTerminal, time::Duration};

/// Seconds between plain lines when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The live display of one run.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    plain: bool,
    enabled: bool,
    last_plain: Option<Duration>,
}

impl Progress {
    /// A display for a run of `duration`; `enabled = false` shows nothing.
    pub fn new(duration: Duration, enabled: bool) -> Self {
        let plain = !std::io::stderr().is_terminal();
        let bar = if enabled && !plain {
            let bar = ProgressBar::with_draw_target(
                Some(duration.as_millis() as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            let style =
                ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:24}] {msg}")
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            plain,
            enabled,
            last_plain: None,
        }
    }

    /// Shows `stats` at `elapsed` into the run, in `phase` ("sending", "draining").
    pub fn update(&mut self, phase: &str, elapsed: Duration, stats: &LiveStats) {
        if !self.enabled {
            return;
        }
        let line = live_line(phase, stats);
        if self.plain {
            let due = self
                .last_plain
                .is_none_or(|last| elapsed >= last + PLAIN_EVERY);
            if due {
                self.last_plain = Some(elapsed);
                eprintln!("[{:>6.1}s] {line}", elapsed.as_secs_f64());
            }
        } else {
            self.bar.set_position(elapsed.as_millis() as u64);
            self.bar.set_message(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The text of the live line.
pub fn live_line(phase: &str, stats: &LiveStats) -> String {
    let p99 = stats
        .recent_p99_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms"));
    format!(
        "{phase}: sub {} acc {} rej {} inc {} pend {} | {:.0} tps | p99 {p99}",
        stats.submitted,
        stats.accepted,
        stats.rejected,
        stats.included,
        stats.pending,
        stats.recent_tps
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_line_shows_the_counts() {
        let stats = LiveStats {
            submitted: 10,
            accepted: 9,
            rejected: 1,
            included: 8,
            pending: 1,
            recent_tps: 4.4,
            recent_p99_ms: Some(1234.4),
        };
        assert_eq!(
            live_line("sending", &stats),
            "sending: sub 10 acc 9 rej 1 inc 8 pend 1 | 4 tps | p99 1234 ms"
        );
        let empty = LiveStats::default();
        assert!(live_line("draining", &empty).ends_with("p99 -"));
    }
}
