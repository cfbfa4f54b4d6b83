//! Contact sheets: a grid of frames of one video with the ground-truth boxes drawn, for people
//! who would rather look than read.

use crate::dataset::{GenerateConfig, SimError, run_video, write_png};
use crate::math::hash32;
use crate::scene::{Scene, SceneKind};
use crate::truth::seen;
use std::path::Path;

/// Parses a scene name such as `city_0003` or `indoor_12` into its kind and index.
pub fn parse_scene_name(name: &str) -> Result<(SceneKind, u32), SimError> {
    let bad = || SimError::Setting {
        name: "scene",
        value: name.to_string(),
        expected: "a scene name such as city_0003 or indoor_0012",
    };
    let (kind, idx) = name.rsplit_once('_').ok_or_else(bad)?;
    let kind = match kind {
        "city" => SceneKind::City,
        "indoor" => SceneKind::Indoor,
        _ => return Err(bad()),
    };
    let idx = idx.parse::<u32>().map_err(|_| bad())?;
    Ok((kind, idx))
}

/// Renders video `video` of `scene` and writes a sheet of `count` evenly spaced frames,
/// `cols` per row, each `cfg.camera` sized, with boxes around recognisable objects and the frame
/// number in the corner. Returns the sheet's size.
pub fn contact_sheet(
    scene: Scene,
    cfg: &GenerateConfig,
    video: u32,
    count: usize,
    cols: usize,
    out: &Path,
) -> Result<(u32, u32), SimError> {
    cfg.validate()?;
    if count == 0 || cols == 0 {
        return Err(SimError::Setting {
            name: "frames/cols",
            value: format!("{count}/{cols}"),
            expected: "at least one frame and one column",
        });
    }
    let frames = std::sync::Mutex::new(Vec::new());
    let run = run_video(scene, cfg, video, |i, img| {
        if let Ok(mut f) = frames.lock() {
            f.push((i, img.rgb.clone()));
        }
        Ok(())
    })?;
    let mut frames = frames.into_inner().unwrap_or_default();
    frames.sort_by_key(|(i, _)| *i);
    let n = run.frames.len();
    let picks: Vec<usize> = (0..count.min(n))
        .map(|k| {
            if count.min(n) == 1 {
                0
            } else {
                k * (n - 1) / (count.min(n) - 1)
            }
        })
        .collect();
    let (w, h) = (cfg.camera.width as usize, cfg.camera.height as usize);
    let rows = picks.len().div_ceil(cols);
    let gap = 4;
    let sw = cols * w + (cols + 1) * gap;
    let sh = rows * h + (rows + 1) * gap;
    let mut sheet = vec![255u8; sw * sh * 3];
    let px = (w * h) as u32;
    for (slot, &fi) in picks.iter().enumerate() {
        let (ox, oy) = (
            gap + (slot % cols) * (w + gap),
            gap + (slot / cols) * (h + gap),
        );
        let rgb = &frames[fi].1;
        for y in 0..h {
            let src = &rgb[y * w * 3..(y + 1) * w * 3];
            let dst = ((oy + y) * sw + ox) * 3;
            sheet[dst..dst + w * 3].copy_from_slice(src);
        }
        for v in run.frames[fi].visible.iter().filter(|v| seen(v, px)) {
            let c = hash32(u32::from(v.id).wrapping_mul(0x9e37_79b9));
            let color = [
                (c >> 16) as u8 | 0x40,
                (c >> 8) as u8 | 0x40,
                c as u8 | 0x40,
            ];
            let [x0, y0, x1, y1] = v.bbox.map(|t| t as usize);
            rect(&mut sheet, sw, ox + x0, oy + y0, ox + x1, oy + y1, color);
        }
        number(&mut sheet, sw, ox + 4, oy + 4, fi, 3);
    }
    write_png(out, sw as u32, sh as u32, &sheet)?;
    Ok((sw as u32, sh as u32))
}

fn put(img: &mut [u8], sw: usize, x: usize, y: usize, c: [u8; 3]) {
    let i = (y * sw + x) * 3;
    if i + 2 < img.len() {
        img[i..i + 3].copy_from_slice(&c);
    }
}

fn rect(img: &mut [u8], sw: usize, x0: usize, y0: usize, x1: usize, y1: usize, c: [u8; 3]) {
    for t in 0..2 {
        for x in x0..=x1 {
            put(img, sw, x, y0 + t, c);
            put(img, sw, x, y1.saturating_sub(t), c);
        }
        for y in y0..=y1 {
            put(img, sw, x0 + t, y, c);
            put(img, sw, x1.saturating_sub(t), y, c);
        }
    }
}

/// 3×5 digits, one row per u8 (bits 2..0 left to right).
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

fn number(img: &mut [u8], sw: usize, x: usize, y: usize, n: usize, scale: usize) {
    let text = n.to_string();
    let (cw, ch) = (text.len() * 4 * scale + scale, 7 * scale);
    for yy in 0..ch {
        for xx in 0..cw {
            put(img, sw, x + xx, y + yy, [0, 0, 0]);
        }
    }
    for (k, d) in text.bytes().enumerate() {
        let glyph = DIGITS[usize::from(d - b'0')];
        for (r, bits) in glyph.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for sy in 0..scale {
                        for sx in 0..scale {
                            put(
                                img,
                                sw,
                                x + scale + (k * 4 + col) * scale + sx,
                                y + scale + r * scale + sy,
                                [255, 255, 255],
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_names_parse() {
        assert_eq!(parse_scene_name("city_0003").unwrap(), (SceneKind::City, 3));
        assert_eq!(
            parse_scene_name("indoor_12").unwrap(),
            (SceneKind::Indoor, 12)
        );
        let e = parse_scene_name("garden_1").unwrap_err().to_string();
        assert!(e.contains("garden_1") && e.contains("city_0003"), "{e}");
        assert!(parse_scene_name("city_x").is_err());
    }
}
