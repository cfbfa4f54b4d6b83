//! Gold answers that people give to logged episodes after the fact: the label file of an
//! episode log, its validation against the episode's question, and how labels join the records.
//!
//! A robot in the field logs questions nobody knew the answer to. An operator labels them later
//! (`embodied-r episodes label`, or `ask --truth` at asking time, which the runtime records as
//! the episode's own `ground_truth`). Labels never rewrite the recorded segments: they are
//! appended, one JSON object per line, to `labels.jsonl` in the log directory, with who gave
//! them and when. The newest label of an episode is its truth; older ones stay as its history.
//! [`crate::episode::read_log`] joins them, so `episodes ls/export` and the trainer see one
//! truth per episode and say where it came from.
//!
//! This module owns the label file's format and the rule for a valid label; it must not know
//! about the command line or the runtime.

use crate::episode::{EpisodeError, EpisodeRecord, ReadWarning};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The label file's name inside a log directory.
pub const LABELS_FILE: &str = "labels.jsonl";

/// Schema version written into every label; readers skip newer ones with a warning.
pub const LABEL_SCHEMA: u32 = 1;

/// One person's answer to one logged episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// [`LABEL_SCHEMA`] at writing.
    pub schema: u32,
    /// The episode's full id.
    pub episode: String,
    /// The answer in the form the rewards read: an option letter (`"B"`) or a number (`"3.5"`).
    pub answer: String,
    /// Who gave it (`--by`, else the user name).
    pub by: String,
    /// When, in seconds since the Unix epoch.
    pub time_unix: f64,
    /// How it arrived: `"cli"`, or `"file:<name>"` for a bulk import.
    pub source: String,
}

/// Why an answer cannot label an episode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// A multiple-choice episode labelled with something that is not one of its options.
    #[error(
        "{id}: `{answer}` is not one of its {n} options; expected a letter {first}–{last} or one option's text ({options})"
    )]
    NotAnOption {
        /// The episode.
        id: String,
        /// What was given.
        answer: String,
        /// How many options it has.
        n: usize,
        /// `A`.
        first: char,
        /// The last option's letter.
        last: char,
        /// The options, `A. …; B. …`.
        options: String,
    },
    /// An episode without options labelled with something that is not a number. Such a
    /// question is numeric (a count, a distance) or free-form; a free-form answer cannot be
    /// scored by the rewards, so it cannot be a label.
    #[error(
        "{id}: `{answer}` is not a number; this question has no options, so its label must be a number (a count or a distance). A free-form question's answer cannot be scored and cannot be labelled"
    )]
    NotANumber {
        /// The episode.
        id: String,
        /// What was given.
        answer: String,
    },
    /// The episode failed, so it has no prompt to learn from.
    #[error(
        "episode {id} failed ({error}); it holds no prompt to train on, so it cannot be labelled"
    )]
    Failed {
        /// The episode.
        id: String,
        /// Its recorded error.
        error: String,
    },
}

/// The canonical form of `answer` as the truth of `r`: an upper-case option letter for a
/// multiple-choice episode (a letter in either case, `B.`, `(B)`, or one option's text), or a
/// finite number for an episode without options. Anything else is a [`LabelError`].
pub fn normalize_answer(r: &EpisodeRecord, answer: &str) -> Result<String, LabelError> {
    if let Some(e) = &r.error {
        return Err(LabelError::Failed {
            id: r.id.clone(),
            error: e.clone(),
        });
    }
    normalize_truth(&format!("episode {}", r.id), &r.choices, answer)
}

/// [`normalize_answer`] for a question not yet answered (an ask that carries its truth):
/// `choices` are its options, `id` names it in the error (e.g. `"ground_truth"`).
pub fn normalize_truth(id: &str, choices: &[String], answer: &str) -> Result<String, LabelError> {
    let a = answer.trim();
    if choices.is_empty() {
        return match a.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(a.to_string()),
            _ => Err(LabelError::NotANumber {
                id: id.to_string(),
                answer: a.to_string(),
            }),
        };
    }
    let n = choices.len().min(crate::prompt::LETTERS.len());
    let letters = &crate::prompt::LETTERS[..n];
    let bare = a
        .trim_start_matches('(')
        .trim_end_matches(['.', ')'])
        .trim();
    let mut chars = bare.chars();
    let lone = match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c.to_ascii_uppercase()),
        _ => None,
    };
    let letter = match lone {
        Some(c) => letters.contains(&c).then_some(c),
        // Only one option's whole text, never a letter hidden in a longer answer.
        None => {
            let hits: Vec<usize> = (0..n)
                .filter(|&i| option_text_matches(&choices[i], a))
                .collect();
            match hits[..] {
                [i] => Some(letters[i]),
                _ => None,
            }
        }
    };
    letter
        .map(|c| c.to_string())
        .ok_or_else(|| LabelError::NotAnOption {
            id: id.to_string(),
            answer: a.to_string(),
            n,
            first: letters[0],
            last: letters[n - 1],
            options: choices
                .iter()
                .zip(letters)
                .map(|(t, l)| format!("{l}. {t}"))
                .collect::<Vec<_>>()
                .join("; "),
        })
}

