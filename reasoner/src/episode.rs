//! The episode record: everything needed to replay and re-score one question the runtime
//! answered (spec's data flow step 5), its JSONL reader that survives a torn or damaged tail,
//! and the two export formats the trainer reads (GRPO JSONL and Embodied-R JSON rows).
//!
//! The runtime (`agent`) writes records; the trainer and the CLI read them. A log is a directory
//! of segments `episodes-NNNNNN.jsonl`, one record per line, plus `frames/<episode id>/` with the
//! key frames as JPEG files, written before the record that names them, plus `labels.jsonl`
//! with the answers people gave afterwards ([`crate::labels`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Schema version written into every record; readers refuse newer ones.
pub const SCHEMA_VERSION: u32 = 1;

/// One key frame an episode used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameRef {
    /// Sequence number in its source.
    pub seq: u64,
    /// Capture time in seconds.
    pub stamp: f64,
    /// World-from-camera pose as `[x, y, z, qx, qy, qz, qw]`, when known.
    pub pose: Option<[f64; 7]>,
    /// JPEG file, relative to the log directory (absent when frames are not stored).
    pub file: Option<String>,
}

/// One key frame's description as the describer returned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptionRef {
    /// The action that led to this frame (none for the first).
    pub action: Option<String>,
    /// What is seen.
    pub view: String,
}

/// Rewards of the completion, when the ground truth is known.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewards {
    /// Spec §4.1 format reward, 0 or 1.
    pub format: f64,
    /// Accuracy: 0/1 for choices, mean relative accuracy for numbers.
    pub accuracy: f64,
    /// Logical consistency (requires accuracy), 0 or 1; `None` when not checked.
    pub consistency: Option<f64>,
}

/// An advisory navigation hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NavHintRecord {
    /// One of the ten action phrases.
    pub action: String,
    /// What the hint moves toward, when known.
    pub target: Option<String>,
    /// Why, in a few words.
    pub reason: String,
}

/// One answered (or failed) question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeRecord {
    /// [`SCHEMA_VERSION`] at writing.
    pub schema: u32,
    /// Unique id (also the frames directory's name).
    pub id: String,
    /// Robot id.
    pub robot: String,
    /// Wall-clock time of the question, seconds since the Unix epoch.
    pub time_unix: f64,
    /// The question's stem.
    pub question: String,
    /// Options (empty for free-form questions).
    pub choices: Vec<String>,
    /// Dataset category when known (e.g. from the simulator).
    #[serde(default)]
    pub category: Option<String>,
    /// The key frames used, oldest first.
    pub frames: Vec<FrameRef>,
    /// The describer's output per key frame.
    pub descriptions: Vec<DescriptionRef>,
    /// System prompt given to the LM.
    pub system: String,
    /// User message given to the LM (video text + question).
    pub user: String,
    /// The LM's raw completion.
    pub completion: String,
    /// The chosen option letter, if any.
    pub choice: Option<String>,
    /// The answer block's text.
    pub text: String,
    /// The think block's text.
    pub think: Option<String>,
    /// Spec §4.1 format.
    pub format_ok: bool,
    /// The run-time consistency check's result (`None`: not applicable or not run).
    pub consistent: Option<bool>,
    /// The reference pass's reply, when run.
    pub reference_reply: Option<String>,
    /// The navigation hint.
    pub nav_hint: Option<NavHintRecord>,
    /// The gold answer when known (letter or number).
    pub ground_truth: Option<String>,
    /// Rewards when the ground truth is known.
    pub rewards: Option<Rewards>,
    /// LM id (file name or folder).
    pub model: String,
    /// Describer label.
    pub describer: String,
    /// Sampling seed of the completion.
    pub seed: u64,
    /// Sampling temperature.
    pub temperature: f32,
    /// Token budget of the completion.
    pub max_tokens: usize,
    /// Milliseconds per stage.
    pub timings: BTreeMap<String, f64>,
    /// Set when the question failed: the error code and message.
    pub error: Option<String>,
}

