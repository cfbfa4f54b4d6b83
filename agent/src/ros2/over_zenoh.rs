//! ROS 2 topics on the runtime's zenoh session, in the key layout of zenoh-bridge-ros2dds or
//! rmw_zenoh ([`super::names::Layout`]): a ROS 2 system bridged to (or running on) zenoh talks
//! to the runtime with nothing ROS installed on our side.
//!
//! Network callbacks only copy bytes into bounded queues; decoding happens on the source
//! thread (images) or is a few hundred bytes of CDR (odometry, questions).

use super::names::{Layout, NameError, qualify, rmw_attachment};
use super::{
    OutTopic, Outputs, PoseCell, RawImage, RosCounters, RosImageSource, RosQuestion, RosSide,
    RosStats, camera_mount, image_type, on_image, on_odometry, on_question,
};
use crate::config::{Config, Ros2Config, Ros2Transport};
use crate::runtime::now_unix;
use embodied_r_perception::DropOldest;
use embodied_r_perception::ros::msg::{Odometry, RosType, StringMsg, TwistStamped};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use zenoh::Wait;

/// Why the ROS 2 side could not start.
#[derive(Debug, thiserror::Error)]
pub enum RosZenohError {
    /// A topic name is not a ROS 2 name.
    #[error("{key}: {source}")]
    Name {
        /// The config key.
        key: &'static str,
        /// Why.
        source: NameError,
    },
    /// zenoh refused a declaration.
    #[error("declaring {what} on zenoh key {key}: {reason}")]
    Zenoh {
        /// What was declared.
        what: &'static str,
        /// The key expression.
        key: String,
        /// zenoh's message.
        reason: String,
    },
    /// The transport is not a zenoh one.
    #[error("ros2.transport = {0:?} does not run over zenoh")]
    NotZenoh(Ros2Transport),
}

/// The key layout a config selects, if it runs over zenoh.
pub fn layout(cfg: &Ros2Config) -> Option<Layout> {
    match cfg.transport {
        Ros2Transport::Bridge => Some(Layout::Bridge {
            namespace: cfg.bridge_namespace.clone(),
        }),
        Ros2Transport::RmwZenoh => Some(Layout::RmwZenoh {
            domain: cfg.domain,
            type_hashes: cfg.type_hashes,
        }),
        Ros2Transport::Off | Ros2Transport::R2r => None,
    }
}

/// A publisher of one ROS 2 topic on zenoh: CDR payloads on the layout's key, with
/// rmw_zenoh's attachment when the layout is rmw_zenoh's.
pub struct TopicPublisher {
    publisher: zenoh::pubsub::Publisher<'static>,
    key: String,
    /// rmw_zenoh: the sequence number and GID its attachment carries.
    rmw: Option<(AtomicI64, [u8; 16])>,
}

