//! The runtime's ROS 2 side: what crosses between ROS 2 messages and the runtime's own types,
//! and the transports that carry them.
//!
//! - [`names`]: ROS names and the zenoh key layouts of zenoh-bridge-ros2dds and rmw_zenoh.
//! - [`over_zenoh`]: ROS 2 topics on the runtime's zenoh session, with no ROS installation: image
//!   and odometry subscriptions, question/answer/nav-hint `String` topics, the advisory twist.
//! - `node` (feature `ros2`): the same through an r2r node, for a robot with ROS 2 installed.
//!
//! Conversions live here in plain Rust so that both transports share them and they are tested
//! without ROS: questions from a `String` ([`question_payload`]), answers and hints to
//! `String`s, nav-hint actions to an advisory [`TwistStamped`] ([`twist_for_action`]), the camera mount
//! ([`camera_mount`]) that turns an odometry pose into the camera pose frames carry.
//! Message bytes (CDR) are the perception crate's (`embodied_r_perception::ros`).

pub mod names;
#[cfg(feature = "ros2")]
pub mod node;
pub mod over_zenoh;

use crate::api::AskRequest;
use crate::config::{ImageMessage, Ros2Config};
use embodied_r_perception::ros::msg::{Header, Odometry, StringMsg, Twist, TwistStamped, Vector3};
use embodied_r_perception::ros::{COMPRESSED_IMAGE, IMAGE, image_to_frame};
use embodied_r_perception::source::{CameraSource, SourceError, SourceStats};
use embodied_r_perception::{Action, DropOldest, Frame, Pose};
use nalgebra::{Isometry3, Translation3, UnitQuaternion};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The REP-2016 hash of the message types this crate knows (what rmw_zenoh keys carry).
pub fn known_type_hash(ros_type: &str) -> Option<&'static str> {
    use embodied_r_perception::ros::msg::{
        CompressedImageMsg, ImageMsg, Odometry, RosType, StringMsg,
    };
    [
        (ImageMsg::NAME, ImageMsg::RIHS01),
        (CompressedImageMsg::NAME, CompressedImageMsg::RIHS01),
        (StringMsg::NAME, StringMsg::RIHS01),
        (Odometry::NAME, Odometry::RIHS01),
        (TwistStamped::NAME, TwistStamped::RIHS01),
    ]
    .into_iter()
    .find(|(n, _)| *n == ros_type)
    .map(|(_, h)| h)
}

/// The ROS type of the image topic.
pub fn image_type(message: ImageMessage, topic: &str) -> &'static str {
    match message {
        ImageMessage::Raw => IMAGE,
        ImageMessage::Compressed => COMPRESSED_IMAGE,
        ImageMessage::Auto if topic.ends_with("/compressed") => COMPRESSED_IMAGE,
        ImageMessage::Auto => IMAGE,
    }
}

/// The camera's optical frame (z forward, x right, y down) in the odometry child frame, from
/// `[x, y, z, roll, pitch, yaw]` of the camera body (x forward, y left, z up).
pub fn camera_mount(m: &[f64; 6]) -> Pose {
    let body = Isometry3::from_parts(
        Translation3::new(m[0], m[1], m[2]),
        UnitQuaternion::from_euler_angles(m[3], m[4], m[5]),
    );
    // Optical axes in body axes: z_opt = x_body, x_opt = −y_body, y_opt = −z_body.
    let optical = UnitQuaternion::from_euler_angles(
        -std::f64::consts::FRAC_PI_2,
        0.0,
        -std::f64::consts::FRAC_PI_2,
    );
    body * Isometry3::from_parts(Translation3::identity(), optical)
}

/// The ask request a `String` question stands for: JSON that parses as an [`AskRequest`] is
/// one; anything else is the text of a free-form question.
pub fn question_payload(text: &str) -> Vec<u8> {
    let t = text.trim_start();
    if t.starts_with('{') && serde_json::from_str::<AskRequest>(t).is_ok() {
        return t.as_bytes().to_vec();
    }
    let req = AskRequest {
        question: text.to_string(),
        choices: None,
        window: None,
        deadline_ms: None,
        ground_truth: None,
        category: None,
        client: Some("ros2-topic".into()),
    };
    serde_json::to_vec(&req).unwrap_or_default()
}

