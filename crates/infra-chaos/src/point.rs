//! Injection points: the idle fast path, the per-call-site cache, scoping, and applying a verdict.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::engine::ChaosEngine;
use crate::error::ChaosError;

/// Engines whose snapshot is not empty, process-wide. Zero means no point anywhere can be affected: the
/// one load every point pays when chaos is idle.
static ARMED: AtomicUsize = AtomicUsize::new(0);
/// Bumped on every change to any engine's snapshot; call sites cache "not targeted" against it.
static GENERATION: AtomicU64 = AtomicU64::new(1);
static ENGINE_IDS: AtomicU64 = AtomicU64::new(1);

/// Bits of a call site's cache word that hold the engine id; the rest hold the generation.
const ENGINE_BITS: u32 = 20;

pub(crate) fn set_armed(armed: bool) {
    if armed {
        ARMED.fetch_add(1, Ordering::AcqRel);
    } else {
        ARMED.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) fn bump_generation() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

pub(crate) fn next_engine_id() -> u64 {
    ENGINE_IDS.fetch_add(1, Ordering::Relaxed) & ((1 << ENGINE_BITS) - 1)
}

/// What a point must do.
#[derive(Debug)]
pub(crate) enum Verdict {
    Pass,
    Sleep(Duration),
    Busy(Duration),
    Yield,
    Pause(Arc<Gate>),
    Fail(ChaosError),
    HangThenFail(Duration, ChaosError),
    Panic(String),
    Return(Option<String>),
    Print(String),
}

/// Where paused points wait until their failpoint is reconfigured or removed.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    released: Mutex<bool>,
    opened: Condvar,
    released_flag: AtomicBool,
}

impl Gate {
    pub(crate) fn release(&self) {
        *self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.released_flag.store(true, Ordering::Release);
        self.opened.notify_all();
    }

    fn wait(&self) {
        let mut released = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*released {
            released = self.opened.wait(released).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    async fn wait_async(&self) {
        // A paused task must not hold its worker thread: it checks back every millisecond.
        while !self.released_flag.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Applies a verdict on the calling thread.
pub(crate) fn apply_sync(verdict: Verdict, point: &str) -> Result<(), ChaosError> {
    match verdict {
        Verdict::Pass => {}
        Verdict::Sleep(latency) => std::thread::sleep(latency),
        Verdict::Busy(busy) => spin(busy),
        Verdict::Yield => std::thread::yield_now(),
        Verdict::Pause(gate) => gate.wait(),
        Verdict::Fail(error) => return Err(error),
        Verdict::HangThenFail(hang, error) => {
            std::thread::sleep(hang);
            return Err(error);
        }
        Verdict::Panic(message) => panic!("{message}"),
        Verdict::Return(arg) => return Err(ChaosError::Return { point: point.to_owned(), arg }),
        Verdict::Print(message) => eprintln!("{message}"),
    }
    Ok(())
}

/// Applies a verdict in a task: latency is a tokio timer, never a blocked worker.
pub(crate) async fn apply_async(verdict: Verdict, point: &str) -> Result<(), ChaosError> {
    match verdict {
        Verdict::Sleep(latency) => tokio::time::sleep(latency).await,
        Verdict::Yield => tokio::task::yield_now().await,
        Verdict::Pause(gate) => gate.wait_async().await,
        Verdict::HangThenFail(hang, error) => {
            tokio::time::sleep(hang).await;
            return Err(error);
        }
        other => return apply_sync(other, point),
    }
    Ok(())
}

fn spin(busy: Duration) {
    let started = Instant::now();
    while started.elapsed() < busy {
        std::hint::spin_loop();
    }
}

thread_local! {
    /// Engines scoped on this thread, innermost last.
    static SCOPED: RefCell<Vec<ChaosEngine>> = const { RefCell::new(Vec::new()) };
    /// The innermost scoped engine's id (0: none), so call sites check their cache without touching the
    /// engine itself.
    static SCOPED_ID: Cell<u64> = const { Cell::new(0) };
}

static GLOBAL: OnceLock<ChaosEngine> = OnceLock::new();

/// The process-wide engine the point macros use outside any [`ChaosEngine::scope`], built with defaults
/// on first use. Configure it like any engine (`global().configure(...)`).
///
/// # Panics
///
/// Panics if its supervisor thread cannot be started on first use (the process is out of threads).
pub fn global() -> &'static ChaosEngine {
    GLOBAL.get_or_init(|| ChaosEngine::builder().build().expect("the global chaos engine starts"))
}

/// The engine points on this thread use now.
fn current() -> ChaosEngine {
    SCOPED.with(|scoped| scoped.borrow().last().cloned()).unwrap_or_else(|| global().clone())
}

impl ChaosEngine {
    /// Runs `f` with this engine as the one the point macros use on this thread, so that tests configuring
    /// points run in parallel, each with its own engine.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        SCOPED.with(|scoped| scoped.borrow_mut().push(self.clone()));
        SCOPED_ID.with(|id| id.set(self.inner.id));
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                let outer = SCOPED.with(|scoped| {
                    let mut scoped = scoped.borrow_mut();
                    scoped.pop();
                    scoped.last().map_or(0, |engine| engine.inner.id)
                });
                SCOPED_ID.with(|id| id.set(outer));
            }
        }
        let _pop = Pop;
        f()
    }

