//! The ROS 2 messages the runtime exchanges, in their CDR layout (field order and types as in
//! `ros2/common_interfaces`): `sensor_msgs/msg/Image`, `sensor_msgs/msg/CompressedImage`,
//! `std_msgs/msg/String`, `nav_msgs/msg/Odometry` and `geometry_msgs/msg/TwistStamped`.
//!
//! Images borrow their pixel bytes from the payload; everything else is owned. Each type knows
//! its ROS name and its REP-2016 type hash (what rmw_zenoh puts in its key expressions).

use super::cdr::{CdrError, CdrReader, CdrWriter};
use crate::Pose;
use nalgebra::{Isometry3, Quaternion as NQuaternion, Translation3, UnitQuaternion};

/// A ROS 2 message type: its name and its REP-2016 type hash (Iron and later; the values are
/// those `rosbags` computes for the Jazzy definitions, checked by the fixture tests).
pub trait RosType {
    /// `pkg/msg/Name`.
    const NAME: &'static str;
    /// `RIHS01_<sha256 hex>`.
    const RIHS01: &'static str;
}

/// `std_msgs/msg/Header` (its `builtin_interfaces/Time` stamp inline).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Seconds.
    pub sec: i32,
    /// Nanoseconds.
    pub nanosec: u32,
    /// Frame id.
    pub frame_id: String,
}

impl Header {
    /// A header stamped `seconds` (since the epoch) in `frame_id`; out-of-range times clamp.
    pub fn at(seconds: f64, frame_id: &str) -> Header {
        let s = if seconds.is_finite() { seconds } else { 0.0 };
        let whole = s.floor().clamp(f64::from(i32::MIN), f64::from(i32::MAX));
        let nanos = ((s - whole) * 1e9).round().clamp(0.0, 999_999_999.0);
        Header {
            sec: whole as i32,
            nanosec: nanos as u32,
            frame_id: frame_id.to_string(),
        }
    }

    /// The stamp in seconds.
    pub fn seconds(&self) -> f64 {
        f64::from(self.sec) + f64::from(self.nanosec) * 1e-9
    }

    fn read(r: &mut CdrReader<'_>) -> Result<Header, CdrError> {
        Ok(Header {
            sec: r.i32("header.stamp.sec")?,
            nanosec: r.u32("header.stamp.nanosec")?,
            frame_id: r.string("header.frame_id")?.to_string(),
        })
    }

    fn write(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.i32(self.sec);
        w.u32(self.nanosec);
        w.string("header.frame_id", &self.frame_id)
    }
}

/// `sensor_msgs/msg/Image`, borrowing its pixel data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMsg<'a> {
    /// Header.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding name.
    pub encoding: String,
    /// Whether multi-byte pixels are big-endian.
    pub is_bigendian: u8,
    /// Row stride in bytes.
    pub step: u32,
    /// Pixels.
    pub data: &'a [u8],
}

impl RosType for ImageMsg<'_> {
    const NAME: &'static str = "sensor_msgs/msg/Image";
    const RIHS01: &'static str =
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47";
}

impl<'a> ImageMsg<'a> {
    /// Reads a serialized message.
    pub fn from_cdr(payload: &'a [u8]) -> Result<ImageMsg<'a>, CdrError> {
        let mut r = CdrReader::new(payload)?;
        Ok(ImageMsg {
            header: Header::read(&mut r)?,
            height: r.u32("height")?,
            width: r.u32("width")?,
            encoding: r.string("encoding")?.to_string(),
            is_bigendian: r.u8("is_bigendian")?,
            step: r.u32("step")?,
            data: r.bytes("data")?,
        })
    }

    /// Serializes the message.
    pub fn to_cdr(&self) -> Result<Vec<u8>, CdrError> {
        let mut w = CdrWriter::with_capacity(self.data.len() + 64);
        self.header.write(&mut w)?;
        w.u32(self.height);
        w.u32(self.width);
        w.string("encoding", &self.encoding)?;
        w.u8(self.is_bigendian);
        w.u32(self.step);
        w.bytes("data", self.data)?;
        Ok(w.finish())
    }
}

/// `sensor_msgs/msg/CompressedImage`, borrowing its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedImageMsg<'a> {
    /// Header.
    pub header: Header,
    /// Format, e.g. `jpeg` or `rgb8; jpeg compressed bgr8`.
    pub format: String,
    /// Compressed bytes.
    pub data: &'a [u8],
}

