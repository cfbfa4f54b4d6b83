//! The local describer: the key-frame window described by a vision-language model running in
//! this process (the reasoner crate's [`VisionLanguageModel`]), with the same spec §2 prompts
//! and reply parsing as the OpenAI-compatible client. Frame 0 is sent alone with the first-frame
//! prompt; every later frame with its predecessor and the pair prompt.
//!
//! One model instance describes one frame at a time (a CPU or GPU is saturated by one); the
//! deadline is checked before every frame and between generated tokens. Each key frame is
//! encoded once per window although every inner frame is in two pair prompts.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use embodied_r_perception::buffer::KeyFrame;
use embodied_r_perception::describe::{
    DescribeError, Describer, first_frame_prompt, pair_prompt, parse_first_reply, parse_reply,
};
use embodied_r_perception::video_text::FrameDescription;
use embodied_r_reasoner::backend::Backend;
use embodied_r_reasoner::vlm::{EncodedImage, VisionLanguageModel, decode_image};
use embodied_r_reasoner::{GenerationConfig, LoadOptions, WeightMode};

/// A [`Describer`] backed by a local vision-language model.
pub struct LocalDescriber<B: Backend> {
    vlm: Mutex<VisionLanguageModel<B>>,
    label: String,
    max_tokens: usize,
}

impl<B: Backend> LocalDescriber<B> {
    /// Loads the model folder `dir` on the backend's default device; replies are cut at
    /// `max_tokens` tokens.
    pub fn load(dir: &Path, max_tokens: usize) -> Result<Self, DescribeError> {
        let vlm = VisionLanguageModel::<B>::load(
            dir,
            &LoadOptions {
                weights: WeightMode::Dense,
                adapter: None,
            },
            &Default::default(),
        )
        .map_err(|e| DescribeError::Config(format!("describer.vlm {}: {e}", dir.display())))?;
        Ok(Self::new(vlm, max_tokens))
    }

    /// Wraps a loaded model.
    pub fn new(vlm: VisionLanguageModel<B>, max_tokens: usize) -> Self {
        LocalDescriber {
            label: vlm.label(),
            vlm: Mutex::new(vlm),
            max_tokens: max_tokens.max(1),
        }
    }

    fn describe_one(
        &self,
        vlm: &VisionLanguageModel<B>,
        images: &[&EncodedImage<B>],
        i: usize,
        question: &str,
        deadline: Instant,
    ) -> Result<FrameDescription, DescribeError> {
        let endpoint = |message: String| DescribeError::Endpoint {
            describer: self.label.clone(),
            frame: i,
            message,
        };
        let prompt = if i == 0 {
            first_frame_prompt(question)
        } else {
            pair_prompt(question)
        };
        let cfg = GenerationConfig::greedy(self.max_tokens);
        let mut late = false;
        let out = vlm
            .generate_encoded(images, &prompt, &cfg, |_| {
                if Instant::now() >= deadline {
                    late = true;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .map_err(|e| endpoint(e.to_string()))?;
        if late {
            return Err(DescribeError::Deadline {
                describer: self.label.clone(),
                frame: i,
            });
        }
        tracing::debug!(
            frame = i,
            tiles = out.tiles,
            encode_s = out.encode_s,
            decode_tok_s = out.completion.timings.decode_tok_s(),
            "local VLM described a key frame"
        );
        let reply = out.completion.text;
        Ok(if i == 0 {
            parse_first_reply(&reply)
        } else {
            parse_reply(&reply)
        })
    }
}

impl<B: Backend> Describer for LocalDescriber<B> {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn describe(
        &self,
        window: &[KeyFrame],
        question: &str,
        deadline: Instant,
    ) -> Result<Vec<FrameDescription>, DescribeError> {
        if window.is_empty() {
            return Err(DescribeError::EmptyWindow);
        }
        let vlm = self.vlm.lock().unwrap_or_else(PoisonError::into_inner);
        // Every key frame but the ends is in two prompts: decode and encode each once, when
        // it is first needed.
        let mut encoded: Vec<EncodedImage<B>> = Vec::with_capacity(window.len());
        let mut out = Vec::with_capacity(window.len());
        for (i, kf) in window.iter().enumerate() {
            if Instant::now() >= deadline {
                return Err(DescribeError::Deadline {
                    describer: self.label.clone(),
                    frame: i,
                });
            }
            let endpoint = |message: String| DescribeError::Endpoint {
                describer: self.label.clone(),
                frame: i,
                message,
            };
            let image = decode_image(&kf.jpeg, &format!("key frame {}", kf.seq))
                .map_err(|e| endpoint(e.to_string()))?;
            encoded.push(vlm.encode(&image).map_err(|e| endpoint(e.to_string()))?);
            let images: Vec<&EncodedImage<B>> = encoded[i.saturating_sub(1)..=i].iter().collect();
            out.push(self.describe_one(&vlm, &images, i, question, deadline)?);
        }
        Ok(out)
    }
}
