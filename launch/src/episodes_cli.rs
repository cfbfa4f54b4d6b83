//! `episodes ls|show|export|replay`: reading the runtime's episode log.

#![allow(clippy::print_stdout)]

use crate::inproc::one_line;
use crate::verdict;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use embodied_r_agent::config::{Config, ConfigLoader};
use embodied_r_agent::engine::{
    Engine, LmReasoner, RecordedDescriber, load_options, question_from_record, window_from_record,
};
use embodied_r_reasoner::episode::{EpisodeRecord, embodied_r_row, find, grpo_row, read_log};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Where the log is.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// The runtime configuration whose `log.dir` to read.
    #[arg(
        long,
        env = "EMBODIED_R_CONFIG",
        default_value = "launch/config/sim.toml"
    )]
    pub config: PathBuf,
    /// The log directory (instead of the config's `log.dir`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl LogArgs {
    fn config(&self) -> Result<Config> {
        Ok(ConfigLoader::new()
            .file(&self.config)?
            .env(std::env::vars())?
            .build()?)
    }

    fn dir(&self) -> Result<PathBuf> {
        match &self.dir {
            Some(d) => Ok(d.clone()),
            None => Ok(self
                .config()
                .with_context(|| format!("reading log.dir from {}", self.config.display()))?
                .log
                .dir),
        }
    }
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `{"messages": [...], "solution": "C"}` per line, for GRPO.
    GrpoJsonl,
    /// A JSON array of Embodied-R rows (question = the full prompt with the video text).
    EmbodiedRJson,
}

