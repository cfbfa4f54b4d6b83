//! Image preprocessing and image-token layout of the Idefics3 family (Idefics3, SmolVLM,
//! SmolVLM2), as transformers' PIL image processor and the model's processor do them:
//!
//! 1. resize so the longest edge is `size.longest_edge` (up or down, the other edge kept in
//!    proportion and rounded up to even), capped at 4096;
//! 2. with image splitting: resize again so both edges are multiples of
//!    `max_image_size.longest_edge`, cut that into square tiles row by row, and append the whole
//!    image resized to one tile (the "global image"); without: resize to one tile;
//! 3. rescale to [0, 1] and normalise with the configured mean and standard deviation.
//!
//! In the prompt every `<image>` becomes, per tile, `<fake_token_around_image><row_r_col_c>`
//! followed by `image_seq_len` `<image>` tokens (a newline after each row of tiles), then
//! `\n<fake_token_around_image><global-img>`, the global image's tokens and a closing
//! `<fake_token_around_image>`.

use serde_json::Value;

use super::resize::{Filter, Rgb8};
use crate::error::{Error, Result};

/// Pillow's resize caps both edges at this (transformers' `MAX_IMAGE_SIZE`).
const MAX_IMAGE_SIZE: usize = 4096;

/// The image processor settings of an Idefics3-family folder (`preprocessor_config.json`, or
/// the `image_processor` object of `processor_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3ImageConfig {
    /// Resize the longest edge to `longest_edge` first.
    pub do_resize: bool,
    /// Target of the first resize.
    pub longest_edge: usize,
    /// Tile edge (the vision encoder's input size).
    pub tile: usize,
    /// Split into tiles plus a global image.
    pub do_image_splitting: bool,
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

pub(crate) fn get_bool(v: &Value, key: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::Config(format!(
            "image processor `{key}` is {other}; expected true or false"
        ))),
    }
}

pub(crate) fn get_triple(v: &Value, key: &str, default: [f32; 3]) -> Result<[f32; 3]> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(f64::NAN) as f32; 3]),
        Some(Value::Array(a)) if a.len() == 3 && a.iter().all(|x| x.is_number()) => {
            let f = |i: usize| a[i].as_f64().unwrap_or(f64::NAN) as f32;
            Ok([f(0), f(1), f(2)])
        }
        Some(other) => Err(Error::Config(format!(
            "image processor `{key}` is {other}; expected a number or three numbers"
        ))),
    }
}

/// The resampling filter, rescale factor and standard deviation every image processor names
/// the same way (with this processor's default filter and standard deviation).
pub(crate) fn filter_rescale_std(
    v: &Value,
    default_filter: Filter,
    default_std: [f32; 3],
) -> Result<(Filter, f64, [f32; 3])> {
    let filter = match v.get("resample") {
        None | Some(Value::Null) => default_filter,
        Some(r) => Filter::from_pil(r.as_i64().ok_or_else(|| {
            Error::Config(format!(
                "image processor `resample` is {r}; expected a PIL filter number"
            ))
        })?)?,
    };
    let rescale_factor = match v.get("rescale_factor") {
        None | Some(Value::Null) => 1.0 / 255.0,
        Some(r) => r.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
            Error::Config(format!(
                "image processor `rescale_factor` is {r}; expected a number"
            ))
        })?,
    };
    let std = get_triple(v, "image_std", default_std)?;
    if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
        return Err(Error::Config(format!(
            "image processor `image_std` is {std:?}; every entry must be a non-zero number"
        )));
    }
    Ok((filter, rescale_factor, std))
}

/// One 8-bit channel value rescaled (in f64, then f32, as transformers does) and normalised.
pub(crate) fn normalise(
    v: u8,
    rescale: Option<f64>,
    norm: Option<([f32; 3], [f32; 3])>,
    ch: usize,
) -> f32 {
    let mut x = match rescale {
        Some(f) => (f64::from(v) * f) as f32,
        None => f32::from(v),
    };
    if let Some((mean, std)) = norm {
        x = (x - mean[ch]) / std[ch];
    }
    x
}

fn get_edge(v: &Value, key: &str, default: usize) -> Result<usize> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(obj) => {
            let n = obj
                .get("longest_edge")
                .or_else(|| obj.get("height"))
                .and_then(|x| x.as_u64())
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "image processor `{key}` is {obj}; expected {{\"longest_edge\": N}} with N > 0"
                    ))
                })?;
            Ok(n as usize)
        }
    }
}

