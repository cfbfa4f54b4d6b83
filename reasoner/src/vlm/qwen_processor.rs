//! Image preprocessing and image-token layout of Qwen2-VL / Qwen2.5-VL, as transformers' PIL
//! image processor (`Qwen2VLImageProcessorPil`) and `Qwen2_5_VLProcessor` do them:
//!
//! 1. `smart_resize`: both edges rounded (half to even, as Python's `round`) to multiples of
//!    `patch_size · merge_size`, then scaled down (floor) or up (ceil) so the pixel count lies
//!    within `[min_pixels, max_pixels]`; resized with the configured filter (BICUBIC);
//! 2. rescale to [0, 1] and normalise with the configured mean and standard deviation;
//! 3. cut into `patch × patch` patches in merge-block order (each `merge × merge` block of
//!    patches consecutive, blocks row by row), every patch vector `[channel, frame, row, col]`
//!    with the image repeated over the `temporal_patch_size` frames.
//!
//! In the prompt every `<|image_pad|>` becomes one `<|image_pad|>` per merged token
//! (`grid_h · grid_w / merge²`).

use serde_json::Value;

use super::processor::{filter_rescale_std, get_bool, get_triple, normalise};
use super::resize::{Filter, Rgb8};
use crate::error::{Error, Result};

/// The image processor settings of a Qwen2-VL / Qwen2.5-VL folder.
#[derive(Debug, Clone, PartialEq)]
pub struct QwenImageConfig {
    /// Resize to the `smart_resize` size.
    pub do_resize: bool,
    /// Fewest pixels after resizing (`size.shortest_edge` or `min_pixels`).
    pub min_pixels: usize,
    /// Most pixels after resizing (`size.longest_edge` or `max_pixels`).
    pub max_pixels: usize,
    /// Patch edge in pixels.
    pub patch_size: usize,
    /// Patches merged along each edge.
    pub merge_size: usize,
    /// Frames per patch.
    pub temporal_patch_size: usize,
    /// Resampling filter.
    pub filter: Filter,
    /// Multiply 8-bit values by `rescale_factor`.
    pub do_rescale: bool,
    /// Usually 1/255.
    pub rescale_factor: f64,
    /// Subtract the mean and divide by the standard deviation per channel.
    pub do_normalize: bool,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

/// The most pixels a resized image may have (`max_pixels` above this is refused).
const MAX_PIXELS: usize = 2 * 4096 * 4096;

/// OpenAI CLIP's normalisation, the processor's default (the f32 nearest to the published
/// decimals, as `float(...)` then f32 in transformers).
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

fn get_usize(v: &Value, key: &str) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .filter(|&n| n > 0)
            .map(|n| Some(n as usize))
            .ok_or_else(|| {
                Error::Config(format!(
                    "image processor `{key}` is {x}; expected a positive integer"
                ))
            }),
    }
}

impl QwenImageConfig {
    /// Reads the settings from an image-processor JSON object; absent keys take
    /// transformers' defaults (`min_pixels`/`max_pixels` override `size`, as there).
    pub fn from_json(v: &Value) -> Result<Self> {
        let size = v.get("size").cloned().unwrap_or(Value::Null);
        let min_pixels = match get_usize(v, "min_pixels")? {
            Some(n) => n,
            None => get_usize(&size, "shortest_edge")?.unwrap_or(56 * 56),
        };
        let max_pixels = match get_usize(v, "max_pixels")? {
            Some(n) => n,
            None => get_usize(&size, "longest_edge")?.unwrap_or(28 * 28 * 1280),
        };
        if min_pixels > max_pixels {
            return Err(Error::Config(format!(
                "image processor: min_pixels {min_pixels} exceeds max_pixels {max_pixels}"
            )));
        }
        if max_pixels > MAX_PIXELS {
            return Err(Error::Config(format!(
                "image processor: max_pixels {max_pixels} exceeds {MAX_PIXELS} (two 4096×4096 \
                 images; released Qwen processors use at most 16 777 216)"
            )));
        }
        let patch_size = get_usize(v, "patch_size")?.unwrap_or(14);
        let merge_size = get_usize(v, "merge_size")?.unwrap_or(2);
        let temporal_patch_size = get_usize(v, "temporal_patch_size")?.unwrap_or(2);
        for (key, n, most) in [
            ("patch_size", patch_size, 64),
            ("merge_size", merge_size, 8),
            ("temporal_patch_size", temporal_patch_size, 8),
        ] {
            if n > most {
                return Err(Error::Config(format!(
                    "image processor `{key}` is {n}; at most {most} (released models use 2 to 16)"
                )));
            }
        }
        let (filter, rescale_factor, std) = filter_rescale_std(v, Filter::Bicubic, CLIP_STD)?;
        Ok(QwenImageConfig {
            do_resize: get_bool(v, "do_resize", true)?,
            min_pixels,
            max_pixels,
            patch_size,
            merge_size,
            temporal_patch_size,
            filter,
            do_rescale: get_bool(v, "do_rescale", true)?,
            rescale_factor,
            do_normalize: get_bool(v, "do_normalize", true)?,
            mean: get_triple(v, "image_mean", CLIP_MEAN)?,
            std,
        })
    }

