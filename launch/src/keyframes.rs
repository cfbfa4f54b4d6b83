//! `embodied-r keyframes`: the paper's key-frame selection over a video file, an image folder or
//! a rosbag2 MCAP topic. Prints the kept frame indices; with `--json`, one JSON object as the
//! last stdout line: `{"kept": [...], "frames": N, "fps": X, ...}` (a stable contract).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use embodied_r_perception::Frame;
use embodied_r_perception::keyframe::{Clamp, Downsample, SelectorConfig, select};
use embodied_r_perception::source::mcap::McapSource;
use embodied_r_perception::source::{CameraSource, FolderSource, SourceStats, VideoSource};
use serde::Serialize;

/// Arguments of `embodied-r keyframes`.
#[derive(Debug, Clone, Args)]
pub struct KeyframesArgs {
    /// A video file (read with ffmpeg), a folder of PNG/JPEG images (file-name order), or a
    /// rosbag2 `.mcap` file.
    #[arg(long)]
    pub input: PathBuf,
    /// Frame rate: overrides a video's own; for an image folder it defaults to 1 (each image is
    /// one second); a bag needs it unless `--no-downsample` is given.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Process every frame instead of downsampling to about 1 fps first.
    #[arg(long)]
    pub no_downsample: bool,
    /// Image topic of a bag (default: its only image topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Fewest key frames per video (fewer selections are replaced by an even sample).
    #[arg(long, default_value_t = 4)]
    pub min: usize,
    /// Most key frames per video (more are sampled down).
    #[arg(long, default_value_t = 32)]
    pub max: usize,
    /// Worker threads for feature extraction (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run the selection this many times on the decoded frames and report the median speed.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// What `keyframes --json` prints.
#[derive(Debug, Serialize)]
pub struct KeyframesReport {
    /// Kept frames, as indices into the input's frames.
    pub kept: Vec<u64>,
    /// Frames in the input (good and bad).
    pub frames: u64,
    /// Frames processed per second of selection work (median over repeats).
    pub fps: f64,
    /// Frames the selector processed (after downsampling).
    pub processed: usize,
    /// Kept input indices before the 4..32 clamp.
    pub selected: Vec<u64>,
    /// Frames skipped as undecodable.
    pub bad_frames: u64,
    /// Seconds of selection work per run.
    pub seconds: Vec<f64>,
    /// Frame rate used for downsampling, if any.
    pub input_fps: Option<f64>,
    /// Per processed frame: its input index and the decision with its reason and overlap.
    pub decisions: Vec<FrameDecision>,
}

/// One processed frame's decision.
#[derive(Debug, Serialize)]
pub struct FrameDecision {
    /// Input index.
    pub frame: u64,
    /// The decision.
    #[serde(flatten)]
    pub decision: embodied_r_perception::keyframe::Decision,
}

fn open_source(a: &KeyframesArgs) -> Result<Box<dyn CameraSource>> {
    let p: &Path = &a.input;
    if p.is_dir() {
        let fps = a.fps.unwrap_or(1.0);
        return Ok(Box::new(FolderSource::open(p, fps)?));
    }
    if !p.exists() {
        bail!("--input {}: no such file or folder", p.display());
    }
    if p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("mcap"))
    {
        return Ok(Box::new(McapSource::open(p, a.topic.as_deref())?));
    }
    Ok(Box::new(VideoSource::open(p, a.fps)?))
}

/// Runs the command and returns its report.
pub fn keyframes(a: &KeyframesArgs) -> Result<KeyframesReport> {
    if a.min < 2 || a.max < a.min {
        bail!("--min {} --max {}: need 2 <= min <= max", a.min, a.max);
    }
    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global()
            .context("setting the worker thread count")?;
    }
    let mut source = open_source(a)?;
    let input_fps = a.fps.or(source.fps());
    let fps = if a.no_downsample {
        None
    } else {
        Some(input_fps.with_context(|| {
            format!(
                "{} does not state a frame rate: pass --fps or --no-downsample",
                source.name()
            )
        })?)
    };
    // Decode first, so the timing below covers selection work only.
    let mut frames: Vec<Frame> = Vec::new();
    {
        let all = std::iter::from_fn(|| match source.next_frame() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        });
        match fps {
            Some(f) => frames.extend(Downsample::new(all, f)),
            None => frames.extend(all),
        }
    }
    let stats: SourceStats = source.stats();
    if frames.is_empty() {
        bail!("{}: no decodable frames", source.name());
    }
    let config = SelectorConfig::default();
    let clamp = Clamp {
        min: a.min,
        max: a.max,
    };
    let chunk = 4 * rayon::current_num_threads();
    let mut runs = Vec::new();
    let mut selection = None;
    for _ in 0..a.repeat.max(1) {
        let s = select(frames.iter().cloned(), &config, clamp, chunk);
        runs.push(s.seconds);
        selection = Some(s);
    }
    let s = selection.context("no selection run")?;
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let index = |pos: &usize| frames[*pos].seq;
    Ok(KeyframesReport {
        kept: s.kept.iter().map(index).collect(),
        frames: stats.frames + stats.bad,
        fps: frames.len() as f64 / median.max(1e-9),
        processed: frames.len(),
        selected: s.selected.iter().map(index).collect(),
        bad_frames: stats.bad,
        seconds: runs,
        input_fps,
        decisions: s
            .decisions
            .iter()
            .enumerate()
            .map(|(i, d)| FrameDecision {
                frame: frames[i].seq,
                decision: *d,
            })
            .collect(),
    })
}

