//! The runtime end to end: a real `embodied-r run` process with the simulator source, the sim
//! describer and the default LM, asked over zenoh on loopback by a separate `embodied-r ask`
//! process and by this test process's own zenoh session (for malformed requests). Load and
//! soak are in `load.rs` and `soak.rs`.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::AskRequest;
use embodied_r_agent::client::{ask, ask_raw};
use embodied_r_tests::{Proc, ask_when_ready, free_port, question, run, sim_config, zenoh_peer};
use serde_json::Value;
use std::time::Duration;

const READY: Duration = Duration::from_secs(180);

fn req(q: &str, choices: &[&str]) -> AskRequest {
    AskRequest {
        choices: (!choices.is_empty()).then(|| choices.iter().map(|s| s.to_string()).collect()),
        deadline_ms: None,
        ..question(q, 0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_zenoh_logs_episodes_replays_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = sim_config(dir.path(), port, "");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let mut rt = Proc::spawn(&["run", "--config", &cfg_s], &[]);
    let ready = rt.wait_line("ready ", READY);
    let ready: Value = serde_json::from_str(ready.trim_start_matches("ready ")).unwrap();
    assert_eq!(ready["keys"]["ask"], "robots/sim/embodied-r/ask");
    assert_eq!(ready["describer"], "sim-ground-truth-describer");

    let s = zenoh_peer(port).await;
    let key = "robots/sim/embodied-r/ask";
    // A multiple-choice question first (this process), then the console in its own process.
    let first = ask_when_ready(
        &s,
        key,
        &req(
            "Which object did you see first?",
            &["the door", "the window"],
        ),
    )
    .await;
    assert!(first.get("error").is_none(), "{first}");
    for k in [
        "choice",
        "text",
        "think",
        "nav_hint",
        "grounding",
        "format_ok",
        "consistent",
        "timings",
    ] {
        assert!(first.get(k).is_some(), "reply lacks {k}: {first}");
    }
    assert!(
        first["grounding"]["frames"].as_array().unwrap().len() >= 2,
        "{first}"
    );
    assert!(
        first["grounding"]["frames"][0]["pose"].is_array(),
        "{first}"
    );
    let action = first["nav_hint"]["action"].as_str().unwrap();
    assert!(
        action.parse::<embodied_r_perception::Action>().is_ok(),
        "{action}"
    );
    assert!(first["timings"]["generate"].as_f64().unwrap() > 0.0);
    assert!(
        first["consistent"].is_boolean(),
        "multiple choice runs the check: {first}"
    );

    let connect = format!("tcp/127.0.0.1:{port}");
    let (code, out, err) = run(
        &[
            "ask",
            "--connect",
            &connect,
            "--no-multicast",
            "--robot",
            "sim",
            "--json",
            "--timeout",
            "120",
            "Where is the sofa?",
        ],
        &[],
    );
    assert_eq!(code, 0, "ask failed: {err}");
    let free: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        free["choice"].is_null() && free["consistent"].is_null(),
        "{free}"
    );
    assert!(
        free["nav_hint"]["reason"].as_str().unwrap().len() > 3,
        "{free}"
    );
    // Human output of the same console.
    let (code, out, _) = run(
        &[
            "ask",
            "--connect",
            &connect,
            "--no-multicast",
            "--timeout",
            "120",
            "Is the lamp on my left?",
            "--choice",
            "A=yes",
            "--choice",
            "B=no",
            "--truth",
            "no",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("Nav hint:") && out.contains("Frames:"),
        "{out}"
    );

    // Every malformed request gets an error reply naming the problem.
    for (payload, code, words) in [
        (&b"{not json"[..], "bad_request", "not a valid ask object"),
        (
            br#"{"question":"q","colour":"red"}"#,
            "bad_request",
            "colour",
        ),
        (
            br#"{"question":"q","choices":["only one"]}"#,
            "bad_request",
            "choices",
        ),
        (
            br#"{"question":"q","deadline_ms":1}"#,
            "deadline_unmeetable",
            "deadline_ms",
        ),
        (
            br#"{"question":"q","choices":["a","b"],"ground_truth":"E"}"#,
            "bad_request",
            "`E` is not one of its 2 options",
        ),
    ] {
        let v = ask_raw(&s, key, payload.to_vec(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(words),
            "{v}"
        );
    }
    let big = format!(r#"{{"question":"{}"}}"#, "x".repeat(10_000));
    let v = ask_raw(&s, key, big.into_bytes(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(v["error"]["code"], "too_large", "{v}");

    // The episode log has the three answered questions; replay reproduces one exactly.
    let log = dir.path().join("episodes");
    let log_s = log.to_str().unwrap();
    let (code, out, err) = run(
        &[
            "episodes", "ls", "--json", "--config", &cfg_s, "--dir", log_s,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let eps: Value = serde_json::from_str(out.trim()).unwrap();
    let eps = eps.as_array().unwrap();
    assert_eq!(eps.len(), 3, "{eps:?}");
    // `ask --truth no` recorded the option's letter as the episode's truth.
    assert_eq!(eps[2]["ground_truth"], "B", "{:?}", eps[2]);
    assert_eq!(eps[2]["truth_source"], "recorded", "{:?}", eps[2]);
    assert!(eps[0]["truth_source"].is_null(), "{:?}", eps[0]);
    let id = eps[0]["id"].as_str().unwrap().to_string();
    assert_eq!(id, first["question_id"].as_str().unwrap());
    let (code, out, err) = run(
        &[
            "episodes", "replay", &id, "--json", "--config", &cfg_s, "--dir", log_s,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let cmp: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(cmp["identical"], true, "{cmp}");
    let (code, _, err) = run(
        &[
            "episodes",
            "show",
            "no-such-id",
            "--config",
            &cfg_s,
            "--dir",
            log_s,
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no episode `no-such-id`"), "{err}");

    // The console's live view sees the status publication.
    let c2 = connect.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &[
                "watch",
                "--connect",
                &c2,
                "--no-multicast",
                "--json",
                "--count",
                "2",
                "--seconds",
                "30",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let status = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["key"] == "robots/sim/embodied-r/status")
        .unwrap_or_else(|| panic!("no status in watch output: {out}"));
    assert!(
        status["value"]["asks"]["answered"].as_u64().unwrap() >= 3,
        "{status}"
    );
    assert_eq!(
        status["value"]["models"]["describer"],
        "sim-ground-truth-describer"
    );
    assert!(
        status["value"]["keyframes"]["buffered"].as_u64().unwrap() >= 2,
        "{status}"
    );

    // SIGTERM with a question in flight: the question still gets a reply, the process exits 0.
    let pending = {
        let s2 = zenoh_peer(port).await;
        tokio::spawn(async move {
            let r = ask(
                &s2,
                key,
                &req("What is ahead of me?", &[]),
                Duration::from_secs(60),
            )
            .await;
            s2.close().await.ok();
            r
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.terminate();
    let reply = pending.await.unwrap().unwrap();
    assert!(
        reply.get("text").is_some() || reply["error"]["code"] == "shutting_down",
        "{reply}"
    );
    let code = tokio::task::spawn_blocking(move || {
        let c = rt.wait_exit(Duration::from_secs(60));
        let lines = rt.drain();
        (c, lines)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0));
    assert!(
        code.1.iter().any(|l| l.starts_with("summary ")),
        "{:?}",
        code.1
    );
    s.close().await.ok();
}
