//! The CDR decoders of the ROS 2 messages the runtime reads besides images, each through to
//! what the runtime does with it: a `std_msgs/String` question (network-reachable: the question
//! topic) becomes an ask request and goes through the same admission as a zenoh ask; a
//! `nav_msgs/Odometry` becomes the camera pose; a `geometry_msgs/TwistStamped` must survive a
//! round trip through our writer. The first byte picks the type.
#![no_main]

use embodied_r_agent::api::admit;
use embodied_r_agent::config::ApiConfig;
use embodied_r_agent::ros2::question_payload;
use embodied_r_perception::ros::msg::{Odometry, StringMsg, TwistStamped};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            if let Ok(m) = StringMsg::from_cdr(payload) {
                let cfg = ApiConfig::default();
                let body = question_payload(&m.data);
                match admit(Some(&body), &cfg, "ros2-topic".into(), Some(50.0), 1.7e9) {
                    Ok(q) => assert!(
                        !q.question.is_empty() && q.question.len() <= cfg.max_question_bytes
                    ),
                    Err(e) => assert!(!e.message.is_empty()),
                }
            }
        }
        1 => {
            if let Ok(o) = Odometry::from_cdr(payload)
                && let Ok(p) = o.pose.to_pose()
            {
                let q = p.rotation.coords;
                assert!(
                    p.translation.vector.iter().all(|x| x.is_finite())
                        && q.iter().all(|x| x.is_finite()),
                    "an accepted pose is finite: {p:?}"
                );
            }
        }
        _ => {
            if let Ok(t) = TwistStamped::from_cdr(payload)
                && let Ok(bytes) = t.to_cdr()
            {
                let again = TwistStamped::from_cdr(&bytes).expect("our own bytes decode");
                // NaN never equals itself: compare the encodings instead of the values.
                assert_eq!(again.to_cdr().expect("re-encodes"), bytes, "round trip");
            }
        }
    }
});
