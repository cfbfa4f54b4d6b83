//! The text files of a Hugging Face model folder, each through what the loaders do with it:
//! `config.json` (the LM's and the VLM's readers), `tokenizer.json` (built, then used),
//! `tokenizer_config.json` and `chat_template.json` (the template compiled and rendered), and
//! the VLM image-processor settings (`preprocessor_config.json` / `processor_config.json`'s
//! `image_processor`, both families) through to preprocessing a small image. The first byte
//! picks the file.
#![no_main]

use embodied_r_reasoner::vlm::{Idefics3ImageConfig, QwenImageConfig, Rgb8, VlmConfig};
use embodied_r_reasoner::{
    ChatMessage, ChatTemplate, LlamaConfig, Tokenizer, TokenizerConfig, chat_template_from_json,
};
use libfuzzer_sys::fuzz_target;

fn render(src: &str) {
    if let Ok(t) = ChatTemplate::new(src, "<s>", "</s>") {
        let _ = t.render(
            &[
                ChatMessage::new("system", "S"),
                ChatMessage::new("user", "Frame 1: a door."),
            ],
            true,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    match kind % 5 {
        0 => {
            if let Ok(c) = LlamaConfig::from_hf_str(&text) {
                let _ = c.validate();
            }
            let _ = VlmConfig::from_str(&text);
        }
        1 => {
            let path = embodied_r_fuzz::scratch_file("tokenizer.json", body);
            if let Ok(t) = Tokenizer::from_file(&path, None, vec![], false)
                && let Ok(ids) = t.encode("Frame 1: a red door, left of the tower.", true)
            {
                let _ = t.decode(&ids, true);
            }
        }
        2 => {
            if let Ok(c) = TokenizerConfig::from_json_text(&text)
                && let Some(src) = c.chat_template
            {
                render(&src);
            }
        }
        3 => {
            if let Ok(src) = chat_template_from_json(&text) {
                render(&src);
            }
        }
        _ => {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                return;
            };
            // processor_config.json nests the settings; preprocessor_config.json is them.
            let v = v.get("image_processor").cloned().unwrap_or(v);
            let image = Rgb8::new(
                40,
                30,
                (0..40 * 30 * 3).map(|i| (i * 7 % 251) as u8).collect(),
            )
            .expect("a valid image");
            // Every accepted setting is bounded by the parsers (edges ≤ 4096, pixels ≤ 2 ×
            // 4096²); preprocessing runs here only where the output stays small, since a valid
            // 1456-pixel Idefics3 resize alone takes seconds under the sanitizer and adds no
            // coverage.
            if let Ok(c) = Idefics3ImageConfig::from_json(&v)
                && c.longest_edge <= 512
                && c.tile <= 256
            {
                let tiles = c.preprocess(&image);
                assert_eq!(
                    tiles.pixels.len(),
                    tiles.count * 3 * tiles.size * tiles.size
                );
            }
            if let Ok(c) = QwenImageConfig::from_json(&v)
                && c.min_pixels <= 1 << 16
                && let Ok(p) = c.preprocess(&image)
            {
                assert_eq!(p.pixels.len(), p.count() * p.patch_len);
            }
        }
    }
});
