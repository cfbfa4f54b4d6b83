//! `embodied-r sim generate | preview | stream | warp`: the simulator's benchmark generator,
//! contact sheets, the simulator acting as an external simulator over the zenoh bridge, and the
//! warp test video for key-frame selection.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use embodied_r_sim::dataset::Mp4;
use embodied_r_sim::{Camera, GenerateConfig, Scene, SceneKind};

/// Simulator subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Generate a ground-truth spatial-QA benchmark (frames, sidecars, Embodied-R JSON splits).
    Generate(GenerateArgs),
    /// Write a contact sheet of one video's frames with ground-truth boxes.
    Preview(PreviewArgs),
    /// Act as an external simulator: stream frames over the zenoh bridge, follow nav hints.
    Stream(StreamArgs),
    /// Write a camera move (pan, zoom, roll, then all three) over a textured poster as PNG
    /// frames: a test video for key-frame selection.
    Warp(WarpArgs),
}

/// `sim warp`.
#[derive(Debug, Clone, Args)]
pub struct WarpArgs {
    /// Output folder (frame_0000.png, ...).
    #[arg(long)]
    pub out: PathBuf,
    /// Frames per phase (the video has four phases).
    #[arg(long, default_value_t = 30)]
    pub frames_per_phase: u32,
    /// Poster seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Frame width.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Frame height.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
}

/// Which scenes to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Drone flights over city blocks (UrbanVideo-Bench categories).
    City,
    /// Walks through indoor rooms (VSI-Bench categories).
    Indoor,
    /// Both.
    Both,
}

/// Rendering and trajectory options shared by `generate` and `preview`.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// Master seed: the same seed gives byte-identical output on every machine.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Horizontal field of view in degrees.
    #[arg(long, default_value_t = 90.0)]
    pub hfov: f32,
    /// Actions per trajectory.
    #[arg(long, default_value_t = 10)]
    pub actions: u32,
    /// Rendered frames per action.
    #[arg(long, default_value_t = 4)]
    pub frames_per_action: u32,
    /// Frame rate of the videos (timestamps, MP4).
    #[arg(long, default_value_t = 4.0)]
    pub fps: f64,
    /// Rendering threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl RenderArgs {
    fn config(&self, kinds: Vec<SceneKind>, scenes: u32, videos: u32, mp4: Mp4) -> GenerateConfig {
        GenerateConfig {
            kinds,
            scenes,
            seed: self.seed,
            videos_per_scene: videos,
            actions: self.actions,
            frames_per_action: self.frames_per_action,
            fps: self.fps,
            camera: Camera {
                width: self.width,
                height: self.height,
                hfov_deg: self.hfov,
            },
            mp4,
        }
    }

    fn init_threads(&self) {
        if let Some(n) = self.threads {
            // Fails only if the global pool already exists, which means it is already sized.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n.max(1))
                .build_global();
        }
    }
}

/// `sim generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Scene kinds.
    #[arg(long, value_enum, default_value = "both")]
    pub kind: KindArg,
    /// Scenes per kind.
    #[arg(long, default_value_t = 10)]
    pub scenes: u32,
    /// Videos (trajectories) per scene.
    #[arg(long, default_value_t = 2)]
    pub videos_per_scene: u32,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Do not write MP4s even when ffmpeg is installed.
    #[arg(long)]
    pub no_mp4: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Rendering options.
    #[command(flatten)]
    pub render: RenderArgs,
}

/// `sim preview`.
#[derive(Debug, Clone, Args)]
pub struct PreviewArgs {
    /// Scene name, e.g. city_0003 or indoor_0001.
    #[arg(long)]
    pub scene: String,
    /// Which video of the scene.
    #[arg(long, default_value_t = 0)]
    pub video: u32,
    /// Frames on the sheet.
    #[arg(long, default_value_t = 12)]
    pub frames: usize,
    /// Frames per row.
    #[arg(long, default_value_t = 4)]
    pub cols: usize,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Rendering options.
    #[command(flatten)]
    pub render: RenderArgs,
}

/// Runs a `sim` subcommand.
pub fn run(cmd: &SimCommand) -> Result<()> {
    match cmd {
        SimCommand::Generate(a) => generate(a),
        SimCommand::Preview(a) => preview(a),
        SimCommand::Stream(a) => stream(a),
        SimCommand::Warp(a) => warp(a),
    }
}

