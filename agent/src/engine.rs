//! Answering one question, synchronously: window → describer → prompt → LM → parse →
//! consistency check → navigation hint, producing the [`Answer`] and its episode record.
//! The runtime runs this on its worker thread; `episodes replay` runs it on recorded
//! descriptions.

use crate::answer::{Answer, Grounding, grounding_frames, nav_hint, pose_array};
use crate::config::ReasonerConfig;
use embodied_r_perception::buffer::{KeyFrame, WindowQuery};
use embodied_r_perception::describe::Describer;
use embodied_r_perception::video_text::{FrameDescription, assemble};
use embodied_r_reasoner::answer::{lenient_choice, parse_completion, reply_letter, strict_choice};
use embodied_r_reasoner::episode::{DescriptionRef, EpisodeRecord, FrameRef, NavHintRecord};
use embodied_r_reasoner::prompt::{
    REFERENCE_SYSTEM, SYSTEM_PROMPT, question_part, question_text, reference_message, user_message,
};
use embodied_r_reasoner::reward::answer_rewards;
use embodied_r_reasoner::{
    Completion, FinishReason, GenerationConfig, LanguageModel, LoadOptions, SamplingConfig,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A refused or failed question: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AskError {
    /// `bad_request`, `too_large`, `deadline_unmeetable`, `deadline_exceeded`, `busy`,
    /// `no_frames`, `describer_failed`, `model_failed`, `shutting_down`, `internal`.
    pub code: &'static str,
    /// What happened, naming the input.
    pub message: String,
}

impl AskError {
    /// A new error.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        AskError {
            code,
            message: message.into(),
        }
    }

    /// The wire form: `{"error": {"code", "message"}}`.
    pub fn to_json(&self, question_id: Option<&str>) -> serde_json::Value {
        let mut v = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        if let Some(id) = question_id {
            v["question_id"] = id.into();
        }
        v
    }
}

/// A question accepted by the API.
#[derive(Debug, Clone)]
pub struct Question {
    /// Runtime id (episode id).
    pub id: String,
    /// The stem.
    pub question: String,
    /// Options (empty: free-form).
    pub choices: Vec<String>,
    /// Which key frames.
    pub window: WindowQuery,
    /// Reply by then.
    pub deadline: Instant,
    /// The gold answer, when the asker knows it (simulator, evaluation).
    pub ground_truth: Option<String>,
    /// Dataset category, when known.
    pub category: Option<String>,
    /// Who asked (`anonymous` when the request did not say).
    pub client: String,
    /// When the API accepted it.
    pub received: Instant,
    /// Wall-clock time of arrival.
    pub received_unix: f64,
}

