//! The benchmark generator: scenes → trajectories → rendered frames, ground truth and questions,
//! written as an Embodied-R data directory.
//!
//! Layout of `out/`:
//! - `train_data.json`, `val_data.json`, `test_data.json`: Embodied-R rows (`Question_id`,
//!   `video_id`, `question_category`, `question`, `answer`, `scene_name`), split by scene with the
//!   seed (75 / 5 / 20 %, as the reference's ratios; at least one scene per split from 3 scenes).
//! - `videos/<video_id>/frame_<NNNN>.png` (and `videos/<video_id>.mp4` when ffmpeg is installed).
//! - `ground_truth/<video_id>.json`: a [`VideoTruth`] per video.
//! - `benchmark.json`: the settings, counts per category and split, and letter balance.

use crate::qa::{self, Context, LetterBalancer, Question};
use crate::render::{Camera, render};
use crate::scene::{Scene, SceneKind};
use crate::trajectory::plan;
use crate::truth::{FORMAT, FrameTruth, Intrinsics, VideoTruth, frame_truth};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file or directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PNG could not be encoded.
    #[error("{path}: cannot encode image: {source}")]
    Image {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: image::ImageError,
    },
    /// A JSON file could not be written or parsed.
    #[error("{path}: {source}")]
    Json {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Settings out of range.
    #[error("invalid setting {name} = {value}: expected {expected}")]
    Setting {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// ffmpeg was found but failed.
    #[error("ffmpeg failed for {video}: {message}")]
    Ffmpeg {
        /// Video id.
        video: String,
        /// What it said.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether to also write MP4 files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mp4 {
    /// When `ffmpeg` is on the PATH.
    Auto,
    /// Never.
    Never,
}

/// Settings of a benchmark generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// Kinds of scene.
    pub kinds: Vec<SceneKind>,
    /// Scenes per kind.
    pub scenes: u32,
    /// Master seed.
    pub seed: u64,
    /// Videos (trajectories) per scene.
    pub videos_per_scene: u32,
    /// Actions per trajectory.
    pub actions: u32,
    /// Rendered frames per action.
    pub frames_per_action: u32,
    /// Frame rate written into timestamps and MP4s.
    pub fps: f64,
    /// Camera.
    pub camera: Camera,
    /// MP4 output.
    pub mp4: Mp4,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            kinds: vec![SceneKind::City, SceneKind::Indoor],
            scenes: 10,
            seed: 0,
            videos_per_scene: 2,
            actions: 10,
            frames_per_action: 4,
            fps: 4.0,
            camera: Camera::default(),
            mp4: Mp4::Auto,
        }
    }
}

impl GenerateConfig {
    /// Checks ranges; the error names the setting and what is accepted.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |name, value: String, expected| {
            Err(SimError::Setting {
                name,
                value,
                expected,
            })
        };
        if self.kinds.is_empty() {
            return bad("kinds", "[]".into(), "city, indoor or both");
        }
        if self.scenes == 0 || self.scenes > 100_000 {
            return bad("scenes", self.scenes.to_string(), "1..=100000");
        }
        if self.videos_per_scene == 0 || self.videos_per_scene > 100 {
            return bad(
                "videos_per_scene",
                self.videos_per_scene.to_string(),
                "1..=100",
            );
        }
        if !(2..=200).contains(&self.actions) {
            return bad("actions", self.actions.to_string(), "2..=200");
        }
        if !(1..=60).contains(&self.frames_per_action) {
            return bad(
                "frames_per_action",
                self.frames_per_action.to_string(),
                "1..=60",
            );
        }
        if !(self.fps > 0.0 && self.fps <= 240.0) {
            return bad("fps", self.fps.to_string(), "a frame rate in (0, 240]");
        }
        let c = &self.camera;
        if !(16..=8192).contains(&c.width) || !(16..=8192).contains(&c.height) {
            return bad(
                "resolution",
                format!("{}x{}", c.width, c.height),
                "16..=8192 pixels per side",
            );
        }
        if !(c.hfov_deg >= 20.0 && c.hfov_deg <= 150.0) {
            return bad("hfov_deg", c.hfov_deg.to_string(), "20..=150 degrees");
        }
        Ok(())
    }
}

