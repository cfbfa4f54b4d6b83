//! The runtime's configuration: a TOML file, overridden by `EMBODIED_R_*` environment variables
//! and then by command-line settings. Unknown keys and bad values are errors that name the key,
//! the value, what is accepted and where the value came from.
//!
//! Environment variables map onto keys by dropping the prefix, lower-casing and reading `__` as
//! a dot: `EMBODIED_R_API__QUEUE=8` sets `api.queue`, `EMBODIED_R_ROBOT_ID=rover` sets
//! `robot_id`. Values are read as TOML (`8`, `true`, `["tcp/1.2.3.4:7447"]`), falling back to
//! a plain string.

use embodied_r_perception::describe::openai::OpenAiConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// OS reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message with line and column.
        message: String,
    },
    /// A key has a value of the wrong type, or is unknown.
    #[error("config key `{key}` ({origin}): {message}")]
    Key {
        /// Dotted key path.
        key: String,
        /// Where the value came from.
        origin: String,
        /// serde's message (names the value and what was expected).
        message: String,
    },
    /// A value is of the right type but out of range or inconsistent.
    #[error("config key `{key}` = {value} ({origin}): expected {expected}")]
    Value {
        /// Dotted key path.
        key: String,
        /// The value as given.
        value: String,
        /// What is accepted.
        expected: String,
        /// Where the value came from.
        origin: String,
    },
    /// An override could not be applied.
    #[error("override `{0}`: expected KEY=VALUE with a dotted key, e.g. api.queue=8")]
    Override(String),
}

/// Where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The built-in simulator flies a scene (`source.scene`).
    Sim,
    /// An image folder (`source.path`), frames in file-name order.
    Folder,
    /// A video file through ffmpeg (`source.path`).
    Video,
    /// A rosbag2 MCAP file (`source.path`, `source.topic`).
    Mcap,
    /// A V4L2 camera (`source.device`; needs the `camera` feature).
    Camera,
    /// A ROS 2 image topic (`source.topic`: `sensor_msgs/msg/Image`, or `CompressedImage` for a
    /// name ending in `/compressed`), reached as `[ros2]` says.
    Ros2,
    /// A synthetic moving test pattern (a poster panned, zoomed and rotated, 5 s per motion)
    /// at `source.fps`, `source.width` × `source.height`, poster `source.seed`; it never ends.
    /// For soak tests and for trying the runtime without a camera.
    Pattern,
}

/// How file sources are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// At the frames' own timestamps.
    Realtime,
    /// As fast as they decode.
    Max,
}

/// `[source]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Which source.
    pub kind: SourceKind,
    /// Simulator scene, e.g. `city_0000` or `indoor_0002`.
    pub scene: String,
    /// Simulator video index within the scene.
    pub video: u32,
    /// Simulator seed.
    pub seed: u64,
    /// Simulator image width.
    pub width: u32,
    /// Simulator image height.
    pub height: u32,
    /// Simulator actions per flight.
    pub actions: u32,
    /// Simulator frames per action.
    pub frames_per_action: u32,
    /// Frame rate of the simulator, or of an image folder.
    pub fps: f64,
    /// File path (folder, video, mcap).
    pub path: Option<PathBuf>,
    /// Image topic (mcap, ros2).
    pub topic: Option<String>,
    /// Camera device index.
    pub device: u32,
    /// Pacing of file and simulator sources.
    pub rate: Rate,
    /// Frames the source may queue before the oldest is dropped.
    pub queue: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Sim,
            scene: "city_0000".into(),
            video: 0,
            seed: 0,
            width: 320,
            height: 240,
            actions: 10,
            frames_per_action: 4,
            fps: 4.0,
            path: None,
            topic: None,
            device: 0,
            rate: Rate::Realtime,
            queue: 8,
        }
    }
}

/// `[keyframes]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyframeConfig {
    /// Frames per second considered for selection (the paper downsamples to about 1 fps);
    /// 0 considers every frame.
    pub sample_fps: f64,
    /// Keep a frame when its view overlap with the last key frame is below this.
    pub keep_below: f64,
    /// Also keep a frame when no key frame was kept for this many seconds (0 = never), so a
    /// slow pan still leaves a trail of key frames to answer from.
    pub max_gap_s: f64,
    /// Publish every key frame on `<prefix>/keyframes`.
    pub publish: bool,
}

impl Default for KeyframeConfig {
    fn default() -> Self {
        KeyframeConfig {
            sample_fps: 1.0,
            keep_below: 0.5,
            max_gap_s: 2.0,
            publish: true,
        }
    }
}

