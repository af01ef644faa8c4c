//! The wall-clock time, to the millisecond, for one load: what stamps evaluations for analytics.
//!
//! One thread per process stores the Unix time in nanoseconds every millisecond; an evaluation reads it
//! with one relaxed load, where asking a clock (even quanta's coarse reading, with its conversion from
//! an instant to a duration) costs about as much as the rest of an on/off evaluation.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How often the reading is refreshed: the resolution of "last evaluated".
const RESOLUTION: Duration = Duration::from_millis(1);

/// Unix nanoseconds at the last refresh; 0 until the thread has started (or when it could not).
static UNIX_NANOS: AtomicU64 = AtomicU64::new(0);

fn unix_nanos_now() -> u64 {
    // A clock set before 1970 reads as the epoch; 0 is kept for "not running".
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |since| (since.as_nanos() as u64).max(1))
}

/// Starts the refreshing thread once per process; whether it runs.
pub(crate) fn start() -> bool {
    static STARTED: OnceLock<bool> = OnceLock::new();
    *STARTED.get_or_init(|| {
        UNIX_NANOS.store(unix_nanos_now(), Ordering::Relaxed);
        let spawned = std::thread::Builder::new().name("infra-flags-clock".into()).spawn(|| {
            loop {
                std::thread::sleep(RESOLUTION);
                UNIX_NANOS.store(unix_nanos_now(), Ordering::Relaxed);
            }
        });
        if spawned.is_err() {
            UNIX_NANOS.store(0, Ordering::Relaxed);
        }
        spawned.is_ok()
    })
}

/// The Unix time in nanoseconds as of the last refresh (at most a millisecond or so old), or 0 when the
/// refreshing thread is not running.
#[inline]
pub(crate) fn unix_nanos() -> u64 {
    UNIX_NANOS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reading_follows_the_wall_clock() {
        assert!(start());
        let before = unix_nanos_now();
        std::thread::sleep(Duration::from_millis(20));
        let read = unix_nanos();
        let after = unix_nanos_now();
        assert!(read > before, "refreshed while we slept");
        assert!(read <= after);
    }
}
