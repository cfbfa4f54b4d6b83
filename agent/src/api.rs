//! The ask request: its JSON shape, and admission checks that turn every bad request into an
//! error reply naming what was wrong (never a panic, never silence).

use crate::config::ApiConfig;
use crate::engine::{AskError, Question};
use embodied_r_perception::buffer::WindowQuery;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Largest request payload read at all (the question limit applies after parsing).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Longest `client` name, bytes.
pub const MAX_CLIENT_BYTES: usize = 64;

/// The client name of requests that give none: they share one per-client bound.
pub const ANONYMOUS_CLIENT: &str = "anonymous";

/// `{question, choices?, window?, deadline_ms?, ground_truth?, category?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question (a leading `Question:` is fine).
    pub question: String,
    /// Options; absent or empty for a free-form question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    /// Which key frames: `"all"`, `{"last_seconds": 30}`, `{"last_n": 8}`,
    /// `{"since_seq": 120}`. Default: all held (at most `buffer.window_max`, evenly sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowQuery>,
    /// Reply within this many milliseconds (default `api.default_deadline_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The gold answer when the asker knows it (recorded with rewards in the episode log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth: Option<String>,
    /// Dataset category, recorded in the episode log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Who is asking: the key of the per-client bound (`api.per_client`). 1 to 64 characters
    /// from `A-Z a-z 0-9 . _ - : / @`. Self-declared: the access-control config decides who may
    /// ask at all; this name only keeps one busy console from taking every queue slot.
    /// Requests without it share the bound of one client named `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// How far an answer has got: the current stage (`queued`, `describing`, `reasoning`,
/// `checking`) and the completion's text so far. Sent on a watch channel: a slow reader sees
/// the latest state, never a backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AskProgress {
    /// The stage.
    pub stage: String,
    /// The answer's completion so far.
    pub partial: String,
}

