//! The library API the runtime and the trainer share: load a model with its tokenizer and chat
//! template, render a chat, generate (one prompt with streaming, or G samples sharing one
//! prefill), stop on EOS, stop strings or a token budget.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::cache::KvCache;
use crate::chat::{CHATML_TEMPLATE, ChatMessage, ChatTemplate};
use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::layers::{WeightMode, host_f32};
use crate::model::{Llama, LogitsFor, MultiPositions};
use crate::quant::ActivationMode;
use crate::sampling::{Sampler, SamplingConfig};
use crate::tokenizer::{TextStream, Tokenizer};
use crate::weights::{Checkpoint, SafetensorsSet, load_model};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Dense f32 (any backend, exact) or packed (CPU kernels).
    pub weights: WeightMode,
    /// A PEFT LoRA adapter folder to put on the decoder after loading (see [`crate::adapter`]).
    pub adapter: Option<std::path::PathBuf>,
}

impl LoadOptions {
    /// Packed weights with 8-bit activations: the fastest CPU decode.
    pub fn fast_cpu() -> Self {
        LoadOptions {
            weights: WeightMode::Packed(ActivationMode::Q8),
            adapter: None,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Most new tokens (the context length also limits it).
    pub max_tokens: usize,
    /// Sampling settings.
    pub sampling: SamplingConfig,
    /// Generation stops when the text contains one of these; the text is cut before it.
    pub stop: Vec<String>,
    /// Stop on the model's end-of-sequence tokens.
    pub stop_on_eos: bool,
}

impl GenerationConfig {
    /// Greedy decoding of at most `max_tokens` tokens, stopping on EOS.
    pub fn greedy(max_tokens: usize) -> Self {
        GenerationConfig {
            max_tokens,
            sampling: SamplingConfig::default(),
            stop: vec![],
            stop_on_eos: true,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// A stop string appeared.
    Stop,
    /// The token budget (or the context) ran out.
    Length,
    /// The caller's callback asked to stop.
    Cancelled,
}

/// Time spent, for tokens/s figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt tokens processed.
    pub prefill_tokens: usize,
    /// Seconds spent on the prompt.
    pub prefill_s: f64,
    /// Decode steps run after the prompt (one token each, per sequence).
    pub decode_tokens: usize,
    /// Seconds spent decoding.
    pub decode_s: f64,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prefill_tok_s(&self) -> f64 {
        self.prefill_tokens as f64 / self.prefill_s.max(1e-9)
    }
    /// Generated tokens per second.
    pub fn decode_tok_s(&self) -> f64 {
        self.decode_tokens as f64 / self.decode_s.max(1e-9)
    }
}

/// One finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The generated text (special tokens dropped, cut before a stop string).
    pub text: String,
    /// The generated token ids (without the EOS that ended it).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: FinishReason,
    /// Where time went.
    pub timings: Timings,
}

/// A streamed piece of output.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEvent {
    /// The token id.
    pub id: u32,
    /// Text that became final with this token (may be empty, e.g. half a UTF-8 character or
    /// a possible start of a stop string).
    pub text: String,
}

/// A model, its tokenizer and its chat template on one device.
pub struct LanguageModel<B: Backend> {
    model: Llama<B>,
    tokenizer: Tokenizer,
    template: Option<Arc<ChatTemplate>>,
    device: B::Device,
    source: PathBuf,
}

impl<B: Backend> std::fmt::Debug for LanguageModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel")
            .field("source", &self.source)
            .field("config", self.model.config())
            .finish()
    }
}

/// What `tokenizer_config.json` says about chat formatting.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenizerConfig {
    /// `chat_template`: a string, or the `default` (else first) entry of a list of named ones.
    pub chat_template: Option<String>,
    /// `bos_token`: a string or an added-token object's `content`.
    pub bos_token: Option<String>,
    /// `eos_token`: likewise.
    pub eos_token: Option<String>,
    /// `add_bos_token`.
    pub add_bos_token: Option<bool>,
}

