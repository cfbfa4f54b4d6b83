//! rosbag2 recordings in MCAP (one file, or a bag directory whose split files play in order):
//! one image topic (`sensor_msgs/msg/Image` or
//! `sensor_msgs/msg/CompressedImage`, CDR-encoded) played as a video. A reader thread walks the
//! memory-mapped file and hands decoded frames over a small bounded channel, so memory stays
//! bounded whatever the bag's size.

use super::mcap_records::{Messages, check_summary};
use super::{CameraSource, SourceError, SourceStats, ThreadFeed, skip_bad};
use crate::Frame;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::ros::{COMPRESSED_IMAGE, IMAGE};

/// The image topics of a bag (from its summary section): `(topic, schema name, messages)`.
pub fn image_topics(path: &Path) -> Result<Vec<(String, String, u64)>, SourceError> {
    let name = format!("mcap:{}", path.display());
    let map = map_file(&name, path)?;
    check_summary(&map).map_err(|e| invalid(&name, format!("not a readable MCAP file: {e}")))?;
    let summary = mcap::Summary::read(&map)
        .map_err(|e| invalid(&name, format!("not a readable MCAP file: {e}")))?
        .ok_or_else(|| {
            invalid(
                &name,
                "the file has no summary section; name the topic explicitly".into(),
            )
        })?;
    let mut out = Vec::new();
    for ch in summary.channels.values() {
        let schema = ch
            .schema
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        if schema == IMAGE || schema == COMPRESSED_IMAGE {
            let count = summary
                .stats
                .as_ref()
                .and_then(|s| s.channel_message_counts.get(&ch.id).copied())
                .unwrap_or(0);
            out.push((ch.topic.clone(), schema, count));
        }
    }
    out.sort();
    Ok(out)
}

fn invalid(name: &str, what: String) -> SourceError {
    SourceError::Invalid {
        source_name: name.to_string(),
        what,
    }
}

