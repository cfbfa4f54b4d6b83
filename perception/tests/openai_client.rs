//! The OpenAI-compatible describer against a real HTTP server process on loopback
//! (tests/fixtures/mock_openai.py, Python standard library only): request shape, streaming,
//! retries on 503/429 and cut streams, clear errors for garbage and refusals, and deadlines.

use embodied_r_perception::buffer::KeyFrame;
use embodied_r_perception::describe::openai::{OpenAiConfig, OpenAiDescriber};
use embodied_r_perception::describe::{DescribeError, Describer};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> Server {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("requests.jsonl");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mock_openai.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--log")
        .arg(&log)
        .args(["--key", "sekret"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the mock server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("PORT line");
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("PORT n")
        .parse()
        .expect("port");
    Server {
        child,
        port,
        log,
        _dir: dir,
    }
}

impl Server {
    fn client(&self, model: &str, tweak: impl FnOnce(&mut OpenAiConfig)) -> OpenAiDescriber {
        let mut cfg = OpenAiConfig {
            base_url: format!("http://127.0.0.1:{}/v1", self.port),
            model: model.into(),
            backoff_s: 0.01,
            timeout_s: 10.0,
            ..OpenAiConfig::default()
        };
        tweak(&mut cfg);
        OpenAiDescriber::new(cfg)
            .expect("valid")
            .with_api_key("sekret")
    }

    /// The logged requests of `model`, waiting (up to 5 s) until at least `n` are logged: the
    /// server may log a request just after replying to it.
    fn requests_n(&self, model: &str, n: usize) -> Vec<serde_json::Value> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.requests(model);
            if r.len() >= n || Instant::now() > until {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn requests(&self, model: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("log line"))
            .filter(|v| v["model"] == model)
            .collect()
    }
}

fn window(n: u64) -> Vec<KeyFrame> {
    let rgb = vec![90u8; 32 * 24 * 3];
    let jpeg = embodied_r_perception::source::decode::encode_jpeg(32, 24, &rgb, 90).expect("jpeg");
    (0..n)
        .map(|i| KeyFrame {
            seq: i * 5,
            stamp: i as f64,
            width: 32,
            height: 24,
            pose: None,
            jpeg: jpeg.clone().into(),
        })
        .collect()
}

const Q: &str = "Is the tower to my left or right?\nA. left\nB. right";

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[test]
fn describes_a_window_one_request_per_frame_and_pair() {
    let s = server();
    for (model, stream) in [("echo", false), ("echo-stream", true)] {
        let d = s.client(model, |c| c.stream = stream);
        let out = d.describe(&window(3), Q, soon()).expect("described");
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].action, None);
        assert!(
            out[0].view.starts_with("Frame view: a red car"),
            "{:?}",
            out[0]
        );
        for f in &out[1..] {
            assert_eq!(f.action.as_deref(), Some("move forward"));
            assert_eq!(
                f.view,
                "A blue truck appears ahead-left, about 20 m away. The tower is still to the right."
            );
        }
        let reqs = s.requests_n(model, 3);
        assert_eq!(reqs.len(), 3, "{model}");
        let mut images: Vec<u64> = reqs
            .iter()
            .map(|r| r["n_images"].as_u64().expect("n"))
            .collect();
        images.sort();
        assert_eq!(images, vec![1, 2, 2]);
        for r in &reqs {
            assert_eq!(r["auth"], "Bearer sekret");
            assert_eq!(r["status"], 200);
            assert_eq!(r["stream"], stream);
            assert!(
                r["texts"][0]
                    .as_str()
                    .expect("text")
                    .contains("'Is the tower to my left or right?\nA. left\nB. right'")
            );
        }
    }
}

#[test]
fn markdown_replies_are_parsed() {
    let s = server();
    let out = s
        .client("markdown", |_| {})
        .describe(&window(2), Q, soon())
        .expect("described");
    assert_eq!(out[1].action.as_deref(), Some("rotate left"));
    assert!(out[1].view.contains("1.5 m above the door"), "{:?}", out[1]);
}

