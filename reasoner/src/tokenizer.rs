//! Tokenizers: Hugging Face `tokenizer.json`, or a byte-level BPE rebuilt from GGUF metadata
//! (`tokenizer.ggml.*`) with the pre-tokenizer the model was trained with.
//!
//! Both end up as a `tokenizers::Tokenizer`, so special tokens, byte-level decoding and
//! pre-tokenizer regexes behave exactly as Hugging Face's do.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, MetaValue};

/// Llama 3's split regex (llama.cpp `llama-bpe`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split regex (single digits).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The GGUF pre-tokenizer names we know, for error messages.
const KNOWN_PRE: &str = "default, gpt2, smollm, qwen2, deepseek-r1-qwen, llama-bpe, llama3";

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// A text tokenizer with the model's special tokens.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Vec<u32>,
    add_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

/// GPT-2's byte → printable character table (the byte-level BPE alphabet).
fn byte_alphabet() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
            c
        };
    }
    table
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`; `bos`/`eos`/`add_bos` come from the caller
    /// (`tokenizer_config.json` / `config.json`).
    pub fn from_file(path: &Path, bos: Option<u32>, eos: Vec<u32>, add_bos: bool) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Tokenizer {
            inner,
            bos,
            eos,
            add_bos,
        })
    }

    /// Rebuilds the tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let json = gguf_tokenizer_json(g)?;
        let inner =
            tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes()).map_err(|e| {
                Error::Tokenizer(format!(
                    "{}: rebuilding from metadata: {e}",
                    g.path().display()
                ))
            })?;
        let bos = g.u64_opt("tokenizer.ggml.bos_token_id")?.map(|v| v as u32);
        let mut eos: Vec<u32> = g
            .u64_opt("tokenizer.ggml.eos_token_id")?
            .map(|v| vec![v as u32])
            .unwrap_or_default();
        if let Some(eot) = g.u64_opt("tokenizer.ggml.eot_token_id")?
            && !eos.contains(&(eot as u32))
        {
            eos.push(eot as u32);
        }
        let add_bos = g.bool_opt("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
        Ok(Tokenizer {
            inner,
            bos,
            eos,
            add_bos,
        })
    }

    /// Writes the tokenizer as a `tokenizer.json` (the Hugging Face tokenizers format).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, true)
            .map_err(|e| Error::Tokenizer(format!("writing {}: {e}", path.display())))
    }

    /// Encodes `text`. Special tokens written in the text (`<|im_start|>`) become their ids.
    /// With `add_bos`, the model's BOS is prepended when its metadata asks for one.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(format!("encoding failed: {e}")))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_bos
            && self.add_bos
            && let Some(b) = self.bos
        {
            ids.push(b);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Decodes ids to text; `skip_special` drops control tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| Error::Tokenizer(format!("decoding failed: {e}")))
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The string of a token id.
    pub fn token_str(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence tokens.
    pub fn eos(&self) -> &[u32] {
        &self.eos
    }

    /// Whether the model's metadata asks for a BOS in front of raw prompts.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// Adds end-of-sequence ids (e.g. `<|im_end|>` for chat models whose config lists another).
    pub fn add_eos(&mut self, ids: &[u32]) {
        for &i in ids {
            if !self.eos.contains(&i) {
                self.eos.push(i);
            }
        }
    }
}

/// Builds a `tokenizer.json` document from GGUF metadata.
fn gguf_tokenizer_json(g: &GgufFile) -> Result<Value> {
    let model = g.str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(Error::Tokenizer(format!(
            "{}: tokenizer.ggml.model is `{model}`; only byte-level BPE (`gpt2`) is supported",
            g.path().display()
        )));
    }
    let tokens = g.str_array("tokenizer.ggml.tokens")?;
    let merges = g.str_array("tokenizer.ggml.merges")?;
    let types = g
        .int_array_opt("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(Error::Tokenizer(format!(
            "{}: {} token types for {} tokens",
            g.path().display(),
            types.len(),
            tokens.len()
        )));
    }
    let alphabet = byte_alphabet();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let ty = types.get(i).copied().unwrap_or(1);
        let spelled = if in_alphabet(t) {
            (*t).to_string()
        } else {
            t.bytes().map(|b| alphabet[b as usize]).collect()
        };
        if ty == TOKEN_CONTROL && in_alphabet(t) {
            added.push(
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}),
            );
        } else if ty == TOKEN_USER_DEFINED {
            added.push(
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": false}),
            );
        }
        vocab.insert(spelled, json!(i));
    }
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |re: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
            byte_level(false)
        ]})
    };
    let pre = g.str_opt("tokenizer.ggml.pre")?.unwrap_or("default");
    let pre_tokenizer = match pre {
        "default" | "gpt2" => byte_level(true),
        // SmolLM: every digit on its own, then GPT-2's split (as SmolLM2's tokenizer.json).
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level(true)
        ]}),
        "qwen2" | "deepseek-r1-qwen" => split(QWEN2_SPLIT),
        "llama-bpe" | "llama3" | "llama-v3" => split(LLAMA3_SPLIT),
        other => {
            return Err(Error::Tokenizer(format!(
                "{}: tokenizer.ggml.pre is `{other}`; supported: {KNOWN_PRE}",
                g.path().display()
            )));
        }
    };
    let merges: Vec<Value> = merges.iter().map(|m| json!(m)).collect();
    if let Some(MetaValue::Bool(true)) = g.get("tokenizer.ggml.add_space_prefix") {
        tracing::debug!(
            "tokenizer.ggml.add_space_prefix is set but has no effect on byte-level BPE"
        );
    }
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges
        }
    }))
}

/// Turns generated ids into text piece by piece, holding back the bytes of an unfinished
/// UTF-8 character. Decodes only a short window, so a long generation stays linear.
#[derive(Debug, Default)]
pub(crate) struct TextStream {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl TextStream {
    /// Adds one id and returns the newly completed text (possibly empty).
    pub(crate) fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let prev = tok.decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let now = tok.decode(&self.ids[self.prefix_offset..], true)?;
        if now.len() > prev.len() && !now.ends_with('\u{fffd}') {
            let new = now.get(prev.len()..).unwrap_or("").to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            return Ok(new);
        }
        Ok(String::new())
    }

    /// All text so far, including any unfinished tail.
    pub(crate) fn text(&self, tok: &Tokenizer) -> Result<String> {
        tok.decode(&self.ids, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_gpt2s() {
        let a = byte_alphabet();
        assert_eq!(a[b'A' as usize], 'A');
        assert_eq!(a[b' ' as usize], 'Ġ');
        assert_eq!(a[b'\n' as usize], 'Ċ');
        let mut sorted: Vec<char> = a.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
    }
}
