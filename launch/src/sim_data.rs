//! Training and evaluation examples from the simulator's benchmark directories: each question's
//! video is re-rendered from the benchmark's seed (byte-identical to what `sim generate` wrote),
//! key frames are selected with the paper's rule (≈1 fps downsampling, ORB overlap, 4–32
//! frames), and the video text the LM sees is written by the ground-truth describer, or by a VLM
//! sent the key frames as JPEGs (spec §2), as the runtime would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use embodied_r_perception::buffer::KeyFrame;
use embodied_r_perception::describe::Describer;
use embodied_r_perception::keyframe::{Clamp, SelectorConfig, downsample_indices, select};
use embodied_r_perception::video_text::assemble;
use embodied_r_reasoner::prompt::{SYSTEM_PROMPT, user_message};
use embodied_r_sim::{DescriberErrors, GenerateConfig, SceneKind, SimDescriber, SimFlight};
use embodied_r_trainer::data::{Example, parse_choices};
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Row {
    Question_id: serde_json::Value,
    video_id: String,
    question_category: String,
    question: String,
    answer: serde_json::Value,
}

/// How many rules traces were kept per category: (kept, examples).
pub type TraceCounts = BTreeMap<String, (usize, usize)>;

/// A numeric trace is kept when its estimate scores at least this (mean relative accuracy).
const NUMERIC_TRACE_MIN: f64 = 0.75;

/// Gives each example the rules answerer's trace (`embodied_r_sim::reading`) as its SFT
/// target, keeping only examples whose trace reasons from the video text to the gold answer
/// (checked with the same strict reading the reward uses; a guess never counts). The others
/// are dropped: a trace that reasons to a wrong answer would teach wrong reasoning.
pub fn with_rules_traces(examples: Vec<Example>) -> (Vec<Example>, TraceCounts) {
    let mut counts = TraceCounts::new();
    let mut out = Vec::with_capacity(examples.len());
    for mut ex in examples {
        let q = ex.question();
        let q = q.strip_prefix("Question:").unwrap_or(&q).trim_start();
        let stem = q.split("\nChoices:").next().unwrap_or(q);
        let r = embodied_r_sim::reading::answer(&ex.category, &ex.user, stem, &ex.choices);
        let text = r.completion();
        // Simulator examples always carry their truth; one without cannot check a trace.
        let Some(gold) = ex.solution.as_deref() else {
            continue;
        };
        let s = embodied_r_reasoner::reward::score(
            &text,
            gold,
            &ex.choices,
            embodied_r_reasoner::reward::Extraction::Strict,
        );
        let need = if ex.choices.is_empty() {
            NUMERIC_TRACE_MIN
        } else {
            1.0
        };
        let c = counts.entry(ex.category.clone()).or_default();
        c.1 += 1;
        if r.grounded && s.format >= 1.0 && s.accuracy >= need {
            c.0 += 1;
            ex.target = Some(text);
            out.push(ex);
        }
    }
    (out, counts)
}

/// `city_0003_v1` → (City, 3, 1).
fn parse_video_id(id: &str) -> Option<(SceneKind, u32, u32)> {
    let (scene, video) = id.rsplit_once("_v")?;
    let (kind, index) = scene.split_once('_')?;
    let kind = match kind {
        "city" => SceneKind::City,
        "indoor" => SceneKind::Indoor,
        _ => return None,
    };
    Some((kind, index.parse().ok()?, video.parse().ok()?))
}

/// Who writes the video text of a simulator benchmark's questions.
pub enum VideoDescriber {
    /// The simulator's ground-truth describer.
    Sim,
    /// A VLM (the runtime's describers, e.g. an OpenAI-compatible endpoint), sent the key
    /// frames as JPEGs with the question; `deadline` bounds each question's descriptions.
    Vlm {
        /// The describer.
        describer: Box<dyn Describer>,
        /// Longest the descriptions of one question may take.
        deadline: Duration,
    },
}

/// JPEG quality of the key frames sent to a VLM (the runtime's default).
const JPEG_QUALITY: u8 = 90;

