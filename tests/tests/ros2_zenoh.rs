//! ROS 2 over zenoh with nothing ROS installed: a real `embodied-r run` process takes its camera
//! from a ROS 2 image topic in zenoh-bridge-ros2dds' key layout, fed by a separate
//! `embodied-r ros2 play` process replaying a bag written by `rosbags`; this test process is the
//! ROS 2 side (as a bridged ROS 2 system would be): it asks on the `std_msgs/String` question
//! topic and reads the answer, the nav hint and the advisory `TwistStamped` as CDR. The VLM is
//! a loopback HTTP server in this process.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_perception::ros::msg::{StringMsg, TwistStamped};
use embodied_r_tests::{
    FakeVlm, Proc, free_port, openai_describer, question, run, runtime_config, workspace,
    zenoh_peer,
};
use serde_json::Value;
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(180);

/// A runtime config: a ROS 2 image source unless the command line overrides it, the fake
/// VLM, the shared end-to-end settings (default LM, short answers, no consistency pass),
/// `ros2` = the `[ros2]` body.
fn config(dir: &std::path::Path, port: u16, vlm: &str, ros2: &str) -> std::path::PathBuf {
    let body = format!(
        r#"[source]
kind = "ros2"
topic = "/camera/image_raw"
queue = 64

{describer}
[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
multicast = false
status_period_ms = 200

[log]
enabled = false

[ros2]
{ros2}
"#,
        describer = openai_describer(vlm),
    );
    runtime_config(dir, "ros2.toml", "ros", &body)
}

/// The next sample on `sub`, as bytes, within `t`.
async fn next(
    sub: &zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
    t: Duration,
    what: &str,
) -> Vec<u8> {
    let s = tokio::time::timeout(t, sub.recv_async())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {t:?}"))
        .unwrap();
    s.payload().to_bytes().into_owned()
}

/// Waits (at most 60 s) for a status of the `ros` robot that satisfies `ok`.
async fn status_until(s: &zenoh::Session, ok: impl Fn(&Value) -> bool) -> Value {
    embodied_r_tests::status_until(
        s,
        "robots/ros/embodied-r/status",
        Duration::from_secs(60),
        ok,
    )
    .await
}

/// A runtime process under test with its fake VLM and temporary directory.
struct Started {
    rt: Proc,
    port: u16,
    vlm: FakeVlm,
    ready: String,
    _dir: tempfile::TempDir,
}

/// Starts `embodied-r run` with `[ros2]` = `ros2` and `extra` command-line arguments, the VLM
/// replying `reply` to every description request; waits for `ready`.
fn start(ros2: &str, reply: &str, extra: &[&str]) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let vlm = FakeVlm::start(reply);
    let port = free_port();
    let cfg = config(dir.path(), port, &vlm.url, ros2);
    let mut args = vec!["run", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut rt = Proc::spawn(&args, &[]);
    let ready = rt.wait_line("ready ", READY);
    Started {
        rt,
        port,
        vlm,
        ready,
        _dir: dir,
    }
}

impl Started {
    /// SIGTERM, then a clean exit.
    fn stop(mut self) {
        self.rt.terminate();
        assert_eq!(
            self.rt.wait_exit(Duration::from_secs(60)),
            Some(0),
            "{}",
            self.rt.stderr()
        );
    }
}

/// The test bag written by rosbags.
fn bag() -> std::path::PathBuf {
    workspace().join("perception/tests/fixtures/mcap/images.mcap")
}

/// Plays the test bag onto the runtime at `port` as fast as possible from a separate
/// `embodied-r ros2 play` process; returns its stdout.
fn play(port: u16, extra: &[&str]) -> String {
    let connect = format!("tcp/127.0.0.1:{port}");
    let bag = bag();
    let mut args = vec![
        "ros2",
        "play",
        bag.to_str().unwrap(),
        "--connect",
        &connect,
        "--no-multicast",
        "--rate",
        "max",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bag_played_over_zenoh_is_answered_on_ros_topics_in_cdr() {
    let started = start(
        "transport = \"bridge\"\ncmd_vel_topic = \"/cmd_vel\"\nodom_topic = \"/odom\"\ncamera_mount = [0.5, 0.0, 1.0, 0.0, 0.0, 0.0]",
        "A red door ahead; a blue tower on the left.",
        &[],
    );
    assert!(
        started.ready.contains("ros2:/camera/image_raw"),
        "{}",
        started.ready
    );
    let (port, vlm) = (started.port, &started.vlm);
    let s = zenoh_peer(port).await;
    let answers = s.declare_subscriber("embodied_r/answer").await.unwrap();
    let hints = s.declare_subscriber("embodied_r/nav_hint").await.unwrap();
    let twists = s.declare_subscriber("cmd_vel").await.unwrap();

    // The robot's odometry: at (2, 3) in `odom`, turned 90° left. Sent until the runtime has it.
    let odom = embodied_r_perception::ros::msg::Odometry {
        header: embodied_r_perception::ros::msg::Header::at(100.0, "odom"),
        child_frame_id: "base_link".into(),
        pose: embodied_r_perception::ros::msg::PoseMsg {
            position: embodied_r_perception::ros::msg::Vector3 {
                x: 2.0,
                y: 3.0,
                z: 0.0,
            },
            orientation: embodied_r_perception::ros::msg::Quaternion {
                x: 0.0,
                y: 0.0,
                z: std::f64::consts::FRAC_1_SQRT_2,
                w: std::f64::consts::FRAC_1_SQRT_2,
            },
        },
        ..Default::default()
    };
    let st = {
        let sub = s
            .declare_subscriber("robots/ros/embodied-r/status")
            .await
            .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            s.put("odom", odom.to_cdr().unwrap()).await.unwrap();
            let v: Value =
                serde_json::from_slice(&next(&sub, Duration::from_secs(10), "status").await)
                    .unwrap();
            if v["ros2"]["counters"]["odometry"].as_u64() >= Some(1) || Instant::now() > end {
                break v;
            }
        }
    };
    assert!(
        st["ros2"]["counters"]["odometry"].as_u64() >= Some(1),
        "{st}"
    );

    // A separate process plays the rosbags-written bag three times onto the bridge layout.
    let out = play(port, &["--topic", "/camera/image_raw", "--loops", "3"]);
    assert!(
        out.contains("/camera/image_raw (sensor_msgs/msg/Image) -> camera/image_raw"),
        "{out}"
    );
    assert!(out.contains("played 18 messages on 1 topics"), "{out}");

    // Every message arrived; the five good images of each pass became frames.
    let st = status_until(&s, |v| {
        v["ros2"]["counters"]["images"] == 18 && v["source"]["frames"].as_u64() >= Some(15)
    })
    .await;
    assert_eq!(st["ros2"]["counters"]["images"], 18, "{st}");
    assert_eq!(st["ros2"]["transport"], "bridge", "{st}");
    assert!(st["source"]["frames"].as_u64() >= Some(15), "{st}");
    // Key frames carry the camera's pose: the mount (0.5 m ahead, 1 m up) turned with the
    // robot, so the camera sits at (2, 3.5, 1) looking along +y.
    let pose = st["keyframes"]["newest"]["pose"]
        .as_array()
        .expect("a pose")
        .clone();
    let p: Vec<f64> = pose.iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(
        (p[0] - 2.0).abs() < 1e-9 && (p[1] - 3.5).abs() < 1e-9 && (p[2] - 1.0).abs() < 1e-9,
        "{p:?}"
    );
    let q = nalgebra::UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(
        p[6], p[3], p[4], p[5],
    ));
    let view = q * nalgebra::Vector3::z();
    assert!(
        (view - nalgebra::Vector3::y()).norm() < 1e-9,
        "optical axis {view:?}"
    );

    // A question as a std_msgs/String on the question topic (JSON with choices).
    let q = StringMsg {
        data:
            r#"{"question": "Which is on my left?", "choices": ["the red door", "the blue tower"]}"#
                .into(),
    };
    s.put("embodied_r/question", q.to_cdr().unwrap())
        .await
        .unwrap();
    let a = StringMsg::from_cdr(&next(&answers, Duration::from_secs(120), "answer").await).unwrap();
    let a: Value = serde_json::from_str(&a.data).unwrap();
    assert!(a.get("error").is_none(), "{a}");
    assert!(
        a["question_id"].as_str().unwrap().starts_with("ros-"),
        "{a}"
    );
    assert!(a["text"].is_string(), "{a}");
    assert_eq!(
        a["describer"].as_str().map(|d| d.contains("fake-vlm")),
        Some(true),
        "{a}"
    );
    assert!(vlm.served() >= 1, "the describer asked the VLM");
    let h = StringMsg::from_cdr(&next(&hints, Duration::from_secs(10), "nav hint").await).unwrap();
    let h: Value = serde_json::from_str(&h.data).unwrap();
    let action: embodied_r_perception::Action = h["action"].as_str().unwrap().parse().unwrap();
    if !matches!(
        action,
        embodied_r_perception::Action::TiltUpward | embodied_r_perception::Action::TiltDownward
    ) {
        let t =
            TwistStamped::from_cdr(&next(&twists, Duration::from_secs(10), "twist").await).unwrap();
        assert_eq!(t.header.frame_id, "base_link");
        let speed = t.twist.linear.x.abs()
            + t.twist.linear.y.abs()
            + t.twist.linear.z.abs()
            + t.twist.angular.z.abs();
        assert!(speed > 0.0, "{action:?} gives a motion: {t:?}");
    }

    // A refusal is published too (nobody else would hear it), and junk is counted, not fatal.
    let long = StringMsg {
        data: "why ".repeat(2000),
    };
    s.put("embodied_r/question", long.to_cdr().unwrap())
        .await
        .unwrap();
    s.put("embodied_r/question", b"not cdr at all".to_vec())
        .await
        .unwrap();
    let r = StringMsg::from_cdr(&next(&answers, Duration::from_secs(30), "refusal").await).unwrap();
    let r: Value = serde_json::from_str(&r.data).unwrap();
    assert_eq!(r["error"]["code"], "too_large", "{r}");
    let st = status_until(&s, |v| v["ros2"]["counters"]["bad_questions"] == 1).await;
    assert_eq!(st["ros2"]["counters"]["bad_questions"], 1, "{st}");
    assert_eq!(st["ros2"]["counters"]["questions"], 3, "{st}");

    // The camera stalls: the player is done but the topic stays, so the source has not ended.
    // The status shows the stall (idle time grows, no frames come in), and answers still come
    // from the buffer, saying how old their newest key frame is.
    let st = status_until(&s, |v| v["source"]["idle_s"].as_f64() >= Some(2.0)).await;
    assert!(st["source"]["idle_s"].as_f64() >= Some(2.0), "{st}");
    assert_eq!(st["source"]["ended"], false, "{st}");
    assert_eq!(st["source"]["error"], Value::Null, "{st}");
    let frames = st["source"]["frames"].clone();
    let ask_stalled = || async {
        let r = question("What did I see last?", 60_000);
        embodied_r_agent::client::ask(&s, "robots/ros/embodied-r/ask", &r, Duration::from_secs(90))
            .await
            .unwrap()
    };
    let first = ask_stalled().await;
    let second = ask_stalled().await;
    let age = |v: &Value| v["grounding"]["newest_age_s"].as_f64().unwrap_or(-1.0);
    assert!(age(&first) >= 2.0, "{first}");
    assert!(age(&second) > age(&first), "{first}\n{second}");
    let st = status_until(&s, |v| v["source"]["idle_s"].as_f64() > Some(age(&second))).await;
    assert_eq!(st["source"]["frames"], frames, "no frame arrived: {st}");
    assert_eq!(st["source"]["ended"], false, "{st}");

    started.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmw_zenoh_keys_carry_type_hashes_and_attachments() {
    let started = start("transport = \"rmw_zenoh\"\ndomain = 3", "A grey wall.", &[]);
    assert!(
        started.ready.contains("rmw_zenoh (domain 3)"),
        "{}",
        started.ready
    );
    let port = started.port;
    let s = zenoh_peer(port).await;
    let answer_key = format!(
        "3/embodied_r/answer/std_msgs::msg::dds_::String_/{}",
        <StringMsg as embodied_r_perception::ros::msg::RosType>::RIHS01
    );
    let answers = s.declare_subscriber(answer_key.as_str()).await.unwrap();

    let out = play(port, &["--layout", "rmw-zenoh", "--domain", "3"]);
    // Both image topics of the bag, each on its own typed, hashed key.
    assert!(
        out.contains("-> 3/camera/image_raw/sensor_msgs::msg::dds_::Image_/RIHS01_d31d41a9"),
        "{out}"
    );
    assert!(out.contains("-> 3/camera/image_raw/compressed/sensor_msgs::msg::dds_::CompressedImage_/RIHS01_15640771"), "{out}");
    let st = status_until(&s, |v| v["ros2"]["counters"]["images"] == 6).await;
    assert_eq!(
        st["ros2"]["counters"]["images"], 6,
        "only /camera/image_raw is subscribed: {st}"
    );

    // A question on the hashed question key, refused (too long): the refusal comes back on the
    // answer key with rmw_zenoh's 33-byte attachment, sequence number 1.
    let q = StringMsg {
        data: "why ".repeat(2000),
    };
    let qkey = format!(
        "3/embodied_r/question/std_msgs::msg::dds_::String_/{}",
        <StringMsg as embodied_r_perception::ros::msg::RosType>::RIHS01
    );
    s.put(qkey.as_str(), q.to_cdr().unwrap()).await.unwrap();
    let sample = tokio::time::timeout(Duration::from_secs(30), answers.recv_async())
        .await
        .expect("a refusal")
        .unwrap();
    let r = StringMsg::from_cdr(&sample.payload().to_bytes()).unwrap();
    assert!(r.data.contains("too_large"), "{}", r.data);
    let att = sample
        .attachment()
        .expect("an rmw_zenoh attachment")
        .to_bytes();
    assert_eq!(att.len(), 33);
    assert_eq!(&att[..8], &1i64.to_le_bytes());
    assert_eq!(att[16], 16);
    started.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_replays_a_rosbags_bag_from_the_command_line() {
    let source = format!("bag:{}", bag().display());
    let started = start(
        "transport = \"off\"",
        "A green chair in front of a white wall.",
        &[
            "--source",
            &source,
            "--topic",
            "/camera/image_raw/compressed",
            "--rate",
            "max",
        ],
    );
    assert!(
        started
            .ready
            .contains("images.mcap:/camera/image_raw/compressed"),
        "{}",
        started.ready
    );
    let port = started.port;
    let s = zenoh_peer(port).await;
    let req = embodied_r_agent::AskRequest {
        question: "What is in front of the wall?".into(),
        choices: None,
        window: None,
        deadline_ms: None,
        ground_truth: None,
        category: None,
        client: None,
    };
    let end = Instant::now() + Duration::from_secs(60);
    let reply = loop {
        let v = embodied_r_agent::client::ask(
            &s,
            "robots/ros/embodied-r/ask",
            &req,
            Duration::from_secs(120),
        )
        .await
        .unwrap();
        if v["error"]["code"] != "no_frames" || Instant::now() > end {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reply.get("error").is_none(), "{reply}");
    // The bag's three decodable compressed images (jpeg, png, image_transport-style) became
    // frames; the random-bytes "jpeg" was skipped; the source ended and the runtime stayed up.
    let st = status_until(&s, |v| v["source"]["ended"] == true).await;
    assert_eq!(st["source"]["frames"], 3, "{st}");
    assert_eq!(st["source"]["ended"], true, "{st}");
    assert!(st["ros2"].is_null(), "no ROS 2 side: {st}");
    started.stop();
}
