//! The running runtime: threads for capture and for answering, tokio tasks for zenoh.
//!
//! ```text
//!  source thread ─► DropOldest ─► capture thread (sample, select, JPEG) ─► KeyFrameBuffer
//!                                                   │ key frames            ▲ window (short lock)
//!                                                   ▼                       │
//!  zenoh ask queryable ─► admit ─► bounded job queue ─► worker thread (describer, LM, log)
//!        ▲ reply (oneshot)                                   │ answers, nav hints
//!        └───────────────────────────────────────────────────┤
//!  publisher task ◄── events (answer, nav_hint, keyframes) ◄──┘      status task (period)
//! ```
//!
//! Capture never waits for reasoning; a full job queue answers `busy`; every query gets a reply.

use crate::answer::pose_array;
use crate::api::{AskProgress, admit};
use crate::capture::{CaptureConfig, CaptureStats, run_capture};
use crate::collect;
use crate::config::{
    Config, DescriberKind, Rate, Ros2Transport, SourceKind, ZenohMode, embodied_r_sim_scene,
};
#[cfg(feature = "flex")]
use crate::engine::LmReasoner;
use crate::engine::{AskError, Engine, Progress, Question, Reasoner, load_options};
use crate::episodes::EpisodeLog;
use crate::ros2::over_zenoh::RosZenoh;
use crate::ros2::{RosImageSource, RosQuestion, RosSide};
use crate::stats::StageLatencies;
use embodied_r_perception::buffer::{BufferLimits, KeyFrame, KeyFrameBuffer};
use embodied_r_perception::describe::{Cached, Describer};
use embodied_r_perception::keyframe::SelectorConfig;
use embodied_r_perception::source::{CameraSource, Pacing, spawn};
use embodied_r_sim::bridge::{FrameHeader, FrameMessage, ImageEncoding, NetConfig, WirePose};
use embodied_r_sim::{DescriberErrors, GenerateConfig, SimFlight};
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Why the runtime could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The camera source could not be opened.
    #[error("source: {0}")]
    Source(String),
    /// The describer could not be built.
    #[error("describer: {0}")]
    Describer(String),
    /// The LM could not be loaded.
    #[error("reasoner: {0}")]
    Model(String),
    /// zenoh failed.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// The ROS 2 side could not start.
    #[error("ros2: {0}")]
    Ros2(String),
    /// The episode log could not be opened.
    #[error(transparent)]
    Log(#[from] crate::episodes::LogError),
    /// A thread could not be started.
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// The zenoh keys of a runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keys {
    /// Queryable.
    pub ask: String,
    /// Answers (JSON).
    pub answer: String,
    /// Navigation hints (JSON).
    pub nav_hint: String,
    /// Key frames (ERF1 envelope: JSON header + JPEG).
    pub keyframes: String,
    /// Status (JSON).
    pub status: String,
    /// Liveliness token.
    pub alive: String,
    /// Logged episodes, record and key frames ([`crate::collect::EpisodeMessage`]).
    pub episode: String,
    /// Queryable serving the episode log to collectors ([`crate::collect::serve`]).
    pub episodes: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            ask: format!("{prefix}/ask"),
            answer: format!("{prefix}/answer"),
            nav_hint: format!("{prefix}/nav_hint"),
            keyframes: format!("{prefix}/keyframes"),
            status: format!("{prefix}/status"),
            alive: format!("{prefix}/alive"),
            episode: format!("{prefix}/episode"),
            episodes: format!("{prefix}/episodes"),
        }
    }
}

/// Counters of the ask API.
#[derive(Debug, Default)]
struct ApiCounters {
    received: AtomicU64,
    answered: AtomicU64,
    refused_busy: AtomicU64,
    /// Of `refused_busy`: refused by the per-client bound.
    refused_client: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    in_queue: AtomicUsize,
    in_flight: AtomicUsize,
    /// Questions waiting or being answered, per client (`api.per_client`).
    clients: Arc<ClientSlots>,
}

/// How many questions each client has waiting or being answered.
#[derive(Debug, Default)]
struct ClientSlots(Mutex<std::collections::HashMap<String, usize>>);

impl ClientSlots {
    /// Claims one of `client`'s `limit` slots, or says how many it already holds.
    fn take(self: &Arc<Self>, client: &str, limit: usize) -> Result<ClientSlot, usize> {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.get(client).copied().unwrap_or(0);
        if n >= limit {
            return Err(n);
        }
        held.insert(client.to_string(), n + 1);
        Ok(ClientSlot {
            slots: Arc::clone(self),
            client: client.to_string(),
        })
    }

    /// Clients holding at least one slot.
    fn active(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One claimed slot; given back when dropped (the reply was sent, or the job never queued).
#[derive(Debug)]
struct ClientSlot {
    slots: Arc<ClientSlots>,
    client: String,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.client);
            }
        }
    }
}

/// State shared between threads and tasks.
struct Shared {
    buffer: Arc<Mutex<KeyFrameBuffer>>,
    capture: Arc<Mutex<CaptureStats>>,
    api: ApiCounters,
    stages: Mutex<StageLatencies>,
    log_records: AtomicU64,
    log_error: Mutex<Option<String>>,
    model: OnceLock<String>,
    describer: OnceLock<String>,
    shutting_down: AtomicBool,
    started: Instant,
    source_name: String,
    source_queue: Arc<embodied_r_perception::DropOldest<embodied_r_perception::Frame>>,
}

