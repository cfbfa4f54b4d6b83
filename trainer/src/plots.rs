//! PNG curves of a training run (`OUT/curves.png`), drawn from its `metrics.jsonl` so that a
//! resumed or interrupted run is plotted whole, and the general panel grid they are drawn with
//! ([`write_panels`], also used for the runtime's soak curves).
//!
//! Text goes through plotters' `ab_glyph` renderer, which needs a TrueType font file but no
//! system font library: the file named by `EMBODIED_R_FONT`, else the first of the usual
//! DejaVu/Liberation/Arial locations that exists ([`find_font`]).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::train::{Mode, StepMetrics};
use crate::{Result, TrainError};

/// Environment variable naming the TrueType font used for the plots' text.
pub const FONT_ENV: &str = "EMBODIED_R_FONT";

/// Where fonts usually are on Debian/Ubuntu (fonts-dejavu-core, fonts-liberation), Fedora,
/// Arch, macOS and Windows.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Image size of `curves.png`.
pub const SIZE: (u32, u32) = (1500, 1000);

/// The font file for the plots: `$EMBODIED_R_FONT` when set (it must exist), else the first
/// usual location that exists.
pub fn find_font() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(FONT_ENV) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(TrainError::Plot(format!(
            "{FONT_ENV}={}: no such font file (expected a TrueType .ttf)",
            p.display()
        )));
    }
    FONT_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            TrainError::Plot(format!(
                "no TrueType font for the plots' text: set {FONT_ENV}=/path/to/font.ttf or \
                 install fonts-dejavu-core (looked in {})",
                FONT_PATHS.join(", ")
            ))
        })
}

/// Registers the font with plotters once per process (plotters keeps `'static` font bytes, so
/// the first font read is kept for the process's life).
fn register_font(path: &Path) -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| {
                format!(
                    "{}: not a TrueType/OpenType font plotters can read",
                    path.display()
                )
            })
        })
        .clone()
        .map_err(TrainError::Plot)
}

