//! Episodes from a fleet: the wire form of a finished episode, what a runtime serves of its own
//! log, and the collector that gathers many robots' episodes into one directory per robot.
//!
//! Owns the `robots/<id>/embodied-r/episode` publication's payload ([`EpisodeMessage`]: the
//! record plus its key-frame JPEGs) and the `…/episodes` queryable's protocol (a JSON request in
//! the query's payload: `{"list": true}` for the ids a robot still has, `{"get": [ids]}` for
//! those episodes, one reply each). It must not touch the runtime's loop or the answer path:
//! the runtime calls [`EpisodeMessage::from_logged`] and [`serve`]; reading and writing logs goes
//! through [`crate::episodes::EpisodeLog`] and the reasoner's reader.
//!
//! Delivery is the robot's log, not the network: a publication reaches a collector that is
//! listening, and a collector that was not (stopped, killed, disconnected) asks each robot it
//! sees alive for the ids it lacks and fetches them. Episodes are keyed by id, so a reconnect or
//! a restart never writes one twice; each is written frames first, record last, fsynced, so a
//! killed collector loses at most the episode it was writing, which the next catch-up fetches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use embodied_r_perception::buffer::KeyFrame;
use embodied_r_reasoner::episode::{EpisodeRecord, read_log};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{FsyncPolicy, LogConfig};
use crate::episodes::EpisodeLog;

/// The payload schema of an episode message.
pub const EPISODE_SCHEMA: &str = "embodied-r.episode/1";

/// Why collecting failed (errors that stop the collector; a bad message is only counted).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// zenoh refused a declaration.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// A robot's directory could not be read or written.
    #[error("{0}")]
    Log(#[from] crate::episodes::LogError),
    /// A robot's existing directory holds something that is not an episode log.
    #[error("{path}: {what}")]
    Existing {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// Why one message was refused (counted and logged; the collector goes on).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// Not the JSON of an [`EpisodeMessage`].
    #[error("not an episode message ({EPISODE_SCHEMA}): {0}")]
    Malformed(String),
    /// Another schema.
    #[error("schema `{0}`, expected `{EPISODE_SCHEMA}`")]
    Schema(String),
    /// A frame's JPEG is not base64, or names no frame of the record.
    #[error("episode `{id}`, frame {seq}: {what}")]
    Frame {
        /// The episode.
        id: String,
        /// The frame's sequence number.
        seq: u64,
        /// What is wrong.
        what: String,
    },
    /// The key's robot id cannot name a directory.
    #[error("robot id `{0}` in the key: expected 1–128 of A–Z a–z 0–9 `_` `-` `.`, not only dots")]
    RobotId(String),
    /// The record has no id.
    #[error("the record has an empty id")]
    NoId,
}

/// One key frame of an episode on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FramePayload {
    /// The frame's sequence number (the record's `frames[].seq`).
    pub seq: u64,
    /// The JPEG, base64 (standard alphabet, padded).
    pub jpeg: String,
}

/// A finished episode as published on `robots/<id>/embodied-r/episode` and served by the
/// `…/episodes` queryable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeMessage {
    /// [`EPISODE_SCHEMA`].
    pub schema: String,
    /// The record as the robot logged it.
    pub record: EpisodeRecord,
    /// The key frames the record names, where the robot still has them.
    pub frames: Vec<FramePayload>,
}

impl EpisodeMessage {
    /// The message of a record just logged, with the key frames it names.
    pub fn from_logged(record: &EpisodeRecord, frames: &[KeyFrame]) -> EpisodeMessage {
        let frames = record
            .frames
            .iter()
            .filter_map(|f| frames.iter().find(|k| k.seq == f.seq))
            .map(|k| FramePayload {
                seq: k.seq,
                jpeg: STANDARD.encode(&k.jpeg),
            })
            .collect();
        EpisodeMessage {
            schema: EPISODE_SCHEMA.into(),
            record: record.clone(),
            frames,
        }
    }