/// What goes out on publications.
enum Event {
    Answer(Vec<u8>, Vec<u8>),
    KeyFrame(Vec<u8>),
    /// A logged episode's message, for collectors.
    Episode(Vec<u8>),
}

/// The next query of an optional queryable; without one (or once it is closed), never.
async fn recv_query(
    q: Option<&zenoh::query::Queryable<zenoh::handlers::FifoChannelHandler<zenoh::query::Query>>>,
) -> zenoh::query::Query {
    if let Some(q) = q
        && let Ok(query) = q.recv_async().await
    {
        return query;
    }
    std::future::pending().await
}

/// A job for the worker.
struct Job {
    question: Question,
    reply: oneshot::Sender<serde_json::Value>,
    /// Where progress goes, for askers that follow it (the ROS 2 action's feedback).
    progress: Option<tokio::sync::watch::Sender<AskProgress>>,
    /// The asker's per-client slot, held until the reply is sent.
    slot: ClientSlot,
}

/// Printed once everything is declared.
#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    /// Robot id.
    pub robot_id: String,
    /// Keys.
    pub keys: Keys,
    /// LM id.
    pub model: String,
    /// Describer label.
    pub describer: String,
    /// Source name.
    pub source: String,
}

/// Totals at exit.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Questions received.
    pub received: u64,
    /// Answered.
    pub answered: u64,
    /// Refused as busy.
    pub busy: u64,
    /// Rejected at admission.
    pub rejected: u64,
    /// Failed after admission.
    pub failed: u64,
    /// Episode records written.
    pub log_records: u64,
    /// Frames captured.
    pub frames: u64,
    /// Key frames kept.
    pub keyframes: u64,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A configured runtime, before it runs.
pub struct Runtime {
    config: Config,
    flight: Option<SimFlight>,
}

