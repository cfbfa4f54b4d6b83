//! The local vision-language model end to end: `embodied-r describe` prints what transformers
//! generated for the same tiny model and images (fixtures of `tools/fixtures_vlm.py`), refuses
//! bad input with messages naming it, and a real `embodied-r run` with `describer.kind = "local"`
//! describes its key frames with that model and answers over zenoh.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::client::ask;
use embodied_r_reasoner::Tokenizer;
use embodied_r_tests::{Proc, free_port, question, run, sim_config, workspace, zenoh_peer};
use serde_json::Value;
use std::time::{Duration, Instant};

const VLM: &str = "reasoner/tests/fixtures/vlm/idefics3";
const IMAGES: &str = "reasoner/tests/fixtures/vlm/images";

fn reference(model: &str) -> Value {
    let p = workspace().join(format!(
        "reasoner/tests/fixtures/vlm/reference/{model}.json"
    ));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs `describe` on prompt 0 of `model`'s fixtures (wide.png, tall.png, then a text) and
/// checks stdout is transformers' greedy text; returns stderr.
fn describe_matches(model: &str) -> String {
    let r = reference(model);
    let case = &r["prompts"][0];
    assert_eq!(case["images"], serde_json::json!(["wide.png", "tall.png"]));
    let text = case["messages"][0]["content"][2]["text"].as_str().unwrap();
    let greedy: Vec<u32> = case["greedy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let dir = format!("reasoner/tests/fixtures/vlm/{model}");
    let tok = Tokenizer::from_file(
        &workspace().join(&dir).join("tokenizer.json"),
        None,
        vec![],
        false,
    )
    .unwrap();
    let want = tok.decode(&greedy, true).unwrap();
    let (code, out, err) = run(
        &[
            "describe",
            "--vlm",
            &dir,
            "--image",
            &format!("{IMAGES}/wide.png"),
            "--image",
            &format!("{IMAGES}/tall.png"),
            "--prompt",
            text,
            "--max-tokens",
            "16",
            "--threads",
            "1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, want,
        "{model}: stdout must be exactly the generated text"
    );
    err
}

#[test]
fn describe_prints_what_transformers_generated() {
    let err = describe_matches("idefics3");
    assert!(err.contains("2 images → 8 tiles, 32 image tokens"), "{err}");
    // Qwen2.5-VL: each image at its own resolution (8×12 and 16×6 patches → 24 + 24 tokens).
    let err = describe_matches("qwen2_5_vl");
    assert!(err.contains("2 images → 2 tiles, 48 image tokens"), "{err}");
}

#[test]
fn describe_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8 not really a jpeg").unwrap();
    let img = format!("{IMAGES}/wide.png");
    for (args, want) in [
        (
            vec!["--vlm", VLM, "--image", bad.to_str().unwrap()],
            "broken.jpg",
        ),
        (
            vec![
                "--vlm",
                "reasoner/tests/fixtures/tiny-llama",
                "--image",
                &img,
            ],
            "LlamaForCausalLM",
        ),
        (
            vec!["--vlm", "no/such/folder", "--image", &img],
            "no/such/folder",
        ),
    ] {
        let mut a = vec!["describe", "--prompt", "What is here?"];
        a.extend(args);
        let (code, _, err) = run(&a, &[]);
        assert_ne!(code, 0, "{a:?}");
        assert!(err.contains(want), "{a:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_describes_key_frames_with_the_local_model() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let vlm = workspace().join(VLM);
    let cfg = sim_config(dir.path(), port, "");
    // Swap the sim describer for the local model (the sim source stays: it is only a camera).
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[describer]\nkind = \"sim\"",
        &format!(
            "[describer]\nkind = \"local\"\nvlm = \"{}\"\nvlm_max_tokens = 12",
            vlm.display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let cfg_s = cfg.to_str().unwrap().to_string();
    let mut rt = Proc::spawn(&["run", "--config", &cfg_s], &[]);
    let ready = rt.wait_line("ready ", Duration::from_secs(180));
    let ready: Value = serde_json::from_str(ready.trim_start_matches("ready ")).unwrap();
    let label = ready["describer"].as_str().unwrap();
    assert!(
        label.contains("local:idefics3") && label.contains("Idefics3ForConditionalGeneration"),
        "{ready}"
    );

    let s = zenoh_peer(port).await;
    let key = "robots/sim/embodied-r/ask";
    let req = question("Which object is closest to the door?", 120_000);
    let end = Instant::now() + Duration::from_secs(120);
    let reply = loop {
        let v = ask(&s, key, &req, Duration::from_secs(150)).await.unwrap();
        if v["error"]["code"] != "no_frames" || Instant::now() > end {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(
        reply["grounding"]["frames"].as_array().unwrap().len() >= 2,
        "{reply}"
    );
    assert!(
        reply["timings"]["describe"].as_f64().unwrap() > 0.0,
        "{reply}"
    );
    assert!(
        reply["describer"]
            .as_str()
            .unwrap()
            .contains("local:idefics3"),
        "{reply}"
    );
    s.close().await.unwrap();
    rt.terminate();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        rt.stderr()
    );

    // The episode was logged.
    let log = dir.path().join("episodes");
    let (code, out, err) = run(
        &["episodes", "ls", "--json", "--dir", log.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let eps: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(!eps.as_array().unwrap().is_empty(), "{out}");
}
