//! The engine's one worker pool: every parallel part of a window (the projection's blocks,
//! the BM kernel's blocks, the stage-B tails' chunks, the bands) runs on it, each job with
//! tract single-threaded inside (tract's own threading gains little on these products)
//! and a per-thread scratch kept from window to window. Stage A's products use tract's own
//! executor with the same thread count (`set_tract_threads`).

use crate::engine::error::{EngineError, EngineErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct AtomicDuration(AtomicUsize);

impl AtomicDuration {
    pub(crate) fn add(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as usize, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed) as u64)
    }
}

/// A worker's reusable buffers.
#[derive(Default)]
pub struct Scratch {
    pub(crate) f: Vec<f32>,
    pub(crate) q: Vec<i8>,
    /// A block of Z.
    pub(crate) z: crate::engine::bm::ZBuf,
    /// The int8 products' buffers (`product::Int8Gemm::run`).
    pub(crate) gemm: crate::engine::product::GemmScratch,
    /// An int8 product's sums.
    pub(crate) acc: Vec<i32>,
}

/// The engine's worker threads: a pool built once per engine (so each thread keeps its
/// scratch buffers and tract's per-thread scratch from window to window), or none for one
/// thread.
pub struct Workers {
    pool: Option<rayon::ThreadPool>,
}

impl Workers {
    /// `threads` workers (1: the calling thread alone).
    pub fn new(threads: usize) -> Result<Workers, EngineError> {
        if threads <= 1 {
            return Ok(Workers { pool: None });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("bmn-edge-{i}"))
            .build()
            .map_err(|e| EngineError::new(EngineErrorKind::Runtime, format!("cannot start worker threads: {e}")))?;
        Ok(Workers { pool: Some(pool) })
    }

    /// Threads doing the work.
    pub fn count(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads())
    }

    /// Runs `job(k, scratch)` for `k` in `0..n` on the workers (tract single-threaded inside
    /// them, each with a reusable scratch vector) while the calling thread hands each result
    /// to `sink(k, result)` as it arrives (in any order): placing results overlaps the work,
    /// and at most two results per worker wait. Without a pool: all on the calling thread, in
    /// order. The first error stops the remaining jobs and is returned.
    pub(crate) fn run<T: Send>(
        &self,
        n: usize,
        job: impl Fn(usize, &mut Scratch) -> Result<T, EngineError> + Sync,
        mut sink: impl FnMut(usize, T) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let Some(pool) = &self.pool else {
            let mut scratch = Scratch::default();
            for k in 0..n {
                sink(k, job(k, &mut scratch)?)?;
            }
            return Ok(());
        };
        use tract_linalg::multithread::{multithread_tract_scope, Executor};
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> =
                const { std::cell::RefCell::new(Scratch { f: Vec::new(), q: Vec::new(), z: crate::engine::bm::ZBuf::new(), gemm: crate::engine::product::GemmScratch::new(), acc: Vec::new() }) };
        }
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Result<T, EngineError>)>(2 * pool.current_num_threads());
        pool.in_place_scope(|scope| {
            for k in 0..n {
                let (tx, job, stop) = (tx.clone(), &job, &stop);
                scope.spawn(move |_| {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let r = multithread_tract_scope(Executor::SingleThread, || {
                        SCRATCH.with_borrow_mut(|scratch| job(k, scratch))
                    });
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    let _ = tx.send((k, r));
                });
            }
            drop(tx);
            let mut done = 0;
            let mut first_err = None;
            for (k, r) in rx {
                if first_err.is_some() {
                    continue;
                }
                match r.and_then(|v| sink(k, v)) {
                    Ok(()) => done += 1,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_err = Some(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None if done < n => Err(EngineError::new(EngineErrorKind::Runtime, "a worker stopped early")),
                None => Ok(()),
            }
        })
    }

    /// Runs `f(item)` for every item, spread over the workers (on the calling thread without
    /// a pool). For jobs that write disjoint parts of one buffer, passed in as the items.
    pub fn for_each<T: Send>(&self, items: Vec<T>, f: impl Fn(T) + Sync) {
        let Some(pool) = &self.pool else {
            items.into_iter().for_each(f);
            return;
        };
        use tract_linalg::multithread::{multithread_tract_scope, Executor};
        let f = &f;
        pool.in_place_scope(|scope| {
            for item in items {
                scope.spawn(move |_| multithread_tract_scope(Executor::SingleThread, || f(item)));
            }
        });
    }
}

/// Sets tract's default executor (stage A's products) to `threads` threads.
pub(crate) fn set_tract_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
    } else {
        set_default_executor(Executor::multithread(threads));
    }
}
