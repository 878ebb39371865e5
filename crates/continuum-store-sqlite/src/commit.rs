//! Group commit: concurrent write transactions share one SQLite transaction and one fsync.
//!
//! Why: with `synchronous=FULL` every COMMIT waits for the disk, so one transaction per request caps writes at
//! the disk's sync rate. Here each caller runs its work inside a SAVEPOINT of a shared batch transaction; the
//! last caller of a burst (nobody else waiting for the writer) commits the batch and wakes the others. Nobody
//! is told "done" before the COMMIT that contains their work has returned, so an acknowledged write is still
//! durable. A failed caller only rolls back its own savepoint. A batch is committed at the latest after
//! [`MAX_BATCH`] members, so a steady stream of writers cannot postpone it forever.

use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use continuum_store::{Clock, Result, StoreError, WriteTx};
use rusqlite::Connection;

use crate::backend;
use crate::tx::SqliteTx;

/// Most callers whose work goes into one COMMIT.
const MAX_BATCH: usize = 64;

struct State {
    conn: Connection,
    /// A batch transaction is open.
    open: bool,
    /// Successful callers in the open batch, waiting for its COMMIT.
    members: usize,
    /// Number of the open (or next) batch.
    batch: u64,
    /// Batches finish in order: every batch numbered below this one has finished.
    finished_below: u64,
    /// Recent batches whose COMMIT failed, with the reason (a waiter may wake after later batches finished).
    failures: VecDeque<(u64, String)>,
}

/// Failed batches remembered for waiters that wake late.
const REMEMBERED_FAILURES: usize = 256;

pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    /// Callers waiting to get the writer (they will commit if nobody comes after them).
    queued: AtomicUsize,
}

impl GroupCommit {
    pub(crate) fn new(conn: Connection) -> Self {
        GroupCommit {
            state: Mutex::new(State {
                conn,
                open: false,
                members: 0,
                batch: 0,
                finished_below: 0,
                failures: VecDeque::new(),
            }),
            done: Condvar::new(),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a caller panicked; its savepoint was rolled back before the panic continued
        // (see `write`), so the state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `work` in its own savepoint of the shared batch; return once the batch holding it is committed.
    pub(crate) fn write(
        &self,
        clock: &dyn Clock,
        work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>,
    ) -> Result<()> {
        self.run(&mut |conn| {
            let mut tx = SqliteTx::new(conn, clock.now());
            work(&mut tx)?;
            tx.apply_counts()
        })
    }

    /// Run raw SQL `work` on the writer connection, in its own savepoint of the shared batch, exactly like
    /// [`Self::write`] (which is this plus a [`WriteTx`]): for the state that is not resources (accounts).
    pub(crate) fn run(&self, work: &mut dyn FnMut(&Connection) -> Result<()>) -> Result<()> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut st = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if !st.open {
            st.conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
            st.open = true;
        }
        if let Err(e) = st.conn.execute_batch("SAVEPOINT member") {
            self.close_batch(&mut st);
            return Err(backend(e));
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| work(&st.conn)));
        let outcome = match outcome {
            Ok(Ok(())) => match st.conn.execute_batch("RELEASE member") {
                Ok(()) => {
                    st.members += 1;
                    Ok(())
                }
                Err(e) => Err(Err(backend(e))),
            },
            Ok(Err(e)) => Err(Err(e)),
            Err(panic) => Err(Ok(panic)),
        };
        if let Err(failure) = outcome {
            // undo only this caller's work; the batch goes on for the others
            let _ = st.conn.execute_batch("ROLLBACK TO member; RELEASE member");
            if self.queued.load(Ordering::SeqCst) == 0 {
                self.close_batch(&mut st);
            }
            drop(st);
            return match failure {
                Err(e) => Err(e),
                Ok(panic) => resume_unwind(panic),
            };
        }
        let mine = st.batch;
        if self.queued.load(Ordering::SeqCst) == 0 || st.members >= MAX_BATCH {
            self.close_batch(&mut st);
        } else {
            while st.finished_below <= mine {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        match st.failures.iter().find(|(n, _)| *n == mine) {
            Some((_, msg)) => Err(StoreError::Backend(format!("commit failed: {msg}"))),
            None => Ok(()),
        }
    }

    /// Commit the open batch (or roll it back when it holds no successful work) and wake its members.
    fn close_batch(&self, st: &mut State) {
        if !st.open {
            return;
        }
        let result = if st.members > 0 {
            st.conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        } else {
            st.conn.execute_batch("ROLLBACK").map_err(|e| e.to_string())
        };
        if result.is_err() {
            // leave no half-open transaction behind
            let _ = st.conn.execute_batch("ROLLBACK");
        }
        if let Err(msg) = result {
            if st.failures.len() == REMEMBERED_FAILURES {
                st.failures.pop_front();
            }
            st.failures.push_back((st.batch, msg));
        }
        st.batch += 1;
        st.finished_below = st.batch;
        st.members = 0;
        st.open = false;
        self.done.notify_all();
    }
}
