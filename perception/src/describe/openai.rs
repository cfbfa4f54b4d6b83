//! An OpenAI-compatible chat-completions client as a [`Describer`]: vLLM, SGLang, llama.cpp's
//! server, Ollama and DashScope all speak this. Key frames go as base64 JPEG data URLs after the
//! text part, one request per frame (frame 0 alone, then each consecutive pair), several in
//! flight up to a concurrency limit shared by all callers. Each request has a timeout no later
//! than the caller's deadline; connection failures, 429 and 5xx replies and cut streams are
//! retried with exponential backoff while time remains; everything else is a clear error naming
//! the endpoint and the frame. Blocking I/O on purpose: this crate does not know about async
//! runtimes (the agent calls it from a blocking task).

use super::{DescribeError, Describer, first_frame_prompt, pair_prompt, parse_reply};
use crate::buffer::KeyFrame;
use crate::video_text::FrameDescription;
use base64::Engine;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Client settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// Base URL including the API version, e.g. `http://127.0.0.1:8000/v1` or
    /// `https://dashscope.aliyuncs.com/compatible-mode/v1`.
    pub base_url: String,
    /// Model name the server knows, e.g. `qwen2.5-vl-72b-instruct`.
    pub model: String,
    /// Name of the environment variable holding the API key (none: no `Authorization` header).
    pub api_key_env: Option<String>,
    /// A file holding the API key (a mounted secret; surrounding whitespace is ignored).
    /// Exclusive with `api_key_env`. The key is never logged or printed.
    pub api_key_file: Option<std::path::PathBuf>,
    /// Longest a single request may take, in seconds.
    pub timeout_s: f64,
    /// Longest a connection may take to open, in seconds.
    pub connect_timeout_s: f64,
    /// Retries after the first attempt (connection errors, 429, 5xx, cut streams).
    pub retries: u32,
    /// First backoff in seconds, doubled after each retry.
    pub backoff_s: f64,
    /// Requests in flight at once, over all callers of this client.
    pub max_concurrency: usize,
    /// `max_tokens` sent with each request (none: the server's default).
    pub max_tokens: Option<u32>,
    /// `temperature` sent with each request (none: the server's default, as the reference).
    pub temperature: Option<f32>,
    /// Ask for a streamed (server-sent events) reply.
    pub stream: bool,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: "Qwen/Qwen2.5-VL-7B-Instruct".into(),
            api_key_env: None,
            api_key_file: None,
            timeout_s: 120.0,
            connect_timeout_s: 5.0,
            retries: 3,
            backoff_s: 0.5,
            max_concurrency: 4,
            max_tokens: Some(1024),
            temperature: None,
            stream: false,
        }
    }
}

/// A counting semaphore with deadlines.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn acquire(&self, deadline: Instant) -> bool {
        let mut g = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *g > 0 {
                *g -= 1;
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn release(&self) {
        *self.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.cv.notify_one();
    }
}

/// The client. Its `Debug` shows whether a key is set, never the key.
pub struct OpenAiDescriber {
    config: OpenAiConfig,
    url: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    slots: Slots,
}

impl std::fmt::Debug for OpenAiDescriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiDescriber")
            .field("config", &self.config)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Reads an API key file: its trimmed contents, which must be one non-empty line. Warns when
/// other users may read it. Errors name the file, never its contents.
fn read_key_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("api_key_file {}: cannot read it: {e}", path.display()))?;
    let key = text.trim();
    if key.is_empty() || key.contains(['\n', '\r']) {
        return Err(format!(
            "api_key_file {}: expected the key alone on one line",
            path.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the API key file is readable by other users (chmod 600 it)"
            );
        }
    }
    Ok(key.to_string())
}

/// One failed attempt.
enum Failure {
    /// Worth another try.
    Retry(String, Option<Duration>),
    /// Not worth another try.
    Fatal(String),
}

