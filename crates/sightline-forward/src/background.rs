//! The tasks a forwarder runs beside the hub (a feeder that reads the bus, a worker that
//! sends) and the one way to stop them: the exporter and the notifier both hold a
//! [`Background`].
//!
//! It must never wait on a task longer than its caller allows: a collector or a webhook that
//! hangs costs only its own stop time, never the hub's shutdown.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Background tasks and the signal they watch (`true`: stop). Dropping it drops the sender,
/// which the tasks also take as a stop.
pub(crate) struct Background {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Tells every task to stop, then waits for each at most `within`.
    pub(crate) async fn stop(self, within: Duration) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(within, t).await;
        }
    }
}