    /// Edge multiple every resized image has (`patch_size · merge_size`).
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Preprocesses one RGB image.
    pub fn preprocess(&self, image: &Rgb8) -> Result<Patches> {
        let f = self.factor();
        let (h, w) = if self.do_resize {
            smart_resize(
                image.height,
                image.width,
                f,
                self.min_pixels,
                self.max_pixels,
            )?
        } else {
            (image.height, image.width)
        };
        if !h.is_multiple_of(f) || !w.is_multiple_of(f) || h == 0 || w == 0 {
            return Err(Error::Image {
                what: format!("a {}×{} image", image.width, image.height),
                message: format!(
                    "is {w}×{h} after preprocessing; both edges must be positive multiples of \
                     {f} (patch × merge)"
                ),
            });
        }
        let img = if (h, w) == (image.height, image.width) {
            image.clone()
        } else {
            image.resize(w, h, self.filter)
        };
        let (p, m, t) = (self.patch_size, self.merge_size, self.temporal_patch_size);
        let (gh, gw) = (h / p, w / p);
        // Normalised channel planes first, as the processor computes them.
        let rescale = self.do_rescale.then_some(self.rescale_factor);
        let norm = self.do_normalize.then_some((self.mean, self.std));
        let mut planes = vec![0f32; 3 * h * w];
        for (i, px) in img.data.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                planes[ch * h * w + i] = normalise(px[ch], rescale, norm, ch);
            }
        }
        let k = 3 * t * p * p;
        let mut pixels = Vec::with_capacity(gh * gw * k);
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let (py, px) = (bh * m + mh, bw * m + mw);
                        for ch in 0..3 {
                            for _ in 0..t {
                                for y in 0..p {
                                    let row = ch * h * w + (py * p + y) * w + px * p;
                                    pixels.extend_from_slice(&planes[row..row + p]);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Patches {
            pixels,
            grid: [1, gh, gw],
            patch_len: k,
        })
    }
}

/// One image ready for the Qwen vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct Patches {
    /// `grid_t · grid_h · grid_w` patch vectors of `patch_len` values, in merge-block order.
    pub pixels: Vec<f32>,
    /// `[t, h, w]` in patches.
    pub grid: [usize; 3],
    /// Values per patch (`3 · temporal · patch²`).
    pub patch_len: usize,
}

impl Patches {
    /// Patches in the image.
    pub fn count(&self) -> usize {
        self.grid.iter().product()
    }

    /// Language-model tokens the image becomes (`count / merge²`).
    pub fn tokens(&self, merge: usize) -> usize {
        self.count() / (merge * merge).max(1)
    }
}