/// The advisory twist for a nav hint's action phrase (REP 103 base axes): moves at
/// `linear_speed`, rotations at `angular_speed`; tilting the camera moves no base, so it gives
/// none, as does a phrase that is not one of the ten actions.
pub fn twist_for_action(action: &str, cfg: &Ros2Config, stamp: f64) -> Option<TwistStamped> {
    let action: Action = action.parse().ok()?;
    let (v, w) = (cfg.linear_speed, cfg.angular_speed);
    let mut twist = Twist::default();
    let lin = |x, y, z| Vector3 { x, y, z };
    match action {
        Action::MoveForward => twist.linear = lin(v, 0.0, 0.0),
        Action::MoveBackward => twist.linear = lin(-v, 0.0, 0.0),
        Action::MoveLeft => twist.linear = lin(0.0, v, 0.0),
        Action::MoveRight => twist.linear = lin(0.0, -v, 0.0),
        Action::MoveUpward => twist.linear = lin(0.0, 0.0, v),
        Action::MoveDownward => twist.linear = lin(0.0, 0.0, -v),
        Action::RotateLeft => twist.angular = lin(0.0, 0.0, w),
        Action::RotateRight => twist.angular = lin(0.0, 0.0, -w),
        Action::TiltUpward | Action::TiltDownward => return None,
    }
    Some(TwistStamped {
        header: Header::at(stamp, &cfg.cmd_vel_frame),
        twist,
    })
}

/// A ROS 2 parameter value (rcl's kinds that a config value can take).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// `bool`.
    Bool(bool),
    /// `int64`.
    Integer(i64),
    /// `double`.
    Double(f64),
    /// `string`.
    String(String),
    /// `bool[]`.
    BoolArray(Vec<bool>),
    /// `int64[]`.
    IntegerArray(Vec<i64>),
    /// `double[]`.
    DoubleArray(Vec<f64>),
    /// `string[]`.
    StringArray(Vec<String>),
}

/// The config sections a parameter name may start with (anything else — `use_sim_time`,
/// `qos_overrides.…` — belongs to ROS, not to us).
const SECTIONS: [&str; 10] = [
    "robot_id",
    "source",
    "keyframes",
    "buffer",
    "describer",
    "reasoner",
    "zenoh",
    "api",
    "log",
    "ros2",
];

/// The effective configuration as ROS 2 parameters, one per leaf (`reasoner.max_tokens`), so
/// `ros2 param list/get/dump` shows what the runtime runs with.
pub fn config_parameters(cfg: &crate::Config) -> Vec<(String, ParamValue)> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<(String, ParamValue)>) {
        let p = match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
                return;
            }
            toml::Value::Boolean(b) => ParamValue::Bool(*b),
            toml::Value::Integer(i) => ParamValue::Integer(*i),
            toml::Value::Float(f) => ParamValue::Double(*f),
            toml::Value::String(s) => ParamValue::String(s.clone()),
            toml::Value::Datetime(d) => ParamValue::String(d.to_string()),
            toml::Value::Array(a) => {
                if let Some(v) = a
                    .iter()
                    .map(toml::Value::as_float)
                    .collect::<Option<Vec<_>>>()
                    && !a.is_empty()
                {
                    ParamValue::DoubleArray(v)
                } else if let Some(v) = a
                    .iter()
                    .map(toml::Value::as_integer)
                    .collect::<Option<Vec<_>>>()
                    && !a.is_empty()
                {
                    ParamValue::IntegerArray(v)
                } else if let Some(v) = a
                    .iter()
                    .map(toml::Value::as_bool)
                    .collect::<Option<Vec<_>>>()
                    && !a.is_empty()
                {
                    ParamValue::BoolArray(v)
                } else {
                    ParamValue::StringArray(
                        a.iter()
                            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                            .collect(),
                    )
                }
            }
        };
        out.push((prefix.to_string(), p));
    }
    let mut out = Vec::new();
    if let Ok(v) = toml::Value::try_from(cfg) {
        walk("", &v, &mut out);
    }
    out
}