impl Runtime {
    /// Checks the config and, for the simulator source, renders the flight.
    pub fn new(config: Config) -> Result<Runtime, AgentError> {
        config.validate(|_| "the configuration".into())?;
        let flight = if config.source.kind == SourceKind::Sim {
            let (kind, index) = embodied_r_sim_scene(&config.source.scene).ok_or_else(|| {
                AgentError::Source(format!("bad scene {:?}", config.source.scene))
            })?;
            let s = &config.source;
            let cfg = GenerateConfig {
                seed: s.seed,
                actions: s.actions,
                frames_per_action: s.frames_per_action,
                fps: s.fps,
                camera: embodied_r_sim::Camera {
                    width: s.width,
                    height: s.height,
                    hfov_deg: 90.0,
                },
                ..GenerateConfig::default()
            };
            Some(
                SimFlight::prepare(kind, index, s.video, &cfg)
                    .map_err(|e| AgentError::Source(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Runtime { config, flight })
    }

    /// The simulated flight (for `source.kind = "sim"`): its questions and answers.
    pub fn flight(&self) -> Option<&SimFlight> {
        self.flight.as_ref()
    }

    /// The keys this runtime uses.
    pub fn keys(&self) -> Keys {
        Keys::new(&self.config.prefix())
    }

    fn open_source(&self) -> Result<Box<dyn CameraSource>, AgentError> {
        let s = &self.config.source;
        let err = |e: embodied_r_perception::source::SourceError| AgentError::Source(e.to_string());
        let path = || {
            s.path
                .clone()
                .ok_or_else(|| AgentError::Source("source.path is not set".into()))
        };
        Ok(match s.kind {
            SourceKind::Sim => match &self.flight {
                Some(f) => Box::new(f.source()),
                None => return Err(AgentError::Source("no simulated flight".into())),
            },
            SourceKind::Folder => Box::new(
                embodied_r_perception::source::FolderSource::open(&path()?, s.fps).map_err(err)?,
            ),
            SourceKind::Video => Box::new(
                embodied_r_perception::source::VideoSource::open(&path()?, None).map_err(err)?,
            ),
            SourceKind::Mcap => Box::new(
                embodied_r_perception::source::mcap::McapSource::open(&path()?, s.topic.as_deref())
                    .map_err(err)?,
            ),
            SourceKind::Camera => open_camera(s)?,
            SourceKind::Pattern => Box::new(embodied_r_sim::source::WarpSource::looping(
                embodied_r_sim::warp::WarpConfig {
                    width: s.width,
                    height: s.height,
                    frames_per_phase: (5.0 * s.fps).round().max(2.0) as u32,
                    seed: u32::try_from(s.seed).map_err(|_| {
                        AgentError::Source(format!(
                            "source.seed = {}: a pattern seed must be below 2^32",
                            s.seed
                        ))
                    })?,
                },
                s.fps,
            )),
            SourceKind::Ros2 => {
                return Err(AgentError::Source(format!(
                    "source.kind = \"ros2\" with ros2.transport = {:?} gives no image source",
                    self.config.ros2.transport
                )));
            }
        })
    }

    /// The ROS 2 side `[ros2]` asks for (and the image source, for `source.kind = "ros2"`).
    fn ros_side(
        &self,
        session: &zenoh::Session,
        questions: mpsc::Sender<RosQuestion>,
    ) -> Result<RosStart, AgentError> {
        match self.config.ros2.transport {
            Ros2Transport::Off => Ok((None, None)),
            Ros2Transport::Bridge | Ros2Transport::RmwZenoh => {
                let (side, source) = RosZenoh::declare(session, &self.config, questions)
                    .map_err(|e| AgentError::Ros2(e.to_string()))?;
                Ok((Some(Arc::new(side)), source))
            }
            Ros2Transport::R2r => r2r_side(&self.config, questions),
        }
    }

    fn describer(&self) -> Result<Arc<dyn Describer>, AgentError> {
        let d = &self.config.describer;
        Ok(match d.kind {
            DescriberKind::Sim => {
                let flight = self.flight.as_ref().ok_or_else(|| {
                    AgentError::Describer("the sim describer needs source.kind = \"sim\"".into())
                })?;
                let errors = DescriberErrors {
                    miss: d.miss,
                    wrong_color: d.wrong_color,
                    swap_left_right: d.swap_left_right,
                    wrong_action: d.wrong_action,
                };
                let v = flight
                    .describer(errors, d.seed)
                    .map_err(|e| AgentError::Describer(e.to_string()))?;
                Arc::new(Cached::new(v, d.cache.max(1)))
            }
            DescriberKind::Openai => {
                let c =
                    embodied_r_perception::describe::openai::OpenAiDescriber::new(d.openai.clone())
                        .map_err(|e| AgentError::Describer(e.to_string()))?;
                Arc::new(Cached::new(c, d.cache.max(1)))
            }
            DescriberKind::Local => {
                let dir = d.vlm.as_ref().ok_or_else(|| {
                    AgentError::Describer("describer.kind = \"local\" needs describer.vlm".into())
                })?;
                local_describer(dir, d.vlm_max_tokens, d.cache.max(1))?
            }
        })
    }

    /// Runs until `shutdown` resolves; `on_ready` is called once the API is up.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
        on_ready: impl FnOnce(&Ready) + Send,
    ) -> Result<RunSummary, AgentError> {
        let cfg = self.config.clone();
        let keys = self.keys();
        let describer = self.describer()?;
        embodied_r_reasoner::init_threads(cfg.reasoner.threads);

        // The LM loads on the worker thread (it stays there); wait for it before listening.
        let (job_tx, mut job_rx) = mpsc::channel::<Job>(cfg.api.queue.max(1));
        let (event_tx, mut event_rx) = mpsc::channel::<Event>(256);
        let (loaded_tx, loaded_rx) = oneshot::channel::<Result<String, String>>();
        // zenoh first: a ROS 2 image topic over zenoh is the source.
        let net = NetConfig {
            mode: Some(match cfg.zenoh.mode {
                ZenohMode::Peer => "peer".into(),
                ZenohMode::Client => "client".into(),
            }),
            connect: cfg.zenoh.connect.clone(),
            listen: cfg.zenoh.listen.clone(),
            multicast_scouting: cfg.zenoh.multicast,
            config_file: cfg.zenoh.config.clone(),
            max_message_bytes: Some(cfg.zenoh.max_message_bytes),
        };
        let zerr =
            |what: &'static str| move |e: zenoh::Error| AgentError::Zenoh(format!("{what}: {e}"));
        let zcfg = embodied_r_sim::bridge::zenoh_config(&net)
            .map_err(|e| AgentError::Zenoh(e.to_string()))?;
        let session = zenoh::open(zcfg)
            .await
            .map_err(zerr("opening the session"))?;
        let stop_capture = Arc::new(AtomicBool::new(false));
        let (ros_q_tx, mut ros_q_rx) = mpsc::channel::<RosQuestion>(64);
        let (ros, ros_source) = self.ros_side(&session, ros_q_tx)?;
        let source: Box<dyn CameraSource> = match ros_source {
            Some(s) => Box::new(s.stop_when(stop_capture.clone())),
            None => self.open_source()?,
        };
        let source_name = source.name().to_string();
        let pacing = match (cfg.source.kind, cfg.source.rate) {
            (SourceKind::Camera, _) => Pacing::Live,
            (_, Rate::Realtime) => Pacing::RealTime,
            (_, Rate::Max) => Pacing::AsFastAsPossible,
        };
        let running =
            spawn(source, cfg.source.queue, pacing).map_err(|e| AgentError::Thread("source", e))?;
        let shared = Arc::new(Shared {
            buffer: Arc::new(Mutex::new(KeyFrameBuffer::new(BufferLimits {
                max_frames: cfg.buffer.max_frames,
                max_bytes: cfg.buffer.max_bytes,
                jpeg_quality: cfg.buffer.jpeg_quality,
            }))),
            capture: Arc::new(Mutex::new(CaptureStats::default())),
            api: ApiCounters::default(),
            stages: Mutex::new(StageLatencies::default()),
            log_records: AtomicU64::new(0),
            log_error: Mutex::new(None),
            model: OnceLock::new(),
            describer: OnceLock::new(),
            shutting_down: AtomicBool::new(false),
            started: Instant::now(),
            source_name: source_name.clone(),
            source_queue: running.queue.clone(),
        });
        let _ = shared.describer.set(describer.label());

        // Capture thread.
        let capture = {
            let (buffer, stats, stop) = (
                shared.buffer.clone(),
                shared.capture.clone(),
                stop_capture.clone(),
            );
            let ev = event_tx.clone();
            let publish = cfg.keyframes.publish;
            let ccfg = CaptureConfig {
                sample_fps: cfg.keyframes.sample_fps,
                max_gap_s: cfg.keyframes.max_gap_s,
                selector: SelectorConfig {
                    keep_below: cfg.keyframes.keep_below,
                    ..SelectorConfig::default()
                },
                jpeg_quality: cfg.buffer.jpeg_quality,
            };
            std::thread::Builder::new()
                .name("capture".into())
                .spawn(move || {
                    run_capture(running, ccfg, buffer, stats, stop, |kf| {
                        if publish {
                            let _ = ev.try_send(Event::KeyFrame(keyframe_message(kf)));
                        }
                    })
                })
                .map_err(|e| AgentError::Thread("capture", e))?
        };

        // However `run` ends (an error while starting included), the capture thread stops.
        let _stop_capture_on_exit = StopOnDrop(stop_capture.clone());

        // Worker thread: owns the LM and the episode log.
        let cancel = Arc::new(AtomicBool::new(false));
        let worker = {
            let shared = shared.clone();
            let cfg = cfg.clone();
            let cancel = cancel.clone();
            let ev = event_tx.clone();
            let keys = keys.clone();
            std::thread::Builder::new()
                .name("answer".into())
                .spawn(move || {
                    let reasoner: Box<dyn Reasoner> = match load_reasoner(&cfg) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = loaded_tx.send(Err(e));
                            return;
                        }
                    };
                    let mut log = if cfg.log.enabled {
                        match EpisodeLog::open(&cfg.log) {
                            Ok(l) => Some(l),
                            Err(e) => {
                                let _ = loaded_tx.send(Err(e.to_string()));
                                return;
                            }
                        }
                    } else {
                        None
                    };
                    let _ = loaded_tx.send(Ok(reasoner.id()));
                    let engine = Engine::new(
                        reasoner,
                        describer,
                        cfg.reasoner.clone(),
                        cfg.robot_id.clone(),
                    );
                    worker_loop(
                        &engine,
                        &mut job_rx,
                        &shared,
                        &cfg,
                        &cancel,
                        &ev,
                        &mut log,
                        &keys,
                    );
                })
                .map_err(|e| AgentError::Thread("answer", e))?
        };
        let model = match loaded_rx.await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                stop_capture.store(true, Ordering::Relaxed);
                let _ = capture.join();
                return Err(if e.contains("episode log") {
                    AgentError::Model(e)
                } else {
                    AgentError::Model(format!("{}: {e}", cfg.reasoner.model.display()))
                });
            }
            Err(_) => {
                stop_capture.store(true, Ordering::Relaxed);
                let _ = capture.join();
                return Err(AgentError::Model(
                    "the answer thread stopped while loading".into(),
                ));
            }
        };
        let _ = shared.model.set(model.clone());

        let queryable = session
            .declare_queryable(keys.ask.clone())
            .await
            .map_err(zerr("declaring the ask queryable"))?;
        let pub_answer = session
            .declare_publisher(keys.answer.clone())
            .await
            .map_err(zerr("declaring the answer publisher"))?;
        let pub_hint = session
            .declare_publisher(keys.nav_hint.clone())
            .await
            .map_err(zerr("declaring the nav_hint publisher"))?;
        let pub_kf = session
            .declare_publisher(keys.keyframes.clone())
            .await
            .map_err(zerr("declaring the keyframes publisher"))?;
        let pub_status = session
            .declare_publisher(keys.status.clone())
            .await
            .map_err(zerr("declaring the status publisher"))?;
        // Collectors: each logged episode as it is written, and the log for those that missed it.
        let publish_log = cfg.log.enabled && cfg.log.publish;
        let pub_episode = if publish_log {
            Some(
                session
                    .declare_publisher(keys.episode.clone())
                    .await
                    .map_err(zerr("declaring the episode publisher"))?,
            )
        } else {
            None
        };
        let episodes_q = if publish_log {
            Some(
                session
                    .declare_queryable(keys.episodes.clone())
                    .await
                    .map_err(zerr("declaring the episodes queryable"))?,
            )
        } else {
            None
        };
        let token = session
            .liveliness()
            .declare_token(keys.alive.clone())
            .await
            .map_err(zerr("declaring the liveliness token"))?;

        on_ready(&Ready {
            robot_id: cfg.robot_id.clone(),
            keys: keys.clone(),
            model,
            describer: shared.describer.get().cloned().unwrap_or_default(),
            source: source_name,
        });

        let mut status_tick =
            tokio::time::interval(Duration::from_millis(cfg.zenoh.status_period_ms));
        let mut replies = tokio::task::JoinSet::new();
        let mut next_id = 0u64;
        let session_tag = format!("{:x}", (now_unix() * 1e3) as u64);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                q = queryable.recv_async() => {
                    let Ok(query) = q else { break };
                    next_id += 1;
                    let id = format!("{}-{session_tag}-{next_id:05}", cfg.robot_id);
                    let payload = query.payload().map(|p| p.to_bytes().into_owned());
                    let decision = admission(&shared, &cfg, &job_tx, payload.as_deref(), id, None);
                    let key = query.key_expr().clone();
                    replies.spawn(async move {
                        let v = decision.reply().await;
                        if let Err(e) = query.reply(key, v.to_string()).await {
                            tracing::warn!("cannot send a reply: {e}");
                        }
                    });
                    while replies.try_join_next().is_some() {}
                }
                q = recv_query(episodes_q.as_ref()) => {
                    let dir = cfg.log.dir.clone();
                    replies.spawn(async move {
                        let req = q.payload().map(|p| p.to_bytes().into_owned()).unwrap_or_default();
                        let served = tokio::task::spawn_blocking(move || collect::serve(&dir, &req))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                        let key = q.key_expr().clone();
                        match served {
                            Ok(payloads) => {
                                for p in payloads {
                                    if let Err(e) = q.reply(key.clone(), p).await {
                                        tracing::warn!("cannot send an episode: {e}");
                                        break;
                                    }
                                }
                            }
                            Err(e) => {
                                let _ = q.reply_err(e).await;
                            }
                        }
                    });
                    while replies.try_join_next().is_some() {}
                }
                Some(q) = ros_q_rx.recv() => {
                    next_id += 1;
                    let id = format!("{}-{session_tag}-{next_id:05}", cfg.robot_id);
                    let decision =
                        admission(&shared, &cfg, &job_tx, Some(&q.payload), id, q.progress);
                    let ros = ros.clone();
                    replies.spawn(async move {
                        let v = decision.reply().await;
                        match q.reply {
                            Some(tx) => {
                                let _ = tx.send(v);
                            }
                            // Answers go out with every other answer; a refusal only here.
                            None => {
                                if v.get("error").is_some() && let Some(r) = &ros {
                                    r.publish_answer(&v.to_string());
                                }
                            }
                        }
                    });
                    while replies.try_join_next().is_some() {}
                }
                ev = event_rx.recv() => {
                    match ev {
                        Some(Event::Answer(answer, hint)) => {
                            publish_answer(&pub_answer, &pub_hint, ros.as_deref(), answer, hint)
                                .await;
                        }
                        Some(Event::KeyFrame(bytes)) => {
                            if let Err(e) = pub_kf.put(bytes).await {
                                tracing::warn!("cannot publish a key frame: {e}");
                            }
                        }
                        Some(Event::Episode(bytes)) => {
                            if let Some(p) = &pub_episode
                                && let Err(e) = p.put(bytes).await
                            {
                                tracing::warn!("cannot publish an episode: {e}");
                            }
                        }
                        None => {}
                    }
                }
                _ = status_tick.tick() => {
                    let s = status_json(&shared, &cfg, ros.as_deref());
                    if let Err(e) = pub_status.put(s.to_string()).await {
                        tracing::warn!("cannot publish status: {e}");
                    }
                }
            }
        }

        // Shutdown: refuse new questions, drain the queue with replies, let the question in
        // flight finish within the grace period, then cancel it.
        tracing::info!("shutting down");
        shared.shutting_down.store(true, Ordering::Relaxed);
        drop(job_tx);
        let grace = Duration::from_millis(cfg.api.shutdown_grace_ms);
        let cancel_after = cancel.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            cancel_after.store(true, Ordering::Relaxed);
        });
        // Keep serving the network while the worker finishes: refuse late questions, publish.
        let worker_done = tokio::task::spawn_blocking(move || worker.join().is_ok());
        tokio::pin!(worker_done);
        loop {
            tokio::select! {
                done = &mut worker_done => {
                    if !matches!(done, Ok(true)) {
                        tracing::error!("the answer thread panicked");
                    }
                    break;
                }
                q = queryable.recv_async() => {
                    if let Ok(query) = q {
                        let v = AskError::new("shutting_down", "the runtime is shutting down").to_json(None);
                        let key = query.key_expr().clone();
                        let _ = query.reply(key, v.to_string()).await;
                    }
                }
                ev = event_rx.recv() => {
                    if let Some(Event::Answer(answer, hint)) = ev {
                        publish_answer(&pub_answer, &pub_hint, ros.as_deref(), answer, hint).await;
                    }
                }
            }
        }
        timer.abort();
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_secs(5), replies.join_next()).await
        {}
        stop_capture.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || capture.join()).await;
        let final_status = status_json(&shared, &cfg, ros.as_deref());
        let _ = pub_status.put(final_status.to_string()).await;
        drop(token);
        if let Err(e) = session.close().await {
            tracing::warn!("closing the zenoh session: {e}");
        }
        let cap = shared
            .capture
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(RunSummary {
            received: shared.api.received.load(Ordering::Relaxed),
            answered: shared.api.answered.load(Ordering::Relaxed),
            busy: shared.api.refused_busy.load(Ordering::Relaxed),
            rejected: shared.api.rejected.load(Ordering::Relaxed),
            failed: shared.api.failed.load(Ordering::Relaxed),
            log_records: shared.log_records.load(Ordering::Relaxed),
            frames: cap.frames_in,
            keyframes: cap.kept,
        })
    }
}