impl OpenAiDescriber {
    /// Checks the settings and reads the API key from its environment variable.
    pub fn new(config: OpenAiConfig) -> Result<OpenAiDescriber, DescribeError> {
        let bad = |m: String| DescribeError::Config(m);
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(bad(format!(
                "base_url {:?} must start with http:// or https://",
                config.base_url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(bad("model must not be empty".into()));
        }
        for (name, v) in [
            ("timeout_s", config.timeout_s),
            ("connect_timeout_s", config.connect_timeout_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(format!(
                    "{name} = {v}: expected a positive number of seconds"
                )));
            }
        }
        if !(config.backoff_s.is_finite() && config.backoff_s >= 0.0) {
            return Err(bad(format!(
                "backoff_s = {}: expected seconds >= 0",
                config.backoff_s
            )));
        }
        if config.max_concurrency == 0 {
            return Err(bad("max_concurrency = 0: expected at least 1".into()));
        }
        let api_key = match (&config.api_key_env, &config.api_key_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "api_key_env and api_key_file are both set: choose one".into()
                ));
            }
            (Some(var), None) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Some(key.trim().to_string()),
                // Local servers (vLLM, llama.cpp server, Ollama) usually need no key: an unset
                // or empty variable means no `Authorization` header. A server that does want
                // one answers 401/403, which `attempt` reports naming this variable.
                Ok(_) | Err(std::env::VarError::NotPresent) => {
                    tracing::info!(
                        variable = %var,
                        "api_key_env names an unset or empty variable: requests go without an \
                         Authorization header"
                    );
                    None
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(bad(format!(
                        "api_key_env names {var}, whose value is not valid UTF-8"
                    )));
                }
            },
            (None, Some(path)) => Some(read_key_file(path).map_err(bad)?),
            (None, None) => None,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs_f64(config.connect_timeout_s))
            .build();
        Ok(OpenAiDescriber {
            url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            slots: Slots {
                free: Mutex::new(config.max_concurrency),
                cv: Condvar::new(),
            },
            config,
            api_key,
            agent,
        })
    }

    /// Uses this API key instead of the environment variable (for programs that hold keys in a
    /// secret store).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The request body for one call.
    pub fn request_body(&self, prompt: &str, images: &[&KeyFrame]) -> serde_json::Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut content = vec![serde_json::json!({"type": "text", "text": prompt})];
        for img in images {
            let url = format!("data:image/jpeg;base64,{}", b64.encode(&img.jpeg));
            content.push(serde_json::json!({"type": "image_url", "image_url": {"url": url}}));
        }
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": [{"role": "user", "content": content}],
        });
        if let Some(m) = self.config.max_tokens {
            body["max_tokens"] = m.into();
        }
        if let Some(t) = self.config.temperature {
            body["temperature"] = f64::from(t).into();
        }
        if self.config.stream {
            body["stream"] = true.into();
        }
        body
    }

    /// One chat completion with retries; returns the assistant's text.
    pub fn complete(&self, body: &serde_json::Value, deadline: Instant) -> Result<String, String> {
        let mut backoff = Duration::from_secs_f64(self.config.backoff_s);
        let mut last = String::from("no attempt was made before the deadline");
        for attempt in 0..=self.config.retries {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "deadline passed after {attempt} attempt(s); last error: {last}"
                ));
            }
            let timeout = (deadline - now).min(Duration::from_secs_f64(self.config.timeout_s));
            match self.attempt(body, timeout) {
                Ok(text) => return Ok(text),
                Err(Failure::Fatal(m)) => return Err(m),
                Err(Failure::Retry(m, retry_after)) => {
                    tracing::warn!(url = %self.url, attempt, "describer request failed, retrying: {m}");
                    last = m;
                    let wait = retry_after.unwrap_or(backoff);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if attempt < self.config.retries {
                        std::thread::sleep(wait.min(left));
                    }
                    backoff *= 2;
                }
            }
        }
        Err(format!(
            "gave up after {} attempts; last error: {last}",
            self.config.retries + 1
        ))
    }

    fn attempt(&self, body: &serde_json::Value, timeout: Duration) -> Result<String, Failure> {
        let mut req = self
            .agent
            .post(&self.url)
            .timeout(timeout)
            .set("Content-Type", "application/json");
        if let Some(k) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let resp = match req.send_string(&body.to_string()) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let retry_after = r
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64);
                let text = r.into_string().unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| snippet(&text));
                let mut m = format!("POST {}: HTTP {code}: {message}", self.url);
                if code == 401 || code == 403 {
                    m.push_str(&self.key_hint());
                }
                return Err(if code == 429 || code >= 500 {
                    Failure::Retry(m, retry_after)
                } else {
                    Failure::Fatal(m)
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Failure::Retry(format!("POST {}: {t}", self.url), None));
            }
        };
        if self.config.stream {
            return self.read_stream(resp);
        }
        let mut text = String::new();
        resp.into_reader()
            .take(MAX_REPLY_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| {
                Failure::Retry(format!("POST {}: reading the reply: {e}", self.url), None)
            })?;
        reply_content(&text).map_err(|e| Failure::Fatal(format!("POST {}: {e}", self.url)))
    }

    /// What to say when the server refuses the request as unauthorised: which key was sent.
    fn key_hint(&self) -> String {
        match (
            &self.api_key,
            &self.config.api_key_env,
            &self.config.api_key_file,
        ) {
            (Some(_), Some(var), _) => {
                format!(" (the server refused the API key from api_key_env {var})")
            }
            (Some(_), None, Some(path)) => format!(
                " (the server refused the API key from api_key_file {})",
                path.display()
            ),
            (Some(_), None, None) => " (the server refused the API key)".into(),
            (None, Some(var), _) => {
                format!(" (no API key was sent: api_key_env names {var}, which is not set)")
            }
            (None, None, _) => " (no API key was sent: set api_key_env or api_key_file)".into(),
        }
    }

    fn read_stream(&self, resp: ureq::Response) -> Result<String, Failure> {
        read_event_stream(BufReader::new(resp.into_reader())).map_err(|e| match e {
            StreamError::Broken(m) => Failure::Retry(format!("POST {}: {m}", self.url), None),
            StreamError::Invalid(m) => Failure::Fatal(format!("POST {}: {m}", self.url)),
        })
    }
}

