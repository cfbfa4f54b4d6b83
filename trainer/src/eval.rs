//! Evaluation: accuracy per category and overall (sample-weighted, as the paper reports it),
//! format and consistency rates, resumable through a per-example results file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use burn::tensor::backend::Backend;
use embodied_r_reasoner::reward::{self, ConsistencyJudge, Extraction};
use embodied_r_reasoner::{GenerationConfig, LanguageModel, SamplingConfig};
use serde::{Deserialize, Serialize};

use crate::data::Example;
use crate::error::{Result, TrainError};
use crate::train::{Jsonl, fit_prompt};

/// One example's outcome (a line of the results file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Example id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Accuracy (0/1, or mean relative accuracy for numbers).
    pub accuracy: f64,
    /// Spec §4.1 format, 0 or 1.
    pub format: f64,
    /// Consistency, for correct option answers when checked (a correct answer without a think
    /// text counts as inconsistent, as in the reward).
    pub consistency: Option<f64>,
    /// The option letter read, if any.
    pub choice: Option<char>,
    /// The gold answer.
    pub solution: String,
    /// The completion.
    pub completion: String,
}

/// Rates of one category (or of everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Examples.
    pub n: usize,
    /// Mean accuracy.
    pub accuracy: f64,
    /// Share with the right format.
    pub format: f64,
    /// Share judged consistent, over the judged ones.
    pub consistency: Option<f64>,
    /// How many were judged.
    pub judged: usize,
}

/// The report `eval --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model evaluated.
    pub model: String,
    /// Answer extraction used.
    pub extraction: Extraction,
    /// Sample-weighted over all examples.
    pub overall: Rates,
    /// Unweighted mean of the category accuracies (the paper's tables show both kinds).
    pub category_mean_accuracy: f64,
    /// Per category.
    pub categories: BTreeMap<String, Rates>,
}

/// Aggregates results.
pub fn report(model: &str, extraction: Extraction, items: &[ItemResult]) -> EvalReport {
    fn rates<'a>(it: impl Iterator<Item = &'a ItemResult>) -> Rates {
        let mut r = Rates::default();
        let (mut acc, mut fmt, mut cons) = (0.0, 0.0, 0.0);
        for i in it {
            r.n += 1;
            acc += i.accuracy;
            fmt += i.format;
            if let Some(c) = i.consistency {
                r.judged += 1;
                cons += c;
            }
        }
        let n = r.n.max(1) as f64;
        r.accuracy = acc / n;
        r.format = fmt / n;
        r.consistency = (r.judged > 0).then(|| cons / r.judged as f64);
        r
    }
    let mut cats: BTreeMap<String, Vec<&ItemResult>> = BTreeMap::new();
    for i in items {
        cats.entry(i.category.clone()).or_default().push(i);
    }
    let categories: BTreeMap<String, Rates> = cats
        .into_iter()
        .map(|(k, v)| (k, rates(v.into_iter())))
        .collect();
    let category_mean_accuracy = if categories.is_empty() {
        0.0
    } else {
        categories.values().map(|r| r.accuracy).sum::<f64>() / categories.len() as f64
    };
    EvalReport {
        model: model.to_string(),
        extraction,
        overall: rates(items.iter()),
        category_mean_accuracy,
        categories,
    }
}

