//! ROS 2 wire format against an independent implementation: messages serialized by the
//! `rosbags` Python package (tools/fixtures_ros_cdr.py, ROS2_JAZZY definitions) decode to the
//! fields it was given, re-encode to the same bytes, carry the type hashes it computes, and every
//! truncation of them is an error, never a panic.

use embodied_r_perception::ros::cdr::CdrError;
use embodied_r_perception::ros::msg::{
    CompressedImageMsg, Header, ImageMsg, Odometry, RosType, StringMsg, TwistStamped,
};
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ros")
}

fn fixtures() -> Vec<(Value, Vec<u8>)> {
    let text = std::fs::read_to_string(dir().join("messages.json")).expect("fixture index");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let file = m["file"].as_str().expect("file");
            let bytes = std::fs::read(dir().join(file)).expect("fixture file");
            assert_eq!(
                bytes.len() as u64,
                m["len"].as_u64().expect("len"),
                "{file}"
            );
            (m.clone(), bytes)
        })
        .collect()
}

fn header(v: &Value) -> Header {
    Header {
        sec: v["sec"].as_i64().expect("sec") as i32,
        nanosec: v["nanosec"].as_u64().expect("nanosec") as u32,
        frame_id: v["frame_id"].as_str().expect("frame_id").into(),
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .expect("byte list")
        .iter()
        .map(|b| b.as_u64().expect("byte") as u8)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("float list")
        .iter()
        .map(|b| b.as_f64().expect("float"))
        .collect()
}

/// serde_json's default float parser may be one ulp off; exactness is the byte comparison's job.
fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-15 * x.abs().max(y.abs()).max(1.0))
}

fn xyz(v: &embodied_r_perception::ros::msg::Vector3) -> Vec<f64> {
    vec![v.x, v.y, v.z]
}

/// Decodes `bytes` as the fixture's type, checks its fields, returns our re-encoding.
fn check(m: &Value, raw: &[u8]) -> (&'static str, Vec<u8>) {
    let f = &m["fields"];
    let name = m["name"].as_str().expect("name");
    match m["type"].as_str().expect("type") {
        "sensor_msgs/msg/Image" => {
            let x = ImageMsg::from_cdr(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(x.header, header(&f["header"]), "{name}");
            assert_eq!(u64::from(x.height), f["height"].as_u64().expect("h"));
            assert_eq!(u64::from(x.width), f["width"].as_u64().expect("w"));
            assert_eq!(u64::from(x.step), f["step"].as_u64().expect("step"));
            assert_eq!(x.encoding, f["encoding"].as_str().expect("enc"));
            assert_eq!(
                u64::from(x.is_bigendian),
                f["is_bigendian"].as_u64().expect("be")
            );
            assert_eq!(x.data, bytes(&f["data"]).as_slice(), "{name}");
            (ImageMsg::RIHS01, x.to_cdr().expect("encodes"))
        }
        "sensor_msgs/msg/CompressedImage" => {
            let x = CompressedImageMsg::from_cdr(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(x.header, header(&f["header"]), "{name}");
            assert_eq!(x.format, f["format"].as_str().expect("format"));
            assert_eq!(x.data, bytes(&f["data"]).as_slice(), "{name}");
            (CompressedImageMsg::RIHS01, x.to_cdr().expect("encodes"))
        }
        "std_msgs/msg/String" => {
            let x = StringMsg::from_cdr(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(x.data, f["data"].as_str().expect("data"), "{name}");
            (StringMsg::RIHS01, x.to_cdr().expect("encodes"))
        }
        "nav_msgs/msg/Odometry" => {
            let x = Odometry::from_cdr(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(x.header, header(&f["header"]), "{name}");
            assert_eq!(
                x.child_frame_id,
                f["child_frame_id"].as_str().expect("child")
            );
            assert!(
                close(&xyz(&x.pose.position), &floats(&f["position"])),
                "{name}"
            );
            let o = x.pose.orientation;
            assert!(
                close(&[o.x, o.y, o.z, o.w], &floats(&f["orientation"])),
                "{name}"
            );
            assert!(
                close(&x.pose_covariance, &floats(&f["pose_covariance"])),
                "{name}"
            );
            assert!(
                close(&xyz(&x.twist.linear), &floats(&f["linear"])),
                "{name}"
            );
            assert!(
                close(&xyz(&x.twist.angular), &floats(&f["angular"])),
                "{name}"
            );
            assert!(
                close(&x.twist_covariance, &floats(&f["twist_covariance"])),
                "{name}"
            );
            // A 45° yaw about z, 10 m up: the pose our frames carry.
            let pose = x.pose.to_pose().expect("unit quaternion");
            assert!((pose.rotation.euler_angles().2 - std::f64::consts::FRAC_PI_4).abs() < 1e-9);
            assert_eq!(pose.translation.vector.z, 10.0);
            (Odometry::RIHS01, x.to_cdr().expect("encodes"))
        }
        "geometry_msgs/msg/TwistStamped" => {
            let x = TwistStamped::from_cdr(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(x.header, header(&f["header"]), "{name}");
            assert!(
                close(&xyz(&x.twist.linear), &floats(&f["linear"])),
                "{name}"
            );
            assert!(
                close(&xyz(&x.twist.angular), &floats(&f["angular"])),
                "{name}"
            );
            (TwistStamped::RIHS01, x.to_cdr().expect("encodes"))
        }
        other => panic!("fixture {name} has unknown type {other}"),
    }
}

fn decode_any(typ: &str, raw: &[u8]) -> Result<(), CdrError> {
    match typ {
        "sensor_msgs/msg/Image" => ImageMsg::from_cdr(raw).map(|_| ()),
        "sensor_msgs/msg/CompressedImage" => CompressedImageMsg::from_cdr(raw).map(|_| ()),
        "std_msgs/msg/String" => StringMsg::from_cdr(raw).map(|_| ()),
        "nav_msgs/msg/Odometry" => Odometry::from_cdr(raw).map(|_| ()),
        _ => TwistStamped::from_cdr(raw).map(|_| ()),
    }
}

#[test]
fn rosbags_messages_decode_and_reencode_byte_for_byte() {
    let all = fixtures();
    assert_eq!(all.len(), 8, "every fixture is checked");
    for (m, raw) in &all {
        let name = m["name"].as_str().expect("name");
        let (hash, ours) = check(m, raw);
        assert_eq!(
            hash,
            m["rihs01"].as_str().expect("hash"),
            "{name}: type hash"
        );
        if m["little_endian"].as_bool().expect("endianness") {
            assert_eq!(&ours, raw, "{name}: our encoding differs from rosbags'");
        } else {
            // We write little-endian; what we wrote must still read back the same.
            assert_eq!(&ours[..4], &[0, 1, 0, 0]);
            check(m, &ours);
        }
    }
}

#[test]
fn every_truncation_of_every_message_is_a_named_error() {
    for (m, raw) in fixtures() {
        let typ = m["type"].as_str().expect("type");
        for cut in 0..raw.len() {
            match decode_any(typ, &raw[..cut]) {
                Err(CdrError::Truncated { .. }) | Err(CdrError::BadString(_)) => {}
                other => panic!("{} cut at {cut}: {other:?}", m["name"]),
            }
        }
    }
}
