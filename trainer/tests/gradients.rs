//! The GRPO loss's gradient (clipped surrogate with k3 KL, through the whole decoder) against
//! central finite differences, in double precision: with respect to a base weight (full
//! fine-tuning) and to the LoRA parameters A and B of several projections (the adapters the
//! trainer actually trains).
//!
//! In f32 a finite difference is only good to ~1e-4 relative (the loss's rounding divided by
//! the step), which would let a slightly wrong backward pass through. Here the device's
//! default float type is f64 for the whole process (hence a test binary of its own), the tiny
//! model's weights are widened on load, and every checked entry must agree to 2e-7 relative
//! (docs/training.md quotes the bound). Measured: 3.6e-8 to 6.1e-8 on every entry — a
//! constant offset, not noise: burn applies scalar operands at the backend's element type
//! (f32), so the backward of the loss's division by the token count multiplies by f32(1/7),
//! which is 4.2e-8 off; the finite difference itself is good to ~1e-10 here.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Once;

use burn::backend::Autodiff;
use burn::module::Param;
use burn::tensor::{DType, Tensor, TensorData};
use embodied_r_reasoner::Llama;
use embodied_r_reasoner::backend::Cpu;
use embodied_r_trainer::grpo::{self, Batch, Objective};
use embodied_r_trainer::lora::{self, LoraConfig};
use embodied_r_trainer::train::load_dense;

type A = Autodiff<Cpu>;

/// Relative agreement required between autodiff and the finite difference.
const REL_TOL: f64 = 2e-7;
/// Finite-difference step (the truncation error is O(h²) ≈ 1e-10 relative; f64 rounding of
/// the loss divided by h is ≈ 1e-12).
const H: f64 = 1e-5;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reasoner/tests/fixtures/tiny-llama")
}

/// The device, with f64 as its default float type (set once, before any tensor exists).
fn device() -> burn::tensor::Device<A> {
    static F64: Once = Once::new();
    let dev: burn::tensor::Device<A> = Default::default();
    F64.call_once(|| {
        burn::tensor::set_default_dtypes::<A>(&dev, DType::F64, DType::I32)
            .expect("the f64 default is set before any tensor is made");
    });
    dev
}

fn to_f64<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    let data = t.into_data();
    assert_eq!(data.dtype, DType::F64, "the check must run in f64");
    data.to_vec::<f64>().unwrap()
}

fn batch() -> Batch {
    Batch {
        prompt: vec![5, 17, 33, 9],
        completions: vec![vec![40, 41, 42, 2], vec![100, 7, 3]],
    }
}

/// The loss at `model`, with `old` ≠ the current policy (so some ratios leave the clip range
/// and the clip's zero-gradient branch is on the path too) and a reference for the KL term.
fn loss(model: &Llama<A>, old: &Tensor<A, 2>, reference: &Tensor<A, 2>) -> Tensor<A, 1> {
    let dev = device();
    let b = batch();
    let logp = grpo::token_logprobs(model, &b, &dev).unwrap();
    let adv = Tensor::<A, 1>::from_data(TensorData::new(vec![1.2f64, -0.7], [2]), &dev);
    let obj = Objective {
        beta: 0.05,
        ..Objective::default()
    };
    let (l, _) = grpo::loss(
        logp,
        old.clone(),
        Some(reference.clone()),
        adv,
        b.mask(&dev),
        &obj,
        7.0,
    );
    l
}

fn value(l: Tensor<A, 1>) -> f64 {
    to_f64(l)[0]
}

/// `old` moved off the policy so that ratios spread over [0.7, 1.4]: both branches of the
/// clipped surrogate occur.
fn old_and_reference(model: &Llama<A>) -> (Tensor<A, 2>, Tensor<A, 2>) {
    let dev = device();
    let base = grpo::token_logprobs(model, &batch(), &dev)
        .unwrap()
        .detach();
    let [n, w] = base.dims();
    let shift: Vec<f64> = (0..n * w).map(|i| [0.35, -0.3, 0.05, 0.1][i % 4]).collect();
    let old = base.clone() + Tensor::from_data(TensorData::new(shift, [n, w]), &dev);
    (old, base - 0.3)
}

