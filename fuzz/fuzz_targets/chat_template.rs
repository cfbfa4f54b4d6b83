//! The chat-template renderer fed a hostile template (as a model file may carry) and hostile
//! messages. Input: the template, then NUL-separated role/content pairs, so seeds are real
//! templates as text.
#![no_main]

use embodied_r_reasoner::{ChatMessage, ChatTemplate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or_default();
    let Ok(t) = ChatTemplate::new(template, "<s>", "</s>") else {
        return;
    };
    let rest: Vec<&str> = parts.collect();
    let messages: Vec<ChatMessage> = rest
        .chunks(2)
        .map(|p| ChatMessage::new(p[0], p.get(1).copied().unwrap_or_default()))
        .collect();
    let _ = t.render(&messages, data.len() % 2 == 0);
});