/// Whether `given` states the option's text (case, spacing and a trailing period aside; an
/// option written as `B. the door` also matches `the door`).
fn option_text_matches(option: &str, given: &str) -> bool {
    let norm = |t: &str| {
        t.trim()
            .trim_end_matches('.')
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (o, g) = (norm(option), norm(given));
    if o == g {
        return true;
    }
    // "B. the door" / "B) the door".
    o.get(2..)
        .filter(|_| {
            o.as_bytes()
                .get(1)
                .is_some_and(|b| *b == b'.' || *b == b')')
        })
        .is_some_and(|rest| rest.trim() == g)
}

/// The labels of a log, read and grouped.
#[derive(Debug, Default, Clone)]
pub struct Labels {
    /// Each labelled episode's labels, oldest first; the last is its truth.
    pub by_episode: BTreeMap<String, Vec<Label>>,
    /// Damaged or unreadable lines, with where they are.
    pub warnings: Vec<ReadWarning>,
}

impl Labels {
    /// The label in force for `episode`.
    pub fn current(&self, episode: &str) -> Option<&Label> {
        self.by_episode.get(episode).and_then(|v| v.last())
    }
}

/// Reads `DIR/labels.jsonl` (an absent file is no labels). A damaged line is reported and
/// skipped, not fatal: one bad line must not hide the other labels; a last line without its
/// newline is a torn write and is reported and ignored.
pub fn read_labels(dir: &Path) -> Result<Labels, EpisodeError> {
    let path = dir.join(LABELS_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Labels::default()),
        Err(source) => return Err(EpisodeError::Io { path, source }),
    };
    let mut out = Labels::default();
    let mut offset = 0u64;
    for chunk in text.split_inclusive(|&b| b == b'\n') {
        let warn = |what: String| ReadWarning {
            file: path.clone(),
            offset,
            what,
        };
        let whole = chunk.last() == Some(&b'\n');
        let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
        if !body.iter().all(u8::is_ascii_whitespace) {
            if !whole {
                out.warnings.push(warn(format!(
                    "torn label at the end ({} bytes without a newline): the writer stopped mid-line; it is ignored",
                    chunk.len()
                )));
            } else {
                match serde_json::from_slice::<Label>(body) {
                    Ok(l) if l.schema > LABEL_SCHEMA => out.warnings.push(warn(format!(
                        "label schema {} is newer than this reader's {LABEL_SCHEMA}; skipped",
                        l.schema
                    ))),
                    Ok(l) => out.by_episode.entry(l.episode.clone()).or_default().push(l),
                    Err(e) => out
                        .warnings
                        .push(warn(format!("damaged label ({e}); skipped"))),
                }
            }
        }
        offset += chunk.len() as u64;
    }
    Ok(out)
}

/// Appends `labels` to `DIR/labels.jsonl` in one write, then syncs the file and the directory,
/// so a label that was reported written survives a crash. A torn last line left by an earlier
/// interrupted writer is closed with a newline first, so it cannot swallow the new labels.
pub fn append_labels(dir: &Path, labels: &[Label]) -> Result<(), EpisodeError> {
    let path = dir.join(LABELS_FILE);
    let io = |p: &Path| {
        let p: PathBuf = p.to_path_buf();
        move |source| EpisodeError::Io { path: p, source }
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    let len = f.metadata().map_err(io(&path))?.len();
    let mut buf = Vec::new();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1)).map_err(io(&path))?;
        f.read_exact(&mut last).map_err(io(&path))?;
        if last[0] != b'\n' {
            buf.push(b'\n');
        }
    }
    for l in labels {
        serde_json::to_writer(&mut buf, l).map_err(|e| EpisodeError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        buf.push(b'\n');
    }
    f.write_all(&buf).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Where an episode's truth comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthSource {
    /// Recorded by the runtime with the question (the asker knew it, e.g. the simulator).
    Recorded,
    /// Given afterwards by a person ([`Label`]).
    Label,
}

