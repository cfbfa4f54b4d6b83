//! `embodied-r demo`: the whole product in one command. The simulator flies a scene, the
//! runtime runs on its camera with the sim describer and the configured LM, the scene's
//! generated questions are asked over zenoh (a second session, on loopback), and each answer
//! is printed with its think text, navigation hint and whether it is right. Every question is
//! written to the episode log.

#![allow(clippy::print_stdout)]

use crate::inproc::{InProcess, loopback_endpoint, one_line, tokio_runtime};
use crate::verdict;
use anyhow::{Context, Result, bail};
use clap::Args;
use embodied_r_agent::client::ask;
use embodied_r_agent::config::{Config, FsyncPolicy, Rate};
use embodied_r_agent::{AskRequest, Runtime};
use embodied_r_reasoner::episode::Rewards;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `embodied-r demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated scene: city_NNNN (drone) or indoor_NNNN (ground robot).
    #[arg(long, default_value = "indoor_0000")]
    pub scene: String,
    /// Video of the scene.
    #[arg(long, default_value_t = 0)]
    pub video: u32,
    /// Simulator seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Ask at most this many of the scene's questions.
    #[arg(long)]
    pub questions: Option<usize>,
    /// The LM.
    #[arg(long, default_value = crate::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// A PEFT LoRA adapter folder (default: the shipped adapter for the embedded model).
    #[arg(long, conflicts_with = "no_adapter")]
    pub adapter: Option<PathBuf>,
    /// The bare model, without the shipped adapter.
    #[arg(long)]
    pub no_adapter: bool,
    /// Token budget per answer.
    #[arg(long, default_value_t = 192)]
    pub max_tokens: usize,
    /// Episode log directory.
    #[arg(long, default_value = "episodes/demo")]
    pub log_dir: PathBuf,
    /// Fly as fast as frames render instead of in real time (4 frames/s).
    #[arg(long)]
    pub fast: bool,
    /// CPU threads for the LM.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print one JSON object per question, then a summary object.
    #[arg(long)]
    pub json: bool,
    /// Ask without the simulator's truth, as a robot in the field asks: the log then holds
    /// unlabelled episodes (to label with `episodes label`; the truth is still printed for
    /// that) and nothing is scored.
    #[arg(long)]
    pub withhold_truth: bool,
}

/// Runs the demo.
pub fn run(a: &DemoArgs) -> Result<()> {
    if !a.model.exists() {
        bail!(
            "{} is missing: run `cargo run --release -p embodied-r-launch -- fetch-model` first",
            a.model.display()
        );
    }
    let endpoint = loopback_endpoint()?;
    let mut cfg = Config {
        robot_id: "sim".into(),
        ..Config::default()
    };
    cfg.source.scene = a.scene.clone();
    cfg.source.video = a.video;
    cfg.source.seed = a.seed;
    cfg.source.rate = if a.fast { Rate::Max } else { Rate::Realtime };
    cfg.keyframes.sample_fps = 0.0;
    cfg.reasoner.model = a.model.clone();
    cfg.reasoner.adapter = crate::resolve_adapter(&a.model, a.adapter.as_deref(), a.no_adapter)?
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    cfg.reasoner.max_tokens = a.max_tokens;
    cfg.reasoner.threads = a.threads;
    cfg.zenoh.listen = vec![endpoint.clone()];
    cfg.zenoh.multicast = false;
    cfg.log.dir = a.log_dir.clone();
    cfg.log.fsync = FsyncPolicy::Always;
    cfg.api.queue = 64;
    let runtime = Runtime::new(cfg).context("preparing the simulated flight")?;
    let flight = runtime
        .flight()
        .context("the demo needs the simulator source")?
        .clone();
    let mut questions = flight.questions.clone();
    if let Some(n) = a.questions {
        questions.truncate(n);
    }
    let keys = runtime.keys();
    if !a.json {
        println!(
            "Flying {} ({} frames at 4 fps, {} questions); the runtime answers over zenoh at {}",
            flight.video_id,
            flight.frames.len(),
            questions.len(),
            keys.ask
        );
    }
    let rt = tokio_runtime()?;
    rt.block_on(async move {
        let inproc = InProcess::start(runtime, &endpoint).await?;
        let session = &inproc.session;
        // Wait for the flight to end (status says so), showing progress.
        let status = session
            .declare_subscriber(keys.status.clone())
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {}: {e}", keys.status))?;
        let t0 = Instant::now();
        loop {
            let s = tokio::time::timeout(Duration::from_secs(30), status.recv_async())
                .await
                .context("no status from the runtime for 30 s")?
                .map_err(|e| anyhow::anyhow!("status subscription: {e}"))?;
            let v: serde_json::Value = serde_json::from_slice(&s.payload().to_bytes())?;
            if !a.json {
                print!(
                    "\r  camera: {:>3} frames, {:>2} key frames ({:.0} s)",
                    v["source"]["frames"],
                    v["keyframes"]["kept"],
                    t0.elapsed().as_secs_f64()
                );
                let _ = std::io::Write::flush(&mut std::io::stdout());
            }
            if v["source"]["ended"].as_bool() == Some(true) {
                if !a.json {
                    println!();
                }
                break;
            }
        }
        let (mut right, mut scored, mut fmt, mut cons, mut cons_n) = (0.0f64, 0usize, 0usize, 0usize, 0usize);
        let mut answered = 0usize;
        for (i, q) in questions.iter().enumerate() {
            let req = AskRequest {
                question: q.stem.clone(),
                choices: (!q.choices.is_empty()).then(|| q.choices.clone()),
                window: None,
                deadline_ms: Some(600_000),
                ground_truth: (!a.withhold_truth).then(|| q.answer.clone()),
                category: Some(q.category.clone()),
                client: None,
            };
            let v = ask(session, &keys.ask, &req, Duration::from_secs(600)).await?;
            if let Some(e) = v.get("error") {
                if a.json {
                    println!("{}", serde_json::json!({"question": q.embodied_r_text(), "category": q.category, "truth": q.answer, "reply": v}));
                } else {
                    println!("Q{}: refused: {e}", i + 1);
                }
                continue;
            }
            let text = v["text"].as_str().unwrap_or("");
            let format_ok = v["format_ok"].as_bool() == Some(true);
            let consistent = v["consistent"].as_bool();
            // The runtime scored the reply against the truth we sent, by the strict rule, and
            // logged the same figures: the demo shows those, not a reading of its own.
            let r: Option<Rewards> = if a.withhold_truth {
                None
            } else {
                Some(serde_json::from_value(v["rewards"].clone()).with_context(|| {
                    format!("the reply to Q{} carries no rewards although it was asked with its truth: {v}", i + 1)
                })?)
            };
            let accuracy = r.map(|r| r.accuracy);
            if let Some(acc) = accuracy {
                right += acc;
                scored += 1;
            }
            answered += 1;
            fmt += usize::from(format_ok);
            if let Some(c) = consistent {
                cons_n += 1;
                cons += usize::from(c);
            }
            if a.json {
                println!("{}", serde_json::json!({"question": q.embodied_r_text(), "category": q.category, "truth": q.answer, "truth_sent": !a.withhold_truth, "reply": v, "accuracy": accuracy}));
                continue;
            }
            println!("\nQ{} [{}] {}", i + 1, q.category, q.stem);
            for (k, c) in q.choices.iter().enumerate() {
                println!("    {}. {c}", embodied_r_reasoner::prompt::LETTERS[k]);
            }
            println!("  think:    {}", one_line(v["think"].as_str().unwrap_or("(none)"), 160));
            println!("  answer:   {}", one_line(text, 60));
            if !q.choices.is_empty() {
                println!("  option:   {}", verdict::reading(v["choice"].as_str(), v["lenient_choice"].as_str(), format_ok));
            }
            match accuracy {
                Some(acc) => println!("  verdict:  {} (truth: {})", verdict::judged(acc), q.answer),
                None => println!(
                    "  truth:    {} (withheld from the runtime; label episode {} with it)",
                    q.answer,
                    v["question_id"].as_str().unwrap_or("?")
                ),
            }
            println!(
                "  nav hint: {} ({})",
                v["nav_hint"]["action"].as_str().unwrap_or("?"),
                v["nav_hint"]["reason"].as_str().unwrap_or("")
            );
            println!(
                "  format {}, consistent {}, {:.1} s",
                if format_ok { "ok" } else { "broken" },
                consistent.map(|c| if c { "yes" } else { "no" }).unwrap_or("n/a"),
                v["timings"]["total"].as_f64().unwrap_or(0.0) / 1e3
            );
        }
        drop(status);
        let summary = inproc.stop().await?;
        let acc = (scored > 0).then(|| right / scored as f64);
        let out = serde_json::json!({
            "questions": questions.len(),
            "answered": answered,
            "scored": scored,
            "accuracy": acc,
            "format_rate": if answered > 0 { fmt as f64 / answered as f64 } else { 0.0 },
            "consistency_rate": if cons_n > 0 { Some(cons as f64 / cons_n as f64) } else { None },
            "episodes_logged": summary.log_records,
            "log_dir": a.log_dir,
            "frames": summary.frames,
            "keyframes": summary.keyframes,
        });
        if a.json {
            println!("{out}");
        } else {
            println!(
                "\n{} of {} questions answered; accuracy {}, format {:.0}%, consistent {}; {} episodes in {} (embodied-r episodes ls --dir {})",
                answered,
                questions.len(),
                acc.map_or_else(|| "not scored (truth withheld)".into(), |a| format!("{:.0}%", a * 100.0)),
                out["format_rate"].as_f64().unwrap_or(0.0) * 100.0,
                out["consistency_rate"].as_f64().map(|c| format!("{:.0}%", c * 100.0)).unwrap_or_else(|| "n/a".into()),
                summary.log_records,
                a.log_dir.display(),
                a.log_dir.display()
            );
        }
        Ok(())
    })
}