    /// The message of a record read back from the log in `dir` (frame files that rotation
    /// deleted, or that were never stored, are left out).
    pub fn from_log_dir(record: &EpisodeRecord, dir: &Path) -> EpisodeMessage {
        let frames = record
            .frames
            .iter()
            .filter_map(|f| {
                let file = f.file.as_deref()?;
                let bytes = std::fs::read(dir.join(file)).ok()?;
                Some(FramePayload {
                    seq: f.seq,
                    jpeg: STANDARD.encode(bytes),
                })
            })
            .collect();
        EpisodeMessage {
            schema: EPISODE_SCHEMA.into(),
            record: record.clone(),
            frames,
        }
    }

    /// JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a message: the schema, an id, frames that decode and that the record
    /// names. Returns the record (its frames' `file` cleared: they name the robot's files) and
    /// the key frames to write.
    pub fn decode(bytes: &[u8]) -> Result<(EpisodeRecord, Vec<KeyFrame>), MessageError> {
        let m: EpisodeMessage =
            serde_json::from_slice(bytes).map_err(|e| MessageError::Malformed(e.to_string()))?;
        if m.schema != EPISODE_SCHEMA {
            return Err(MessageError::Schema(m.schema));
        }
        let mut record = m.record;
        if record.id.is_empty() {
            return Err(MessageError::NoId);
        }
        let mut frames = Vec::with_capacity(m.frames.len());
        for f in m.frames {
            let Some(r) = record.frames.iter().find(|r| r.seq == f.seq) else {
                return Err(MessageError::Frame {
                    id: record.id.clone(),
                    seq: f.seq,
                    what: "the record names no such frame".into(),
                });
            };
            let jpeg = STANDARD.decode(f.jpeg).map_err(|e| MessageError::Frame {
                id: record.id.clone(),
                seq: f.seq,
                what: format!("not base64: {e}"),
            })?;
            frames.push(KeyFrame {
                seq: f.seq,
                stamp: r.stamp,
                width: 0,
                height: 0,
                pose: None,
                jpeg: Arc::from(jpeg),
            });
        }
        for f in &mut record.frames {
            f.file = None;
        }
        Ok((record, frames))
    }
}

/// A request to a runtime's `…/episodes` queryable (the query's JSON payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum EpisodesRequest {
    /// The ids the robot's log holds, oldest first.
    List(bool),
    /// These episodes, one reply each (ids the log no longer holds are left out).
    Get(Vec<String>),
}

/// The reply to [`EpisodesRequest::List`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeList {
    /// The ids, oldest first.
    pub episodes: Vec<String>,
}

/// Answers one request from the log in `dir` (blocking: it reads the log). Each returned
/// payload is one reply; a request that cannot be read is an error to reply with.
pub fn serve(dir: &Path, request: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let req: EpisodesRequest = serde_json::from_slice(request).map_err(|e| {
        format!("expected {{\"list\": true}} or {{\"get\": [\"id\", …]}} as the payload: {e}")
    })?;
    let log = read_log(dir).map_err(|e| e.to_string())?;
    Ok(match req {
        EpisodesRequest::List(_) => {
            let list = EpisodeList {
                episodes: log.records.iter().map(|r| r.id.clone()).collect(),
            };
            vec![serde_json::to_vec(&list).unwrap_or_default()]
        }
        EpisodesRequest::Get(ids) => {
            let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
            log.records
                .iter()
                .filter(|r| want.contains(r.id.as_str()))
                .map(|r| EpisodeMessage::from_log_dir(r, dir).encode())
                .collect()
        }
    })
}

/// The robot id of a key `…robots/<id>/embodied-r/<leaf>`: the segment before `embodied-r`,
/// checked to be a safe directory name.
pub fn robot_of(key: &str) -> Result<String, MessageError> {
    let parts: Vec<&str> = key.split('/').collect();
    let id = parts
        .iter()
        .position(|p| *p == "embodied-r")
        .and_then(|i| i.checked_sub(1))
        .map_or("", |i| parts[i]);
    let ok = (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !id.chars().all(|c| c == '.');
    if ok {
        Ok(id.to_string())
    } else {
        Err(MessageError::RobotId(id.to_string()))
    }
}

/// Per-robot figures of a collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RobotCounts {
    /// Episodes written this run.
    pub collected: u64,
    /// Episodes received again and not written.
    pub duplicates: u64,
    /// Episodes the directory holds now.
    pub total: u64,
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CollectSummary {
    /// Per robot.
    pub robots: BTreeMap<String, RobotCounts>,
    /// Episodes written this run.
    pub collected: u64,
    /// Episodes received again and not written.
    pub duplicates: u64,
    /// Messages refused (malformed, unsafe robot id).
    pub rejected: u64,
    /// Wall time.
    pub seconds: f64,
}

/// One episode written (the collector's progress callback).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Collected {
    /// The robot.
    pub robot: String,
    /// The episode.
    pub id: String,
    /// Key frames written.
    pub frames: usize,
    /// `live` (a publication) or `catch-up` (fetched from the robot's log).
    pub via: &'static str,
}

