//! A vision-language model in burn: the local describer that runs beside the reasoner on the
//! same backends (flex on CPU, wgpu, cuda).
//!
//! Supported, from a Hugging Face folder (`config.json`, `*.safetensors`, `tokenizer.json`, the
//! processor's JSON and the chat template):
//! - the Idefics3 family — `SmolVLMForConditionalGeneration` (SmolVLM, SmolVLM2) and
//!   `Idefics3ForConditionalGeneration`: the language model is the crate's
//!   [`Llama`](crate::Llama), loaded from the `model.text_model.*` tensors; the SigLIP tower and
//!   connector are in [`siglip`], the tiling processor in [`processor`];
//! - `Qwen2_5_VLForConditionalGeneration`: the language model is the crate's Qwen2 decoder
//!   (`model.*` or `model.language_model.*`) run with multimodal rotary positions
//!   ([`MultiPositions`](crate::MultiPositions)); the windowed vision transformer is in [`qwen`],
//!   the dynamic-resolution processor in [`qwen_processor`].
//!
//! One call ([`VisionLanguageModel::generate`]) renders a user turn — the images in order, then
//! the prompt — with the model's own chat template, preprocesses every image as transformers'
//! PIL processor does ([`resize`] is Pillow's resampler), expands each image placeholder into
//! its token layout, encodes the images, puts the image features where the image tokens are,
//! and generates with the language model's sampler.
//!
//! Images come in as plain RGB bytes ([`Rgb8`]); this crate still knows nothing of cameras or
//! frames.

pub mod config;
pub mod presets;
pub mod processor;
pub mod qwen;
pub mod qwen_processor;
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
use crate::model::MultiPositions;
use crate::weights::{SafetensorsSet, load_text_model};

pub use config::{
    QwenVisionConfig, SUPPORTED_ARCHITECTURES, TowerConfig, VisionConfig, VlmConfig, VlmFamily,
};
pub use processor::{Idefics3ImageConfig, ImageTokens, Tiles};
pub use qwen::QwenVisionTower;
pub use qwen_processor::{Patches, QwenImageConfig};
pub use resize::{Filter, Rgb8};
pub use siglip::SiglipTower;

/// Where the language model's tensors live in an Idefics3-family checkpoint.
const TEXT_PREFIX: &str = "model.text_model.";

/// Qwen2-VL's image placeholder.
const QWEN_IMAGE_TOKEN: &str = "<|image_pad|>";

/// The vision side of a loaded model, with its processor.
enum Vision<B: Backend> {
    Idefics3 {
        tower: Box<SiglipTower<B>>,
        images: Idefics3ImageConfig,
        tokens: ImageTokens,
        seq_len: usize,
    },
    Qwen {
        tower: Box<QwenVisionTower<B>>,
        images: QwenImageConfig,
    },
}

/// A loaded vision-language model.
pub struct VisionLanguageModel<B: Backend> {
    lm: LanguageModel<B>,
    vision: Vision<B>,
    config: VlmConfig,
    source: PathBuf,
}

/// One preprocessed image.
#[derive(Debug, Clone, PartialEq)]
pub enum PreparedImage {
    /// Idefics3 family: square tiles plus the global image.
    Tiles(Tiles),
    /// Qwen2.5-VL: patches at the image's own (resized) resolution.
    Patches(Patches),
}

impl PreparedImage {
    /// Pieces the tower encodes separately (tiles; 1 for a Qwen image).
    pub fn tiles(&self) -> usize {
        match self {
            PreparedImage::Tiles(t) => t.count,
            PreparedImage::Patches(_) => 1,
        }
    }
}

impl<B: Backend> std::fmt::Debug for VisionLanguageModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionLanguageModel")
            .field("source", &self.source)
            .field("architecture", &self.config.architecture)
            .finish()
    }
}

/// A prompt ready to run: its token ids (image positions hold the image token), the
/// preprocessed images in prompt order and, for Qwen2.5-VL, the rotary position of every token.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Token ids of the expanded prompt.
    pub ids: Vec<u32>,
    /// One entry per image.
    pub images: Vec<PreparedImage>,
    /// Image tokens among `ids`.
    pub image_tokens: usize,
    /// `[t, h, w]` rotary positions per token (Qwen2.5-VL's M-RoPE); `None`: sequential.
    pub positions: Option<Vec<[u32; 3]>>,
}