impl RosType for CompressedImageMsg<'_> {
    const NAME: &'static str = "sensor_msgs/msg/CompressedImage";
    const RIHS01: &'static str =
        "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a";
}

impl<'a> CompressedImageMsg<'a> {
    /// Reads a serialized message.
    pub fn from_cdr(payload: &'a [u8]) -> Result<CompressedImageMsg<'a>, CdrError> {
        let mut r = CdrReader::new(payload)?;
        Ok(CompressedImageMsg {
            header: Header::read(&mut r)?,
            format: r.string("format")?.to_string(),
            data: r.bytes("data")?,
        })
    }

    /// Serializes the message.
    pub fn to_cdr(&self) -> Result<Vec<u8>, CdrError> {
        let mut w = CdrWriter::with_capacity(self.data.len() + 48);
        self.header.write(&mut w)?;
        w.string("format", &self.format)?;
        w.bytes("data", self.data)?;
        Ok(w.finish())
    }
}

/// `std_msgs/msg/String`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringMsg {
    /// The text.
    pub data: String,
}

impl RosType for StringMsg {
    const NAME: &'static str = "std_msgs/msg/String";
    const RIHS01: &'static str =
        "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18";
}

impl StringMsg {
    /// Reads a serialized message.
    pub fn from_cdr(payload: &[u8]) -> Result<StringMsg, CdrError> {
        let mut r = CdrReader::new(payload)?;
        Ok(StringMsg {
            data: r.string("data")?.to_string(),
        })
    }

    /// Serializes the message.
    pub fn to_cdr(&self) -> Result<Vec<u8>, CdrError> {
        let mut w = CdrWriter::with_capacity(self.data.len() + 8);
        w.string("data", &self.data)?;
        Ok(w.finish())
    }
}

/// `geometry_msgs/msg/Vector3` (also `Point`: the same three `float64`s).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Vector3 {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// z.
    pub z: f64,
}

impl Vector3 {
    fn read(r: &mut CdrReader<'_>, field: &'static str) -> Result<Vector3, CdrError> {
        Ok(Vector3 {
            x: r.f64(field)?,
            y: r.f64(field)?,
            z: r.f64(field)?,
        })
    }

    fn write(&self, w: &mut CdrWriter) {
        w.f64s(&[self.x, self.y, self.z]);
    }
}

/// `geometry_msgs/msg/Quaternion`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quaternion {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// z.
    pub z: f64,
    /// w.
    pub w: f64,
}

impl Default for Quaternion {
    fn default() -> Self {
        Quaternion {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            w: 1.0,
        }
    }
}

/// `geometry_msgs/msg/Pose`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoseMsg {
    /// Position (`geometry_msgs/msg/Point`).
    pub position: Vector3,
    /// Orientation.
    pub orientation: Quaternion,
}

impl PoseMsg {
    /// The pose as an isometry (REP 103 axes, as [`Pose`]); a quaternion that is not finite or
    /// has (near) zero length is an error rather than a silently invented rotation.
    pub fn to_pose(&self) -> Result<Pose, CdrError> {
        let p = self.position;
        let o = self.orientation;
        let all = [p.x, p.y, p.z, o.x, o.y, o.z, o.w];
        if all.iter().any(|v| !v.is_finite()) {
            return Err(CdrError::Value {
                field: "pose",
                what: format!("non-finite value in {all:?}"),
            });
        }
        let q = NQuaternion::new(o.w, o.x, o.y, o.z);
        if q.norm() < 1e-6 {
            return Err(CdrError::Value {
                field: "pose.orientation",
                what: "the quaternion has zero length (expected a unit quaternion)".into(),
            });
        }
        Ok(Isometry3::from_parts(
            Translation3::new(p.x, p.y, p.z),
            UnitQuaternion::from_quaternion(q),
        ))
    }

    /// The message for an isometry.
    pub fn from_pose(pose: &Pose) -> PoseMsg {
        let t = pose.translation.vector;
        let q = pose.rotation.quaternion();
        PoseMsg {
            position: Vector3 {
                x: t.x,
                y: t.y,
                z: t.z,
            },
            orientation: Quaternion {
                x: q.i,
                y: q.j,
                z: q.k,
                w: q.w,
            },
        }
    }

