//! The simulator's describer: a stand-in for the VLM in sim runs, built on ground truth.
//!
//! It produces text in the shape the paper's VLM prompts ask for (spec §2.2–2.5): a description of
//! the first key frame, and for each later key frame the action taken, the newly visible objects
//! and the objects the question mentions, in egocentric terms. Knobs inject realistic errors
//! (missed objects, wrong colours, left/right confusion) at seeded rates. Its output is always
//! labelled [`SimDescriber::LABEL`]; it is never passed off as a VLM.

use crate::scene::{Scene, palette_names};
use crate::truth::{FrameTruth, VisibleObject, direction_words, seen};
use embodied_r_perception::Action;
use embodied_r_perception::video_text::FrameDescription;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Error rates of the sim describer, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DescriberErrors {
    /// Probability of leaving a visible object out.
    pub miss: f32,
    /// Probability of naming the wrong colour.
    pub wrong_color: f32,
    /// Probability of swapping left and right in a direction.
    pub swap_left_right: f32,
    /// Probability of reporting the wrong action between key frames.
    pub wrong_action: f32,
}

/// Why describer settings were refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DescriberError {
    /// A rate outside [0, 1].
    #[error("describer error rate `{name}` = {value}: expected a probability in [0, 1]")]
    Rate {
        /// Which knob.
        name: &'static str,
        /// The value given.
        value: f32,
    },
    /// A key-frame index past the end of the video.
    #[error("key frame {index} does not exist: the video has {frames} frames")]
    Frame {
        /// Requested index.
        index: usize,
        /// Frames available.
        frames: usize,
    },
}

/// Ground-truth describer.
#[derive(Debug, Clone)]
pub struct SimDescriber {
    errors: DescriberErrors,
    seed: u64,
}

impl SimDescriber {
    /// How this describer names itself in logs, episode records and benchmark outputs.
    pub const LABEL: &'static str = "sim-ground-truth-describer";