/// The config override (key, TOML literal) a parameter given at launch stands for, or `None`
/// when the name is not in one of the config's sections.
pub fn parameter_override(name: &str, value: &ParamValue) -> Option<(String, String)> {
    let section = name.split('.').next().unwrap_or("");
    if !SECTIONS.contains(&section) {
        return None;
    }
    let v = match value {
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::Integer(i) => toml::Value::Integer(*i),
        ParamValue::Double(f) => toml::Value::Float(*f),
        ParamValue::String(s) => toml::Value::String(s.clone()),
        ParamValue::BoolArray(a) => {
            toml::Value::Array(a.iter().map(|b| toml::Value::Boolean(*b)).collect())
        }
        ParamValue::IntegerArray(a) => {
            toml::Value::Array(a.iter().map(|i| toml::Value::Integer(*i)).collect())
        }
        ParamValue::DoubleArray(a) => {
            toml::Value::Array(a.iter().map(|f| toml::Value::Float(*f)).collect())
        }
        ParamValue::StringArray(a) => {
            toml::Value::Array(a.iter().map(|s| toml::Value::String(s.clone())).collect())
        }
    };
    Some((name.to_string(), v.to_string()))
}

/// The ask request an `Ask` action goal stands for: `window` is the ask API's window JSON
/// (`{"last_n": 8}`; empty: every held key frame), `deadline_ms` 0 the default.
pub fn goal_payload(
    question: &str,
    choices: &[String],
    window: &str,
    deadline_ms: u32,
) -> Result<Vec<u8>, String> {
    let window = if window.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(window).map_err(|e| {
            format!(
                "goal window {window:?} is not a window ({e}); expected \"all\", {{\"last_seconds\": 30}}, {{\"last_n\": 8}} or {{\"since_seq\": 120}}"
            )
        })?)
    };
    let req = AskRequest {
        question: question.to_string(),
        choices: (!choices.is_empty()).then(|| choices.to_vec()),
        window,
        deadline_ms: (deadline_ms > 0).then_some(u64::from(deadline_ms)),
        ground_truth: None,
        category: None,
        client: Some("ros2-action".into()),
    };
    serde_json::to_vec(&req).map_err(|e| e.to_string())
}

/// What an `Ask` action result carries, from the ask reply JSON: whether it is an answer, the
/// whole reply, the option letter, the answer text and the nav-hint action (empty when absent).
pub fn goal_result(reply: &serde_json::Value) -> (bool, String, String, String, String) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (
        reply.get("error").is_none(),
        reply.to_string(),
        s(&reply["choice"]),
        s(&reply["text"]),
        s(&reply["nav_hint"]["action"]),
    )
}

/// Counters of the ROS 2 side (in the runtime's status), shared with transport callbacks.
#[derive(Debug, Default)]
pub struct RosCounters {
    /// Image messages received (before decoding).
    pub images: AtomicU64,
    /// Odometry messages used.
    pub odometry: AtomicU64,
    /// Odometry messages refused (bad CDR, bad pose).
    pub bad_odometry: AtomicU64,
    /// Questions received (topic and action).
    pub questions: AtomicU64,
    /// Questions that could not be read.
    pub bad_questions: AtomicU64,
    /// Questions dropped because the runtime's intake was full.
    pub dropped_questions: AtomicU64,
    /// Messages published.
    pub published: AtomicU64,
}

/// A snapshot of [`RosCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RosStats {
    /// Image messages received (before decoding).
    pub images: u64,
    /// Odometry messages used.
    pub odometry: u64,
    /// Odometry messages refused.
    pub bad_odometry: u64,
    /// Questions received.
    pub questions: u64,
    /// Questions that could not be read.
    pub bad_questions: u64,
    /// Questions dropped because the runtime's intake was full.
    pub dropped_questions: u64,
    /// Messages published.
    pub published: u64,
}

impl RosCounters {
    /// A snapshot.
    pub fn snapshot(&self) -> RosStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RosStats {
            images: l(&self.images),
            odometry: l(&self.odometry),
            bad_odometry: l(&self.bad_odometry),
            questions: l(&self.questions),
            bad_questions: l(&self.bad_questions),
            dropped_questions: l(&self.dropped_questions),
            published: l(&self.published),
        }
    }

    /// Counts one published message.
    pub fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }
}

/// A question from the ROS 2 side: ask-request JSON, and where its reply goes (an action
/// goal waits for it; a topic question's refusals are published on the answer topic).
pub struct RosQuestion {
    /// Ask-request JSON.
    pub payload: Vec<u8>,
    /// Who waits for the reply.
    pub reply: Option<tokio::sync::oneshot::Sender<serde_json::Value>>,
    /// Where the answer's progress goes (the action's feedback).
    pub progress: Option<tokio::sync::watch::Sender<crate::api::AskProgress>>,
}

