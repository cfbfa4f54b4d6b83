//! The Embodied-R reward (spec §4), shared by the runtime (which records it when the truth is
//! known) and the trainer (which optimises it): format, accuracy and think/answer logical
//! consistency, weighted, with a staged schedule.
//!
//! Two ways to read the answer out of a completion ([`Extraction`]):
//! - `Strict` (default): only the `<answer>` block, through [`choice_letter`];
//! - `Reference`: the reference implementation's whole-completion normaliser
//!   ([`reference_normalize`]), quirks included, so figures stay comparable with the paper's.
//!
//! Numeric answers (no options, a number as the truth) are scored by VSI-Bench's mean relative
//! accuracy in both modes. Consistency asks a [`ConsistencyJudge`] which option the think text
//! implies; a judge that fails is an error, never a silent switch to another signal (the
//! reference's bug, spec §7.2).

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::answer::{choice_letter, parse_completion};
use crate::episode::Rewards;

/// How the answer is read out of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extraction {
    /// Only the `<answer>` block counts.
    #[default]
    Strict,
    /// The reference's normaliser over the whole completion (spec §4.2), for comparability.
    Reference,
}

impl std::str::FromStr for Extraction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(Extraction::Strict),
            "reference" => Ok(Extraction::Reference),
            other => Err(format!(
                "unknown answer extraction `{other}`; expected `strict` or `reference`"
            )),
        }
    }
}

/// The weights of the three components in the summed reward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardWeights {
    /// Weight of the accuracy reward.
    pub accuracy: f64,
    /// Weight of the format reward.
    pub format: f64,
    /// Weight of the consistency reward.
    pub consistency: f64,
}

impl Default for RewardWeights {
    /// The method's fixed weights: 0.7 accuracy, 0.1 format, 0.2 consistency.
    fn default() -> Self {
        RewardWeights {
            accuracy: 0.7,
            format: 0.1,
            consistency: 0.2,
        }
    }
}

impl RewardWeights {
    /// `w·r` over the components; an unchecked consistency counts 0.
    pub fn total(&self, r: &Rewards) -> f64 {
        self.accuracy * r.accuracy
            + self.format * r.format
            + self.consistency * r.consistency.unwrap_or(0.0)
    }

    /// Errors unless every weight is finite and non-negative and one is positive.
    pub fn validate(&self) -> Result<(), String> {
        let all = [self.accuracy, self.format, self.consistency];
        if all.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(format!(
                "reward weights must be finite and ≥ 0, got accuracy {}, format {}, consistency {}",
                self.accuracy, self.format, self.consistency
            ));
        }
        if all.iter().all(|w| *w == 0.0) {
            return Err("reward weights are all 0: nothing to learn".into());
        }
        Ok(())
    }
}

/// One stage of a reward schedule: the weights in force from `from_step` on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// First optimiser step (0-based) of the stage.
    pub from_step: u64,
    /// The weights.
    #[serde(flatten)]
    pub weights: RewardWeights,
}

/// Reward weights over training: the last stage whose `from_step` has been reached applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Schedule(Vec<Stage>);

impl Schedule {
    /// Fixed weights for the whole run.
    pub fn fixed(weights: RewardWeights) -> Self {
        Schedule(vec![Stage {
            from_step: 0,
            weights,
        }])
    }

    /// The paper's three stages over a run of `total_steps`, in proportion to its 12 epochs:
    /// format first (epochs 1–2: format 0.7, accuracy 0.3), then accuracy (3–4: accuracy 0.9,
    /// format 0.1), then accuracy with consistency (5–12: the default 0.7/0.1/0.2).
    pub fn staged(total_steps: u64) -> Self {
        let at = |epoch: u64| total_steps * epoch / 12;
        Schedule(vec![
            Stage {
                from_step: 0,
                weights: RewardWeights {
                    accuracy: 0.3,
                    format: 0.7,
                    consistency: 0.0,
                },
            },
            Stage {
                from_step: at(2),
                weights: RewardWeights {
                    accuracy: 0.9,
                    format: 0.1,
                    consistency: 0.0,
                },
            },
            Stage {
                from_step: at(4),
                weights: RewardWeights::default(),
            },
        ])
    }

