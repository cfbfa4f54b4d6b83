//! A vision-language model in burn: the local describer that runs beside the reasoner on the
//! same backends (flex on CPU, wgpu, cuda).
//!
//! Supported: the Idefics3 family — `SmolVLMForConditionalGeneration` (SmolVLM, SmolVLM2) and
//! `Idefics3ForConditionalGeneration` — from a Hugging Face folder (`config.json`,
//! `*.safetensors`, `tokenizer.json`, the processor's JSON and the chat template). The language
//! model inside is the crate's [`Llama`](crate::Llama), loaded from the `model.text_model.*`
//! tensors; the vision tower and connector are in [`siglip`].
//!
//! One call ([`VisionLanguageModel::generate`]) renders a user turn — the images in order, then
//! the prompt — with the model's own chat template, preprocesses every image as transformers'
//! PIL processor does ([`processor`], [`resize`]), expands each `<image>` into its tile layout,
//! encodes the tiles, puts the image features where the image tokens are, and generates with
//! the language model's sampler.
//!
//! Images come in as plain RGB bytes ([`Rgb8`]); this crate still knows nothing of cameras or
//! frames.

pub mod config;
pub mod presets;
pub mod processor;
pub mod resize;
pub mod siglip;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::generate::hf_tokenizer_and_template;
use crate::generate::{Completion, GenerationConfig, LanguageModel, LoadOptions, TokenEvent};
use crate::layers::host_f32;
use crate::weights::{SafetensorsSet, load_text_model};

pub use config::{SUPPORTED_ARCHITECTURES, VisionConfig, VlmConfig, VlmFamily};
pub use processor::{Idefics3ImageConfig, ImageTokens, Tiles};
pub use resize::{Filter, Rgb8};
pub use siglip::SiglipTower;

/// Where the language model's tensors live in an Idefics3-family checkpoint.
const TEXT_PREFIX: &str = "model.text_model.";

/// A loaded vision-language model.
pub struct VisionLanguageModel<B: Backend> {
    lm: LanguageModel<B>,
    tower: SiglipTower<B>,
    config: VlmConfig,
    images: Idefics3ImageConfig,
    tokens: ImageTokens,
    seq_len: usize,
    source: PathBuf,
}

impl<B: Backend> std::fmt::Debug for VisionLanguageModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionLanguageModel")
            .field("source", &self.source)
            .field("architecture", &self.config.architecture)
            .finish()
    }
}

/// A prompt ready to run: its token ids (image positions hold the image token) and the
/// preprocessed images in prompt order.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Token ids of the expanded prompt.
    pub ids: Vec<u32>,
    /// One entry per image.
    pub images: Vec<Tiles>,
}

impl Prepared {
    /// Tiles over all images.
    pub fn tiles(&self) -> usize {
        self.images.iter().map(|t| t.count).sum()
    }
}

/// A generation with what the images cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VlmOutput {
    /// The language model's completion (its timings cover prefill and decode).
    pub completion: Completion,
    /// Images in the prompt.
    pub images: usize,
    /// Tiles they became.
    pub tiles: usize,
    /// Prompt tokens, image tokens included.
    pub prompt_tokens: usize,
    /// Image tokens among them.
    pub image_tokens: usize,
    /// Seconds spent preprocessing and encoding the images.
    pub encode_s: f64,
}

/// Reads a JSON file of the folder, `None` when it does not exist.
fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Config(format!("{}: invalid JSON: {e}", path.display())))
}

/// Decodes an image file (PNG or JPEG) to RGB, dropping alpha as PIL's `convert("RGB")` does.
pub fn load_image(path: &Path) -> Result<Rgb8> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decodes encoded image bytes (PNG or JPEG) to RGB; `what` names the image in errors.
pub fn decode_image(bytes: &[u8], what: &str) -> Result<Rgb8> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| Error::Image {
            what: what.to_string(),
            message: format!("cannot be decoded ({e}); expected a PNG or JPEG file"),
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Rgb8::new(w as usize, h as usize, img.into_raw()).map_err(|e| match e {
        Error::Image { message, .. } => Error::Image {
            what: what.to_string(),
            message,
        },
        other => other,
    })
}

