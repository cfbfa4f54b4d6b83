//! The GGUF reader: header, metadata, tensor table, data offsets; then what the loader reads
//! from it (model config, tokenizer, chat template) and every tensor's bytes.
#![no_main]

use embodied_r_reasoner::gguf::GgufFile;
use embodied_r_reasoner::{ChatMessage, ChatTemplate, LlamaConfig, Tokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = embodied_r_fuzz::scratch_file("model.gguf", data);
    let Ok(g) = GgufFile::open(&path) else {
        return;
    };
    for t in g.tensors() {
        let _ = t.ty();
        let _ = g.tensor_bytes(t);
    }
    let _ = LlamaConfig::from_gguf(&g);
    if let Ok(tok) = Tokenizer::from_gguf(&g) {
        let _ = tok.encode("Frame 1: a red door, left of the tower.", true);
    }
    if let Ok(src) = g.str("tokenizer.chat_template") {
        if let Ok(t) = ChatTemplate::new(src, "<s>", "</s>") {
            let _ = t.render(&[ChatMessage::new("user", "hi")], true);
        }
    }
});
