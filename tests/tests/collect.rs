//! A fleet's logs reach the training machine over zenoh: three real `embodied-r run` runtimes
//! behind a real zenoh router (`test-router`), and a real `episodes collect` process that is
//! killed with SIGKILL twice (once while robots kept answering, once right after it restarted)
//! and started again. Every robot's episodes must end up in DIR/<robot>/ exactly once, with
//! their key frames byte for byte; a fresh collector then catches up a whole backlog by itself.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_reasoner::episode::read_log;
use embodied_r_tests::{
    Proc, ask_when_ready, free_port, question, runtime_config, test_router, zenoh_session,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const ROBOTS: [&str; 3] = ["r1", "r2", "r3"];
const READY: Duration = Duration::from_secs(180);

fn router(port: u16) -> Child {
    test_router(env!("CARGO_BIN_EXE_test-router"), port)
}

fn runtime(dir: &Path, robot: &str, router_port: u16) -> (Proc, PathBuf) {
    let log = dir.join(format!("robot-{robot}"));
    let body = format!(
        r#"[source]
kind = "sim"
scene = "indoor_0000"
width = 160
height = 120
actions = 6
rate = "max"

[describer]
kind = "sim"

[zenoh]
mode = "client"
connect = ["tcp/127.0.0.1:{router_port}"]
multicast = false
status_period_ms = 500

[log]
dir = "{}"
fsync = "never"
"#,
        log.display()
    );
    let cfg = runtime_config(dir, &format!("{robot}.toml"), robot, &body);
    let mut p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], &[]);
    p.wait_line("ready ", READY);
    (p, log)
}

fn collector(dir: &Path, router_port: u16, extra: &[&str]) -> Proc {
    let endpoint = format!("tcp/127.0.0.1:{router_port}");
    let mut args = vec![
        "episodes",
        "collect",
        "--dir",
        dir.to_str().unwrap(),
        "--connect",
        &endpoint,
        "--no-multicast",
        "--json",
        "--resync-s",
        "1",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(&args, &[])
}

/// Asks every robot `n` questions through the router.
async fn ask_each(s: &zenoh::Session, n: usize) {
    for robot in ROBOTS {
        for i in 0..n {
            let v = ask_when_ready(
                s,
                &format!("robots/{robot}/embodied-r/ask"),
                &question(&format!("What is ahead of me? ({i})"), 60_000),
            )
            .await;
            assert!(v.get("error").is_none(), "{robot}: {v}");
        }
    }
}

/// Episode ids in a log directory, in order (duplicates kept, so a double shows).
fn ids(log: &Path) -> Vec<String> {
    if !log.exists() {
        return vec![];
    }
    read_log(log)
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Waits until every robot's directory under `dir` holds `n` episodes.
fn wait_collected(dir: &Path, n: usize, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let counts: Vec<usize> = ROBOTS.iter().map(|r| ids(&dir.join(r)).len()).collect();
        if counts.iter().all(|&c| c >= n) {
            return;
        }
        assert!(
            Instant::now() < end,
            "collected {counts:?} of {n} each within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The frames of each episode of a log directory, by (episode, seq).
fn frames(log: &Path) -> BTreeMap<(String, u64), Vec<u8>> {
    let mut out = BTreeMap::new();
    for r in read_log(log).unwrap().records {
        for f in &r.frames {
            if let Some(file) = &f.file {
                out.insert(
                    (r.id.clone(), f.seq),
                    std::fs::read(log.join(file)).unwrap(),
                );
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_collector_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut r = router(port);
    let mut runtimes = Vec::new();
    let mut logs = BTreeMap::new();
    for robot in ROBOTS {
        let (p, log) = runtime(dir.path(), robot, port);
        runtimes.push(p);
        logs.insert(robot, log);
    }
    let s = zenoh_session("client", &format!("tcp/127.0.0.1:{port}")).await;
    let fleet = dir.path().join("fleet");

    // Collected live, then the collector dies while the robots go on answering.
    let mut c = collector(&fleet, port, &[]);
    c.wait_line("collecting", Duration::from_secs(30));
    ask_each(&s, 2).await;
    wait_collected(&fleet, 2, Duration::from_secs(60));
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    ask_each(&s, 2).await;

    // Restarted, and killed again as soon as it has written anything (mid catch-up).
    let mut c = collector(&fleet, port, &[]);
    c.wait_line("catch-up", Duration::from_secs(60));
    c.child.kill().unwrap();
    c.child.wait().unwrap();

    // Restarted once more: it fetches the rest, then takes new episodes live.
    let mut c = collector(&fleet, port, &[]);
    c.wait_line("collecting", Duration::from_secs(30));
    wait_collected(&fleet, 4, Duration::from_secs(60));
    ask_each(&s, 1).await;
    wait_collected(&fleet, 5, Duration::from_secs(60));
    c.terminate();
    assert_eq!(
        c.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        c.stderr()
    );
    let lines = c.drain();
    let summary: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["rejected"], 0, "{summary}");

    for robot in ROBOTS {
        let own = ids(&logs[robot]);
        let got = ids(&fleet.join(robot));
        assert_eq!(own.len(), 5, "{robot} logged {own:?}");
        let unique: BTreeSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "{robot}: duplicates in {got:?}");
        assert_eq!(
            unique,
            own.iter().collect::<BTreeSet<_>>(),
            "{robot}: collected ≠ logged"
        );
        let (theirs, ours) = (frames(&logs[robot]), frames(&fleet.join(robot)));
        assert!(!theirs.is_empty(), "{robot} logged no frames");
        assert_eq!(theirs, ours, "{robot}: frames differ");
    }

    // A new collector catches up the whole backlog by itself and stops when idle.
    let backlog = dir.path().join("backlog");
    let t = Instant::now();
    let mut c = collector(&backlog, port, &["--idle-exit-s", "1"]);
    assert_eq!(
        c.wait_exit(Duration::from_secs(120)),
        Some(0),
        "{}",
        c.stderr()
    );
    let took = t.elapsed().as_secs_f64();
    let lines = c.drain();
    let summary: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["collected"], 15, "{summary}");
    assert_eq!(summary["summary"]["duplicates"], 0, "{summary}");
    for robot in ROBOTS {
        assert_eq!(ids(&backlog.join(robot)).len(), 5, "{robot}");
    }
    eprintln!(
        "backlog of 15 episodes from 3 robots: {:.2} s of collector run (process {took:.2} s, incl. 1 s idle), {:.1} episodes/s",
        summary["summary"]["seconds"].as_f64().unwrap(),
        15.0 / (summary["summary"]["seconds"].as_f64().unwrap() - 1.0).max(1e-3)
    );
    drop(runtimes);
    let _ = r.kill();
    let _ = r.wait();
}
