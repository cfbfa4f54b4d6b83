//! Host kernels for the attention block on the CPU backend: rotate-half RoPE in place, and
//! causal grouped-query attention read straight from the KV-cache buffers.
//!
//! They compute exactly what the burn path in `model.rs` computes (the tests compare the two);
//! they exist because each burn op copies strided views, and the attention op needs the
//! key/value heads repeated per query group: on two cores that overhead cost more than the
//! arithmetic.

use std::cell::RefCell;

use super::{SharedSlice, row_dots, weighted_rows, worker_pool};

/// Applies rotate-half RoPE in place to `x`, laid out `[b, s, heads, hd]`, with half-width
/// tables `cos, sin: [s, hd / 2]` (one row per position).
pub(crate) fn rope_apply(x: &mut [f32], [b, s, heads, hd]: [usize; 4], cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    for (row, v) in x.chunks_exact_mut(hd).enumerate().take(b * s * heads) {
        let p = (row / heads) % s;
        let (c, sn) = (
            &cos[p * half..(p + 1) * half],
            &sin[p * half..(p + 1) * half],
        );
        let (lo, hi) = v.split_at_mut(half);
        for i in 0..half {
            let (x1, x2) = (lo[i], hi[i]);
            lo[i] = x1 * c[i] - x2 * sn[i];
            hi[i] = x2 * c[i] + x1 * sn[i];
        }
    }
}

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnShape {
    pub batch: usize,
    /// New positions (queries).
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Positions cached before this call.
    pub start: usize,
    /// Allocated positions per cache row.
    pub capacity: usize,
}

/// Writes new keys/values `[b, s, kv_heads, hd]` into cache buffers `[b, kv_heads, cap, hd]`
/// at positions `start..start + s`.
pub(crate) fn write_kv(cache: &mut [f32], new: &[f32], sh: AttnShape) {
    let (hd, kvh, s) = (sh.head_dim, sh.kv_heads, sh.seq);
    for bi in 0..sh.batch {
        for p in 0..s {
            for h in 0..kvh {
                let from = ((bi * s + p) * kvh + h) * hd;
                let to = ((bi * kvh + h) * sh.capacity + sh.start + p) * hd;
                cache[to..to + hd].copy_from_slice(&new[from..from + hd]);
            }
        }
    }
}

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[allow(unsafe_code)]
/// Causal attention of queries `q: [b, s, heads, hd]` over the cache (positions
/// `0..start + s`), into `out: [b, s, heads, hd]`. Query `i` sees positions `..= start + i`.
pub(crate) fn causal_attention(q: &[f32], k: &[f32], v: &[f32], sh: AttnShape, out: &mut [f32]) {
    let AttnShape {
        batch,
        seq,
        heads,
        kv_heads,
        head_dim: hd,
        start,
        capacity,
    } = sh;
    let groups = heads / kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // Tasks: (batch, key/value head, block of query rows). A task runs every query head of the
    // group, so each cached key and value row is fetched from memory once and reused from
    // cache by the group's other heads. Later query rows see more keys, so blocks are small.
    let rows_per_task = if seq <= 4 { seq } else { 8 };
    let blocks = seq.div_ceil(rows_per_task);
    let tasks = batch * kv_heads * blocks;
    let out_ptr = SharedSlice::new(out);
    worker_pool().run(tasks, &|t| {
        let blk = t % blocks;
        let g = (t / blocks) % kv_heads;
        let bi = t / (blocks * kv_heads);
        let kbase = (bi * kv_heads + g) * capacity * hd;
        SCORES.with(|sc| {
            let mut sc = sc.borrow_mut();
            for i in blk * rows_per_task..((blk + 1) * rows_per_task).min(seq) {
                let len = start + i + 1;
                sc.resize(len, 0.0);
                let keys = &k[kbase..kbase + len * hd];
                let values = &v[kbase..kbase + len * hd];
                for h in g * groups..(g + 1) * groups {
                    let qo = ((bi * seq + i) * heads + h) * hd;
                    row_dots(&q[qo..qo + hd], keys, &mut sc[..len]);
                    let max = sc[..len].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                    let mut sum = 0f32;
                    for x in sc[..len].iter_mut() {
                        *x = ((*x - max) * scale).exp();
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    for x in sc[..len].iter_mut() {
                        *x *= inv;
                    }
                    // SAFETY: each task writes only the rows of its own (batch, group, block),
                    // so concurrent tasks never overlap; the slice outlives the run.
                    let o = unsafe { out_ptr.range(qo, qo + hd) };
                    weighted_rows(&sc[..len], values, o);
                }
            }
        });
    });
}
