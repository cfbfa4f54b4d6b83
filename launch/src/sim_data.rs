//! Training and evaluation examples from the simulator's benchmark directories: each question's
//! video is re-rendered from the benchmark's seed (byte-identical to what `sim generate` wrote),
//! key frames are selected with the paper's rule (≈1 fps downsampling, ORB overlap, 4–32
//! frames), and the ground-truth describer writes the video text the LM sees, as a VLM would.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
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

/// Examples for a split file (`train_data.json`, `val_data.json`, `test_data.json`) of a
/// benchmark directory written by `embodied-r sim generate`.
pub fn sim_examples(split: &Path) -> Result<Vec<Example>> {
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
        for r in rows {
            let descs = describer
                .describe(
                    &flight.scene,
                    &flight.truth,
                    flight.frame_pixels,
                    &keys,
                    &r.question,
                )
                .with_context(|| format!("describing {video_id}"))?;
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
                solution: answer,
                choices: parse_choices(question),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_questions_get_the_described_video_text() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = GenerateConfig {
            kinds: vec![SceneKind::Indoor],
            scenes: 2,
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
        let split = dir.path().join("train_data.json");
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&split).expect("read")).expect("rows");
        let ex = sim_examples(&split).expect("examples");
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
        let err = format!("{:#}", sim_examples(&lone).unwrap_err());
        assert!(err.contains("benchmark.json"), "{err}");
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