    /// From stages; errors unless they start at step 0, increase strictly, and each is valid.
    pub fn new(stages: Vec<Stage>) -> Result<Self, String> {
        match stages.first() {
            None => return Err("a reward schedule needs at least one stage".into()),
            Some(s) if s.from_step != 0 => {
                return Err(format!(
                    "the first reward stage must start at step 0, not {}",
                    s.from_step
                ));
            }
            Some(_) => {}
        }
        for (i, w) in stages.windows(2).enumerate() {
            if w[1].from_step <= w[0].from_step {
                return Err(format!(
                    "reward stage {} starts at step {}, not after stage {} (step {})",
                    i + 2,
                    w[1].from_step,
                    i + 1,
                    w[0].from_step
                ));
            }
        }
        for (i, s) in stages.iter().enumerate() {
            s.weights
                .validate()
                .map_err(|e| format!("reward stage {}: {e}", i + 1))?;
        }
        Ok(Schedule(stages))
    }

    /// The weights at `step`.
    pub fn at(&self, step: u64) -> RewardWeights {
        self.0
            .iter()
            .rev()
            .find(|s| s.from_step <= step)
            .or(self.0.first())
            .map(|s| s.weights)
            .unwrap_or_default()
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.0
    }
}

/// VSI-Bench's mean relative accuracy: the fraction of thresholds θ ∈ {0.50, 0.55, …, 0.95} for
/// which |pred − truth| / truth < 1 − θ.
pub fn mean_relative_accuracy(pred: f64, truth: f64) -> f64 {
    if !pred.is_finite() || truth == 0.0 {
        return f64::from(u8::from(pred == truth));
    }
    let rel = (pred - truth).abs() / truth.abs();
    let hits = (0..10)
        .filter(|k| rel < 1.0 - (0.5 + 0.05 * f64::from(*k)))
        .count();
    hits as f64 / 10.0
}

/// The first decimal number in a text.
pub fn first_number(s: &str) -> Option<f64> {
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (start, c.is_ascii_digit() || c == '.') {
            (None, true) if c.is_ascii_digit() => start = Some(i),
            (Some(st), false) => return s[st..i].trim_end_matches('.').parse().ok(),
            _ => {}
        }
    }
    start.and_then(|st| s[st..].trim_end_matches('.').parse().ok())
}

#[allow(clippy::expect_used)] // the patterns are constants, checked by the tests
fn pattern(p: &str) -> Regex {
    Regex::new(p).expect("constant pattern")
}

static BOXED: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?i)\$\\boxed\{([A-H])\}\$"));
static ANSWER_WORD: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?i)answer\s+([A-H])\.?"));
static LETTER_DOT: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?i)(?:^|[^A-Za-z])([A-H])\s*\."));
static LONE_LETTER: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?i)(?:^|[^A-Za-z])([A-H])(?:$|[^A-Za-z])"));

/// The reference's `normalize` (spec §4.2), quirks included: over the whole text, the first rule
/// that matches decides — the last `$\boxed{X}$`, else the first `answer X`, else the last lone
/// letter followed by a dot, else the last lone letter, else the stripped text upper-cased.
/// Letters match case-insensitively and are upper-cased. Matches do not overlap (Python's
/// `findall`), so "A B" yields A: the space after A was consumed by A's match.
pub fn reference_normalize(text: &str) -> String {
    let letter = |m: Option<regex::Captures<'_>>| {
        m.and_then(|c| c.get(1))
            .map(|g| g.as_str().to_ascii_uppercase())
    };
    if let Some(l) = letter(BOXED.captures_iter(text).last()) {
        return l;
    }
    if let Some(l) = letter(ANSWER_WORD.captures(text)) {
        return l;
    }
    if let Some(l) = letter(LETTER_DOT.captures_iter(text).last()) {
        return l;
    }
    if let Some(l) = letter(LONE_LETTER.captures_iter(text).last()) {
        return l;
    }
    text.trim().to_uppercase()
}

/// What the accuracy check read and concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Spec §4.1 format reward, 0 or 1.
    pub format: f64,
    /// Accuracy, 0 or 1 for options, mean relative accuracy for numbers.
    pub accuracy: f64,
    /// The option letter read from the completion, if any.
    pub choice: Option<char>,
    /// The `<think>` text, if any.
    pub think: Option<String>,
}