/// Examples for a split file (`train_data.json`, `val_data.json`, `test_data.json`) of a
/// benchmark directory written by `embodied-r sim generate`.
pub fn sim_examples(split: &Path, writer: &VideoDescriber) -> Result<Vec<Example>> {
    let dir = split.parent().unwrap_or(Path::new("."));
    let bench = dir.join("benchmark.json");
    let text = std::fs::read_to_string(&bench).with_context(|| {
        format!(
            "{} is not inside a simulator benchmark (no {}); --describer sim needs the split files \
             `sim generate` writes",
            split.display(),
            bench.display()
        )
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", bench.display()))?;
    let cfg: GenerateConfig = serde_json::from_value(v["config"].clone())
        .with_context(|| format!("{}: `config` is not a generation config", bench.display()))?;
    let rows: Vec<Row> = serde_json::from_str(
        &std::fs::read_to_string(split).with_context(|| format!("reading {}", split.display()))?,
    )
    .with_context(|| format!("{}: expected benchmark rows", split.display()))?;
    let mut by_video: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by_video.entry(r.video_id.clone()).or_default().push(r);
    }
    let describer = SimDescriber::new(DescriberErrors::default(), cfg.seed)?;
    let mut out = Vec::new();
    for (video_id, rows) in by_video {
        let Some((kind, scene, video)) = parse_video_id(&video_id) else {
            bail!(
                "{}: video_id `{video_id}` is not a simulator video (`city_NNNN_vK` or `indoor_NNNN_vK`)",
                split.display()
            );
        };
        let flight = SimFlight::prepare(kind, scene, video, &cfg)
            .with_context(|| format!("rendering {video_id}"))?;
        let sampled = downsample_indices(flight.frames.len(), cfg.fps);
        let selection = select(
            sampled.iter().map(|&i| flight.frames[i].clone()),
            &SelectorConfig::default(),
            Clamp::default(),
            8,
        );
        let keys: Vec<usize> = selection.kept.iter().map(|&k| sampled[k]).collect();
        tracing::debug!(video = %video_id, keys = keys.len(), "key frames");
        let jpegs = match writer {
            VideoDescriber::Sim => Vec::new(),
            VideoDescriber::Vlm { .. } => keys
                .iter()
                .map(|&k| KeyFrame::from_frame(&flight.frames[k], JPEG_QUALITY))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("encoding the key frames of {video_id}"))?,
        };
        for r in rows {
            let descs = match writer {
                VideoDescriber::Sim => describer
                    .describe(
                        &flight.scene,
                        &flight.truth,
                        flight.frame_pixels,
                        &keys,
                        &r.question,
                    )
                    .with_context(|| format!("describing {video_id}"))?,
                VideoDescriber::Vlm {
                    describer: vlm,
                    deadline,
                } => vlm
                    .describe(&jpegs, &r.question, Instant::now() + *deadline)
                    .with_context(|| {
                        format!(
                            "describing {video_id} ({} key frames) with {}",
                            jpegs.len(),
                            vlm.label()
                        )
                    })?,
            };
            let question = r.question.trim();
            let stem = question
                .strip_prefix("Question:")
                .unwrap_or(question)
                .trim_start();
            let answer = match &r.answer {
                serde_json::Value::String(s) => s.trim().to_ascii_uppercase(),
                other => other.to_string(),
            };
            out.push(Example {
                id: match &r.Question_id {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                category: r.question_category.clone(),
                system: SYSTEM_PROMPT.to_string(),
                user: user_message(&assemble(&descs), stem),
                solution: Some(answer),
                choices: parse_choices(question),
                target: None,
                withheld: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A small benchmark (160×120 frames, one video per scene) in a temporary directory.
    fn small_benchmark(kind: SceneKind, scenes: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = GenerateConfig {
            kinds: vec![kind],
            scenes,
            videos_per_scene: 1,
            camera: embodied_r_sim::Camera {
                width: 160,
                height: 120,
                ..embodied_r_sim::Camera::default()
            },
            mp4: embodied_r_sim::dataset::Mp4::Never,
            ..GenerateConfig::default()
        };
        embodied_r_sim::generate(&cfg, dir.path(), |_| {}).expect("generate");
        dir
    }

    #[test]
    fn benchmark_questions_get_the_described_video_text() {
        let dir = small_benchmark(SceneKind::Indoor, 2);
        let split = dir.path().join("train_data.json");
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&split).expect("read")).expect("rows");
        let ex = sim_examples(&split, &VideoDescriber::Sim).expect("examples");
        assert_eq!(ex.len(), rows.len());
        for e in &ex {
            assert!(
                e.user
                    .contains("Video content: \n<\nI will describe the content"),
                "{}",
                e.user
            );
            assert!(e.user.contains("Frame 0: Observe: "), "{}", e.user);
            assert!(e.user.contains("\n>\nQuestion: "), "{}", e.user);
            assert!(!e.user.contains("Question: Question:"), "{}", e.user);
        }
        // Outside a benchmark directory the error says what is needed.
        let lone = dir.path().join("videos").join("rows.json");
        std::fs::write(&lone, "[]").expect("write");
        let err = format!(
            "{:#}",
            sim_examples(&lone, &VideoDescriber::Sim).unwrap_err()
        );
        assert!(err.contains("benchmark.json"), "{err}");
    }

    /// A minimal OpenAI-compatible server on loopback: every POST gets `reply` as the chat
    /// completion's content; returns the base URL and the count of requests served.
    fn fake_vlm(reply: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let server = std::thread::Builder::new().name("fake-vlm".into());
        server.spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.to_ascii_lowercase();
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                // The frames arrive as JPEG data URLs after the prompt text.
                let jpeg = req["messages"][0]["content"][1]["image_url"]["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("data:image/jpeg;base64,"));
                let content = if jpeg { reply } else { "no image" };
                let out = serde_json::json!({
                    "choices": [{"message": {"role": "assistant", "content": content}}]
                })
                .to_string();
                count.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                    out.len()
                );
            }
        })
        .expect("spawn");
        (url, served)
    }

    #[test]
    fn a_vlm_describes_the_rendered_key_frames() {
        let dir = small_benchmark(SceneKind::City, 1);
        let split = ["train_data.json", "val_data.json", "test_data.json"]
            .iter()
            .map(|f| dir.path().join(f))
            .find(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
                    .is_some_and(|rows| !rows.is_empty())
            })
            .expect("a split with questions");
        let (url, served) =
            fake_vlm("1. Move forward\n2. A tall glass tower ahead.\n3. Nothing new.");
        let describer = embodied_r_perception::describe::openai::OpenAiDescriber::new(
            embodied_r_perception::describe::openai::OpenAiConfig {
                base_url: url,
                ..Default::default()
            },
        )
        .expect("describer");
        let video = VideoDescriber::Vlm {
            describer: Box::new(describer),
            deadline: Duration::from_secs(60),
        };
        let ex = sim_examples(&split, &video).expect("examples");
        assert!(!ex.is_empty());
        for e in &ex {
            assert!(e.user.contains("A tall glass tower ahead."), "{}", e.user);
            assert!(!e.user.contains("no image"), "{}", e.user);
        }
        // One request per key frame per question (the prompts depend on the question).
        let frames: usize = ex.iter().map(|e| e.user.matches("Frame ").count()).sum();
        assert_eq!(served.load(Ordering::SeqCst), frames);
        // A dead endpoint is an error naming the video and the describer.
        let dead = embodied_r_perception::describe::openai::OpenAiDescriber::new(
            embodied_r_perception::describe::openai::OpenAiConfig {
                base_url: "http://127.0.0.1:9/v1".into(),
                retries: 0,
                ..Default::default()
            },
        )
        .expect("describer");
        let video = VideoDescriber::Vlm {
            describer: Box::new(dead),
            deadline: Duration::from_secs(10),
        };
        let err = format!("{:#}", sim_examples(&split, &video).unwrap_err());
        assert!(
            err.contains("city_0000_v0") && err.contains("openai:"),
            "{err}"
        );
    }

    #[test]
    fn video_ids() {
        assert_eq!(
            parse_video_id("city_0003_v1"),
            Some((SceneKind::City, 3, 1))
        );
        assert_eq!(
            parse_video_id("indoor_0010_v0"),
            Some((SceneKind::Indoor, 10, 0))
        );
        assert_eq!(parse_video_id("scene0001.mp4"), None);
    }
}