/// One Embodied-R data row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Unique question id.
    #[serde(rename = "Question_id")]
    pub question_id: u64,
    /// Video id (the folder under `videos/`).
    pub video_id: String,
    /// Category.
    pub question_category: String,
    /// "Question: …\nChoices:\nA. …".
    pub question: String,
    /// Letter or number.
    pub answer: String,
    /// Scene (split key).
    pub scene_name: String,
}

impl From<&Question> for Row {
    fn from(q: &Question) -> Self {
        Self {
            question_id: q.question_id,
            video_id: q.video_id.clone(),
            question_category: q.category.clone(),
            question: q.embodied_r_text(),
            answer: q.answer.clone(),
            scene_name: q.scene_name.clone(),
        }
    }
}

/// What a generation produced: the content of `benchmark.json`. It holds nothing that varies
/// between two runs with one seed (no wall-clock figures), so the whole output directory is
/// byte-identical for one seed and can be hashed and cached by the tools that use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Settings.
    pub config: GenerateConfig,
    /// Videos written.
    pub videos: usize,
    /// Frames rendered.
    pub frames: usize,
    /// Questions written.
    pub questions: usize,
    /// Questions per category.
    pub categories: BTreeMap<String, usize>,
    /// How often each letter is correct, keyed by the number of options.
    pub letters: BTreeMap<usize, Vec<u64>>,
    /// Scenes per split.
    pub split_scenes: BTreeMap<String, Vec<String>>,
    /// Questions per split.
    pub split_questions: BTreeMap<String, usize>,
    /// Whether MP4s were written.
    pub mp4: bool,
}

/// A generation's [`Summary`] and how long it took (reported to the caller, never written into
/// the benchmark).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// What was written.
    #[serde(flatten)]
    pub summary: Summary,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Rendered (and encoded) frames per second.
    pub frames_per_second: f64,
}

/// Progress report for a caller's progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Videos finished.
    pub done: usize,
    /// Videos in total.
    pub total: usize,
    /// Questions so far.
    pub questions: usize,
}

/// One rendered video, with its truth.
pub struct VideoRun {
    /// The scene.
    pub scene: Scene,
    /// Per-frame truth.
    pub frames: Vec<FrameTruth>,
    /// The trajectory.
    pub trajectory: crate::trajectory::Trajectory,
    /// Video id.
    pub video_id: String,
}

/// Seed of video `v` of a scene.
fn video_seed(seed: u64, scene: &Scene, v: u32) -> u64 {
    seed ^ scene.seed.rotate_left(7) ^ (u64::from(v) + 1).wrapping_mul(0xa076_1d64_78bd_642f)
}

/// Plans and renders one video; `write` receives each frame's index and render (for PNGs).
pub fn run_video<F>(
    scene: Scene,
    cfg: &GenerateConfig,
    v: u32,
    write: F,
) -> Result<VideoRun, SimError>
where
    F: Fn(usize, &crate::render::Render) -> Result<(), SimError> + Sync,
{
    let traj = plan(
        &scene,
        video_seed(cfg.seed, &scene, v),
        cfg.actions as usize,
        cfg.frames_per_action as usize,
    );
    let mut action_of = vec![None; traj.poses.len()];
    for s in &traj.steps {
        for slot in action_of
            .iter_mut()
            .take(s.end_frame + 1)
            .skip(s.start_frame + 1)
        {
            *slot = Some(s.action);
        }
    }
    let frames = traj
        .poses
        .par_iter()
        .enumerate()
        .map(|(i, pose)| {
            let img = render(&scene, &cfg.camera, pose);
            write(i, &img)?;
            Ok(frame_truth(
                &scene,
                pose,
                &img,
                i,
                i as f64 / cfg.fps,
                action_of[i],
            ))
        })
        .collect::<Result<Vec<_>, SimError>>()?;
    let video_id = format!("{}_v{v}", scene.name);
    Ok(VideoRun {
        scene,
        frames,
        trajectory: traj,
        video_id,
    })
}