fn warp(a: &WarpArgs) -> Result<()> {
    if a.width < 64 || a.height < 64 || a.frames_per_phase == 0 {
        anyhow::bail!(
            "sim warp: need --width and --height of at least 64 and --frames-per-phase of at least 1 (got {}x{}, {})",
            a.width,
            a.height,
            a.frames_per_phase
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let video = embodied_r_sim::warp::WarpVideo::new(embodied_r_sim::warp::WarpConfig {
        width: a.width,
        height: a.height,
        frames_per_phase: a.frames_per_phase,
        seed: a.seed,
    });
    for i in 0..video.len() {
        let path = a.out.join(format!("frame_{i:04}.png"));
        embodied_r_sim::dataset::write_png(&path, a.width, a.height, &video.frame(i))?;
    }
    #[allow(clippy::print_stdout)]
    {
        println!("wrote {} frames to {}", video.len(), a.out.display());
    }
    Ok(())
}

fn generate(a: &GenerateArgs) -> Result<()> {
    a.render.init_threads();
    let kinds = match a.kind {
        KindArg::City => vec![SceneKind::City],
        KindArg::Indoor => vec![SceneKind::Indoor],
        KindArg::Both => vec![SceneKind::City, SceneKind::Indoor],
    };
    let mp4 = if a.no_mp4 { Mp4::Never } else { Mp4::Auto };
    let cfg = a.render.config(kinds, a.scenes, a.videos_per_scene, mp4);
    cfg.validate()?;
    let total = cfg.kinds.len() as u64 * u64::from(cfg.scenes) * u64::from(cfg.videos_per_scene);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} videos  {msg}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let generated = embodied_r_sim::generate(&cfg, &a.out, |p| {
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} questions", p.questions));
    })
    .with_context(|| format!("generating the benchmark into {}", a.out.display()))?;
    bar.finish_and_clear();
    let summary = &generated.summary;
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    if a.json {
        println!("{}", serde_json::to_string_pretty(&generated)?);
    } else {
        // The timing goes to stderr (and --json), never into the benchmark's files.
        eprintln!(
            "{:.1} s, {:.1} frames/s",
            generated.seconds, generated.frames_per_second
        );
        println!(
            "wrote {} videos, {} frames, {} questions to {}{}",
            summary.videos,
            summary.frames,
            summary.questions,
            a.out.display(),
            if summary.mp4 { ", with MP4" } else { "" }
        );
        println!("questions per category:");
        for (c, n) in &summary.categories {
            println!("  {c:<22} {n}");
        }
        println!("correct letter counts (by number of options):");
        for (n, counts) in &summary.letters {
            let cells: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{}={c}", (b'A' + i as u8) as char))
                .collect();
            println!("  {n} options: {}", cells.join(" "));
        }
        for split in ["train", "val", "test"] {
            println!(
                "  {split}: {} scenes, {} questions",
                summary.split_scenes.get(split).map_or(0, Vec::len),
                summary.split_questions.get(split).copied().unwrap_or(0)
            );
        }
    }
    Ok(())
}

fn preview(a: &PreviewArgs) -> Result<()> {
    a.render.init_threads();
    let (kind, index) = embodied_r_sim::preview::parse_scene_name(&a.scene)?;
    let cfg = a.render.config(vec![kind], 1, 1, Mp4::Never);
    let scene = Scene::generate(kind, cfg.seed, index);
    let (w, h) =
        embodied_r_sim::preview::contact_sheet(scene, &cfg, a.video, a.frames, a.cols, &a.out)
            .with_context(|| format!("writing the contact sheet {}", a.out.display()))?;
    #[allow(clippy::print_stdout)]
    {
        println!("{} ({w}x{h})", a.out.display());
    }
    Ok(())
}

/// `sim stream`.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Scene name, e.g. city_0003 or indoor_0001.
    #[arg(long, default_value = "city_0000")]
    pub scene: String,
    /// Which planned video of the scene to fly when not following hints.
    #[arg(long, default_value_t = 0)]
    pub video: u32,
    /// Key-expression prefix of the bridge.
    #[arg(long, default_value = "sim/default")]
    pub prefix: String,
    /// zenoh endpoints to connect to (repeatable), e.g. tcp/127.0.0.1:7447.
    #[arg(long)]
    pub connect: Vec<String>,
    /// zenoh endpoints to listen on (repeatable).
    #[arg(long)]
    pub listen: Vec<String>,
    /// zenoh mode: peer, client or router.
    #[arg(long, default_value = "peer")]
    pub mode: String,
    /// Disable multicast scouting (use only the given endpoints).
    #[arg(long)]
    pub no_multicast: bool,
    /// Frames to publish (0: until the planned flight ends, or forever when following hints).
    #[arg(long, default_value_t = 0)]
    pub frames: u64,
    /// Move by the navigation hints received instead of the planned flight.
    #[arg(long)]
    pub follow_hints: bool,
    /// Wait up to this many seconds for a frame subscriber before starting the clock.
    #[arg(long, default_value_t = 0.0)]
    pub wait_subscriber: f64,
    /// JPEG quality.
    #[arg(long, default_value_t = 85)]
    pub jpeg_quality: u8,
    /// Rendering options (--fps sets the publishing rate).
    #[command(flatten)]
    pub render: RenderArgs,
}

