//! The runtime as a ROS 2 node through r2r 0.9 (feature `ros2`; needs a sourced ROS 2 at build
//! and run time, so CI cannot build it — keep it thin).
//!
//! Everything crosses as raw CDR (`subscribe_raw`, `create_publisher_untyped` +
//! `publish_raw`), so the bytes go through the same tested codec as the zenoh transport
//! (`embodied_r_perception::ros`) and the conversions in [`super`]; this file only wires r2r's
//! entities to them. The node spins on its own thread; subscription streams are drained by
//! tokio tasks that only copy bytes into bounded queues.

use super::{
    PoseCell, RawImage, RosCounters, RosImageSource, RosQuestion, RosSide, RosStats, camera_mount,
    image_type, question_payload, twist_for_action,
};
use crate::config::{Config, Ros2Config, SourceKind};
use embodied_r_perception::DropOldest;
use embodied_r_perception::ros::msg::{Odometry, RosType, StringMsg, TwistStamped};
use futures::StreamExt;
use r2r::QosProfile;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum RosNodeError {
    /// r2r (rcl) refused: a name, a type without type support in this build, no ROS 2 context.
    #[error("r2r: {0}")]
    R2r(#[from] r2r::Error),
    /// The spin thread could not start.
    #[error("cannot start the ROS 2 spin thread: {0}")]
    Thread(std::io::Error),
}

/// A raw publisher and the topic it serves.
struct RawPublisher {
    topic: String,
    publisher: Mutex<r2r::PublisherUntyped>,
}

/// The runtime's ROS 2 node.
pub struct RosNode {
    cfg: Ros2Config,
    answer: Option<RawPublisher>,
    nav_hint: Option<RawPublisher>,
    cmd_vel: Option<RawPublisher>,
    counters: Arc<RosCounters>,
    image_queue: Option<Arc<DropOldest<RawImage>>>,
    stop: Arc<AtomicBool>,
}

impl RosNode {
    /// Creates the node `ros2.node_name` in `ros2.namespace` with the subscriptions and
    /// publishers `config` asks for, and starts spinning it. Must run inside a tokio runtime.
    pub fn start(
        config: &Config,
        questions: tokio::sync::mpsc::Sender<RosQuestion>,
    ) -> Result<(RosNode, Option<RosImageSource>), RosNodeError> {
        let cfg = config.ros2.clone();
        let ctx = r2r::Context::create()?;
        let mut node = r2r::Node::create(ctx, &cfg.node_name, &cfg.namespace)?;
        let counters = Arc::new(RosCounters::default());

        let mut source = None;
        let mut image_queue = None;
        if config.source.kind == SourceKind::Ros2 {
            let topic = config.source.topic.clone().unwrap_or_default();
            let ros_type = image_type(cfg.image_message, &topic);
            let qos = if cfg.image_reliable {
                QosProfile::default()
            } else {
                QosProfile::sensor_data()
            };
            let stream = node.subscribe_raw(&topic, ros_type, qos)?;
            let queue = Arc::new(DropOldest::new(config.source.queue.max(1)));
            let (q, c) = (queue.clone(), counters.clone());
            tokio::spawn(stream.for_each(move |payload| {
                c.images.fetch_add(1, Ordering::Relaxed);
                q.push(RawImage {
                    payload,
                    arrived: now_unix(),
                });
                futures::future::ready(())
            }));
            let pose: PoseCell = Arc::new(Mutex::new(None));
            if !cfg.odom_topic.is_empty() {
                let stream =
                    node.subscribe_raw(&cfg.odom_topic, Odometry::NAME, QosProfile::default())?;
                let (p, c) = (pose.clone(), counters.clone());
                let mount = camera_mount(&cfg.camera_mount);
                tokio::spawn(stream.for_each(move |payload| {
                    match Odometry::from_cdr(&payload).and_then(|o| o.pose.to_pose()) {
                        Ok(base) => {
                            c.odometry.fetch_add(1, Ordering::Relaxed);
                            *p.lock().unwrap_or_else(PoisonError::into_inner) = Some(base * mount);
                        }
                        Err(e) => {
                            c.bad_odometry.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("odometry refused: {e}");
                        }
                    }
                    futures::future::ready(())
                }));
            }
            image_queue = Some(queue.clone());
            source = Some(RosImageSource::new(
                format!("ros2:{topic} (r2r node {})", cfg.node_name),
                ros_type,
                queue,
                (!cfg.odom_topic.is_empty()).then_some(pose),
            ));
        }

        if !cfg.question_topic.is_empty() {
            let stream =
                node.subscribe_raw(&cfg.question_topic, StringMsg::NAME, QosProfile::default())?;
            let c = counters.clone();
            tokio::spawn(stream.for_each(move |payload| {
                c.questions.fetch_add(1, Ordering::Relaxed);
                match StringMsg::from_cdr(&payload) {
                    Ok(m) => {
                        let q = RosQuestion {
                            payload: question_payload(&m.data),
                            reply: None,
                        };
                        if questions.try_send(q).is_err() {
                            c.dropped_questions.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("question intake full: a ROS 2 question was dropped");
                        }
                    }
                    Err(e) => {
                        c.bad_questions.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("a question that is not a std_msgs/msg/String: {e}");
                    }
                }
                futures::future::ready(())
            }));
        }

        let mut publisher =
            |topic: &str, ros_type: &str| -> Result<Option<RawPublisher>, r2r::Error> {
                if topic.is_empty() {
                    return Ok(None);
                }
                let p = node.create_publisher_untyped(topic, ros_type, QosProfile::default())?;
                Ok(Some(RawPublisher {
                    topic: topic.to_string(),
                    publisher: Mutex::new(p),
                }))
            };
        let answer = publisher(&cfg.answer_topic, StringMsg::NAME)?;
        let nav_hint = publisher(&cfg.nav_hint_topic, StringMsg::NAME)?;
        let cmd_vel = publisher(&cfg.cmd_vel_topic, TwistStamped::NAME)?;

        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::Builder::new()
            .name("ros2 spin".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    node.spin_once(Duration::from_millis(50));
                }
            })
            .map_err(RosNodeError::Thread)?;
        tracing::info!(
            node = cfg.node_name,
            namespace = cfg.namespace,
            "ROS 2 node up"
        );
        Ok((
            RosNode {
                cfg,
                answer,
                nav_hint,
                cmd_vel,
                counters,
                image_queue,
                stop,
            },
            source,
        ))
    }

    fn publish(&self, p: &Option<RawPublisher>, cdr: Result<Vec<u8>, impl std::fmt::Display>) {
        let Some(p) = p else { return };
        let sent = cdr.map_err(|e| e.to_string()).and_then(|bytes| {
            p.publisher
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .publish_raw(&bytes)
                .map_err(|e| e.to_string())
        });
        match sent {
            Ok(()) => self.counters.published(),
            Err(e) => tracing::warn!("cannot publish on ROS 2 topic {}: {e}", p.topic),
        }
    }
}

impl RosSide for RosNode {
    fn publish_answer(&self, json: &str) {
        let m = StringMsg {
            data: json.to_string(),
        };
        self.publish(&self.answer, m.to_cdr());
    }

    fn publish_nav_hint(&self, json: &str) {
        let m = StringMsg {
            data: json.to_string(),
        };
        self.publish(&self.nav_hint, m.to_cdr());
        if self.cmd_vel.is_some()
            && let Ok(hint) = serde_json::from_str::<serde_json::Value>(json)
            && let Some(action) = hint["action"].as_str()
            && let Some(t) = twist_for_action(action, &self.cfg, now_unix())
        {
            self.publish(&self.cmd_vel, t.to_cdr());
        }
    }

    fn close(&self) {
        if let Some(q) = &self.image_queue {
            q.close();
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stats(&self) -> RosStats {
        self.counters.snapshot()
    }
}

impl Drop for RosNode {
    fn drop(&mut self) {
        self.close();
    }
}
