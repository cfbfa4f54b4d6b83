//! Dense f32 products on the host for the CPU backend's decode path: `x: [m, cols]` times a
//! weight `[rows, cols]` (or the same weight stored transposed), rows spread over the kernel
//! pool. They compute what burn's matmul computes (the parity tests hold both to the
//! transformers fixtures); they exist because a decode-sized matmul through burn pays more in
//! dispatch than in arithmetic.

use super::{SharedSlice, row_dots, weighted_rows, worker_pool};

/// `out[m, rows] = xs[m, cols] · wt[cols, rows]` (a weight stored transposed): each worker sums
/// its share of the inputs' rows of the weight (contiguous, full width), then the shares are
/// added.
pub(crate) fn matmul_transposed(
    xs: &[f32],
    wt: &[f32],
    [m, rows, cols]: [usize; 3],
    out: &mut [f32],
) {
    debug_assert_eq!(
        (xs.len(), wt.len(), out.len()),
        (m * cols, rows * cols, m * rows)
    );
    let chunks = worker_pool().threads().min(cols.div_ceil(64)).max(1);
    let per = cols.div_ceil(chunks);
    let mut partial = vec![0f32; chunks * m * rows];
    let shared = SharedSlice::new(&mut partial);
    worker_pool().run(chunks, &|c| {
        let (j0, j1) = (c * per, ((c + 1) * per).min(cols));
        for i in 0..m {
            let at = (c * m + i) * rows;
            // SAFETY: chunk c writes only its own share of `partial`.
            #[allow(unsafe_code)]
            let o = unsafe { shared.range(at, at + rows) };
            if j0 < j1 {
                weighted_rows(
                    &xs[i * cols + j0..i * cols + j1],
                    &wt[j0 * rows..j1 * rows],
                    o,
                );
            }
        }
    });
    out.fill(0.0);
    for part in partial.chunks_exact(m * rows) {
        for (o, p) in out.iter_mut().zip(part) {
            *o += p;
        }
    }
}

/// `out[m, rows] = xs[m, cols] · ws[rows, cols]ᵀ`: each worker takes a block of output rows.
pub(crate) fn matmul_rows(xs: &[f32], ws: &[f32], [m, rows, cols]: [usize; 3], out: &mut [f32]) {
    debug_assert_eq!(
        (xs.len(), ws.len(), out.len()),
        (m * cols, rows * cols, m * rows)
    );
    let shared = SharedSlice::new(out);
    let per = rows
        .div_ceil(worker_pool().threads() * 4)
        .next_multiple_of(8)
        .max(16);
    worker_pool().run(rows.div_ceil(per), &|c| {
        let (r0, r1) = (c * per, ((c + 1) * per).min(rows));
        for i in 0..m {
            // SAFETY: chunk c writes outputs r0..r1 of every row i; chunks are disjoint.
            #[allow(unsafe_code)]
            let o = unsafe { shared.range(i * rows + r0, i * rows + r1) };
            row_dots(&xs[i * cols..(i + 1) * cols], &ws[r0 * cols..r1 * cols], o);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both layouts give the plain triple loop's product.
    #[test]
    fn both_layouts_match_the_plain_product() {
        let (m, rows, cols) = (3, 37, 150);
        let xs: Vec<f32> = (0..m * cols)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let ws: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0)
            .collect();
        let mut want = vec![0f32; m * rows];
        for i in 0..m {
            for r in 0..rows {
                want[i * rows + r] = (0..cols).map(|j| xs[i * cols + j] * ws[r * cols + j]).sum();
            }
        }
        let mut wt = vec![0f32; rows * cols];
        for r in 0..rows {
            for j in 0..cols {
                wt[j * rows + r] = ws[r * cols + j];
            }
        }
        let mut a = vec![f32::NAN; m * rows];
        let mut b = vec![f32::NAN; m * rows];
        matmul_rows(&xs, &ws, [m, rows, cols], &mut a);
        matmul_transposed(&xs, &wt, [m, rows, cols], &mut b);
        for ((x, y), w) in a.iter().zip(&b).zip(&want) {
            assert!((x - w).abs() <= 1e-4 * w.abs().max(1.0), "{x} vs {w}");
            assert!((y - w).abs() <= 1e-4 * w.abs().max(1.0), "{y} vs {w}");
        }
    }
}