impl TokenizerConfig {
    /// Parses the text of a `tokenizer_config.json`; fields it does not know are ignored.
    pub fn from_json_text(text: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("invalid JSON: {e}")))?;
        let token = |k: &str| match v.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => {
                o.get("content").and_then(|c| c.as_str()).map(String::from)
            }
            _ => None,
        };
        let template = match v.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(String::from),
            _ => None,
        };
        Ok(TokenizerConfig {
            chat_template: template,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            add_bos_token: v.get("add_bos_token").and_then(|b| b.as_bool()),
        })
    }
}

/// The template in the text of a multimodal processor's `chat_template.json`
/// (`{"chat_template": "..."}`).
pub fn chat_template_from_json(text: &str) -> Result<String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::Config(format!("invalid JSON: {e}")))?;
    v.get("chat_template")
        .and_then(|t| t.as_str())
        .map(String::from)
        .ok_or_else(|| Error::Config("expected a string `chat_template`".into()))
}

/// Prefixes a configuration error with the file it came from.
fn in_file(path: &Path) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Reads `chat_template` and the BOS/EOS strings from `tokenizer_config.json`.
fn hf_tokenizer_config(dir: &Path) -> Result<TokenizerConfig> {
    let path = dir.join("tokenizer_config.json");
    if !path.exists() {
        return Ok(TokenizerConfig::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    TokenizerConfig::from_json_text(&text).map_err(in_file(&path))
}

/// The tokenizer (`tokenizer.json`, with BOS/EOS from the config, `tokenizer_config.json` and
/// `generation_config.json`) and chat template (`tokenizer_config.json`, `chat_template.jinja`
/// or `chat_template.json`) of a Hugging Face folder.
pub(crate) fn hf_tokenizer_and_template(
    dir: &Path,
    config: &LlamaConfig,
) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let TokenizerConfig {
        chat_template: template_src,
        bos_token: bos_s,
        eos_token: eos_s,
        add_bos_token: add_bos,
    } = hf_tokenizer_config(dir)?;
    let template_src = match template_src {
        Some(t) => Some(t),
        None => {
            let p = dir.join("chat_template.jinja");
            let j = dir.join("chat_template.json");
            if p.exists() {
                Some(std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?)
            } else if j.exists() {
                // Processors of multimodal models: `{"chat_template": "..."}`.
                let text = std::fs::read_to_string(&j).map_err(|e| Error::io(&j, e))?;
                Some(chat_template_from_json(&text).map_err(in_file(&j))?)
            } else {
                None
            }
        }
    };
    let tok_path = dir.join("tokenizer.json");
    let mut eos_ids = config.eos_token_ids.clone();
    let gen_path = dir.join("generation_config.json");
    if gen_path.exists() {
        let text = std::fs::read_to_string(&gen_path).map_err(|e| Error::io(&gen_path, e))?;
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            match v.get("eos_token_id") {
                Some(serde_json::Value::Number(n)) => eos_ids.extend(n.as_u64().map(|x| x as u32)),
                Some(serde_json::Value::Array(a)) => {
                    eos_ids.extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32))
                }
                _ => {}
            }
        }
    }
    let mut tokenizer = Tokenizer::from_file(
        &tok_path,
        config.bos_token_id,
        vec![],
        add_bos.unwrap_or(false),
    )?;
    if let Some(e) = eos_s.as_deref().and_then(|s| tokenizer.token_id(s)) {
        eos_ids.push(e);
    }
    tokenizer.add_eos(&eos_ids);
    let template = match template_src {
        Some(src) => Some(ChatTemplate::new(
            &src,
            bos_s.as_deref().unwrap_or(""),
            eos_s.as_deref().unwrap_or(""),
        )?),
        None => None,
    };
    Ok((tokenizer, template))
}