impl<B: Backend> VisionLanguageModel<B> {
    /// Loads a Hugging Face folder on `device`.
    pub fn load(dir: impl AsRef<Path>, opts: &LoadOptions, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let span = tracing::info_span!("load_vlm", path = %dir.display());
        let _e = span.enter();
        let t0 = Instant::now();
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "a vision-language model is a Hugging Face folder (config.json, \
                     *.safetensors, tokenizer.json, processor files); no such folder",
                ),
            ));
        }
        let config = VlmConfig::from_dir(dir)?;
        let processor = read_json(&dir.join("processor_config.json"))?;
        let image_json = match read_json(&dir.join("preprocessor_config.json"))? {
            Some(v) => v,
            None => processor
                .as_ref()
                .and_then(|p| p.get("image_processor").cloned())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{}: no image processor settings: expected preprocessor_config.json, or \
                         processor_config.json with an `image_processor` object",
                        dir.display()
                    ))
                })?,
        };
        let images = Idefics3ImageConfig::from_json(&image_json)
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
        if images.tile != config.vision.image_size {
            return Err(Error::Config(format!(
                "{}: the processor cuts {}-pixel tiles but the vision tower takes {}-pixel images",
                dir.display(),
                images.tile,
                config.vision.image_size
            )));
        }
        let seq_len = config.tokens_per_tile();
        if let Some(n) = processor
            .as_ref()
            .and_then(|p| p.get("image_seq_len"))
            .and_then(|n| n.as_u64())
            && n as usize != seq_len
        {
            return Err(Error::Config(format!(
                "{}: processor_config.json says {n} image tokens per tile, the model makes {seq_len}",
                dir.display()
            )));
        }
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.exists() {
            return Err(Error::io(
                &tok_path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the model folder has no tokenizer.json",
                ),
            ));
        }
        let (tokenizer, template) = hf_tokenizer_and_template(dir, &config.text)?;
        let tokens = ImageTokens::default();
        for t in [&tokens.image, &tokens.fake_around, &tokens.global] {
            if tokenizer.token_id(t).is_none() {
                return Err(Error::Tokenizer(format!(
                    "{}: the tokenizer has no `{t}` token, which the image layout needs",
                    tok_path.display()
                )));
            }
        }
        if tokenizer.token_id(&tokens.image) != Some(config.image_token_id) {
            return Err(Error::Config(format!(
                "config.json says the image token is {} but the tokenizer maps `{}` to {:?}",
                config.image_token_id,
                tokens.image,
                tokenizer.token_id(&tokens.image)
            )));
        }
        let tensors = SafetensorsSet::open_dir(dir)?;
        let llama =
            load_text_model::<B>(&tensors, TEXT_PREFIX, &config.text, opts.weights, device)?;
        let mut reader = siglip::Reader::<B> {
            set: &tensors,
            device,
            used: Vec::new(),
        };
        let tower = SiglipTower::load(
            &mut reader,
            &config.vision,
            config.scale_factor,
            config.text.hidden_size,
        )?;
        let used: HashSet<&str> = reader.used.iter().map(String::as_str).collect();
        let mut extra: Vec<String> = tensors
            .tensor_names()
            .into_iter()
            .filter(|n| {
                !n.starts_with(TEXT_PREFIX)
                    && n != "lm_head.weight"
                    && !used.contains(n.as_str())
                    && !n.ends_with("rotary_emb.inv_freq")
            })
            .collect();
        if !extra.is_empty() {
            extra.sort();
            return Err(Error::UnexpectedTensors {
                count: extra.len(),
                example: extra.swap_remove(0),
            });
        }
        let lm = LanguageModel::from_parts(llama, tokenizer, template, device.clone());
        tracing::info!(
            seconds = t0.elapsed().as_secs_f64(),
            architecture = %config.architecture,
            "vision-language model loaded"
        );
        Ok(VisionLanguageModel {
            lm,
            tower,
            config,
            images,
            tokens,
            seq_len,
            source: dir.to_path_buf(),
        })
    }

    /// The parsed config.
    pub fn config(&self) -> &VlmConfig {
        &self.config
    }

    /// The image processor settings.
    pub fn image_config(&self) -> &Idefics3ImageConfig {
        &self.images
    }

    /// The language model (tokenizer, template, decoder).
    pub fn language_model(&self) -> &LanguageModel<B> {
        &self.lm
    }

    /// The vision tower and connector.
    pub fn tower(&self) -> &SiglipTower<B> {
        &self.tower
    }

    /// Where the model was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// A label for records: the folder's name and the architecture.
    pub fn label(&self) -> String {
        let name = self
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("local:{name} ({})", self.config.architecture)
    }

    /// One user turn — `images` image parts, then `text` — rendered with the model's chat
    /// template and the generation prompt.
    pub fn render_prompt(&self, images: usize, text: &str) -> Result<String> {
        let mut content: Vec<Value> = (0..images).map(|_| json!({"type": "image"})).collect();
        content.push(json!({"type": "text", "text": text}));
        self.render_messages(&[json!({"role": "user", "content": content})])
    }

    /// Renders chat messages in transformers' multimodal shape (content as a list of parts).
    pub fn render_messages(&self, messages: &[Value]) -> Result<String> {
        let t = self.lm.chat_template().ok_or_else(|| {
            Error::ChatTemplate(format!(
                "{} has no chat template (chat_template.jinja, chat_template.json or \
                 tokenizer_config.json)",
                self.source.display()
            ))
        })?;
        t.render_values(messages, true)
    }

    /// Expands the `<image>` placeholders of a rendered prompt for `images` (one placeholder
    /// per image, in order) and tokenizes it.
    pub fn prepare(&self, rendered: &str, images: &[Rgb8]) -> Result<Prepared> {
        let parts: Vec<&str> = rendered.split(self.tokens.image.as_str()).collect();
        if parts.len() - 1 != images.len() {
            return Err(Error::Generation(format!(
                "the prompt has {} `{}` placeholders but {} images were given",
                parts.len() - 1,
                self.tokens.image,
                images.len()
            )));
        }
        let tiles: Vec<Tiles> = images.iter().map(|i| self.images.preprocess(i)).collect();
        let mut text = String::with_capacity(rendered.len());
        for (i, part) in parts.iter().enumerate() {
            text.push_str(part);
            if let Some(t) = tiles.get(i) {
                text.push_str(&self.tokens.expand(t.rows, t.cols, self.seq_len));
            }
        }
        let ids = self.lm.encode_chat(&text)?;
        let want: usize = tiles.iter().map(|t| t.count).sum::<usize>() * self.seq_len;
        let got = ids
            .iter()
            .filter(|&&t| t == self.config.image_token_id)
            .count();
        if got != want {
            return Err(Error::Generation(format!(
                "the prompt holds {got} image tokens but its images make {want}; the text \
                 itself must not contain `{}`",
                self.tokens.image
            )));
        }
        Ok(Prepared { ids, images: tiles })
    }

    /// The vision tower's output `[tiles, patches, hidden]` for one preprocessed image.
    pub fn encode_tiles(&self, tiles: &Tiles) -> Result<Tensor<B, 3>> {
        self.tower.encode(&tiles.pixels, tiles.count)
    }

    /// Image features `[image tokens, text hidden]` for all images, in prompt order.
    pub fn image_features(&self, images: &[Tiles]) -> Result<Tensor<B, 2>> {
        let h = self.config.text.hidden_size;
        let mut parts = Vec::with_capacity(images.len());
        for t in images {
            let f = self.tower.connect(self.encode_tiles(t)?);
            let [n, s, _] = f.dims();
            parts.push(f.reshape([n * s, h]));
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros([0, h], self.lm.device()));
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// The prompt's input embeddings `[1, len, hidden]`: token embeddings with the image
    /// features written over the image-token positions.
    pub fn embed(&self, prepared: &Prepared) -> Result<Tensor<B, 3>> {
        let device = self.lm.device();
        let h = self.config.text.hidden_size;
        let n = prepared.ids.len();
        let ids: Vec<i64> = prepared.ids.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), device);
        let mut text = host_f32(self.lm.model().embed_tokens.forward(ids));
        let feats = host_f32(self.image_features(&prepared.images)?);
        let mut rows = feats.chunks_exact(h);
        for (pos, &t) in prepared.ids.iter().enumerate() {
            if t == self.config.image_token_id {
                let row = rows.next().ok_or_else(|| {
                    Error::Generation("more image tokens than image features".into())
                })?;
                text[pos * h..(pos + 1) * h].copy_from_slice(row);
            }
        }
        Ok(Tensor::from_data(TensorData::new(text, [1, n, h]), device))
    }

    /// Checks that the prompt leaves room in the context, saying by how much it overflows.
    fn check_context(&self, prepared: &Prepared) -> Result<()> {
        let ctx = self.config.text.max_position_embeddings;
        let n = prepared.ids.len();
        if n >= ctx {
            let img = prepared.tiles() * self.seq_len;
            return Err(Error::Generation(format!(
                "the prompt needs {n} tokens ({img} of them for {} image tiles) but the model's \
                 context is {ctx}: {} tokens too many (use fewer or smaller images, or a \
                 shorter prompt)",
                prepared.tiles(),
                n + 1 - ctx
            )));
        }
        Ok(())
    }

    /// Last-position logits for a rendered prompt with its images (parity checks).
    pub fn last_logits(&self, rendered: &str, images: &[Rgb8]) -> Result<Vec<f32>> {
        let p = self.prepare(rendered, images)?;
        self.check_context(&p)?;
        let e = self.embed(&p)?;
        let mut cache = self.lm.model().new_cache(p.ids.len());
        let l = self
            .lm
            .model()
            .forward_embeds(e, &mut cache, crate::LogitsFor::Last);
        Ok(host_f32(l))
    }

    /// Describes `images` (in order) following `prompt`: one user turn through the chat
    /// template, then generation. `on_token` sees every new token.
    pub fn generate(
        &self,
        images: &[Rgb8],
        prompt: &str,
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<VlmOutput> {
        let rendered = self.render_prompt(images.len(), prompt)?;
        self.generate_rendered(&rendered, images, cfg, on_token)
    }

    /// Generation from an already rendered prompt with `<image>` placeholders.
    pub fn generate_rendered(
        &self,
        rendered: &str,
        images: &[Rgb8],
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<VlmOutput> {
        let span = tracing::debug_span!("vlm_generate", images = images.len());
        let _e = span.enter();
        let t0 = Instant::now();
        let prepared = self.prepare(rendered, images)?;
        self.check_context(&prepared)?;
        let embeds = self.embed(&prepared)?;
        let encode_s = t0.elapsed().as_secs_f64();
        let completion = self
            .lm
            .generate_embeds(&prepared.ids, embeds, cfg, on_token)?;
        Ok(VlmOutput {
            completion,
            images: images.len(),
            tiles: prepared.tiles(),
            prompt_tokens: prepared.ids.len(),
            image_tokens: prepared.tiles() * self.seq_len,
            encode_s,
        })
    }
}