/// One robot's directory: an episode log written by the runtime's own writer, and the ids it
/// holds.
struct Store {
    log: EpisodeLog,
    have: HashSet<String>,
}

/// The per-robot directories under a collection directory.
pub struct Stores {
    dir: PathBuf,
    robots: HashMap<String, Store>,
    counts: BTreeMap<String, RobotCounts>,
}

impl Stores {
    /// Stores under `dir` (created when missing); robots' directories are opened as they come.
    pub fn new(dir: &Path) -> Result<Stores, CollectError> {
        std::fs::create_dir_all(dir).map_err(|e| CollectError::Existing {
            path: dir.to_path_buf(),
            what: e.to_string(),
        })?;
        Ok(Stores {
            dir: dir.to_path_buf(),
            robots: HashMap::new(),
            counts: BTreeMap::new(),
        })
    }

    fn store(&mut self, robot: &str) -> Result<&mut Store, CollectError> {
        if !self.robots.contains_key(robot) {
            let dir = self.dir.join(robot);
            let have: HashSet<String> = if dir.exists() {
                read_log(&dir)
                    .map_err(|e| CollectError::Existing {
                        path: dir.clone(),
                        what: e.to_string(),
                    })?
                    .records
                    .into_iter()
                    .map(|r| r.id)
                    .collect()
            } else {
                HashSet::new()
            };
            let log = EpisodeLog::open(&LogConfig {
                enabled: true,
                dir,
                fsync: FsyncPolicy::Always,
                // Collected data is never rotated away.
                max_segments: usize::MAX,
                frames: true,
                ..LogConfig::default()
            })?;
            self.counts.entry(robot.to_string()).or_default().total = have.len() as u64;
            self.robots.insert(robot.to_string(), Store { log, have });
        }
        self.robots
            .get_mut(robot)
            .ok_or_else(|| CollectError::Existing {
                path: self.dir.join(robot),
                what: "the store vanished".into(),
            })
    }

    /// The ids held for `robot` (opening its directory).
    pub fn ids(&mut self, robot: &str) -> Result<HashSet<String>, CollectError> {
        Ok(self.store(robot)?.have.clone())
    }

    /// Writes an episode unless it is already held; `Ok(None)` for a duplicate.
    pub fn put(
        &mut self,
        robot: &str,
        mut record: EpisodeRecord,
        frames: &[KeyFrame],
    ) -> Result<Option<usize>, CollectError> {
        let store = self.store(robot)?;
        if store.have.contains(&record.id) {
            self.counts.entry(robot.to_string()).or_default().duplicates += 1;
            return Ok(None);
        }
        store.log.append(&mut record, frames)?;
        let written = record.frames.iter().filter(|f| f.file.is_some()).count();
        store.have.insert(record.id);
        let c = self.counts.entry(robot.to_string()).or_default();
        c.collected += 1;
        c.total += 1;
        Ok(Some(written))
    }
}

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Where the robots' directories go.
    pub dir: PathBuf,
    /// The runtimes' key prefix pattern (`robots/*/embodied-r`: every robot).
    pub prefix: String,
    /// Ask every robot alive for missing episodes this often (a publication lost while
    /// connected is fetched by the next one).
    pub resync: Duration,
    /// Stop when nothing new arrived for this long and no catch-up is running (batch use);
    /// `None`: run until `shutdown`.
    pub idle_exit: Option<Duration>,
    /// Episodes per `get` request of a catch-up.
    pub batch: usize,
    /// How long a robot has to answer one request.
    pub query_timeout: Duration,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            dir: PathBuf::from("fleet"),
            prefix: "robots/*/embodied-r".into(),
            resync: Duration::from_secs(30),
            idle_exit: None,
            batch: 16,
            query_timeout: Duration::from_secs(30),
        }
    }
}