/// Parses and checks a request. `expected_wait_ms` is the runtime's estimate of queueing plus
/// service time; deadlines shorter than it (or than `api.min_deadline_ms`) are refused now
/// rather than missed later.
pub fn admit(
    payload: Option<&[u8]>,
    cfg: &ApiConfig,
    id: String,
    expected_wait_ms: Option<f64>,
    now_unix: f64,
) -> Result<Question, AskError> {
    let bytes = payload.ok_or_else(|| {
        AskError::new(
            "bad_request",
            "the query has no payload; send JSON {\"question\": \"...\", \"choices\": [...]}",
        )
    })?;
    if bytes.len() > MAX_PAYLOAD {
        return Err(AskError::new(
            "too_large",
            format!(
                "the request is {} bytes; at most {MAX_PAYLOAD} are read",
                bytes.len()
            ),
        ));
    }
    let req: AskRequest = serde_json::from_slice(bytes).map_err(|e| {
        AskError::new(
            "bad_request",
            format!(
                "the request is not a valid ask object ({e}); expected JSON with `question` and optionally `choices`, `window`, `deadline_ms`, `ground_truth`, `category`"
            ),
        )
    })?;
    let question = req.question.trim().to_string();
    if question.is_empty() {
        return Err(AskError::new("bad_request", "`question` is empty"));
    }
    let choices: Vec<String> = req
        .choices
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.trim().to_string())
        .collect();
    let size = question.len() + choices.iter().map(String::len).sum::<usize>();
    if size > cfg.max_question_bytes {
        return Err(AskError::new(
            "too_large",
            format!(
                "the question and its choices are {size} bytes; the limit is api.max_question_bytes = {}",
                cfg.max_question_bytes
            ),
        ));
    }
    if choices.len() == 1 || choices.len() > cfg.max_choices {
        return Err(AskError::new(
            "bad_request",
            format!(
                "{} choices given; send none (free-form) or 2..={}",
                choices.len(),
                cfg.max_choices
            ),
        ));
    }
    if let Some(i) = choices.iter().position(String::is_empty) {
        return Err(AskError::new(
            "bad_request",
            format!("choice {} is empty", i + 1),
        ));
    }
    match req.window {
        Some(WindowQuery::LastSeconds(s)) if !(s.is_finite() && s > 0.0) => {
            return Err(AskError::new(
                "bad_request",
                format!("window.last_seconds = {s}; expected a positive number of seconds"),
            ));
        }
        Some(WindowQuery::LastN(0)) => {
            return Err(AskError::new(
                "bad_request",
                "window.last_n = 0; expected at least 1 key frame",
            ));
        }
        _ => {}
    }
    let client = match req.client {
        None => ANONYMOUS_CLIENT.to_string(),
        Some(c) => {
            let ok = (1..=MAX_CLIENT_BYTES).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-:/@".contains(&b));
            if !ok {
                let shown: String = c.chars().take(MAX_CLIENT_BYTES).collect();
                return Err(AskError::new(
                    "bad_request",
                    format!(
                        "client = {shown:?}; expected 1 to {MAX_CLIENT_BYTES} characters from A-Z a-z 0-9 . _ - : / @"
                    ),
                ));
            }
            c
        }
    };
    let deadline_ms = req.deadline_ms.unwrap_or(cfg.default_deadline_ms);
    if deadline_ms < cfg.min_deadline_ms {
        return Err(AskError::new(
            "deadline_unmeetable",
            format!(
                "deadline_ms = {deadline_ms} is below api.min_deadline_ms = {}",
                cfg.min_deadline_ms
            ),
        ));
    }
    if let Some(w) = expected_wait_ms
        && (deadline_ms as f64) < w
    {
        return Err(AskError::new(
            "deadline_unmeetable",
            format!(
                "deadline_ms = {deadline_ms} but the queue ahead and a typical answer take about {w:.0} ms"
            ),
        ));
    }
    if deadline_ms > 24 * 3600 * 1000 {
        return Err(AskError::new(
            "bad_request",
            format!("deadline_ms = {deadline_ms}; at most one day"),
        ));
    }
    // A truth the rewards cannot read would be recorded as gold and train wrongly.
    let ground_truth = match req.ground_truth {
        None => None,
        Some(t) => Some(
            embodied_r_reasoner::labels::normalize_truth("ground_truth", &choices, &t)
                .map_err(|e| AskError::new("bad_request", e.to_string()))?,
        ),
    };
    let received = Instant::now();
    Ok(Question {
        id,
        question,
        choices,
        window: req.window.unwrap_or(WindowQuery::All),
        deadline: received + Duration::from_millis(deadline_ms),
        ground_truth,
        category: req.category,
        client,
        received,
        received_unix: now_unix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(json: &str) -> Question {
        admit(
            Some(json.as_bytes()),
            &ApiConfig::default(),
            "q1".into(),
            None,
            0.0,
        )
        .unwrap()
    }

    fn err(json: Option<&str>, wait: Option<f64>) -> AskError {
        admit(
            json.map(str::as_bytes),
            &ApiConfig::default(),
            "q1".into(),
            wait,
            0.0,
        )
        .err()
        .unwrap()
    }

    #[test]
    fn accepts_the_documented_shapes() {
        let q = ok(r#"{"question": " Where is the door? ", "choices": ["left", "right"]}"#);
        assert_eq!(q.question, "Where is the door?");
        assert_eq!(q.choices, ["left", "right"]);
        assert_eq!(q.window, WindowQuery::All);
        let q = ok(r#"{"question": "q", "window": {"last_seconds": 30}, "deadline_ms": 5000}"#);
        assert_eq!(q.window, WindowQuery::LastSeconds(30.0));
        assert_eq!(
            ok(r#"{"question":"q","window":{"last_n":8}}"#).window,
            WindowQuery::LastN(8)
        );
        assert_eq!(
            ok(r#"{"question":"q","window":"all"}"#).window,
            WindowQuery::All
        );
    }

    #[test]
    fn a_truth_is_kept_in_the_form_the_rewards_read() {
        let q = ok(r#"{"question":"q","choices":["left","right"],"ground_truth":" right "}"#);
        assert_eq!(q.ground_truth.as_deref(), Some("B"));
        let q = ok(r#"{"question":"how far?","ground_truth":"2.5"}"#);
        assert_eq!(q.ground_truth.as_deref(), Some("2.5"));
    }

    #[test]
    fn names_the_client_or_calls_it_anonymous() {
        assert_eq!(ok(r#"{"question":"q"}"#).client, ANONYMOUS_CLIENT);
        assert_eq!(
            ok(r#"{"question":"q","client":"console-2@base:7447/x_y.z"}"#).client,
            "console-2@base:7447/x_y.z"
        );
        let long = "c".repeat(MAX_CLIENT_BYTES + 1);
        for bad in ["", "two words", "tab\t", "ünicode", long.as_str()] {
            let json = serde_json::json!({"question": "q", "client": bad}).to_string();
            let e = err(Some(&json), None);
            assert_eq!(e.code, "bad_request", "{bad:?}");
            assert!(e.message.starts_with("client = "), "{}", e.message);
            assert!(
                e.message.len() < 200,
                "the message quotes a bounded name: {}",
                e.message
            );
        }
        let ok_len = "c".repeat(MAX_CLIENT_BYTES);
        assert_eq!(
            ok(&format!(r#"{{"question":"q","client":"{ok_len}"}}"#)).client,
            ok_len
        );
    }

    #[test]
    fn refuses_bad_requests_with_named_errors() {
        for (json, code, words) in [
            (None, "bad_request", "no payload"),
            (Some("not json"), "bad_request", "not a valid ask object"),
            (
                Some(r#"{"question":"q","colour":1}"#),
                "bad_request",
                "unknown field `colour`",
            ),
            (
                Some(r#"{"choices":["a","b"]}"#),
                "bad_request",
                "missing field `question`",
            ),
            (Some(r#"{"question":"  "}"#), "bad_request", "empty"),
            (
                Some(r#"{"question":"q","choices":["a"]}"#),
                "bad_request",
                "1 choices",
            ),
            (
                Some(r#"{"question":"q","choices":["a",""]}"#),
                "bad_request",
                "choice 2 is empty",
            ),
            (
                Some(r#"{"question":"q","window":{"last_seconds":-1}}"#),
                "bad_request",
                "last_seconds",
            ),
            (
                Some(r#"{"question":"q","window":"yesterday"}"#),
                "bad_request",
                "yesterday",
            ),
            (
                Some(r#"{"question":"q","deadline_ms":10}"#),
                "deadline_unmeetable",
                "min_deadline_ms",
            ),
            (
                Some(r#"{"question":"q","choices":["a","b"],"ground_truth":"C"}"#),
                "bad_request",
                "ground_truth: `C` is not one of its 2 options",
            ),
            (
                Some(r#"{"question":"q","ground_truth":"left"}"#),
                "bad_request",
                "is not a number",
            ),
        ] {
            let e = err(json, None);
            assert_eq!(e.code, code, "{json:?}: {e}");
            assert!(e.message.contains(words), "{json:?}: {e}");
        }
        let long = format!(r#"{{"question":"{}"}}"#, "x".repeat(5000));
        assert_eq!(err(Some(&long), None).code, "too_large");
        let e = err(Some(r#"{"question":"q","deadline_ms":1000}"#), Some(4000.0));
        assert_eq!(e.code, "deadline_unmeetable");
        assert!(e.message.contains("4000"), "{e}");
        let v = e.to_json(Some("q1"));
        assert_eq!(v["error"]["code"], "deadline_unmeetable");
        assert_eq!(v["question_id"], "q1");
    }
}
