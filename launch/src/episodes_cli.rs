//! `episodes ls|show|label|export|replay` (`collect` is in [`crate::collect_cli`]): reading the runtime's episode log, and labelling
//! its episodes (appending people's answers beside it; the recorded episodes stay untouched).

#![allow(clippy::print_stdout)]

use crate::inproc::one_line;
use crate::verdict;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use embodied_r_agent::config::{Config, ConfigLoader};
use embodied_r_agent::engine::{
    Engine, LmReasoner, RecordedDescriber, load_options, question_from_record, window_from_record,
};
use embodied_r_reasoner::episode::{
    EpisodeError, EpisodeRecord, LogContents, embodied_r_row, find, grpo_row, lookup, read_log,
};
use embodied_r_reasoner::labels::{LABEL_SCHEMA, Label, append_labels, normalize_answer};
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
        /// Only answered episodes that have no truth yet (neither recorded nor labelled):
        /// the ones to label.
        #[arg(long)]
        unlabelled: bool,
    },
    /// Prints one episode's record (id or a unique id prefix) with its labels.
    Show {
        /// Episode id.
        id: String,
        /// Log location.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Records a person's answer to logged episodes, appended with who and when to
    /// `labels.jsonl` in the log directory (recorded episodes are never rewritten). One episode:
    /// `label ID --answer B` (a number for a question without options); many: `label --from
    /// FILE`, CSV rows `id,answer` (an `id,answer` header is allowed) or JSONL objects
    /// `{"id": …, "answer": …}`. Every row is checked first; one bad row writes nothing. The
    /// newest label of an episode is its truth for `ls`, `export` and training.
    Label {
        /// Episode id (or a unique id prefix); with `--answer`.
        #[arg(required_unless_present = "from", requires = "answer")]
        id: Option<String>,
        /// The answer: an option letter or option text, or a number.
        #[arg(long, requires = "id")]
        answer: Option<String>,
        /// A CSV or JSONL file of `id,answer` rows.
        #[arg(long, conflicts_with_all = ["id", "answer"])]
        from: Option<PathBuf>,
        /// Who labels (default: the user name from `$USER`).
        #[arg(long)]
        by: Option<String>,
        /// Log location.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Writes episodes with a ground truth (recorded or labelled) in a trainer format.
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
    /// Gathers the episodes robots publish over zenoh into DIR/<robot>/, one episode log per
    /// robot: live as they are logged, and from each robot's own log for those missed while the
    /// collector was away. Idempotent (an episode is written once) and resumable.
    Collect(crate::collect_cli::CollectArgs),
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
        EpisodesCommand::Ls {
            log,
            json,
            unlabelled,
        } => {
            let dir = log.dir()?;
            let contents = read_log(&dir)?;
            warn_damage(&contents);
            let shown: Vec<&EpisodeRecord> = contents
                .records
                .iter()
                .filter(|r| !*unlabelled || (r.ground_truth.is_none() && r.error.is_none()))
                .collect();
            if *json {
                let rows: Vec<serde_json::Value> = shown
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
                            "truth_source": contents.truth_source(r),
                            "label": contents.labels.current(&r.id),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                let labelled = contents
                    .records
                    .iter()
                    .filter(|r| contents.labels.current(&r.id).is_some())
                    .count();
                let open = contents
                    .records
                    .iter()
                    .filter(|r| r.ground_truth.is_none() && r.error.is_none())
                    .count();
                println!(
                    "{} episodes in {} ({labelled} labelled by people, {open} answered without \
                     a truth{}; option and verdict by the strict rule: the <answer> block; \
                     \"(c)\": no answer block, a lenient reading, not scored)",
                    contents.records.len(),
                    dir.display(),
                    if *unlabelled { ", listed below" } else { "" },
                );
                for r in shown {
                    let (choice, lenient) = verdict::readings_of(&r.completion, &r.choices);
                    let judged = match (accuracy(r), &r.error) {
                        (_, Some(e)) => format!("error: {}", one_line(e, 40)),
                        (Some(a), _) => match contents.labels.current(&r.id) {
                            Some(l) => format!("{} (label by {})", verdict::word(a), l.by),
                            None => verdict::word(a),
                        },
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
            let dir = log.dir()?;
            let contents = read_log(&dir)?;
            let Some(i) = lookup(&contents.records, id) else {
                return Err(EpisodeError::NotFound {
                    id: id.clone(),
                    dir,
                    count: contents.records.len(),
                }
                .into());
            };
            let r = &contents.records[i];
            let mut v = serde_json::to_value(r)?;
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "truth_source".into(),
                    serde_json::to_value(contents.truth_source(r))?,
                );
                o.insert(
                    "labels".into(),
                    serde_json::to_value(contents.labels.by_episode.get(&r.id))?,
                );
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        EpisodesCommand::Label {
            id,
            answer,
            from,
            by,
            log,
        } => label(
            id.as_deref(),
            answer.as_deref(),
            from.as_deref(),
            by.as_deref(),
            log,
        ),
        EpisodesCommand::Export { format, out, log } => {
            let dir = log.dir()?;
            let contents = read_log(&dir)?;
            warn_damage(&contents);
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
                "exported {} episodes ({} of them with a label given by a person); {} without \
                 a truth (recorded or labelled) were left out: `episodes ls --unlabelled` lists \
                 the answered ones to label",
                rows.len(),
                contents
                    .records
                    .iter()
                    .filter(|r| contents.labels.current(&r.id).is_some())
                    .count(),
                skipped.len()
            ));
            Ok(())
        }
        EpisodesCommand::Collect(a) => crate::collect_cli::run(a),
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

/// Reports damaged lines of the log's segments and label file, and labels naming no episode.
fn warn_damage(contents: &LogContents) {
    for w in &contents.warnings {
        eprintln_warn(&format!(
            "{} at byte {}: {}",
            w.file.display(),
            w.offset,
            w.what
        ));
    }
    if contents.orphan_labels > 0 {
        eprintln_warn(&format!(
            "{} labelled episodes are not in the log (their segment was rotated away?); their labels are kept but unused",
            contents.orphan_labels
        ));
    }
}

/// One `id,answer` row of a bulk label file, with its line number.
#[derive(Debug, PartialEq)]
struct LabelRow {
    line: usize,
    id: String,
    answer: String,
}

/// Reads a bulk label file: JSONL (`{"id": …, "answer": …}` per line; `.jsonl`/`.json`, or
/// text starting with `{`) or CSV (`id,answer` rows, an optional `id,answer` header).
fn label_rows(path: &std::path::Path) -> Result<Vec<LabelRow>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading labels from {}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let jsonl = ext == "jsonl" || ext == "json" || text.trim_start().starts_with('{');
    let name = path.display();
    let mut rows = Vec::new();
    if jsonl {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Row {
            id: String,
            answer: serde_json::Value,
        }
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let r: Row = serde_json::from_str(l).with_context(|| {
                format!(
                    "{name} line {}: expected {{\"id\": \"…\", \"answer\": \"B\" or a number}}",
                    i + 1
                )
            })?;
            let answer = match r.answer {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => bail!(
                    "{name} line {}: answer {other} is neither a string nor a number",
                    i + 1
                ),
            };
            rows.push(LabelRow {
                line: i + 1,
                id: r.id,
                answer,
            });
        }
    } else {
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        for rec in rd.records() {
            let rec = rec.with_context(|| format!("{name}: not CSV"))?;
            let line = rec.position().map_or(0, |p| p.line() as usize);
            if rec.len() == 1 && rec[0].is_empty() {
                continue;
            }
            if rec.len() != 2 {
                bail!(
                    "{name} line {line}: {} fields; expected two, `id,answer`",
                    rec.len()
                );
            }
            if rows.is_empty()
                && rec[0].eq_ignore_ascii_case("id")
                && rec[1].eq_ignore_ascii_case("answer")
            {
                continue;
            }
            rows.push(LabelRow {
                line,
                id: rec[0].to_string(),
                answer: rec[1].to_string(),
            });
        }
    }
    if rows.is_empty() {
        bail!("{name} holds no labels; expected `id,answer` rows (CSV) or JSONL objects");
    }
    Ok(rows)
}

/// `episodes label`: validates every row against its episode, then appends them all at once.
fn label(
    id: Option<&str>,
    answer: Option<&str>,
    from: Option<&std::path::Path>,
    by: Option<&str>,
    log: &LogArgs,
) -> Result<()> {
    let dir = log.dir()?;
    let contents = read_log(&dir)?;
    warn_damage(&contents);
    let (rows, source) = match (id, answer, from) {
        (Some(id), Some(answer), None) => (
            vec![LabelRow {
                line: 0,
                id: id.to_string(),
                answer: answer.to_string(),
            }],
            "cli".to_string(),
        ),
        (None, None, Some(f)) => (
            label_rows(f)?,
            format!(
                "file:{}",
                f.file_name().map_or_else(
                    || f.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            ),
        ),
        _ => bail!("give `ID --answer X` or `--from FILE`"),
    };
    let by = match by {
        Some(b) if !b.trim().is_empty() => b.trim().to_string(),
        Some(_) => bail!("--by is empty; expected who labels"),
        None => std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let at = |r: &LabelRow| match from {
        Some(f) => format!("{} line {}: ", f.display(), r.line),
        None => String::new(),
    };
    let mut problems = Vec::new();
    let mut labels: Vec<Label> = Vec::new();
    let mut first_line: std::collections::HashMap<String, usize> = Default::default();
    for row in &rows {
        let Some(i) = lookup(&contents.records, &row.id) else {
            problems.push(format!(
                "{}no episode `{}` in {} ({} episodes there; ids are shown by `episodes ls`)",
                at(row),
                row.id,
                dir.display(),
                contents.records.len()
            ));
            continue;
        };
        let r = &contents.records[i];
        if let Some(first) = first_line.insert(r.id.clone(), row.line) {
            problems.push(format!(
                "{}episode {} is labelled twice in one file (first on line {first})",
                at(row),
                r.id
            ));
            continue;
        }
        match normalize_answer(r, &row.answer) {
            Ok(answer) => labels.push(Label {
                schema: LABEL_SCHEMA,
                episode: r.id.clone(),
                answer,
                by: by.clone(),
                time_unix: now,
                source: source.clone(),
            }),
            Err(e) => problems.push(format!("{}{e}", at(row))),
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        let shown: Vec<&str> = problems.iter().take(20).map(String::as_str).collect();
        bail!(
            "{n} of {} labels are invalid; nothing was written:\n  {}{}",
            rows.len(),
            shown.join("\n  "),
            if n > 20 { "\n  …" } else { "" }
        );
    }
    append_labels(&dir, &labels)?;
    let relabelled = labels
        .iter()
        .filter(|l| contents.labels.current(&l.episode).is_some())
        .count();
    // A record without an earlier label that has a truth had it recorded with the question.
    let recorded: std::collections::HashSet<&str> = contents
        .records
        .iter()
        .filter(|r| r.ground_truth.is_some() && contents.labels.current(&r.id).is_none())
        .map(|r| r.id.as_str())
        .collect();
    let overrides = labels
        .iter()
        .filter(|l| recorded.contains(l.episode.as_str()))
        .count();
    if let (None, Some(l)) = (from, labels.first()) {
        println!("{} = {} (by {})", l.episode, l.answer, l.by);
    }
    println!(
        "labelled {} episodes in {} by {by}{}{}",
        labels.len(),
        dir.join(embodied_r_reasoner::labels::LABELS_FILE).display(),
        if relabelled > 0 {
            format!("; {relabelled} relabelled (earlier labels kept as history)")
        } else {
            String::new()
        },
        if overrides > 0 {
            format!("; {overrides} override the truth recorded with the question")
        } else {
            String::new()
        }
    );
    Ok(())
}

#[allow(clippy::print_stderr)]
fn eprintln_warn(s: &str) {
    eprintln!("{s}");
}