impl EpisodeRecord {
    /// A record of question `id` with nothing answered yet: every other field empty, `None`
    /// or zero (the runtime fills it in stage by stage).
    pub fn new(
        id: impl Into<String>,
        robot: impl Into<String>,
        question: impl Into<String>,
    ) -> Self {
        EpisodeRecord {
            schema: SCHEMA_VERSION,
            id: id.into(),
            robot: robot.into(),
            time_unix: 0.0,
            question: question.into(),
            choices: vec![],
            category: None,
            frames: vec![],
            descriptions: vec![],
            system: String::new(),
            user: String::new(),
            completion: String::new(),
            choice: None,
            text: String::new(),
            think: None,
            format_ok: false,
            consistent: None,
            reference_reply: None,
            nav_hint: None,
            ground_truth: None,
            rewards: None,
            model: String::new(),
            describer: String::new(),
            seed: 0,
            temperature: 0.0,
            max_tokens: 0,
            timings: BTreeMap::new(),
            error: None,
        }
    }
}

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EpisodeError {
    /// File-system failure.
    #[error("episode log {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS reason.
        #[source]
        source: std::io::Error,
    },
    /// No episode with that id.
    #[error("no episode `{id}` in {dir} ({count} episodes there)")]
    NotFound {
        /// Requested id.
        id: String,
        /// Log directory.
        dir: PathBuf,
        /// How many episodes exist.
        count: usize,
    },
}

/// A problem met while reading, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadWarning {
    /// The segment.
    pub file: PathBuf,
    /// Byte offset of the damaged line.
    pub offset: u64,
    /// What was wrong.
    pub what: String,
}

/// Everything read from a log.
#[derive(Debug, Default)]
pub struct LogContents {
    /// Whole records, oldest first.
    pub records: Vec<EpisodeRecord>,
    /// Damage found; reading of a segment stops at its first damaged line.
    pub warnings: Vec<ReadWarning>,
    /// The log's labels ([`crate::labels`]), already applied to `records`' `ground_truth`.
    pub labels: crate::labels::Labels,
    /// Labels that name no record of the log (their segment rotated away, or a foreign id).
    pub orphan_labels: usize,
}

impl LogContents {
    /// Where `r`'s `ground_truth` comes from, if it has one.
    pub fn truth_source(&self, r: &EpisodeRecord) -> Option<crate::labels::TruthSource> {
        use crate::labels::TruthSource;
        if self.labels.current(&r.id).is_some() {
            Some(TruthSource::Label)
        } else {
            r.ground_truth.as_ref().map(|_| TruthSource::Recorded)
        }
    }
}

/// Segments of a log directory, oldest first (`episodes-NNNNNN.jsonl`).
pub fn segments(dir: &Path) -> Result<Vec<PathBuf>, EpisodeError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(EpisodeError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name
                .strip_prefix("episodes-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    out.sort();
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// Reads one segment: whole records up to the first damaged line. A last line without its
/// newline is a torn write (the process died mid-record) and is reported, not returned.
pub fn read_segment(path: &Path, out: &mut LogContents) -> Result<(), EpisodeError> {
    let io = |source| EpisodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(64 << 20)
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        let warn = |what: String| ReadWarning {
            file: path.to_path_buf(),
            offset,
            what,
        };
        if line.last() != Some(&b'\n') {
            out.warnings.push(warn(format!(
                "torn record at the end ({n} bytes without a newline): the writer stopped mid-record; it is ignored"
            )));
            return Ok(());
        }
        let body = &line[..line.len() - 1];
        if !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<EpisodeRecord>(body) {
                Ok(r) if r.schema > SCHEMA_VERSION => {
                    out.warnings.push(warn(format!(
                        "record schema {} is newer than this reader's {SCHEMA_VERSION}; stopping here",
                        r.schema
                    )));
                    return Ok(());
                }
                Ok(r) => out.records.push(r),
                Err(e) => {
                    out.warnings.push(warn(format!(
                        "damaged record ({e}); the rest of this segment is skipped"
                    )));
                    return Ok(());
                }
            }
        }
        offset += n as u64;
    }
}

/// Reads every segment of a log directory and joins its labels: a labelled record's
/// `ground_truth` is its label in force ([`crate::labels::apply_labels`]).
pub fn read_log(dir: &Path) -> Result<LogContents, EpisodeError> {
    let mut out = LogContents::default();
    for seg in segments(dir)? {
        read_segment(&seg, &mut out)?;
    }
    let mut labels = crate::labels::read_labels(dir)?;
    out.warnings.append(&mut labels.warnings);
    out.orphan_labels = crate::labels::apply_labels(&mut out.records, &labels);
    out.labels = labels;
    Ok(out)
}

/// The index of the record whose id is `id`, else of the one record whose id starts with it.
pub fn lookup(records: &[EpisodeRecord], id: &str) -> Option<usize> {
    records.iter().position(|r| r.id == id).or_else(|| {
        let m: Vec<usize> = (0..records.len())
            .filter(|&i| records[i].id.starts_with(id))
            .collect();
        (m.len() == 1).then(|| m[0])
    })
}