    /// A describer with the given error rates and seed.
    pub fn new(errors: DescriberErrors, seed: u64) -> Result<Self, DescriberError> {
        for (name, value) in [
            ("miss", errors.miss),
            ("wrong_color", errors.wrong_color),
            ("swap_left_right", errors.swap_left_right),
            ("wrong_action", errors.wrong_action),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(DescriberError::Rate { name, value });
            }
        }
        Ok(Self { errors, seed })
    }

    /// Describes the key frames `keys` (indices into `frames`, increasing) for `question`;
    /// `frame_pixels` is width × height of the video (objects too small to recognise are left out).
    ///
    /// The action between two key frames is the action in progress at most of the frames between
    /// them (ties: the latest).
    pub fn describe(
        &self,
        scene: &Scene,
        frames: &[FrameTruth],
        frame_pixels: u32,
        keys: &[usize],
        question: &str,
    ) -> Result<Vec<FrameDescription>, DescriberError> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ hash_str(question) ^ hash_str(&scene.name));
        let question_lc = question.to_lowercase();
        let mentioned: BTreeSet<u16> = scene
            .askable()
            .filter(|o| question_lc.contains(&o.name.to_lowercase()))
            .map(|o| o.id)
            .collect();
        let mut described: BTreeSet<u16> = BTreeSet::new();
        let mut out = Vec::with_capacity(keys.len());
        let mut prev: Option<usize> = None;
        for &k in keys {
            let f = frames.get(k).ok_or(DescriberError::Frame {
                index: k,
                frames: frames.len(),
            })?;
            let visible: Vec<&VisibleObject> =
                f.visible.iter().filter(|v| seen(v, frame_pixels)).collect();
            let mut parts = Vec::new();
            match prev {
                None => {
                    let items = self.mention(scene, &visible, &mut rng);
                    described.extend(visible.iter().map(|v| v.id));
                    parts.push(if items.is_empty() {
                        "Nothing recognisable is in view.".to_string()
                    } else {
                        format!("I see {}.", items.join("; "))
                    });
                    if scene.kind == crate::scene::SceneKind::City {
                        parts.push(format!(
                            "I am flying about {:.0} m above the ground.",
                            f.camera.position.z
                        ));
                    }
                }
                Some(_) => {
                    let new: Vec<&VisibleObject> = visible
                        .iter()
                        .copied()
                        .filter(|v| !described.contains(&v.id))
                        .collect();
                    let items = self.mention(scene, &new, &mut rng);
                    described.extend(new.iter().map(|v| v.id));
                    parts.push(if items.is_empty() {
                        "No new objects.".to_string()
                    } else {
                        format!("Newly visible: {}.", items.join("; "))
                    });
                }
            }
            let related: Vec<String> = visible
                .iter()
                .filter(|v| mentioned.contains(&v.id))
                .map(|v| self.phrase(scene, v, &mut rng))
                .collect();
            if !related.is_empty() {
                parts.push(format!(
                    "Objects from the question: {}.",
                    related.join("; ")
                ));
            }
            let action = prev.map(|p| {
                let a = dominant_action(&frames[p + 1..=k]).unwrap_or(Action::MoveForward);
                let a = if rng.random::<f32>() < self.errors.wrong_action {
                    Action::ALL[rng.random_range(0..10u32) as usize]
                } else {
                    a
                };
                capitalise(a.phrase())
            });
            out.push(FrameDescription {
                action,
                view: parts.join(" "),
            });
            prev = Some(k);
        }
        Ok(out)
    }

    /// Phrases for the objects the describer does not miss.
    fn mention(&self, scene: &Scene, objs: &[&VisibleObject], rng: &mut ChaCha8Rng) -> Vec<String> {
        let mut items = Vec::new();
        for v in objs {
            if rng.random::<f32>() >= self.errors.miss {
                items.push(self.phrase(scene, v, rng));
            }
        }
        items
    }

    fn phrase(&self, scene: &Scene, v: &VisibleObject, rng: &mut ChaCha8Rng) -> String {
        let obj = scene.object(v.id);
        let mut color = obj.map(|o| o.color.clone()).unwrap_or_default();
        if rng.random::<f32>() < self.errors.wrong_color {
            let others: Vec<&str> = palette_names().filter(|c| *c != color).collect();
            color = others[rng.random_range(0..others.len() as u32) as usize].to_string();
        }
        let mut dir = direction_words(v.bearing_deg, v.elevation_deg);
        if rng.random::<f32>() < self.errors.swap_left_right {
            dir = dir
                .replace("left", "\u{0}")
                .replace("right", "left")
                .replace('\u{0}', "right");
        }
        let name = v.name.as_str();
        let label = if name.contains(&color) || color.is_empty() {
            name.to_string()
        } else {
            format!("{color} {name}")
        };
        format!("a {label} {dir}, about {:.1} m away", v.distance_m)
    }
}