fn map_file(name: &str, path: &Path) -> Result<memmap2::Mmap, SourceError> {
    let io = |e: std::io::Error| SourceError::Io {
        source_name: name.to_string(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is read-only; a bag being rewritten underneath us can at worst give
    // garbage bytes, which every decoder below treats as untrusted input.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) };
    map.map_err(io)
}

type Item = Result<Frame, SourceError>;

/// One image topic of a rosbag2 MCAP file.
pub struct McapSource {
    name: String,
    feed: ThreadFeed,
}

/// The MCAP files of a bag: `path` itself, or a rosbag2 bag directory's `*.mcap` files in
/// split order (`<name>_0.mcap`, `<name>_1.mcap`, …).
pub fn bag_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let name = format!("mcap:{}", path.display());
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| SourceError::Io {
        source_name: name.clone(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    let mut db3 = false;
    for entry in entries.flatten() {
        let p = entry.path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("mcap") => {
                let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let index = stem
                    .rsplit_once('_')
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(u64::MAX);
                files.push((index, p));
            }
            Some("db3") => db3 = true,
            _ => {}
        }
    }
    files.sort();
    if files.is_empty() {
        let what = if db3 {
            "this bag is stored in sqlite3 (.db3), which is not read here; convert it with `ros2 bag convert` to the mcap storage"
        } else {
            "no .mcap file in this directory (a rosbag2 MCAP bag holds metadata.yaml and <name>_0.mcap)"
        };
        return Err(invalid(&name, what.into()));
    }
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// One message of a bag, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagMessage {
    /// Topic.
    pub topic: String,
    /// Schema (ROS type) name, e.g. `sensor_msgs/msg/Image`.
    pub schema: String,
    /// Message encoding, `cdr` for rosbag2.
    pub encoding: String,
    /// Log time, nanoseconds.
    pub log_time_ns: u64,
    /// The serialized message.
    pub data: Vec<u8>,
}

/// Calls `f` with every message of `topics` (every topic when empty) in the bag's files in
/// order, until `f` returns false; returns how many it was given. A torn or corrupt file
/// ends with an error naming it, after what it held was delivered.
pub fn for_each_message(
    path: &Path,
    topics: &[String],
    mut f: impl FnMut(BagMessage) -> bool,
) -> Result<u64, SourceError> {
    let mut n = 0u64;
    for file in bag_files(path)? {
        let name = format!("mcap:{}", file.display());
        let map = map_file(&name, &file)?;
        if !map.starts_with(mcap::MAGIC) {
            return Err(invalid(
                &name,
                "not a readable MCAP file: no MCAP magic at the start".into(),
            ));
        }
        for msg in Messages::new(&map) {
            let msg = msg
                .map_err(|e| invalid(&name, format!("MCAP read error after {n} messages: {e}")))?;
            if !topics.is_empty() && !topics.contains(&msg.topic) {
                continue;
            }
            n += 1;
            let keep_going = f(msg);
            if !keep_going {
                return Ok(n);
            }
        }
    }
    Ok(n)
}

impl McapSource {
    /// Opens a bag (an MCAP file, or a rosbag2 directory whose split files play in order) and
    /// plays `topic`; without a topic, the bag must hold exactly one image topic.
    pub fn open(path: &Path, topic: Option<&str>) -> Result<McapSource, SourceError> {
        let base = format!("mcap:{}", path.display());
        let files = bag_files(path)?;
        let topic = match topic {
            Some(t) => t.to_string(),
            None => {
                let topics = image_topics(&files[0])?;
                match topics.as_slice() {
                    [(t, _, _)] => t.clone(),
                    [] => {
                        return Err(invalid(
                            &base,
                            format!("no {IMAGE} or {COMPRESSED_IMAGE} topic"),
                        ));
                    }
                    many => {
                        let names: Vec<&str> = many.iter().map(|t| t.0.as_str()).collect();
                        return Err(invalid(
                            &base,
                            format!(
                                "several image topics, choose one with --topic: {}",
                                names.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        let name = format!("{base}:{topic}");
        let mut maps = Vec::with_capacity(files.len());
        for f in &files {
            let file_name = format!("mcap:{}:{topic}", f.display());
            let map = map_file(&file_name, f)?;
            // Fail early on files that are not MCAP at all.
            if !map.starts_with(mcap::MAGIC) {
                return Err(invalid(
                    &file_name,
                    "not an MCAP file (no MCAP magic at the start)".into(),
                ));
            }
            maps.push((file_name, map));
        }
        let (tx, rx) = sync_channel(4);
        let stats = Arc::new(Mutex::new(SourceStats::default()));
        let (n, s) = (name.clone(), stats.clone());
        std::thread::Builder::new()
            .name(format!("mcap reader {topic}"))
            .spawn(move || {
                let (mut seq, mut seen) = (0u64, false);
                for (file_name, map) in &maps {
                    if !read_topic(map, &topic, file_name, &mut seq, &mut seen, &s, &tx) {
                        return;
                    }
                }
                if !seen {
                    let _ = tx.send(Err(invalid(
                        &n,
                        "the topic has no messages in this bag".into(),
                    )));
                }
            })
            .map_err(|e| SourceError::Io {
                source_name: name.clone(),
                path: path.to_path_buf(),
                reason: format!("cannot start the reader thread: {e}"),
            })?;
        Ok(McapSource {
            name,
            feed: ThreadFeed::new(rx, stats),
        })
    }
}

/// Decodes one serialized message of `schema` into an rgb8 frame (a zero header stamp falls
/// back to the bag's log time).
pub fn decode_message(
    schema: &str,
    payload: &[u8],
    seq: u64,
    log_time_ns: u64,
) -> Result<Frame, String> {
    crate::ros::image_to_frame(schema, payload, seq, log_time_ns as f64 * 1e-9)
}

/// Plays `topic` of one file, numbering frames from `*seq` on; false when playing must stop
/// (an error was sent, or nobody listens any more).
fn read_topic(
    map: &[u8],
    topic: &str,
    name: &str,
    seq: &mut u64,
    seen_topic: &mut bool,
    stats: &Mutex<SourceStats>,
    tx: &SyncSender<Item>,
) -> bool {
    for msg in Messages::new(map) {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                // A torn or corrupt tail: what was read stays delivered.
                let _ = tx.send(Err(invalid(
                    name,
                    format!("MCAP read error after {seq} messages: {e}"),
                )));
                return false;
            }
        };
        if msg.topic != topic {
            continue;
        }
        *seen_topic = true;
        let schema = msg.schema.as_str();
        if msg.encoding != "cdr" {
            let _ = tx.send(Err(invalid(
                name,
                format!("message encoding {:?} is not cdr", msg.encoding),
            )));
            return false;
        }
        if schema != IMAGE && schema != COMPRESSED_IMAGE {
            let _ = tx.send(Err(invalid(
                name,
                format!("topic has schema {schema:?}, expected {IMAGE} or {COMPRESSED_IMAGE}"),
            )));
            return false;
        }
        let this = *seq;
        *seq += 1;
        match decode_message(schema, &msg.data, this, msg.log_time_ns) {
            Ok(frame) => {
                stats.lock().unwrap_or_else(PoisonError::into_inner).frames += 1;
                if tx.send(Ok(frame)).is_err() {
                    return false;
                }
            }
            Err(why) => {
                let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
                skip_bad(&mut s, name, this, &why);
            }
        }
    }
    true
}

impl CameraSource for McapSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        None
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        self.feed.next_frame()
    }

    fn stats(&self) -> SourceStats {
        self.feed.stats()
    }
}
