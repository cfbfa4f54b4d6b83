//! Soak, end to end: a real `embodied-r run` process on a 30 fps synthetic camera (the
//! `pattern` source) with a loopback VLM, asked a question every 3 s for `SOAK_SECONDS`
//! (default 60; the figures in docs/RELIABILITY.md come from a 900 s run). Resident memory,
//! descriptors, threads and tokio tasks stay flat after the warm-up, the frame counters add up,
//! every question is answered. The samples go to `soak.csv` and `soak.png` in `SOAK_OUT`
//! (default: the test's temporary directory).

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::AskRequest;
use embodied_r_agent::client::ask;
use embodied_r_tests::{
    FakeVlm, Proc, ask_when_ready, free_port, next_status, openai_describer, question,
    runtime_config, zenoh_peer,
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

/// One status sample of the soak.
struct Sample {
    t: f64,
    st: Value,
}

impl Sample {
    fn at(&self, path: &[&str]) -> f64 {
        path.iter()
            .fold(&self.st, |v, k| &v[*k])
            .as_f64()
            .unwrap_or(f64::NAN)
    }
}

/// The soak's CSV columns after `t_s`, and where each comes from in the status.
const COLUMNS: [(&str, &[&str]); 9] = [
    ("rss_kib", &["process", "rss_kib"]),
    ("fds", &["process", "fds"]),
    ("threads", &["process", "threads"]),
    ("tasks", &["process", "tasks"]),
    ("frames", &["source", "frames"]),
    ("dropped", &["source", "dropped"]),
    ("keyframes_kept", &["keyframes", "kept"]),
    ("keyframes_buffered", &["keyframes", "buffered"]),
    ("answered", &["asks", "answered"]),
];

/// Writes `soak.csv` (one row per sample) and draws `soak.png` from it.
fn write_soak(samples: &[Sample], out: &std::path::Path) {
    let mut csv = String::from("t_s");
    for (name, _) in COLUMNS {
        csv.push(',');
        csv.push_str(name);
    }
    csv.push('\n');
    for s in samples {
        csv.push_str(&format!("{:.2}", s.t));
        for (_, path) in COLUMNS {
            csv.push_str(&format!(",{}", s.at(path)));
        }
        csv.push('\n');
    }
    std::fs::write(out.join("soak.csv"), &csv).unwrap();
    plot_soak(&csv, &out.join("soak.png"));
}

/// Draws the soak curves from its CSV, in bins of ~1/150 of the run: the resident memory's
/// low and high in each bin (it swings with each answer's working memory; the low is the
/// baseline that must stay flat), the highest descriptor, thread and task counts, the mean
/// input rate, and the running totals.
fn plot_soak(csv: &str, png: &std::path::Path) {
    use embodied_r_trainer::plots::{Panel, find_font, write_panels};
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let col = |name: &str| 1 + COLUMNS.iter().position(|c| c.0 == name).unwrap();
    let bin = (rows.len() / 150).max(1);
    let bins: Vec<&[Vec<f64>]> = rows.chunks(bin).collect();
    let series = |label: &str, f: &dyn Fn(&[Vec<f64>]) -> f64| {
        let pts = bins.iter().map(|b| (b[b.len() - 1][0], f(b))).collect();
        (label.to_string(), pts)
    };
    let lo = |c: usize, scale: f64| {
        move |b: &[Vec<f64>]| b.iter().map(|r| r[c]).fold(f64::INFINITY, f64::min) / scale
    };
    let hi = |c: usize, scale: f64| {
        move |b: &[Vec<f64>]| b.iter().map(|r| r[c]).fold(f64::NEG_INFINITY, f64::max) / scale
    };
    let last = |c: usize| move |b: &[Vec<f64>]| b[b.len() - 1][c];
    let frames = col("frames");
    let rate = |b: &[Vec<f64>]| {
        // Frames per second across the bin (from the sample before it when it has one row).
        let i = rows.iter().position(|r| r[0] == b[0][0]).unwrap_or(0);
        let first = &rows[i.saturating_sub(1)];
        let end = &b[b.len() - 1];
        if end[0] > first[0] {
            (end[frames] - first[frames]) / (end[0] - first[0])
        } else {
            f64::NAN
        }
    };
    let panel = |title: &str, series| Panel {
        title: title.into(),
        x_desc: "seconds".into(),
        series,
    };
    let rss = col("rss_kib");
    let panels = [
        panel(
            "resident memory (MiB): low and high per bin",
            vec![
                series("low", &lo(rss, 1024.0)),
                series("high", &hi(rss, 1024.0)),
            ],
        ),
        panel(
            "file descriptors, threads (highest per bin)",
            vec![
                series("fds", &hi(col("fds"), 1.0)),
                series("threads", &hi(col("threads"), 1.0)),
            ],
        ),
        panel(
            "tokio tasks (highest per bin)",
            vec![series("tasks", &hi(col("tasks"), 1.0))],
        ),
        panel("frames in per second", vec![series("fps", &rate)]),
        panel(
            "frames dropped (total)",
            vec![series("dropped", &last(col("dropped")))],
        ),
        panel(
            "key frames buffered, answers (total)",
            vec![
                series("buffered", &last(col("keyframes_buffered"))),
                series("answered", &last(col("answered"))),
            ],
        ),
    ];
    let secs = rows.last().map_or(0.0, |r| r[0]);
    write_panels(
        &format!("soak: 30 fps pattern, a question every 3 s, {secs:.0} s"),
        &panels,
        (2, 3),
        None,
        &find_font().unwrap(),
        png,
    )
    .unwrap();
}

/// Redraws `soak.png` from the `soak.csv` in `SOAK_OUT` (after a long run).
#[test]
#[ignore = "redraws a recorded soak: SOAK_OUT=DIR cargo test --test soak -- --ignored"]
fn replot_a_recorded_soak() {
    let dir = std::path::PathBuf::from(std::env::var_os("SOAK_OUT").expect("SOAK_OUT=DIR"));
    let csv = std::fs::read_to_string(dir.join("soak.csv")).unwrap();
    plot_soak(&csv, &dir.join("soak.png"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_at_30_fps_keeps_memory_descriptors_and_tasks_flat() {
    let secs: f64 = std::env::var("SOAK_SECONDS")
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SOAK_SECONDS={v:?}: expected seconds"))
        })
        .unwrap_or(60.0);
    let dir = tempfile::tempdir().unwrap();
    let out = std::env::var_os("SOAK_OUT").map_or_else(|| dir.path().to_path_buf(), Into::into);
    std::fs::create_dir_all(&out).unwrap();
    let vlm = FakeVlm::start("1. Move forward. 2. A poster of coloured shapes. 3. Nothing else.");
    let port = free_port();
    let body = format!(
        r#"[source]
kind = "pattern"
width = 320
height = 240
fps = 30.0
rate = "realtime"
queue = 4

{describer}
[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
multicast = false
status_period_ms = 1000

[log]
dir = "{log}"
fsync = "never"
segment_bytes = 1048576
max_segments = 4
"#,
        describer = openai_describer(&vlm.url),
        log = dir.path().join("episodes").display(),
    );
    let cfg = runtime_config(dir.path(), "soak.toml", "soak", &body);
    let mut rt = Proc::spawn(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--set",
            "keyframes.sample_fps=2.0",
            "--set",
            "buffer.max_frames=32",
        ],
        &[],
    );
    rt.wait_line("ready ", READY);
    let s = zenoh_peer(port).await;
    let (key, status_key) = (
        "robots/soak/embodied-r/ask",
        "robots/soak/embodied-r/status",
    );
    let warm = ask_when_ready(&s, key, &req("What is ahead?", "soak", 60_000)).await;
    assert!(warm.get("error").is_none(), "{warm}");

    // A question every 3 s on its own task while the samples are taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asker = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(3));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let n = outcomes.len();
                let r = ask(
                    &s,
                    key,
                    &req(&format!("Question {n}: what is closest?"), "soak", 30_000),
                    Duration::from_secs(60),
                )
                .await;
                outcomes.push(r.map(|v| v.get("text").is_some()).unwrap_or(false));
            }
            outcomes
        })
    };
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while t0.elapsed().as_secs_f64() < secs {
        let st = next_status(&s, status_key).await;
        samples.push(Sample {
            t: t0.elapsed().as_secs_f64(),
            st,
        });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = asker.await.unwrap();
    write_soak(&samples, &out);

    // Every question answered.
    let answered = outcomes.iter().filter(|ok| **ok).count();
    assert!(outcomes.len() as f64 >= secs / 3.0 - 2.0, "{outcomes:?}");
    assert_eq!(
        answered,
        outcomes.len(),
        "unanswered questions: {outcomes:?}"
    );

    // Frame counters only grow, and the source kept its 30 fps (frames taken + dropped).
    for w in samples.windows(2) {
        for path in [&["source", "frames"][..], &["source", "dropped"]] {
            assert!(w[1].at(path) >= w[0].at(path), "{path:?} went down");
        }
    }
    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    let offered = |s: &Sample| s.at(&["source", "frames"]) + s.at(&["source", "dropped"]);
    let fps = (offered(last) - offered(first)) / (last.t - first.t);
    let dropped = last.at(&["source", "dropped"]) - first.at(&["source", "dropped"]);
    assert!(fps > 15.0, "the 30 fps source delivered {fps:.1} frames/s");

    // Flat after the warm-up: the second half peaks no higher than the first half allows.
    let half = samples.len() / 2;
    let peak = |xs: &[Sample], path: &[&str]| xs.iter().map(|s| s.at(path)).fold(0.0, f64::max);
    let (rss1, rss2) = (
        peak(&samples[..half], &["process", "rss_kib"]),
        peak(&samples[half..], &["process", "rss_kib"]),
    );
    eprintln!(
        "soak: {:.0} s at {fps:.1} frames/s, {dropped} dropped, {} questions answered; RSS peak {:.1} MiB (first half) → {:.1} MiB (second half); fds {} → {}, threads {} → {}, tasks {} → {}; samples in {}",
        last.t,
        outcomes.len(),
        rss1 / 1024.0,
        rss2 / 1024.0,
        first.at(&["process", "fds"]),
        last.at(&["process", "fds"]),
        first.at(&["process", "threads"]),
        last.at(&["process", "threads"]),
        first.at(&["process", "tasks"]),
        last.at(&["process", "tasks"]),
        out.display()
    );
    assert!(
        rss2 <= rss1 * 1.1 + 24.0 * 1024.0,
        "resident memory keeps growing: {rss1} KiB → {rss2} KiB"
    );
    for path in [
        &["process", "fds"][..],
        &["process", "threads"],
        &["process", "tasks"],
    ] {
        let (a, b) = (peak(&samples[..half], path), peak(&samples[half..], path));
        assert!(b <= a + 3.0, "{path:?} keeps growing: {a} → {b}");
    }
    assert!(vlm.served() >= 1);
    s.close().await.ok();
    rt.terminate();
    assert_eq!(rt.wait_exit(Duration::from_secs(60)), Some(0));
}
