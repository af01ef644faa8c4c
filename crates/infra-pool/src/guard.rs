//! The connection guard both front ends hand out.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::core::Slot;

/// Where a guard returns its connection: the async or the blocking pool.
pub(crate) trait Home<C>: Send + Sync {
    /// Takes a connection back (`broken` when its user marked it so).
    fn release(&self, slot: Slot<C>, broken: bool);
    /// Forgets a connection its user kept.
    fn detach(&self);
}

/// A connection on loan from a pool; it goes back when the guard drops (the seed's `release` and its
/// context manager).
///
/// Dereferences to the connection. On return the manager's `on_release` and `is_broken` decide whether it
/// is reused or closed; [`Pooled::mark_broken`] closes it regardless, and [`Pooled::detach`] takes it out
/// of the pool for good.
pub struct Pooled<C: Send + 'static> {
    slot: Option<Slot<C>>,
    home: Arc<dyn Home<C>>,
    broken: bool,
}

impl<C: Send + 'static> Pooled<C> {
    pub(crate) fn new(slot: Slot<C>, home: Arc<dyn Home<C>>) -> Self {
        Pooled { slot: Some(slot), home, broken: false }
    }

    /// Closes this connection when it is returned instead of reusing it: call this after an error that
    /// leaves the connection in an unknown state (a protocol error, a timed-out query).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Takes the connection out of the pool: the pool forgets it (counted as detached) and frees its slot.
    pub fn detach(mut self) -> C {
        let slot = self.slot.take().expect("a live guard holds its connection");
        self.home.detach();
        slot.conn
    }

    fn slot(&self) -> &Slot<C> {
        self.slot.as_ref().expect("a live guard holds its connection")
    }
}

impl<C: Send + 'static> Deref for Pooled<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.slot().conn
    }
}

impl<C: Send + 'static> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.slot.as_mut().expect("a live guard holds its connection").conn
    }
}

impl<C: Send + 'static> AsRef<C> for Pooled<C> {
    fn as_ref(&self) -> &C {
        self
    }
}

impl<C: Send + 'static> AsMut<C> for Pooled<C> {
    fn as_mut(&mut self) -> &mut C {
        self
    }
}

impl<C: Send + 'static> Drop for Pooled<C> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.home.release(slot, self.broken);
        }
    }
}

impl<C: Send + std::fmt::Debug + 'static> std::fmt::Debug for Pooled<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled").field("conn", &self.slot().conn).field("broken", &self.broken).finish()
    }
}