/// Sets each record's `ground_truth` to its label in force, where it has one (a label
/// overrides a recorded truth: it is the later, deliberate word). Returns how many labels name
/// no episode of the log (e.g. their segment was rotated away).
pub fn apply_labels(records: &mut [EpisodeRecord], labels: &Labels) -> usize {
    let mut used = 0;
    for r in records.iter_mut() {
        if let Some(l) = labels.current(&r.id) {
            r.ground_truth = Some(l.answer.clone());
            used += 1;
        }
    }
    labels.by_episode.len() - used.min(labels.by_episode.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, choices: &[&str]) -> EpisodeRecord {
        EpisodeRecord {
            choices: choices.iter().map(|s| s.to_string()).collect(),
            ..EpisodeRecord::new(id, "r1", "Which is closest to the door?")
        }
    }

    fn label(id: &str, answer: &str, t: f64) -> Label {
        Label {
            schema: LABEL_SCHEMA,
            episode: id.into(),
            answer: answer.into(),
            by: "ann".into(),
            time_unix: t,
            source: "cli".into(),
        }
    }

    #[test]
    fn answers_are_letters_or_option_texts_or_numbers() {
        let r = rec("e1", &["chair", "table", "B. lamp", "sofa"]);
        for (given, want) in [
            ("B", "B"),
            ("b", "B"),
            (" (d) ", "D"),
            ("C.", "C"),
            ("Table", "B"),
            ("lamp", "C"),
            ("sofa.", "D"),
        ] {
            assert_eq!(normalize_answer(&r, given).as_deref(), Ok(want), "{given}");
        }
        for bad in ["E", "Z", "", "the table is B", "chairs", "AB"] {
            let e = normalize_answer(&r, bad).unwrap_err();
            assert!(matches!(e, LabelError::NotAnOption { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("A–D"), "{e}");
            assert!(e.to_string().contains("C. B. lamp"), "{e}");
        }
        let n = rec("e2", &[]);
        assert_eq!(normalize_answer(&n, " 3.5 ").as_deref(), Ok("3.5"));
        for bad in ["turn left", "B", "inf", "NaN"] {
            let e = normalize_answer(&n, bad).unwrap_err().to_string();
            assert!(e.contains("not a number") && e.contains("free-form"), "{e}");
        }
        let failed = EpisodeRecord {
            error: Some("describer_timeout: slow".into()),
            ..rec("e3", &["a", "b"])
        };
        let e = normalize_answer(&failed, "A").unwrap_err().to_string();
        assert!(
            e.contains("e3 failed") && e.contains("describer_timeout"),
            "{e}"
        );
    }

    #[test]
    fn labels_append_read_back_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_labels(dir.path()).unwrap().by_episode.is_empty());
        append_labels(dir.path(), &[label("e1", "A", 1.0), label("e2", "4", 2.0)]).unwrap();
        append_labels(dir.path(), &[label("e1", "C", 3.0)]).unwrap();
        let l = read_labels(dir.path()).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.by_episode["e1"].len(), 2, "history is kept");
        assert_eq!(l.current("e1").unwrap().answer, "C");
        let mut recs = vec![
            rec("e1", &["x", "y", "z"]),
            EpisodeRecord {
                ground_truth: Some("B".into()),
                ..rec("e0", &["x", "y"])
            },
        ];
        let orphans = apply_labels(&mut recs, &l);
        assert_eq!(recs[0].ground_truth.as_deref(), Some("C"));
        assert_eq!(
            recs[1].ground_truth.as_deref(),
            Some("B"),
            "unlabelled keeps its own"
        );
        assert_eq!(orphans, 1, "e2 names no record here");
    }

    #[test]
    fn a_torn_or_damaged_line_is_reported_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        append_labels(dir.path(), &[label("e1", "A", 1.0)]).unwrap();
        let p = dir.path().join(LABELS_FILE);
        let mut text = std::fs::read_to_string(&p).unwrap();
        let first = text.len() as u64;
        text.push_str("{\"schema\":1,oops\n");
        text.push_str("{\"schema\":1,\"episode\":\"e9\"");
        std::fs::write(&p, &text).unwrap();
        // The next append closes the torn line before writing.
        append_labels(dir.path(), &[label("e2", "B", 2.0)]).unwrap();
        let l = read_labels(dir.path()).unwrap();
        assert_eq!(l.current("e1").unwrap().answer, "A");
        assert_eq!(l.current("e2").unwrap().answer, "B");
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        assert_eq!(l.warnings[0].offset, first);
        assert!(l.warnings[0].what.contains("damaged"));
        let newer = Label {
            schema: LABEL_SCHEMA + 1,
            ..label("e3", "A", 4.0)
        };
        append_labels(dir.path(), &[newer]).unwrap();
        let l = read_labels(dir.path()).unwrap();
        assert!(l.current("e3").is_none());
        assert!(l.warnings.iter().any(|w| w.what.contains("newer")));
    }
}
