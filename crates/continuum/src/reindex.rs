//! `continuum reindex`: rebuild the search index with this build's definitions, with a progress bar;
//! resumable (Ctrl-C or a crash loses at most the batch in flight) and online (see `continuum_core::reindex`).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use continuum_core::reindex::{self, IndexState};
use continuum_store::ResourceStore;
use indicatif::{ProgressBar, ProgressStyle};

/// One line saying whether the index needs rebuilding.
pub fn describe(state: &IndexState) -> String {
    match state {
        IndexState::Current => "the search index is current".into(),
        IndexState::Stale { built_with: None } => {
            "the search index was built before index definitions were recorded: run `continuum reindex`"
                .into()
        }
        IndexState::Stale {
            built_with: Some(fp),
        } => format!(
            "the search index was built with other definitions ({fp}; this build: {}): run `continuum reindex`",
            continuum_fhir::index_fingerprint()
        ),
        IndexState::Interrupted { .. } => {
            "a reindex was interrupted: run `continuum reindex` to resume it".into()
        }
    }
}

/// `continuum reindex --recount`: the kept counts checked and, where they differ, set right.
pub fn recount(store: &dyn ResourceStore) -> Result<()> {
    let started = std::time::Instant::now();
    let fixed = store.recount()?;
    let seconds = started.elapsed().as_secs_f64();
    if fixed == continuum_store::Recount::default() {
        println!(
            "checked the kept counts against the index in {seconds:.1} s: every count is exact"
        );
    } else {
        println!(
            "checked the kept counts against the index in {seconds:.1} s: set right {} code counts and {} type counts that differed",
            fixed.token_keys, fixed.types
        );
    }
    Ok(())
}

pub fn run(store: &dyn ResourceStore, batch: usize, status_only: bool, force: bool) -> Result<()> {
    let state = reindex::state(store)?;
    if status_only {
        println!("{}", describe(&state));
        return Ok(());
    }
    if state == IndexState::Current && !force {
        println!("{} (use --force to rebuild it anyway)", describe(&state));
        return Ok(());
    }
    if state == IndexState::Current {
        // --force: forget the fingerprint so the run starts from the first resource
        store.write(&mut |tx| {
            tx.set_setting(reindex::FINGERPRINT_KEY, None)?;
            tx.set_setting(reindex::CURSOR_KEY, None)
        })?;
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Stop between batches on Ctrl-C, so the run ends with its progress recorded.
        let _ = ctrlc_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} resources  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = reindex::run(store, batch, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        if interrupted.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    bar.finish_and_clear();
    let rate = summary.resources as f64 / summary.seconds.max(1e-9);
    let resumed = match summary.resumed_after {
        Some(key) => format!(", resuming after store key {key}"),
        None => String::new(),
    };
    if summary.completed {
        println!(
            "reindexed {} resources in {:.1} s ({rate:.0} resources/s){resumed}; the search index is current",
            summary.resources, summary.seconds
        );
    } else {
        println!(
            "stopped after {} resources ({:.1} s){resumed}; run `continuum reindex` again to resume",
            summary.resources, summary.seconds
        );
    }
    Ok(())
}

/// Ctrl-C sets the flag instead of killing the process (tokio is not running here; a plain signal thread).
fn ctrlc_handler(on_interrupt: impl Fn() + Send + 'static) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("reindex-ctrl-c".into())
        .spawn(move || {
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_interrupt();
                }
            })
        })?;
    Ok(())
}
