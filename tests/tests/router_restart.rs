//! The zenoh router the runtime goes through dies and comes back: a real `embodied-r run`
//! process in client mode behind a real zenoh router process (`test-router`, the library's own
//! router mode), asked by this test's client session through the same router. The router is
//! killed with SIGKILL mid-run and started again on the same port; the runtime must reconnect
//! by itself, answer again and declare its liveliness token again, without a restart.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::AskRequest;
use embodied_r_agent::client::ask;
use embodied_r_tests::{Proc, free_port, question, runtime_config, test_router, zenoh_session};
use serde_json::Value;
use std::process::Child;
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(180);
const ASK: &str = "robots/routed/embodied-r/ask";
const ALIVE: &str = "robots/routed/embodied-r/alive";

fn router(port: u16) -> Child {
    test_router(env!("CARGO_BIN_EXE_test-router"), port)
}

fn config(dir: &std::path::Path, router_port: u16) -> std::path::PathBuf {
    let text = format!(
        r#"[source]
kind = "sim"
scene = "indoor_0000"
width = 160
height = 120
actions = 200
frames_per_action = 4
fps = 8.0
rate = "realtime"

[describer]
kind = "sim"

[zenoh]
mode = "client"
connect = ["tcp/127.0.0.1:{router_port}"]
multicast = false
status_period_ms = 200

[log]
enabled = false
"#,
    );
    runtime_config(dir, "routed.toml", "routed", &text)
}

async fn client(router_port: u16) -> zenoh::Session {
    zenoh_session("client", &format!("tcp/127.0.0.1:{router_port}")).await
}

fn req() -> AskRequest {
    question("What is ahead of me?", 12_000)
}

/// Asks until an answer comes (no reply while disconnected, `no_frames` before the first key
/// frame), up to `within`; returns the answer and how long it took.
async fn answer_within(s: &zenoh::Session, within: Duration) -> (Value, Duration) {
    let t = Instant::now();
    loop {
        let v = ask(s, ASK, &req(), Duration::from_secs(15)).await;
        if let Ok(v) = &v
            && v.get("error").is_none()
        {
            return (v.clone(), t.elapsed());
        }
        assert!(
            t.elapsed() < within,
            "no answer within {within:?}; last: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether the runtime's liveliness token is visible through the router, asking until `within`.
async fn alive_within(s: &zenoh::Session, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < within {
        let replies = s
            .liveliness()
            .get(ALIVE)
            .timeout(Duration::from_secs(2))
            .await
            .unwrap();
        if replies.recv_async().await.is_ok() {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_reconnects_after_its_router_is_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let router_port = free_port();
    let mut r = router(router_port);
    let cfg = config(dir.path(), router_port);
    let mut rt = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], &[]);
    rt.wait_line("ready ", READY);
    let s = client(router_port).await;
    let (first, _) = answer_within(&s, Duration::from_secs(90)).await;
    assert!(first["text"].is_string(), "{first}");
    assert!(
        alive_within(&s, Duration::from_secs(10)).await.is_some(),
        "liveliness token before the restart"
    );

    // SIGKILL: no goodbye to anyone; both sessions see the link drop.
    let _ = r.kill();
    let _ = r.wait();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        rt.child.try_wait().unwrap().is_none(),
        "the runtime survives its router: {}",
        rt.stderr()
    );

    let mut r = router(router_port);
    let (again, took) = answer_within(&s, Duration::from_secs(60)).await;
    assert!(again["text"].is_string(), "{again}");
    let alive = alive_within(&s, Duration::from_secs(30)).await;
    eprintln!(
        "router back: answered again {took:?} after the restart ({:?} after the kill), token after {alive:?}",
        killed.elapsed()
    );
    assert!(alive.is_some(), "the liveliness token reappears");

    rt.terminate();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        rt.stderr()
    );
    let _ = r.kill();
    let _ = r.wait();
}