    fn read(r: &mut CdrReader<'_>) -> Result<PoseMsg, CdrError> {
        let position = Vector3::read(r, "pose.position")?;
        let orientation = Quaternion {
            x: r.f64("pose.orientation")?,
            y: r.f64("pose.orientation")?,
            z: r.f64("pose.orientation")?,
            w: r.f64("pose.orientation")?,
        };
        Ok(PoseMsg {
            position,
            orientation,
        })
    }

    fn write(&self, w: &mut CdrWriter) {
        self.position.write(w);
        let o = self.orientation;
        w.f64s(&[o.x, o.y, o.z, o.w]);
    }
}

/// `geometry_msgs/msg/Twist`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Twist {
    /// Linear velocity, m/s.
    pub linear: Vector3,
    /// Angular velocity, rad/s.
    pub angular: Vector3,
}

impl Twist {
    fn read(r: &mut CdrReader<'_>) -> Result<Twist, CdrError> {
        Ok(Twist {
            linear: Vector3::read(r, "twist.linear")?,
            angular: Vector3::read(r, "twist.angular")?,
        })
    }

    fn write(&self, w: &mut CdrWriter) {
        self.linear.write(w);
        self.angular.write(w);
    }
}

/// `geometry_msgs/msg/TwistStamped`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwistStamped {
    /// Header.
    pub header: Header,
    /// The twist.
    pub twist: Twist,
}

impl RosType for TwistStamped {
    const NAME: &'static str = "geometry_msgs/msg/TwistStamped";
    const RIHS01: &'static str =
        "RIHS01_5f0fcd4f81d5d06ad9b4c4c63e3ea51b82d6ae4d0558f1d475229b1121db6f64";
}

impl TwistStamped {
    /// Reads a serialized message.
    pub fn from_cdr(payload: &[u8]) -> Result<TwistStamped, CdrError> {
        let mut r = CdrReader::new(payload)?;
        Ok(TwistStamped {
            header: Header::read(&mut r)?,
            twist: Twist::read(&mut r)?,
        })
    }

    /// Serializes the message.
    pub fn to_cdr(&self) -> Result<Vec<u8>, CdrError> {
        let mut w = CdrWriter::with_capacity(96);
        self.header.write(&mut w)?;
        self.twist.write(&mut w);
        Ok(w.finish())
    }
}

/// `nav_msgs/msg/Odometry`.
#[derive(Debug, Clone, PartialEq)]
pub struct Odometry {
    /// Header (`frame_id`: the frame the pose is in, e.g. `odom`).
    pub header: Header,
    /// The frame the twist is in, e.g. `base_link`.
    pub child_frame_id: String,
    /// Pose.
    pub pose: PoseMsg,
    /// Row-major 6×6 covariance of the pose.
    pub pose_covariance: [f64; 36],
    /// Twist.
    pub twist: Twist,
    /// Row-major 6×6 covariance of the twist.
    pub twist_covariance: [f64; 36],
}

impl Default for Odometry {
    fn default() -> Self {
        Odometry {
            header: Header::default(),
            child_frame_id: String::new(),
            pose: PoseMsg::default(),
            pose_covariance: [0.0; 36],
            twist: Twist::default(),
            twist_covariance: [0.0; 36],
        }
    }
}

impl RosType for Odometry {
    const NAME: &'static str = "nav_msgs/msg/Odometry";
    const RIHS01: &'static str =
        "RIHS01_3cc97dc7fb7502f8714462c526d369e35b603cfc34d946e3f2eda2766dfec6e0";
}

impl Odometry {
    /// Reads a serialized message.
    pub fn from_cdr(payload: &[u8]) -> Result<Odometry, CdrError> {
        let mut r = CdrReader::new(payload)?;
        Ok(Odometry {
            header: Header::read(&mut r)?,
            child_frame_id: r.string("child_frame_id")?.to_string(),
            pose: PoseMsg::read(&mut r)?,
            pose_covariance: r.f64_array("pose.covariance")?,
            twist: Twist::read(&mut r)?,
            twist_covariance: r.f64_array("twist.covariance")?,
        })
    }