/// The topics the runtime publishes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutTopic {
    /// `ros2.answer_topic`.
    Answer,
    /// `ros2.nav_hint_topic`.
    NavHint,
    /// `ros2.cmd_vel_topic`.
    CmdVel,
}

/// The publishers of the runtime's output topics (absent: that topic is off), whatever a
/// transport's publisher type is.
pub struct Outputs<P> {
    /// `ros2.answer_topic`.
    pub answer: Option<P>,
    /// `ros2.nav_hint_topic`.
    pub nav_hint: Option<P>,
    /// `ros2.cmd_vel_topic`.
    pub cmd_vel: Option<P>,
}

impl<P> Outputs<P> {
    /// The publisher of `topic`, if it is on.
    pub fn get(&self, topic: OutTopic) -> Option<&P> {
        match topic {
            OutTopic::Answer => self.answer.as_ref(),
            OutTopic::NavHint => self.nav_hint.as_ref(),
            OutTopic::CmdVel => self.cmd_vel.as_ref(),
        }
    }
}

/// What the runtime needs from a ROS 2 transport once it runs. A transport sends bytes; what
/// goes out on which topic is decided here, once for every transport.
pub trait RosSide: Send + Sync {
    /// Publishes a serialized message on `topic`, if the transport has that topic (off when
    /// its name is empty); failures are logged, never fatal.
    fn send(&self, topic: OutTopic, cdr: Vec<u8>);
    /// Whether `topic` is published at all.
    fn has(&self, topic: OutTopic) -> bool;
    /// The `[ros2]` settings in force.
    fn settings(&self) -> &Ros2Config;
    /// Ends the image stream.
    fn close(&self);
    /// Counters so far.
    fn stats(&self) -> RosStats;

    /// Publishes an answer (or a refusal) as a `std_msgs/String` of JSON.
    fn publish_answer(&self, json: &str) {
        self.send_string(OutTopic::Answer, json);
    }

    /// Publishes a nav hint (JSON with at least `action`) and, when configured, its advisory
    /// twist.
    fn publish_nav_hint(&self, json: &str) {
        self.send_string(OutTopic::NavHint, json);
        if self.has(OutTopic::CmdVel)
            && let Ok(hint) = serde_json::from_str::<serde_json::Value>(json)
            && let Some(action) = hint["action"].as_str()
            && let Some(t) = twist_for_action(action, self.settings(), crate::runtime::now_unix())
        {
            match t.to_cdr() {
                Ok(b) => self.send(OutTopic::CmdVel, b),
                Err(e) => tracing::warn!("cannot serialize the advisory twist: {e}"),
            }
        }
    }

    /// Publishes `text` as a `std_msgs/String`.
    fn send_string(&self, topic: OutTopic, text: &str) {
        if !self.has(topic) {
            return;
        }
        let m = StringMsg {
            data: text.to_string(),
        };
        match m.to_cdr() {
            Ok(b) => self.send(topic, b),
            Err(e) => tracing::warn!("cannot serialize a {topic:?} message: {e}"),
        }
    }
}

/// An image message arrived on `topic`: count it and queue its bytes; decoding happens on the
/// source thread, never in a network callback.
pub fn on_image(c: &RosCounters, queue: &DropOldest<RawImage>, payload: Vec<u8>) {
    c.images.fetch_add(1, Ordering::Relaxed);
    queue.push(RawImage {
        payload,
        arrived: crate::runtime::now_unix(),
    });
}

/// An odometry message arrived on `topic`: the camera pose it gives (odometry pose × `mount`)
/// replaces the latest one; a bad message is counted and logged.
pub fn on_odometry(c: &RosCounters, pose: &PoseCell, mount: &Pose, topic: &str, payload: &[u8]) {
    match Odometry::from_cdr(payload).and_then(|o| o.pose.to_pose()) {
        Ok(base) => {
            c.odometry.fetch_add(1, Ordering::Relaxed);
            *pose.lock().unwrap_or_else(PoisonError::into_inner) = Some(base * mount);
        }
        Err(e) => {
            c.bad_odometry.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(topic, "odometry refused: {e}");
        }
    }
}