/// `episodes` subcommands.
#[derive(Debug, Subcommand)]
pub enum EpisodesCommand {
    /// Lists episodes.
    Ls {
        /// Log location.
        #[command(flatten)]
        log: LogArgs,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints one episode's record (id or a unique id prefix).
    Show {
        /// Episode id.
        id: String,
        /// Log location.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Writes episodes with a ground truth in a trainer format.
    Export {
        /// Format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Log location.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Re-runs an episode's LM step on its recorded descriptions with the configured model
    /// and the recorded seed, and shows what changed.
    Replay {
        /// Episode id.
        id: String,
        /// Model instead of the config's `reasoner.model`.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
        /// Log location.
        #[command(flatten)]
        log: LogArgs,
    },
}

/// The record's strict accuracy, recomputed from its completion and truth (so logs written
/// before the strict rule was the runtime's only one read the same way).
fn accuracy(r: &EpisodeRecord) -> Option<f64> {
    r.ground_truth
        .as_deref()
        .filter(|_| r.error.is_none())
        .map(|gt| verdict::accuracy_of(&r.completion, gt, &r.choices))
}

/// Runs an `episodes` subcommand.
pub fn run(c: &EpisodesCommand) -> Result<()> {
    match c {
        EpisodesCommand::Ls { log, json } => {
            let dir = log.dir()?;
            let contents = read_log(&dir)?;
            for w in &contents.warnings {
                eprintln_warn(&format!(
                    "{} at byte {}: {}",
                    w.file.display(),
                    w.offset,
                    w.what
                ));
            }
            if *json {
                let rows: Vec<serde_json::Value> = contents
                    .records
                    .iter()
                    .map(|r| {
                        let (choice, lenient) = verdict::readings_of(&r.completion, &r.choices);
                        let acc = accuracy(r);
                        serde_json::json!({
                            "id": r.id, "time_unix": r.time_unix, "robot": r.robot,
                            "question": r.question, "choices": r.choices, "choice": choice,
                            "lenient_choice": lenient, "rule": "strict",
                            "text": r.text, "ground_truth": r.ground_truth,
                            "correct": acc.map(|a| a >= 1.0), "accuracy": acc,
                            "format_ok": r.format_ok, "consistent": r.consistent,
                            "nav_hint": r.nav_hint, "frames": r.frames.len(),
                            "model": r.model, "describer": r.describer, "error": r.error,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                println!(
                    "{} episodes in {} (option and verdict by the strict rule: the <answer> \
                     block; \"(c)\": no answer block, a lenient reading, not scored)",
                    contents.records.len(),
                    dir.display()
                );
                for r in &contents.records {
                    let (choice, lenient) = verdict::readings_of(&r.completion, &r.choices);
                    let judged = match (accuracy(r), &r.error) {
                        (_, Some(e)) => format!("error: {}", one_line(e, 40)),
                        (Some(a), _) => verdict::word(a),
                        (None, _) => "-".into(),
                    };
                    let option = match (&choice, &lenient) {
                        (Some(c), _) => c.clone(),
                        // A lenient reading is shown lower case in brackets: never the answer.
                        (None, Some(l)) => format!("({})", l.to_lowercase()),
                        (None, None) => "-".into(),
                    };
                    println!(
                        "{:<28} {:<48} {:>3} {:<6} {}",
                        r.id,
                        one_line(&r.question, 48),
                        option,
                        if r.format_ok { "fmt ok" } else { "fmt -" },
                        judged
                    );
                }
            }
            Ok(())
        }
        EpisodesCommand::Show { id, log } => {
            let r = find(&log.dir()?, id)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        EpisodesCommand::Export { format, out, log } => {
            let dir = log.dir()?;
            let contents = read_log(&dir)?;
            let (rows, skipped): (Vec<_>, Vec<_>) = contents
                .records
                .iter()
                .map(|r| match format {
                    ExportFormat::GrpoJsonl => grpo_row(r),
                    ExportFormat::EmbodiedRJson => embodied_r_row(r),
                })
                .partition(Option::is_some);
            let rows: Vec<serde_json::Value> = rows.into_iter().flatten().collect();
            let mut text = String::new();
            match format {
                ExportFormat::GrpoJsonl => {
                    for r in &rows {
                        text.push_str(&r.to_string());
                        text.push('\n');
                    }
                }
                ExportFormat::EmbodiedRJson => {
                    text = serde_json::to_string_pretty(&rows)?;
                    text.push('\n');
                }
            }
            match out {
                Some(p) => {
                    std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?
                }
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            eprintln_warn(&format!(
                "exported {} episodes; {} without a ground truth were left out",
                rows.len(),
                skipped.len()
            ));
            Ok(())
        }
        EpisodesCommand::Replay {
            id,
            model,
            json,
            log,
        } => {
            let cfg = log.config()?;
            let dir = log.dir.clone().unwrap_or(cfg.log.dir.clone());
            let rec = find(&dir, id)?;
            let model = model.clone().unwrap_or(cfg.reasoner.model.clone());
            embodied_r_reasoner::init_threads(cfg.reasoner.threads);
            let lm = LmReasoner::<embodied_r_reasoner::backend::Cpu>::load(
                &model,
                &load_options(&cfg.reasoner.weights, &cfg.reasoner.adapter),
            )
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", model.display()))?;
            let mut rcfg = cfg.reasoner.clone();
            rcfg.seed = rec.seed;
            rcfg.temperature = rec.temperature;
            rcfg.max_tokens = rec.max_tokens;
            rcfg.consistency = rec.consistent.is_some() || rec.choices.is_empty();
            let engine = Engine::new(
                Box::new(lm),
                Arc::new(RecordedDescriber::new(&rec)),
                rcfg,
                rec.robot.clone(),
            );
            let q = question_from_record(&rec);
            let out = engine.answer(&q, window_from_record(&rec, &dir), &AtomicBool::new(false));
            if let Err(e) = &out.reply {
                bail!("replay of {} failed: {e}", rec.id);
            }
            let new = out.record;
            let same = new.completion == rec.completion;
            let cmp = serde_json::json!({
                "id": rec.id,
                "identical": same,
                "recorded": {"model": rec.model, "choice": rec.choice, "text": rec.text, "completion": rec.completion, "consistent": rec.consistent},
                "replayed": {"model": new.model, "choice": new.choice, "text": new.text, "completion": new.completion, "consistent": new.consistent},
            });
            if *json {
                println!("{cmp}");
            } else {
                println!(
                    "episode {} (seed {}, temperature {})",
                    rec.id, rec.seed, rec.temperature
                );
                println!(
                    "recorded  [{}] choice {:?}: {}",
                    rec.model,
                    rec.choice,
                    one_line(&rec.completion, 200)
                );
                println!(
                    "replayed  [{}] choice {:?}: {}",
                    new.model,
                    new.choice,
                    one_line(&new.completion, 200)
                );
                if same {
                    println!("identical: the replay reproduces the recorded completion exactly");
                } else {
                    let common = rec
                        .completion
                        .chars()
                        .zip(new.completion.chars())
                        .take_while(|(a, b)| a == b)
                        .count();
                    println!("different: the completions agree on their first {common} characters");
                }
            }
            Ok(())
        }
    }
}

#[allow(clippy::print_stderr)]
fn eprintln_warn(s: &str) {
    eprintln!("{s}");
}
