//! Host access to tensor memory, zero-copy on burn's CPU backend.
//!
//! burn has no op registry, so the packed CPU kernels reach tensor memory this way: on `Flex`
//! (recognised at run time by downcasting the primitive) we read and write the buffer in
//! place; on every other backend we fall back to `into_data` / `slice_assign`, which are
//! correct everywhere and only slower. Nothing here is `unsafe`.

#[cfg(feature = "flex")]
use std::any::Any;

#[cfg(feature = "flex")]
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

#[cfg(feature = "flex")]
type FlexTensor = burn::backend::flex::FlexTensor;

/// Takes the float primitive out of `t` as a `FlexTensor` if the backend is `Flex`, or gives
/// the tensor back.
#[cfg(feature = "flex")]
fn as_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<FlexTensor, Tensor<B, D>> {
    match t.into_primitive() {
        TensorPrimitive::Float(p) => {
            let any: Box<dyn Any> = Box::new(p);
            match any.downcast::<FlexTensor>() {
                Ok(f) => Ok(*f),
                Err(any) => match any.downcast::<B::FloatTensorPrimitive>() {
                    Ok(p) => Err(Tensor::from_primitive(TensorPrimitive::Float(*p))),
                    // Unreachable: the box was built from this very type.
                    Err(_) => unreachable!("primitive type changed while boxed"),
                },
            }
        }
        q @ TensorPrimitive::QFloat(_) => Err(Tensor::from_primitive(q)),
    }
}

#[cfg(feature = "flex")]
fn from_flex<B: Backend, const D: usize>(f: FlexTensor) -> Tensor<B, D> {
    let any: Box<dyn Any> = Box::new(f);
    match any.downcast::<B::FloatTensorPrimitive>() {
        Ok(p) => Tensor::from_primitive(TensorPrimitive::Float(*p)),
        Err(_) => unreachable!("only called after as_flex succeeded for B"),
    }
}

/// Whether `B` is burn's CPU backend, whose buffers the host kernels can use in place.
pub(crate) fn is_flex<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    {
        std::any::TypeId::of::<B::FloatTensorPrimitive>() == std::any::TypeId::of::<FlexTensor>()
    }
    #[cfg(not(feature = "flex"))]
    {
        false
    }
}

/// Calls `f` with the f32 buffer of a contiguous CPU tensor, mutably and in place (copying
/// first only if the buffer is shared). Gives the tensor back on other backends or layouts.
/// Runs `f` on the buffer of a 2-D `[rows, cols]` f32 tensor that the CPU backend stores
/// transposed (its `[cols, rows]` transpose contiguous, as [`transposed_storage`] makes it),
/// without copying; `None` for any other tensor.
pub(crate) fn with_transposed_host<B: Backend, R>(
    t: &Tensor<B, 2>,
    f: impl FnOnce(&[f32]) -> R,
) -> Option<R> {
    #[cfg(feature = "flex")]
    {
        let [rows, cols] = t.dims();
        let ft = as_flex::<B, 2>(t.clone()).ok()?;
        let l = ft.layout();
        if ft.dtype() != burn::tensor::DType::F32
            || l.strides() != [1, rows as isize]
            || rows * cols == 0
        {
            return None;
        }
        let start = l.start_offset();
        Some(f(&ft.storage::<f32>()[start..start + rows * cols]))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (t, f);
        None
    }
}

/// A `[rows, cols]` weight held transposed in memory on the CPU backend: the same logical
/// tensor, but a product `x · wᵀ` then reads a contiguous `[cols, rows]` right-hand side, which
/// the backend's GEMM runs about twice as fast as a transposed view (measured 87 → 168 GFLOP/s
/// on 2 cores for a 420 × 2048 × 11008 product). Other backends get the tensor unchanged.
pub(crate) fn transposed_storage<B: Backend>(w: Tensor<B, 2>) -> Tensor<B, 2> {
    if !is_flex::<B>() {
        return w;
    }
    let [rows, cols] = w.dims();
    let device = w.device();
    let t = with_host(w, |v| {
        let mut t = vec![0f32; v.len()];
        for (r, row) in v.chunks_exact(cols.max(1)).enumerate() {
            for (c, x) in row.iter().enumerate() {
                t[c * rows + r] = *x;
            }
        }
        t
    });
    from_host::<B, 2>(t, [cols, rows], &device).transpose()
}

