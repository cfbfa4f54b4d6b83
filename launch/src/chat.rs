//! `embodied-r chat`: one prompt, streamed answer on stdout, speed on stderr.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;

use anyhow::{Context, Result};
use embodied_r_reasoner::backend::Backend;
use embodied_r_reasoner::{GenerationConfig, SamplingConfig, with_backend};

use crate::ModelArgs;

/// Arguments of `embodied-r chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Model, backend, weights, threads.
    #[command(flatten)]
    pub model: ModelArgs,
    /// System prompt (chat mode only).
    #[arg(long)]
    pub system: Option<String>,
    /// Feed PROMPT as is: no chat template, BOS only if the model's metadata asks for it.
    #[arg(long)]
    pub raw: bool,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling threshold in (0, 1].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Penalty (> 1) for tokens already in the prompt or the answer.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// RNG seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the answer contains this text (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// The question (or, with --raw, the whole prompt).
    pub prompt: String,
}

/// Runs `chat`.
pub fn run(args: &ChatArgs) -> Result<()> {
    args.model.init_threads();
    let kind = args.model.backend_kind()?;
    with_backend!(kind, B => run_on::<B>(args))
}

fn run_on<B: Backend>(args: &ChatArgs) -> Result<()> {
    let lm = args.model.load::<B>()?;
    let ids = if args.raw {
        if args.system.is_some() {
            anyhow::bail!("--system has no effect with --raw; put it in the prompt instead");
        }
        lm.encode_raw(&args.prompt)?
    } else {
        let mut msgs = vec![];
        if let Some(s) = &args.system {
            msgs.push(("system", s.as_str()));
        }
        msgs.push(("user", args.prompt.as_str()));
        let text = lm.render_chat(&msgs, true)?;
        lm.encode_chat(&text)?
    };
    let cfg = GenerationConfig {
        max_tokens: args.max_tokens,
        sampling: SamplingConfig {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
            seed: args.seed,
        },
        stop: args.stop.clone(),
        stop_on_eos: true,
    };
    let mut sink = StdoutSink::new();
    let done = lm.generate_ids(&ids, &cfg, |ev| sink.write(&ev.text))?;
    sink.finish()?;
    let t = done.timings;
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "[prefill {} tok in {:.3} s = {:.1} tok/s | decode {} tok in {:.3} s = {:.1} tok/s | finish: {:?}]",
            t.prefill_tokens,
            t.prefill_s,
            t.prefill_tok_s(),
            t.decode_tokens,
            t.decode_s,
            t.decode_tok_s(),
            done.finish
        );
    }
    Ok(())
}

/// Streams generated text to stdout. A closed pipe (e.g. `| head`) ends generation instead of
/// wasting compute and is not an error; a newline ends the text on a terminal.
pub(crate) struct StdoutSink {
    out: std::io::StdoutLock<'static>,
    err: Option<std::io::Error>,
}

impl StdoutSink {
    /// Locks stdout.
    pub(crate) fn new() -> Self {
        StdoutSink {
            out: std::io::stdout().lock(),
            err: None,
        }
    }

    /// Writes one piece; `Break` once stdout fails.
    pub(crate) fn write(&mut self, text: &str) -> ControlFlow<()> {
        match self
            .out
            .write_all(text.as_bytes())
            .and_then(|_| self.out.flush())
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.err = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    /// Reports a write error other than a closed pipe.
    pub(crate) fn finish(mut self) -> Result<()> {
        if let Some(e) = self.err.take()
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(e).context("writing to stdout");
        }
        if std::io::stdout().is_terminal() {
            let _ = writeln!(self.out);
        }
        Ok(())
    }
}