/// Format and accuracy of `completion` against `gold` (a letter, or a number for free-form
/// questions). `choices` lets the strict mode map an option's text to its letter.
pub fn score(completion: &str, gold: &str, choices: &[String], mode: Extraction) -> Scored {
    let parsed = parse_completion(completion);
    let gold = gold.trim();
    let numeric_gold = gold.parse::<f64>().ok().filter(|g| g.is_finite());
    let (accuracy, choice) = match (numeric_gold, mode) {
        (Some(g), Extraction::Strict) => {
            let pred = parsed.answer.as_deref().and_then(first_number);
            (pred.map_or(0.0, |p| mean_relative_accuracy(p, g)), None)
        }
        (Some(g), Extraction::Reference) => {
            let pred = first_number(parsed.answer.as_deref().unwrap_or(completion));
            (pred.map_or(0.0, |p| mean_relative_accuracy(p, g)), None)
        }
        (None, Extraction::Strict) => {
            let c = parsed
                .answer
                .as_deref()
                .and_then(|a| choice_letter(a, choices));
            let ok = c.is_some_and(|c| gold.eq_ignore_ascii_case(&c.to_string()));
            (f64::from(u8::from(ok)), c)
        }
        (None, Extraction::Reference) => {
            let said = reference_normalize(completion);
            let ok = said == reference_normalize(gold);
            let c = said.chars().next().filter(|_| said.len() == 1);
            (f64::from(u8::from(ok)), c)
        }
    };
    Scored {
        format: f64::from(u8::from(parsed.format_ok)),
        accuracy,
        choice,
        think: parsed.think,
    }
}

/// The rewards the runtime records for an answer to a question whose truth it was told: the
/// strict reading of [`score`] (the same one `eval` uses by default, so every command gives one
/// verdict for one completion) and the consistency pass's verdict, which counts only for a
/// correct answer.
pub fn answer_rewards(
    completion: &str,
    gold: &str,
    choices: &[String],
    consistent: Option<bool>,
) -> Rewards {
    let s = score(completion, gold, choices, Extraction::Strict);
    Rewards {
        format: s.format,
        accuracy: s.accuracy,
        consistency: consistent.map(|c| f64::from(u8::from(c && s.accuracy >= 1.0))),
    }
}

/// The answer a completion gives, read strictly (the `<answer>` block only): an option letter
/// when the question lists options, else the number the answer states, written in its shortest
/// exact form (`3`, `2.5`) so equal values compare equal as text. `None` when it gives none.
pub fn read_answer(completion: &str, choices: &[String]) -> Option<String> {
    let answer = parse_completion(completion).answer?;
    if choices.is_empty() {
        first_number(&answer)
            .filter(|x| x.is_finite())
            .map(|x| format!("{x}"))
    } else {
        choice_letter(&answer, choices).map(|c| c.to_string())
    }
}

/// A pseudo-label from the votes of one group of completions (test-time RL's majority vote).
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    /// The most frequent answer; `None` when no completion gave one or the top is tied.
    pub winner: Option<String>,
    /// The winner's votes over all completions of the group, abstentions included (0 when none).
    pub share: f64,
}

impl Vote {
    /// The label the vote gives when its share reaches `min_share`.
    pub fn label(&self, min_share: f64) -> Option<&str> {
        self.winner.as_deref().filter(|_| self.share >= min_share)
    }
}

/// Counts the answers of a group (`None` = the completion gave no readable answer). A tie at
/// the top gives no winner: an arbitrary pick would be a coin toss presented as a label.
pub fn majority_vote(answers: &[Option<String>]) -> Vote {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for a in answers.iter().flatten() {
        match counts.iter_mut().find(|(k, _)| *k == a.as_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((a.as_str(), 1)),
        }
    }
    let top = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
    let mut at_top = counts.iter().filter(|&&(_, n)| n == top);
    let winner = match (at_top.next(), at_top.next()) {
        (Some(&(k, _)), None) => Some(k.to_string()),
        _ => None,
    };
    Vote {
        share: if winner.is_some() {
            top as f64 / answers.len().max(1) as f64
        } else {
            0.0
        },
        winner,
    }
}

/// The rewards of a completion whose question has no label (nobody gave one and the group's
/// vote did not reach its threshold): format as always, accuracy 0 for every completion (so it
/// moves no advantage), and, with a judge, consistency between the think and the completion's
/// *own* answer — the one check that needs no truth.
pub fn unlabelled_rewards(
    completion: &str,
    choices: &[String],
    question: &str,
    judge: Option<&dyn ConsistencyJudge>,
) -> Result<Rewards, String> {
    let parsed = parse_completion(completion);
    let own = parsed
        .answer
        .as_deref()
        .and_then(|a| choice_letter(a, choices));
    let consistency = match judge {
        None => None,
        Some(_) if choices.is_empty() => None,
        Some(j) => match (own, parsed.think.as_deref()) {
            (Some(c), Some(think)) => {
                let reply = j
                    .reply(question, think)
                    .map_err(|e| format!("consistency judge {}: {e}", j.name()))?;
                let implied = reference_normalize(&reply);
                Some(f64::from(u8::from(
                    implied.len() == 1 && implied.starts_with(c),
                )))
            }
            _ => Some(0.0),
        },
    };
    Ok(Rewards {
        format: f64::from(u8::from(parsed.format_ok)),
        accuracy: 0.0,
        consistency,
    })
}