impl Prepared {
    /// Tiles over all images (one per Qwen image).
    pub fn tiles(&self) -> usize {
        self.images.iter().map(PreparedImage::tiles).sum()
    }
}

/// An image preprocessed and encoded once, for use in several prompts.
#[derive(Debug, Clone)]
pub struct EncodedImage<B: Backend> {
    /// The preprocessed image's layout (which decides the prompt's image tokens); its pixels
    /// are dropped once encoded.
    pub prepared: PreparedImage,
    /// Its language-model tokens `[image tokens, hidden]`.
    pub features: Tensor<B, 2>,
    /// Seconds spent preprocessing and encoding it.
    pub encode_s: f64,
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

/// Fails when the tokenizer lacks `token`, which the image layout needs.
fn require_token(tokenizer: &crate::Tokenizer, token: &str, path: &Path) -> Result<u32> {
    tokenizer.token_id(token).ok_or_else(|| {
        Error::Tokenizer(format!(
            "{}: the tokenizer has no `{token}` token, which the image layout needs",
            path.display()
        ))
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
        let image_token = match &config.tower {
            TowerConfig::Siglip { .. } => ImageTokens::default().image,
            TowerConfig::Qwen(_) => QWEN_IMAGE_TOKEN.to_string(),
        };
        let found = require_token(&tokenizer, &image_token, &tok_path)?;
        if found != config.image_token_id {
            return Err(Error::Config(format!(
                "config.json says the image token is {} but the tokenizer maps `{image_token}` \
                 to {found}",
                config.image_token_id
            )));
        }
        let tensors = SafetensorsSet::open_dir(dir)?;
        let names: HashSet<String> = tensors.tensor_names().into_iter().collect();
        let mut reader = siglip::Reader::<B> {
            set: &tensors,
            device,
            used: Vec::new(),
        };
        let (text_prefix, vision) = match &config.tower {
            TowerConfig::Siglip {
                vision,
                scale_factor,
            } => {
                let images = Idefics3ImageConfig::from_json(&image_json)
                    .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
                if images.tile != vision.image_size {
                    return Err(Error::Config(format!(
                        "{}: the processor cuts {}-pixel tiles but the vision tower takes \
                         {}-pixel images",
                        dir.display(),
                        images.tile,
                        vision.image_size
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
                        "{}: processor_config.json says {n} image tokens per tile, the model \
                         makes {seq_len}",
                        dir.display()
                    )));
                }
                let tokens = ImageTokens::default();
                for t in [&tokens.fake_around, &tokens.global] {
                    require_token(&tokenizer, t, &tok_path)?;
                }
                let tower = Box::new(SiglipTower::load(
                    &mut reader,
                    vision,
                    *scale_factor,
                    config.text.hidden_size,
                )?);
                (
                    TEXT_PREFIX,
                    Vision::Idefics3 {
                        tower,
                        images,
                        tokens,
                        seq_len,
                    },
                )
            }
            TowerConfig::Qwen(vc) => {
                let images = QwenImageConfig::from_json(&image_json)
                    .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
                if (
                    images.patch_size,
                    images.merge_size,
                    images.temporal_patch_size,
                ) != (vc.patch_size, vc.spatial_merge_size, vc.temporal_patch_size)
                {
                    return Err(Error::Config(format!(
                        "{}: the processor makes {}-pixel patches merged {}×{} over {} frames, \
                         the vision tower takes {}-pixel patches merged {}×{} over {} frames",
                        dir.display(),
                        images.patch_size,
                        images.merge_size,
                        images.merge_size,
                        images.temporal_patch_size,
                        vc.patch_size,
                        vc.spatial_merge_size,
                        vc.spatial_merge_size,
                        vc.temporal_patch_size
                    )));
                }
                // Published checkpoints: `visual.*` + `model.*`; transformers 5 in memory:
                // `model.visual.*` + `model.language_model.*`.
                let vision_prefix = if names.contains("model.visual.patch_embed.proj.weight") {
                    "model.visual"
                } else {
                    "visual"
                };
                let text_prefix = if names.contains("model.language_model.embed_tokens.weight") {
                    "model.language_model."
                } else {
                    "model."
                };
                let tower = Box::new(QwenVisionTower::load(&mut reader, vc, vision_prefix)?);
                (text_prefix, Vision::Qwen { tower, images })
            }
        };
        let llama =
            load_text_model::<B>(&tensors, text_prefix, &config.text, opts.weights, device)?;
        let used: HashSet<&str> = reader.used.iter().map(String::as_str).collect();
        let mut extra: Vec<String> = names
            .iter()
            .filter(|n| {
                !n.starts_with(text_prefix)
                    && *n != "lm_head.weight"
                    && !used.contains(n.as_str())
                    && !n.ends_with("rotary_emb.inv_freq")
            })
            .cloned()
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
            vision,
            config,
            source: dir.to_path_buf(),
        })
    }