/// `[buffer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Most key frames held.
    pub max_frames: usize,
    /// Most JPEG bytes held.
    pub max_bytes: usize,
    /// JPEG quality of stored key frames.
    pub jpeg_quality: u8,
    /// Most key frames one question's window uses (the paper's 32).
    pub window_max: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_frames: 256,
            max_bytes: 64 << 20,
            jpeg_quality: 90,
            window_max: 32,
        }
    }
}

/// Which describer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DescriberKind {
    /// The simulator's ground truth (needs `source.kind = "sim"`).
    Sim,
    /// An OpenAI-compatible VLM server (`[describer.openai]`).
    Openai,
    /// A vision-language model in this process (`describer.vlm`, a SmolVLM/Idefics3 folder).
    Local,
}

/// `[describer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DescriberConfig {
    /// Which describer.
    pub kind: DescriberKind,
    /// Sim describer: probability of missing a visible object.
    pub miss: f32,
    /// Sim describer: probability of a wrong colour.
    pub wrong_color: f32,
    /// Sim describer: probability of swapping left and right.
    pub swap_left_right: f32,
    /// Sim describer: probability of a wrong action.
    pub wrong_action: f32,
    /// Sim describer seed.
    pub seed: u64,
    /// Descriptions cached per (window, question).
    pub cache: usize,
    /// OpenAI-compatible server settings.
    pub openai: OpenAiConfig,
    /// Local describer: the Hugging Face VLM folder (SmolVLM, SmolVLM2, Idefics3).
    pub vlm: Option<PathBuf>,
    /// Local describer: most tokens per frame description.
    pub vlm_max_tokens: usize,
}

impl Default for DescriberConfig {
    fn default() -> Self {
        DescriberConfig {
            kind: DescriberKind::Sim,
            miss: 0.0,
            wrong_color: 0.0,
            swap_left_right: 0.0,
            wrong_action: 0.0,
            seed: 0,
            cache: 64,
            openai: OpenAiConfig::default(),
            vlm: None,
            vlm_max_tokens: 256,
        }
    }
}

/// Where `fetch-model` installs the shipped adapter of the embedded model.
pub const DEFAULT_ADAPTER: &str = "models/embodied-r-smollm2";

/// `[reasoner]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReasonerConfig {
    /// A `.gguf` file or a Hugging Face folder.
    pub model: PathBuf,
    /// A PEFT LoRA adapter folder put on the model at load (unmerged: packed weights keep their
    /// kernels). Default: the trained adapter `fetch-model` installs beside the embedded model.
    /// Empty: the bare model.
    pub adapter: String,
    /// Most tokens per answer.
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    pub temperature: f32,
    /// Nucleus sampling (1 = off).
    pub top_p: f32,
    /// Sampling seed (recorded with every episode).
    pub seed: u64,
    /// Run the logical-consistency check (a second, short LM pass) on every answer.
    pub consistency: bool,
    /// CPU threads.
    pub threads: usize,
    /// `fast` (packed, 8-bit activations), `packed` or `dense`.
    pub weights: String,
    /// Most prompt tokens; longer video texts are trimmed from the oldest frames, with a
    /// warning, so the system prompt and the question are never lost.
    pub max_prompt_tokens: usize,
    /// Text after the generation prompt that the model continues from, e.g. `"<think>"` for a
    /// model trained with the trainer's `grpo.response_prefix`; it is part of the recorded
    /// completion and of what is parsed. Empty: none.
    pub response_prefix: String,
}

impl Default for ReasonerConfig {
    fn default() -> Self {
        ReasonerConfig {
            model: PathBuf::from("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            adapter: DEFAULT_ADAPTER.into(),
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            consistency: true,
            threads: 2,
            weights: "fast".into(),
            max_prompt_tokens: 1792,
            response_prefix: String::new(),
        }
    }
}

/// zenoh mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZenohMode {
    /// Talk to peers directly (the default).
    Peer,
    /// Go through a router (`zenoh.connect`).
    Client,
}

/// `[zenoh]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZenohConfig {
    /// Peer or client.
    pub mode: ZenohMode,
    /// Endpoints (routers or peers) to connect to.
    pub connect: Vec<String>,
    /// Endpoints to listen on, e.g. `tcp/127.0.0.1:7447`.
    pub listen: Vec<String>,
    /// Multicast scouting (finds peers on the LAN).
    pub multicast: bool,
    /// Key prefix; `{robot_id}` is replaced.
    pub prefix: String,
    /// Status publication period.
    pub status_period_ms: u64,
    /// A zenoh JSON5 configuration file read first: access control (who may ask, who may
    /// publish), TLS and mutual TLS (`transport.link.tls`), authentication. `mode`, `connect`,
    /// `listen` and `multicast` here override it (SECURITY.md shows a deployment).
    pub config: Option<PathBuf>,
    /// Largest zenoh message reassembled from the network, bytes (zenoh's
    /// `transport/link/rx/max_message_size`, which defaults to 1 GiB): bigger ones are dropped by
    /// the transport. Raw camera images over zenoh must fit (a 4K RGB frame is 25 MiB).
    pub max_message_bytes: usize,
}

