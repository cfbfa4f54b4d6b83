//! The runtime as a ROS 2 node through r2r 0.9 (feature `ros2`; needs a sourced ROS 2 at build
//! and run time, so CI cannot build it — keep it thin).
//!
//! Everything crosses as raw CDR (`subscribe_raw`, `create_publisher_untyped` +
//! `publish_raw`), so the bytes go through the same tested codec as the zenoh transport
//! (`embodied_r_perception::ros`) and the conversions in [`super`]; this file only wires r2r's
//! entities to them. The node spins on its own thread; subscription streams are drained by
//! tokio tasks that only copy bytes into bounded queues. The `Ask` action comes from the
//! `embodied_r_interfaces` package (launch/ros2/embodied_r_interfaces), which must be built
//! and sourced before this crate is (r2r generates its types from the sourced environment).

use super::{
    OutTopic, Outputs, ParamValue, PoseCell, RawImage, RosCounters, RosImageSource, RosQuestion,
    RosSide, RosStats, camera_mount, config_parameters, goal_payload, goal_result, image_type,
    on_image, on_odometry, on_question, parameter_override,
};
use crate::api::AskProgress;
use crate::config::{Config, Ros2Config, SourceKind};
use embodied_r_perception::DropOldest;
use embodied_r_perception::ros::msg::{Odometry, RosType, StringMsg, TwistStamped};
use futures::StreamExt;
use r2r::embodied_r_interfaces::action::Ask;
use r2r::{ParameterValue, QosProfile};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The action result for an ask reply.
fn result(reply: &serde_json::Value) -> Ask::Result {
    let (ok, reply_json, choice, text, nav_action) = goal_result(reply);
    Ask::Result {
        ok,
        reply_json,
        choice,
        text,
        nav_action,
    }
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

/// The node created early to read launch parameters, kept for [`RosNode::start`] (rcl has
/// one context per process, so there is one node).
static EARLY_NODE: Mutex<Option<r2r::Node>> = Mutex::new(None);

fn ours(v: &ParameterValue) -> Option<ParamValue> {
    Some(match v {
        ParameterValue::Bool(b) => ParamValue::Bool(*b),
        ParameterValue::Integer(i) => ParamValue::Integer(*i),
        ParameterValue::Double(f) => ParamValue::Double(*f),
        ParameterValue::String(s) => ParamValue::String(s.clone()),
        ParameterValue::BoolArray(a) => ParamValue::BoolArray(a.clone()),
        ParameterValue::IntegerArray(a) => ParamValue::IntegerArray(a.clone()),
        ParameterValue::DoubleArray(a) => ParamValue::DoubleArray(a.clone()),
        ParameterValue::StringArray(a) => ParamValue::StringArray(a.clone()),
        ParameterValue::NotSet | ParameterValue::ByteArray(_) => return None,
    })
}

fn theirs(v: ParamValue) -> ParameterValue {
    match v {
        ParamValue::Bool(b) => ParameterValue::Bool(b),
        ParamValue::Integer(i) => ParameterValue::Integer(i),
        ParamValue::Double(f) => ParameterValue::Double(f),
        ParamValue::String(s) => ParameterValue::String(s),
        ParamValue::BoolArray(a) => ParameterValue::BoolArray(a),
        ParamValue::IntegerArray(a) => ParameterValue::IntegerArray(a),
        ParamValue::DoubleArray(a) => ParameterValue::DoubleArray(a),
        ParamValue::StringArray(a) => ParameterValue::StringArray(a),
    }
}

/// Creates the node `name` in `namespace` (rcl reads `--ros-args`: remappings, `-p`,
/// `--params-file`) and returns the parameters it was given that are config keys, as
/// overrides (key, TOML literal) for the config loader. The node is kept for
/// [`RosNode::start`].
pub fn parameter_overrides(
    name: &str,
    namespace: &str,
) -> Result<Vec<(String, String)>, RosNodeError> {
    let ctx = r2r::Context::create()?;
    let node = r2r::Node::create(ctx, name, namespace)?;
    let out = node
        .params
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(|(k, p)| parameter_override(k, &ours(&p.value)?))
        .collect();
    *EARLY_NODE.lock().unwrap_or_else(PoisonError::into_inner) = Some(node);
    Ok(out)
}

/// A raw publisher and the topic it serves.
struct RawPublisher {
    topic: String,
    publisher: Mutex<r2r::PublisherUntyped>,
}

/// The runtime's ROS 2 node.
pub struct RosNode {
    cfg: Ros2Config,
    outputs: Outputs<RawPublisher>,
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
        let early = EARLY_NODE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut node = match early {
            Some(n) => n,
            None => r2r::Node::create(r2r::Context::create()?, &cfg.node_name, &cfg.namespace)?,
        };
        let counters = Arc::new(RosCounters::default());

        // `ros2 param list/get/dump` show the configuration in effect; a `set` is logged and
        // applies at the next start (the runtime does not reconfigure itself while running).
        {
            let mut params = node.params.lock().unwrap_or_else(PoisonError::into_inner);
            for (k, v) in config_parameters(config) {
                params.insert(
                    k,
                    r2r::Parameter {
                        value: theirs(v),
                        description: "embodied-r configuration key (see launch/config/*.toml)",
                    },
                );
            }
        }
        let (handler, mut changes) = node.make_parameter_handler()?;
        tokio::spawn(handler);
        tokio::spawn(async move {
            while let Some((name, value)) = changes.next().await {
                tracing::warn!(
                    parameter = name,
                    "parameter set to {value:?}; it applies when the node restarts"
                );
            }
        });

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
                on_image(&c, &q, payload);
                futures::future::ready(())
            }));
            let pose: PoseCell = Arc::new(Mutex::new(None));
            if !cfg.odom_topic.is_empty() {
                let stream =
                    node.subscribe_raw(&cfg.odom_topic, Odometry::NAME, QosProfile::default())?;
                let (p, c, t) = (pose.clone(), counters.clone(), cfg.odom_topic.clone());
                let mount = camera_mount(&cfg.camera_mount);
                tokio::spawn(stream.for_each(move |payload| {
                    on_odometry(&c, &p, &mount, &t, &payload);
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
            let questions = questions.clone();
            let stream =
                node.subscribe_raw(&cfg.question_topic, StringMsg::NAME, QosProfile::default())?;
            let (c, t) = (counters.clone(), cfg.question_topic.clone());
            tokio::spawn(stream.for_each(move |payload| {
                on_question(&c, &questions, &t, &payload);
                futures::future::ready(())
            }));
        }

        if !cfg.action.is_empty() {
            let mut goals = node.create_action_server::<Ask::Action>(&cfg.action)?;
            let (c, q) = (counters.clone(), questions.clone());
            tokio::spawn(async move {
                while let Some(req) = goals.next().await {
                    c.questions.fetch_add(1, Ordering::Relaxed);
                    let g = &req.goal;
                    let payload =
                        match goal_payload(&g.question, &g.choices, &g.window, g.deadline_ms) {
                            Ok(p) => p,
                            Err(e) => {
                                c.bad_questions.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!("Ask goal rejected: {e}");
                                let _ = req.reject();
                                continue;
                            }
                        };
                    let Ok((mut goal, mut cancel)) = req.accept() else {
                        continue;
                    };
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let queued = AskProgress {
                        stage: "queued".into(),
                        partial: String::new(),
                    };
                    let (ptx, mut prx) = tokio::sync::watch::channel(queued);
                    let asked = RosQuestion {
                        payload,
                        reply: Some(tx),
                        progress: Some(ptx),
                    };
                    if q.try_send(asked).is_err() {
                        c.dropped_questions.fetch_add(1, Ordering::Relaxed);
                        let busy = serde_json::json!({"error": {"code": "busy", "message": "the runtime's question intake is full"}});
                        let _ = goal.abort(result(&busy));
                        continue;
                    }
                    // Feedback: the stage and the answer's text so far, until the runtime drops
                    // the progress sender (the answer is done).
                    let fb = goal.clone();
                    tokio::spawn(async move {
                        let mut first = true;
                        while first || prx.changed().await.is_ok() {
                            first = false;
                            let p = prx.borrow_and_update().clone();
                            let _ = fb.publish_feedback(Ask::Feedback {
                                stage: p.stage,
                                partial: p.partial,
                            });
                        }
                    });
                    tokio::spawn(async move {
                        tokio::select! {
                            reply = rx => {
                                let v = reply.unwrap_or_else(|_| serde_json::json!({"error": {"code": "internal", "message": "the runtime stopped"}}));
                                let r = result(&v);
                                let _ = if r.ok { goal.succeed(r) } else { goal.abort(r) };
                            }
                            Some(request) = cancel.next() => {
                                // The question keeps its place in the runtime's queue; the
                                // caller no longer waits for it.
                                request.accept();
                                let v = serde_json::json!({"error": {"code": "cancelled", "message": "cancelled by the client"}});
                                let _ = goal.cancel(result(&v));
                            }
                        }
                    });
                }
            });
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
                outputs: Outputs {
                    answer,
                    nav_hint,
                    cmd_vel,
                },
                counters,
                image_queue,
                stop,
            },
            source,
        ))
    }
}

impl RosSide for RosNode {
    fn send(&self, topic: OutTopic, cdr: Vec<u8>) {
        let Some(p) = self.outputs.get(topic) else {
            return;
        };
        let sent = p
            .publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .publish_raw(&cdr);
        match sent {
            Ok(()) => self.counters.published(),
            Err(e) => tracing::warn!("cannot publish on ROS 2 topic {}: {e}", p.topic),
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
