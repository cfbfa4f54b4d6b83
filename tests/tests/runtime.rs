//! The runtime end to end: a real `embodied-r run` process with the simulator source, the sim
//! describer and the default LM, asked over zenoh on loopback by a separate `embodied-r ask`
//! process and by this test process's own zenoh session (for malformed requests and load).

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::AskRequest;
use embodied_r_agent::client::{ask, ask_raw};
use embodied_r_tests::{Proc, free_port, run, sim_config, zenoh_peer};
use serde_json::Value;
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(180);

fn req(q: &str, choices: &[&str]) -> AskRequest {
    AskRequest {
        question: q.into(),
        choices: (!choices.is_empty()).then(|| choices.iter().map(|s| s.to_string()).collect()),
        window: None,
        deadline_ms: None,
        ground_truth: None,
        category: None,
    }
}

/// Asks until the runtime has key frames (the capture thread may still be starting).
async fn ask_when_ready(s: &zenoh::Session, key: &str, r: &AskRequest) -> Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = ask(s, key, r, Duration::from_secs(120)).await.unwrap();
        if v["error"]["code"] != "no_frames" || Instant::now() > end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_asks_are_answered_or_refused_as_busy() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = sim_config(dir.path(), port, "[api]\nqueue = 3\n");
    let mut rt = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], &[]);
    rt.wait_line("ready ", READY);
    let pid = rt.child.id();
    let s = zenoh_peer(port).await;
    let key = "robots/sim/embodied-r/ask";
    let warm = ask_when_ready(&s, key, &req("Where is the door?", &[])).await;
    assert!(warm.get("error").is_none(), "{warm}");
    let rss_before = rss_kib(pid);

    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = ask(
                &s,
                key,
                &req(&format!("Question {i}: where is the lamp?"), &[]),
                Duration::from_secs(120),
            )
            .await;
            (r, t.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let (mut answered, mut busy, mut lat_answer, mut lat_busy) = (0, 0, Vec::new(), Vec::new());
    for t in tasks {
        let (r, ms) = t.await.unwrap();
        let v = r.unwrap();
        if v.get("text").is_some() {
            answered += 1;
            lat_answer.push(ms);
        } else {
            assert_eq!(v["error"]["code"], "busy", "every refusal is 'busy': {v}");
            busy += 1;
            lat_busy.push(ms);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(answered + busy, 100);
    assert!(
        answered >= 1 && busy >= 1,
        "answered {answered}, busy {busy}"
    );
    let pct = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
    };
    eprintln!(
        "load: 100 concurrent asks in {wall:.1} s: {answered} answered (p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms), {busy} busy (p50 {:.1} ms, p99 {:.1} ms)",
        pct(&mut lat_answer, 0.5),
        pct(&mut lat_answer, 0.95),
        pct(&mut lat_answer, 1.0),
        pct(&mut lat_busy, 0.5),
        pct(&mut lat_busy, 0.99)
    );
    let rss_after = rss_kib(pid);
    eprintln!("load: runtime RSS {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 200 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
    // Still alive and answering.
    let after = ask(
        &s,
        key,
        &req("Where is the window?", &[]),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert!(after.get("text").is_some(), "{after}");
    // The status publication counts what happened.
    let sub = s
        .declare_subscriber("robots/sim/embodied-r/status")
        .await
        .unwrap();
    let st = tokio::time::timeout(Duration::from_secs(10), sub.recv_async())
        .await
        .unwrap()
        .unwrap();
    let st: Value = serde_json::from_slice(&st.payload().to_bytes()).unwrap();
    assert_eq!(st["asks"]["busy"].as_u64().unwrap(), busy as u64, "{st}");
    assert!(
        st["latency_ms"]["generate"]["p95"].as_f64().is_some(),
        "{st}"
    );
    s.close().await.ok();
}