impl Idefics3ImageConfig {
    /// Reads the settings from an image-processor JSON object; absent keys take
    /// transformers' defaults for this processor.
    pub fn from_json(v: &Value) -> Result<Self> {
        let (filter, rescale_factor, std) = filter_rescale_std(v, Filter::Lanczos, [0.5; 3])?;
        let longest_edge = get_edge(v, "size", 4 * 364)?;
        let tile = get_edge(v, "max_image_size", 364)?;
        // transformers caps resized edges at MAX_IMAGE_SIZE; a larger claim is a broken (or
        // hostile) file that would make us allocate gigabytes per image.
        for (key, n) in [("size", longest_edge), ("max_image_size", tile)] {
            if n > MAX_IMAGE_SIZE {
                return Err(Error::Config(format!(
                    "image processor `{key}` is {n} pixels; at most {MAX_IMAGE_SIZE} \
                     (transformers' MAX_IMAGE_SIZE)"
                )));
            }
        }
        Ok(Idefics3ImageConfig {
            do_resize: get_bool(v, "do_resize", true)?,
            longest_edge,
            tile,
            do_image_splitting: get_bool(v, "do_image_splitting", true)?,
            filter,
            do_rescale: get_bool(v, "do_rescale", true)?,
            rescale_factor,
            do_normalize: get_bool(v, "do_normalize", true)?,
            mean: get_triple(v, "image_mean", [0.5; 3])?,
            std,
        })
    }
}

/// One image ready for the vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiles {
    /// `count × 3 × size × size` normalised values, channel-first, tiles in prompt order
    /// (row by row, then the global image).
    pub pixels: Vec<f32>,
    /// Number of tiles (including the global image).
    pub count: usize,
    /// Tile edge in pixels.
    pub size: usize,
    /// Tile rows (0 when the image was not split).
    pub rows: usize,
    /// Tile columns (0 when the image was not split).
    pub cols: usize,
}

/// `_resize_output_size_rescale_to_max_len` then `…_scale_below_upper_bound`.
fn longest_edge_size(height: usize, width: usize, max_len: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w) = if width >= height {
        let w = max_len;
        let mut h = (w as f64 / aspect) as usize;
        if !h.is_multiple_of(2) {
            h += 1;
        }
        (h, w)
    } else {
        let h = max_len;
        let mut w = (h as f64 * aspect) as usize;
        if !w.is_multiple_of(2) {
            w += 1;
        }
        (h, w)
    };
    h = h.max(1);
    w = w.max(1);
    let aspect = w as f64 / h as f64;
    if w >= h && w > MAX_IMAGE_SIZE {
        w = MAX_IMAGE_SIZE;
        h = (w as f64 / aspect) as usize;
    } else if h > w && h > MAX_IMAGE_SIZE {
        h = MAX_IMAGE_SIZE;
        w = (h as f64 * aspect) as usize;
    }
    (h.max(1), w.max(1))
}

/// `resize_for_vision_encoder`: both edges up to multiples of `tile`, aspect kept.
fn tile_multiple_size(height: usize, width: usize, tile: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let up = |x: f64| ((x / tile as f64).ceil() as usize) * tile;
    if width >= height {
        let w = up(width as f64);
        let h = (w as f64 / aspect) as usize;
        (up(h as f64), w)
    } else {
        let h = up(height as f64);
        let w = (h as f64 * aspect) as usize;
        (h, up(w as f64))
    }
}

impl Idefics3ImageConfig {
    /// Preprocesses one RGB image.
    pub fn preprocess(&self, image: &Rgb8) -> Tiles {
        let mut img = image.clone();
        if self.do_resize {
            let (h, w) = longest_edge_size(img.height, img.width, self.longest_edge);
            img = img.resize(w, h, self.filter);
        }
        let t = self.tile;
        let (parts, rows, cols) = if self.do_image_splitting {
            let (h, w) = tile_multiple_size(img.height, img.width, t);
            img = img.resize(w, h, self.filter);
            if img.height > t || img.width > t {
                let rows = (img.height - t) / t + 1;
                let cols = (img.width - t) / t + 1;
                let mut parts = Vec::with_capacity(rows * cols + 1);
                for r in 0..rows {
                    for c in 0..cols {
                        parts.push(img.crop(c * t, r * t, t, t));
                    }
                }
                parts.push(img.resize(t, t, self.filter));
                (parts, rows, cols)
            } else {
                (vec![img], 0, 0)
            }
        } else {
            (vec![img.resize(t, t, self.filter)], 0, 0)
        };
        let count = parts.len();
        let rescale = self.do_rescale.then_some(self.rescale_factor);
        let norm = self.do_normalize.then_some((self.mean, self.std));
        let mut pixels = Vec::with_capacity(count * 3 * t * t);
        for p in &parts {
            for ch in 0..3 {
                pixels.extend(
                    p.data
                        .iter()
                        .skip(ch)
                        .step_by(3)
                        .map(|&v| normalise(v, rescale, norm, ch)),
                );
            }
        }
        Tiles {
            pixels,
            count,
            size: t,
            rows,
            cols,
        }
    }
}

