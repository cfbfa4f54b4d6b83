//! A tiny persistent pool of worker threads for decode-sized parallel loops.
//!
//! A decode step of a 30-layer model runs about 200 matrix-vector products of 50–500 µs each.
//! Entering a rayon parallel region costs ~10 µs on our machines; this pool's workers spin on an
//! atomic for a short while after each job, so handing them the next one costs well under a
//! microsecond. After ~200 µs without work they park on a condition variable, so an idle runtime
//! does not burn a core.
//!
//! Soundness in one paragraph: a job is a `&dyn Fn(usize)` living on the caller's stack. Its
//! address is published through `job`, and the chunks are claimed through `state`, one atomic
//! word holding (epoch, chunk count, next chunk). A worker only calls the job after a successful
//! compare-exchange on `state` for the epoch it read the job pointer under, and the caller does
//! not return (so the closure stays alive) until every claimed chunk has reported done. The next
//! epoch's pointer is stored only after all chunks of this epoch are claimed and done, so a
//! successful claim always pairs with the right pointer.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Job<'a> = dyn Fn(usize) + Sync + 'a;

/// The caller's job, boxed in a struct so the published pointer is thin.
struct JobRef<'a> {
    f: &'a Job<'a>,
}

struct Shared {
    /// (epoch << 32) | (chunk count << 16) | next chunk.
    state: AtomicU64,
    /// Points at the current epoch's `JobRef` (on the caller's stack) while chunks are open.
    job: AtomicPtr<JobRef<'static>>,
    done: AtomicUsize,
    sleeping: AtomicUsize,
    park: Mutex<bool>,
    wake: Condvar,
}

const SPIN_BEFORE_PARK: Duration = Duration::from_micros(200);

fn unpack(s: u64) -> (u64, usize, usize) {
    (
        s >> 32,
        ((s >> 16) & 0xffff) as usize,
        (s & 0xffff) as usize,
    )
}

/// A pool of `threads - 1` workers; the calling thread is the last participant.
pub struct WorkerPool {
    shared: Arc<Shared>,
    workers: usize,
    /// One job at a time.
    submit: Mutex<()>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &(self.workers + 1))
            .finish()
    }
}

impl WorkerPool {
    /// Starts a pool that runs jobs on `threads` threads in total (the caller included).
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            park: Mutex::new(false),
            wake: Condvar::new(),
        });
        let mut workers = 0;
        for i in 1..threads.max(1) {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("er-kernel-{i}"))
                .spawn(move || worker_loop(&s));
            match spawned {
                Ok(_) => workers += 1,
                Err(e) => {
                    tracing::warn!("could not start kernel worker {i}: {e}; continuing with fewer");
                    break;
                }
            }
        }
        WorkerPool {
            shared,
            workers,
            submit: Mutex::new(()),
        }
    }

    /// Total threads that run a job (workers plus the caller).
    pub fn threads(&self) -> usize {
        self.workers + 1
    }

    /// Calls `f(c)` once for every chunk `c` in `0..chunks`, spread over the pool, and returns
    /// when all calls have returned. `chunks` is capped at 65535.
    pub fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        let chunks = chunks.min(0xffff);
        if chunks == 0 {
            return;
        }
        if self.workers == 0 || chunks == 1 {
            (0..chunks).for_each(f);
            return;
        }
        let _one_at_a_time = self.submit.lock().unwrap_or_else(|p| p.into_inner());
        let sh = &*self.shared;
        let job = JobRef { f };
        sh.done.store(0, SeqCst);
        // SAFETY (lifetime erasure): the pointer is only dereferenced by workers that claimed a
        // chunk of this epoch, and we wait below until all such chunks are done, so `job`
        // outlives every use. See the module docs.
        let ptr = &job as *const JobRef<'_> as *mut JobRef<'static>;
        sh.job.store(ptr, SeqCst);
        let (epoch, _, _) = unpack(sh.state.load(SeqCst));
        let next_epoch = (epoch + 1) & 0xffff_ffff;
        sh.state
            .store((next_epoch << 32) | ((chunks as u64) << 16), SeqCst);
        if sh.sleeping.load(SeqCst) > 0 {
            let _g = sh.park.lock().unwrap_or_else(|p| p.into_inner());
            sh.wake.notify_all();
        }
        // Participate.
        while let Some(c) = claim(sh, next_epoch) {
            f(c);
            sh.done.fetch_add(1, SeqCst);
        }
        while sh.done.load(SeqCst) < chunks {
            std::hint::spin_loop();
        }
        sh.job.store(std::ptr::null_mut(), SeqCst);
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // Workers hold their own Arc and spin/park forever; tell them to leave.
        let sh = &*self.shared;
        let _g = sh.park.lock().map(|mut g| {
            *g = true;
            sh.wake.notify_all();
        });
        sh.state.store(u64::MAX, SeqCst);
    }
}