/// The LM side, behind a trait so the runtime does not care about the backend.
pub trait Reasoner: Send {
    /// Model id recorded with answers.
    fn id(&self) -> String;
    /// Renders a system + user chat with the model's template, ready for generation.
    fn render(&self, system: &str, user: &str) -> Result<String, String>;
    /// Token ids of a rendered prompt (the engine sizes the prompt with them, then generates
    /// from them: one tokenization per prompt).
    fn encode(&self, rendered: &str) -> Result<Vec<u32>, String>;
    /// Generates from prompt ids; `stop()` is polled after every token and ends generation
    /// early; `on_text` gets each piece of text as it becomes final.
    fn generate(
        &self,
        prompt: &[u32],
        cfg: &GenerationConfig,
        stop: &dyn Fn() -> bool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, String>;
}

/// What an answer in progress reports (for clients that show it, e.g. the ROS 2 action's
/// feedback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A stage starts: `describing`, `reasoning`, `checking` (the consistency pass).
    Stage(&'static str),
    /// Text of the answer's completion as it is generated (after the response prefix).
    Text(&'a str),
}

/// The reasoner crate's model as a [`Reasoner`].
pub struct LmReasoner<B: embodied_r_reasoner::backend::Backend> {
    lm: LanguageModel<B>,
    id: String,
}

impl<B: embodied_r_reasoner::backend::Backend> LmReasoner<B> {
    /// Loads `path` with `opts` on the backend's default device.
    pub fn load(path: &std::path::Path, opts: &LoadOptions) -> Result<Self, String> {
        let lm = LanguageModel::<B>::load(path, opts).map_err(|e| e.to_string())?;
        let name = |p: &std::path::Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        // Episodes record which weights answered: the base file and the adapter on it.
        let id = match &opts.adapter {
            Some(a) => format!("{} + {}", name(path), name(a)),
            None => name(path),
        };
        Ok(LmReasoner { lm, id })
    }
}

impl<B: embodied_r_reasoner::backend::Backend> Reasoner for LmReasoner<B> {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn render(&self, system: &str, user: &str) -> Result<String, String> {
        self.lm
            .render_chat(&[("system", system), ("user", user)], true)
            .map_err(|e| e.to_string())
    }

    fn encode(&self, rendered: &str) -> Result<Vec<u32>, String> {
        self.lm.encode_chat(rendered).map_err(|e| e.to_string())
    }

    fn generate(
        &self,
        prompt: &[u32],
        cfg: &GenerationConfig,
        stop: &dyn Fn() -> bool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, String> {
        self.lm
            .generate_ids(prompt, cfg, |ev| {
                if !ev.text.is_empty() {
                    on_text(&ev.text);
                }
                if stop() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .map_err(|e| e.to_string())
    }
}

/// Load options from the config's `weights` and `adapter` settings (an empty adapter: none).
pub fn load_options(weights: &str, adapter: &str) -> LoadOptions {
    use embodied_r_reasoner::{ActivationMode, WeightMode};
    LoadOptions {
        weights: match weights {
            "dense" => WeightMode::Dense,
            "packed" => WeightMode::Packed(ActivationMode::F32),
            _ => WeightMode::Packed(ActivationMode::Q8),
        },
        adapter: (!adapter.is_empty()).then(|| std::path::PathBuf::from(adapter)),
    }
}

/// The outcome of one question: the reply and the record to log.
pub struct Outcome {
    /// The answer or why there is none.
    pub reply: Result<Answer, AskError>,
    /// The episode record (also for failures).
    pub record: EpisodeRecord,
    /// The key frames used (the log stores them).
    pub frames: Vec<KeyFrame>,
}

/// Answers questions with one describer and one LM.
pub struct Engine {
    reasoner: Box<dyn Reasoner>,
    describer: Arc<dyn Describer>,
    cfg: ReasonerConfig,
    robot: String,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

impl Engine {
    /// Joins a reasoner and a describer.
    pub fn new(
        reasoner: Box<dyn Reasoner>,
        describer: Arc<dyn Describer>,
        cfg: ReasonerConfig,
        robot: String,
    ) -> Self {
        Engine {
            reasoner,
            describer,
            cfg,
            robot,
        }
    }

    /// The LM's id.
    pub fn model_id(&self) -> String {
        self.reasoner.id()
    }

    /// The describer's label.
    pub fn describer_label(&self) -> String {
        self.describer.label()
    }

    /// The generation settings for answers.
    pub fn generation(&self, seed: u64) -> GenerationConfig {
        GenerationConfig {
            max_tokens: self.cfg.max_tokens,
            sampling: SamplingConfig {
                temperature: self.cfg.temperature,
                top_p: (self.cfg.top_p < 1.0).then_some(self.cfg.top_p),
                seed,
                ..SamplingConfig::default()
            },
            stop: vec!["</answer>".into()],
            stop_on_eos: true,
        }
    }

    /// Answers `q` over `window` (oldest first). `cancel` ends the work early (shutdown).
    pub fn answer(&self, q: &Question, window: Vec<KeyFrame>, cancel: &AtomicBool) -> Outcome {
        self.answer_with(q, window, cancel, &mut |_| {})
    }

    /// As [`Engine::answer`], reporting stages and the completion's text to `progress` as they
    /// happen.
    pub fn answer_with(
        &self,
        q: &Question,
        window: Vec<KeyFrame>,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Outcome {
        let mut timings = BTreeMap::new();
        timings.insert("queue".to_string(), ms(q.received));
        let mut record = self.empty_record(q, &window);
        let result =
            self.describe_and_reason(q, &window, cancel, &mut timings, &mut record, progress);
        timings.insert("total".into(), ms(q.received));
        record.timings = timings.clone();
        let reply = match result {
            Ok(mut answer) => {
                answer.timings = timings;
                Ok(answer)
            }
            Err(e) => {
                record.error = Some(e.to_string());
                Err(e)
            }
        };
        Outcome {
            reply,
            record,
            frames: window,
        }
    }

    fn describe_and_reason(
        &self,
        q: &Question,
        window: &[KeyFrame],
        cancel: &AtomicBool,
        timings: &mut BTreeMap<String, f64>,
        record: &mut EpisodeRecord,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Answer, AskError> {
        use embodied_r_perception::describe::DescribeError;
        if window.is_empty() {
            return Err(AskError::new(
                "no_frames",
                "no key frames in the requested window yet: the camera has not delivered any, or the window is too narrow",
            ));
        }
        let qtext = question_text(&q.question, &q.choices);
        let t = Instant::now();
        progress(Progress::Stage("describing"));
        let descriptions = self
            .describer
            .describe(window, &format!("Question: {qtext}"), q.deadline)
            .map_err(|e| {
                let code = if matches!(e, DescribeError::Deadline { .. }) {
                    "deadline_exceeded"
                } else {
                    "describer_failed"
                };
                AskError::new(code, e.to_string())
            })?;
        timings.insert("describe".into(), ms(t));
        if descriptions.len() != window.len() {
            return Err(AskError::new(
                "describer_failed",
                format!(
                    "{} returned {} descriptions for {} key frames",
                    self.describer.label(),
                    descriptions.len(),
                    window.len()
                ),
            ));
        }
        record.descriptions = descriptions
            .iter()
            .map(|d| DescriptionRef {
                action: d.action.clone(),
                view: d.view.clone(),
            })
            .collect();
        let stop_at = q.deadline;
        let stop = || cancel.load(Ordering::Relaxed) || Instant::now() >= stop_at;
        let gen_cfg = self.generation(self.cfg.seed);
        self.reason(
            q,
            &qtext,
            window,
            &descriptions,
            &gen_cfg,
            timings,
            record,
            &stop,
            progress,
        )
    }

    fn empty_record(&self, q: &Question, window: &[KeyFrame]) -> EpisodeRecord {
        EpisodeRecord {
            time_unix: q.received_unix,
            choices: q.choices.clone(),
            category: q.category.clone(),
            frames: window
                .iter()
                .map(|k| FrameRef {
                    seq: k.seq,
                    stamp: k.stamp,
                    pose: k.pose.as_ref().map(pose_array),
                    file: None,
                })
                .collect(),
            system: SYSTEM_PROMPT.into(),
            ground_truth: q.ground_truth.clone(),
            model: self.reasoner.id(),
            describer: self.describer.label(),
            seed: self.cfg.seed,
            temperature: self.cfg.temperature,
            max_tokens: self.cfg.max_tokens,
            ..EpisodeRecord::new(&q.id, &self.robot, &q.question)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reason(
        &self,
        q: &Question,
        qtext: &str,
        window: &[KeyFrame],
        descriptions: &[FrameDescription],
        cfg: &GenerationConfig,
        timings: &mut BTreeMap<String, f64>,
        record: &mut EpisodeRecord,
        stop: &dyn Fn() -> bool,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Answer, AskError> {
        let model_err =
            |e: String| AskError::new("model_failed", format!("{}: {e}", self.reasoner.id()));
        // Fit the prompt: drop the oldest descriptions after the first (the scene overview),
        // never the system prompt or the question.
        let t = Instant::now();
        let mut kept: Vec<usize> = (0..descriptions.len()).collect();
        let (user, prompt_ids) = loop {
            let ds: Vec<FrameDescription> = kept.iter().map(|&i| descriptions[i].clone()).collect();
            let user = user_message(&assemble(&ds), qtext);
            let mut rendered = self
                .reasoner
                .render(SYSTEM_PROMPT, &user)
                .map_err(model_err)?;
            rendered.push_str(&self.cfg.response_prefix);
            let ids = self.reasoner.encode(&rendered).map_err(model_err)?;
            let n = ids.len();
            if n <= self.cfg.max_prompt_tokens || kept.len() <= 1 {
                if n > self.cfg.max_prompt_tokens {
                    return Err(AskError::new(
                        "too_large",
                        format!(
                            "the prompt needs {n} tokens even with one frame description; reasoner.max_prompt_tokens is {}",
                            self.cfg.max_prompt_tokens
                        ),
                    ));
                }
                break (user, ids);
            }
            kept.remove(1);
        };
        let trimmed = descriptions.len() - kept.len();
        if trimmed > 0 {
            tracing::warn!(
                question = %q.id,
                trimmed,
                "left out the oldest {trimmed} frame descriptions to fit reasoner.max_prompt_tokens = {}",
                self.cfg.max_prompt_tokens
            );
        }
        timings.insert("prompt".into(), ms(t));
        record.user = user.clone();
        let t = Instant::now();
        progress(Progress::Stage("reasoning"));
        let completion = self
            .reasoner
            .generate(&prompt_ids, cfg, stop, &mut |text| {
                progress(Progress::Text(text))
            })
            .map_err(model_err)?;
        timings.insert("generate".into(), ms(t));
        timings.insert(
            "prompt_tokens".into(),
            completion.timings.prefill_tokens as f64,
        );
        timings.insert("completion_tokens".into(), completion.tokens.len() as f64);
        if completion.finish == FinishReason::Cancelled {
            return Err(if Instant::now() >= q.deadline {
                AskError::new(
                    "deadline_exceeded",
                    format!(
                        "the deadline passed while the LM was answering ({} tokens in)",
                        completion.tokens.len()
                    ),
                )
            } else {
                AskError::new("shutting_down", "the runtime is shutting down")
            });
        }
        let mut text = format!("{}{}", self.cfg.response_prefix, completion.text);
        if completion.finish == FinishReason::Stop {
            text.push_str("</answer>");
        }
        record.completion = text.clone();
        let parsed = parse_completion(&text);
        let answer_text = parsed
            .answer
            .clone()
            .unwrap_or_else(|| text.trim().to_string());
        // One rule decides which option the answer names: the `<answer>` block's (strict), as
        // rewards, the log, `eval` and every command's verdict read it. Without an answer block
        // the whole text may still name an option: that lenient reading is reported as such,
        // steers only the advisory nav hint, and is never scored.
        let choice = strict_choice(&parsed, &q.choices);
        let lenient = lenient_choice(&parsed, &text, &q.choices);
        // The consistency check: does the think text alone lead a reference pass to the same
        // option? Only for multiple choice; a missing think or choice is inconsistent.
        let t = Instant::now();
        let (consistent, reference_reply) = if !self.cfg.consistency || q.choices.is_empty() {
            (None, None)
        } else {
            match (&parsed.think, choice) {
                (Some(think), Some(c)) => {
                    progress(Progress::Stage("checking"));
                    let msg = reference_message(&question_part(&user), think);
                    let rendered = self
                        .reasoner
                        .render(REFERENCE_SYSTEM, &msg)
                        .map_err(model_err)?;
                    let ids = self.reasoner.encode(&rendered).map_err(model_err)?;
                    let mut rc = GenerationConfig::greedy(8);
                    rc.stop = vec!["\n".into()];
                    let reply = self
                        .reasoner
                        .generate(&ids, &rc, stop, &mut |_| {})
                        .map_err(model_err)?;
                    if reply.finish == FinishReason::Cancelled {
                        (None, Some(reply.text))
                    } else {
                        let letter = reply_letter(&reply.text);
                        (Some(letter == Some(c)), Some(reply.text))
                    }
                }
                _ => (Some(false), None),
            }
        };
        timings.insert("consistency".into(), ms(t));
        let option_text = choice
            .or(lenient)
            .and_then(|c| {
                embodied_r_reasoner::prompt::LETTERS
                    .iter()
                    .position(|&l| l == c)
            })
            .and_then(|i| q.choices.get(i).cloned());
        let target_text = option_text.unwrap_or_else(|| answer_text.clone());
        let used: Vec<KeyFrame> = kept
            .iter()
            .filter_map(|&i| window.get(i).cloned())
            .collect();
        let used_desc: Vec<FrameDescription> =
            kept.iter().map(|&i| descriptions[i].clone()).collect();
        let (hint, cited) = nav_hint(&q.question, &target_text, &used, &used_desc);
        record.choice = choice.map(String::from);
        record.text = answer_text.clone();
        record.think = parsed.think.clone();
        record.format_ok = parsed.format_ok;
        record.consistent = consistent;
        record.reference_reply = reference_reply;
        record.nav_hint = Some(NavHintRecord {
            action: hint.action.clone(),
            target: hint.target.clone(),
            reason: hint.reason.clone(),
        });
        record.rewards = q
            .ground_truth
            .as_deref()
            .map(|gt| answer_rewards(&text, gt, &q.choices, consistent));
        record
            .frames
            .retain(|f| used.iter().any(|k| k.seq == f.seq));
        Ok(Answer {
            question_id: q.id.clone(),
            choice: choice.map(String::from),
            lenient_choice: lenient.map(String::from),
            rewards: record.rewards,
            text: answer_text,
            think: parsed.think,
            nav_hint: hint,
            grounding: Grounding {
                frames: grounding_frames(&used),
                cited,
                // The runtime fills this in: it knows when the capture kept each frame.
                newest_age_s: None,
                trimmed,
            },
            format_ok: parsed.format_ok,
            consistent,
            model: self.reasoner.id(),
            describer: self.describer.label(),
            timings: BTreeMap::new(),
        })
    }
}

/// Replays a recorded episode's descriptions (so `episodes replay` re-runs the LM on exactly
/// what the describer said then).
pub struct RecordedDescriber {
    label: String,
    descriptions: Vec<FrameDescription>,
}

impl RecordedDescriber {
    /// The descriptions of `rec`.
    pub fn new(rec: &EpisodeRecord) -> Self {
        RecordedDescriber {
            label: rec.describer.clone(),
            descriptions: rec
                .descriptions
                .iter()
                .map(|d| FrameDescription {
                    action: d.action.clone(),
                    view: d.view.clone(),
                })
                .collect(),
        }
    }
}

impl Describer for RecordedDescriber {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn describe(
        &self,
        window: &[KeyFrame],
        _question: &str,
        _deadline: Instant,
    ) -> Result<Vec<FrameDescription>, embodied_r_perception::describe::DescribeError> {
        if window.len() != self.descriptions.len() {
            return Err(
                embodied_r_perception::describe::DescribeError::Unsupported {
                    describer: self.label.clone(),
                    message: format!(
                        "the record has {} descriptions for {} key frames",
                        self.descriptions.len(),
                        window.len()
                    ),
                },
            );
        }
        Ok(self.descriptions.clone())
    }
}

/// The question of a recorded episode, with a generous deadline.
pub fn question_from_record(rec: &EpisodeRecord) -> Question {
    let now = Instant::now();
    Question {
        id: rec.id.clone(),
        question: rec.question.clone(),
        choices: rec.choices.clone(),
        window: WindowQuery::All,
        deadline: now + std::time::Duration::from_secs(24 * 3600),
        ground_truth: rec.ground_truth.clone(),
        category: rec.category.clone(),
        client: "replay".into(),
        received: now,
        received_unix: rec.time_unix,
    }
}

/// The key frames of a recorded episode (JPEG bytes from the log when stored).
pub fn window_from_record(rec: &EpisodeRecord, log_dir: &std::path::Path) -> Vec<KeyFrame> {
    rec.frames
        .iter()
        .map(|f| {
            let jpeg = f
                .file
                .as_ref()
                .and_then(|p| std::fs::read(log_dir.join(p)).ok())
                .unwrap_or_default();
            let pose = f.pose.map(|p| {
                nalgebra::Isometry3::from_parts(
                    nalgebra::Translation3::new(p[0], p[1], p[2]),
                    nalgebra::UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(
                        p[6], p[3], p[4], p[5],
                    )),
                )
            });
            KeyFrame {
                seq: f.seq,
                stamp: f.stamp,
                width: 0,
                height: 0,
                pose,
                jpeg: Arc::from(jpeg),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Replies with scripted completions; a token is four characters.
    struct Scripted(Mutex<VecDeque<&'static str>>);

    impl Reasoner for Scripted {
        fn id(&self) -> String {
            "scripted".into()
        }
        fn render(&self, system: &str, user: &str) -> Result<String, String> {
            Ok(format!("[{system}][{user}]"))
        }
        fn encode(&self, rendered: &str) -> Result<Vec<u32>, String> {
            Ok(vec![0; rendered.len() / 4])
        }
        fn generate(
            &self,
            _: &[u32],
            cfg: &GenerationConfig,
            stop: &dyn Fn() -> bool,
            on_text: &mut dyn FnMut(&str),
        ) -> Result<Completion, String> {
            let reply = self.0.lock().unwrap().pop_front().ok_or("script ran out")?;
            let (text, finish) = if stop() {
                (String::new(), FinishReason::Cancelled)
            } else if let Some(i) = cfg.stop.iter().find_map(|s| reply.find(s.as_str())) {
                (reply[..i].to_string(), FinishReason::Stop)
            } else {
                (reply.to_string(), FinishReason::Eos)
            };
            // Four characters a token, as the script's token count says.
            for piece in text.as_bytes().chunks(4) {
                on_text(&String::from_utf8_lossy(piece));
            }
            Ok(Completion {
                tokens: vec![0; text.len() / 4],
                text,
                finish,
                timings: Default::default(),
            })
        }
    }

    struct Fixed(Vec<FrameDescription>);

    impl Describer for Fixed {
        fn label(&self) -> String {
            "fixed".into()
        }
        fn describe(
            &self,
            _: &[KeyFrame],
            _: &str,
            _: Instant,
        ) -> Result<Vec<FrameDescription>, embodied_r_perception::describe::DescribeError> {
            Ok(self.0.clone())
        }
    }

    fn kf(seq: u64) -> KeyFrame {
        KeyFrame {
            seq,
            stamp: seq as f64,
            width: 1,
            height: 1,
            pose: None,
            jpeg: Arc::from(vec![0u8]),
        }
    }

    fn engine(script: &[&'static str], views: &[&str], cfg: ReasonerConfig) -> Engine {
        let d = views
            .iter()
            .enumerate()
            .map(|(i, v)| FrameDescription {
                action: (i > 0).then(|| "Move forward".to_string()),
                view: v.to_string(),
            })
            .collect();
        Engine::new(
            Box::new(Scripted(Mutex::new(script.iter().copied().collect()))),
            Arc::new(Fixed(d)),
            cfg,
            "r".into(),
        )
    }

    fn question(choices: &[&str], deadline_s: f64) -> Question {
        let now = Instant::now();
        Question {
            id: "q".into(),
            question: "Which is on my left?".into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            window: WindowQuery::All,
            deadline: now + std::time::Duration::from_secs_f64(deadline_s),
            ground_truth: Some("B".into()),
            category: None,
            client: "test".into(),
            received: now,
            received_unix: 0.0,
        }
    }

    const VIEWS: [&str; 3] = [
        "I see a lamp ahead.",
        "Newly visible: a red sofa to the left, about 2.0 m away.",
        "No new objects.",
    ];

    #[test]
    fn a_consistent_grounded_answer() {
        let e = engine(
            &[
                "<think>the sofa is on the left</think>\n<answer>B. the sofa</answer>",
                "B",
            ],
            &VIEWS,
            ReasonerConfig::default(),
        );
        let out = e.answer(
            &question(&["the lamp", "the sofa"], 60.0),
            vec![kf(0), kf(4), kf(9)],
            &AtomicBool::new(false),
        );
        let a = out.reply.unwrap();
        assert_eq!(a.choice.as_deref(), Some("B"));
        assert!(a.format_ok);
        assert_eq!(a.consistent, Some(true));
        assert_eq!(a.nav_hint.action, "rotate left");
        assert_eq!(a.grounding.cited, [4]);
        assert_eq!(a.grounding.frames.len(), 3);
        let r = out.record;
        assert_eq!(
            r.completion,
            "<think>the sofa is on the left</think>\n<answer>B. the sofa</answer>"
        );
        assert_eq!(r.reference_reply.as_deref(), Some("B"));
        let w = r.rewards.unwrap();
        assert_eq!((w.format, w.accuracy, w.consistency), (1.0, 1.0, Some(1.0)));
        assert!(r.user.contains("Video content:") && r.user.contains("B. the sofa"));
    }

    #[test]
    fn progress_reports_stages_in_order_and_the_completion_as_it_grows() {
        let completion = "<think>the sofa is on the left</think>\n<answer>B. the sofa</answer>";
        let e = engine(&[completion, "B"], &VIEWS, ReasonerConfig::default());
        let mut stages = Vec::new();
        let mut text = String::new();
        let out = e.answer_with(
            &question(&["the lamp", "the sofa"], 60.0),
            vec![kf(0), kf(4), kf(9)],
            &AtomicBool::new(false),
            &mut |p| match p {
                Progress::Stage(s) => stages.push(s),
                Progress::Text(t) => {
                    assert!(stages.last() == Some(&"reasoning"), "text before reasoning");
                    text.push_str(t);
                }
            },
        );
        assert!(out.reply.is_ok());
        assert_eq!(stages, ["describing", "reasoning", "checking"]);
        // Only the answer's completion streams (up to the stop string, which the record then
        // restores), not the consistency pass's reply.
        assert_eq!(text, completion.trim_end_matches("</answer>"));
        assert_eq!(out.record.completion, completion);
    }

    #[test]
    fn the_response_prefix_is_prompted_and_part_of_the_completion() {
        // The model continues after "<think>": its sampled text lacks the opening tag.
        let e = engine(
            &["the sofa is on the left</think><answer>B</answer>", "B"],
            &VIEWS,
            ReasonerConfig {
                response_prefix: "<think>".into(),
                ..ReasonerConfig::default()
            },
        );
        let out = e.answer(
            &question(&["the lamp", "the sofa"], 60.0),
            vec![kf(0), kf(4), kf(9)],
            &AtomicBool::new(false),
        );
        let a = out.reply.unwrap();
        assert!(a.format_ok);
        assert_eq!(a.choice.as_deref(), Some("B"));
        assert_eq!(
            out.record.completion,
            "<think>the sofa is on the left</think><answer>B</answer>"
        );
        assert_eq!(out.record.think.as_deref(), Some("the sofa is on the left"));
    }

    #[test]
    fn a_reference_pass_that_disagrees_is_inconsistent() {
        let e = engine(
            &["<think>hmm</think><answer>B</answer>", "A"],
            &VIEWS,
            ReasonerConfig::default(),
        );
        let a = e
            .answer(
                &question(&["the lamp", "the sofa"], 60.0),
                vec![kf(0), kf(4), kf(9)],
                &AtomicBool::new(false),
            )
            .reply
            .unwrap();
        assert_eq!(a.consistent, Some(false));
        // free-form questions skip the check
        let e = engine(
            &["<think>x</think><answer>the sofa</answer>"],
            &VIEWS,
            ReasonerConfig::default(),
        );
        let a = e
            .answer(
                &question(&[], 60.0),
                vec![kf(0), kf(4), kf(9)],
                &AtomicBool::new(false),
            )
            .reply
            .unwrap();
        assert_eq!((a.choice, a.consistent), (None, None));
        assert_eq!(a.nav_hint.action, "rotate left");
    }

    #[test]
    fn a_reply_without_an_answer_block_is_read_leniently_but_scored_strictly() {
        // What an untrained model writes: the right option in prose, no tags.
        let e = engine(
            &["The sofa is to the left, so the answer is B."],
            &VIEWS,
            ReasonerConfig::default(),
        );
        let out = e.answer(
            &question(&["the lamp", "the sofa"], 60.0),
            vec![kf(0), kf(4), kf(9)],
            &AtomicBool::new(false),
        );
        let a = out.reply.unwrap();
        assert_eq!(a.choice, None, "no <answer> block: no strict choice");
        assert_eq!(a.lenient_choice.as_deref(), Some("B"));
        assert!(!a.format_ok);
        // The nav hint may follow the lenient reading; the verdict may not.
        assert_eq!(a.nav_hint.target.as_deref(), Some("the sofa"));
        let w = a.rewards.expect("the question carried its truth");
        assert_eq!((w.format, w.accuracy), (0.0, 0.0));
        assert_eq!(out.record.rewards, Some(w), "the reply and the log agree");
        assert_eq!(out.record.choice, None);
    }

    #[test]
    fn long_video_text_is_trimmed_not_the_question() {
        let long: Vec<String> = (0..40)
            .map(|i| format!("Newly visible: object number {i} far away in the distance."))
            .collect();
        let views: Vec<&str> = long.iter().map(String::as_str).collect();
        let cfg = ReasonerConfig {
            max_prompt_tokens: 400,
            consistency: false,
            ..ReasonerConfig::default()
        };
        let e = engine(&["<think>t</think><answer>A</answer>"], &views, cfg);
        let window: Vec<KeyFrame> = (0..40).map(kf).collect();
        let out = e.answer(
            &question(&["x", "y"], 60.0),
            window,
            &AtomicBool::new(false),
        );
        let a = out.reply.unwrap();
        assert!(a.grounding.trimmed > 0);
        assert_eq!(a.grounding.frames.len() + a.grounding.trimmed, 40);
        // the first frame (the scene overview) and the newest frames stay
        assert_eq!(a.grounding.frames[0].seq, 0);
        assert_eq!(a.grounding.frames.last().unwrap().seq, 39);
        assert!(
            out.record
                .user
                .ends_with("Which is on my left?\nChoices:\nA. x\nB. y")
        );
    }

    #[test]
    fn deadlines_and_bad_describers_fail_with_codes() {
        let e = engine(
            &["<think>t</think><answer>A</answer>"],
            &VIEWS,
            ReasonerConfig::default(),
        );
        let out = e.answer(
            &question(&["x", "y"], 0.0),
            vec![kf(0), kf(4), kf(9)],
            &AtomicBool::new(false),
        );
        assert_eq!(out.reply.unwrap_err().code, "deadline_exceeded");
        assert!(out.record.error.is_some());
        let e = engine(&[], &VIEWS, ReasonerConfig::default());
        let out = e.answer(
            &question(&["x", "y"], 60.0),
            vec![kf(0)],
            &AtomicBool::new(false),
        );
        assert_eq!(out.reply.unwrap_err().code, "describer_failed");
        let out = e.answer(
            &question(&["x", "y"], 60.0),
            vec![],
            &AtomicBool::new(false),
        );
        assert_eq!(out.reply.unwrap_err().code, "no_frames");
    }
}
