//! What the runtime replies: the [`Answer`] with its grounding (the key frames it rests on) and
//! an advisory navigation hint derived from the answer and the descriptions.

use embodied_r_perception::Action;
use embodied_r_perception::buffer::KeyFrame;
use embodied_r_perception::video_text::FrameDescription;
use embodied_r_reasoner::episode::Rewards;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One of the ten actions, toward a target, with a reason. Advisory only: the robot's own
/// planner decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NavHint {
    /// The action phrase, e.g. `rotate left`.
    pub action: String,
    /// What it moves toward, when known.
    pub target: Option<String>,
    /// Why, in a few words, citing the key frame when there is one.
    pub reason: String,
}

/// A key frame an answer rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundingFrame {
    /// Sequence number in the source.
    pub seq: u64,
    /// Capture time, seconds.
    pub stamp: f64,
    /// World-from-camera pose `[x, y, z, qx, qy, qz, qw]`, when known.
    pub pose: Option<[f64; 7]>,
}

/// Which key frames the answer used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grounding {
    /// The window given to the describer, oldest first.
    pub frames: Vec<GroundingFrame>,
    /// Sequence numbers of the frames whose descriptions mention the answer's target.
    pub cited: Vec<u64>,
    /// How stale the evidence is: seconds since the newest key frame of the window was captured
    /// (when the runtime knows it).
    pub newest_age_s: Option<f64>,
    /// Frames whose descriptions were left out to fit the LM's context (oldest first).
    pub trimmed: usize,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The runtime's id for the question (also the episode id).
    pub question_id: String,
    /// The option letter the `<answer>` block names (the strict reading: the one rewards,
    /// the episode log, `eval` and every verdict count), for multiple-choice questions.
    pub choice: Option<String>,
    /// When the completion has no `<answer>` block: the option its whole text names. A lenient
    /// reading, shown as such and never scored; the nav hint follows it when `choice` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lenient_choice: Option<String>,
    /// The rewards by the strict reading, when the question came with its ground truth (the
    /// same figures the episode log records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewards: Option<Rewards>,
    /// The answer block's text (the whole completion when the model wrote no answer block).
    pub text: String,
    /// The think block's text.
    pub think: Option<String>,
    /// The advisory navigation hint.
    pub nav_hint: NavHint,
    /// The key frames the answer rests on.
    pub grounding: Grounding,
    /// The completion follows the `<think>…</think><answer>…</answer>` format.
    pub format_ok: bool,
    /// Whether the think text alone leads a reference pass of the LM to the same option;
    /// `None` for free-form questions or when the check is off.
    pub consistent: Option<bool>,
    /// LM id.
    pub model: String,
    /// Describer label.
    pub describer: String,
    /// Milliseconds per stage (`queue`, `window`, `describe`, `generate`, `consistency`,
    /// `total`) and token counts.
    pub timings: BTreeMap<String, f64>,
}

/// World-from-camera pose as `[x, y, z, qx, qy, qz, qw]`.
pub fn pose_array(p: &embodied_r_perception::Pose) -> [f64; 7] {
    let t = p.translation.vector;
    let q = p.rotation.coords;
    [t.x, t.y, t.z, q.x, q.y, q.z, q.w]
}

/// Grounding frames of a window.
pub fn grounding_frames(window: &[KeyFrame]) -> Vec<GroundingFrame> {
    window
        .iter()
        .map(|k| GroundingFrame {
            seq: k.seq,
            stamp: k.stamp,
            pose: k.pose.as_ref().map(pose_array),
        })
        .collect()
}

const STOP_WORDS: &[&str] = &[
    "the", "a", "an", "of", "on", "in", "at", "to", "my", "is", "are", "and", "or", "with",
    "which", "what", "where", "from", "me", "i", "it", "its", "that", "this", "you", "your",
    "closest", "nearest", "farthest", "object", "objects", "floor", "first", "last", "left",
    "right", "ahead", "behind", "above", "below", "after", "before",
];

