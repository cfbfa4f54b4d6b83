//! Small deterministic math: vectors, trigonometry through `libm` (the same bits on every
//! machine, unlike the platform's libm), and hash-based value noise for textures.

use serde::{Deserialize, Serialize};
use std::ops::{Add, Mul, Neg, Sub};

/// A 3-vector of `f32` in world or camera coordinates (metres).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct V3 {
    /// x.
    pub x: f32,
    /// y.
    pub y: f32,
    /// z.
    pub z: f32,
}

impl V3 {
    /// Builds a vector.
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Self { x, y, z }
    }
    /// Dot product.
    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    /// Cross product.
    pub fn cross(self, o: V3) -> V3 {
        V3::new(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    /// Euclidean length.
    pub fn norm(self) -> f32 {
        self.dot(self).sqrt()
    }
    /// Horizontal (x, y) length.
    pub fn norm_xy(self) -> f32 {
        (self.x * self.x + self.y * self.y).sqrt()
    }
    /// Unit vector in the same direction (zero stays zero).
    pub fn normalized(self) -> V3 {
        let n = self.norm();
        if n > 0.0 { self * (1.0 / n) } else { self }
    }
}

impl Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        V3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        V3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, s: f32) -> V3 {
        V3::new(self.x * s, self.y * s, self.z * s)
    }
}
impl Neg for V3 {
    type Output = V3;
    fn neg(self) -> V3 {
        V3::new(-self.x, -self.y, -self.z)
    }
}

/// Sine (deterministic across machines).
pub fn sin(x: f32) -> f32 {
    libm::sinf(x)
}
/// Cosine (deterministic across machines).
pub fn cos(x: f32) -> f32 {
    libm::cosf(x)
}
/// Two-argument arctangent (deterministic across machines).
pub fn atan2(y: f32, x: f32) -> f32 {
    libm::atan2f(y, x)
}
/// Degrees to radians.
pub fn rad(deg: f32) -> f32 {
    deg * (std::f32::consts::PI / 180.0)
}
/// Radians to degrees.
pub fn deg(rad: f32) -> f32 {
    rad * (180.0 / std::f32::consts::PI)
}
/// Wraps an angle in degrees to (-180, 180].
pub fn wrap_deg(mut a: f32) -> f32 {
    while a > 180.0 {
        a -= 360.0;
    }
    while a <= -180.0 {
        a += 360.0;
    }
    a
}

/// 32-bit integer hash (lowbias32), the basis of all texture noise.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Hash of a lattice point and a seed to [0, 1).
pub fn hash2(ix: i32, iy: i32, seed: u32) -> f32 {
    let h = hash32(
        (ix as u32).wrapping_mul(0x8da6_b343)
            ^ (iy as u32).wrapping_mul(0xd816_3841)
            ^ seed.wrapping_mul(0xcb1a_b31f),
    );
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Bilinear value noise in [0, 1) at (x, y), lattice spacing 1.
pub fn value_noise(x: f32, y: f32, seed: u32) -> f32 {
    let fx = x.floor();
    let fy = y.floor();
    let (ix, iy) = (fx as i32, fy as i32);
    let tx = x - fx;
    let ty = y - fy;
    let sx = tx * tx * (3.0 - 2.0 * tx);
    let sy = ty * ty * (3.0 - 2.0 * ty);
    let a = hash2(ix, iy, seed);
    let b = hash2(ix + 1, iy, seed);
    let c = hash2(ix, iy + 1, seed);
    let d = hash2(ix + 1, iy + 1, seed);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Two octaves of value noise in [0, 1).
pub fn fbm(x: f32, y: f32, seed: u32) -> f32 {
    0.65 * value_noise(x, y, seed) + 0.35 * value_noise(x * 2.7, y * 2.7, seed ^ 0x5bd1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_and_repeatable() {
        for i in 0..1000 {
            let x = i as f32 * 0.37 - 50.0;
            let v = value_noise(x, x * 0.5, 7);
            assert!((0.0..1.0).contains(&v));
            assert_eq!(v, value_noise(x, x * 0.5, 7));
        }
        assert_ne!(hash2(1, 2, 3), hash2(2, 1, 3));
        assert_eq!(wrap_deg(190.0), -170.0);
        assert_eq!(wrap_deg(-180.0), 180.0);
    }
}