/// `embodied-r keyframes`.
#[allow(clippy::print_stdout)]
pub fn run(a: &KeyframesArgs) -> Result<()> {
    let r = keyframes(a)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("input:      {}", a.input.display());
        println!(
            "frames:     {} ({} bad), {} processed",
            r.frames, r.bad_frames, r.processed
        );
        println!("selected:   {:?}", r.selected);
        println!("kept:       {:?}", r.kept);
        println!("speed:      {:.1} frames/s of selection work", r.fps);
    }
    Ok(())
}

/// Arguments of `embodied-r bench keyframes`.
#[derive(Debug, Clone, Args)]
pub struct KeyframesBenchArgs {
    /// Frames to select over (a folder of PNGs, a video or a bag); every frame is processed.
    #[arg(long)]
    pub input: PathBuf,
    /// Measured repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also run the reference recipe with OpenCV (tools/keyframes_opencv.py) on the same frames
    /// and report our speed as a ratio to it.
    #[arg(long)]
    pub vs_opencv: bool,
    /// Python interpreter with opencv-python-headless for `--vs-opencv`.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print the result as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// What `bench keyframes` measured.
#[derive(Debug, Serialize)]
pub struct KeyframesBenchReport {
    /// Frames processed per run.
    pub frames: usize,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Our median frames/s of selection work.
    pub fps: f64,
    /// OpenCV's median frames/s on the same frames, when measured.
    pub opencv_fps: Option<f64>,
    /// `fps / opencv_fps`.
    pub ratio: Option<f64>,
    /// Kept frames agree exactly with OpenCV's (when measured).
    pub same_kept: Option<bool>,
    /// Worker threads used.
    pub threads: usize,
}

/// `embodied-r bench keyframes`.
#[allow(clippy::print_stdout)]
pub fn bench(a: &KeyframesBenchArgs) -> Result<()> {
    let args = KeyframesArgs {
        input: a.input.clone(),
        fps: None,
        no_downsample: true,
        topic: None,
        min: 4,
        max: 32,
        threads: None,
        repeat: a.runs.max(1),
        json: true,
    };
    let ours = keyframes(&args)?;
    let (mut width, mut height) = (0, 0);
    if let Ok(mut s) = open_source(&args)
        && let Ok(Some(f)) = s.next_frame()
    {
        (width, height) = (f.width, f.height);
    }
    let (mut opencv_fps, mut same_kept) = (None, None);
    if a.vs_opencv {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/keyframes_opencv.py");
        let out = std::process::Command::new(&a.python)
            .arg(&script)
            .arg("--input")
            .arg(&a.input)
            .args(["--no-downsample", "--repeat", &a.runs.max(1).to_string()])
            .output()
            .with_context(|| format!("running {} {}", a.python, script.display()))?;
        if !out.status.success() {
            bail!(
                "the OpenCV anchor failed (is opencv-python-headless installed?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .last()
            .context("the OpenCV anchor printed nothing")?;
        let v: serde_json::Value =
            serde_json::from_str(last).context("the OpenCV anchor's last line is not JSON")?;
        opencv_fps = v["fps"].as_f64();
        same_kept = Some(v["kept"] == serde_json::json!(ours.kept));
    }
    let r = KeyframesBenchReport {
        frames: ours.processed,
        width,
        height,
        fps: ours.fps,
        ratio: opencv_fps.map(|o| ours.fps / o),
        opencv_fps,
        same_kept,
        threads: rayon::current_num_threads(),
    };
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} frames {}x{}: {:.1} frames/s of selection work ({} threads)",
            r.frames, r.width, r.height, r.fps, r.threads
        );
        if let (Some(o), Some(x)) = (r.opencv_fps, r.ratio) {
            println!(
                "OpenCV reference recipe: {o:.1} frames/s; ratio {x:.2}x; same kept frames: {:?}",
                r.same_kept
            );
        }
    }
    Ok(())
}
