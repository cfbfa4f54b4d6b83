//! `embodied-r bench runtime`: the runtime's own overhead, outside model time.
//!
//! 1. Capture: the warp video (640×480 by default) paced at 30 fps through the real capture
//!    loop (drop-oldest queue → sampler → ORB key-frame selection → JPEG → buffer); per-frame
//!    processing time, p50/p99, for every frame and for the frames the sampler passes on.
//! 2. Ask: a runtime on the simulator with the sim describer and the LM answers questions
//!    asked over zenoh (loopback); overhead = the client's round trip minus the describer,
//!    LM and consistency-check time the reply reports; p50/p99.

#![allow(clippy::print_stdout)]

use crate::inproc::{InProcess, loopback_endpoint, tokio_runtime};
use anyhow::{Context, Result};
use clap::Args;
use embodied_r_agent::capture::{CaptureConfig, CaptureStats, run_capture};
use embodied_r_agent::client::ask;
use embodied_r_agent::config::{Config, FsyncPolicy, Rate};
use embodied_r_agent::stats::Latencies;
use embodied_r_agent::{AskRequest, Runtime};
use embodied_r_perception::buffer::{BufferLimits, KeyFrameBuffer};
use embodied_r_perception::keyframe::SelectorConfig;
use embodied_r_perception::source::{Pacing, spawn};
use embodied_r_sim::source::WarpSource;
use embodied_r_sim::warp::WarpConfig;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `bench runtime`.
#[derive(Debug, Args)]
pub struct RuntimeBenchArgs {
    /// Input frame rate of the capture benchmark.
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// Frames per warp phase (the video has 4 phases).
    #[arg(long, default_value_t = 75)]
    pub frames_per_phase: u32,
    /// Frame size.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Frame size.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Sampling rate into key-frame selection (the paper's ~1 fps).
    #[arg(long, default_value_t = 1.0)]
    pub sample_fps: f64,
    /// Questions for the ask benchmark (0 skips it).
    #[arg(long, default_value_t = 20)]
    pub asks: usize,
    /// The LM for the ask benchmark.
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    /// Token budget per answer in the ask benchmark.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: usize,
    /// Print a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub fn run(a: &RuntimeBenchArgs) -> Result<()> {
    // 1. capture
    let src = WarpSource::new(
        WarpConfig {
            width: a.width,
            height: a.height,
            frames_per_phase: a.frames_per_phase,
            seed: 1,
        },
        a.fps,
    );
    let running = spawn(Box::new(src), 8, Pacing::RealTime).context("starting the source")?;
    let queue = running.queue.clone();
    let buffer = Arc::new(Mutex::new(KeyFrameBuffer::new(BufferLimits::default())));
    let stats = Arc::new(Mutex::new(CaptureStats::default()));
    let t = Instant::now();
    run_capture(
        running,
        CaptureConfig {
            sample_fps: a.sample_fps,
            max_gap_s: 2.0,
            selector: SelectorConfig::default(),
            jpeg_quality: 90,
        },
        buffer,
        stats.clone(),
        Arc::new(AtomicBool::new(false)),
        |_| {},
    );
    let wall = t.elapsed().as_secs_f64();
    let mut s = stats
        .lock()
        .map_err(|_| anyhow::anyhow!("capture stats poisoned"))?;
    let snap = s.snapshot();
    let dropped = queue.stats().dropped;
    let capture = serde_json::json!({
        "frames": snap.frames_in,
        "dropped": dropped,
        "wall_s": wall,
        "input_fps": a.fps,
        "sample_fps": a.sample_fps,
        "sampled": snap.sampled,
        "kept": snap.kept,
        "per_frame_ms": snap.per_frame_ms,
        "sampled_ms": snap.sampled_ms,
    });
    drop(s);

    // 2. ask
    let ask_report = if a.asks > 0 {
        Some(ask_overhead(a)?)
    } else {
        None
    };
    let report = serde_json::json!({"capture": capture, "ask": ask_report});
    if a.json {
        println!("{report}");
    } else {
        let p = |v: &serde_json::Value| {
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                v["p50"].as_f64().unwrap_or(f64::NAN),
                v["p99"].as_f64().unwrap_or(f64::NAN),
                v["max"].as_f64().unwrap_or(f64::NAN)
            )
        };
        println!(
            "capture at {} fps ({}x{}): {} frames, {} dropped, {} sampled at {} fps, {} key frames",
            a.fps,
            a.width,
            a.height,
            capture["frames"],
            dropped,
            capture["sampled"],
            a.sample_fps,
            capture["kept"]
        );
        println!("  every frame:    {}", p(&capture["per_frame_ms"]));
        println!("  sampled frames: {}", p(&capture["sampled_ms"]));
        if let Some(r) = &report["ask"].as_object() {
            println!(
                "ask → reply over zenoh, minus describer + LM time ({} asks): {}",
                r["asks"],
                p(&report["ask"]["overhead_ms"])
            );
            println!("  round trip:     {}", p(&report["ask"]["round_trip_ms"]));
        }
    }
    Ok(())
}

fn ask_overhead(a: &RuntimeBenchArgs) -> Result<serde_json::Value> {
    if !a.model.exists() {
        anyhow::bail!(
            "{} is missing: run fetch-model first, or --asks 0",
            a.model.display()
        );
    }
    let endpoint = loopback_endpoint()?;
    let mut cfg = Config {
        robot_id: "bench".into(),
        ..Config::default()
    };
    cfg.source.scene = "indoor_0000".into();
    cfg.source.rate = Rate::Max;
    cfg.keyframes.sample_fps = 0.0;
    cfg.reasoner.model = a.model.clone();
    cfg.reasoner.max_tokens = a.max_tokens;
    cfg.zenoh.listen = vec![endpoint.clone()];
    cfg.zenoh.multicast = false;
    let log = tempfile::tempdir()?;
    cfg.log.dir = log.path().to_path_buf();
    cfg.log.fsync = FsyncPolicy::Always;
    let runtime = Runtime::new(cfg)?;
    let keys = runtime.keys();
    let rt = tokio_runtime()?;
    let asks = a.asks;
    let max_tokens = a.max_tokens;
    rt.block_on(async move {
        let inproc = InProcess::start(runtime, &endpoint).await?;
        let req = AskRequest {
            question: "Which is closer to me, the door or the window?".into(),
            choices: Some(vec!["the door".into(), "the window".into()]),
            window: None,
            deadline_ms: None,
            ground_truth: None,
            category: None,
            client: None,
        };
        let (mut over, mut rtt) = (Latencies::new(asks + 1), Latencies::new(asks + 1));
        let mut done = 0;
        let t_end = Instant::now() + Duration::from_secs(600);
        while done < asks && Instant::now() < t_end {
            let t = Instant::now();
            let v = ask(&inproc.session, &keys.ask, &req, Duration::from_secs(120)).await?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if v["error"]["code"] == "no_frames" {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if let Some(e) = v.get("error") {
                anyhow::bail!("the runtime refused a benchmark question: {e}");
            }
            let model: f64 = ["describe", "generate", "consistency"]
                .iter()
                .map(|k| v["timings"][k].as_f64().unwrap_or(0.0))
                .sum();
            // The first answer warms caches; measure the rest.
            if done > 0 || asks == 1 {
                over.record(ms - model);
                rtt.record(ms);
            }
            done += 1;
        }
        inproc.stop().await?;
        Ok(serde_json::json!({
            "asks": done,
            "overhead_ms": over.percentiles(),
            "round_trip_ms": rtt.percentiles(),
            "max_tokens": max_tokens,
        }))
    })
}