enum Inbound {
    /// An episode message from `robot`.
    Message {
        robot: String,
        bytes: Vec<u8>,
        via: &'static str,
    },
    /// A catch-up of `robot` ended (with what failed, if anything).
    CaughtUp {
        robot: String,
        error: Option<String>,
    },
}

/// Asks `robot` for its ids, then fetches those not in `have`, `batch` at a time.
async fn catch_up(
    session: zenoh::Session,
    key: String,
    robot: String,
    have: HashSet<String>,
    opts: (usize, Duration),
    tx: mpsc::Sender<Inbound>,
) {
    let (batch, timeout) = opts;
    let error = async {
        let list = query(&session, &key, &EpisodesRequest::List(true), timeout).await?;
        let first = list
            .first()
            .ok_or_else(|| format!("{key}: no reply to the list request"))?;
        let list: EpisodeList = serde_json::from_slice(first)
            .map_err(|e| format!("{key}: the list reply is not an episode list: {e}"))?;
        let missing: Vec<String> = list
            .episodes
            .into_iter()
            .filter(|id| !have.contains(id))
            .collect();
        if !missing.is_empty() {
            tracing::info!(robot = %robot, missing = missing.len(), "catching up");
        }
        for chunk in missing.chunks(batch.max(1)) {
            let replies = query(
                &session,
                &key,
                &EpisodesRequest::Get(chunk.to_vec()),
                timeout,
            )
            .await?;
            for bytes in replies {
                let m = Inbound::Message {
                    robot: robot.clone(),
                    bytes,
                    via: "catch-up",
                };
                if tx.send(m).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok::<(), String>(())
    }
    .await
    .err();
    let _ = tx.send(Inbound::CaughtUp { robot, error }).await;
}

/// One request to a runtime's episodes queryable; the replies' payloads (zenoh's error replies
/// become the error).
async fn query(
    session: &zenoh::Session,
    key: &str,
    req: &EpisodesRequest,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    let replies = session
        .get(key)
        .payload(body)
        // Every reply comes on the same key: keep them all.
        .consolidation(zenoh::query::ConsolidationMode::None)
        .timeout(timeout)
        .await
        .map_err(|e| format!("querying {key}: {e}"))?;
    let mut out = Vec::new();
    while let Ok(reply) = replies.recv_async().await {
        match reply.result() {
            Ok(sample) => out.push(sample.payload().to_bytes().into_owned()),
            Err(e) => {
                return Err(format!(
                    "{key}: {}",
                    String::from_utf8_lossy(&e.payload().to_bytes())
                ));
            }
        }
    }
    Ok(out)
}

/// Collects until `shutdown` resolves (or, with `idle_exit`, until idle): live publications
/// of every robot matching the prefix, and a catch-up of each robot whose liveliness token
/// appears and then every `resync`. `on_ready` is called once it listens; `on_episode` sees
/// each episode written.
pub async fn collect(
    session: &zenoh::Session,
    opts: &CollectOptions,
    shutdown: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(),
    mut on_episode: impl FnMut(&Collected),
) -> Result<CollectSummary, CollectError> {
    let t0 = Instant::now();
    let zerr = |what: &str, e: zenoh::Error| CollectError::Zenoh(format!("{what}: {e}"));
    let mut stores = Stores::new(&opts.dir)?;
    let pattern = opts.prefix.trim_end_matches('/');
    let sub = session
        .declare_subscriber(format!("{pattern}/episode"))
        .await
        .map_err(|e| zerr("subscribing to episodes", e))?;
    let alive = session
        .liveliness()
        .declare_subscriber(format!("{pattern}/alive"))
        .history(true)
        .await
        .map_err(|e| zerr("watching liveliness", e))?;
    let (tx, mut rx) = mpsc::channel::<Inbound>(64);
    let mut summary = CollectSummary::default();
    // Robots alive now (their episodes key), and those with a catch-up running.
    let mut online: BTreeMap<String, String> = BTreeMap::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut last_activity = Instant::now();
    let mut resync = tokio::time::interval(opts.resync);
    resync.tick().await;
    let mut idle_check = tokio::time::interval(Duration::from_millis(200));
    tokio::pin!(shutdown);
    on_ready();

    let start_catch_up = |robot: &str,
                          key: &str,
                          stores: &mut Stores,
                          running: &mut HashSet<String>|
     -> Result<(), CollectError> {
        if running.contains(robot) {
            return Ok(());
        }
        let have = stores.ids(robot)?;
        running.insert(robot.to_string());
        tokio::spawn(catch_up(
            session.clone(),
            key.to_string(),
            robot.to_string(),
            have,
            (opts.batch, opts.query_timeout),
            tx.clone(),
        ));
        Ok(())
    };

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            s = sub.recv_async() => {
                let Ok(sample) = s else { break };
                let key = sample.key_expr().to_string();
                match robot_of(&key) {
                    Ok(robot) => {
                        let bytes = sample.payload().to_bytes().into_owned();
                        if handle(&mut stores, &mut summary, &robot, &bytes, "live", &mut on_episode)? {
                            last_activity = Instant::now();
                        }
                    }
                    Err(e) => {
                        summary.rejected += 1;
                        tracing::warn!(key = %key, "refused: {e}");
                    }
                }
            }
            l = alive.recv_async() => {
                let Ok(sample) = l else { break };
                let key = sample.key_expr().to_string();
                let robot = match robot_of(&key) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(key = %key, "ignored: {e}");
                        continue;
                    }
                };
                if sample.kind() == zenoh::sample::SampleKind::Put {
                    let episodes = format!("{}/episodes", key.trim_end_matches("/alive"));
                    tracing::info!(robot = %robot, "robot alive");
                    start_catch_up(&robot, &episodes, &mut stores, &mut running)?;
                    online.insert(robot, episodes);
                    last_activity = Instant::now();
                } else {
                    tracing::info!(robot = %robot, "robot gone");
                    online.remove(&robot);
                }
            }
            m = rx.recv() => {
                match m {
                    Some(Inbound::Message { robot, bytes, via }) => {
                        if handle(&mut stores, &mut summary, &robot, &bytes, via, &mut on_episode)? {
                            last_activity = Instant::now();
                        }
                    }
                    // Idleness counts from the last episode written, not from catch-ups that
                    // found nothing (a resync every second would otherwise never be idle).
                    Some(Inbound::CaughtUp { robot, error }) => {
                        running.remove(&robot);
                        if let Some(e) = error {
                            tracing::warn!(robot = %robot, "catch-up failed (retried at the next resync): {e}");
                        }
                    }
                    None => break,
                }
            }
            _ = resync.tick() => {
                for (robot, key) in online.clone() {
                    start_catch_up(&robot, &key, &mut stores, &mut running)?;
                }
            }
            _ = idle_check.tick() => {
                if let Some(idle) = opts.idle_exit
                    && running.is_empty()
                    && last_activity.elapsed() >= idle
                {
                    break;
                }
            }
        }
    }
    summary.robots = stores.counts.clone();
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}

