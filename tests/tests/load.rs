//! Load, end to end: a real `embodied-r run` process asked 100 questions at once by four
//! client processes (`embodied-r bench load`, 25 each). Every ask is answered or refused as
//! `busy` within its deadline (none silent), every refusal comes from the per-client bound,
//! one flooding client cannot crowd out another, and nothing leaks (descriptors, threads, tokio
//! tasks come back where they were). Prints p50/p99 of both outcomes.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::AskRequest;
use embodied_r_agent::client::ask;
use embodied_r_tests::{
    Proc, ask_when_ready, free_port, question, run, sim_config, status_until, zenoh_peer,
};
use serde_json::Value;
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(180);

/// A question from `client`.
fn req(q: &str, client: &str, deadline_ms: u64) -> AskRequest {
    AskRequest {
        client: Some(client.into()),
        ..question(q, deadline_ms)
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a count, got {v}"))
}

/// Nearest-rank percentile.
fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Runs `embodied-r bench load` as its own process on a blocking thread.
fn load_process(
    port: u16,
    client: &str,
    asks: usize,
) -> tokio::task::JoinHandle<(i32, String, String)> {
    let connect = format!("tcp/127.0.0.1:{port}");
    let client = client.to_string();
    tokio::task::spawn_blocking(move || {
        let asks = asks.to_string();
        run(
            &[
                "bench",
                "load",
                "--asks",
                &asks,
                "--concurrency",
                &asks,
                "--client",
                &client,
                "--deadline-ms",
                "90000",
                "--timeout",
                "150",
                "--json",
                "--robot",
                "sim",
                "--connect",
                &connect,
                "--no-multicast",
            ],
            &[],
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_asks_from_four_processes_are_answered_or_refused_and_no_client_crowds_out_another()
 {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Room for every client's two slots (4 × 2 ≤ 8 waiting + 1 answering): any refusal must
    // come from the per-client bound, never from the shared queue.
    let cfg = sim_config(dir.path(), port, "[api]\nqueue = 8\nper_client = 2\n");
    let mut rt = Proc::spawn(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--set",
            "zenoh.max_message_bytes=4194304",
        ],
        &[],
    );
    rt.wait_line("ready ", READY);
    let s = zenoh_peer(port).await;
    let (key, status_key) = ("robots/sim/embodied-r/ask", "robots/sim/embodied-r/status");
    let warm = ask_when_ready(&s, key, &req("Where is the door?", "warm-up", 60_000)).await;
    assert!(warm.get("error").is_none(), "{warm}");
    let before = status_until(&s, status_key, Duration::from_secs(10), |st| {
        st["queue"]["clients"] == 0
    })
    .await;

    let t0 = Instant::now();
    let procs: Vec<_> = (0..4)
        .map(|k| load_process(port, &format!("console-{k}"), 25))
        .collect();
    let (mut answered_ms, mut refused_ms) = (Vec::new(), Vec::new());
    for (k, p) in procs.into_iter().enumerate() {
        let (code, out, err) = p.await.unwrap();
        assert_eq!(code, 0, "client {k} (no ask may go unanswered): {err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        let sum = &v["summary"];
        assert_eq!(sum["client"], format!("console-{k}"));
        assert_eq!((u(&sum["asks"]), u(&sum["silent"])), (25, 0), "{sum}");
        // The client's first two asks always find room; the rest may be refused as busy.
        assert!(u(&sum["answered"]) >= 2, "client {k}: {sum}");
        for a in v["asks"].as_array().unwrap() {
            let ms = a["ms"].as_f64().unwrap();
            match a["outcome"].as_str().unwrap() {
                "answered" => answered_ms.push(ms),
                "busy" => refused_ms.push(ms),
                other => panic!("client {k}: an ask ended as {other:?}, not answered or busy"),
            }
            assert!(ms < 90_000.0, "client {k}: a reply after the deadline: {a}");
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (answered, busy) = (answered_ms.len(), refused_ms.len());
    assert_eq!(answered + busy, 100);
    eprintln!(
        "load: 100 asks from 4 processes in {wall:.1} s: {answered} answered (p50 {:.0} ms, p99 {:.0} ms), {busy} refused as busy (p50 {:.1} ms, p99 {:.1} ms)",
        pct(&mut answered_ms, 0.5),
        pct(&mut answered_ms, 0.99),
        pct(&mut refused_ms, 0.5),
        pct(&mut refused_ms, 0.99),
    );

    // The runtime counted the same, and every refusal came from the per-client bound.
    let after = status_until(&s, status_key, Duration::from_secs(20), |st| {
        st["queue"]["clients"] == 0 && st["queue"]["in_flight"] == 0
    })
    .await;
    let d = |path: &[&str]| {
        let get = |st: &Value| path.iter().fold(st.clone(), |v, k| v[*k].clone());
        u(&get(&after)) - u(&get(&before))
    };
    assert_eq!(d(&["asks", "answered"]), answered as u64, "{after}");
    assert_eq!(d(&["asks", "busy"]), busy as u64, "{after}");
    assert_eq!(d(&["asks", "busy_client"]), busy as u64, "{after}");
    assert!(
        after["latency_ms"]["generate"]["p95"].as_f64().is_some(),
        "{after}"
    );

    // One client floods (40 at once); another still gets in and is answered.
    let flood = load_process(port, "flood", 40);
    let seen = status_until(&s, status_key, Duration::from_secs(60), |st| {
        u(&st["asks"]["busy_client"]) > u(&after["asks"]["busy_client"])
    })
    .await;
    assert_eq!(seen["queue"]["per_client"], 2, "{seen}");
    let console = ask(
        &s,
        key,
        &req("What is on my left?", "console", 90_000),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert!(console.get("text").is_some(), "{console}");
    let (code, out, err) = flood.await.unwrap();
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        u(&v["summary"]["refused"]["busy"]) >= 30,
        "the flood is held to its two slots: {}",
        v["summary"]
    );

    // A 16 MiB ask is over the transport's 4 MiB limit: zenoh drops it before the runtime
    // reads anything (no reply, not counted), and the runtime goes on answering.
    let received = u(
        &status_until(&s, status_key, Duration::from_secs(5), |_| true).await["asks"]["received"],
    );
    let huge = format!(r#"{{"question": "{}"}}"#, "x".repeat(16 << 20));
    let r =
        embodied_r_agent::client::ask_raw(&s, key, huge.into_bytes(), Duration::from_secs(5)).await;
    eprintln!("load: a 16 MiB ask: {r:?}");
    assert!(
        matches!(
            r,
            Err(embodied_r_agent::client::ClientError::NoReply { .. })
        ),
        "the transport drops it: {r:?}"
    );
    let again = ask(
        &s,
        key,
        &req("Where is the door?", "console", 90_000),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert!(again.get("text").is_some(), "{again}");
    let st = status_until(&s, status_key, Duration::from_secs(5), |_| true).await;
    assert_eq!(
        u(&st["asks"]["received"]),
        received + 1,
        "only the console's ask: {st}"
    );

    // Nothing leaked: descriptors and tasks come back (bounded wait for the client processes'
    // sessions to close); threads may grow once as zenoh's and tokio's pools fill, not per ask.
    let (p0, fds0) = (&before["process"], u(&before["process"]["fds"]));
    let settled = status_until(&s, status_key, Duration::from_secs(20), |st| {
        let p = &st["process"];
        st["queue"]["clients"] == 0
            && u(&p["fds"]) <= fds0 + 2
            && u(&p["threads"]) <= u(&p0["threads"]) + 4
            && u(&p["tasks"]) <= u(&p0["tasks"]) + 2
    })
    .await;
    let p = &settled["process"];
    eprintln!(
        "load: fds {} → {}, threads {} → {}, tasks {} → {}, RSS {} → {} KiB",
        p0["fds"],
        p["fds"],
        p0["threads"],
        p["threads"],
        p0["tasks"],
        p["tasks"],
        p0["rss_kib"],
        p["rss_kib"]
    );
    assert!(u(&p["fds"]) <= fds0 + 2, "descriptors leak: {p0} → {p}");
    assert!(u(&p["threads"]) <= u(&p0["threads"]) + 4, "{p0} → {p}");
    assert!(
        u(&p["tasks"]) <= u(&p0["tasks"]) + 2,
        "tasks leak: {p0} → {p}"
    );
    assert!(
        u(&p["rss_kib"]) < u(&p0["rss_kib"]) + 200 * 1024,
        "memory grew: {p0} → {p}"
    );
    s.close().await.ok();
    rt.terminate();
    assert_eq!(rt.wait_exit(Duration::from_secs(60)), Some(0));
}