    /// Wraps `future` so that, on whatever thread it is polled, the point macros inside it use this engine.
    pub fn scope_future<F: Future>(&self, future: F) -> Scoped<F> {
        Scoped { engine: self.clone(), future }
    }
}

pin_project_lite::pin_project! {
    /// A future whose injection points use one engine; from [`ChaosEngine::scope_future`].
    #[derive(Debug)]
    pub struct Scoped<F> {
        engine: ChaosEngine,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let future = this.future;
        this.engine.scope(|| future.poll(cx))
    }
}

/// A named injection point at one place in the code, with a cache that lets it skip the lookup while no
/// experiment targets it. Made by the point macros; not constructed by hand.
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    /// `generation << ENGINE_BITS | engine id` when this point was last found untargeted; 0 when unknown.
    untargeted: AtomicU64,
}

impl Site {
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        Site { name, untargeted: AtomicU64::new(0) }
    }

    /// The point's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether chaos is idle process-wide: then no point can be affected.
    #[inline(always)]
    fn idle() -> bool {
        ARMED.load(Ordering::Relaxed) == 0
    }

    /// Decides this point's verdict on the current engine, or `None` when it is not targeted.
    fn decide(&self) -> Option<Verdict> {
        let engine_id = match SCOPED_ID.with(Cell::get) {
            0 => global().inner.id,
            scoped => scoped,
        };
        // The generation is read before the snapshot, so a change published meanwhile makes the cached word
        // stale rather than wrong.
        let key = (GENERATION.load(Ordering::Acquire) << ENGINE_BITS) | engine_id;
        if self.untargeted.load(Ordering::Relaxed) == key {
            return None;
        }
        let verdict = current().inner.decide(self.name, None);
        if verdict.is_none() {
            self.untargeted.store(key, Ordering::Relaxed);
        }
        verdict
    }

    #[doc(hidden)]
    #[inline]
    pub fn check(&'static self) -> Result<(), ChaosError> {
        if Self::idle() {
            return Ok(());
        }
        self.check_armed()
    }

    #[cold]
    fn check_armed(&'static self) -> Result<(), ChaosError> {
        match self.decide() {
            None => Ok(()),
            Some(verdict) => apply_sync(verdict, self.name),
        }
    }

    #[doc(hidden)]
    pub async fn check_async(&'static self) -> Result<(), ChaosError> {
        if Self::idle() {
            return Ok(());
        }
        match self.decide() {
            None => Ok(()),
            Some(verdict) => apply_async(verdict, self.name).await,
        }
    }

    /// For `fail_point!`: the argument of a `return` action that fired, after applying anything else.
    #[doc(hidden)]
    #[inline]
    pub fn failpoint(&'static self) -> Option<Option<String>> {
        if Self::idle() {
            return None;
        }
        self.failpoint_armed()
    }

    #[cold]
    fn failpoint_armed(&'static self) -> Option<Option<String>> {
        match self.decide()? {
            Verdict::Return(arg) => Some(arg),
            // A failpoint site has no error to return: injected errors do not apply here.
            Verdict::Fail(_) => None,
            Verdict::HangThenFail(hang, _) => {
                std::thread::sleep(hang);
                None
            }
            other => {
                let _ = apply_sync(other, self.name);
                None
            }
        }
    }
}
