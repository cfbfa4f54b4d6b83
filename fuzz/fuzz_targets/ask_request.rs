//! The zenoh ask request: payload bytes to an admitted question or a named refusal. The first
//! byte picks the mode: odd, the rest is the payload as sent; even, the rest builds a
//! structured request (`arbitrary`) that is serialised to JSON, which reaches the admission
//! checks behind the parser far more often than random bytes do.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use embodied_r_agent::api::{MAX_CLIENT_BYTES, admit};
use embodied_r_agent::config::ApiConfig;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Debug, Arbitrary)]
enum Window {
    All,
    LastSeconds(f64),
    LastN(i64),
    SinceSeq(u64),
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Request {
    question: String,
    choices: Option<Vec<String>>,
    window: Option<Window>,
    deadline_ms: Option<u64>,
    ground_truth: Option<String>,
    category: Option<String>,
    client: Option<String>,
    extra_field: bool,
}

fn to_json(r: Request) -> Vec<u8> {
    let mut v = json!({ "question": r.question });
    if let Some(c) = r.choices {
        v["choices"] = json!(c);
    }
    if let Some(w) = r.window {
        v["window"] = match w {
            Window::All => json!("all"),
            Window::LastSeconds(s) => json!({ "last_seconds": s }),
            Window::LastN(n) => json!({ "last_n": n }),
            Window::SinceSeq(s) => json!({ "since_seq": s }),
            Window::Other(s) => Value::String(s),
        };
    }
    if let Some(d) = r.deadline_ms {
        v["deadline_ms"] = json!(d);
    }
    if let Some(g) = r.ground_truth {
        v["ground_truth"] = json!(g);
    }
    if let Some(c) = r.category {
        v["category"] = json!(c);
    }
    if let Some(c) = r.client {
        v["client"] = json!(c);
    }
    if r.extra_field {
        v["unexpected"] = json!(1);
    }
    v.to_string().into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let payload = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        match Request::arbitrary_take_rest(Unstructured::new(rest)) {
            Ok(r) => to_json(r),
            Err(_) => return,
        }
    };
    let cfg = ApiConfig::default();
    match admit(Some(&payload), &cfg, "fuzz".into(), Some(50.0), 1.7e9) {
        Ok(q) => {
            assert!(!q.question.is_empty());
            assert!(q.question.len() <= cfg.max_question_bytes);
            assert!(q.choices.len() != 1 && q.choices.len() <= cfg.max_choices);
            assert!(!q.client.is_empty() && q.client.len() <= MAX_CLIENT_BYTES);
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
});