/// Writes one message's episode; `true` when it was new (not a duplicate, not refused).
fn handle(
    stores: &mut Stores,
    summary: &mut CollectSummary,
    robot: &str,
    bytes: &[u8],
    via: &'static str,
    on_episode: &mut impl FnMut(&Collected),
) -> Result<bool, CollectError> {
    let (record, frames) = match EpisodeMessage::decode(bytes) {
        Ok(x) => x,
        Err(e) => {
            summary.rejected += 1;
            tracing::warn!(robot = %robot, "refused an episode message: {e}");
            return Ok(false);
        }
    };
    let id = record.id.clone();
    match stores.put(robot, record, &frames)? {
        Some(n) => {
            summary.collected += 1;
            on_episode(&Collected {
                robot: robot.to_string(),
                id,
                frames: n,
                via,
            });
            Ok(true)
        }
        None => {
            summary.duplicates += 1;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embodied_r_reasoner::episode::FrameRef;

    fn record(id: &str, seqs: &[u64]) -> EpisodeRecord {
        let mut r = EpisodeRecord::new(id, "bot", "where?");
        r.frames = seqs
            .iter()
            .map(|&seq| FrameRef {
                seq,
                stamp: seq as f64 / 10.0,
                pose: None,
                file: None,
            })
            .collect();
        r
    }

    fn kf(seq: u64, byte: u8) -> KeyFrame {
        KeyFrame {
            seq,
            stamp: 0.0,
            width: 2,
            height: 2,
            pose: None,
            jpeg: Arc::from(vec![0xff, 0xd8, byte, 0xff, 0xd9]),
        }
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_named() {
        let r = record("e1", &[3, 5]);
        let m = EpisodeMessage::from_logged(&r, &[kf(3, 1), kf(5, 2), kf(9, 3)]);
        assert_eq!(m.frames.len(), 2, "only the frames the record names");
        let (back, frames) = EpisodeMessage::decode(&m.encode()).expect("decode");
        assert_eq!(back.id, "e1");
        assert_eq!(frames[1].jpeg.as_ref(), kf(5, 2).jpeg.as_ref());

        let bad = |v: serde_json::Value| {
            EpisodeMessage::decode(v.to_string().as_bytes())
                .unwrap_err()
                .to_string()
        };
        let mut v = serde_json::to_value(&m).expect("json");
        v["schema"] = "other/9".into();
        assert!(bad(v).contains("other/9"));
        let mut v = serde_json::to_value(&m).expect("json");
        v["frames"][0]["jpeg"] = "***".into();
        let e = bad(v);
        assert!(
            e.contains("`e1`") && e.contains("frame 3") && e.contains("base64"),
            "{e}"
        );
        let mut v = serde_json::to_value(&m).expect("json");
        v["frames"][0]["seq"] = 77.into();
        assert!(bad(v).contains("no such frame"));
        assert!(
            EpisodeMessage::decode(b"{")
                .unwrap_err()
                .to_string()
                .contains(EPISODE_SCHEMA)
        );
    }

    #[test]
    fn robot_ids_come_from_the_key_and_must_name_a_directory() {
        assert_eq!(
            robot_of("robots/drone-1/embodied-r/episode").as_deref(),
            Ok("drone-1")
        );
        for bad in [
            "robots/../embodied-r/episode",
            "robots/a b/embodied-r/episode",
            "embodied-r/episode",
            "robots/x/other",
        ] {
            assert!(robot_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stores_write_once_per_id_and_reopen_with_what_they_hold() {
        let d = tempfile::tempdir().expect("tmp");
        let mut s = Stores::new(d.path()).expect("stores");
        let r = record("e1", &[3]);
        assert_eq!(s.put("bot", r.clone(), &[kf(3, 7)]).expect("put"), Some(1));
        assert_eq!(s.put("bot", r.clone(), &[kf(3, 7)]).expect("again"), None);
        drop(s);
        let mut s = Stores::new(d.path()).expect("reopen");
        assert!(s.ids("bot").expect("ids").contains("e1"));
        assert_eq!(s.put("bot", r, &[kf(3, 7)]).expect("after reopen"), None);
        let log = read_log(&d.path().join("bot")).expect("log");
        assert_eq!(log.records.len(), 1);
        let f = log.records[0].frames[0].file.clone().expect("file");
        let bytes = std::fs::read(d.path().join("bot").join(f)).expect("frame");
        assert_eq!(bytes, kf(3, 7).jpeg.as_ref());
    }

    #[test]
    fn the_log_serves_lists_and_episodes() {
        let d = tempfile::tempdir().expect("tmp");
        let mut s = Stores::new(d.path()).expect("stores");
        for i in 0..3 {
            s.put("bot", record(&format!("e{i}"), &[i]), &[kf(i, i as u8)])
                .expect("put");
        }
        let dir = d.path().join("bot");
        let list = serve(&dir, br#"{"list": true}"#).expect("list");
        let list: EpisodeList = serde_json::from_slice(&list[0]).expect("json");
        assert_eq!(list.episodes, ["e0", "e1", "e2"]);
        let got = serve(&dir, br#"{"get": ["e2", "nope", "e0"]}"#).expect("get");
        assert_eq!(got.len(), 2);
        let (r, frames) = EpisodeMessage::decode(&got[0]).expect("decode");
        assert_eq!((r.id.as_str(), frames.len()), ("e0", 1));
        let e = serve(&dir, b"{\"all\": 1}").unwrap_err();
        assert!(e.contains("\"list\""), "{e}");
    }
}