impl TopicPublisher {
    /// Declares a publisher of `topic` (fully qualified) of `ros_type` with hash `rihs01`.
    pub fn declare(
        session: &zenoh::Session,
        layout: &Layout,
        topic: &str,
        ros_type: &str,
        rihs01: &str,
    ) -> Result<TopicPublisher, RosZenohError> {
        let key = layout
            .publish_key(topic, ros_type, rihs01)
            .map_err(|source| RosZenohError::Name {
                key: "topic",
                source,
            })?;
        let publisher =
            session
                .declare_publisher(key.clone())
                .wait()
                .map_err(|e| RosZenohError::Zenoh {
                    what: "a publisher",
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
        tracing::info!(topic, key, "ROS 2 publisher over zenoh");
        Ok(TopicPublisher {
            publisher,
            rmw: matches!(layout, Layout::RmwZenoh { .. }).then(|| (AtomicI64::new(0), gid(topic))),
            key,
        })
    }

    /// The zenoh key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether a subscriber matches (zenoh's matching status).
    pub fn has_subscriber(&self) -> bool {
        self.publisher
            .matching_status()
            .wait()
            .is_ok_and(|m| m.matching())
    }

    /// Publishes one serialized message (encapsulation header included).
    pub fn put(&self, cdr: Vec<u8>) -> Result<(), String> {
        let mut put = self.publisher.put(cdr);
        if let Some((seq, gid)) = &self.rmw {
            let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
            let ts = (now_unix() * 1e9) as i64;
            put = put.attachment(rmw_attachment(n, ts, gid));
        }
        put.wait().map_err(|e| format!("{}: {e}", self.key))
    }
}

/// A GID for an rmw_zenoh publisher: unique per process and topic.
fn gid(topic: &str) -> [u8; 16] {
    use std::hash::{Hash, Hasher};
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (std::process::id(), topic, i, now_unix().to_bits()).hash(&mut h);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

type Subscriber = zenoh::pubsub::Subscriber<()>;

/// The runtime's ROS 2 topics on a zenoh session.
pub struct RosZenoh {
    cfg: Ros2Config,
    outputs: Outputs<TopicPublisher>,
    counters: Arc<RosCounters>,
    image_queue: Option<Arc<DropOldest<RawImage>>>,
    _subscribers: Vec<Subscriber>,
}

impl RosZenoh {
    /// Declares the publishers and subscribers `config` asks for. Questions arriving on the
    /// question topic go to `questions` (as ask-request JSON); a full intake drops and counts
    /// them. With `source.kind = "ros2"` it also returns the image source.
    pub fn declare(
        session: &zenoh::Session,
        config: &Config,
        questions: tokio::sync::mpsc::Sender<RosQuestion>,
    ) -> Result<(RosZenoh, Option<RosImageSource>), RosZenohError> {
        let cfg = config.ros2.clone();
        let layout = layout(&cfg).ok_or(RosZenohError::NotZenoh(cfg.transport))?;
        let counters = Arc::new(RosCounters::default());
        let name = |key: &'static str, topic: &str| {
            qualify(&cfg.namespace, topic).map_err(|source| RosZenohError::Name { key, source })
        };
        let zerr = |what: &'static str, key: &str| {
            let key = key.to_string();
            move |e: zenoh::Error| RosZenohError::Zenoh {
                what,
                key,
                reason: e.to_string(),
            }
        };
        let publisher = |cfg_key: &'static str, topic: &str, ros_type: &str, hash: &str| {
            if topic.is_empty() {
                return Ok(None);
            }
            let full = name(cfg_key, topic)?;
            TopicPublisher::declare(session, &layout, &full, ros_type, hash)
                .map(Some)
                .map_err(|e| match e {
                    RosZenohError::Name { source, .. } => RosZenohError::Name {
                        key: cfg_key,
                        source,
                    },
                    other => other,
                })
        };
        let answer = publisher(
            "ros2.answer_topic",
            &cfg.answer_topic,
            StringMsg::NAME,
            StringMsg::RIHS01,
        )?;
        let nav_hint = publisher(
            "ros2.nav_hint_topic",
            &cfg.nav_hint_topic,
            StringMsg::NAME,
            StringMsg::RIHS01,
        )?;
        let cmd_vel = publisher(
            "ros2.cmd_vel_topic",
            &cfg.cmd_vel_topic,
            TwistStamped::NAME,
            TwistStamped::RIHS01,
        )?;

        let subscribe_key = |cfg_key: &'static str, topic: &str, ros_type: &str| {
            let full = name(cfg_key, topic)?;
            let key =
                layout
                    .subscribe_key(&full, ros_type)
                    .map_err(|source| RosZenohError::Name {
                        key: cfg_key,
                        source,
                    })?;
            tracing::info!(topic = full, key, "ROS 2 subscription over zenoh");
            Ok::<_, RosZenohError>((full, key))
        };
        let mut subscribers = Vec::new();
        if !cfg.question_topic.is_empty() {
            let (_, key) =
                subscribe_key("ros2.question_topic", &cfg.question_topic, StringMsg::NAME)?;
            let (c, t) = (counters.clone(), cfg.question_topic.clone());
            let sub = session
                .declare_subscriber(key.clone())
                .callback(move |sample| {
                    on_question(&c, &questions, &t, &sample.payload().to_bytes());
                })
                .wait()
                .map_err(zerr("the question subscriber", &key))?;
            subscribers.push(sub);
        }

        let pose: PoseCell = Arc::new(Mutex::new(None));
        if !cfg.odom_topic.is_empty() {
            let (_, key) = subscribe_key("ros2.odom_topic", &cfg.odom_topic, Odometry::NAME)?;
            let (c, p, t) = (counters.clone(), pose.clone(), cfg.odom_topic.clone());
            let mount = camera_mount(&cfg.camera_mount);
            let sub = session
                .declare_subscriber(key.clone())
                .callback(move |sample| {
                    on_odometry(&c, &p, &mount, &t, &sample.payload().to_bytes());
                })
                .wait()
                .map_err(zerr("the odometry subscriber", &key))?;
            subscribers.push(sub);
        }

        let mut source = None;
        let mut image_queue = None;
        if config.source.kind == crate::config::SourceKind::Ros2 {
            let topic = config.source.topic.clone().unwrap_or_default();
            let ros_type = image_type(cfg.image_message, &topic);
            let (full, key) = subscribe_key("source.topic", &topic, ros_type)?;
            let queue = Arc::new(DropOldest::new(config.source.queue.max(1)));
            let (q, c) = (queue.clone(), counters.clone());
            let sub = session
                .declare_subscriber(key.clone())
                .callback(move |sample| on_image(&c, &q, sample.payload().to_bytes().into_owned()))
                .wait()
                .map_err(zerr("the image subscriber", &key))?;
            subscribers.push(sub);
            image_queue = Some(queue.clone());
            source = Some(RosImageSource::new(
                format!("ros2:{full} ({layout})"),
                ros_type,
                queue,
                (!cfg.odom_topic.is_empty()).then_some(pose),
            ));
        }
        Ok((
            RosZenoh {
                cfg,
                outputs: Outputs {
                    answer,
                    nav_hint,
                    cmd_vel,
                },
                counters,
                image_queue,
                _subscribers: subscribers,
            },
            source,
        ))
    }
}

impl RosSide for RosZenoh {
    fn send(&self, topic: OutTopic, cdr: Vec<u8>) {
        let Some(p) = self.outputs.get(topic) else {
            return;
        };
        match p.put(cdr) {
            Ok(()) => self.counters.published(),
            Err(e) => tracing::warn!("cannot publish on ROS 2 topic {}: {e}", p.key),
        }
    }

    fn has(&self, topic: OutTopic) -> bool {
        self.outputs.get(topic).is_some()
    }

    fn settings(&self) -> &Ros2Config {
        &self.cfg
    }

    fn close(&self) {
        if let Some(q) = &self.image_queue {
            q.close();
        }
    }

    fn stats(&self) -> RosStats {
        self.counters.snapshot()
    }
}

impl Drop for RosZenoh {
    fn drop(&mut self) {
        self.close();
    }
}