/// The special-token strings of the image layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTokens {
    /// One image position (`<image>`).
    pub image: String,
    /// Around each tile (`<fake_token_around_image>`).
    pub fake_around: String,
    /// Before the global image (`<global-img>`).
    pub global: String,
}

impl Default for ImageTokens {
    fn default() -> Self {
        ImageTokens {
            image: "<image>".into(),
            fake_around: "<fake_token_around_image>".into(),
            global: "<global-img>".into(),
        }
    }
}

impl ImageTokens {
    /// The text that replaces one `<image>` of the prompt for an image cut into `rows × cols`
    /// tiles (0 × 0: not split), with `seq_len` image tokens per tile.
    pub fn expand(&self, rows: usize, cols: usize, seq_len: usize) -> String {
        let run = self.image.repeat(seq_len);
        let mut s = String::new();
        if rows == 0 && cols == 0 {
            s.push_str(&self.fake_around);
            s.push_str(&self.global);
            s.push_str(&run);
            s.push_str(&self.fake_around);
            return s;
        }
        for r in 1..=rows {
            for c in 1..=cols {
                s.push_str(&self.fake_around);
                s.push_str(&format!("<row_{r}_col_{c}>"));
                s.push_str(&run);
            }
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.fake_around);
        s.push_str(&self.global);
        s.push_str(&run);
        s.push_str(&self.fake_around);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_past_transformers_cap_are_refused_by_name() {
        let ok = serde_json::json!({"size": {"longest_edge": 1456}, "max_image_size": {"longest_edge": 364}});
        assert!(Idefics3ImageConfig::from_json(&ok).is_ok());
        for (key, v) in [
            ("size", serde_json::json!({"size": {"longest_edge": 4097}})),
            (
                "max_image_size",
                serde_json::json!({"max_image_size": {"longest_edge": 1_000_000_000u64}}),
            ),
        ] {
            let e = Idefics3ImageConfig::from_json(&v).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("4096"), "{e}");
        }
    }

    #[test]
    fn sizes_follow_transformers() {
        // 45×30 with longest edge 64: 64×42 (even), then multiples of 32: 64×64.
        assert_eq!(longest_edge_size(30, 45, 64), (42, 64));
        assert_eq!(tile_multiple_size(42, 64, 32), (64, 64));
        // 26×70 portrait: 64 tall, 23.77 → 23 → 24 wide; then 64×32.
        assert_eq!(longest_edge_size(70, 26, 64), (64, 24));
        assert_eq!(tile_multiple_size(64, 24, 32), (64, 32));
        // A 640×480 camera frame for SmolVLM (2048 / 512): 1536×2048, 3×4 tiles.
        assert_eq!(longest_edge_size(480, 640, 2048), (1536, 2048));
        assert_eq!(tile_multiple_size(1536, 2048, 512), (1536, 2048));
        // Huge aspect ratios stay within 4096.
        let (h, w) = longest_edge_size(10, 5000, 8000);
        assert!(w <= MAX_IMAGE_SIZE && h >= 1, "{h}x{w}");
    }

    #[test]
    fn expansion_layout() {
        let t = ImageTokens::default();
        assert_eq!(
            t.expand(0, 0, 2),
            "<fake_token_around_image><global-img><image><image><fake_token_around_image>"
        );
        let s = t.expand(2, 1, 1);
        assert_eq!(
            s,
            "<fake_token_around_image><row_1_col_1><image>\n\
             <fake_token_around_image><row_2_col_1><image>\n\
             \n<fake_token_around_image><global-img><image><fake_token_around_image>"
        );
    }

    #[test]
    fn config_defaults_and_errors() {
        let c = Idefics3ImageConfig::from_json(&serde_json::json!({})).unwrap();
        assert_eq!(
            (c.longest_edge, c.tile, c.filter),
            (1456, 364, Filter::Lanczos)
        );
        let e = Idefics3ImageConfig::from_json(&serde_json::json!({"size": {"width": 3}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`size`") && e.contains("longest_edge"), "{e}");
        let e = Idefics3ImageConfig::from_json(&serde_json::json!({"image_std": [1, 0, 1]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-zero"), "{e}");
    }
}