impl Default for ZenohConfig {
    fn default() -> Self {
        ZenohConfig {
            mode: ZenohMode::Peer,
            connect: vec![],
            listen: vec![],
            multicast: true,
            prefix: "robots/{robot_id}/embodied-r".into(),
            status_period_ms: 1000,
            config: None,
            max_message_bytes: 64 << 20,
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Questions waiting beyond the one being answered; more are refused as `busy`.
    pub queue: usize,
    /// Questions one client (the request's `client`, or `anonymous`) may have waiting or being
    /// answered at once; more from it are refused as `busy` while others still get in.
    pub per_client: usize,
    /// Longest question (with choices) in bytes.
    pub max_question_bytes: usize,
    /// Most choices.
    pub max_choices: usize,
    /// Deadline when the request gives none.
    pub default_deadline_ms: u64,
    /// Shorter deadlines are refused up front.
    pub min_deadline_ms: u64,
    /// On shutdown, how long the question being answered may take to finish.
    pub shutdown_grace_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            queue: 4,
            per_client: 2,
            max_question_bytes: 4096,
            max_choices: 8,
            default_deadline_ms: 120_000,
            min_deadline_ms: 200,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// When records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every record (and its frame files): nothing acknowledged is lost on power loss.
    Always,
    /// Leave it to the OS: a process crash loses nothing, a power loss may lose the last
    /// seconds.
    Never,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Write episodes at all.
    pub enabled: bool,
    /// Directory (segments and frames).
    pub dir: PathBuf,
    /// fsync policy.
    pub fsync: FsyncPolicy,
    /// Start a new segment beyond this size.
    pub segment_bytes: u64,
    /// Keep at most this many segments (oldest deleted with their frames).
    pub max_segments: usize,
    /// Store key frames as JPEG files.
    pub frames: bool,
    /// Publish each logged episode (record and key frames) on `<prefix>/episode` and serve the
    /// log on `<prefix>/episodes`, for `embodied-r episodes collect`.
    pub publish: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            enabled: true,
            dir: PathBuf::from("episodes"),
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 << 20,
            max_segments: 32,
            frames: true,
            publish: true,
        }
    }
}

/// How the runtime reaches a ROS 2 system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ros2Transport {
    /// No ROS 2 side.
    Off,
    /// ROS 2 topics on the runtime's zenoh session in zenoh-bridge-ros2dds' key layout (a DDS
    /// ROS 2 system with the bridge running beside it).
    Bridge,
    /// ROS 2 topics on the runtime's zenoh session in rmw_zenoh's key layout.
    RmwZenoh,
    /// A ROS 2 node through r2r (build feature `ros2`, a sourced ROS 2 at build and run time).
    R2r,
}

/// Which message an image topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageMessage {
    /// `CompressedImage` when the topic name ends in `/compressed` (image_transport's
    /// convention), `Image` otherwise.
    Auto,
    /// `sensor_msgs/msg/Image`.
    Raw,
    /// `sensor_msgs/msg/CompressedImage`.
    Compressed,
}

/// `[ros2]`: the ROS 2 side (topics, transport). Topic names are ROS names; relative ones
/// resolve in `namespace`. An empty optional topic turns that publication off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ros2Config {
    /// How ROS 2 is reached.
    pub transport: Ros2Transport,
    /// Namespace relative names resolve in (the node's namespace with r2r).
    pub namespace: String,
    /// Node name (r2r).
    pub node_name: String,
    /// zenoh-bridge-ros2dds' own `namespace` setting, prefixed to every key (bridge layout).
    pub bridge_namespace: String,
    /// `ROS_DOMAIN_ID` (rmw_zenoh layout).
    pub domain: u32,
    /// rmw_zenoh keys carry REP-2016 type hashes (Iron and later); false for Humble.
    pub type_hashes: bool,
    /// Which message `source.topic` carries.
    pub image_message: ImageMessage,
    /// Image subscription reliability (r2r): false is ROS 2's sensor-data profile (best effort),
    /// which also matches reliable publishers.
    pub image_reliable: bool,
    /// `nav_msgs/msg/Odometry` whose pose is attached to frames; empty: none.
    pub odom_topic: String,
    /// The camera in the odometry's child frame: `[x, y, z, roll, pitch, yaw]` (metres,
    /// radians) of a body frame with x forward, y left, z up (REP 103); the optical frame (z
    /// forward, x right, y down) follows from it.
    pub camera_mount: [f64; 6],
    /// `std_msgs/msg/String` questions in: a JSON ask request, or plain text for a free-form
    /// question.
    pub question_topic: String,
    /// `std_msgs/msg/String` answers out (the ask reply JSON; refusals of questions from
    /// `question_topic` too).
    pub answer_topic: String,
    /// `std_msgs/msg/String` navigation hints out (JSON).
    pub nav_hint_topic: String,
    /// The `Ask` action (r2r): goal question/choices/window, feedback, result.
    pub action: String,
    /// Advisory `geometry_msgs/msg/TwistStamped` for each nav hint; empty (the default): off.
    pub cmd_vel_topic: String,
    /// `header.frame_id` of the advisory twist.
    pub cmd_vel_frame: String,
    /// Speed of an advisory move, m/s.
    pub linear_speed: f64,
    /// Rate of an advisory rotation, rad/s.
    pub angular_speed: f64,
}