/// Checks `entries` of one parameter: autodiff's gradient against the central difference of
/// the loss when that entry moves by ±H. `with` rebuilds the model with new values.
fn check(
    name: &str,
    param: &Param<Tensor<A, 2>>,
    grads: &<A as burn::tensor::backend::AutodiffBackend>::Gradients,
    entries: &[usize],
    with: &dyn Fn(Vec<f64>) -> f64,
) -> f64 {
    let g = to_f64(param.grad(grads).unwrap());
    let values = to_f64(param.val());
    let mut worst = 0f64;
    for &i in entries {
        let at = |delta: f64| {
            let mut v = values.clone();
            v[i] += delta;
            with(v)
        };
        let fd = (at(H) - at(-H)) / (2.0 * H);
        let ad = g[i];
        let rel = (fd - ad).abs() / ad.abs().max(1e-3);
        worst = worst.max(rel);
        eprintln!("{name}[{i}]: autodiff {ad:.12e}, finite difference {fd:.12e}, rel {rel:.1e}");
        assert!(
            rel <= REL_TOL,
            "{name}[{i}]: autodiff {ad} vs finite difference {fd} (relative {rel:.2e})"
        );
    }
    worst
}

/// The largest-gradient entries and a spread of others (some near zero, where an absolute
/// floor of 1e-3 applies).
fn entries(g: &[f64], top: usize, spread: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..g.len()).collect();
    idx.sort_by(|a, b| g[*b].abs().total_cmp(&g[*a].abs()));
    let mut out: Vec<usize> = idx[..top].to_vec();
    out.extend((0..spread).map(|k| (k * 7919 + 13) % g.len()));
    out
}

#[test]
fn base_weight_gradient_matches_finite_differences() {
    let dev = device();
    let model = load_dense::<A>(&tiny(), &dev).unwrap().model().clone();
    let (old, reference) = old_and_reference(&model);
    let grads = loss(&model, &old, &reference).backward();
    let w = model.layers[1].self_attn.q_proj.weight.as_ref().unwrap();
    let dims = w.val().dims();
    let g = to_f64(w.grad(&grads).unwrap());
    let worst = check(
        "layers.1.q_proj.weight",
        w,
        &grads,
        &entries(&g, 4, 4),
        &|v| {
            let mut m = model.clone();
            m.layers[1].self_attn.q_proj.weight = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(v, dims),
                &dev,
            )));
            value(loss(&m, &old, &reference))
        },
    );
    eprintln!("base weight: worst relative difference {worst:.2e}");
}

/// Adapter factor `which` (`a` or `b`) of the projection named `target`.
fn adapter<'m>(m: &'m mut Llama<A>, target: &str, which: &str) -> &'m mut Param<Tensor<A, 2>> {
    let lin = m
        .projections_mut()
        .into_iter()
        .find(|(name, _)| name == target)
        .map(|(_, l)| l)
        .unwrap();
    let l = lin.lora.as_mut().unwrap();
    if which == "a" { &mut l.a } else { &mut l.b }
}

#[test]
fn lora_gradients_match_finite_differences() {
    let dev = device();
    let base = load_dense::<A>(&tiny(), &dev).unwrap().model().clone();
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec!["all-linear".into()],
        ..LoraConfig::default()
    };
    let (mut model, n) = lora::attach(base, &cfg, 3, &dev).unwrap();
    assert!(n >= 7, "{n} adapters");
    // B starts at zero (the adapter is a no-op); give it values so that A's gradient is not
    // zero and the product's both factors are checked.
    for (k, (_, lin)) in model.projections_mut().into_iter().enumerate() {
        let l = lin.lora.as_mut().unwrap();
        let [out, r] = l.b.val().dims();
        let v: Vec<f64> = (0..out * r)
            .map(|i| (((i * 37 + k * 11) % 23) as f64 - 11.0) / 90.0)
            .collect();
        l.b = Param::from_tensor(Tensor::from_data(TensorData::new(v, [out, r]), &dev))
            .set_require_grad(true);
    }
    let (old, reference) = old_and_reference(&model);
    let grads = loss(&model, &old, &reference).backward();
    let mut worst = 0f64;
    // An attention and an MLP projection, in the first and the last layer.
    for (layer, proj) in [(0usize, "self_attn.q_proj"), (1, "mlp.down_proj")] {
        let target = format!("model.layers.{layer}.{proj}");
        for which in ["a", "b"] {
            let p = adapter(&mut model.clone(), &target, which).clone();
            let dims = p.val().dims();
            let g = to_f64(p.grad(&grads).unwrap());
            let name = format!("{target}.lora_{which}");
            worst = worst.max(check(&name, &p, &grads, &entries(&g, 3, 3), &|v| {
                let mut m = model.clone();
                *adapter(&mut m, &target, which) =
                    Param::from_tensor(Tensor::from_data(TensorData::new(v, dims), &dev));
                value(loss(&m, &old, &reference))
            }));
        }
    }
    eprintln!("LoRA A and B: worst relative difference {worst:.2e}");
}