/// Results already in `path` (a previous, interrupted run); a torn last line is ignored.
pub fn read_results(path: &Path) -> Result<Vec<ItemResult>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str::<ItemResult>(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                tracing::warn!(file = %path.display(), "ignoring a torn last line");
            }
            Err(e) => {
                return Err(TrainError::Data(format!(
                    "{} line {}: not an evaluation result: {e}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

/// Settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Completion budget.
    pub max_tokens: usize,
    /// Longest prompt (video text trimmed beyond it).
    pub max_prompt_tokens: usize,
    /// Answer extraction.
    pub extraction: Extraction,
    /// Text after the generation prompt, scored with the completion (as `grpo.response_prefix`).
    pub response_prefix: String,
}

/// Who writes the completion an example is scored on: the LM, or a baseline.
pub trait Answerer {
    /// The completion for `ex`, as the reward code reads it (any response prefix included).
    fn complete(&self, ex: &Example) -> Result<String>;
}

/// The LM, greedy, stopped at `</answer>`.
pub struct LmAnswerer<'a, B: Backend> {
    lm: &'a LanguageModel<B>,
    settings: &'a EvalSettings,
    gen_cfg: GenerationConfig,
}

impl<'a, B: Backend> LmAnswerer<'a, B> {
    /// Greedy decoding of `lm` with `settings`' budget and prefix.
    pub fn new(lm: &'a LanguageModel<B>, settings: &'a EvalSettings) -> Self {
        let gen_cfg = GenerationConfig {
            stop: vec!["</answer>".into()],
            ..GenerationConfig::greedy(settings.max_tokens)
        };
        Self {
            lm,
            settings,
            gen_cfg,
        }
    }
}

impl<B: Backend> LmAnswerer<'_, B> {
    /// Samples at `sampling` instead of greedy decoding (for [`crate::self_traces`]; each
    /// example and attempt gets its own seed, derived from `sampling.seed`).
    pub fn sampling(mut self, sampling: SamplingConfig) -> Self {
        self.gen_cfg.sampling = sampling;
        self
    }

    fn generate(&self, ex: &Example, cfg: &GenerationConfig) -> Result<String> {
        let (ids, _) = fit_prompt(
            self.lm,
            ex,
            self.settings.max_prompt_tokens,
            &self.settings.response_prefix,
        )?;
        let out = self
            .lm
            .generate_ids(&ids, cfg, |_| std::ops::ControlFlow::Continue(()))?;
        // The stop string is cut from the text; put it back so the format rule sees it.
        let mut text = format!("{}{}", self.settings.response_prefix, out.text);
        if out.finish == embodied_r_reasoner::FinishReason::Stop {
            text.push_str("</answer>");
        }
        Ok(text)
    }
}

impl<B: Backend> Answerer for LmAnswerer<'_, B> {
    fn complete(&self, ex: &Example) -> Result<String> {
        self.generate(ex, &self.gen_cfg)
    }
}

impl<B: Backend> crate::self_traces::Sampler for LmAnswerer<'_, B> {
    fn sample(&self, ex: &Example, attempt: u64) -> Result<String> {
        // FNV-1a of the id: the same question and attempt draw the same sample on a rerun.
        let id = ex.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut cfg = self.gen_cfg.clone();
        cfg.sampling.seed = cfg.sampling.seed ^ id ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.generate(ex, &cfg)
    }
}

/// The letter-prior baseline: for each category and number of options, the letter most often
/// correct in the training rows it was fitted on (ties: the earliest letter); for numeric
/// questions, the median training answer of the category. It never reads the question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriorAnswerer {
    letters: BTreeMap<(String, usize), char>,
    numbers: BTreeMap<String, f64>,
}

impl PriorAnswerer {
    /// Fits the prior on `train` (never on the rows it will be scored on).
    pub fn fit(train: &[Example]) -> Self {
        let mut counts: BTreeMap<(String, usize), BTreeMap<char, usize>> = BTreeMap::new();
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for ex in train {
            if ex.choices.is_empty() {
                if let Some(Ok(v)) = ex.solution.as_deref().map(|s| s.trim().parse::<f64>())
                    && v.is_finite()
                {
                    values.entry(ex.category.clone()).or_default().push(v);
                }
            } else if let Some(c) = ex.solution.as_deref().and_then(|s| s.trim().chars().next()) {
                *counts
                    .entry((ex.category.clone(), ex.choices.len()))
                    .or_default()
                    .entry(c.to_ascii_uppercase())
                    .or_default() += 1;
            }
        }
        let letters = counts
            .into_iter()
            .filter_map(|(k, m)| {
                // Highest count; among equals the earliest letter.
                let best = m.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
                Some((k, *best.0))
            })
            .collect();
        let numbers = values
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by(f64::total_cmp);
                (k, v[v.len() / 2])
            })
            .collect();
        Self { letters, numbers }
    }

    /// The prior's answer for `ex`.
    pub fn answer(&self, ex: &Example) -> String {
        if ex.choices.is_empty() {
            let v = self.numbers.get(&ex.category).copied().unwrap_or(0.0);
            format!("{v}")
        } else {
            self.letters
                .get(&(ex.category.clone(), ex.choices.len()))
                .copied()
                .unwrap_or('A')
                .to_string()
        }
    }
}

impl Answerer for PriorAnswerer {
    fn complete(&self, ex: &Example) -> Result<String> {
        let a = self.answer(ex);
        Ok(format!(
            "<think>The most frequent answer to {} questions like this in the training data is {a}.</think><answer>{a}</answer>",
            ex.category
        ))
    }
}