impl<B: Backend> LanguageModel<B> {
    /// Loads a `.gguf` file or a Hugging Face folder on the backend's default device.
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        Self::load_on(path, opts, &B::Device::default())
    }

    /// Loads a `.gguf` file or a Hugging Face folder on `device`.
    pub fn load_on(path: impl AsRef<Path>, opts: &LoadOptions, device: &B::Device) -> Result<Self> {
        let path = path.as_ref();
        let span = tracing::info_span!("load_model", path = %path.display());
        let _e = span.enter();
        let t0 = Instant::now();
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
        let mut lm = if path.is_dir() {
            Self::load_hf_dir(path, opts, device)?
        } else {
            Self::load_gguf(path, opts, device)?
        };
        if let Some(dir) = &opts.adapter {
            lm.attach_adapter(dir)?;
        }
        tracing::info!(
            seconds = t0.elapsed().as_secs_f64(),
            layers = lm.model.config().num_hidden_layers,
            "model loaded"
        );
        Ok(lm)
    }

    fn load_gguf(path: &Path, opts: &LoadOptions, device: &B::Device) -> Result<Self> {
        let g = Arc::new(GgufFile::open(path)?);
        let config = LlamaConfig::from_gguf(&g)?;
        let mut tokenizer = Tokenizer::from_gguf(&g)?;
        let tok_str = |id: Option<u32>| id.and_then(|i| tokenizer.token_str(i)).unwrap_or_default();
        let bos = tok_str(tokenizer.bos());
        let eos = tok_str(tokenizer.eos().first().copied());
        let template = match g.str_opt("tokenizer.chat_template")? {
            Some(src) => Some(Arc::new(ChatTemplate::new(src, &bos, &eos)?)),
            None if tokenizer.token_id("<|im_start|>").is_some() => {
                Some(Arc::new(ChatTemplate::new(CHATML_TEMPLATE, &bos, &eos)?))
            }
            None => None,
        };
        if let Some(end) = tokenizer.token_id("<|im_end|>") {
            tokenizer.add_eos(&[end]);
        }
        let model = load_model::<B>(&Checkpoint::Gguf(g), &config, opts.weights, device)?;
        Ok(LanguageModel {
            model,
            tokenizer,
            template,
            device: device.clone(),
            source: path.to_path_buf(),
        })
    }

    fn load_hf_dir(dir: &Path, opts: &LoadOptions, device: &B::Device) -> Result<Self> {
        let config = LlamaConfig::from_hf_json(&dir.join("config.json"))?;
        let (tokenizer, template) = hf_tokenizer_and_template(dir, &config)?;
        let tensors = SafetensorsSet::open_dir(dir)?;
        let model = load_model::<B>(
            &Checkpoint::HuggingFace {
                dir: dir.to_path_buf(),
                tensors,
            },
            &config,
            opts.weights,
            device,
        )?;
        Ok(LanguageModel {
            model,
            tokenizer,
            template: template.map(Arc::new),
            device: device.clone(),
            source: dir.to_path_buf(),
        })
    }

    /// Assembles a language model from parts (e.g. a trained model).
    pub fn from_parts(
        model: Llama<B>,
        tokenizer: Tokenizer,
        template: Option<ChatTemplate>,
        device: B::Device,
    ) -> Self {
        LanguageModel {
            model,
            tokenizer,
            template: template.map(Arc::new),
            device,
            source: PathBuf::new(),
        }
    }

    /// The decoder.
    pub fn model(&self) -> &Llama<B> {
        &self.model
    }
    /// Puts the PEFT LoRA adapter in folder `dir` on the decoder's projections, unmerged (see
    /// [`crate::adapter`]): packed weights keep their kernels and the adapter runs beside them.
    pub fn attach_adapter(&mut self, dir: &Path) -> Result<crate::adapter::AdapterInfo> {
        let device = self.device.clone();
        crate::adapter::attach_adapter(&mut self.model, dir, &device)
    }

    /// The decoder, mutably (e.g. to swap weights after a training step).
    pub fn model_mut(&mut self) -> &mut Llama<B> {
        &mut self.model
    }
    /// The chat template, when the model has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_deref()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    /// The model config.
    pub fn config(&self) -> &LlamaConfig {
        self.model.config()
    }
    /// The device the model lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }
    /// Where the model was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Renders a chat with the model's template. `messages` are (role, content) pairs.
    pub fn render_chat(
        &self,
        messages: &[(&str, &str)],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let msgs: Vec<ChatMessage> = messages
            .iter()
            .map(|(r, c)| ChatMessage::new(*r, *c))
            .collect();
        self.render_messages(&msgs, add_generation_prompt)
    }

    /// Renders chat messages with the model's template.
    pub fn render_messages(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let t = self.template.as_ref().ok_or_else(|| {
            Error::ChatTemplate(format!(
                "{} has no chat template (GGUF tokenizer.chat_template or tokenizer_config.json); feed a raw prompt instead",
                self.source.display()
            ))
        })?;
        t.render(messages, add_generation_prompt)
    }

    /// Token ids of a rendered chat (special tokens in the text become ids; no extra BOS).
    pub fn encode_chat(&self, rendered: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(rendered, false)
    }

    /// Token ids of a raw prompt (BOS first when the model's metadata asks for it).
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true)
    }

    /// Logits of the last position after running `ids` from an empty cache.
    pub fn last_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let mut cache = self.model.new_cache(ids.len());
        let l =
            self.model
                .forward_ids(&[ids.to_vec()], &mut cache, LogitsFor::Last, &self.device)?;
        Ok(host_f32(l))
    }

    fn budget(&self, prompt: &[u32], cfg: &GenerationConfig) -> Result<usize> {
        cfg.sampling.validate()?;
        if prompt.is_empty() {
            return Err(Error::Generation("the prompt has no tokens".into()));
        }
        let ctx = self.config().max_position_embeddings;
        if prompt.len() >= ctx {
            return Err(Error::Generation(format!(
                "the prompt has {} tokens but the model's context is {ctx}",
                prompt.len()
            )));
        }
        Ok(cfg.max_tokens.min(ctx - prompt.len()))
    }

    /// Generates from a rendered chat (or any text whose special tokens are written out).
    pub fn generate(
        &self,
        prompt: &str,
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let ids = self.encode_chat(prompt)?;
        self.generate_ids(&ids, cfg, on_token)
    }

    /// Generates from prompt token ids, calling `on_token` for every new token.
    pub fn generate_ids(
        &self,
        prompt: &[u32],
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Completion> {
        self.generate_inner(prompt, None, cfg, on_token)
    }

    /// Generates from prompt input embeddings `[1, prompt.len(), hidden]` (a vision-language
    /// model's mix of token and image embeddings); `prompt` holds the ids at the same positions
    /// (image positions hold the image token), for the sampler's repetition history and the
    /// context check.
    pub fn generate_embeds(
        &self,
        prompt: &[u32],
        embeds: Tensor<B, 3>,
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Completion> {
        self.check_embeds(prompt, &embeds)?;
        self.generate_inner(prompt, Some((embeds, None)), cfg, on_token)
    }

    fn check_embeds(&self, prompt: &[u32], embeds: &Tensor<B, 3>) -> Result<()> {
        let dims = embeds.dims();
        if dims != [1, prompt.len(), self.config().hidden_size] {
            return Err(Error::Generation(format!(
                "prompt embeddings have shape {dims:?}; expected [1, {}, {}]",
                prompt.len(),
                self.config().hidden_size
            )));
        }
        Ok(())
    }

    /// [`LanguageModel::generate_embeds`] with multimodal rotary positions for the prompt
    /// (Qwen2-VL's M-RoPE), one `[t, h, w]` per prompt token.
    pub fn generate_embeds_at(
        &self,
        prompt: &[u32],
        embeds: Tensor<B, 3>,
        positions: MultiPositions<'_>,
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Completion> {
        self.check_embeds(prompt, &embeds)?;
        if positions.ids.len() != prompt.len() {
            return Err(Error::Generation(format!(
                "{} rotary positions for a prompt of {} tokens",
                positions.ids.len(),
                prompt.len()
            )));
        }
        let half = self.config().head_dim / 2;
        if positions.section.iter().sum::<usize>() != half {
            return Err(Error::Generation(format!(
                "the M-RoPE sections {:?} must sum to half the head width ({half})",
                positions.section
            )));
        }
        self.generate_inner(prompt, Some((embeds, Some(positions))), cfg, on_token)
    }

    fn generate_inner(
        &self,
        prompt: &[u32],
        embeds: Option<(Tensor<B, 3>, Option<MultiPositions<'_>>)>,
        cfg: &GenerationConfig,
        mut on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let max_new = self.budget(prompt, cfg)?;
        let span = tracing::debug_span!("generate", prompt_tokens = prompt.len(), max_new);
        let _e = span.enter();
        let mut cache: KvCache<B> = self.model.new_cache(prompt.len() + max_new);
        let mut timings = Timings {
            prefill_tokens: prompt.len(),
            ..Default::default()
        };
        let t0 = Instant::now();
        let logits = match embeds {
            Some((h, positions)) => {
                self.model
                    .forward_embeds_at(h, &mut cache, LogitsFor::Last, positions)
            }
            None => self.model.forward_ids(
                &[prompt.to_vec()],
                &mut cache,
                LogitsFor::Last,
                &self.device,
            )?,
        };
        let mut logits = host_f32(logits);
        timings.prefill_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut state = SampleState::new(Sampler::new(cfg.sampling.clone()), prompt);
        let mut finish = FinishReason::Length;
        for step in 0..max_new {
            let tok = state.sampler.sample(&mut logits, &state.history);
            match state.accept(tok, cfg, &self.tokenizer)? {
                Some(f) => {
                    if let Some(ev) = state.flush_event(tok, &self.tokenizer) {
                        let _ = on_token(&ev);
                    }
                    finish = f;
                    break;
                }
                None => {
                    let ev = state.take_event(tok, cfg);
                    if on_token(&ev).is_break() {
                        finish = FinishReason::Cancelled;
                        break;
                    }
                }
            }
            if step + 1 == max_new {
                if let Some(ev) = state.flush_event(tok, &self.tokenizer) {
                    let _ = on_token(&ev);
                }
                break;
            }
            let l =
                self.model
                    .forward_ids(&[vec![tok]], &mut cache, LogitsFor::Last, &self.device)?;
            logits = host_f32(l);
            timings.decode_tokens += 1;
        }
        timings.decode_s = t1.elapsed().as_secs_f64();
        state.finish(finish, timings, &self.tokenizer)
    }

    /// Generates `n` samples of one prompt. The prompt is run once and its cache copied to the
    /// `n` sequences, which then decode as one batch; finished sequences leave the batch.
    /// Sample `i` uses the seed `cfg.sampling.seed` mixed with `i`.
    pub fn generate_group(
        &self,
        prompt: &[u32],
        n: usize,
        cfg: &GenerationConfig,
    ) -> Result<Vec<Completion>> {
        if n == 0 {
            return Ok(vec![]);
        }
        let max_new = self.budget(prompt, cfg)?;
        let span = tracing::debug_span!("generate_group", prompt_tokens = prompt.len(), n, max_new);
        let _e = span.enter();
        let mut cache: KvCache<B> = self.model.new_cache(prompt.len() + max_new);
        let t0 = Instant::now();
        let logits = self.model.forward_ids(
            &[prompt.to_vec()],
            &mut cache,
            LogitsFor::Last,
            &self.device,
        )?;
        let first = host_f32(logits);
        let prefill_s = t0.elapsed().as_secs_f64();
        cache.repeat_batch(n);
        let t1 = Instant::now();
        let mut states: Vec<SampleState> = (0..n)
            .map(|i| SampleState::new(Sampler::for_sample(&cfg.sampling, i), prompt))
            .collect();
        let mut finished: Vec<Option<FinishReason>> = vec![None; n];
        let mut logits: Vec<Vec<f32>> = vec![first; n];
        // Positions in the batch → sample index.
        let mut active: Vec<usize> = (0..n).collect();
        let mut steps = 0usize;
        for step in 0..max_new {
            let mut next = Vec::with_capacity(active.len());
            let mut keep = Vec::with_capacity(active.len());
            for (pos, &i) in active.iter().enumerate() {
                let st = &mut states[i];
                let tok = st.sampler.sample(&mut logits[pos], &st.history);
                match states[i].accept(tok, cfg, &self.tokenizer)? {
                    Some(f) => finished[i] = Some(f),
                    None if step + 1 == max_new => finished[i] = Some(FinishReason::Length),
                    None => {
                        keep.push(pos);
                        next.push((i, tok));
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            if keep.len() != active.len() {
                cache.select_batch(&keep);
            }
            active = next.iter().map(|(i, _)| *i).collect();
            let batch: Vec<Vec<u32>> = next.iter().map(|(_, t)| vec![*t]).collect();
            let l = self
                .model
                .forward_ids(&batch, &mut cache, LogitsFor::Last, &self.device)?;
            let flat = host_f32(l);
            let v = self.config().vocab_size;
            logits = flat.chunks_exact(v).map(|c| c.to_vec()).collect();
            steps += 1;
        }
        let timings = Timings {
            prefill_tokens: prompt.len(),
            prefill_s,
            decode_tokens: steps,
            decode_s: t1.elapsed().as_secs_f64(),
        };
        states
            .into_iter()
            .zip(finished)
            .map(|(s, f)| s.finish(f.unwrap_or(FinishReason::Length), timings, &self.tokenizer))
            .collect()
    }
}

/// Per-sequence bookkeeping: history, generated ids, streamed text and stop detection.
struct SampleState {
    sampler: Sampler,
    history: Vec<u32>,
    generated: Vec<u32>,
    stream: TextStream,
    /// Final text produced so far (streamed pieces).
    text: String,
    /// Bytes of `text` already handed to the caller.
    emitted: usize,
    /// Where a stop string begins, once found.
    cut: Option<usize>,
}

impl SampleState {
    fn new(sampler: Sampler, prompt: &[u32]) -> Self {
        SampleState {
            sampler,
            history: prompt.to_vec(),
            generated: Vec::new(),
            stream: TextStream::default(),
            text: String::new(),
            emitted: 0,
            cut: None,
        }
    }

    /// Records `tok`; returns a finish reason if it ends the sequence.
    fn accept(
        &mut self,
        tok: u32,
        cfg: &GenerationConfig,
        tokenizer: &Tokenizer,
    ) -> Result<Option<FinishReason>> {
        if cfg.stop_on_eos && tokenizer.eos().contains(&tok) {
            return Ok(Some(FinishReason::Eos));
        }
        self.history.push(tok);
        self.generated.push(tok);
        let piece = self.stream.push(tokenizer, tok)?;
        self.text.push_str(&piece);
        if !cfg.stop.is_empty() {
            // Search only where a new match can start.
            let longest = cfg.stop.iter().map(|s| s.len()).max().unwrap_or(0);
            let mut from = self.text.len().saturating_sub(piece.len() + longest);
            while !self.text.is_char_boundary(from) {
                from -= 1;
            }
            let found = cfg
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
                .min();
            if let Some(at) = found {
                self.cut = Some(at);
                return Ok(Some(FinishReason::Stop));
            }
        }
        Ok(None)
    }

    /// The event for an accepted token: new text, minus any tail that could start a stop string.
    fn take_event(&mut self, tok: u32, cfg: &GenerationConfig) -> TokenEvent {
        let mut safe = self.text.len();
        for s in &cfg.stop {
            for k in (1..s.len()).rev() {
                if safe >= k
                    && self.text.is_char_boundary(self.text.len() - k)
                    && s.as_bytes()
                        .starts_with(&self.text.as_bytes()[self.text.len() - k..])
                {
                    safe = safe.min(self.text.len() - k);
                    break;
                }
            }
        }
        let safe = safe.max(self.emitted);
        let text = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        TokenEvent { id: tok, text }
    }

    /// Whatever final text has not been handed out yet (including an unfinished UTF-8 tail,
    /// decoded as the final text decodes it).
    fn flush_event(&mut self, tok: u32, tokenizer: &Tokenizer) -> Option<TokenEvent> {
        let text = self
            .final_text(tokenizer)
            .unwrap_or_else(|_| self.text.clone());
        if text.len() > self.emitted && text.is_char_boundary(self.emitted) {
            let rest = text[self.emitted..].to_string();
            self.emitted = text.len();
            Some(TokenEvent {
                id: tok,
                text: rest,
            })
        } else {
            None
        }
    }

    /// The complete text: everything decoded, cut before a stop string.
    fn final_text(&self, tokenizer: &Tokenizer) -> Result<String> {
        let mut text = self.stream.text(tokenizer)?;
        if let Some(cut) = self.cut {
            text.truncate(cut.min(text.len()));
        }
        Ok(text)
    }

    fn finish(
        self,
        finish: FinishReason,
        timings: Timings,
        tokenizer: &Tokenizer,
    ) -> Result<Completion> {
        let text = self.final_text(tokenizer)?;
        Ok(Completion {
            text,
            tokens: self.generated,
            finish,
            timings,
        })
    }
}
