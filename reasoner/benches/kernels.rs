//! Packed matrix × activation kernels at decode (1 row), group (8 rows) and the shapes of
//! SmolLM2-135M. Reports weight bytes per second: decode is memory-bound.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use embodied_r_reasoner::quant::{GgmlType, PackedMatrix};
use embodied_r_reasoner::{ActivationMode, init_threads};

fn matrix(ty: GgmlType, rows: usize, cols: usize) -> PackedMatrix {
    let mut data = vec![0u8; ty.bytes_for(cols).unwrap() * rows];
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for b in data.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    // Sane f16 scales at the start of every block.
    for blk in data.chunks_exact_mut(ty.block_bytes()) {
        blk[0..2].copy_from_slice(&half::f16::from_f32(0.01).to_bits().to_le_bytes());
        if ty == GgmlType::Q4_1 {
            blk[2..4].copy_from_slice(&half::f16::from_f32(-0.08).to_bits().to_le_bytes());
        }
    }
    PackedMatrix::new(ty, rows, cols, data).unwrap()
}

fn bench(c: &mut Criterion) {
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    init_threads(threads);
    let shapes = [
        ("q4_1 1536x576 (ffn up)", GgmlType::Q4_1, 1536, 576),
        ("q4_1 576x1536 (ffn down)", GgmlType::Q4_1, 576, 1536),
        ("q8_0 49152x576 (lm head)", GgmlType::Q8_0, 49152, 576),
        ("q4_0 1536x576", GgmlType::Q4_0, 1536, 576),
    ];
    let mut g = c.benchmark_group("packed_matmul");
    for (name, ty, rows, cols) in shapes {
        let w = matrix(ty, rows, cols);
        for (mode, m) in [
            (ActivationMode::Q8, 1usize),
            (ActivationMode::F32, 1),
            (ActivationMode::Q8, 8),
        ] {
            let x: Vec<f32> = (0..m * cols)
                .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
                .collect();
            let mut out = vec![0f32; m * rows];
            g.throughput(Throughput::Bytes(w.size_bytes() as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("{name} {mode:?}"), m),
                &m,
                |b, &m| b.iter(|| w.matmul(&x, m, mode, &mut out)),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
