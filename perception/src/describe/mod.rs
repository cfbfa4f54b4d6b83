//! From a window of key frames to text (spec §2): the [`Describer`] trait, the two prompts in
//! our own words with the reference's structure, a reply parser that survives markdown and
//! numbers inside sentences, a per-(window, question) cache, and the OpenAI-compatible client
//! ([`openai`]). The simulator's ground-truth describer implements the same trait in `sim-bridge`.

pub mod openai;

use crate::Action;
use crate::buffer::KeyFrame;
use crate::video_text::FrameDescription;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Why a window could not be described.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// The window is empty.
    #[error("nothing to describe: the key-frame window is empty")]
    EmptyWindow,
    /// The deadline passed before every frame was described.
    #[error("{describer}: deadline passed before frame {frame} was described")]
    Deadline {
        /// Describer label.
        describer: String,
        /// Position in the window.
        frame: usize,
    },
    /// The endpoint failed for one frame, after retries.
    #[error("{describer}: frame {frame}: {message}")]
    Endpoint {
        /// Describer label.
        describer: String,
        /// Position in the window.
        frame: usize,
        /// What went wrong, with the endpoint named.
        message: String,
    },
    /// The describer cannot describe these frames (e.g. the simulator does not know them).
    #[error("{describer}: {message}")]
    Unsupported {
        /// Describer label.
        describer: String,
        /// Why.
        message: String,
    },
    /// Bad configuration.
    #[error("describer configuration: {0}")]
    Config(String),
}

/// Turns a window of key frames into one description per frame.
pub trait Describer: Send + Sync {
    /// What produced the text (model id or `sim-ground-truth-describer`), recorded with answers.
    fn label(&self) -> String;
    /// Describes `window` (oldest first) for `question` (with its options), by `deadline`.
    fn describe(
        &self,
        window: &[KeyFrame],
        question: &str,
        deadline: Instant,
    ) -> Result<Vec<FrameDescription>, DescribeError>;
}

/// The ten actions as the differential prompt lists them.
const ACTIONS: &str = "move forward, move backward, move left, move right, move upward, move downward, \
rotate left, rotate right, tilt downward, tilt upward";

/// The prompt for the first key frame (spec §2.2, our wording).
pub fn first_frame_prompt(question: &str) -> String {
    format!(
        "This image is the first-person view of an agent (a drone or a robot). Describe the scene it \
observes right now. Characterise the objects by their colour, shape and other visible features. \
Above all, describe where things are relative to the agent: picture the 3-D space around it first, \
then use relative terms such as 'to the left', 'ahead-left' or 'below' rather than positions in the \
picture. Most important: if objects mentioned in the question '{}' are visible, be sure to describe \
them; do not answer the question or choose an option, only report whether and where the image shows \
what the question and its options mention. Be concise and clear.",
        question.trim()
    )
}

/// The prompt for a pair of consecutive key frames (spec §2.3, our wording; the numbered items
/// are what [`parse_reply`] reads).
pub fn pair_prompt(question: &str) -> String {
    format!(
        "These two images are the first-person views of an agent (a drone or a robot) before and \
after one action. Please output:\n\
1. The action, judged from how the objects moved between the two views. Output only one of these \
ten options, with no other text: {ACTIONS}.\n\
2. The spatial information the second view adds: objects that were hidden or unclear before. Objects \
of one kind may repeat (for example city buildings), so include colour and shape. Describe positions \
relative to the agent in 3-D space, with terms such as 'to the left', 'in the front-left' or 'below', \
not positions in the picture.\n\
3. If objects mentioned in the question '{}' appear in the images, describe them. Do not answer the \
question and do not choose an option.\n\
Be concise and clear.",
        question.trim()
    )
}

/// One numbered item's start: `(number, byte offset of the item's text)`.
fn item_starts(reply: &str) -> Vec<(u32, usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in reply.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let lead = line.len() - trimmed.len();
        // Allowed decoration before the number: markdown headings, bold, bullets.
        let rest = trimmed.trim_start_matches(['#', '*', '-', ' ', '\t', '_']);
        let deco = trimmed.len() - rest.len();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && digits.len() <= 2 {
            let after = &rest[digits.len()..];
            let mut chars = after.chars();
            if let Some(sep @ ('.' | ')' | ':')) = chars.next() {
                // "1.5 m" is a number, not an item.
                let next = chars.next();
                if !(sep == '.' && next.is_some_and(|c| c.is_ascii_digit())) {
                    let body = after[1..].trim_start_matches(['*', '_']);
                    let body_at = offset + lead + deco + digits.len() + (after.len() - body.len());
                    if let Ok(n) = digits.parse() {
                        out.push((n, offset + lead, body_at));
                    }
                }
            }
        }
        offset += line.len();
    }
    out
}