impl Default for Ros2Config {
    fn default() -> Self {
        Ros2Config {
            transport: Ros2Transport::Off,
            namespace: "/".into(),
            node_name: "embodied_r".into(),
            bridge_namespace: "/".into(),
            domain: 0,
            type_hashes: true,
            image_message: ImageMessage::Auto,
            image_reliable: false,
            odom_topic: String::new(),
            camera_mount: [0.0; 6],
            question_topic: "/embodied_r/question".into(),
            answer_topic: "/embodied_r/answer".into(),
            nav_hint_topic: "/embodied_r/nav_hint".into(),
            action: "/embodied_r/ask".into(),
            cmd_vel_topic: String::new(),
            cmd_vel_frame: "base_link".into(),
            linear_speed: 0.2,
            angular_speed: 0.3,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Robot id, used in the key prefix.
    pub robot_id: String,
    /// Frames.
    pub source: SourceConfig,
    /// Key-frame selection.
    pub keyframes: KeyframeConfig,
    /// Key-frame buffer.
    pub buffer: BufferConfig,
    /// Describer.
    pub describer: DescriberConfig,
    /// Reasoning LM.
    pub reasoner: ReasonerConfig,
    /// Network.
    pub zenoh: ZenohConfig,
    /// Ask API.
    pub api: ApiConfig,
    /// Episode log.
    pub log: LogConfig,
    /// ROS 2.
    pub ros2: Ros2Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            robot_id: "robot".into(),
            source: SourceConfig::default(),
            keyframes: KeyframeConfig::default(),
            buffer: BufferConfig::default(),
            describer: DescriberConfig::default(),
            reasoner: ReasonerConfig::default(),
            zenoh: ZenohConfig::default(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
            ros2: Ros2Config::default(),
        }
    }
}

/// `EMBODIED_R_*` variables the command line reads for itself; they are not configuration
/// keys (`run --config`, `fetch-model`'s Python, the console's robot id).
pub const CLI_VARIABLES: [&str; 3] = ["EMBODIED_R_CONFIG", "EMBODIED_R_PYTHON", "EMBODIED_R_ROBOT"];

/// Builds a [`Config`] from layers, remembering where each key was set.
#[derive(Debug, Default)]
pub struct ConfigLoader {
    table: toml::Table,
    origins: BTreeMap<String, String>,
}

impl ConfigLoader {
    /// Starts from the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a TOML file. Relative paths inside it (model, log dir, source path) are relative
    /// to the directory the runtime is started in.
    pub fn file(mut self, path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: e.to_string().trim().to_string(),
                })?;
        let origin = format!("in {}", path.display());
        let mut keys = Vec::new();
        leaf_keys(&table, "", &mut keys);
        for k in keys {
            self.origins.insert(k, origin.clone());
        }
        merge(&mut self.table, table);
        Ok(self)
    }

    /// Applies `EMBODIED_R_*` variables from `vars` (pass `std::env::vars()`).
    pub fn env(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut vars: Vec<_> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("EMBODIED_R_"))
            .collect();
        vars.sort();
        for (name, raw) in vars {
            if CLI_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            let key = name["EMBODIED_R_".len()..]
                .to_lowercase()
                .replace("__", ".");
            self.set(&key, &raw, format!("from environment variable {name}"))?;
        }
        Ok(self)
    }

    /// Applies `KEY=VALUE` overrides (from `--set`).
    pub fn overrides<'a>(
        mut self,
        sets: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ConfigError> {
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| ConfigError::Override(s.to_string()))?;
            self.set(k.trim(), v, format!("from --set {s}"))?;
        }
        Ok(self)
    }

    /// Sets one key from a raw string (parsed as a TOML value, else taken as a string).
    pub fn set(&mut self, key: &str, raw: &str, origin: String) -> Result<(), ConfigError> {
        let value = parse_value(raw);
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::Override(format!("{key}={raw}")));
        }
        let mut t = &mut self.table;
        for p in &parts[..parts.len() - 1] {
            let entry = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            t = match entry {
                toml::Value::Table(t) => t,
                other => {
                    return Err(ConfigError::Value {
                        key: key.to_string(),
                        value: raw.to_string(),
                        expected: format!("`{p}` to be a table, but it is {}", other.type_str()),
                        origin,
                    });
                }
            };
        }
        t.insert(parts[parts.len() - 1].to_string(), value);
        self.origins.insert(key.to_string(), origin);
        Ok(())
    }

    /// Where a key was set (the nearest set ancestor counts), or "default".
    fn origin(&self, key: &str) -> String {
        let mut k = key.to_string();
        loop {
            if let Some(o) = self.origins.get(&k) {
                return o.clone();
            }
            match k.rfind('.') {
                Some(i) => k.truncate(i),
                None => return "default".into(),
            }
        }
    }

    /// Deserializes and validates.
    pub fn build(self) -> Result<Config, ConfigError> {
        let value = toml::Value::Table(self.table.clone());
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Key {
                origin: self.origin(&key),
                message: e.into_inner().to_string(),
                key,
            }
        })?;
        config.validate(|k| self.origin(k))?;
        Ok(config)
    }
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn leaf_keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => leaf_keys(inner, &key, out),
            _ => out.push(key),
        }
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