    /// Serializes the message.
    pub fn to_cdr(&self) -> Result<Vec<u8>, CdrError> {
        let mut w = CdrWriter::with_capacity(760);
        self.header.write(&mut w)?;
        w.string("child_frame_id", &self.child_frame_id)?;
        self.pose.write(&mut w);
        w.f64s(&self.pose_covariance);
        self.twist.write(&mut w);
        w.f64s(&self.twist_covariance);
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_image(data_len_field: u32, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 1, 0, 0];
        b.extend(7i32.to_le_bytes());
        b.extend(9u32.to_le_bytes());
        b.extend(4u32.to_le_bytes());
        b.extend(b"cam\0");
        b.extend(1u32.to_le_bytes()); // height
        b.extend(2u32.to_le_bytes()); // width
        b.extend(5u32.to_le_bytes());
        b.extend(b"rgb8\0");
        b.push(0); // is_bigendian, then pad to 4
        b.extend([0, 0]);
        b.extend(6u32.to_le_bytes());
        b.extend(data_len_field.to_le_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn reads_and_writes_an_image_with_alignment_padding() {
        let bytes = le_image(6, &[1, 2, 3, 4, 5, 6]);
        let m = ImageMsg::from_cdr(&bytes).expect("reads");
        assert_eq!(
            m.header,
            Header {
                sec: 7,
                nanosec: 9,
                frame_id: "cam".into()
            }
        );
        assert_eq!(
            (m.height, m.width, m.step, m.encoding.as_str()),
            (1, 2, 6, "rgb8")
        );
        assert_eq!(m.data, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(m.to_cdr().expect("writes"), bytes);
    }

    #[test]
    fn truncated_and_lying_payloads_are_errors() {
        let bytes = le_image(1000, &[1, 2, 3]);
        let e = ImageMsg::from_cdr(&bytes).unwrap_err();
        assert!(
            matches!(e, CdrError::Truncated { field: "data", .. }),
            "{e}"
        );
        for cut in 0..bytes.len() - 3 {
            assert!(ImageMsg::from_cdr(&bytes[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(
            ImageMsg::from_cdr(&[0, 3, 0, 0, 1]).unwrap_err(),
            CdrError::Encapsulation(3)
        );
        let mut bad = le_image(6, &[0; 6]);
        bad[4 + 12 + 3] = b'x'; // frame_id loses its NUL
        assert_eq!(
            ImageMsg::from_cdr(&bad).unwrap_err(),
            CdrError::BadString("header.frame_id")
        );
    }

    #[test]
    fn header_stamps_split_into_seconds_and_nanoseconds() {
        let h = Header::at(12.25, "map");
        assert_eq!((h.sec, h.nanosec), (12, 250_000_000));
        assert_eq!(h.seconds(), 12.25);
        assert_eq!(Header::at(f64::NAN, "x").sec, 0);
        assert_eq!(Header::at(1e30, "x").sec, i32::MAX);
    }

    #[test]
    fn odometry_poses_convert_and_bad_quaternions_are_named() {
        let pose = Isometry3::from_parts(
            Translation3::new(1.0, -2.0, 0.5),
            UnitQuaternion::from_euler_angles(0.0, 0.1, 0.7),
        );
        let m = PoseMsg::from_pose(&pose);
        let back = m.to_pose().expect("valid");
        assert!((back.translation.vector - pose.translation.vector).norm() < 1e-12);
        assert!(back.rotation.angle_to(&pose.rotation) < 1e-12);
        let zero = PoseMsg {
            orientation: Quaternion {
                x: 0.0,
                y: 0.0,
                z: 0.0,
                w: 0.0,
            },
            ..m
        };
        let e = zero.to_pose().unwrap_err().to_string();
        assert!(
            e.contains("pose.orientation") && e.contains("zero length"),
            "{e}"
        );
        let odo = Odometry {
            header: Header::at(3.5, "odom"),
            child_frame_id: "base_link".into(),
            pose: m,
            ..Odometry::default()
        };
        let bytes = odo.to_cdr().expect("writes");
        // header 4 | stamp 8 | "odom" 4 + 5, pad 3 | "base_link" 4 + 10, pad 6 | 720 − 40.
        assert_eq!(bytes.len(), 724);
        assert_eq!(Odometry::from_cdr(&bytes).expect("reads"), odo);
    }
}
