//! A VLM endpoint broken every way one breaks, end to end: a real `embodied-r run` process
//! (simulator camera in real time, the OpenAI-compatible describer, the default LM) against a
//! real VLM server process (`perception/tests/fixtures/mock_openai.py`) that this test kills,
//! restarts on the same port and switches between failure scenarios while the runtime keeps
//! running. Every ask must come back — an answer, or an error with a code and a message naming
//! what failed — within its deadline (plus a small transport margin); the runtime must keep
//! capturing throughout; and the API key it sends must never appear in its logs, even at
//! `debug` level.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::AskRequest;
use embodied_r_agent::client::ask;
use embodied_r_tests::{
    Proc, free_port, next_status, question, runtime_config, workspace, zenoh_peer,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(180);
const KEY: &str = "sk-fault-injection-7f3a9c2e51";
const ASK: &str = "robots/faulty/embodied-r/ask";

/// The mock VLM server process, on a fixed port so it can be restarted where the runtime
/// expects it; its scenario is the first line of `scenario`.
struct Vlm {
    child: Option<Child>,
    port: u16,
    scenario: PathBuf,
    log: PathBuf,
}

impl Vlm {
    fn start(dir: &Path, port: u16) -> Vlm {
        let mut v = Vlm {
            child: None,
            port,
            scenario: dir.join("scenario"),
            log: dir.join("vlm-requests.jsonl"),
        };
        v.set("echo");
        v.restart();
        v
    }

    fn restart(&mut self) {
        let script = workspace().join("perception/tests/fixtures/mock_openai.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--log")
            .arg(&self.log)
            .args(["--key", KEY, "--port", &self.port.to_string()])
            .arg("--scenario-file")
            .arg(&self.scenario)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the mock VLM server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("PORT line");
        assert_eq!(line.trim(), format!("PORT {}", self.port));
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn set(&self, scenario: &str) {
        std::fs::write(&self.scenario, scenario).unwrap();
    }
}

impl Drop for Vlm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config(dir: &Path, port: u16, vlm_port: u16) -> PathBuf {
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
kind = "openai"

[describer.openai]
base_url = "http://127.0.0.1:{vlm_port}/v1"
model = "echo"
api_key_env = "VLM_FAULT_TEST_KEY"
timeout_s = 4.0
connect_timeout_s = 1.0
retries = 1
backoff_s = 0.1
stream = true

[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
multicast = false
status_period_ms = 200

[log]
dir = "{log}"
fsync = "never"
"#,
        log = dir.join("episodes").display(),
    );
    runtime_config(dir, "faults.toml", "faulty", &text)
}

/// A question no earlier ask used: descriptions are cached per (window, question), and the
/// camera may not keep a new key frame between two asks, so a repeated question could be
/// answered from the cache without reaching the VLM whose fault is under test.
fn req(deadline_ms: u64) -> AskRequest {
    static ASKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = ASKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    question(&format!("What is in front of me? (ask {n})"), deadline_ms)
}

/// Asks once; returns the reply and how long it took.
async fn timed_ask(s: &zenoh::Session, deadline_ms: u64) -> (Value, Duration) {
    let t = Instant::now();
    let v = ask(s, ASK, &req(deadline_ms), Duration::from_secs(60))
        .await
        .unwrap();
    (v, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_vlm_gives_named_errors_in_time_and_the_runtime_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let vlm_port = free_port();
    let mut vlm = Vlm::start(dir.path(), vlm_port);
    let port = free_port();
    let cfg = config(dir.path(), port, vlm_port);
    let mut rt = Proc::spawn(
        &["run", "--config", cfg.to_str().unwrap()],
        &[
            ("VLM_FAULT_TEST_KEY", KEY),
            ("RUST_LOG", "debug,zenoh=info,zenoh_transport=info"),
        ],
    );
    rt.wait_line("ready ", READY);
    let s = zenoh_peer(port).await;

    // A healthy endpoint first (asking until the camera has delivered key frames).
    let end = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let (v, _) = timed_ask(&s, 30_000).await;
        if v["error"]["code"] != "no_frames" || Instant::now() > end {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(first.get("error").is_none(), "healthy VLM: {first}");
    let st = next_status(&s, "robots/faulty/embodied-r/status").await;
    let frames_at_start = st["source"]["frames"].as_u64().unwrap();
    // Asks before the first key frame count as failed (`no_frames`) too.
    let failed_at_start = st["asks"]["failed"].as_u64().unwrap();

    // (scenario, deadline, accepted error codes, what the message must name)
    let deadline = 8_000u64;
    let cases: &[(&str, u64, &[&str], &str)] = &[
        ("flaky-1000", deadline, &["describer_failed"], "HTTP 503"),
        (
            "cut",
            deadline,
            &["describer_failed", "deadline_exceeded"],
            "without [DONE]",
        ),
        (
            "garbage",
            deadline,
            &["describer_failed"],
            "not an event stream",
        ),
        (
            "nochoices",
            deadline,
            &["describer_failed"],
            "not an event stream",
        ),
        ("oversized", deadline, &["describer_failed"], "longer than"),
        ("bad-request", deadline, &["describer_failed"], "HTTP 400"),
        (
            "slow-60000",
            3_000,
            &["deadline_exceeded", "describer_failed"],
            "127.0.0.1",
        ),
    ];
    let mut failures = 0u64;
    for (scenario, deadline_ms, codes, names) in cases {
        vlm.set(scenario);
        let (v, took) = timed_ask(&s, *deadline_ms).await;
        let code = v["error"]["code"].as_str().unwrap_or_default();
        let message = v["error"]["message"].as_str().unwrap_or_default();
        eprintln!("{scenario}: {code} in {took:?}: {message}");
        assert!(codes.contains(&code), "{scenario}: {v}");
        assert!(
            message.contains(names),
            "{scenario} should name {names:?}: {v}"
        );
        assert!(
            took < Duration::from_millis(deadline_ms + 2_000),
            "{scenario}: answered after {took:?}, deadline {deadline_ms} ms"
        );
        failures += 1;
    }

    // A reply without the frame structure: answered anyway, from the text it gave.
    vlm.set("prose");
    let (v, _) = timed_ask(&s, 30_000).await;
    assert!(v.get("error").is_none(), "unstructured descriptions: {v}");

    // The endpoint gone: connection refused, named, in time.
    vlm.kill();
    let (v, took) = timed_ask(&s, deadline).await;
    eprintln!("refused: {v} in {took:?}");
    assert_eq!(v["error"]["code"], "describer_failed", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("127.0.0.1:{vlm_port}")),
        "the message names the endpoint: {v}"
    );
    assert!(took < Duration::from_millis(deadline + 2_000), "{took:?}");
    failures += 1;

    // Back again, healthy: the same runtime answers.
    vlm.set("echo");
    vlm.restart();
    let (v, _) = timed_ask(&s, 30_000).await;
    assert!(v.get("error").is_none(), "after the faults: {v}");

    // It kept capturing the whole time, and counted every failure.
    let st = next_status(&s, "robots/faulty/embodied-r/status").await;
    let frames = st["source"]["frames"].as_u64().unwrap();
    assert!(
        frames > frames_at_start + 8,
        "capture went on: {frames_at_start} → {frames}: {st}"
    );
    assert_eq!(
        st["asks"]["failed"].as_u64(),
        Some(failed_at_start + failures),
        "{st}"
    );
    assert_eq!(st["source"]["ended"], false, "{st}");

    rt.terminate();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        rt.stderr()
    );
    let logs = rt.stderr();
    assert!(logs.contains("DEBUG"), "the run logged at debug level");
    assert!(
        !logs.contains(KEY) && !logs.contains(&KEY[3..15]),
        "the API key appears in the runtime's logs"
    );
    // The key did reach the server (it refuses requests without it).
    let served = std::fs::read_to_string(&vlm.log).unwrap();
    assert!(
        served.lines().any(|l| l.contains("\"status\": 200")),
        "{served}"
    );
}
