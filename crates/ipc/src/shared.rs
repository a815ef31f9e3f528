//! The state a session's I/O thread shares with its users: a mutex and a condvar, with the
//! poison recovery both ends want in one place.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Session state behind a lock, plus the condvar that announces changes to it.
pub(crate) struct Shared<S> {
    state: Mutex<S>,
    pub(crate) cond: Condvar,
}

impl<S> Shared<S> {
    pub(crate) fn new(state: S) -> Self {
        Shared {
            state: Mutex::new(state),
            cond: Condvar::new(),
        }
    }

    /// Locks the state. A panic while holding the lock is a bug in this crate; the state is
    /// still consistent enough to report counters and errors, so recover rather than cascade.
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until notified or `timeout` passes (spurious wake-ups included: re-check).
    pub(crate) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, S>,
        timeout: Duration,
    ) -> MutexGuard<'a, S> {
        self.cond
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// Waits up to `timeout` while `cond` holds; returns the guard either way.
    pub(crate) fn wait_while<'a>(
        &self,
        guard: MutexGuard<'a, S>,
        timeout: Duration,
        cond: impl FnMut(&mut S) -> bool,
    ) -> MutexGuard<'a, S> {
        self.cond
            .wait_timeout_while(guard, timeout, cond)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }
}