/// Strips markdown emphasis and collapses whitespace.
pub(crate) fn clean(s: &str) -> String {
    s.replace("**", "")
        .replace("__", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A reply to the first-frame prompt as frame 0's description: no action, the text with
/// markdown emphasis stripped and whitespace collapsed.
pub fn parse_first_reply(reply: &str) -> FrameDescription {
    FrameDescription {
        action: None,
        view: clean(reply),
    }
}

/// Parses a reply to the pair prompt: the action from item 1 (any of the ten, found anywhere in
/// the item), the view from items 2 and 3. Items are numbered lines — `1.`, `1)`, `**1.**`,
/// `### 1.` — and a number inside a sentence (`1.5 m`, `11.`) is not an item. Without item 1
/// the action is `None` and the view is the whole reply, as in the reference.
pub fn parse_reply(reply: &str) -> FrameDescription {
    // Only the expected items, in order, split the reply: a later "11." or a repeated "2." is
    // part of the text.
    let mut starts = Vec::new();
    for s in item_starts(reply) {
        if (1..=3).contains(&s.0)
            && starts
                .last()
                .is_none_or(|l: &(u32, usize, usize)| s.0 > l.0)
        {
            starts.push(s);
        }
    }
    let find = |n: u32| starts.iter().position(|s| s.0 == n);
    let text_of = |i: usize| {
        let end = starts.get(i + 1).map_or(reply.len(), |s| s.1);
        clean(&reply[starts[i].2..end])
    };
    let Some(i1) = find(1) else {
        return FrameDescription {
            action: None,
            view: clean(reply),
        };
    };
    let item1 = text_of(i1);
    let action = find_action(&item1).map(|a| a.phrase().to_string());
    let parts: Vec<String> = [find(2), find(3)]
        .into_iter()
        .flatten()
        .map(text_of)
        .filter(|t| !t.is_empty())
        .collect();
    let view = if parts.is_empty() {
        clean(&reply[starts[i1].1..])
    } else {
        parts.join(" ")
    };
    FrameDescription { action, view }
}

/// The first of the ten actions named in `text` (case and punctuation ignored).
fn find_action(text: &str) -> Option<Action> {
    let norm: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphabetic() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = norm.split_whitespace().collect();
    words
        .windows(2)
        .find_map(|w| format!("{} {}", w[0], w[1]).parse().ok())
}

/// Cached windows and their keys, least recently used first.
type Entries = (
    HashMap<String, Arc<Vec<FrameDescription>>>,
    VecDeque<String>,
);

/// Descriptions cached per (describer, window, question), least recently used evicted first.
#[derive(Debug)]
pub struct DescriptionCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl DescriptionCache {
    /// A cache of at most `capacity` windows.
    pub fn new(capacity: usize) -> DescriptionCache {
        DescriptionCache {
            capacity: capacity.max(1),
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The cache key of a window and question.
    pub fn key(describer: &str, window: &[KeyFrame], question: &str) -> String {
        let seqs: Vec<String> = window
            .iter()
            .map(|f| format!("{}@{}", f.seq, f.stamp))
            .collect();
        format!("{describer}\u{1f}{}\u{1f}{question}", seqs.join(","))
    }

    /// A cached description.
    pub fn get(&self, key: &str) -> Option<Arc<Vec<FrameDescription>>> {
        let mut g = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = g.0.get(key).cloned();
        if hit.is_some() {
            g.1.retain(|k| k != key);
            g.1.push_back(key.to_string());
        }
        hit
    }

    /// Stores a description.
    pub fn put(&self, key: String, value: Arc<Vec<FrameDescription>>) {
        let mut g = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if g.0.insert(key.clone(), value).is_none() {
            g.1.push_back(key);
        }
        while g.0.len() > self.capacity {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
    }

    /// Windows held.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A describer with a cache in front.
pub struct Cached<D: Describer> {
    inner: D,
    cache: DescriptionCache,
}

impl<D: Describer> Cached<D> {
    /// Wraps `inner` with a cache of `capacity` windows.
    pub fn new(inner: D, capacity: usize) -> Self {
        Cached {
            inner,
            cache: DescriptionCache::new(capacity),
        }
    }

    /// The cache.
    pub fn cache(&self) -> &DescriptionCache {
        &self.cache
    }
}

impl<D: Describer> Describer for Cached<D> {
    fn label(&self) -> String {
        self.inner.label()
    }

    fn describe(
        &self,
        window: &[KeyFrame],
        question: &str,
        deadline: Instant,
    ) -> Result<Vec<FrameDescription>, DescribeError> {
        let key = DescriptionCache::key(&self.inner.label(), window, question);
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit.as_ref().clone());
        }
        let out = self.inner.describe(window, question, deadline)?;
        self.cache.put(key, Arc::new(out.clone()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbered_reply() {
        let d = parse_reply(
            "1. Move forward\n2. A blue truck appears ahead-left.\n3. The tower is to the right.",
        );
        assert_eq!(d.action.as_deref(), Some("move forward"));
        assert_eq!(
            d.view,
            "A blue truck appears ahead-left. The tower is to the right."
        );
    }

    #[test]
    fn markdown_and_numbers_inside_sentences() {
        let reply = "**1.** Rotate left\n\n**2.** A green balcony, 1.5 m above the door.\n11. is not an item\n\n### 3. Nothing related.";
        let d = parse_reply(reply);
        assert_eq!(d.action.as_deref(), Some("rotate left"));
        assert_eq!(
            d.view,
            "A green balcony, 1.5 m above the door. 11. is not an item Nothing related."
        );
        let d = parse_reply("1) The agent seems to **tilt downward**.\n2) The road below.");
        assert_eq!(
            (d.action.as_deref(), d.view.as_str()),
            (Some("tilt downward"), "The road below.")
        );
    }

    #[test]
    fn missing_items_degrade_gracefully() {
        let d = parse_reply("The view moved; a red car is now ahead.");
        assert_eq!(d.action, None);
        assert_eq!(d.view, "The view moved; a red car is now ahead.");
        let d = parse_reply("1. jump around\n3. a door on the left");
        assert_eq!(d.action, None);
        assert_eq!(d.view, "a door on the left");
        let d = parse_reply("1. Move upward");
        assert_eq!(d.action.as_deref(), Some("move upward"));
        assert_eq!(d.view, "1. Move upward");
        let d = parse_reply("");
        assert_eq!((d.action, d.view.as_str()), (None, ""));
    }

    #[test]
    fn prompts_quote_the_question_and_list_the_actions() {
        let q = "Which is closer?\nA. the door\nB. the sofa";
        let p = pair_prompt(q);
        assert!(p.contains("'Which is closer?\nA. the door\nB. the sofa'"));
        assert!(p.contains("\n1. ") && p.contains("\n2. ") && p.contains("\n3. "));
        for a in Action::ALL {
            assert!(p.contains(a.phrase()), "{a:?}");
        }
        assert!(first_frame_prompt(q).contains("first-person"));
    }

    struct Counting(std::sync::atomic::AtomicUsize);
    impl Describer for Counting {
        fn label(&self) -> String {
            "counting".into()
        }
        fn describe(
            &self,
            w: &[KeyFrame],
            _: &str,
            _: Instant,
        ) -> Result<Vec<FrameDescription>, DescribeError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(w.iter()
                .map(|f| FrameDescription {
                    action: None,
                    view: format!("frame {}", f.seq),
                })
                .collect())
        }
    }

    #[test]
    fn the_cache_answers_repeats_and_evicts_the_least_recent() {
        let kf = |seq| KeyFrame {
            seq,
            stamp: seq as f64,
            width: 1,
            height: 1,
            pose: None,
            jpeg: Vec::new().into(),
        };
        let d = Cached::new(Counting(0.into()), 2);
        let t = Instant::now();
        let (w1, w2, w3) = (vec![kf(1)], vec![kf(2)], vec![kf(3)]);
        d.describe(&w1, "q", t).expect("ok");
        d.describe(&w1, "q", t).expect("ok");
        assert_eq!(d.inner.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        d.describe(&w1, "another question", t).expect("ok");
        assert_eq!(d.inner.0.load(std::sync::atomic::Ordering::SeqCst), 2);
        d.describe(&w2, "q", t).expect("ok");
        d.describe(&w3, "q", t).expect("ok");
        assert_eq!(d.cache().len(), 2);
    }
}