/// A `std_msgs/String` question arrived on `topic`: handed to the runtime's intake, or counted
/// as dropped when it is full, or as bad when it is not a String.
pub fn on_question(
    c: &RosCounters,
    questions: &tokio::sync::mpsc::Sender<RosQuestion>,
    topic: &str,
    payload: &[u8],
) {
    c.questions.fetch_add(1, Ordering::Relaxed);
    match StringMsg::from_cdr(payload) {
        Ok(m) => {
            let q = RosQuestion {
                payload: question_payload(&m.data),
                reply: None,
                progress: None,
            };
            if questions.try_send(q).is_err() {
                c.dropped_questions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic, "question intake full: a ROS 2 question was dropped");
            }
        }
        Err(e) => {
            c.bad_questions.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(topic, "a question that is not a std_msgs/msg/String: {e}");
        }
    }
}

/// An image message as it arrived, CDR with its header.
pub struct RawImage {
    /// The serialized message.
    pub payload: Vec<u8>,
    /// Arrival time, seconds since the epoch (the stamp when the header has none).
    pub arrived: f64,
}

/// The latest odometry pose (the camera optical frame in the odometry frame).
pub type PoseCell = Arc<Mutex<Option<Pose>>>;

/// Frames from a ROS 2 image topic, whichever transport fills its queue: decoding happens
/// here, on the source thread, never in a network callback. Ends when the queue is closed or
/// the stop flag is set.
pub struct RosImageSource {
    name: String,
    ros_type: &'static str,
    queue: Arc<DropOldest<RawImage>>,
    pose: Option<PoseCell>,
    stop: Option<Arc<AtomicBool>>,
    seq: u64,
    stats: SourceStats,
}

impl RosImageSource {
    /// A source named `name` decoding `ros_type` messages from `queue`, attaching the pose in
    /// `pose` (when odometry is configured) to each frame.
    pub fn new(
        name: String,
        ros_type: &'static str,
        queue: Arc<DropOldest<RawImage>>,
        pose: Option<PoseCell>,
    ) -> RosImageSource {
        RosImageSource {
            name,
            ros_type,
            queue,
            pose,
            stop: None,
            seq: 0,
            stats: SourceStats::default(),
        }
    }

    /// Also ends when `flag` is set (the runtime's capture stop).
    pub fn stop_when(mut self, flag: Arc<AtomicBool>) -> RosImageSource {
        self.stop = Some(flag);
        self
    }
}