/// Content words of a phrase (lower case, no stop words, at least 3 letters).
fn content_words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() >= 3 && !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// The clause of `text` (split at `;` and `.`) that best mentions `words`, with its score.
fn best_clause<'a>(text: &'a str, words: &[String]) -> Option<(&'a str, f64)> {
    if words.is_empty() {
        return None;
    }
    text.split([';', '.', '\n'])
        .map(|c| {
            let lc = c.to_lowercase();
            let hits = words.iter().filter(|w| lc.contains(w.as_str())).count();
            (c, hits as f64 / words.len() as f64)
        })
        .filter(|(_, s)| *s >= 0.5)
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Maps direction words to an action: behind, then left/right, then above/below, then ahead.
fn direction_action(clause: &str) -> Option<(Action, &'static str)> {
    let c = clause.to_lowercase();
    let has = |w: &str| c.split(|ch: char| !ch.is_alphanumeric()).any(|t| t == w);
    if has("behind") || has("back") {
        return Some(if has("left") {
            (Action::RotateLeft, "behind on the left")
        } else {
            (Action::RotateRight, "behind")
        });
    }
    if has("left") {
        return Some((Action::RotateLeft, "on the left"));
    }
    if has("right") {
        return Some((Action::RotateRight, "on the right"));
    }
    if has("above") || has("up") || has("upward") || has("overhead") {
        return Some((Action::TiltUpward, "above"));
    }
    if has("below") || has("down") || has("downward") || has("beneath") {
        return Some((Action::TiltDownward, "below"));
    }
    if has("ahead") || has("front") || has("forward") || has("straight") {
        return Some((Action::MoveForward, "ahead"));
    }
    None
}

/// The first of the ten action phrases in `text`, if any.
fn action_in(text: &str) -> Option<Action> {
    let lc = text.to_lowercase();
    Action::ALL
        .iter()
        .filter_map(|a| lc.find(a.phrase()).map(|i| (i, *a)))
        .min_by_key(|(i, _)| *i)
        .map(|(_, a)| a)
}

/// Derives the advisory hint.
///
/// 1. The answer names one of the ten actions (e.g. action-generation questions): that action.
/// 2. The answer is a direction ("left", "behind"): the matching turn, toward the question's
///    object.
/// 3. The answer's target (the chosen option, or the answer text) is mentioned in a
///    description: turn or move toward where that frame saw it (newest frame first).
/// 4. Otherwise: turn to look for it, saying it is not in the window.
pub fn nav_hint(
    question: &str,
    answer_text: &str,
    window: &[KeyFrame],
    descriptions: &[FrameDescription],
) -> (NavHint, Vec<u64>) {
    if let Some(a) = action_in(answer_text) {
        return (
            NavHint {
                action: a.phrase().to_string(),
                target: None,
                reason: "the answer names this action".into(),
            },
            vec![],
        );
    }
    let answer_words = content_words(answer_text);
    let question_target = {
        let w = content_words(question);
        (!w.is_empty()).then(|| w.join(" "))
    };
    if answer_words.is_empty()
        && let Some((a, where_)) = direction_action(answer_text)
    {
        return (
            NavHint {
                action: a.phrase().to_string(),
                target: question_target,
                reason: format!("the answer places it {where_}"),
            },
            vec![],
        );
    }
    let (words, target) = if answer_words.is_empty() {
        (content_words(question), question_target)
    } else {
        (
            answer_words,
            Some(answer_text.trim().trim_end_matches('.').to_string()),
        )
    };
    let mut cited = Vec::new();
    let mut best: Option<(usize, &str, f64)> = None;
    for (i, d) in descriptions.iter().enumerate() {
        if let Some((clause, score)) = best_clause(&d.view, &words) {
            if let Some(k) = window.get(i) {
                cited.push(k.seq);
            }
            // newest frame wins among equally good mentions
            if best.is_none_or(|(_, _, s)| score >= s) {
                best = Some((i, clause, score));
            }
        }
    }
    if let Some((i, clause, _)) = best {
        let seq = window.get(i).map(|k| k.seq);
        let at = seq
            .map(|s| format!("key frame {s}"))
            .unwrap_or_else(|| "a key frame".into());
        if let Some((a, where_)) = direction_action(clause) {
            return (
                NavHint {
                    action: a.phrase().to_string(),
                    target,
                    reason: format!("{at} saw it {where_}"),
                },
                cited,
            );
        }
        return (
            NavHint {
                action: Action::MoveForward.phrase().to_string(),
                target,
                reason: format!("{at} saw it; no direction was given"),
            },
            cited,
        );
    }
    (
        NavHint {
            action: Action::RotateRight.phrase().to_string(),
            target,
            reason: "not seen in the key-frame window; turn to look for it".into(),
        },
        cited,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn kf(seq: u64) -> KeyFrame {
        KeyFrame {
            seq,
            stamp: seq as f64 * 0.25,
            width: 2,
            height: 2,
            pose: None,
            jpeg: Arc::from(vec![0u8; 4]),
        }
    }

    fn d(view: &str) -> FrameDescription {
        FrameDescription {
            action: None,
            view: view.into(),
        }
    }

    #[test]
    fn action_answers_become_the_hint() {
        let (h, _) = nav_hint("What next?", "B. rotate left", &[], &[]);
        assert_eq!(h.action, "rotate left");
    }

    #[test]
    fn direction_answers_point_at_the_questions_object() {
        let (h, _) = nav_hint("Is the tower to my left or right?", "right", &[], &[]);
        assert_eq!(h.action, "rotate right");
        assert_eq!(h.target.as_deref(), Some("tower"));
    }

    #[test]
    fn targets_are_found_in_the_newest_mentioning_frame() {
        let w = [kf(0), kf(8), kf(16)];
        let ds = [
            d("I see a red sofa ahead, about 3.0 m away; a lamp to the right."),
            d("Newly visible: a tv to the left."),
            d("Objects from the question: a red sofa ahead-left, about 2.0 m away."),
        ];
        let (h, cited) = nav_hint("Which is closest?", "the red sofa", &w, &ds);
        assert_eq!(h.action, "rotate left");
        assert_eq!(h.target.as_deref(), Some("the red sofa"));
        assert!(h.reason.contains("key frame 16"), "{}", h.reason);
        assert_eq!(cited, [0, 16]);
        let (h, _) = nav_hint("Which is closest?", "the lamp", &w, &ds);
        assert_eq!(h.action, "rotate right");
        let (h, cited) = nav_hint("Which is closest?", "the fridge", &w, &ds);
        assert_eq!(h.action, "rotate right");
        assert!(h.reason.contains("not seen"));
        assert!(cited.is_empty());
    }
}
