//! Brute-force Hamming matching with a cross-check: a pair is kept only when each descriptor is
//! the other's nearest neighbour (the first one in index order on ties).

use super::orb::Descriptor;

/// A mutual nearest-neighbour pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index into the first descriptor set.
    pub query: u32,
    /// Index into the second descriptor set.
    pub train: u32,
    /// Hamming distance in bits.
    pub distance: u32,
}

#[inline(always)]
fn hamming(a: &Descriptor, b: &Descriptor) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

#[inline(always)]
fn best_pairs(
    a: &[Descriptor],
    b: &[Descriptor],
    best_a: &mut [(u32, u32)],
    best_b: &mut [(u32, u32)],
) {
    for (i, da) in a.iter().enumerate() {
        let mut best = (u32::MAX, 0u32);
        for (j, db) in b.iter().enumerate() {
            let d = hamming(da, db);
            if d < best.0 {
                best = (d, j as u32);
            }
            if d < best_b[j].0 {
                best_b[j] = (d, i as u32);
            }
        }
        best_a[i] = best;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn best_pairs_popcnt(
    a: &[Descriptor],
    b: &[Descriptor],
    best_a: &mut [(u32, u32)],
    best_b: &mut [(u32, u32)],
) {
    best_pairs(a, b, best_a, best_b)
}

/// Cross-checked matches from `a` (query) to `b` (train), in query order.
pub fn cross_check(a: &[Descriptor], b: &[Descriptor]) -> Vec<Match> {
    let mut best_a = vec![(u32::MAX, 0u32); a.len()];
    let mut best_b = vec![(u32::MAX, 0u32); b.len()];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU supports popcnt, checked just above.
            #[allow(unsafe_code)]
            unsafe {
                best_pairs_popcnt(a, b, &mut best_a, &mut best_b)
            };
        } else {
            best_pairs(a, b, &mut best_a, &mut best_b);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    best_pairs(a, b, &mut best_a, &mut best_b);
    best_a
        .iter()
        .enumerate()
        .filter(|&(i, &(d, j))| d != u32::MAX && best_b[j as usize].1 == i as u32)
        .map(|(i, &(d, j))| Match {
            query: i as u32,
            train: j,
            distance: d,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_mutual_nearest_neighbours() {
        let a = [[0u64; 4], [0xFF, 0, 0, 0], [u64::MAX; 4]];
        let b = [[0x1, 0, 0, 0], [0xFF, 0xF, 0, 0]];
        let m = cross_check(&a, &b);
        // a0↔b0 (1 bit); a1's best is b1 (4 bits) vs b0 (7 bits), b1's best is a1; a2 loses.
        assert_eq!(
            m,
            vec![
                Match {
                    query: 0,
                    train: 0,
                    distance: 1
                },
                Match {
                    query: 1,
                    train: 1,
                    distance: 4
                }
            ]
        );
        assert!(cross_check(&[], &b).is_empty());
        assert!(cross_check(&a, &[]).is_empty());
    }

    #[test]
    fn ties_go_to_the_first_index() {
        let a = [[1u64, 0, 0, 0]];
        let b = [[3u64, 0, 0, 0], [5u64, 0, 0, 0]];
        assert_eq!(cross_check(&a, &b)[0].train, 0);
    }
}