#[cfg(feature = "camera")]
fn open_camera(s: &crate::config::SourceConfig) -> Result<Box<dyn CameraSource>, AgentError> {
    use embodied_r_perception::source::camera::LiveCamera;
    use embodied_r_perception::source::camera_format::ModeRequest;
    let cam = LiveCamera::open(
        s.device,
        ModeRequest {
            width: s.width,
            height: s.height,
            fps: s.fps.round().max(1.0) as u32,
        },
    )
    .map_err(|e| AgentError::Source(e.to_string()))?;
    Ok(Box::new(cam))
}

#[cfg(not(feature = "camera"))]
fn open_camera(_: &crate::config::SourceConfig) -> Result<Box<dyn CameraSource>, AgentError> {
    Err(AgentError::Source(
        "source.kind = \"camera\" needs a build with the `camera` feature (cargo build --features camera)".into(),
    ))
}

#[cfg(feature = "ros2")]
fn r2r_side(config: &Config, questions: mpsc::Sender<RosQuestion>) -> Result<RosStart, AgentError> {
    let (node, source) = crate::ros2::node::RosNode::start(config, questions)
        .map_err(|e| AgentError::Ros2(e.to_string()))?;
    Ok((Some(Arc::new(node)), source))
}

#[cfg(not(feature = "ros2"))]
fn r2r_side(_: &Config, _: mpsc::Sender<RosQuestion>) -> Result<RosStart, AgentError> {
    Err(AgentError::Ros2(
        "ros2.transport = \"r2r\" needs a build with the `ros2` feature inside a sourced ROS 2 (see README, ROS 2); without ROS 2 installed use \"bridge\" or \"rmw_zenoh\"".into(),
    ))
}