    /// The parsed config.
    pub fn config(&self) -> &VlmConfig {
        &self.config
    }

    /// The language model (tokenizer, template, decoder).
    pub fn language_model(&self) -> &LanguageModel<B> {
        &self.lm
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

    /// The placeholder the chat template writes for one image.
    pub fn image_placeholder(&self) -> &str {
        match &self.vision {
            Vision::Idefics3 { tokens, .. } => &tokens.image,
            Vision::Qwen { .. } => QWEN_IMAGE_TOKEN,
        }
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

    /// Preprocesses one image as the model's processor does.
    pub fn preprocess(&self, image: &Rgb8) -> Result<PreparedImage> {
        Ok(match &self.vision {
            Vision::Idefics3 { images, .. } => PreparedImage::Tiles(images.preprocess(image)),
            Vision::Qwen { images, .. } => PreparedImage::Patches(images.preprocess(image)?),
        })
    }

    /// The image tokens that replace one placeholder for `image`.
    fn expansion(&self, image: &PreparedImage) -> (String, usize) {
        match (&self.vision, image) {
            (
                Vision::Idefics3 {
                    tokens, seq_len, ..
                },
                PreparedImage::Tiles(t),
            ) => (tokens.expand(t.rows, t.cols, *seq_len), t.count * seq_len),
            (Vision::Qwen { images, .. }, PreparedImage::Patches(p)) => {
                let n = p.tokens(images.merge_size);
                (QWEN_IMAGE_TOKEN.repeat(n), n)
            }
            _ => (String::new(), 0),
        }
    }

    /// Expands the image placeholders of a rendered prompt for `images` (one placeholder per
    /// image, in order) and tokenizes it.
    pub fn prepare(&self, rendered: &str, images: &[Rgb8]) -> Result<Prepared> {
        self.check_placeholders(rendered, images.len())?;
        let prepared: Vec<PreparedImage> = images
            .iter()
            .map(|i| self.preprocess(i))
            .collect::<Result<_>>()?;
        self.prepare_images(rendered, prepared)
    }

    fn check_placeholders(&self, rendered: &str, images: usize) -> Result<()> {
        let placeholder = self.image_placeholder();
        let found = rendered.matches(placeholder).count();
        if found != images {
            return Err(Error::Generation(format!(
                "the prompt has {found} `{placeholder}` placeholders but {images} images were given"
            )));
        }
        Ok(())
    }

    /// [`VisionLanguageModel::prepare`] with images already preprocessed.
    pub fn prepare_images(&self, rendered: &str, prepared: Vec<PreparedImage>) -> Result<Prepared> {
        self.check_placeholders(rendered, prepared.len())?;
        let placeholder = self.image_placeholder();
        let parts: Vec<&str> = rendered.split(placeholder).collect();
        let mut text = String::with_capacity(rendered.len());
        let mut want = 0;
        for (i, part) in parts.iter().enumerate() {
            text.push_str(part);
            if let Some(img) = prepared.get(i) {
                let (s, n) = self.expansion(img);
                text.push_str(&s);
                want += n;
            }
        }
        let ids = self.lm.encode_chat(&text)?;
        let got = ids
            .iter()
            .filter(|&&t| t == self.config.image_token_id)
            .count();
        if got != want {
            return Err(Error::Generation(format!(
                "the prompt holds {got} image tokens but its images make {want}; the text \
                 itself must not contain `{placeholder}`"
            )));
        }
        let positions = match &self.vision {
            Vision::Qwen { images, .. } => {
                Some(self.rope_positions(&ids, &prepared, images.merge_size)?)
            }
            Vision::Idefics3 { .. } => None,
        };
        Ok(Prepared {
            ids,
            images: prepared,
            image_tokens: want,
            positions,
        })
    }

    /// Qwen2-VL's `get_rope_index` for one prompt: text tokens count up by one in all three
    /// streams; an image's tokens sit at (start, start + row, start + column) on its grid of
    /// merged tokens, and the text after it resumes at start + the grid's longer edge.
    fn rope_positions(
        &self,
        ids: &[u32],
        images: &[PreparedImage],
        merge: usize,
    ) -> Result<Vec<[u32; 3]>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut next = 0u32;
        let mut grids = images.iter().filter_map(|i| match i {
            PreparedImage::Patches(p) => Some(p.grid),
            PreparedImage::Tiles(_) => None,
        });
        let mut i = 0;
        while i < ids.len() {
            if ids[i] != self.config.image_token_id {
                out.push([next; 3]);
                next += 1;
                i += 1;
                continue;
            }
            let [t, h, w] = grids
                .next()
                .ok_or_else(|| Error::Generation("more image-token runs than images".into()))?;
            let (lh, lw) = (h / merge, w / merge);
            let n = t * lh * lw;
            if ids.len() < i + n
                || ids[i..i + n]
                    .iter()
                    .any(|&x| x != self.config.image_token_id)
            {
                return Err(Error::Generation(format!(
                    "an image of {n} tokens is not one run of image tokens in the prompt"
                )));
            }
            for f in 0..t {
                for y in 0..lh {
                    for x in 0..lw {
                        out.push([next + f as u32, next + y as u32, next + x as u32]);
                    }
                }
            }
            next += lh.max(lw) as u32;
            i += n;
        }
        Ok(out)
    }

    /// The vision tower's output for one Idefics3-family image: `[tiles, patches, hidden]`
    /// (before the connector).
    pub fn encode_tiles(&self, tiles: &Tiles) -> Result<Tensor<B, 3>> {
        match &self.vision {
            Vision::Idefics3 { tower, .. } => tower.encode(&tiles.pixels, tiles.count),
            Vision::Qwen { .. } => Err(Error::Generation(
                "Qwen2.5-VL encodes patches, not tiles".into(),
            )),
        }
    }

    /// One image's language-model tokens `[image tokens, text hidden]`.
    pub fn encode_image(&self, image: &PreparedImage) -> Result<Tensor<B, 2>> {
        let h = self.config.text.hidden_size;
        match (&self.vision, image) {
            (Vision::Idefics3 { tower, .. }, PreparedImage::Tiles(t)) => {
                let f = tower.connect(tower.encode(&t.pixels, t.count)?);
                let [n, s, _] = f.dims();
                Ok(f.reshape([n * s, h]))
            }
            (Vision::Qwen { tower, .. }, PreparedImage::Patches(p)) => tower.encode(p),
            _ => Err(Error::Generation(
                "an image preprocessed for another model family".into(),
            )),
        }
    }

    /// Image features `[image tokens, text hidden]` for all images, in prompt order.
    pub fn image_features(&self, images: &[PreparedImage]) -> Result<Tensor<B, 2>> {
        let h = self.config.text.hidden_size;
        let parts = images
            .iter()
            .map(|i| self.encode_image(i))
            .collect::<Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Ok(Tensor::zeros([0, h], self.lm.device()));
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// The prompt's input embeddings `[1, len, hidden]`: token embeddings with the image
    /// features written over the image-token positions.
    pub fn embed(&self, prepared: &Prepared) -> Result<Tensor<B, 3>> {
        let feats = self.image_features(&prepared.images)?;
        self.embed_features(prepared, feats)
    }

    /// [`VisionLanguageModel::embed`] with the image features `[image tokens, hidden]` given.
    pub fn embed_features(
        &self,
        prepared: &Prepared,
        features: Tensor<B, 2>,
    ) -> Result<Tensor<B, 3>> {
        let device = self.lm.device();
        let h = self.config.text.hidden_size;
        let n = prepared.ids.len();
        let [rows, width] = features.dims();
        if (rows, width) != (prepared.image_tokens, h) {
            return Err(Error::Generation(format!(
                "image features have shape [{rows}, {width}]; the prompt needs [{}, {h}]",
                prepared.image_tokens
            )));
        }
        let ids: Vec<i64> = prepared.ids.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), device);
        let mut text = host_f32(self.lm.model().embed_tokens.forward(ids));
        let feats = host_f32(features);
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
            return Err(Error::Generation(format!(
                "the prompt needs {n} tokens ({} of them for {} images) but the model's \
                 context is {ctx}: {} tokens too many (use fewer or smaller images, or a \
                 shorter prompt)",
                prepared.image_tokens,
                prepared.images.len(),
                n + 1 - ctx
            )));
        }
        Ok(())
    }

    /// The multimodal rotary positions of a prepared prompt, if the model uses them.
    fn positions<'a>(&self, prepared: &'a Prepared) -> Option<MultiPositions<'a>> {
        match (&prepared.positions, self.config.mrope_section) {
            (Some(ids), Some(section)) => Some(MultiPositions { ids, section }),
            _ => None,
        }
    }

    /// Last-position logits for a rendered prompt with its images (parity checks).
    pub fn last_logits(&self, rendered: &str, images: &[Rgb8]) -> Result<Vec<f32>> {
        let p = self.prepare(rendered, images)?;
        self.check_context(&p)?;
        let e = self.embed(&p)?;
        let mut cache = self.lm.model().new_cache(p.ids.len());
        let l = self.lm.model().forward_embeds_at(
            e,
            &mut cache,
            crate::LogitsFor::Last,
            self.positions(&p),
        );
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

    /// Generation from an already rendered prompt with image placeholders.
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
        self.run(&prepared, embeds, t0, cfg, on_token)
    }

    /// Generates from a checked prompt; `t0` is when its image work started.
    fn run(
        &self,
        prepared: &Prepared,
        embeds: Tensor<B, 3>,
        t0: Instant,
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<VlmOutput> {
        let encode_s = t0.elapsed().as_secs_f64();
        let completion = self.generate_prepared(prepared, embeds, cfg, on_token)?;
        Ok(VlmOutput {
            completion,
            images: prepared.images.len(),
            tiles: prepared.tiles(),
            prompt_tokens: prepared.ids.len(),
            image_tokens: prepared.image_tokens,
            encode_s,
        })
    }

    /// Preprocesses and encodes one image, to reuse in several prompts (a key frame that is in
    /// two pair prompts is encoded once).
    pub fn encode(&self, image: &Rgb8) -> Result<EncodedImage<B>> {
        let t0 = Instant::now();
        let mut prepared = self.preprocess(image)?;
        let features = self.encode_image(&prepared)?;
        // Only the layout is needed from here on: drop the pixels rather than copy them into
        // every prompt the image is in.
        match &mut prepared {
            PreparedImage::Tiles(t) => t.pixels = Vec::new(),
            PreparedImage::Patches(p) => p.pixels = Vec::new(),
        }
        Ok(EncodedImage {
            prepared,
            features,
            encode_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// [`VisionLanguageModel::generate`] on images encoded before; `encode_s` of the output
    /// counts only the embedding in this call.
    pub fn generate_encoded(
        &self,
        images: &[&EncodedImage<B>],
        prompt: &str,
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<VlmOutput> {
        let t0 = Instant::now();
        let rendered = self.render_prompt(images.len(), prompt)?;
        let prepared = self.prepare_images(
            &rendered,
            images.iter().map(|e| e.prepared.clone()).collect(),
        )?;
        self.check_context(&prepared)?;
        let h = self.config.text.hidden_size;
        let features = if images.is_empty() {
            Tensor::zeros([0, h], self.lm.device())
        } else {
            Tensor::cat(images.iter().map(|e| e.features.clone()).collect(), 0)
        };
        let embeds = self.embed_features(&prepared, features)?;
        self.run(&prepared, embeds, t0, cfg, on_token)
    }

    /// Generation from a prepared prompt and its embeddings ([`VisionLanguageModel::embed`]),
    /// with the model's rotary positions.
    pub fn generate_prepared(
        &self,
        prepared: &Prepared,
        embeds: Tensor<B, 3>,
        cfg: &GenerationConfig,
        on_token: impl FnMut(&TokenEvent) -> ControlFlow<()>,
    ) -> Result<Completion> {
        match self.positions(prepared) {
            Some(p) => self
                .lm
                .generate_embeds_at(&prepared.ids, embeds, p, cfg, on_token),
            None => self
                .lm
                .generate_embeds(&prepared.ids, embeds, cfg, on_token),
        }
    }
}
