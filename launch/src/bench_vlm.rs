//! `embodied-r bench vlm`: image-encode, prefill and decode speed and peak memory of the local
//! vision-language model at a full-size configuration with random weights (speed does not
//! depend on the values). The folder it writes (`--keep DIR`) is what `tools/bench_vlm.py`
//! loads into transformers for the anchor figures, so both sides run the same model on the same
//! images.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use embodied_r_reasoner::backend::Backend;
use embodied_r_reasoner::vlm::presets::{Preset, write_random_folder};
use embodied_r_reasoner::vlm::{Rgb8, VisionLanguageModel};
use embodied_r_reasoner::{GenerationConfig, LoadOptions, WeightMode, with_backend};
use serde::Serialize;

/// Arguments of `embodied-r bench vlm`.
#[derive(Debug, clap::Args)]
pub struct VlmBenchArgs {
    /// Full-size configuration: smolvlm-256m or smolvlm-500m.
    #[arg(long, default_value = "smolvlm-256m")]
    pub config: String,
    /// Camera frames (640×480) in the prompt.
    #[arg(long, default_value_t = 1)]
    pub images: usize,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 32)]
    pub decode_tokens: usize,
    /// Compute backend: flex (CPU), wgpu, cuda — where compiled in.
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write (or reuse) the random-weight model folder here instead of a temporary folder.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Print the last line as a JSON object instead of key=value pairs.
    #[arg(long)]
    pub json: bool,
}

/// What `bench vlm` measured.
#[derive(Debug, Clone, Serialize)]
pub struct VlmBenchReport {
    /// Milliseconds to preprocess and encode one image (tower + connector).
    pub encode_ms_per_image: f64,
    /// Prompt tokens (image tokens included) per second through the language model.
    pub prefill_tok_s: f64,
    /// Generated tokens per second.
    pub decode_tok_s: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_mib: f64,
    /// The configuration.
    pub config: String,
    /// Images in the prompt.
    pub images: usize,
    /// Tiles they became.
    pub tiles: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Threads.
    pub threads: usize,
    /// Backend.
    pub backend: String,
    /// Seconds to load the model.
    pub load_s: f64,
}

/// Peak resident set size of this process (Linux `VmHWM`), MiB; 0 where unknown.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// A deterministic 640×480 test frame (gradients and a checker, different per index).
pub fn bench_frame(i: usize) -> Rgb8 {
    let (w, h) = (640usize, 480usize);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let checker = ((x / 40 + y / 40 + i) % 2) as u8 * 120;
            data.push((x * 255 / w) as u8 ^ checker);
            data.push((y * 255 / h) as u8);
            data.push(((x + y + 37 * i) % 256) as u8);
        }
    }
    Rgb8 {
        width: w,
        height: h,
        data,
    }
}

/// Runs `bench vlm`.
pub fn run(args: &VlmBenchArgs) -> Result<()> {
    let threads = crate::init_threads(args.threads);
    let preset: Preset = args.config.parse()?;
    if args.images == 0 {
        anyhow::bail!("--images must be at least 1");
    }
    let tmp;
    let dir = match &args.keep {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    if !dir.join("model.safetensors").exists() {
        let t0 = Instant::now();
        let n = write_random_folder(preset, &dir, 0)
            .with_context(|| format!("writing the random {} model", preset.name()))?;
        tracing::info!(params = n, seconds = t0.elapsed().as_secs_f64(), dir = %dir.display(), "random model written");
    }
    let kind: embodied_r_reasoner::backend::BackendKind = args.backend.parse()?;
    let report = with_backend!(kind, B => measure::<B>(args, &dir, preset, threads))?;
    #[allow(clippy::print_stdout)]
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "encode_ms_per_image={:.1} prefill_tok_s={:.1} decode_tok_s={:.2} peak_mib={:.0}",
            report.encode_ms_per_image, report.prefill_tok_s, report.decode_tok_s, report.peak_mib
        );
    }
    Ok(())
}

fn measure<B: Backend>(
    args: &VlmBenchArgs,
    dir: &std::path::Path,
    preset: Preset,
    threads: usize,
) -> Result<VlmBenchReport> {
    let t0 = Instant::now();
    let vlm = VisionLanguageModel::<B>::load(
        dir,
        &LoadOptions {
            weights: WeightMode::Dense,
            adapter: None,
        },
        &Default::default(),
    )
    .with_context(|| format!("loading {}", dir.display()))?;
    let load_s = t0.elapsed().as_secs_f64();
    let images: Vec<Rgb8> = (0..args.images).map(bench_frame).collect();
    let prompt = "Describe what the robot sees, object by object, with positions.";
    let rendered = vlm.render_prompt(images.len(), prompt)?;
    let t1 = Instant::now();
    let prepared = vlm.prepare(&rendered, &images)?;
    let embeds = vlm.embed(&prepared)?;
    // Force the encode to finish before the clock stops (GPU backends run asynchronously).
    let _ = embeds.clone().into_data();
    let encode_s = t1.elapsed().as_secs_f64();
    let mut cfg = GenerationConfig::greedy(args.decode_tokens.max(1));
    cfg.stop_on_eos = false;
    let out = vlm.generate_prepared(&prepared, embeds, &cfg, |_| ControlFlow::Continue(()))?;
    let t = out.timings;
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{}: {} images → {} tiles, {} prompt tokens; encode {:.2} s, prefill {:.2} s, decode {} tok in {:.2} s ({} threads, {})",
            preset.name(),
            images.len(),
            prepared.tiles(),
            prepared.ids.len(),
            encode_s,
            t.prefill_s,
            t.decode_tokens,
            t.decode_s,
            threads,
            args.backend
        );
    }
    Ok(VlmBenchReport {
        encode_ms_per_image: encode_s * 1000.0 / images.len() as f64,
        prefill_tok_s: t.prefill_tok_s(),
        decode_tok_s: t.decode_tok_s(),
        peak_mib: peak_mib(),
        config: preset.name().into(),
        images: images.len(),
        tiles: prepared.tiles(),
        prompt_tokens: prepared.ids.len(),
        threads,
        backend: args.backend.clone(),
        load_s,
    })
}
