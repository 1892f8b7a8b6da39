//! Fork safety. `os.fork()` copies only the forking thread: a lock held at that instant by one
//! of the agent's background threads would stay locked forever in the child, and the child has
//! no sender, heartbeat or control thread. So, around a fork (registered with
//! `os.register_at_fork` by the Python side), the forking thread takes every lock of the agent
//! first, and both parent and child release them afterwards; the child then drops the parent's
//! queued events and per-thread state and starts its own background threads.
//!
//! It must never be called except from those fork hooks (the forking thread, GIL held).

use crate::{background, tracer, transport};
use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Whether tracing was on when the fork began. Tracing pauses while the locks are held: other
/// fork hooks (threading's, logging's, multiprocessing's) run Python code in between, and their
/// calls must not reach for a lock this thread already holds.
static WAS_ACTIVE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The guards taken before a fork, released after it (in reverse order).
    static GUARDS: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

fn keep<T: 'static>(g: T) {
    GUARDS.with(|v| v.borrow_mut().push(Box::new(g)));
}

fn release() {
    GUARDS.with(|v| {
        let mut v = v.borrow_mut();
        while let Some(g) = v.pop() {
            drop(g);
        }
    });
}

/// Takes the agent's locks in their usual order: registry, per-thread statistics, queue,
/// background sleeper.
pub fn prepare() {
    release();
    WAS_ACTIVE.store(
        tracer::ACTIVE.swap(false, Ordering::SeqCst),
        Ordering::SeqCst,
    );
    let reg = tracer::registry();
    let threads: Vec<Arc<Mutex<tracer::ThreadStats>>> = reg
        .as_ref()
        .map(|r| r.thread_stats().to_vec())
        .unwrap_or_default();
    keep(reg);
    for t in threads {
        // The guard must be 'static to be kept: leak one Arc per thread and fork.
        let m: &'static Mutex<tracer::ThreadStats> = Box::leak(Box::new(t));
        keep(m.lock().unwrap_or_else(|e| e.into_inner()));
    }
    keep(transport::global().lock_for_fork());
    keep(background::lock_for_fork());
}

pub fn after_parent() {
    release();
    tracer::ACTIVE.store(WAS_ACTIVE.load(Ordering::SeqCst), Ordering::SeqCst);
}

pub fn after_child() {
    release();
    tracer::after_fork_child();
    transport::global().after_fork_child();
    tracer::ACTIVE.store(WAS_ACTIVE.load(Ordering::SeqCst), Ordering::SeqCst);
}