/// Finds one episode by id (or unique id prefix).
pub fn find(dir: &Path, id: &str) -> Result<EpisodeRecord, EpisodeError> {
    let mut log = read_log(dir)?;
    let count = log.records.len();
    match lookup(&log.records, id) {
        Some(i) => Ok(log.records.swap_remove(i)),
        None => Err(EpisodeError::NotFound {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            count,
        }),
    }
}

/// A GRPO JSONL row (`{"messages": [...], "solution": "C"}`) for a record with a ground
/// truth; `None` otherwise.
pub fn grpo_row(r: &EpisodeRecord) -> Option<serde_json::Value> {
    let solution = r.ground_truth.as_ref()?;
    Some(serde_json::json!({
        "messages": [
            {"role": "system", "content": r.system},
            {"role": "user", "content": r.user},
        ],
        "solution": solution,
        "episode": r.id,
    }))
}

/// An Embodied-R JSON row (question = the full user message, as the method's processed files).
pub fn embodied_r_row(r: &EpisodeRecord) -> Option<serde_json::Value> {
    let answer = r.ground_truth.as_ref()?;
    Some(serde_json::json!({
        "Question_id": r.id,
        "video_id": r.robot,
        "question_category": r.category.clone().unwrap_or_else(|| "robot".into()),
        "question": r.user,
        "answer": answer,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(id: &str) -> EpisodeRecord {
        EpisodeRecord {
            choices: vec!["left".into(), "right".into()],
            frames: vec![FrameRef {
                seq: 3,
                stamp: 0.75,
                pose: Some([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
                file: Some(format!("frames/{id}/000003.jpg")),
            }],
            system: "sys".into(),
            user: "user".into(),
            completion: "<think>x</think><answer>A</answer>".into(),
            choice: Some("A".into()),
            ground_truth: Some("A".into()),
            ..EpisodeRecord::new(id, "sim", "Where is the door?")
        }
    }

    fn line(r: &EpisodeRecord) -> String {
        let mut s = serde_json::to_string(r).unwrap();
        s.push('\n');
        s
    }

    #[test]
    fn reads_whole_records_and_reports_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("episodes-000001.jsonl");
        let mut f = std::fs::File::create(&p).unwrap();
        let (a, b) = (line(&record("a")), line(&record("b")));
        f.write_all(a.as_bytes()).unwrap();
        f.write_all(b.as_bytes()).unwrap();
        f.write_all(&b.as_bytes()[..40]).unwrap();
        drop(f);
        let log = read_log(dir.path()).unwrap();
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.warnings.len(), 1);
        assert_eq!(log.warnings[0].offset, (a.len() + b.len()) as u64);
        assert!(log.warnings[0].what.contains("torn"), "{:?}", log.warnings);
    }

    #[test]
    fn stops_at_damage_naming_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let a = line(&record("a"));
        let text = format!("{a}{{\"schema\":1,garbage\n{a}");
        std::fs::write(dir.path().join("episodes-000002.jsonl"), text).unwrap();
        std::fs::write(dir.path().join("episodes-000001.jsonl"), line(&record("z"))).unwrap();
        let log = read_log(dir.path()).unwrap();
        let ids: Vec<_> = log.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["z", "a"]);
        assert_eq!(log.warnings[0].offset, a.len() as u64);
        assert!(log.warnings[0].what.contains("damaged"));
    }

    #[test]
    fn find_by_prefix_and_exports() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{}{}", line(&record("ep-1")), line(&record("ep-22")));
        std::fs::write(dir.path().join("episodes-000001.jsonl"), text).unwrap();
        assert_eq!(find(dir.path(), "ep-2").unwrap().id, "ep-22");
        let e = find(dir.path(), "ep-").unwrap_err().to_string();
        assert!(
            e.contains("no episode `ep-`") && e.contains("2 episodes"),
            "{e}"
        );
        let r = record("x");
        let g = grpo_row(&r).unwrap();
        assert_eq!(g["solution"], "A");
        assert_eq!(g["messages"][1]["content"], "user");
        assert!(
            grpo_row(&EpisodeRecord {
                ground_truth: None,
                ..r.clone()
            })
            .is_none()
        );
        assert_eq!(embodied_r_row(&r).unwrap()["question"], "user");
    }

    #[test]
    fn missing_directory_is_an_empty_log() {
        let log = read_log(Path::new("/nonexistent/episodes")).unwrap();
        assert!(log.records.is_empty());
    }
}
