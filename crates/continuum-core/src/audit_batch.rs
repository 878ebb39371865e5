//! Group commit for the audit records of reads. Every read appends its record before the response is
//! released; one transaction per read made the audit log the bottleneck (PostgreSQL: a commit and WAL flush per
//! read). Callers hand their records to one appender thread and wait; while it commits a batch, the next
//! requests queue, and it takes them all in its next transaction. A caller returns only once its records are
//! committed, so the guarantee is unchanged: no response without its audit record.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use continuum_store::{AuditRecord, ResourceStore, StoreError};

/// Most records one transaction takes.
const MAX_BATCH: usize = 1024;

struct Job {
    records: Vec<AuditRecord>,
    done: SyncSender<Result<(), String>>,
}

/// The appender of one store; started on first use, stopped when the last handle is dropped.
pub(crate) struct AuditBatcher {
    store: Arc<dyn ResourceStore>,
    queue: OnceLock<Mutex<Sender<Job>>>,
}

impl AuditBatcher {
    pub(crate) fn new(store: Arc<dyn ResourceStore>) -> AuditBatcher {
        AuditBatcher {
            store,
            queue: OnceLock::new(),
        }
    }

    fn sender(&self) -> Sender<Job> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let store = self.store.clone();
            std::thread::Builder::new()
                .name("audit-append".into())
                .spawn(move || run(store, rx))
                .map_err(|e| tracing::error!(error = %e, "cannot start the audit appender"))
                .ok();
            Mutex::new(tx)
        });
        match queue.lock() {
            Ok(tx) => tx.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Append and wait until committed.
    pub(crate) fn append(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, wait) = mpsc::sync_channel(1);
        let job = Job { records, done };
        if let Err(mpsc::SendError(job)) = self.sender().send(job) {
            // the appender is gone (it could not start): append directly
            return self.store.audit().append_audit(&job.records);
        }
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Backend(e)),
            Err(_) => Err(StoreError::Backend("the audit appender stopped".into())),
        }
    }
}

fn run(store: Arc<dyn ResourceStore>, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].records.len();
        while n < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.records.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let all: Vec<AuditRecord> = jobs
            .iter()
            .flat_map(|j| j.records.iter().cloned())
            .collect();
        let result = store.audit().append_audit(&all).map_err(|e| e.to_string());
        for j in jobs {
            let _ = j.done.send(result.clone());
        }
    }
}