impl Config {
    /// Reads `path`, then the environment, then `sets`.
    pub fn load<'a>(
        path: &Path,
        sets: impl IntoIterator<Item = &'a str>,
    ) -> Result<Config, ConfigError> {
        ConfigLoader::new()
            .file(path)?
            .env(std::env::vars())?
            .overrides(sets)?
            .build()
    }

    /// The key prefix with the robot id filled in.
    pub fn prefix(&self) -> String {
        self.zenoh.prefix.replace("{robot_id}", &self.robot_id)
    }

    /// Range and consistency checks; `origin` says where a key was set.
    pub fn validate(&self, origin: impl Fn(&str) -> String) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, expected: &str| {
            Err(ConfigError::Value {
                key: key.into(),
                value,
                expected: expected.into(),
                origin: origin(key),
            })
        };
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !id_ok(&self.robot_id) {
            return bad(
                "robot_id",
                format!("{:?}", self.robot_id),
                "letters, digits, '-' or '_' (it becomes part of zenoh keys)",
            );
        }
        let prefix = self.prefix();
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains("//")
            || prefix.contains(['*', '$', '?', '#'])
        {
            return bad(
                "zenoh.prefix",
                format!("{:?}", self.zenoh.prefix),
                "a key expression like robots/{robot_id}/embodied-r (no wildcards, no leading or trailing '/')",
            );
        }
        let s = &self.source;
        match s.kind {
            SourceKind::Sim | SourceKind::Pattern => {
                if s.kind == SourceKind::Sim && embodied_r_sim_scene(&s.scene).is_none() {
                    return bad(
                        "source.scene",
                        format!("{:?}", s.scene),
                        "city_NNNN or indoor_NNNN, e.g. city_0000",
                    );
                }
                if s.kind == SourceKind::Pattern && u32::try_from(s.seed).is_err() {
                    return bad(
                        "source.seed",
                        s.seed.to_string(),
                        "a pattern seed below 2^32",
                    );
                }
                if !(16..=4096).contains(&s.width) || !(16..=4096).contains(&s.height) {
                    return bad(
                        "source.width",
                        format!("{}x{}", s.width, s.height),
                        "a size between 16 and 4096 pixels per side",
                    );
                }
            }
            SourceKind::Folder | SourceKind::Video | SourceKind::Mcap => {
                if s.path.is_none() {
                    return bad(
                        "source.path",
                        "(not set)".into(),
                        "a path: folder, video and mcap sources read a file or folder",
                    );
                }
                if s.kind == SourceKind::Mcap && s.topic.is_none() {
                    return bad(
                        "source.topic",
                        "(not set)".into(),
                        "an image topic of the bag, e.g. /camera/image_raw",
                    );
                }
            }
            SourceKind::Camera => {}
            SourceKind::Ros2 => {
                if self.ros2.transport == Ros2Transport::Off {
                    return bad(
                        "ros2.transport",
                        "\"off\"".into(),
                        "\"bridge\", \"rmw_zenoh\" or \"r2r\" when source.kind = \"ros2\"",
                    );
                }
                if s.topic.is_none() {
                    return bad(
                        "source.topic",
                        "(not set)".into(),
                        "the ROS 2 image topic, e.g. /camera/image_raw",
                    );
                }
            }
        }
        if matches!(s.kind, SourceKind::Ros2 | SourceKind::Mcap)
            && let Some(t) = &s.topic
            && let Err(e) = crate::ros2::names::qualify(&self.ros2.namespace, t)
        {
            return bad("source.topic", format!("{t:?}"), &e.why);
        }
        let ros = &self.ros2;
        if ros.transport != Ros2Transport::Off {
            if ros.namespace != "/"
                && let Err(e) = crate::ros2::names::qualify("/", &ros.namespace)
            {
                return bad("ros2.namespace", format!("{:?}", ros.namespace), &e.why);
            }
            for (key, topic, optional) in [
                ("ros2.odom_topic", &ros.odom_topic, true),
                ("ros2.question_topic", &ros.question_topic, true),
                ("ros2.answer_topic", &ros.answer_topic, true),
                ("ros2.nav_hint_topic", &ros.nav_hint_topic, true),
                (
                    "ros2.action",
                    &ros.action,
                    ros.transport != Ros2Transport::R2r,
                ),
                ("ros2.cmd_vel_topic", &ros.cmd_vel_topic, true),
            ] {
                if topic.is_empty() && optional {
                    continue;
                }
                if let Err(e) = crate::ros2::names::qualify(&ros.namespace, topic) {
                    return bad(key, format!("{topic:?}"), &e.why);
                }
            }
            if ros.node_name.is_empty()
                || ros.node_name.starts_with(|c: char| c.is_ascii_digit())
                || !ros
                    .node_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return bad(
                    "ros2.node_name",
                    format!("{:?}", ros.node_name),
                    "letters, digits and '_', not starting with a digit",
                );
            }
            for (key, v) in [
                ("ros2.linear_speed", ros.linear_speed),
                ("ros2.angular_speed", ros.angular_speed),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(key, v.to_string(), "a speed >= 0");
                }
            }
            if ros.camera_mount.iter().any(|v| !v.is_finite()) {
                return bad(
                    "ros2.camera_mount",
                    format!("{:?}", ros.camera_mount),
                    "six finite numbers [x, y, z, roll, pitch, yaw]",
                );
            }
        }
        if !(s.fps.is_finite() && s.fps > 0.0 && s.fps <= 1000.0) {
            return bad("source.fps", s.fps.to_string(), "a frame rate in (0, 1000]");
        }
        if s.queue == 0 {
            return bad("source.queue", "0".into(), "at least 1 frame");
        }
        let k = &self.keyframes;
        if !(k.sample_fps.is_finite() && k.sample_fps >= 0.0) {
            return bad(
                "keyframes.sample_fps",
                k.sample_fps.to_string(),
                "0 (every frame) or a positive rate",
            );
        }
        if !(k.max_gap_s.is_finite() && k.max_gap_s >= 0.0) {
            return bad(
                "keyframes.max_gap_s",
                k.max_gap_s.to_string(),
                "0 (off) or a positive number of seconds",
            );
        }
        if !(k.keep_below > 0.0 && k.keep_below <= 1.0) {
            return bad(
                "keyframes.keep_below",
                k.keep_below.to_string(),
                "an overlap in (0, 1]",
            );
        }
        let b = &self.buffer;
        if b.max_frames < 4 {
            return bad("buffer.max_frames", b.max_frames.to_string(), "at least 4");
        }
        if !(1..=100).contains(&b.jpeg_quality) {
            return bad("buffer.jpeg_quality", b.jpeg_quality.to_string(), "1..=100");
        }
        if !(4..=256).contains(&b.window_max) {
            return bad(
                "buffer.window_max",
                b.window_max.to_string(),
                "4..=256 key frames (the paper uses 4..=32)",
            );
        }
        let d = &self.describer;
        for (key, v) in [
            ("describer.miss", d.miss),
            ("describer.wrong_color", d.wrong_color),
            ("describer.swap_left_right", d.swap_left_right),
            ("describer.wrong_action", d.wrong_action),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, v.to_string(), "a probability in [0, 1]");
            }
        }
        if d.kind == DescriberKind::Sim && s.kind != SourceKind::Sim {
            return bad(
                "describer.kind",
                "\"sim\"".into(),
                "\"openai\" or \"local\" unless source.kind = \"sim\" (the sim describer reads the simulator's ground truth)",
            );
        }
        if d.kind == DescriberKind::Local {
            match &d.vlm {
                None => {
                    return bad(
                        "describer.vlm",
                        "nothing".into(),
                        "the path of a vision-language model folder (SmolVLM, SmolVLM2, Idefics3) with describer.kind = \"local\"",
                    );
                }
                Some(p) if !p.join("config.json").is_file() => {
                    return bad(
                        "describer.vlm",
                        format!("{:?}", p.display().to_string()),
                        "a Hugging Face model folder holding config.json",
                    );
                }
                Some(_) => {}
            }
            if d.vlm_max_tokens == 0 || d.vlm_max_tokens > 4096 {
                return bad(
                    "describer.vlm_max_tokens",
                    d.vlm_max_tokens.to_string(),
                    "1..=4096",
                );
            }
        }
        let r = &self.reasoner;
        if r.max_tokens == 0 || r.max_tokens > 8192 {
            return bad("reasoner.max_tokens", r.max_tokens.to_string(), "1..=8192");
        }
        if !(r.temperature.is_finite() && r.temperature >= 0.0) {
            return bad(
                "reasoner.temperature",
                r.temperature.to_string(),
                "a number >= 0 (0 = greedy)",
            );
        }
        if !(r.top_p > 0.0 && r.top_p <= 1.0) {
            return bad("reasoner.top_p", r.top_p.to_string(), "a number in (0, 1]");
        }
        if !matches!(r.weights.as_str(), "fast" | "packed" | "dense") {
            return bad(
                "reasoner.weights",
                format!("{:?}", r.weights),
                "\"fast\", \"packed\" or \"dense\"",
            );
        }
        if r.threads == 0 || r.threads > 256 {
            return bad("reasoner.threads", r.threads.to_string(), "1..=256");
        }
        if r.max_prompt_tokens < 256 {
            return bad(
                "reasoner.max_prompt_tokens",
                r.max_prompt_tokens.to_string(),
                "at least 256",
            );
        }
        if r.adapter.len() > 4096 || r.adapter.contains('\0') {
            return bad(
                "reasoner.adapter",
                format!("{} bytes", r.adapter.len()),
                "a folder path (PEFT adapter_config.json + adapter_model.safetensors), or empty",
            );
        }
        if r.response_prefix.len() > 256 {
            return bad(
                "reasoner.response_prefix",
                format!("{} bytes", r.response_prefix.len()),
                "at most 256 bytes (a tag such as \"<think>\")",
            );
        }
        for (key, list) in [
            ("zenoh.connect", &self.zenoh.connect),
            ("zenoh.listen", &self.zenoh.listen),
        ] {
            for ep in list {
                if !ep.contains('/') {
                    return bad(
                        key,
                        format!("{ep:?}"),
                        "endpoints like tcp/127.0.0.1:7447 or udp/[::1]:7447",
                    );
                }
            }
        }
        if let Some(p) = &self.zenoh.config
            && !p.is_file()
        {
            return bad(
                "zenoh.config",
                format!("{:?}", p.display().to_string()),
                "a zenoh JSON5 configuration file that exists",
            );
        }
        if self.zenoh.mode == ZenohMode::Client
            && self.zenoh.connect.is_empty()
            && self.zenoh.config.is_none()
        {
            return bad(
                "zenoh.connect",
                "[]".into(),
                "at least one router endpoint when zenoh.mode = \"client\"",
            );
        }
        if self.zenoh.status_period_ms < 50 {
            return bad(
                "zenoh.status_period_ms",
                self.zenoh.status_period_ms.to_string(),
                "at least 50",
            );
        }
        if self.zenoh.max_message_bytes < 1 << 20 {
            return bad(
                "zenoh.max_message_bytes",
                self.zenoh.max_message_bytes.to_string(),
                "at least 1048576 (1 MiB: an ask request alone may be 256 KiB)",
            );
        }
        let a = &self.api;
        if a.max_question_bytes < 16 {
            return bad(
                "api.max_question_bytes",
                a.max_question_bytes.to_string(),
                "at least 16",
            );
        }
        if a.per_client == 0 {
            return bad("api.per_client", "0".into(), "at least 1 question");
        }
        if !(2..=8).contains(&a.max_choices) {
            return bad("api.max_choices", a.max_choices.to_string(), "2..=8");
        }
        if a.min_deadline_ms > a.default_deadline_ms {
            return bad(
                "api.min_deadline_ms",
                a.min_deadline_ms.to_string(),
                "no more than api.default_deadline_ms",
            );
        }
        let l = &self.log;
        if l.segment_bytes < 4096 {
            return bad(
                "log.segment_bytes",
                l.segment_bytes.to_string(),
                "at least 4096",
            );
        }
        if l.max_segments == 0 {
            return bad("log.max_segments", "0".into(), "at least 1");
        }
        Ok(())
    }
}

