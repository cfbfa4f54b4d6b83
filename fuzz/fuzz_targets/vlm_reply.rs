//! What a VLM server sends back: the chat-completions body, the event stream, and the
//! description text parsed into per-frame fields.
#![no_main]

use embodied_r_perception::describe::openai::{MAX_REPLY_BYTES, read_event_stream, reply_content};
use embodied_r_perception::describe::{parse_first_reply, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = read_event_stream(data) {
        assert!(t.len() <= MAX_REPLY_BYTES);
        let _ = parse_reply(&t);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = reply_content(&text) {
        let _ = parse_first_reply(&t);
    }
    let _ = parse_reply(&text);
    let _ = parse_first_reply(&text);
});