pub(crate) fn with_flex_mut<B: Backend, const D: usize, R>(
    t: Tensor<B, D>,
    f: impl FnOnce(&mut [f32]) -> R,
) -> Result<(Tensor<B, D>, R), Tensor<B, D>> {
    #[cfg(feature = "flex")]
    {
        match as_flex::<B, D>(t) {
            Ok(mut ft)
                if ft.dtype() == burn::tensor::DType::F32
                    && ft.is_contiguous()
                    && ft.layout().start_offset() == 0 =>
            {
                let n = ft.layout().num_elements();
                let r = f(&mut ft.storage_mut::<f32>()[..n]);
                Ok((from_flex::<B, D>(ft), r))
            }
            Ok(ft) => Err(from_flex::<B, D>(ft)),
            Err(t) => Err(t),
        }
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = f;
        Err(t)
    }
}

/// Calls `f` with the tensor's values (f32, row-major). No copy on the CPU backend when the
/// tensor is contiguous f32.
pub(crate) fn with_host<B: Backend, const D: usize, R>(
    t: Tensor<B, D>,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    #[cfg(feature = "flex")]
    let t = match as_flex::<B, D>(t) {
        Ok(ft) if ft.dtype() == burn::tensor::DType::F32 => {
            let c = ft.to_contiguous();
            let n = c.layout().num_elements();
            let start = c.layout().start_offset();
            return f(&c.storage::<f32>()[start..start + n]);
        }
        Ok(ft) => from_flex::<B, D>(ft),
        Err(t) => t,
    };
    let data = t.into_data().convert::<f32>();
    match data.as_slice::<f32>() {
        Ok(s) => f(s),
        Err(_) => f(&[]),
    }
}

/// A tensor of `shape` from host values (the `Vec` becomes the buffer on the CPU backend).
pub(crate) fn from_host<B: Backend, const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Writes `src: [b, h, s, d]` into `dst: [b, h, cap, d]` at positions `pos..pos + s`, in place
/// when the CPU backend owns `dst` uniquely (a KV-cache append without copying the cache).
pub(crate) fn write_positions<B: Backend>(
    dst: Tensor<B, 4>,
    pos: usize,
    src: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [b, h, s, d] = src.dims();
    #[cfg(feature = "flex")]
    let cap = dst.dims()[2];
    #[cfg(feature = "flex")]
    let dst = match as_flex::<B, 4>(dst) {
        Ok(mut ft)
            if ft.dtype() == burn::tensor::DType::F32
                && ft.is_contiguous()
                && ft.layout().start_offset() == 0 =>
        {
            if let Some(buf) = ft.try_storage_mut::<f32>() {
                with_host(src, |vals| {
                    for bi in 0..b {
                        for hi in 0..h {
                            let from = ((bi * h + hi) * s) * d;
                            let to = ((bi * h + hi) * cap + pos) * d;
                            buf[to..to + s * d].copy_from_slice(&vals[from..from + s * d]);
                        }
                    }
                });
                return from_flex::<B, 4>(ft);
            }
            from_flex::<B, 4>(ft)
        }
        Ok(ft) => from_flex::<B, 4>(ft),
        Err(t) => t,
    };
    dst.slice_assign([0..b, 0..h, pos..pos + s, 0..d], src)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::backend::Cpu;

    #[test]
    fn in_place_write_matches_slice_assign() {
        let dev = Default::default();
        let dst = Tensor::<Cpu, 4>::zeros([2, 3, 8, 4], &dev);
        let src = Tensor::<Cpu, 1, burn::tensor::Int>::arange(0..2 * 3 * 2 * 4, &dev)
            .float()
            .reshape([2, 3, 2, 4]);
        let want = dst
            .clone()
            .slice_assign([0..2, 0..3, 5..7, 0..4], src.clone());
        drop(want.clone());
        let got = write_positions(Tensor::<Cpu, 4>::zeros([2, 3, 8, 4], &dev), 5, src.clone());
        assert_eq!(got.into_data(), want.into_data());
        // A strided source (swapped dims) goes through the same path.
        let src_t = src.swap_dims(2, 3).swap_dims(2, 3);
        let got = write_positions(Tensor::<Cpu, 4>::zeros([2, 3, 8, 4], &dev), 5, src_t);
        assert_eq!(
            got.into_data(),
            dst.slice_assign(
                [0..2, 0..3, 5..7, 0..4],
                Tensor::<Cpu, 1, burn::tensor::Int>::arange(0..48, &dev)
                    .float()
                    .reshape([2, 3, 2, 4])
            )
            .into_data()
        );
        let v = with_host(
            Tensor::<Cpu, 2>::from_data([[1.0f32, 2.0], [3.0, 4.0]], &dev).transpose(),
            |s| s.to_vec(),
        );
        assert_eq!(v, vec![1.0, 3.0, 2.0, 4.0]);
    }
}
