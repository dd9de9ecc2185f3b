//! Progress notifications for one tool call, sent in order on a background
//! task so that emitting one never blocks the run.

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;

/// Sends `notifications/progress` for one request, if the client asked for
/// them (by giving a progress token). Cheap to clone.
#[derive(Clone)]
pub struct Progress {
    tx: Option<mpsc::UnboundedSender<String>>,
}

impl Progress {
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>) -> Self {
        let Some(token) = token else {
            return Self::none();
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut n = 0.0;
            while let Some(message) = rx.recv().await {
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
