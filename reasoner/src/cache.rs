//! The key/value cache: per layer, keys and values of every position seen so far.
//!
//! Storage is preallocated `[batch, kv_heads, capacity, head_dim]` and written in place
//! (burn's CPU backend mutates uniquely owned tensors without copying), so a decode step costs
//! one small write per layer instead of re-concatenating the whole history. Capacity grows by
//! doubling when a call would overflow it.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::host::{with_flex_mut, write_positions};

/// Keys and values for every layer of one batch of sequences, plus the shared position.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    len: usize,
    capacity: usize,
    batch: usize,
    /// Rotary position of the next token minus `len` (non-zero after a multimodal prompt).
    rope_offset: i64,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `layers` layers that will hold about `capacity` positions before it
    /// has to grow.
    pub fn new(layers: usize, capacity: usize) -> Self {
        KvCache {
            layers: vec![None; layers],
            len: 0,
            capacity: capacity.max(1),
            batch: 0,
            rope_offset: 0,
        }
    }

    /// Positions held (the position the next token gets).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sequences in the batch (0 before the first write).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Forgets everything (keeps the allocation policy).
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
        self.batch = 0;
        self.rope_offset = 0;
    }

    /// Rotary position of the next token minus [`KvCache::len`]: 0 for text, set by a
    /// multimodal prefill whose image positions are 2-D.
    pub fn rope_offset(&self) -> i64 {
        self.rope_offset
    }

    /// Sets the offset (see [`KvCache::rope_offset`]).
    pub fn set_rope_offset(&mut self, offset: i64) {
        self.rope_offset = offset;
    }

    /// Makes sure `layer` has room for positions `..end` for `b` sequences of `h` heads of
    /// width `d` (allocating or growing by doubling), keeping what is cached.
    fn ensure(&mut self, layer: usize, [b, h, d]: [usize; 3], end: usize, device: &B::Device) {
        let start = self.len;
        let slot = &mut self.layers[layer];
        let needs_alloc = match slot {
            None => true,
            Some((ck, _)) => ck.dims()[2] < end || ck.dims()[0] != b,
        };
        if !needs_alloc {
            return;
        }
        let mut cap = self.capacity.max(end);
        if let Some((ck, _)) = slot.as_ref() {
            cap = cap.max(ck.dims()[2] * 2);
        }
        let mut nk = Tensor::<B, 4>::zeros([b, h, cap, d], device);
        let mut nv = Tensor::<B, 4>::zeros([b, h, cap, d], device);
        if let Some((ck, cv)) = slot.take()
            && start > 0
        {
            nk = nk.slice_assign([0..b, 0..h, 0..start, 0..d], ck.narrow(2, 0, start));
            nv = nv.slice_assign([0..b, 0..h, 0..start, 0..d], cv.narrow(2, 0, start));
        }
        self.capacity = cap;
        *slot = Some((nk, nv));
    }

    /// Writes `k, v: [batch, kv_heads, s, head_dim]` for `layer` at the current position and
    /// returns views of all positions `[batch, kv_heads, len + s, head_dim]`.
    ///
    /// `advance(s)` must be called once after every layer has been written.
    pub fn append(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, s, d] = k.dims();
        let start = self.len;
        let end = start + s;
        self.ensure(layer, [b, h, d], end, &k.device());
        let slot = &mut self.layers[layer];
        let (ck, cv) = slot
            .take()
            .unwrap_or_else(|| unreachable!("allocated by ensure"));
        let ck = write_positions(ck, start, k);
        let cv = write_positions(cv, start, v);
        let views = (ck.clone().narrow(2, 0, end), cv.clone().narrow(2, 0, end));
        *slot = Some((ck, cv));
        self.batch = b;
        views
    }

    /// On the CPU backend, makes room for `s` new positions of `layer` and calls `f` with the
    /// layer's key and value buffers (`[batch, kv_heads, capacity, head_dim]`, row-major) and
    /// the capacity, in place. Returns `None` (and does nothing) on other backends.
    pub(crate) fn with_host_layer<R>(
        &mut self,
        layer: usize,
        [b, h, d]: [usize; 3],
        s: usize,
        device: &B::Device,
        f: impl FnOnce(&mut [f32], &mut [f32], usize) -> R,
    ) -> Option<R> {
        if !crate::host::is_flex::<B>() {
            return None;
        }
        self.ensure(layer, [b, h, d], self.len + s, device);
        let (ck, cv) = self.layers[layer].take()?;
        let cap = ck.dims()[2];
        let mut cv_slot = Some(cv);
        let (restored, result) = match with_flex_mut(ck, |kbuf| {
            let cv = cv_slot.take()?;
            Some(with_flex_mut(cv, |vbuf| f(kbuf, vbuf, cap)))
        }) {
            Ok((ck, Some(Ok((cv, r))))) => ((ck, cv), Some(r)),
            Ok((ck, Some(Err(cv)))) => ((ck, cv), None),
            // The closure always runs when the outer call succeeds; keep the cache intact.
            Ok((ck, None)) => match cv_slot.take() {
                Some(cv) => ((ck, cv), None),
                None => return None,
            },
            Err(ck) => match cv_slot.take() {
                Some(cv) => ((ck, cv), None),
                None => return None,
            },
        };
        self.layers[layer] = Some(restored);
        if result.is_some() {
            self.batch = b;
        }
        result
    }

    /// Moves the position forward by `s` after all layers were written.
    pub fn advance(&mut self, s: usize) {
        self.len += s;
    }

    /// Replicates a batch-1 cache into `n` identical sequences (G samples sharing one prefill).
    pub fn repeat_batch(&mut self, n: usize) {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.clone().repeat_dim(0, n);
            *v = v.clone().repeat_dim(0, n);
        }
        self.batch *= n;
    }

    /// Keeps only the sequences at `rows` (in that order), e.g. to drop finished samples.
    pub fn select_batch(&mut self, rows: &[usize]) {
        let Some(device) = self.layers.iter().flatten().next().map(|(k, _)| k.device()) else {
            return;
        };
        let idx = Tensor::<B, 1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(
                rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [rows.len()],
            ),
            &device,
        );
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.clone().select(0, idx.clone());
            *v = v.clone().select(0, idx.clone());
        }
        self.batch = rows.len();
    }
}
