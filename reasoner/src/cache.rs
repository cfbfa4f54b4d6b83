//! The key/value cache: per layer, keys and values of every position seen so far.
//!
//! Storage is preallocated `[batch, kv_heads, capacity, head_dim]` and written in place
//! (burn's CPU backend mutates uniquely owned tensors without copying), so a decode step costs
//! one small write per layer instead of re-concatenating the whole history. Capacity grows by
//! doubling when a call would overflow it.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Keys and values for every layer of one batch of sequences, plus the shared position.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    len: usize,
    capacity: usize,
    batch: usize,
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
        let slot = &mut self.layers[layer];
        let needs_alloc = match slot {
            None => true,
            Some((ck, _)) => ck.dims()[2] < end || ck.dims()[0] != b,
        };
        if needs_alloc {
            let mut cap = self.capacity.max(end);
            if let Some((ck, _)) = slot.as_ref() {
                cap = cap.max(ck.dims()[2] * 2);
            }
            let device = k.device();
            let mut nk = Tensor::<B, 4>::zeros([b, h, cap, d], &device);
            let mut nv = Tensor::<B, 4>::zeros([b, h, cap, d], &device);
            if let Some((ck, cv)) = slot.take()
                && start > 0
            {
                nk = nk.slice_assign([0..b, 0..h, 0..start, 0..d], ck.narrow(2, 0, start));
                nv = nv.slice_assign([0..b, 0..h, 0..start, 0..d], cv.narrow(2, 0, start));
            }
            self.capacity = cap;
            *slot = Some((nk, nv));
        }
        let (ck, cv) = slot
            .take()
            .unwrap_or_else(|| unreachable!("allocated above"));
        let ck = ck.slice_assign([0..b, 0..h, start..end, 0..d], k);
        let cv = cv.slice_assign([0..b, 0..h, start..end, 0..d], v);
        let views = (ck.clone().narrow(2, 0, end), cv.clone().narrow(2, 0, end));
        *slot = Some((ck, cv));
        self.batch = b;
        views
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