/// The local VLM describer on the CPU backend (the runtime's reasoner runs there too).
#[cfg(feature = "flex")]
fn local_describer(
    dir: &std::path::Path,
    max_tokens: usize,
    cache: usize,
) -> Result<Arc<dyn Describer>, AgentError> {
    let d = crate::local_vlm::LocalDescriber::<embodied_r_reasoner::backend::Cpu>::load(
        dir, max_tokens,
    )
    .map_err(|e| AgentError::Describer(e.to_string()))?;
    Ok(Arc::new(Cached::new(d, cache)))
}

#[cfg(not(feature = "flex"))]
fn local_describer(
    _: &std::path::Path,
    _: usize,
    _: usize,
) -> Result<Arc<dyn Describer>, AgentError> {
    Err(AgentError::Describer(
        "describer.kind = \"local\" needs a build with the CPU backend (feature `flex`)".into(),
    ))
}

#[cfg(feature = "flex")]
fn load_reasoner(cfg: &Config) -> Result<Box<dyn Reasoner>, String> {
    let opts = load_options(&cfg.reasoner.weights, &cfg.reasoner.adapter);
    let r = LmReasoner::<embodied_r_reasoner::backend::Cpu>::load(&cfg.reasoner.model, &opts)?;
    Ok(Box::new(r))
}

