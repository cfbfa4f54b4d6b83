//! `embodied-r describe`: one user turn of images and a prompt through a local vision-language
//! model; only the generated text goes to stdout, speed to stderr.

use std::path::PathBuf;

use anyhow::{Context, Result};
use embodied_r_reasoner::backend::Backend;
use embodied_r_reasoner::vlm::{VisionLanguageModel, load_image};
use embodied_r_reasoner::{
    GenerationConfig, LoadOptions, SamplingConfig, WeightMode, with_backend,
};

use crate::chat::StdoutSink;

/// Arguments of `embodied-r describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// A Hugging Face vision-language model folder (SmolVLM, SmolVLM2, Idefics3).
    #[arg(long)]
    pub vlm: PathBuf,
    /// An image (PNG or JPEG); repeat for several, in the order the prompt sees them.
    #[arg(long = "image", required = true)]
    pub images: Vec<PathBuf>,
    /// What to ask about the images.
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// RNG seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute backend: flex (CPU), wgpu, cuda — where compiled in.
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `describe`.
pub fn run(args: &DescribeArgs) -> Result<()> {
    crate::init_threads(args.threads);
    let kind: embodied_r_reasoner::backend::BackendKind = args.backend.parse()?;
    with_backend!(kind, B => run_on::<B>(args))
}

fn run_on<B: Backend>(args: &DescribeArgs) -> Result<()> {
    // Decode the images first: a bad file fails fast, before minutes of loading.
    let images = args
        .images
        .iter()
        .map(|p| load_image(p))
        .collect::<Result<Vec<_>, _>>()?;
    let vlm = VisionLanguageModel::<B>::load(
        &args.vlm,
        &LoadOptions {
            weights: WeightMode::Dense,
            adapter: None,
        },
        &Default::default(),
    )
    .with_context(|| format!("loading the vision-language model {}", args.vlm.display()))?;
    let cfg = GenerationConfig {
        max_tokens: args.max_tokens,
        sampling: SamplingConfig {
            temperature: args.temperature,
            seed: args.seed,
            ..SamplingConfig::default()
        },
        stop: vec![],
        stop_on_eos: true,
    };
    let mut sink = StdoutSink::new();
    let done = vlm.generate(&images, &args.prompt, &cfg, |ev| sink.write(&ev.text))?;
    sink.finish()?;
    let t = done.completion.timings;
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "[{} images → {} tiles, {} image tokens; encode {:.3} s | prefill {} tok in {:.3} s = {:.1} tok/s | decode {} tok in {:.3} s = {:.1} tok/s | finish: {:?}]",
            done.images,
            done.tiles,
            done.image_tokens,
            done.encode_s,
            t.prefill_tokens,
            t.prefill_s,
            t.prefill_tok_s(),
            t.decode_tokens,
            t.decode_s,
            t.decode_tok_s(),
            done.completion.finish
        );
    }
    Ok(())
}