/// Evaluates `examples` with `answerer`, appending each result to `results` (skipping ids
/// already there) and calling `progress(done, total)` after each.
pub fn evaluate(
    answerer: &dyn Answerer,
    examples: &[Example],
    extraction: Extraction,
    judge: Option<&dyn ConsistencyJudge>,
    results: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<ItemResult>> {
    let mut done = read_results(results)?;
    // Rewrite without a torn tail before appending.
    std::fs::File::create(results).map_err(|e| TrainError::io(results, e))?;
    let mut file = Jsonl::append(results)?;
    for r in &done {
        file.push(r)?;
    }
    let seen: HashSet<String> = done.iter().map(|r| r.id.clone()).collect();
    let total = examples.len();
    progress(done.len().min(total), total);
    for ex in examples {
        if seen.contains(&ex.id) {
            continue;
        }
        let text = answerer.complete(ex)?;
        let gold = ex.gold()?;
        let (r, scored) =
            reward::rewards(&text, gold, &ex.choices, &ex.question(), extraction, judge)
                .map_err(TrainError::Judge)?;
        let item = ItemResult {
            id: ex.id.clone(),
            category: ex.category.clone(),
            accuracy: r.accuracy,
            format: r.format,
            // Rated over correct answers only: the judge is consulted only for those.
            consistency: r.consistency.filter(|_| r.accuracy >= 1.0),
            choice: scored.choice,
            solution: gold.to_string(),
            completion: text,
        };
        file.push(&item)?;
        done.push(item);
        progress(done.len(), total);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, cat: &str, acc: f64, cons: Option<f64>) -> ItemResult {
        ItemResult {
            id: id.into(),
            category: cat.into(),
            accuracy: acc,
            format: 1.0,
            consistency: cons,
            choice: None,
            solution: "A".into(),
            completion: String::new(),
        }
    }

    #[test]
    fn overall_is_sample_weighted_and_categories_are_separate() {
        let items = vec![
            item("1", "LP", 1.0, Some(1.0)),
            item("2", "LP", 1.0, Some(0.0)),
            item("3", "LP", 0.0, None),
            item("4", "C", 0.0, None),
        ];
        let r = report("m", Extraction::Strict, &items);
        assert!((r.overall.accuracy - 0.5).abs() < 1e-12);
        assert!((r.categories["LP"].accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.categories["C"].accuracy, 0.0);
        assert!((r.category_mean_accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.overall.consistency, Some(0.5));
        assert_eq!(r.categories["C"].consistency, None);
    }

    fn ex(cat: &str, n: usize, solution: &str) -> Example {
        Example {
            id: format!("{cat}-{solution}"),
            category: cat.into(),
            system: String::new(),
            user: String::new(),
            solution: Some(solution.into()),
            choices: (0..n).map(|i| format!("o{i}")).collect(),
            target: None,
            withheld: None,
        }
    }

    #[test]
    fn the_prior_is_the_majority_per_category_and_option_count() {
        let train = vec![
            ex("LP", 4, "B"),
            ex("LP", 4, "B"),
            ex("LP", 4, "C"),
            ex("LP", 3, "C"),
            ex("LP", 3, "A"),
            ex("count", 0, "3"),
            ex("count", 0, "5"),
            ex("count", 0, "9"),
        ];
        let p = PriorAnswerer::fit(&train);
        assert_eq!(p.answer(&ex("LP", 4, "?")), "B");
        // A tie goes to the earliest letter.
        assert_eq!(p.answer(&ex("LP", 3, "?")), "A");
        // Unseen shapes fall back to A; numbers to the category's median.
        assert_eq!(p.answer(&ex("LP", 5, "?")), "A");
        assert_eq!(p.answer(&ex("count", 0, "?")), "5");
        let c = p.complete(&ex("LP", 4, "?")).expect("complete");
        assert!(c.ends_with("<answer>B</answer>"), "{c}");
    }

    #[test]
    fn results_survive_a_torn_tail_and_name_damage() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("r.jsonl");
        let a = serde_json::to_string(&item("1", "LP", 1.0, None)).expect("json");
        std::fs::write(&p, format!("{a}\n{{\"id\": \"2\", \"categ")).expect("write");
        assert_eq!(read_results(&p).expect("read").len(), 1);
        std::fs::write(&p, format!("garbage\n{a}\n")).expect("write");
        let e = read_results(&p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