/// Writes rgb8 pixels as a PNG (fast compression).
pub fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), SimError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let file = std::fs::File::create(path).map_err(io(path))?;
    let w = std::io::BufWriter::new(file);
    PngEncoder::new_with_quality(w, CompressionType::Fast, FilterType::Adaptive)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|source| SimError::Image {
            path: path.to_path_buf(),
            source,
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SimError> {
    let tmp = path.with_extension("json.tmp");
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, value).map_err(|source| SimError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    use std::io::Write;
    w.flush().map_err(io(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Splits scene names into train / val / test with the seed: 75 / 5 / 20 %, each split non-empty
/// once there are three scenes.
pub fn split_scenes(names: &[String], seed: u64) -> [Vec<String>; 3] {
    let mut names = names.to_vec();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5851_f42d_4c95_7f2d);
    for i in (1..names.len()).rev() {
        let j = rand::Rng::random_range(&mut rng, 0..=i as u64) as usize;
        names.swap(i, j);
    }
    let s = names.len();
    let mut val = s * 5 / 100;
    let mut test = s - s * 75 / 100 - val;
    if s >= 3 {
        val = val.max(1);
        test = test.max(1);
    }
    let train = s - val - test;
    let test_v = names.split_off(train + val);
    let val_v = names.split_off(train);
    [names, val_v, test_v]
}

fn ffmpeg_available() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn write_mp4(dir: &Path, video_id: &str, fps: f64) -> Result<(), SimError> {
    let out = dir.with_extension("mp4");
    let res = std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-framerate"])
        .arg(fps.to_string())
        .arg("-i")
        .arg(dir.join("frame_%04d.png"))
        // One encoder thread: x264's output depends on its thread count (which ffmpeg would
        // choose from the machine's cores); bit-exact muxing leaves out the version strings.
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-threads", "1"])
        .args([
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-map_metadata",
            "-1",
        ])
        .arg(&out)
        .output()
        .map_err(io(&out))?;
    if !res.status.success() {
        return Err(SimError::Ffmpeg {
            video: video_id.to_string(),
            message: String::from_utf8_lossy(&res.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Generates a benchmark into `out`, calling `progress` after every video.
pub fn generate(
    cfg: &GenerateConfig,
    out: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<Generated, SimError> {
    cfg.validate()?;
    let t0 = Instant::now();
    let videos_dir = out.join("videos");
    let truth_dir = out.join("ground_truth");
    for d in [out, &videos_dir, &truth_dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let mp4 = cfg.mp4 == Mp4::Auto && ffmpeg_available();
    if cfg.mp4 == Mp4::Auto && !mp4 {
        tracing::info!("ffmpeg not found: writing PNG frames only");
    }
    let total = cfg.kinds.len() * cfg.scenes as usize * cfg.videos_per_scene as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x2545_f491_4f6c_dd1d);
    let mut balancer = LetterBalancer::default();
    let mut next_id = 0u64;
    let mut questions: Vec<Question> = Vec::new();
    let mut scene_names = Vec::new();
    let mut frames_total = 0usize;
    let mut done = 0usize;
    for &kind in &cfg.kinds {
        for si in 0..cfg.scenes {
            let scene = Scene::generate(kind, cfg.seed, si);
            scene_names.push(scene.name.clone());
            for v in 0..cfg.videos_per_scene {
                let video_id = format!("{}_v{v}", scene.name);
                let dir = videos_dir.join(&video_id);
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                let run = run_video(scene.clone(), cfg, v, |i, img| {
                    let path = dir.join(format!("frame_{i:04}.png"));
                    write_png(&path, img.width, img.height, &img.rgb)
                })?;
                frames_total += run.frames.len();
                let ctx = Context {
                    scene: &run.scene,
                    trajectory: &run.trajectory,
                    frames: &run.frames,
                    frame_pixels: cfg.camera.width * cfg.camera.height,
                };
                let qs = qa::generate(&ctx, &video_id, &mut rng, &mut balancer, &mut next_id);
                let truth = VideoTruth {
                    format: FORMAT,
                    video_id: video_id.clone(),
                    scene_name: run.scene.name.clone(),
                    kind,
                    fps: cfg.fps,
                    camera: Intrinsics::from(&cfg.camera),
                    objects: run.scene.objects.clone(),
                    floor_area: run.scene.floor_area,
                    goal: run
                        .trajectory
                        .goal
                        .and_then(|g| run.scene.object(g))
                        .map(|o| o.name.clone()),
                    motion: run.trajectory.motion,
                    actions: run.trajectory.steps.clone(),
                    planned: run.trajectory.planned.clone(),
                    frames: run.frames,
                    questions: qs.clone(),
                };
                write_json(&truth_dir.join(format!("{video_id}.json")), &truth)?;
                if mp4 {
                    write_mp4(&dir, &video_id, cfg.fps)?;
                }
                questions.extend(qs);
                done += 1;
                progress(Progress {
                    done,
                    total,
                    questions: questions.len(),
                });
            }
        }
    }
    let splits = split_scenes(&scene_names, cfg.seed);
    let mut split_scenes_map = BTreeMap::new();
    let mut split_questions = BTreeMap::new();
    for (name, scenes) in ["train", "val", "test"].iter().zip(&splits) {
        let rows: Vec<Row> = questions
            .iter()
            .filter(|q| scenes.contains(&q.scene_name))
            .map(Row::from)
            .collect();
        write_json(&out.join(format!("{name}_data.json")), &rows)?;
        split_questions.insert(name.to_string(), rows.len());
        split_scenes_map.insert(name.to_string(), scenes.clone());
    }
    let mut categories = BTreeMap::new();
    for q in &questions {
        *categories.entry(q.category.clone()).or_insert(0) += 1;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let summary = Summary {
        config: cfg.clone(),
        videos: done,
        frames: frames_total,
        questions: questions.len(),
        categories,
        letters: balancer.counts().clone(),
        split_scenes: split_scenes_map,
        split_questions,
        mp4,
    };
    write_json(&out.join("benchmark.json"), &summary)?;
    Ok(Generated {
        summary,
        seconds,
        frames_per_second: frames_total as f64 / seconds.max(1e-9),
    })
}

/// Reads a ground-truth sidecar.
pub fn read_truth(path: &Path) -> Result<VideoTruth, SimError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|source| SimError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let names: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
        let a = split_scenes(&names, 1);
        assert_eq!(a, split_scenes(&names, 1));
        assert_ne!(a, split_scenes(&names, 2));
        assert_eq!([a[0].len(), a[1].len(), a[2].len()], [15, 1, 4]);
        let mut all: Vec<String> = a.concat();
        all.sort();
        let mut want = names.clone();
        want.sort();
        assert_eq!(all, want);
        for s in [1usize, 2, 3, 4] {
            let n: Vec<String> = (0..s).map(|i| format!("s{i}")).collect();
            let p = split_scenes(&n, 0);
            assert_eq!(p.iter().map(Vec::len).sum::<usize>(), s);
            if s >= 3 {
                assert!(p.iter().all(|x| !x.is_empty()), "{s}: {p:?}");
            }
        }
    }

    #[test]
    fn settings_are_checked() {
        let cfg = GenerateConfig {
            frames_per_action: 0,
            ..GenerateConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("frames_per_action = 0") && e.contains("1..=60"),
            "{e}"
        );
    }
}
