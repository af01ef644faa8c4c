//! A named background thread that runs a task every interval until stopped: what the file watcher and
//! the Unleash poller share.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::flags::lock;

#[derive(Debug, Default)]
struct Stop {
    requested: Mutex<bool>,
    wake: Condvar,
}

/// Runs a task periodically; stopping (or dropping) wakes the thread at once and waits for it.
#[derive(Debug)]
pub(crate) struct PeriodicWorker {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl PeriodicWorker {
    /// Starts a thread named `name` that runs `task` every `interval` (first after one interval).
    pub(crate) fn spawn(
        name: &str,
        interval: Duration,
        mut task: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(Stop::default());
        let signal = stop.clone();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            let mut requested = lock(&signal.requested);
            // The flag is checked under the lock before every wait: a stop requested before this thread
            // first waits (or while the task ran) is never missed.
            while !*requested {
                let (guard, timeout) =
                    signal.wake.wait_timeout(requested, interval).unwrap_or_else(|poisoned| poisoned.into_inner());
                requested = guard;
                if *requested || !timeout.timed_out() {
                    // Stopped, or woken early: look at the flag again before doing anything.
                    continue;
                }
                // The task runs without the lock, so a stop request never waits for more than one task.
                drop(requested);
                task();
                requested = lock(&signal.requested);
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }

    /// Asks the thread to stop and waits for it (for at most the task in progress).
    pub(crate) fn stop(&mut self) {
        *lock(&self.stop.requested) = true;
        self.stop.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PeriodicWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn runs_until_stopped_and_stops_promptly() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let mut worker = PeriodicWorker::spawn("test-periodic", Duration::from_millis(1), move || {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::Relaxed) < 3 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        worker.stop();
        let after_stop = runs.load(Ordering::Relaxed);
        assert!(after_stop >= 3);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(runs.load(Ordering::Relaxed), after_stop, "no run after stop returned");

        // A long interval does not delay stopping.
        let started = std::time::Instant::now();
        drop(PeriodicWorker::spawn("test-periodic", Duration::from_secs(3600), || {}).unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