/// Claims the next chunk of `epoch`, if any is left.
fn claim(sh: &Shared, epoch: u64) -> Option<usize> {
    loop {
        let s = sh.state.load(SeqCst);
        let (e, n, next) = unpack(s);
        if e != epoch || next >= n {
            return None;
        }
        if sh
            .state
            .compare_exchange_weak(s, s + 1, SeqCst, SeqCst)
            .is_ok()
        {
            return Some(next);
        }
    }
}

fn worker_loop(sh: &Shared) {
    let mut seen_epoch = unpack(sh.state.load(SeqCst)).0;
    loop {
        // Wait for a new epoch: spin, then park.
        let spin_start = Instant::now();
        let mut spins = 0u32;
        let epoch = loop {
            let s = sh.state.load(SeqCst);
            if s == u64::MAX {
                return;
            }
            let (e, _, _) = unpack(s);
            if e != seen_epoch {
                break e;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) && spin_start.elapsed() > SPIN_BEFORE_PARK {
                let mut g = sh.park.lock().unwrap_or_else(|p| p.into_inner());
                sh.sleeping.fetch_add(1, SeqCst);
                while !*g && unpack(sh.state.load(SeqCst)).0 == seen_epoch {
                    g = sh.wake.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                sh.sleeping.fetch_sub(1, SeqCst);
                if *g {
                    return;
                }
            }
        };
        seen_epoch = epoch;
        loop {
            let s = sh.state.load(SeqCst);
            let (e, n, next) = unpack(s);
            if e != epoch || next >= n {
                break;
            }
            let ptr = sh.job.load(SeqCst);
            if ptr.is_null() {
                break;
            }
            if sh
                .state
                .compare_exchange_weak(s, s + 1, SeqCst, SeqCst)
                .is_err()
            {
                continue;
            }
            // SAFETY: we claimed chunk `next` of `epoch` after reading `ptr` under that epoch;
            // the caller keeps the job alive until this chunk reports done (module docs).
            let job = unsafe { &*ptr };
            (job.f)(next);
            sh.done.fetch_add(1, SeqCst);
        }
    }
}

/// A mutable slice handed to pool chunks that each write a disjoint range.
pub(crate) struct SharedSlice {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: access goes through `range`, whose contract makes concurrent ranges disjoint.
unsafe impl Sync for SharedSlice {}

impl SharedSlice {
    pub(crate) fn new(s: &mut [f32]) -> Self {
        SharedSlice {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    /// # Safety
    /// No two live results of `range` may overlap, and the slice passed to `new` must outlive
    /// them.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range(&self, start: usize, end: usize) -> &mut [f32] {
        assert!(start <= end && end <= self.len, "range out of bounds");
        // SAFETY: in bounds by the assert; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

static POOL: OnceLock<WorkerPool> = OnceLock::new();

/// The process-wide kernel pool. Its size is fixed by the first call (or by
/// [`init_worker_pool`](crate::init_threads)); later calls return the same pool.
pub fn worker_pool() -> &'static WorkerPool {
    POOL.get_or_init(|| {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        WorkerPool::new(n)
    })
}

/// Sets the kernel pool's size if it has not been created yet; returns the size in effect.
pub(crate) fn init_pool(threads: usize) -> usize {
    POOL.get_or_init(|| WorkerPool::new(threads.max(1)))
        .threads()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_chunk_runs_exactly_once() {
        let pool = WorkerPool::new(3);
        for n in [0usize, 1, 2, 7, 100, 1000] {
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            pool.run(n, &|c| {
                hits[c].fetch_add(1, SeqCst);
            });
            assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "n = {n}");
        }
    }

    #[test]
    fn many_small_jobs_back_to_back() {
        let pool = WorkerPool::new(2);
        let total = AtomicUsize::new(0);
        for _ in 0..5000 {
            pool.run(4, &|c| {
                total.fetch_add(c + 1, SeqCst);
            });
        }
        assert_eq!(total.load(SeqCst), 5000 * 10);
    }

    #[test]
    fn workers_wake_after_parking() {
        let pool = WorkerPool::new(2);
        let total = AtomicUsize::new(0);
        pool.run(8, &|_| {
            total.fetch_add(1, SeqCst);
        });
        std::thread::sleep(Duration::from_millis(5)); // let the worker park
        pool.run(8, &|_| {
            total.fetch_add(1, SeqCst);
        });
        assert_eq!(total.load(SeqCst), 16);
    }
}
