//! Exporting with a deadline: each exporter gets a thread of its own, and the batch worker waits for
//! it at most the configured export timeout. An exporter that overruns is counted as failed for that
//! batch and skipped (its batches counted as failed) until it returns, so one hung exporter never
//! holds up the others or the worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use crate::data::SpanData;
use crate::export::{Resource, SpanExporter};

/// What an export call came to, as the worker sees it.
pub(crate) type Outcome = Result<(), String>;

struct Job {
    spans: Arc<Vec<SpanData>>,
    resource: Arc<Resource>,
    reply: mpsc::SyncSender<Outcome>,
}

/// One exporter's thread.
#[derive(Debug)]
pub(crate) struct Runner {
    jobs: mpsc::Sender<Job>,
    busy: Arc<AtomicBool>,
}

impl Runner {
    /// Starts the exporter's thread; it ends when the runner is dropped.
    pub(crate) fn start(exporter: Arc<dyn SpanExporter>) -> std::io::Result<Runner> {
        let (jobs, incoming) = mpsc::channel::<Job>();
        let busy = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&busy);
        std::thread::Builder::new().name("infra-trace-export".into()).spawn(move || {
            for job in incoming {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    exporter.export(&job.spans, &job.resource)
                }));
                let outcome = match outcome {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("the exporter panicked".to_owned()),
                };
                // Free again before the reply: the worker may hand the next batch over at once.
                done.store(false, Ordering::Release);
                let _ = job.reply.send(outcome);
            }
        })?;
        Ok(Runner { jobs, busy })
    }

    /// Hands a batch over; `None` when the exporter is still busy with one that overran its
    /// deadline (or its thread is gone).
    pub(crate) fn submit(
        &self,
        spans: &Arc<Vec<SpanData>>,
        resource: &Arc<Resource>,
    ) -> Option<mpsc::Receiver<Outcome>> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return None;
        }
        let (reply, outcome) = mpsc::sync_channel(1);
        let job = Job { spans: Arc::clone(spans), resource: Arc::clone(resource), reply };
        if self.jobs.send(job).is_err() {
            return None;
        }
        Some(outcome)
    }
}
