//! Helpers for the end-to-end tests in `tests/tests/`: where the `embodied-r` binary and the
//! fetched model are, free loopback ports, and a runtime process that is stopped (SIGTERM, then
//! kill) when the test ends. The tests themselves drive the real binary and real zenoh peers on
//! loopback only; nothing here fakes a peer.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `embodied-r` binary built beside this test (`cargo test --workspace` builds it).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>/embodied-r
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = dir.join("embodied-r");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p embodied-r-launch` (or `cargo test --workspace`, which builds it)",
        bin.display()
    );
    bin
}

/// The fetched default model.
pub fn model() -> PathBuf {
    let p = workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} is missing: run `cargo run -p embodied-r-launch -- fetch-model` first",
        p.display()
    );
    p
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A zenoh peer session of this test process, connected only to a runtime listening on
/// `127.0.0.1:port` (no multicast).
pub async fn zenoh_peer(port: u16) -> zenoh::Session {
    zenoh_session("peer", &format!("tcp/127.0.0.1:{port}")).await
}

/// A zenoh session of this test process in `mode` (`peer` or `client`) connected only to
/// `endpoint` (no multicast scouting).
pub async fn zenoh_session(mode: &str, endpoint: &str) -> zenoh::Session {
    let mut c = zenoh::Config::default();
    for (k, v) in [
        ("mode", format!("\"{mode}\"")),
        ("connect/endpoints", format!("[\"{endpoint}\"]")),
        ("scouting/multicast/enabled", "false".into()),
    ] {
        c.insert_json5(k, &v)
            .unwrap_or_else(|e| panic!("zenoh config {k} = {v}: {e}"));
    }
    zenoh::open(c)
        .await
        .unwrap_or_else(|e| panic!("opening a zenoh {mode} session to {endpoint}: {e}"))
}

/// The next status the runtime publishes on `key` (within 10 s), as JSON.
pub async fn next_status(session: &zenoh::Session, key: &str) -> serde_json::Value {
    let sub = session
        .declare_subscriber(key)
        .await
        .unwrap_or_else(|e| panic!("subscribing to {key}: {e}"));
    let sample = tokio::time::timeout(Duration::from_secs(10), sub.recv_async())
        .await
        .unwrap_or_else(|_| panic!("no status on {key} within 10 s"))
        .unwrap_or_else(|e| panic!("status subscription on {key}: {e}"));
    serde_json::from_slice(&sample.payload().to_bytes())
        .unwrap_or_else(|e| panic!("status on {key} is not JSON: {e}"))
}

/// Status publications on `key` until `done` holds for one, or `within` has passed; returns
/// the last one seen either way (the caller asserts on it, so a timeout shows the state).
pub async fn status_until(
    session: &zenoh::Session,
    key: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + within;
    loop {
        let st = next_status(session, key).await;
        if done(&st) || Instant::now() > end {
            return st;
        }
    }
}

/// Asks on `key` until the runtime has key frames (its capture may still be starting): the
/// first reply that is not `no_frames`, or the last one after 60 s.
pub async fn ask_when_ready(
    session: &zenoh::Session,
    key: &str,
    request: &embodied_r_agent::AskRequest,
) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = embodied_r_agent::client::ask(session, key, request, Duration::from_secs(120))
            .await
            .unwrap_or_else(|e| panic!("asking on {key}: {e}"));
        if v["error"]["code"] != "no_frames" || Instant::now() > end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A child process with its stdout lines on a channel; SIGTERM then kill on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// stdout lines.
    pub lines: Receiver<String>,
    /// stderr, collected on a thread (read with [`Proc::stderr`] after exit).
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Proc {
    /// Starts `bin args…` with extra environment.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_under(&[], args, env)
    }

    /// Starts `wrapper… bin args…` (e.g. `prlimit --fsize=N`) with extra environment.
    pub fn spawn_under(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = match wrapper.split_first() {
            None => Command::new(binary()),
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary());
                c
            }
        };
        cmd.args(args)
            .current_dir(workspace())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
        // Bounded: the runtime prints a few lines (ready, summary), never a stream.
        let (tx, lines) = sync_channel(4096);
        if let Some(out) = child.stdout.take() {
            let _ = std::thread::Builder::new()
                .name("child stdout".into())
                .spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
        }
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let s = stderr.clone();
            let _ = std::thread::Builder::new()
                .name("child stderr".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines().map_while(Result::ok) {
                        if let Ok(mut g) = s.lock() {
                            g.push_str(&line);
                            g.push('\n');
                        }
                    }
                });
        }
        Proc {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for a stdout line containing `needle`; panics with stderr after `timeout`.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!(
                            "process exited ({status}) before printing {needle:?}; stderr:\n{}",
                            self.stderr()
                        );
                    }
                    if Instant::now() >= end {
                        panic!(
                            "no {needle:?} within {timeout:?}; stderr:\n{}",
                            self.stderr()
                        );
                    }
                }
            }
        }
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits for exit up to `timeout`, returning the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Remaining stdout lines (after exit).
    pub fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Starts the test router (`bin` is the test's `env!("CARGO_BIN_EXE_test-router")`) on
/// `127.0.0.1:port` and waits for its `ready` line.
pub fn test_router(bin: &str, port: u16) -> Child {
    let mut child = Command::new(bin)
        .arg(format!("tcp/127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the test router {bin}: {e}"));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line.trim(), "ready", "the test router did not start");
    child
}

/// Runs the binary to completion, returning (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args).current_dir(workspace());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A runtime config for tests: the sim source at full speed, a small LM budget, a log in
/// `dir`, listening on `port`, no multicast.
pub fn sim_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let text = format!(
        r#"robot_id = "sim"

[source]
kind = "sim"
scene = "indoor_0000"
width = 160
height = 120
actions = 6
rate = "max"

[keyframes]
sample_fps = 0.0

[buffer]
window_max = 4

[describer]
kind = "sim"

[reasoner]
model = "{model}"
max_tokens = 24
threads = 1

[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
multicast = false
status_period_ms = 200

[log]
dir = "{log}"
fsync = "never"
{extra}
"#,
        model = model().display(),
        log = dir.join("episodes").display(),
    );
    let p = dir.join("runtime.toml");
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    p
}

/// Writes `<dir>/<file>`: a runtime config for robot `robot_id` with the sections in `body`
/// (source, describer, zenoh, log …) and the settings every end-to-end runtime shares: every
/// frame offered to the key-frame selector, a 4-frame window, the fetched default LM with a
/// short answer budget, one thread and no consistency pass.
pub fn runtime_config(dir: &Path, file: &str, robot_id: &str, body: &str) -> PathBuf {
    let text = format!(
        "robot_id = \"{robot_id}\"\n\n[keyframes]\nsample_fps = 0.0\n\n[buffer]\nwindow_max = 4\n\n\
         [reasoner]\nmodel = \"{model}\"\nmax_tokens = 12\nthreads = 1\nconsistency = false\n\n{body}",
        model = model().display(),
    );
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    p
}

/// A free-form ask request for `text` with a deadline, nothing else set (struct-update it
/// for choices, a window or a client name).
pub fn question(text: &str, deadline_ms: u64) -> embodied_r_agent::AskRequest {
    embodied_r_agent::AskRequest {
        question: text.into(),
        choices: None,
        window: None,
        deadline_ms: Some(deadline_ms),
        ground_truth: None,
        category: None,
        client: None,
    }
}

/// The `[describer]` sections of a runtime config for an OpenAI-compatible VLM at `base_url`
/// (a [`FakeVlm`]): model `fake-vlm`, 20 s timeout, no retries.
pub fn openai_describer(base_url: &str) -> String {
    format!(
        "[describer]\nkind = \"openai\"\n\n[describer.openai]\nbase_url = \"{base_url}\"\n\
         model = \"fake-vlm\"\ntimeout_s = 20.0\nretries = 0\n"
    )
}

/// A stand-in VLM: an HTTP server on a loopback port of this process that answers every
/// OpenAI-style chat completion with one fixed description and counts the requests it served.
/// It is a real server on a real socket; the runtime talks to it with its own HTTP client.
pub struct FakeVlm {
    /// `http://127.0.0.1:<port>/v1`.
    pub url: String,
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeVlm {
    /// Starts serving `reply` as every completion's text.
    pub fn start(reply: &str) -> FakeVlm {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let url = format!(
            "http://{}/v1",
            listener.local_addr().expect("the bound address")
        );
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        let body = serde_json::json!({
            "choices": [{"message": {"role": "assistant", "content": reply}}]
        })
        .to_string();
        let _ = std::thread::Builder::new()
            .name("fake vlm".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { return };
                    let mut reader = BufReader::new(match conn.try_clone() {
                        Ok(c) => c,
                        Err(_) => continue,
                    });
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut request = vec![0u8; len];
                    let _ = reader.read_exact(&mut request);
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        FakeVlm { url, served }
    }

    /// Requests served so far.
    pub fn served(&self) -> usize {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }
}