impl CameraSource for RosImageSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        None
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            let Some(raw) = self.queue.pop_timeout(Duration::from_millis(100)) else {
                let stopped = self
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed));
                if self.queue.is_closed() || stopped {
                    return Ok(None);
                }
                continue;
            };
            let seq = self.seq;
            self.seq += 1;
            match image_to_frame(self.ros_type, &raw.payload, seq, raw.arrived) {
                Ok(mut frame) => {
                    if let Some(p) = &self.pose {
                        frame.pose = *p.lock().unwrap_or_else(PoisonError::into_inner);
                    }
                    self.stats.frames += 1;
                    return Ok(Some(frame));
                }
                Err(e) => {
                    self.stats.bad += 1;
                    tracing::warn!(source = self.name, seq, "skipping a bad image message: {e}");
                }
            }
        }
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3 as V3;

    #[test]
    fn the_config_round_trips_through_ros_parameters() {
        let mut cfg = crate::Config::default();
        cfg.ros2.camera_mount = [0.1, 0.0, 0.3, 0.0, 0.0, 0.0];
        let params = config_parameters(&cfg);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("reasoner.max_tokens"), Some(ParamValue::Integer(256)));
        assert_eq!(
            get("ros2.transport"),
            Some(ParamValue::String("off".into()))
        );
        assert_eq!(get("robot_id"), Some(ParamValue::String("robot".into())));
        assert_eq!(
            get("ros2.camera_mount"),
            Some(ParamValue::DoubleArray(vec![0.1, 0.0, 0.3, 0.0, 0.0, 0.0]))
        );
        assert_eq!(get("zenoh.listen"), Some(ParamValue::StringArray(vec![])));
        // Every parameter, given back at launch, rebuilds the same config.
        let mut loader = crate::config::ConfigLoader::new();
        for (name, value) in &params {
            let (k, v) = parameter_override(name, value).expect("a config key");
            loader.set(&k, &v, "parameter".into()).expect("applies");
        }
        assert_eq!(loader.build().expect("valid"), cfg);
        assert_eq!(
            parameter_override("use_sim_time", &ParamValue::Bool(true)),
            None
        );
        let (k, v) = parameter_override("reasoner.model", &ParamValue::String("/m/x.gguf".into()))
            .expect("ok");
        assert_eq!(
            (k.as_str(), v.as_str()),
            ("reasoner.model", "\"/m/x.gguf\"")
        );
    }
    #[test]
    fn action_goals_become_ask_requests_and_replies_results() {
        let p = goal_payload(
            "Where is the door?",
            &["left".into(), "right".into()],
            "{\"last_n\": 8}",
            5000,
        )
        .expect("valid");
        let v: serde_json::Value = serde_json::from_slice(&p).expect("json");
        assert_eq!(v["choices"][1], "right");
        assert_eq!(v["window"]["last_n"], 8);
        assert_eq!(v["deadline_ms"], 5000);
        let free: serde_json::Value =
            serde_json::from_slice(&goal_payload("What now?", &[], "", 0).expect("valid"))
                .expect("json");
        assert!(
            free.get("window").is_none() && free.get("deadline_ms").is_none(),
            "{free}"
        );
        let e = goal_payload("q", &[], "last 8", 0).unwrap_err();
        assert!(e.contains("last 8") && e.contains("last_n"), "{e}");
        let (ok, all, choice, text, action) = goal_result(&serde_json::json!({
            "choice": "B", "text": "right", "nav_hint": {"action": "rotate right"}
        }));
        assert!(ok && all.contains("rotate right"));
        assert_eq!(
            (choice.as_str(), text.as_str(), action.as_str()),
            ("B", "right", "rotate right")
        );
        let (ok, _, choice, ..) = goal_result(&serde_json::json!({"error": {"code": "busy"}}));
        assert!(!ok && choice.is_empty());
    }

    #[test]
    fn image_types_follow_image_transport_names() {
        assert_eq!(image_type(ImageMessage::Auto, "/cam/image_raw"), IMAGE);
        assert_eq!(
            image_type(ImageMessage::Auto, "/cam/image_raw/compressed"),
            COMPRESSED_IMAGE
        );
        assert_eq!(image_type(ImageMessage::Compressed, "/x"), COMPRESSED_IMAGE);
    }

    #[test]
    fn the_optical_frame_looks_along_the_body_x_axis() {
        let m = camera_mount(&[0.1, 0.0, 0.5, 0.0, 0.0, 0.0]);
        // Optical z (viewing direction) is body x; optical x (image right) is body −y.
        assert!((m.rotation * V3::z() - V3::x()).norm() < 1e-12);
        assert!((m.rotation * V3::x() + V3::y()).norm() < 1e-12);
        assert!((m.rotation * V3::y() + V3::z()).norm() < 1e-12);
        assert!((m.translation.vector - V3::new(0.1, 0.0, 0.5)).norm() < 1e-12);
        // A camera yawed 90° left looks along body y.
        let left = camera_mount(&[0.0, 0.0, 0.0, 0.0, 0.0, std::f64::consts::FRAC_PI_2]);
        assert!((left.rotation * V3::z() - V3::y()).norm() < 1e-12);
    }

    #[test]
    fn string_questions_become_ask_requests() {
        let plain: serde_json::Value =
            serde_json::from_slice(&question_payload("Is the tower to my left?")).expect("json");
        assert_eq!(plain["question"], "Is the tower to my left?");
        let json = r#"{"question":"Which?","choices":["a","b"]}"#;
        assert_eq!(question_payload(json), json.as_bytes());
        // JSON that is not an ask request is a question like any other text.
        let odd: serde_json::Value =
            serde_json::from_slice(&question_payload(r#"{"q": 1}"#)).expect("json");
        assert_eq!(odd["question"], r#"{"q": 1}"#);
    }

    #[test]
    fn hint_actions_map_to_rep103_twists() {
        let cfg = Ros2Config::default();
        let t = twist_for_action("move forward", &cfg, 2.5).expect("twist");
        assert_eq!(t.twist.linear.x, cfg.linear_speed);
        assert_eq!(t.header.frame_id, "base_link");
        assert_eq!((t.header.sec, t.header.nanosec), (2, 500_000_000));
        let r = twist_for_action("rotate right", &cfg, 0.0).expect("twist");
        assert_eq!(r.twist.angular.z, -cfg.angular_speed);
        let l = twist_for_action("move left", &cfg, 0.0).expect("twist");
        assert_eq!(l.twist.linear.y, cfg.linear_speed);
        assert!(twist_for_action("tilt upward", &cfg, 0.0).is_none());
        assert!(twist_for_action("hover", &cfg, 0.0).is_none());
    }
}