/// Reads a run's `metrics.jsonl`. A torn last line (a run killed mid-write) is skipped with a
/// warning; damage before the last line is an error naming the line.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let f = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let lines: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|e| TrainError::io(path, e))?;
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<StepMetrics>(l) {
            Ok(m) => out.push(m),
            Err(e) if i + 1 == lines.len() => {
                tracing::warn!(path = %path.display(), line = i + 1, error = %e, "torn last metrics line skipped");
            }
            Err(e) => {
                return Err(TrainError::Data(format!(
                    "{} line {}: not a metrics record ({e})",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

type Series = (&'static str, fn(&StepMetrics) -> f64);

/// The panels: title and the series drawn in it.
const PANELS: &[(&str, &[Series])] = &[
    ("reward (weighted)", &[("reward", |m| m.reward)]),
    ("accuracy", &[("accuracy", |m| m.accuracy)]),
    ("format", &[("format", |m| m.format)]),
    ("consistency", &[("consistency", |m| m.consistency)]),
    ("KL to reference (per token)", &[("kl", |m| m.kl)]),
    (
        "completion length (tokens)",
        &[("length", |m| m.completion_len)],
    ),
    (
        "gradient norm (before clipping)",
        &[("norm", |m| m.grad_norm)],
    ),
    ("learning rate", &[("lr", |m| m.lr)]),
    (
        "throughput (tokens/s)",
        &[
            ("rollout", |m| m.rollout_tok_s),
            ("update", |m| m.update_tok_s),
        ],
    ),
];

/// The panels of a supervised run: it samples nothing, so there is no reward, KL or rollout.
const SFT_PANELS: &[(&str, &[Series])] = &[
    ("loss (per completion token)", &[("loss", |m| m.loss)]),
    (
        "gradient norm (before clipping)",
        &[("norm", |m| m.grad_norm)],
    ),
    ("learning rate", &[("lr", |m| m.lr)]),
    (
        "completion length (tokens)",
        &[("length", |m| m.completion_len)],
    ),
    (
        "update throughput (tokens/s)",
        &[("update", |m| m.update_tok_s)],
    ),
    ("step time (s)", &[("seconds", |m| m.seconds)]),
];

/// What the run optimised: as its metrics record it, or, for metrics written before the mode
/// was recorded, SFT when no step sampled a rollout (every GRPO step does).
pub fn run_mode(metrics: &[StepMetrics]) -> Mode {
    if let Some(mode) = metrics.iter().find_map(|m| m.mode) {
        return mode;
    }
    if metrics
        .iter()
        .all(|m| m.rollout_tok_s == 0.0 && m.reward == 0.0)
    {
        Mode::Sft
    } else {
        Mode::Grpo
    }
}

const COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];

/// Trailing mean over `w` points.
fn smooth(ys: &[f64], w: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(ys.len());
    let mut sum = 0.0;
    for (i, &y) in ys.iter().enumerate() {
        sum += y;
        if i >= w {
            sum -= ys[i - w];
        }
        out.push(sum / (i + 1).min(w) as f64);
    }
    out
}

/// An x-axis tick label: whole numbers (steps, seconds) without decimals.
fn x_tick(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        tick(v)
    }
}

/// A y-axis tick label with as many digits as its size needs.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e4 || (a < 1e-2 && v != 0.0) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws the run's curves — each metric raw (light) and as a trailing mean (bold) — into a
/// PNG at `path`. `font` is a TrueType file ([`find_font`]).
pub fn write_curves(metrics: &[StepMetrics], font: &Path, path: &Path) -> Result<()> {
    if metrics.is_empty() {
        return Err(TrainError::Plot(format!(
            "{}: no steps to plot (the metrics are empty)",
            path.display()
        )));
    }
    let first = metrics[0].step;
    let last = metrics[metrics.len() - 1].step;
    let (kind, table, grid) = match run_mode(metrics) {
        Mode::Grpo => ("GRPO", PANELS, (3, 3)),
        Mode::Sft => ("SFT", SFT_PANELS, (2, 3)),
    };
    let panels: Vec<Panel> = table
        .iter()
        .map(|(name, series)| Panel {
            title: name.to_string(),
            x_desc: "step".into(),
            series: series
                .iter()
                .map(|(label, f)| {
                    let points = metrics.iter().map(|m| (m.step as f64, f(m))).collect();
                    (label.to_string(), points)
                })
                .collect(),
        })
        .collect();
    // RL curves are noisy: a trailing mean over a tenth of the run, at least 5 steps.
    let window = (metrics.len() / 10).max(5);
    write_panels(
        &format!("{kind} run: steps {first}–{last}"),
        &panels,
        grid,
        Some(window),
        font,
        path,
    )
}

/// One chart of a figure: its title, the x axis's name, and its series (label, points in x
/// order).
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// The x axis's name.
    pub x_desc: String,
    /// Label and points of each line.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws `panels` on a `(rows, columns)` grid into a [`SIZE`] PNG at `path`, titled `title`.
/// With `smooth = Some(w)` each series is drawn raw (light) and as a `w`-point trailing mean
/// (bold); with `None`, raw and bold. Non-finite values are left out of the axis ranges.
pub fn write_panels(
    title: &str,
    panels: &[Panel],
    grid: (usize, usize),
    smooth_window: Option<usize>,
    font: &Path,
    path: &Path,
) -> Result<()> {
    if panels.is_empty()
        || panels
            .iter()
            .all(|p| p.series.iter().all(|s| s.1.is_empty()))
    {
        return Err(TrainError::Plot(format!(
            "{}: nothing to plot (no points)",
            path.display()
        )));
    }
    register_font(font)?;
    let (w, h) = SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let fail = |e: &dyn std::fmt::Display| TrainError::Plot(format!("{}: {e}", path.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let root = root
            .titled(title, ("sans-serif", 26))
            .map_err(|e| fail(&e))?;
        for (area, panel) in root.split_evenly(grid).iter().zip(panels) {
            let range = |vals: &mut dyn Iterator<Item = f64>| {
                let (lo, hi) = vals
                    .filter(|v| v.is_finite())
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                        (a.min(v), b.max(v))
                    });
                if lo > hi {
                    (0.0, 1.0)
                } else if hi - lo < 1e-12 {
                    (lo - 0.5 * lo.abs().max(1e-3), hi + 0.5 * hi.abs().max(1e-3))
                } else {
                    (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
                }
            };
            let points = || panel.series.iter().flat_map(|s| s.1.iter());
            let (x_lo, x_hi) = {
                let xs: Vec<f64> = points().map(|p| p.0).filter(|x| x.is_finite()).collect();
                let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if lo > hi {
                    (0.0, 1.0)
                } else if hi > lo {
                    (lo, hi)
                } else {
                    (lo, lo + 1.0)
                }
            };
            let (lo, hi) = range(&mut points().map(|p| p.1));
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(x_lo..x_hi, lo..hi)
                .map_err(|e| fail(&e))?;
            chart
                .configure_mesh()
                .x_desc(panel.x_desc.as_str())
                .label_style(("sans-serif", 12))
                .x_label_formatter(&|v| x_tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .draw()
                .map_err(|e| fail(&e))?;
            for (k, (label, pts)) in panel.series.iter().enumerate() {
                let colour = COLOURS[k % COLOURS.len()];
                let finite = pts.iter().copied().filter(|p| p.0.is_finite());
                let bold = match smooth_window {
                    Some(win) => {
                        chart
                            .draw_series(LineSeries::new(finite.clone(), colour.mix(0.3)))
                            .map_err(|e| fail(&e))?;
                        let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
                        let xs = pts.iter().map(|p| p.0);
                        xs.zip(smooth(&ys, win)).collect::<Vec<_>>()
                    }
                    None => finite.collect(),
                };
                let drawn = chart
                    .draw_series(LineSeries::new(bold, colour.stroke_width(2)))
                    .map_err(|e| fail(&e))?;
                if panel.series.len() > 1 {
                    let label = label.clone();
                    drawn.label(label).legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                }
            }
            if panel.series.len() > 1 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(|e| fail(&e))?;
            }
        }
        root.present().map_err(|e| fail(&e))?;
    }
    image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| TrainError::Plot(format!("{}: image buffer size", path.display())))?
        .save(path)
        .map_err(|e| TrainError::Plot(format!("{}: {e}", path.display())))
}

/// One record per step, in step order: a run resumed from an earlier checkpoint appends the
/// steps after it again, and the later record of a step wins.
pub fn latest_per_step(metrics: Vec<StepMetrics>) -> Vec<StepMetrics> {
    let mut by_step = std::collections::BTreeMap::new();
    for m in metrics {
        by_step.insert(m.step, m);
    }
    by_step.into_values().collect()
}

/// Plots `run/metrics.jsonl` into `run/curves.png` and returns the PNG's path.
pub fn plot_run(run: &Path) -> Result<PathBuf> {
    let metrics = latest_per_step(read_metrics(&run.join("metrics.jsonl"))?);
    let font = find_font()?;
    let out = run.join("curves.png");
    write_curves(&metrics, &font, &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u64) -> Vec<StepMetrics> {
        (1..=n)
            .map(|s| StepMetrics {
                step: s,
                reward: s as f64 / n as f64,
                accuracy: (s as f64 / 3.0).sin().abs(),
                format: 0.0,
                kl: 1e-4 * s as f64,
                completion_len: 60.0,
                lr: 1e-4,
                rollout_tok_s: 30.0 + s as f64,
                update_tok_s: 120.0,
                ..StepMetrics::default()
            })
            .collect()
    }

    #[test]
    fn tick_labels_fit_their_size() {
        assert_eq!(tick(0.0), "0.00");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(63.0), "63.0");
        assert_eq!(tick(120.0), "120");
        assert_eq!(tick(5e-4), "5.0e-4");
        assert_eq!(tick(2.5e5), "2.5e5");
    }

    #[test]
    fn panels_need_points_and_draw_each_series() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("panels.png");
        let font = find_font().expect("a font (install fonts-dejavu-core or set EMBODIED_R_FONT)");
        let e = write_panels("t", &[], (1, 1), None, &font, &p).unwrap_err();
        assert!(e.to_string().contains("nothing to plot"), "{e}");
        let line = |k: f64| {
            (0..60)
                .map(|i| (i as f64, k * i as f64))
                .collect::<Vec<_>>()
        };
        let panels = [
            Panel {
                title: "memory".into(),
                x_desc: "s".into(),
                series: vec![("rss".into(), line(2.0))],
            },
            Panel {
                title: "counts".into(),
                x_desc: "s".into(),
                series: vec![("a".into(), line(1.0)), ("b".into(), vec![(0.0, f64::NAN)])],
            },
        ];
        write_panels("soak", &panels, (1, 2), None, &font, &p).expect("plot");
        let img = image::open(&p).expect("png").to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        let blue = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
        assert!(
            blue > 200,
            "the first series of each panel is drawn: {blue} pixels"
        );
        assert_eq!(x_tick(30.0), "30");
        assert_eq!(x_tick(2.5), "2.50");
    }

    #[test]
    fn a_resumed_run_is_plotted_once_per_step() {
        let mut m = run(5);
        let mut again = run(5)[2..].to_vec();
        again[0].reward = 9.0;
        m.extend(again);
        let m = latest_per_step(m);
        assert_eq!(
            m.iter().map(|x| x.step).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(m[2].reward, 9.0);
    }

    #[test]
    fn smoothing_is_a_trailing_mean() {
        assert_eq!(smooth(&[1.0, 3.0, 5.0, 7.0], 2), vec![1.0, 2.0, 4.0, 6.0]);
        assert_eq!(smooth(&[2.0], 5), vec![2.0]);
    }

    #[test]
    fn curves_are_drawn_into_a_png_of_the_stated_size() {
        // The machines this project builds on carry DejaVu (fonts-dejavu-core, installed by CI).
        let font = find_font().expect("a font (install fonts-dejavu-core or set EMBODIED_R_FONT)");
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("curves.png");
        write_curves(&run(40), &font, &p).expect("plot");
        let img = image::open(&p).expect("png").to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        // Each of the nine panels holds drawing (axes, text, curves), not only background.
        let (w, h) = SIZE;
        for r in 0..3 {
            for c in 0..3 {
                let dark = (0..h / 3)
                    .flat_map(|y| (0..w / 3).map(move |x| (x, y)))
                    .filter(|&(x, y)| {
                        let px = img.get_pixel(c * w / 3 + x, r * h / 3 + y);
                        px.0.iter().map(|&v| u32::from(v)).sum::<u32>() < 300
                    })
                    .count();
                assert!(
                    dark > 500,
                    "panel ({r},{c}) is nearly empty: {dark} dark pixels"
                );
            }
        }
        // The throughput panel has two coloured series (blue and red).
        let red = img.pixels().filter(|p| p.0 == [214, 39, 40]).count();
        assert!(red > 50, "no red (update throughput) curve: {red} pixels");
    }

    #[test]
    fn a_supervised_run_is_drawn_with_its_loss() {
        let sft: Vec<StepMetrics> = (1..=30)
            .map(|s| StepMetrics {
                step: s,
                loss: 2.0 / s as f64,
                grad_norm: 1.0,
                lr: 1e-4,
                completion_len: 60.0,
                updates: 1,
                update_tok_s: 120.0,
                seconds: 40.0,
                mode: Some(Mode::Sft),
                ..StepMetrics::default()
            })
            .collect();
        assert_eq!(run_mode(&sft), Mode::Sft);
        assert_eq!(run_mode(&run(5)), Mode::Grpo);
        // Metrics from before the mode was recorded: no rollouts means SFT.
        let old: Vec<StepMetrics> = sft
            .iter()
            .map(|m| StepMetrics {
                mode: None,
                ..m.clone()
            })
            .collect();
        assert_eq!(run_mode(&old), Mode::Sft);
        let font = find_font().expect("a font (install fonts-dejavu-core or set EMBODIED_R_FONT)");
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("curves.png");
        write_curves(&sft, &font, &p).expect("plot");
        let img = image::open(&p).expect("png").to_rgb8();
        // Six panels on a 2 × 3 grid, each drawn.
        let (w, h) = SIZE;
        for r in 0..2 {
            for c in 0..3 {
                let blue = (0..h / 2)
                    .flat_map(|y| (0..w / 3).map(move |x| (x, y)))
                    .filter(|&(x, y)| {
                        img.get_pixel(c * w / 3 + x, r * h / 2 + y).0 == [31, 119, 180]
                    })
                    .count();
                assert!(
                    blue > 50,
                    "panel ({r},{c}) has no curve: {blue} blue pixels"
                );
            }
        }
    }

    #[test]
    fn empty_metrics_and_missing_fonts_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("curves.png");
        let e = write_curves(&[], Path::new("/nonexistent.ttf"), &p).unwrap_err();
        assert!(e.to_string().contains("no steps"), "{e}");
        assert!(!p.exists());
    }

    #[test]
    fn metrics_with_a_torn_tail_are_read_and_damage_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("metrics.jsonl");
        let good: Vec<String> = run(3)
            .iter()
            .map(|m| serde_json::to_string(m).expect("json"))
            .collect();
        std::fs::write(&p, format!("{}\n{}\n{{\"step\":3,\"rew", good[0], good[1])).expect("write");
        let m = read_metrics(&p).expect("torn tail skipped");
        assert_eq!(m.len(), 2);
        std::fs::write(&p, format!("{}\nnot json\n{}\n", good[0], good[2])).expect("write");
        let e = read_metrics(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