#[cfg(not(feature = "flex"))]
fn load_reasoner(_: &Config) -> Result<Box<dyn Reasoner>, String> {
    let _ = load_options;
    Err("this build has no CPU backend for the LM (build with the `flex` feature)".into())
}

/// Sets a flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An answer and its nav hint (JSON) out on zenoh and, when configured, on the ROS 2 topics.
async fn publish_answer(
    pub_answer: &zenoh::pubsub::Publisher<'_>,
    pub_hint: &zenoh::pubsub::Publisher<'_>,
    ros: Option<&dyn RosSide>,
    answer: Vec<u8>,
    hint: Vec<u8>,
) {
    if let Some(r) = ros {
        r.publish_answer(&String::from_utf8_lossy(&answer));
        r.publish_nav_hint(&String::from_utf8_lossy(&hint));
    }
    if let Err(e) = pub_answer.put(answer).await {
        tracing::warn!("cannot publish an answer: {e}");
    }
    if let Err(e) = pub_hint.put(hint).await {
        tracing::warn!("cannot publish a nav hint: {e}");
    }
}

/// The ROS 2 side, if configured, and its image source, if it is the camera.
type RosStart = (Option<Arc<dyn RosSide>>, Option<RosImageSource>);

/// What the API does with a query.
enum Admission {
    /// Reply now (an error).
    Reply(serde_json::Value),
    /// Queued; the answer comes on this channel.
    Queued(oneshot::Receiver<serde_json::Value>),
}

impl Admission {
    /// The reply: now, or when the answer thread sends it.
    async fn reply(self) -> serde_json::Value {
        match self {
            Admission::Reply(v) => v,
            Admission::Queued(rx) => rx.await.unwrap_or_else(|_| {
                AskError::new("internal", "the answer thread stopped").to_json(None)
            }),
        }
    }
}

