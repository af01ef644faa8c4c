//! A named thread that runs a task every interval until told to stop (or until the task says it is
//! done): what the health checks and the rollout driver run on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::DeployError;

/// The thread and its stop flag; stopping (or dropping) wakes it and waits for it.
#[derive(Debug)]
pub(crate) struct Periodic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Periodic {
    /// Runs `round` every `interval` on a thread called `name` until stopped, or until `round` answers
    /// false. `what` names the work in errors.
    pub(crate) fn spawn(
        name: &str,
        what: &str,
        interval: Duration,
        mut round: impl FnMut() -> bool + Send + 'static,
    ) -> Result<Periodic, DeployError> {
        if interval.is_zero() {
            return Err(DeployError::Config(format!("the {what} interval is zero")));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) && round() {
                    std::thread::park_timeout(interval);
                }
            })
            .map_err(|err| DeployError::Config(format!("cannot start the {what} thread: {err}")))?;
        Ok(Periodic { stop, thread: Some(thread) })
    }

    /// Whether the thread has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.stop();
    }
}