#[test]
fn transient_failures_are_retried() {
    let s = server();
    let out = s
        .client("flaky-2-a", |_| {})
        .describe(&window(1), Q, soon())
        .expect("third try works");
    assert_eq!(out.len(), 1);
    let statuses: Vec<u64> = s
        .requests_n("flaky-2-a", 3)
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    s.client("ratelimit-b", |_| {})
        .describe(&window(1), Q, soon())
        .expect("after 429");
    // Too few retries: the error says what the server said.
    let e = s
        .client("flaky-5-c", |c| c.retries = 1)
        .describe(&window(1), Q, soon())
        .expect_err("gives up");
    let m = e.to_string();
    assert!(
        m.contains("gave up after 2 attempts") && m.contains("HTTP 503"),
        "{m}"
    );
}

#[test]
fn garbage_refusals_and_cut_streams_are_clear_errors() {
    let s = server();
    let e = s
        .client("garbage", |_| {})
        .describe(&window(1), Q, soon())
        .expect_err("not json");
    assert!(e.to_string().contains("reply is not JSON"), "{e}");
    let e = s
        .client("nochoices", |_| {})
        .describe(&window(1), Q, soon())
        .expect_err("no choices");
    assert!(e.to_string().contains("no choices"), "{e}");
    let e = s
        .client("bad-request", |_| {})
        .describe(&window(1), Q, soon())
        .expect_err("400");
    assert!(
        e.to_string().contains("HTTP 400") && e.to_string().contains("does not exist"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        s.requests_n("bad-request", 1).len(),
        1,
        "a 400 is not retried"
    );
    let e = s
        .client("cut", |c| {
            c.stream = true;
            c.retries = 1;
        })
        .describe(&window(1), Q, soon())
        .expect_err("cut");
    assert!(e.to_string().contains("without [DONE]"), "{e}");
    assert!(matches!(e, DescribeError::Endpoint { frame: 0, .. }));
    let wrong_key = s.client("echo-key", |_| {}).with_api_key("wrong");
    let e = wrong_key.describe(&window(1), Q, soon()).expect_err("401");
    assert!(e.to_string().contains("HTTP 401"), "{e}");
    assert!(e.to_string().contains("refused the API key"), "{e}");
    // A key variable that is not set: the request goes without a key, and the server's
    // refusal names the variable.
    let mut cfg = OpenAiConfig {
        base_url: format!("http://127.0.0.1:{}/v1", s.port),
        model: "echo-nokey".into(),
        api_key_env: Some("EMBODIED_R_TEST_SURELY_UNSET_KEY".into()),
        ..OpenAiConfig::default()
    };
    cfg.retries = 0;
    let e = OpenAiDescriber::new(cfg)
        .expect("an unset key variable is not a configuration error")
        .describe(&window(1), Q, soon())
        .expect_err("401 without a key");
    let msg = e.to_string();
    assert!(msg.contains("HTTP 401"), "{msg}");
    assert!(msg.contains("missing Authorization header"), "{msg}");
    assert!(msg.contains("EMBODIED_R_TEST_SURELY_UNSET_KEY"), "{msg}");
    let sent = s.requests_n("echo-nokey", 1);
    assert_eq!(sent.len(), 1, "a 401 is not retried");
    assert!(
        sent[0]["auth"].is_null(),
        "no Authorization header: {}",
        sent[0]
    );
    assert!(matches!(
        s.client("echo", |_| {}).describe(&[], Q, soon()),
        Err(DescribeError::EmptyWindow)
    ));
}

#[test]
fn deadlines_bound_slow_and_dead_endpoints() {
    let s = server();
    let start = Instant::now();
    let e = s
        .client("slow-5000", |_| {})
        .describe(&window(2), Q, Instant::now() + Duration::from_millis(600))
        .expect_err("too slow");
    // The caller gets its error near its deadline, not after the server's 5 s.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.to_string().contains("deadline") || e.to_string().contains("timed out"),
        "{e}"
    );
    // Nothing listens on this port: connection refused, retried, then named.
    let dead = OpenAiDescriber::new(OpenAiConfig {
        base_url: "http://127.0.0.1:9/v1".into(),
        retries: 2,
        backoff_s: 0.01,
        ..OpenAiConfig::default()
    })
    .expect("valid");
    let e = dead.describe(&window(1), Q, soon()).expect_err("refused");
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
}