/// Parses `city_0003` / `indoor_0012` into the simulator's kind and index.
pub fn embodied_r_sim_scene(name: &str) -> Option<(embodied_r_sim::SceneKind, u32)> {
    let (kind, idx) = name.rsplit_once('_')?;
    let kind = match kind {
        "city" => embodied_r_sim::SceneKind::City,
        "indoor" => embodied_r_sim::SceneKind::Indoor,
        _ => return None,
    };
    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((kind, idx.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)], sets: &[&str]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        ConfigLoader::new()
            .file(&p)?
            .env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))?
            .overrides(sets.iter().copied())?
            .build()
    }

    #[test]
    fn layers_file_env_and_flags() {
        let c = load(
            "robot_id = \"sim\"\n[api]\nqueue = 2\n",
            &[
                ("EMBODIED_R_API__QUEUE", "5"),
                ("EMBODIED_R_ZENOH__LISTEN", "[\"tcp/127.0.0.1:7000\"]"),
                ("OTHER", "x"),
                ("EMBODIED_R_CONFIG", "x.toml"),
                ("EMBODIED_R_ROBOT", "other"),
            ],
            &["reasoner.max_tokens=32"],
        )
        .unwrap();
        assert_eq!(c.robot_id, "sim");
        assert_eq!(c.api.queue, 5);
        assert_eq!(c.zenoh.listen, ["tcp/127.0.0.1:7000"]);
        assert_eq!(c.reasoner.max_tokens, 32);
        assert_eq!(c.prefix(), "robots/sim/embodied-r");
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_accepted_ones() {
        let e = load("[api]\nqueu = 2\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("`api`") || e.contains("api.queu"), "{e}");
        assert!(e.contains("queu") && e.contains("queue"), "{e}");
        let e = load("colour = 1\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("robot_id"), "{e}");
    }

    #[test]
    fn wrong_types_name_key_value_and_origin() {
        let e = load("", &[("EMBODIED_R_API__QUEUE", "many")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.queue"), "{e}");
        assert!(e.contains("many"), "{e}");
        assert!(e.contains("EMBODIED_R_API__QUEUE"), "{e}");
        let e = load("[source]\nkind = \"webcam\"\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("source.kind") && e.contains("webcam") && e.contains("folder"),
            "{e}"
        );
        assert!(e.contains("c.toml"), "{e}");
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        for (text, key, want) in [
            ("robot_id = \"my robot\"", "robot_id", "letters"),
            (
                "[source]\nscene = \"garden_1\"",
                "source.scene",
                "city_NNNN",
            ),
            (
                "[source]\nkind = \"folder\"\n[describer]\nkind = \"openai\"",
                "source.path",
                "a path",
            ),
            (
                "[source]\nkind = \"folder\"\npath = \"x\"",
                "describer.kind",
                "openai",
            ),
            (
                "[reasoner]\nweights = \"int4\"",
                "reasoner.weights",
                "\"fast\"",
            ),
            (
                "[zenoh]\nlisten = [\"127.0.0.1:7447\"]",
                "zenoh.listen",
                "tcp/",
            ),
            ("[zenoh]\nmode = \"client\"", "zenoh.connect", "router"),
            (
                "[zenoh]\nmax_message_bytes = 4096",
                "zenoh.max_message_bytes",
                "1 MiB",
            ),
            ("[api]\nper_client = 0", "api.per_client", "at least 1"),
            (
                "[source]\nkind = \"pattern\"\nseed = 4294967296",
                "source.seed",
                "2^32",
            ),
            ("[buffer]\nwindow_max = 2", "buffer.window_max", "4..=256"),
            ("[describer]\nmiss = 1.5", "describer.miss", "probability"),
            (
                "[source]\nkind = \"folder\"\npath = \"x\"\n[describer]\nkind = \"local\"",
                "describer.vlm",
                "SmolVLM",
            ),
            (
                "[source]\nkind = \"folder\"\npath = \"x\"\n[describer]\nkind = \"local\"\nvlm = \"/nonexistent/vlm\"",
                "describer.vlm",
                "config.json",
            ),
        ] {
            let e = load(text, &[], &[]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains(want),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn syntax_errors_and_missing_files_name_the_file() {
        let e = load("[api\nqueue = 1", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("not valid TOML") && e.contains("c.toml"), "{e}");
        let e = ConfigLoader::new()
            .file(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.toml"), "{e}");
        let e = ConfigLoader::new()
            .overrides(["novalue"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
    }

    #[test]
    fn plain_strings_need_no_quotes_in_overrides() {
        let c = load(
            "",
            &[("EMBODIED_R_ROBOT_ID", "rover-2")],
            &["source.scene=indoor_0001"],
        )
        .unwrap();
        assert_eq!(c.robot_id, "rover-2");
        assert_eq!(
            embodied_r_sim_scene(&c.source.scene),
            Some((embodied_r_sim::SceneKind::Indoor, 1))
        );
    }
}