/// Longest reply body read, streamed or not (a description is a few hundred words; a server
/// that sends more is broken, and we must not hold whatever it sends).
pub const MAX_REPLY_BYTES: usize = 4 << 20;

/// The text of a non-streamed chat-completions reply body: `choices[0].message.content`, a
/// string or a list of text parts. The error says what the body was instead.
pub fn reply_content(body: &str) -> Result<String, String> {
    if body.len() > MAX_REPLY_BYTES {
        return Err(format!(
            "reply is longer than {MAX_REPLY_BYTES} bytes: {}",
            snippet(body)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|_| format!("reply is not JSON: {}", snippet(body)))?;
    message_text(&v["choices"][0]["message"]["content"])
        .ok_or_else(|| format!("reply has no choices[0].message.content: {}", snippet(body)))
}

/// Why a streamed reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The stream broke or ended early (worth another try).
    Broken(String),
    /// The server sent something that is not a chat-completions event stream.
    Invalid(String),
}

/// Reads a server-sent-events chat-completions stream up to `data: [DONE]`, joining the
/// `choices[0].delta.content` pieces. Bounded: an event line or the joined text longer than
/// [`MAX_REPLY_BYTES`] is an error, never an unbounded buffer.
pub fn read_event_stream(mut reader: impl BufRead) -> Result<String, StreamError> {
    let mut out = String::new();
    let mut line = Vec::new();
    // Whether any `data:` line came, and the first line that was not one (for the error when
    // the server answered with something that is not an event stream at all).
    let (mut events, mut other) = (0usize, None::<String>);
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_REPLY_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| StreamError::Broken(format!("stream broke: {e}")))?;
        if n == 0 {
            if events == 0
                && let Some(first) = other
            {
                return Err(StreamError::Invalid(format!(
                    "reply is not an event stream: {first}"
                )));
            }
            return Err(StreamError::Broken(format!(
                "stream ended without [DONE] after {} characters",
                out.len()
            )));
        }
        if line.len() > MAX_REPLY_BYTES {
            return Err(StreamError::Invalid(format!(
                "a stream event is longer than {MAX_REPLY_BYTES} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&line);
        let Some(data) = text.trim_end().strip_prefix("data:") else {
            // Comments (`: keep-alive`), blank lines and the other fields are the format.
            let t = text.trim();
            let field = t.split(':').next().unwrap_or_default();
            if other.is_none()
                && !t.is_empty()
                && !t.starts_with(':')
                && !matches!(field, "event" | "id" | "retry")
            {
                other = Some(snippet(t));
            }
            continue;
        };
        events += 1;
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(out);
        }
        let v: serde_json::Value = serde_json::from_str(data).map_err(|_| {
            StreamError::Invalid(format!("stream event is not JSON: {}", snippet(data)))
        })?;
        if let Some(piece) = v["choices"][0]["delta"]["content"].as_str() {
            if out.len() + piece.len() > MAX_REPLY_BYTES {
                return Err(StreamError::Invalid(format!(
                    "streamed reply is longer than {MAX_REPLY_BYTES} bytes"
                )));
            }
            out.push_str(piece);
        }
    }
}

/// Message content as text: a string, or the text parts of a part list.
fn message_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

fn snippet(s: &str) -> String {
    let t: String = s.chars().take(120).collect();
    if t.len() < s.len() {
        format!("{t:?}…")
    } else {
        format!("{t:?}")
    }
}

impl Describer for OpenAiDescriber {
    fn label(&self) -> String {
        format!("openai:{}@{}", self.config.model, self.config.base_url)
    }

    fn describe(
        &self,
        window: &[KeyFrame],
        question: &str,
        deadline: Instant,
    ) -> Result<Vec<FrameDescription>, DescribeError> {
        if window.is_empty() {
            return Err(DescribeError::EmptyWindow);
        }
        let n = window.len();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<FrameDescription, DescribeError>>>> =
            Mutex::new((0..n).map(|_| None).collect());
        let workers = self.config.max_concurrency.min(n);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n || stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let r = self.describe_one(window, i, question, deadline);
                        if r.is_err() {
                            stop.store(true, Ordering::SeqCst);
                        }
                        results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(n);
        let mut first_err = None;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some(Ok(d)) => out.push(d),
                Some(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                None => {
                    first_err.get_or_insert(DescribeError::Deadline {
                        describer: self.label(),
                        frame: i,
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl OpenAiDescriber {
    fn describe_one(
        &self,
        window: &[KeyFrame],
        i: usize,
        question: &str,
        deadline: Instant,
    ) -> Result<FrameDescription, DescribeError> {
        let (prompt, images) = if i == 0 {
            (first_frame_prompt(question), vec![&window[0]])
        } else {
            (pair_prompt(question), vec![&window[i - 1], &window[i]])
        };
        if !self.slots.acquire(deadline) {
            return Err(DescribeError::Deadline {
                describer: self.label(),
                frame: i,
            });
        }
        let body = self.request_body(&prompt, &images);
        let reply = self.complete(&body, deadline);
        self.slots.release();
        let reply = reply.map_err(|message| DescribeError::Endpoint {
            describer: self.label(),
            frame: i,
            message,
        })?;
        Ok(if i == 0 {
            super::parse_first_reply(&reply)
        } else {
            parse_reply(&reply)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_name_the_setting() {
        let e = OpenAiDescriber::new(OpenAiConfig {
            base_url: "localhost:8000".into(),
            ..OpenAiConfig::default()
        })
        .expect_err("bad url");
        assert!(e.to_string().contains("base_url"), "{e}");
        // An unset key variable is the common case of a local server: no header, no error.
        let d = OpenAiDescriber::new(OpenAiConfig {
            api_key_env: Some("EMBODIED_R_TEST_SURELY_UNSET_KEY".into()),
            ..OpenAiConfig::default()
        })
        .expect("an unset key variable means no Authorization header");
        assert!(d.api_key.is_none());
        assert!(
            d.key_hint().contains("EMBODIED_R_TEST_SURELY_UNSET_KEY"),
            "{}",
            d.key_hint()
        );
        let e = OpenAiDescriber::new(OpenAiConfig {
            max_concurrency: 0,
            ..OpenAiConfig::default()
        })
        .expect_err("zero");
        assert!(e.to_string().contains("max_concurrency"), "{e}");
    }

    #[test]
    fn request_puts_text_first_then_jpeg_data_urls() {
        let d = OpenAiDescriber::new(OpenAiConfig {
            temperature: Some(0.1),
            ..OpenAiConfig::default()
        })
        .expect("valid");
        let kf = KeyFrame {
            seq: 0,
            stamp: 0.0,
            width: 1,
            height: 1,
            pose: None,
            jpeg: vec![0xFF, 0xD8, 0xFF].into(),
        };
        let body = d.request_body("hello", &[&kf, &kf]);
        let content = &body["messages"][0]["content"];
        assert_eq!(content[0]["text"], "hello");
        assert_eq!(
            content[1]["image_url"]["url"],
            "data:image/jpeg;base64,/9j/"
        );
        assert_eq!(content.as_array().map(Vec::len), Some(3));
        assert_eq!(body["max_tokens"], 1024);
        assert!((body["temperature"].as_f64().unwrap_or(0.0) - 0.1).abs() < 1e-6);
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn content_parts_and_snippets() {
        let v = serde_json::json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]);
        assert_eq!(message_text(&v).as_deref(), Some("ab"));
        assert_eq!(message_text(&serde_json::Value::Null), None);
        assert!(snippet(&"x".repeat(500)).ends_with('…'));
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let d = OpenAiDescriber::new(OpenAiConfig::default())
            .unwrap()
            .with_api_key("sk-very-secret-123");
        let shown = format!("{d:?} {d:#?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn keys_come_from_a_file_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "  sk-from-file-42\n").unwrap();
        let cfg = OpenAiConfig {
            api_key_file: Some(f.clone()),
            ..OpenAiConfig::default()
        };
        let d = OpenAiDescriber::new(cfg.clone()).unwrap();
        assert_eq!(d.api_key.as_deref(), Some("sk-from-file-42"));
        std::fs::write(&f, "a\nb\n").unwrap();
        let e = OpenAiDescriber::new(cfg.clone()).unwrap_err().to_string();
        assert!(e.contains("one line") && !e.contains("a\nb"), "{e}");
        let missing = OpenAiConfig {
            api_key_file: Some(dir.path().join("nope")),
            ..OpenAiConfig::default()
        };
        let e = OpenAiDescriber::new(missing).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("cannot read"), "{e}");
        let both = OpenAiConfig {
            api_key_env: Some("HOME".into()),
            ..cfg
        };
        assert!(
            OpenAiDescriber::new(both)
                .unwrap_err()
                .to_string()
                .contains("both set")
        );
    }

    #[test]
    fn reply_bodies_are_read_or_named() {
        let ok = r#"{"choices":[{"message":{"content":"Frame 1: a door."}}]}"#;
        assert_eq!(reply_content(ok).as_deref(), Ok("Frame 1: a door."));
        let e = reply_content("<html>Bad gateway</html>").unwrap_err();
        assert!(e.contains("not JSON") && e.contains("Bad gateway"), "{e}");
        let e = reply_content(r#"{"choices":[]}"#).unwrap_err();
        assert!(e.contains("choices[0].message.content"), "{e}");
        let huge = format!("\"{}\"", "x".repeat(MAX_REPLY_BYTES));
        assert!(reply_content(&huge).unwrap_err().contains("longer than"));
    }

    #[test]
    fn event_streams_are_bounded() {
        let good = "data: {\"choices\":[{\"delta\":{\"content\":\"a \"}}]}\n\n: keep-alive\ndata: {\"choices\":[{\"delta\":{\"content\":\"door\"}}]}\ndata: [DONE]\n";
        assert_eq!(read_event_stream(good.as_bytes()).as_deref(), Ok("a door"));
        let cut = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n";
        assert!(
            matches!(read_event_stream(cut.as_bytes()), Err(StreamError::Broken(m)) if m.contains("without [DONE] after 1"))
        );
        let plain = "this is not json";
        assert!(matches!(
            read_event_stream(plain.as_bytes()),
            Err(StreamError::Invalid(m)) if m.contains("not an event stream") && m.contains("this is not json")
        ));
        let json = "{\"choices\": []}";
        assert!(matches!(
            read_event_stream(json.as_bytes()),
            Err(StreamError::Invalid(m)) if m.contains("not an event stream")
        ));
        let junk = "data: {not json\n";
        assert!(matches!(
            read_event_stream(junk.as_bytes()),
            Err(StreamError::Invalid(_))
        ));
        // A server that sends one endless line is cut off at the bound, not buffered whole.
        let endless = std::io::repeat(b'x').take(3 * MAX_REPLY_BYTES as u64);
        assert!(matches!(
            read_event_stream(BufReader::new(endless)),
            Err(StreamError::Invalid(m)) if m.contains("longer than")
        ));
        // Many small pieces that add up past the bound.
        let piece = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n",
            "y".repeat(1 << 20)
        );
        let many = piece.repeat(5);
        assert!(matches!(
            read_event_stream(many.as_bytes()),
            Err(StreamError::Invalid(m)) if m.contains("streamed reply is longer")
        ));
    }
}