fn admission(
    shared: &Shared,
    cfg: &Config,
    jobs: &mpsc::Sender<Job>,
    payload: Option<&[u8]>,
    id: String,
    progress: Option<tokio::sync::watch::Sender<AskProgress>>,
) -> Admission {
    shared.api.received.fetch_add(1, Ordering::Relaxed);
    if shared.shutting_down.load(Ordering::Relaxed) {
        return Admission::Reply(
            AskError::new("shutting_down", "the runtime is shutting down").to_json(None),
        );
    }
    let depth =
        shared.api.in_queue.load(Ordering::Relaxed) + shared.api.in_flight.load(Ordering::Relaxed);
    let typical = shared
        .stages
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .summary()
        .get("service")
        .map(|p| p.p50);
    let wait = typical.map(|t| t * depth as f64).filter(|w| *w > 0.0);
    let question = match admit(payload, &cfg.api, id, wait, now_unix()) {
        Ok(q) => q,
        Err(e) => {
            shared.api.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(code = e.code, "refused a question: {}", e.message);
            return Admission::Reply(e.to_json(None));
        }
    };
    let slot = match shared
        .api
        .clients
        .take(&question.client, cfg.api.per_client)
    {
        Ok(slot) => slot,
        Err(held) => {
            shared.api.refused_busy.fetch_add(1, Ordering::Relaxed);
            shared.api.refused_client.fetch_add(1, Ordering::Relaxed);
            return Admission::Reply(
                AskError::new(
                    "busy",
                    format!(
                        "client {:?} already has {held} questions waiting or being answered (api.per_client = {}); ask again when one is answered",
                        question.client, cfg.api.per_client
                    ),
                )
                .to_json(None),
            );
        }
    };
    let (tx, rx) = oneshot::channel();
    shared.api.in_queue.fetch_add(1, Ordering::Relaxed);
    match jobs.try_send(Job {
        question,
        reply: tx,
        progress,
        slot,
    }) {
        Ok(()) => Admission::Queued(rx),
        Err(_) => {
            shared.api.in_queue.fetch_sub(1, Ordering::Relaxed);
            shared.api.refused_busy.fetch_add(1, Ordering::Relaxed);
            Admission::Reply(
                AskError::new(
                    "busy",
                    format!(
                        "{} questions are already waiting (api.queue = {}); ask again later",
                        cfg.api.queue, cfg.api.queue
                    ),
                )
                .to_json(None),
            )
        }
    }
}

fn keyframe_message(kf: &KeyFrame) -> Vec<u8> {
    FrameMessage {
        header: FrameHeader {
            seq: kf.seq,
            stamp: kf.stamp,
            width: kf.width,
            height: kf.height,
            encoding: ImageEncoding::Jpeg,
            pose: kf.pose.as_ref().map(WirePose::from_pose),
            hfov_deg: None,
        },
        image: kf.jpeg.to_vec(),
    }
    .encode()
}

#[allow(clippy::too_many_arguments)]
fn worker_loop(
    engine: &Engine,
    jobs: &mut mpsc::Receiver<Job>,
    shared: &Shared,
    cfg: &Config,
    cancel: &AtomicBool,
    events: &mpsc::Sender<Event>,
    log: &mut Option<EpisodeLog>,
    _keys: &Keys,
) {
    while let Some(job) = jobs.blocking_recv() {
        shared.api.in_queue.fetch_sub(1, Ordering::Relaxed);
        let q = job.question;
        if shared.shutting_down.load(Ordering::Relaxed) {
            shared.api.failed.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(
                AskError::new(
                    "shutting_down",
                    "the runtime is shutting down; the question was not started",
                )
                .to_json(Some(&q.id)),
            );
            continue;
        }
        if Instant::now() >= q.deadline {
            shared.api.failed.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(
                AskError::new(
                    "deadline_exceeded",
                    "the deadline passed while the question waited in the queue",
                )
                .to_json(Some(&q.id)),
            );
            continue;
        }
        shared.api.in_flight.fetch_add(1, Ordering::Relaxed);
        let t_window = Instant::now();
        let window = shared
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .window(q.window, cfg.buffer.window_max);
        let window_ms = t_window.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let mut outcome = match &job.progress {
            None => engine.answer(&q, window, cancel),
            Some(tx) => engine.answer_with(&q, window, cancel, &mut |p| {
                tx.send_modify(|state| match p {
                    Progress::Stage(s) => state.stage = s.to_string(),
                    Progress::Text(t) => state.partial.push_str(t),
                })
            }),
        };
        let service_ms = started.elapsed().as_secs_f64() * 1e3;
        let reply = match &mut outcome.reply {
            Ok(a) => {
                a.timings.insert("window".into(), window_ms);
                a.grounding.newest_age_s = evidence_age_s(shared, &outcome.frames);
                shared.api.answered.fetch_add(1, Ordering::Relaxed);
                let mut st = shared.stages.lock().unwrap_or_else(PoisonError::into_inner);
                st.record("service", service_ms);
                for (k, v) in &a.timings {
                    if !k.ends_with("_tokens") {
                        st.record(k, *v);
                    }
                }
                let mut v = serde_json::to_value(&*a).unwrap_or_default();
                v["question"] = q.question.clone().into();
                v
            }
            Err(e) => {
                shared.api.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(question = %q.id, code = e.code, "question failed: {}", e.message);
                e.to_json(Some(&q.id))
            }
        };
        let _ = job.reply.send(reply.clone());
        drop(job.slot);
        shared.api.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Ok(a) = &outcome.reply {
            let hint = serde_json::json!({
                "question_id": a.question_id,
                "action": a.nav_hint.action,
                "target": a.nav_hint.target,
                "reason": a.nav_hint.reason,
            });
            let _ = events.try_send(Event::Answer(
                reply.to_string().into_bytes(),
                hint.to_string().into_bytes(),
            ));
        }
        if let Some(l) = log.as_mut() {
            match l.append(&mut outcome.record, &outcome.frames) {
                Ok(()) => {
                    shared.log_records.fetch_add(1, Ordering::Relaxed);
                    // A full channel drops the publication; collectors fetch it from the log.
                    if cfg.log.publish {
                        let m =
                            collect::EpisodeMessage::from_logged(&outcome.record, &outcome.frames);
                        let _ = events.try_send(Event::Episode(m.encode()));
                    }
                    *shared
                        .log_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = None;
                }
                Err(e) => {
                    tracing::error!(
                        "episode log: {e} (answers continue; this episode is not logged)"
                    );
                    *shared
                        .log_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                }
            }
        }
    }
}

