//! Quantizers: f32 weights into the ggml block formats we write (F32, F16, BF16, Q8_0, Q4_0,
//! Q4_1), following ggml's reference rounding (`quantize_row_*_ref`), so a file we write reads
//! back through [`super::dequantize_into`] — and through llama.cpp — as ggml would have written
//! it. Used to export a merged model as GGUF; nothing on the answer path calls them.

use super::formats::GgmlType;
use crate::error::{Error, Result};

fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_bits().to_le_bytes()
}

/// Encodes `x` (a whole number of blocks) as `ty`. K-quants are not written (an error names
/// the type).
pub fn quantize(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>> {
    let bad = |what: String| Error::Gguf {
        path: "<writer>".into(),
        what,
    };
    let bytes = ty.bytes_for(x.len()).ok_or_else(|| {
        bad(format!(
            "{} values are not a whole number of {} blocks of {}",
            x.len(),
            ty.name(),
            ty.block_len()
        ))
    })?;
    let mut out = Vec::with_capacity(bytes);
    match ty {
        GgmlType::F32 => x
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x.iter().for_each(|&v| out.extend_from_slice(&f16_bytes(v))),
        GgmlType::BF16 => x
            .iter()
            .for_each(|&v| out.extend_from_slice(&half::bf16::from_f32(v).to_bits().to_le_bytes())),
        GgmlType::Q8_0 => x.chunks_exact(32).for_each(|b| q8_0(b, &mut out)),
        GgmlType::Q4_0 => x.chunks_exact(32).for_each(|b| q4_0(b, &mut out)),
        GgmlType::Q4_1 => x.chunks_exact(32).for_each(|b| q4_1(b, &mut out)),
        GgmlType::Q4_K | GgmlType::Q6_K => {
            return Err(bad(format!(
                "writing {} is not supported: choose F32, F16, BF16, Q8_0, Q4_0 or Q4_1",
                ty.name()
            )));
        }
    }
    Ok(out)
}

/// ggml's `quantize_row_q8_0_ref`: d = max|x| / 127, q = round(x / d).
fn q8_0(b: &[f32], out: &mut Vec<u8>) {
    let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16_bytes(d));
    out.extend(b.iter().map(|v| (v * id).round() as i8 as u8));
}

/// ggml's `quantize_row_q4_0_ref`: d = (the value of largest magnitude) / −8, nibbles
/// `min(15, x/d + 8.5)`, low halves of the block in the low nibbles.
fn q4_0(b: &[f32], out: &mut Vec<u8>) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in b {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16_bytes(d));
    let nib = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    out.extend((0..16).map(|j| nib(b[j]) | (nib(b[16 + j]) << 4)));
}

/// ggml's `quantize_row_q4_1_ref`: m = min, d = (max − min) / 15, nibbles
/// `min(15, (x − m)/d + 0.5)`.
fn q4_1(b: &[f32], out: &mut Vec<u8>) {
    let min = b.iter().copied().fold(f32::MAX, f32::min);
    let max = b.iter().copied().fold(f32::MIN, f32::max);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16_bytes(d));
    out.extend_from_slice(&f16_bytes(min));
    let nib = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
    out.extend((0..16).map(|j| nib(b[j]) | (nib(b[16 + j]) << 4)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize_into;
    use proptest::prelude::*;

    fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
        let q = quantize(ty, x).expect("quantize");
        assert_eq!(q.len(), ty.bytes_for(x.len()).expect("size"));
        let mut y = vec![0f32; x.len()];
        dequantize_into(ty, &q, &mut y).expect("dequantize");
        y
    }

    proptest! {
        /// Every block reads back within half a quantization step (plus the f16 rounding of
        /// the scale), the bound the formats promise.
        #[test]
        fn blocks_read_back_within_half_a_step(x in prop::collection::vec(-4.0f32..4.0, 64)) {
            for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
                let y = round_trip(ty, &x);
                for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let (lo, hi) = xb.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                    let step = match ty {
                        GgmlType::Q8_0 => amax / 127.0,
                        GgmlType::Q4_0 => amax / 8.0,
                        _ => (hi - lo) / 15.0,
                    };
                    for (a, c) in xb.iter().zip(yb) {
                        // Q4_0 clips the end opposite the largest magnitude by one step.
                        let tol = step * if ty == GgmlType::Q4_0 { 1.0 } else { 0.5 } + amax * 2e-3 + 1e-6;
                        prop_assert!((a - c).abs() <= tol, "{} block {b}: {a} → {c} (tol {tol})", ty.name());
                    }
                }
            }
        }

        /// Floats are stored as such: F32 exactly, F16/BF16 within their rounding.
        #[test]
        fn floats_round_trip(x in prop::collection::vec(-100.0f32..100.0, 1..40)) {
            prop_assert_eq!(round_trip(GgmlType::F32, &x), x.clone());
            for (a, c) in x.iter().zip(round_trip(GgmlType::F16, &x)) {
                prop_assert!((a - c).abs() <= a.abs() * 1e-3 + 1e-4);
            }
            for (a, c) in x.iter().zip(round_trip(GgmlType::BF16, &x)) {
                prop_assert!((a - c).abs() <= a.abs() * 8e-3 + 1e-4);
            }
        }
    }

    #[test]
    fn known_blocks_and_refusals() {
        // A block whose values are exact multiples of the step reads back exactly.
        // Q8_0: max |x| = 127 × 0.25, so the scale is 0.25 exactly (in f16 too).
        let mut x: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 0.25).collect();
        x[0] = -31.75;
        assert_eq!(round_trip(GgmlType::Q8_0, &x), x);
        let y = round_trip(
            GgmlType::Q4_1,
            &(0..32).map(|i| (i % 16) as f32).collect::<Vec<_>>(),
        );
        assert_eq!(y[..16], (0..16).map(|i| i as f32).collect::<Vec<_>>()[..]);
        // All zeros: scale 0, no NaN.
        assert!(
            round_trip(GgmlType::Q4_1, &[0.0; 32])
                .iter()
                .all(|v| *v == 0.0)
        );
        assert!(
            round_trip(GgmlType::Q8_0, &[0.0; 32])
                .iter()
                .all(|v| *v == 0.0)
        );
        let e = quantize(GgmlType::Q8_0, &[0.0; 31])
            .unwrap_err()
            .to_string();
        assert!(e.contains("31") && e.contains("Q8_0"), "{e}");
        let e = quantize(GgmlType::Q4_K, &[0.0; 256])
            .unwrap_err()
            .to_string();
        assert!(e.contains("Q4_K"), "{e}");
    }
}