/// Decides which option a think text implies, without seeing the answer (spec §4.3).
pub trait ConsistencyJudge {
    /// The judge's name, for logs and reports.
    fn name(&self) -> String;
    /// The judge's raw reply to `question` (spec §4.3 step 3's question part) and `think`.
    fn reply(&self, question: &str, think: &str) -> Result<String, String>;
}

/// The whole reward of one completion. The judge is consulted only when the answer is a
/// correct option and the think text is non-empty (the method's gating); free-form answers get
/// no consistency (`None`). A failing judge is an error.
pub fn rewards(
    completion: &str,
    gold: &str,
    choices: &[String],
    question: &str,
    mode: Extraction,
    judge: Option<&dyn ConsistencyJudge>,
) -> Result<(Rewards, Scored), String> {
    let s = score(completion, gold, choices, mode);
    let consistency = match judge {
        None => None,
        Some(_) if gold.trim().parse::<f64>().is_ok() => None,
        Some(_) if s.accuracy < 1.0 || s.think.is_none() => Some(0.0),
        Some(j) => {
            let think = s.think.as_deref().unwrap_or_default();
            let reply = j
                .reply(question, think)
                .map_err(|e| format!("consistency judge {}: {e}", j.name()))?;
            let implied = reference_normalize(&reply);
            let agrees = implied.len() == 1
                && s.choice
                    .is_some_and(|c| implied.starts_with(c.to_ascii_uppercase()));
            Some(f64::from(u8::from(agrees)))
        }
    };
    Ok((
        Rewards {
            format: s.format,
            accuracy: s.accuracy,
            consistency,
        },
        s,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|a| a.map(str::to_string)).collect()
    }

    #[test]
    fn the_vote_counts_abstentions_and_refuses_ties() {
        let v = majority_vote(&votes(&[Some("B"), Some("B"), None, Some("A")]));
        assert_eq!(v.winner.as_deref(), Some("B"));
        assert!((v.share - 0.5).abs() < 1e-12);
        assert_eq!(v.label(0.5), Some("B"));
        assert_eq!(v.label(0.6), None);
        let tie = majority_vote(&votes(&[Some("A"), Some("B"), None]));
        assert_eq!(tie.winner, None);
        assert_eq!(tie.label(0.0), None);
        assert_eq!(majority_vote(&votes(&[None, None])).winner, None);
        assert_eq!(majority_vote(&[]).winner, None);
    }

    #[test]
    fn answers_are_read_strictly_as_letters_or_numbers() {
        let ch = vec!["left".to_string(), "right".to_string()];
        assert_eq!(
            read_answer("<think>x</think><answer>right</answer>", &ch).as_deref(),
            Some("B")
        );
        // The think text is not read; no answer block, no answer.
        assert_eq!(read_answer("<think>A</think>", &ch), None);
        assert_eq!(
            read_answer("<think>x</think><answer>about 3.0 m</answer>", &[]).as_deref(),
            Some("3")
        );
        assert_eq!(read_answer("<answer>none</answer>", &[]), None);
    }

    #[test]
    fn unlabelled_rewards_judge_the_completion_against_itself() {
        let ch = vec!["left".to_string(), "right".to_string()];
        let c = "<think>it is on the right</think><answer>B</answer>";
        let r = unlabelled_rewards(c, &ch, "Question: q", Some(&Says("B"))).unwrap();
        assert_eq!((r.format, r.accuracy, r.consistency), (1.0, 0.0, Some(1.0)));
        let r = unlabelled_rewards(c, &ch, "Question: q", Some(&Says("A"))).unwrap();
        assert_eq!(r.consistency, Some(0.0));
        let r =
            unlabelled_rewards("<answer>B</answer>", &ch, "Question: q", Some(&Says("B"))).unwrap();
        assert_eq!((r.format, r.consistency), (0.0, Some(0.0)));
        assert_eq!(
            unlabelled_rewards(c, &ch, "Question: q", None)
                .unwrap()
                .consistency,
            None
        );
    }

    #[test]
    fn reference_normaliser_reproduces_the_spec_quirks() {
        // "answer X" anywhere, even inside the think text, wins over the answer block.
        assert_eq!(
            reference_normalize(
                "<think>I will answer based on the frames</think><answer>C</answer>"
            ),
            "B"
        );
        // "e.g." in the think text reads as E (rule 3 outranks the bare letter).
        assert_eq!(
            reference_normalize("<think>objects, e.g. a door</think><answer>C</answer>"),
            "E"
        );
        // "option B. is wrong" before a bare answer letter gives B.
        assert_eq!(
            reference_normalize("<think>option B. is wrong</think><answer>C</answer>"),
            "B"
        );
        // "C." inside the answer is the last dot match.
        assert_eq!(
            reference_normalize("<think>option B. is wrong</think><answer>C. back</answer>"),
            "C"
        );
        // No letter at all: the upper-cased text, which equals no letter.
        assert_eq!(
            reference_normalize("<answer>Back</answer>"),
            "<ANSWER>BACK</ANSWER>"
        );
        // Boxed beats everything, last match; lower case letters count.
        assert_eq!(reference_normalize("$\\boxed{a}$ then $\\boxed{d}$"), "D");
        assert_eq!(reference_normalize("c"), "C");
        // findall does not overlap: the space after A is consumed, so B is never seen.
        assert_eq!(reference_normalize("A B"), "A");
        assert_eq!(reference_normalize("  b  "), "B");
    }

    #[test]
    fn strict_reads_only_the_answer_block() {
        let c = "<think>I will answer based on e.g. the door</think><answer>C</answer>";
        let s = score(c, "C", &[], Extraction::Strict);
        assert_eq!((s.format, s.accuracy, s.choice), (1.0, 1.0, Some('C')));
        let r = score(c, "C", &[], Extraction::Reference);
        assert_eq!(r.accuracy, 0.0, "the reference reads B from the think text");
        let none = score("C", "C", &[], Extraction::Strict);
        assert_eq!((none.format, none.accuracy), (0.0, 0.0));
        assert_eq!(score("C", "C", &[], Extraction::Reference).accuracy, 1.0);
        let opts = vec!["the door".to_string(), "the sofa".to_string()];
        let t = score(
            "<think>x</think><answer>the sofa</answer>",
            "B",
            &opts,
            Extraction::Strict,
        );
        assert_eq!((t.accuracy, t.choice), (1.0, Some('B')));
    }

    #[test]
    fn numbers_are_scored_by_mean_relative_accuracy() {
        let s = score(
            "<think>x</think><answer>about 4 m</answer>",
            "4",
            &[],
            Extraction::Strict,
        );
        assert_eq!(s.accuracy, 1.0);
        let s = score(
            "<think>x</think><answer>5</answer>",
            "10",
            &[],
            Extraction::Strict,
        );
        assert_eq!(s.accuracy, 0.0);
        let s = score("<answer>7.6</answer>", "10", &[], Extraction::Strict);
        assert!((s.accuracy - 0.6).abs() < 1e-9, "{s:?}");
        assert_eq!(score("many", "10", &[], Extraction::Strict).accuracy, 0.0);
        assert_eq!(
            score("I see 10", "10", &[], Extraction::Reference).accuracy,
            1.0
        );
        assert_eq!(first_number("x 2.5 m."), Some(2.5));
        assert_eq!(first_number("7."), Some(7.0));
    }

    #[test]
    fn answers_read_by_the_runtime() {
        let ch: Vec<String> = ["left", "right"].iter().map(|s| s.to_string()).collect();
        let ok = "<think>west of me</think><answer>B</answer>";
        let r = answer_rewards(ok, "B", &ch, Some(true));
        assert_eq!((r.format, r.accuracy, r.consistency), (1.0, 1.0, Some(1.0)));
        let r = answer_rewards("<think>x</think> <answer>A</answer>", "B", &ch, Some(true));
        assert_eq!((r.format, r.accuracy, r.consistency), (1.0, 0.0, Some(0.0)));
        // No answer block: wrong, whatever the text says (the strict rule), as eval scores it.
        let bare = "The answer is B, the right side";
        let r = answer_rewards(bare, "B", &ch, None);
        assert_eq!((r.format, r.accuracy), (0.0, 0.0));
        assert_eq!(
            r.accuracy,
            score(bare, "B", &ch, Extraction::Strict).accuracy
        );
        // Numbers: mean relative accuracy of the answer block's first number only.
        let num = "<think>four chairs</think><answer>about 4 m</answer>";
        assert_eq!(answer_rewards(num, "4", &[], None).accuracy, 1.0);
        assert!(answer_rewards("<answer>I count 5.</answer>", "10", &[], None).accuracy < 0.2);
        assert_eq!(
            answer_rewards("<answer>many</answer>", "10", &[], None).accuracy,
            0.0
        );
        assert_eq!(answer_rewards("I count 10", "10", &[], None).accuracy, 0.0);
    }

    #[test]
    fn mra_matches_vsi_bench() {
        assert_eq!(mean_relative_accuracy(10.0, 10.0), 1.0);
        assert_eq!(mean_relative_accuracy(10.4, 10.0), 1.0);
        assert!((mean_relative_accuracy(10.6, 10.0) - 0.9).abs() < 1e-9);
        assert_eq!(mean_relative_accuracy(20.0, 10.0), 0.0);
        assert!((mean_relative_accuracy(7.6, 10.0) - 0.6).abs() < 1e-9);
        assert_eq!(mean_relative_accuracy(f64::NAN, 1.0), 0.0);
        assert_eq!(mean_relative_accuracy(0.0, 0.0), 1.0);
    }

    struct Says(&'static str);
    impl ConsistencyJudge for Says {
        fn name(&self) -> String {
            "says".into()
        }
        fn reply(&self, q: &str, think: &str) -> Result<String, String> {
            assert!(q.starts_with("Question:"));
            assert!(!think.is_empty());
            Ok(self.0.into())
        }
    }
    struct Down;
    impl ConsistencyJudge for Down {
        fn name(&self) -> String {
            "down".into()
        }
        fn reply(&self, _: &str, _: &str) -> Result<String, String> {
            Err("connection refused".into())
        }
    }

    #[test]
    fn consistency_is_gated_on_accuracy_and_never_falls_back() {
        let good = "<think>the door is left</think><answer>B</answer>";
        let q = "Question: where?";
        let (r, _) = rewards(good, "B", &[], q, Extraction::Strict, Some(&Says("B"))).unwrap();
        assert_eq!(r.consistency, Some(1.0));
        assert!((RewardWeights::default().total(&r) - 1.0).abs() < 1e-12);
        let (r, _) = rewards(good, "B", &[], q, Extraction::Strict, Some(&Says("c."))).unwrap();
        assert_eq!(r.consistency, Some(0.0));
        // Wrong answers are not judged (Down would error if called).
        let (r, _) = rewards(good, "A", &[], q, Extraction::Strict, Some(&Down)).unwrap();
        assert_eq!(r.consistency, Some(0.0));
        // A judge that fails on a judged completion is an error naming it.
        let e = rewards(good, "B", &[], q, Extraction::Strict, Some(&Down)).unwrap_err();
        assert!(e.contains("down") && e.contains("refused"), "{e}");
        let (r, _) = rewards(good, "B", &[], q, Extraction::Strict, None).unwrap();
        assert_eq!(r.consistency, None);
        let total = RewardWeights::default().total(&r);
        assert!((total - 0.8).abs() < 1e-12, "{total}");
    }

    #[test]
    fn schedules_pick_the_stage_in_force() {
        let s = Schedule::staged(1200);
        assert_eq!(s.at(0).format, 0.7);
        assert_eq!(s.at(199).format, 0.7);
        assert_eq!(s.at(200).accuracy, 0.9);
        assert_eq!(s.at(400), RewardWeights::default());
        assert_eq!(s.at(10_000), RewardWeights::default());
        let w = RewardWeights::default();
        assert!(Schedule::new(vec![]).is_err());
        let late = Stage {
            from_step: 5,
            weights: w,
        };
        assert!(Schedule::new(vec![late]).unwrap_err().contains("step 0"));
        let first = Stage {
            from_step: 0,
            weights: w,
        };
        let e = Schedule::new(vec![first, first]).unwrap_err();
        assert!(e.contains("stage 2"), "{e}");
        let zero = RewardWeights {
            accuracy: 0.0,
            format: 0.0,
            consistency: 0.0,
        };
        assert!(zero.validate().is_err());
        assert!(
            RewardWeights {
                accuracy: -1.0,
                ..w
            }
            .validate()
            .is_err()
        );
    }
}