/// The most frequent action among frames (ties: the latest).
fn dominant_action(frames: &[FrameTruth]) -> Option<Action> {
    let mut best: Option<(usize, Action)> = None;
    for f in frames {
        let Some(a) = f.action else { continue };
        let n = frames.iter().filter(|g| g.action == Some(a)).count();
        if best.is_none_or(|(m, _)| n >= m) {
            best = Some((n, a));
        }
    }
    best.map(|(_, a)| a)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn hash_str(s: &str) -> u64 {
    // FNV-1a: stable across runs and machines (std's hasher is not).
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The ground-truth describer bound to one simulated video, behind perception's
/// [`Describer`](embodied_r_perception::describe::Describer) trait: a key frame's sequence number
/// is its frame index in the video.
#[derive(Debug, Clone)]
pub struct VideoDescriber {
    describer: SimDescriber,
    scene: Scene,
    frames: Vec<FrameTruth>,
    frame_pixels: u32,
}

impl VideoDescriber {
    /// Binds `describer` to a video's scene and per-frame truth.
    pub fn new(
        describer: SimDescriber,
        scene: Scene,
        frames: Vec<FrameTruth>,
        frame_pixels: u32,
    ) -> Self {
        VideoDescriber {
            describer,
            scene,
            frames,
            frame_pixels,
        }
    }
}

impl embodied_r_perception::describe::Describer for VideoDescriber {
    fn label(&self) -> String {
        SimDescriber::LABEL.to_string()
    }

    fn describe(
        &self,
        window: &[embodied_r_perception::buffer::KeyFrame],
        question: &str,
        _deadline: std::time::Instant,
    ) -> Result<Vec<FrameDescription>, embodied_r_perception::describe::DescribeError> {
        use embodied_r_perception::describe::DescribeError;
        if window.is_empty() {
            return Err(DescribeError::EmptyWindow);
        }
        let keys: Vec<usize> = window.iter().map(|k| k.seq as usize).collect();
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DescribeError::Unsupported {
                describer: self.label(),
                message: format!("key frames must be in increasing frame order, got {keys:?}"),
            });
        }
        self.describer
            .describe(
                &self.scene,
                &self.frames,
                self.frame_pixels,
                &keys,
                question,
            )
            .map_err(|e| DescribeError::Unsupported {
                describer: self.label(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{GenerateConfig, run_video};
    use crate::scene::SceneKind;

    fn video() -> (Scene, Vec<FrameTruth>, u32) {
        let cfg = GenerateConfig {
            camera: crate::Camera {
                width: 160,
                height: 120,
                hfov_deg: 90.0,
            },
            ..GenerateConfig::default()
        };
        let scene = Scene::generate(SceneKind::Indoor, 3, 0);
        let run = run_video(scene, &cfg, 0, |_, _| Ok(())).unwrap();
        (run.scene, run.frames, 160 * 120)
    }

    #[test]
    fn describes_in_the_papers_shape() {
        let (scene, frames, px) = video();
        let keys = [0, 8, 16, 24, 40];
        let d = SimDescriber::new(DescriberErrors::default(), 1).unwrap();
        let q = "Question: where is the door?";
        let out = d.describe(&scene, &frames, px, &keys, q).unwrap();
        assert_eq!(out.len(), keys.len());
        assert!(out[0].action.is_none());
        assert!(out[0].view.starts_with("I see ") || out[0].view.starts_with("Nothing"));
        for (i, f) in out.iter().enumerate().skip(1) {
            let a = f.action.as_deref().unwrap();
            assert!(a.parse::<Action>().is_ok(), "{a}");
            // The reported action is one that happened between the two key frames.
            let between: Vec<Action> = frames[keys[i - 1] + 1..=keys[i]]
                .iter()
                .filter_map(|f| f.action)
                .collect();
            assert!(
                between.contains(&a.parse().unwrap()),
                "{a} not in {between:?}"
            );
        }
        let text = embodied_r_perception::video_text::assemble(&out);
        assert!(text.contains("Frame 1: After "));
        // Same inputs, same text; error knobs change it.
        assert_eq!(out, d.describe(&scene, &frames, px, &keys, q).unwrap());
        let noisy = SimDescriber::new(
            DescriberErrors {
                miss: 0.0,
                wrong_color: 1.0,
                swap_left_right: 1.0,
                wrong_action: 0.0,
            },
            1,
        )
        .unwrap();
        let n = noisy.describe(&scene, &frames, px, &keys, q).unwrap();
        assert_ne!(n, out);
        let all_missed = SimDescriber::new(
            DescriberErrors {
                miss: 1.0,
                ..DescriberErrors::default()
            },
            1,
        )
        .unwrap()
        .describe(&scene, &frames, px, &keys, q)
        .unwrap();
        assert!(
            all_missed[0].view.starts_with("Nothing"),
            "{}",
            all_missed[0].view
        );
    }

    #[test]
    fn bad_settings_and_frames_are_errors() {
        let e = SimDescriber::new(
            DescriberErrors {
                miss: 1.5,
                ..DescriberErrors::default()
            },
            0,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "describer error rate `miss` = 1.5: expected a probability in [0, 1]"
        );
        let (scene, frames, px) = video();
        let d = SimDescriber::new(DescriberErrors::default(), 0).unwrap();
        let e = d.describe(&scene, &frames, px, &[0, 999], "q").unwrap_err();
        assert!(e.to_string().contains("999"), "{e}");
    }
}
