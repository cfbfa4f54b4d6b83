//! The ggml tensor types we read, their block geometry, and scalar dequantizers.
//!
//! The dequantizers here define what a block *means*; every faster kernel is tested against
//! them, and they are tested against gguf-py's numpy implementation through committed fixtures.

use crate::error::{Error, Result};

/// A ggml tensor type this crate can read.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half float.
    F16,
    /// bfloat16.
    BF16,
    /// 32 weights: f16 scale, 16 bytes of 4-bit values, offset 8.
    Q4_0,
    /// 32 weights: f16 scale, f16 minimum, 16 bytes of 4-bit values.
    Q4_1,
    /// 32 weights: f16 scale, 32 signed bytes.
    Q8_0,
    /// 256 weights in 8 sub-blocks with 6-bit scales and minimums, 4-bit values.
    Q4_K,
    /// 256 weights in 16 sub-blocks with 8-bit scales, 6-bit values.
    Q6_K,
}

/// The list printed when a file holds a type we do not read.
pub const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K";

impl GgmlType {
    /// Maps a ggml type id to a type, or `None` for a type we do not read.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            12 => Self::Q4_K,
            14 => Self::Q6_K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// The ggml name of a type id, including types we cannot read (for error messages).
    pub fn name_of_id(id: u32) -> &'static str {
        match id {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            6 => "Q5_0",
            7 => "Q5_1",
            8 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            14 => "Q6_K",
            15 => "Q8_K",
            16..=23 => "IQ (importance) quant",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            30 => "BF16",
            _ => "unknown",
        }
    }

    /// The type's ggml name.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q8_0 => "Q8_0",
            Self::Q4_K => "Q4_K",
            Self::Q6_K => "Q6_K",
        }
    }

    /// Number of weights per block.
    pub fn block_len(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q8_0 => 32,
            Self::Q4_K | Self::Q6_K => 256,
        }
    }

    /// Number of bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q6_K => 210,
        }
    }

    /// Bytes taken by `n` weights, or `None` if `n` is not a whole number of blocks or the
    /// size overflows.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// Whether the type is a quantized block format (as opposed to a plain float).
    pub fn is_quantized(self) -> bool {
        !matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

/// Converts IEEE half bits to f32.
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

#[inline]
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Dequantizes `out.len()` weights stored as `ty` in `bytes` into `out`.
///
/// Fails if `out.len()` is not a whole number of blocks or `bytes` has the wrong length; these
/// are checked, never assumed, because the sizes come from a file header.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let n = out.len();
    let need = ty.bytes_for(n).ok_or_else(|| {
        Error::Config(format!(
            "{} weights do not fill whole {} blocks of {}",
            n,
            ty.name(),
            ty.block_len()
        ))
    })?;
    if bytes.len() != need {
        return Err(Error::Config(format!(
            "{} weights of type {} take {} bytes, got {}",
            n,
            ty.name(),
            need,
            bytes.len()
        )));
    }
    let bb = ty.block_bytes();
    let bl = ty.block_len();
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        GgmlType::Q4_0 => {
            for (blk, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
                let d = f16_to_f32(le_u16(blk, 0));
                let qs = &blk[2..18];
                for j in 0..16 {
                    o[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
                    o[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            for (blk, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
                let d = f16_to_f32(le_u16(blk, 0));
                let m = f16_to_f32(le_u16(blk, 2));
                let qs = &blk[4..20];
                for j in 0..16 {
                    o[j] = (qs[j] & 0x0f) as f32 * d + m;
                    o[j + 16] = (qs[j] >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (blk, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
                let d = f16_to_f32(le_u16(blk, 0));
                for (j, oj) in o.iter_mut().enumerate() {
                    *oj = (blk[2 + j] as i8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_K => {
            for (blk, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
                dequantize_q4_k_block(blk, o);
            }
        }
        GgmlType::Q6_K => {
            for (blk, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
                dequantize_q6_k_block(blk, o);
            }
        }
    }
    Ok(())
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) of a Q4_K block's 12 packed bytes.
#[inline]
pub(crate) fn q4_k_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K block: d (f16), dmin (f16), scales[12], qs[128].
fn dequantize_q4_k_block(blk: &[u8], out: &mut [f32]) {
    let d = f16_to_f32(le_u16(blk, 0));
    let dmin = f16_to_f32(le_u16(blk, 2));
    let scales = &blk[4..16];
    let qs = &blk[16..144];
    // Four groups of 64 weights; each group reads 32 bytes: low nibbles then high nibbles.
    for g in 0..4 {
        let (sc1, m1) = q4_k_scale_min(2 * g, scales);
        let (sc2, m2) = q4_k_scale_min(2 * g + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * g..32 * g + 32];
        let o = &mut out[64 * g..64 * g + 64];
        for l in 0..32 {
            o[l] = d1 * (q[l] & 0x0f) as f32 - min1;
            o[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
}

/// Q6_K block: ql[128], qh[64], scales[16] (i8), d (f16).
fn dequantize_q6_k_block(blk: &[u8], out: &mut [f32]) {
    let ql_all = &blk[0..128];
    let qh_all = &blk[128..192];
    let sc_all = &blk[192..208];
    let d = f16_to_f32(le_u16(blk, 208));
    // Two halves of 128 weights.
    for h in 0..2 {
        let ql = &ql_all[64 * h..64 * h + 64];
        let qh = &qh_all[32 * h..32 * h + 32];
        let sc = &sc_all[8 * h..8 * h + 8];
        let o = &mut out[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            o[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            o[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            o[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            o[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_ggml() {
        for (ty, len, bytes) in [
            (GgmlType::Q4_0, 32, 18),
            (GgmlType::Q4_1, 32, 20),
            (GgmlType::Q8_0, 32, 34),
            (GgmlType::Q4_K, 256, 144),
            (GgmlType::Q6_K, 256, 210),
        ] {
            assert_eq!(ty.block_len(), len);
            assert_eq!(ty.block_bytes(), bytes);
        }
        assert_eq!(GgmlType::Q4_1.bytes_for(64), Some(40));
        assert_eq!(GgmlType::Q4_1.bytes_for(33), None);
    }

    #[test]
    fn q4_1_block_by_hand() {
        // d = 0.5, m = -1.0, nibble j = j % 16 in low half, 15 - j % 16 in high half.
        let mut blk = vec![];
        blk.extend_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        blk.extend_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
        for j in 0..16u8 {
            blk.push(j | ((15 - j) << 4));
        }
        let mut out = [0f32; 32];
        dequantize_into(GgmlType::Q4_1, &blk, &mut out).unwrap();
        for j in 0..16 {
            assert_eq!(out[j], j as f32 * 0.5 - 1.0);
            assert_eq!(out[j + 16], (15 - j) as f32 * 0.5 - 1.0);
        }
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let mut out = [0f32; 32];
        assert!(dequantize_into(GgmlType::Q8_0, &[0u8; 33], &mut out).is_err());
        let mut odd = [0f32; 31];
        assert!(dequantize_into(GgmlType::Q8_0, &[0u8; 34], &mut odd).is_err());
    }
}