/// How old the newest key frame of `window` is: the time since the capture thread kept the
/// buffer's newest key frame, plus how much older (source clock) the window's newest one is.
fn evidence_age_s(shared: &Shared, window: &[KeyFrame]) -> Option<f64> {
    let last = window.last()?;
    let kept_at = shared
        .capture
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .newest_keyframe_at?;
    let newest_stamp = shared
        .buffer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .newest()
        .map(|k| k.stamp)?;
    Some(kept_at.elapsed().as_secs_f64() + (newest_stamp - last.stamp).max(0.0))
}

fn status_json(shared: &Shared, cfg: &Config, ros: Option<&dyn RosSide>) -> serde_json::Value {
    let capture = shared
        .capture
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .snapshot();
    let (buffer, newest) = {
        let b = shared.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        (
            b.stats(),
            b.newest()
                .map(|k| (k.seq, k.stamp, k.pose.as_ref().map(pose_array))),
        )
    };
    let newest_age_s = shared
        .capture
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .newest_keyframe_at
        .map(|t| t.elapsed().as_secs_f64());
    let q = shared.source_queue.stats();
    serde_json::json!({
        "robot_id": cfg.robot_id,
        "uptime_s": shared.started.elapsed().as_secs_f64(),
        "source": {
            "name": shared.source_name,
            "fps_in": capture.fps_in,
            "frames": capture.frames_in,
            "dropped": q.dropped,
            "bad": capture.source_bad,
            "idle_s": capture.idle_s,
            "ended": capture.source_ended,
            "error": capture.source_error,
        },
        "keyframes": {
            "sampled": capture.sampled,
            "kept": capture.kept,
            "per_s": capture.keyframes_per_s,
            "buffered": buffer.frames,
            "buffer_bytes": buffer.bytes,
            "newest": newest.map(|(seq, stamp, pose)| serde_json::json!({"seq": seq, "stamp": stamp, "pose": pose})),
            "newest_age_s": newest_age_s,
            "encode_errors": capture.encode_errors,
        },
        "capture_latency_ms": {"per_frame": capture.per_frame_ms, "sampled": capture.sampled_ms},
        "queue": {
            "depth": shared.api.in_queue.load(Ordering::Relaxed),
            "in_flight": shared.api.in_flight.load(Ordering::Relaxed),
            "capacity": cfg.api.queue,
            "clients": shared.api.clients.active(),
            "per_client": cfg.api.per_client,
        },
        "asks": {
            "received": shared.api.received.load(Ordering::Relaxed),
            "answered": shared.api.answered.load(Ordering::Relaxed),
            "busy": shared.api.refused_busy.load(Ordering::Relaxed),
            "busy_client": shared.api.refused_client.load(Ordering::Relaxed),
            "rejected": shared.api.rejected.load(Ordering::Relaxed),
            "failed": shared.api.failed.load(Ordering::Relaxed),
        },
        "ros2": ros.map(|r| serde_json::json!({"transport": cfg.ros2.transport, "counters": r.stats()})),
        "models": {"lm": shared.model.get(), "describer": shared.describer.get()},
        "latency_ms": shared.stages.lock().unwrap_or_else(PoisonError::into_inner).summary(),
        "log": {
            "enabled": cfg.log.enabled,
            "dir": cfg.log.dir,
            "records": shared.log_records.load(Ordering::Relaxed),
            "error": shared.log_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        },
        "process": crate::stats::ProcessStats::now(),
        "shutting_down": shared.shutting_down.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_slots_bound_each_client_and_come_back_when_dropped() {
        let slots = Arc::new(ClientSlots::default());
        let a1 = slots.take("a", 2).expect("first slot");
        let a2 = slots.take("a", 2).expect("second slot");
        assert_eq!(slots.take("a", 2).err(), Some(2), "a holds its two");
        let b = slots.take("b", 2).expect("another client still gets in");
        assert_eq!(slots.active(), 2);
        drop(a1);
        let a3 = slots.take("a", 2).expect("a slot came back");
        drop((a2, a3, b));
        assert_eq!(slots.active(), 0, "no entry outlives its slots");
    }
}