/// transformers' `smart_resize`: `(height, width)` as multiples of `factor`, aspect kept, the
/// pixel count within `[min_pixels, max_pixels]`. Images more than 200 times wider than tall
/// (or the reverse) are refused, as there.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    let (hf, wf, ff) = (height as f64, width as f64, factor as f64);
    if height == 0 || width == 0 || hf.max(wf) / hf.min(wf) > 200.0 {
        return Err(Error::Image {
            what: format!("a {width}×{height} image"),
            message: "has an aspect ratio over 200 (or an empty edge); Qwen2-VL's processor \
                      refuses it"
                .into(),
        });
    }
    let mut h = (hf / ff).round_ties_even() as usize * factor;
    let mut w = (wf / ff).round_ties_even() as usize * factor;
    if h * w > max_pixels {
        let beta = ((hf * wf) / max_pixels as f64).sqrt();
        h = factor.max((hf / beta / ff).floor() as usize * factor);
        w = factor.max((wf / beta / ff).floor() as usize * factor);
    } else if h * w < min_pixels {
        let beta = (min_pixels as f64 / (hf * wf)).sqrt();
        h = (hf * beta / ff).ceil() as usize * factor;
        w = (wf * beta / ff).ceil() as usize * factor;
    }
    Ok((h, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_processor_settings_are_refused_by_name() {
        let ok = serde_json::json!({"min_pixels": 3136, "max_pixels": 12_845_056u64});
        assert!(QwenImageConfig::from_json(&ok).is_ok());
        for (key, v) in [
            ("max_pixels", serde_json::json!({"max_pixels": 1u64 << 40})),
            ("patch_size", serde_json::json!({"patch_size": 100_000})),
            ("merge_size", serde_json::json!({"merge_size": 9})),
            (
                "temporal_patch_size",
                serde_json::json!({"temporal_patch_size": 1000}),
            ),
        ] {
            let e = QwenImageConfig::from_json(&v).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn smart_resize_follows_transformers() {
        // Values from transformers' smart_resize (Python) for the same inputs.
        // A 640×480 camera frame at the default bounds: 644×476.
        assert_eq!(
            smart_resize(480, 640, 28, 3136, 1_003_520).unwrap(),
            (476, 644)
        );
        // Half-way cases round to even: 20/8 = 2.5 → 2, 36/8 = 4.5 → 4, 44/8 = 5.5 → 6.
        assert_eq!(smart_resize(20, 36, 8, 1, 1 << 20).unwrap(), (16, 32));
        assert_eq!(smart_resize(44, 44, 8, 1, 1 << 20).unwrap(), (48, 48));
        // Too many pixels: scaled down with floor; too few: scaled up with ceil.
        assert_eq!(smart_resize(70, 26, 8, 512, 1600).unwrap(), (64, 24));
        assert_eq!(smart_resize(20, 24, 8, 512, 1600).unwrap(), (24, 32));
        assert_eq!(
            smart_resize(1080, 1920, 28, 3136, 1_003_520).unwrap(),
            (728, 1316)
        );
        let e = smart_resize(2, 500, 28, 3136, 1_003_520)
            .unwrap_err()
            .to_string();
        assert!(e.contains("500×2") && e.contains("200"), "{e}");
    }

    #[test]
    fn patches_are_in_merge_block_order() {
        // An 8×4 image (w×h) with 2-px patches, merge 2, one frame: values encode position.
        let cfg = QwenImageConfig {
            do_resize: false,
            do_rescale: false,
            do_normalize: false,
            patch_size: 2,
            merge_size: 2,
            temporal_patch_size: 2,
            ..QwenImageConfig::from_json(&serde_json::json!({})).unwrap()
        };
        let (w, h) = (8usize, 4usize);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[(y * w + x) as u8, 100, 200]);
            }
        }
        let p = cfg.preprocess(&Rgb8::new(w, h, data).unwrap()).unwrap();
        assert_eq!(p.grid, [1, 2, 4]);
        assert_eq!(p.patch_len, 3 * 2 * 4);
        assert_eq!(p.tokens(2), 2);
        // Patch order: block (0,0) = patches (0,0) (0,1) (1,0) (1,1), then block (0,1).
        let first_pixel = |i: usize| p.pixels[i * p.patch_len];
        let order: Vec<f32> = (0..8).map(first_pixel).collect();
        assert_eq!(order, [0.0, 2.0, 16.0, 18.0, 4.0, 6.0, 20.0, 22.0]);
        // Within a patch: red rows of frame 0, red rows of frame 1 (a copy), then green.
        let v = &p.pixels[..p.patch_len];
        assert_eq!(&v[..8], &[0.0, 1.0, 8.0, 9.0, 0.0, 1.0, 8.0, 9.0]);
        assert!(v[8..16].iter().all(|&g| g == 100.0));
    }

    #[test]
    fn config_keys() {
        let c = QwenImageConfig::from_json(&serde_json::json!({
            "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14,
            "size": {"shortest_edge": 1, "longest_edge": 2}
        }))
        .unwrap();
        assert_eq!(
            (c.min_pixels, c.max_pixels, c.factor()),
            (3136, 12_845_056, 28)
        );
        assert_eq!(c.filter, Filter::Bicubic);
        let e = QwenImageConfig::from_json(&serde_json::json!({"patch_size": -3}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("patch_size"), "{e}");
    }
}
