//! Progress notifications for one tool call, sent in order on a background
//! task so that emitting one never blocks the run.
//!
//! Codex can be silent for minutes (a long model step, a quiet command),
//! while clients abort calls that sent no progress for a while (Claude Code
//! after 300 s; transport keep-alives do not count). So besides forwarding
//! messages, the task sends a heartbeat whenever nothing went out for the
//! heartbeat interval.

use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;

/// The default heartbeat interval: well inside any client's idle limit.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// Sends `notifications/progress` for one request, if the client asked for
/// them (by giving a progress token). Cheap to clone; the heartbeat stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Progress {
    tx: Option<mpsc::UnboundedSender<String>>,
}

impl Progress {
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>, heartbeat: Duration) -> Self {
        let Some(token) = token else {
            return Self::none();
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut n = 0.0;
            let mut beat = Heartbeat::new(Instant::now(), heartbeat);
            loop {
                let message = tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => {
                            beat.sent(Some(&m), Instant::now());
                            m
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(beat.next_due().into()) => {
                        let now = Instant::now();
                        let Some(m) = beat.due(now) else { continue };
                        beat.sent(None, now);
                        m
                    }
                };
                n += 1.0;
                let param = ProgressNotificationParam::new(token.clone(), n).with_message(message);
                if peer.notify_progress(param).await.is_err() {
                    break;
                }
            }
        });
        Self { tx: Some(tx) }
    }

    /// Keeps only the last message in `slot`: a background call's, for
    /// `get_run`.
    pub fn latest(slot: std::sync::Arc<std::sync::Mutex<Option<String>>>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                *slot.lock().expect("progress slot") = Some(message);
            }
        });
        Self { tx: Some(tx) }
    }

    /// A sink for callers that did not ask for progress.
    pub fn none() -> Self {
        Self { tx: None }
    }

    pub fn send(&self, message: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(message.into());
        }
    }
}

/// When a call's next heartbeat is due and what it says. Pure: the caller
/// passes the time in.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    started: Instant,
    interval: Duration,
    last_sent: Instant,
    last_message: Option<String>,
}

impl Heartbeat {
    pub fn new(started: Instant, interval: Duration) -> Self {
        Self {
            started,
            // A zero interval would spin.
            interval: interval.max(Duration::from_millis(100)),
            last_sent: started,
            last_message: None,
        }
    }

    /// Records a notification that went out at `now`: a real message (kept
    /// to say what the call is doing) or a heartbeat (`None`).
    pub fn sent(&mut self, message: Option<&str>, now: Instant) {
        self.last_sent = now;
        if let Some(m) = message {
            self.last_message = Some(m.to_owned());
        }
    }

    /// When the next heartbeat is due if nothing else is sent.
    pub fn next_due(&self) -> Instant {
        self.last_sent + self.interval
    }

    /// The heartbeat message if nothing went out for an interval by `now`.
    pub fn due(&self, now: Instant) -> Option<String> {
        if now < self.next_due() {
            return None;
        }
        let elapsed = format_elapsed(now.saturating_duration_since(self.started));
        Some(match &self.last_message {
            Some(last) => format!("still running ({elapsed}); last: {last}"),
            None => format!("still running ({elapsed})"),
        })
    }
}

/// `45s`, `2m 10s`, `1h 3m`: short enough for a status line.
pub fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn nothing_is_due_before_an_interval_of_silence() {
        let t0 = Instant::now();
        let beat = Heartbeat::new(t0, 10 * SEC);
        assert_eq!(beat.due(t0), None);
        assert_eq!(beat.due(t0 + 9 * SEC), None);
        assert_eq!(beat.next_due(), t0 + 10 * SEC);
        assert_eq!(
            beat.due(t0 + 10 * SEC).as_deref(),
            Some("still running (10s)")
        );
    }

    #[test]
    fn a_real_message_resets_the_timer_and_is_named_in_the_heartbeat() {
        let t0 = Instant::now();
        let mut beat = Heartbeat::new(t0, 10 * SEC);
        beat.sent(Some("running: cargo test"), t0 + 125 * SEC);
        assert_eq!(beat.due(t0 + 130 * SEC), None);
        assert_eq!(
            beat.due(t0 + 135 * SEC).as_deref(),
            Some("still running (2m 15s); last: running: cargo test")
        );
    }

    #[test]
    fn a_heartbeat_resets_the_timer_and_keeps_the_last_message() {
        let t0 = Instant::now();
        let mut beat = Heartbeat::new(t0, 10 * SEC);
        beat.sent(Some("codex started"), t0 + SEC);
        beat.sent(None, t0 + 11 * SEC);
        assert_eq!(beat.due(t0 + 20 * SEC), None);
        assert_eq!(
            beat.due(t0 + 21 * SEC).as_deref(),
            Some("still running (21s); last: codex started")
        );
    }

    #[test]
    fn a_zero_interval_does_not_spin() {
        let t0 = Instant::now();
        let beat = Heartbeat::new(t0, Duration::ZERO);
        assert!(beat.next_due() > t0);
    }

    #[test]
    fn elapsed_times_read_like_a_clock() {
        assert_eq!(format_elapsed(Duration::from_millis(900)), "0s");
        assert_eq!(format_elapsed(45 * SEC), "45s");
        assert_eq!(format_elapsed(130 * SEC), "2m 10s");
        assert_eq!(format_elapsed(3780 * SEC), "1h 3m");
    }
}
