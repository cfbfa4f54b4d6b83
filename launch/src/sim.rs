//! `embodied-r sim generate | preview`: the simulator's benchmark generator and contact sheets.

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
    }
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
    let summary = embodied_r_sim::generate(&cfg, &a.out, |p| {
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} questions", p.questions));
    })
    .with_context(|| format!("generating the benchmark into {}", a.out.display()))?;
    bar.finish_and_clear();
    #[allow(clippy::print_stdout)]
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote {} videos, {} frames, {} questions to {} in {:.1} s ({:.1} frames/s{})",
            summary.videos,
            summary.frames,
            summary.questions,
            a.out.display(),
            summary.seconds,
            summary.frames_per_second,
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