pub(crate) fn stream(a: &StreamArgs) -> Result<()> {
    use embodied_r_sim::bridge::{FrameMessage, ImageEncoding, NetConfig, SimPublisher};
    use embodied_r_sim::trajectory::{Motion, plan};
    use std::time::{Duration, Instant};

    a.render.init_threads();
    let (kind, index) = embodied_r_sim::preview::parse_scene_name(&a.scene)?;
    let cfg = a.render.config(vec![kind], 1, 1, Mp4::Never);
    cfg.validate()?;
    let scene = Scene::generate(kind, cfg.seed, index);
    let planned = plan(
        &scene,
        a.render.seed ^ u64::from(a.video),
        cfg.actions as usize,
        cfg.frames_per_action as usize,
    );
    let motion = Motion::for_kind(kind);
    let session = embodied_r_sim::bridge::open(&NetConfig {
        mode: Some(a.mode.clone()),
        connect: a.connect.clone(),
        listen: a.listen.clone(),
        multicast_scouting: !a.no_multicast,
        config_file: None,
        max_message_bytes: None,
    })?;
    let publisher = SimPublisher::new(&session, &a.prefix)?;
    tracing::info!(frames = %publisher.keys().frame, hints = %publisher.keys().nav_hint, "simulator streaming");
    if a.wait_subscriber > 0.0
        && !publisher.wait_for_subscriber(Duration::from_secs_f64(a.wait_subscriber))
    {
        anyhow::bail!(
            "no subscriber on {} within {} s",
            publisher.keys().frame,
            a.wait_subscriber
        );
    }
    let period = Duration::from_secs_f64(1.0 / cfg.fps);
    let n = cfg.frames_per_action.max(1) as usize;
    let mut pose = planned.poses[0];
    // (start pose, action, frames done) of the motion in progress.
    let mut current: Option<(
        embodied_r_sim::CameraPose,
        embodied_r_perception::Action,
        usize,
    )> = None;
    let mut applied = 0u64;
    let mut seq = 0u64;
    let mut plan_idx = 0usize;
    let t0 = Instant::now();
    loop {
        if a.frames > 0 && seq >= a.frames {
            break;
        }
        if !a.follow_hints && a.frames == 0 && seq as usize >= planned.poses.len() {
            break;
        }
        if a.follow_hints {
            if current.is_none()
                && let Some(h) = publisher.next_hint()
            {
                tracing::info!(action = %h.action, target = ?h.target, "applying a navigation hint");
                if motion.allowed(&scene, &pose, h.action) {
                    current = Some((pose, h.action, 0));
                } else {
                    tracing::warn!(action = %h.action, "hint refused: it would collide");
                }
                applied += 1;
            }
            if let Some((start, action, k)) = current {
                let t = (k + 1) as f32 / n as f32;
                pose = motion.apply(&start, action, t * t * (3.0 - 2.0 * t));
                current = if k + 1 >= n {
                    None
                } else {
                    Some((start, action, k + 1))
                };
            }
        } else {
            pose = planned.poses[plan_idx.min(planned.poses.len() - 1)];
            plan_idx += 1;
        }
        let img = embodied_r_sim::render(&scene, &cfg.camera, &pose);
        let stamp = seq as f64 / cfg.fps;
        let frame = embodied_r_sim::to_frame(seq, stamp, &img, &pose)?;
        let msg = FrameMessage::from_frame(
            &frame,
            ImageEncoding::Jpeg,
            a.jpeg_quality,
            Some(cfg.camera.hfov_deg),
        )?;
        publisher.publish(&msg)?;
        let truth = embodied_r_sim::truth::frame_truth(
            &scene,
            &pose,
            &img,
            seq as usize,
            stamp,
            current.map(|c| c.1),
        );
        publisher.publish_truth(serde_json::to_vec(&truth)?)?;
        seq += 1;
        let due = t0 + period.mul_f64(seq as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    #[allow(clippy::print_stdout)]
    {
        println!(
            "published {seq} frames on {}; applied {applied} navigation hints ({} malformed)",
            publisher.keys().frame,
            publisher.bad_hints()
        );
    }
    Ok(())
}
