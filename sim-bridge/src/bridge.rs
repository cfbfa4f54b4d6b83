//! The external-simulator bridge: a documented zenoh protocol through which a simulator (ours,
//! AirSim, Isaac Sim, Gazebo, Habitat) streams camera frames with poses into the runtime and
//! receives the runtime's navigation hints. The full specification is `docs/sim-bridge.md`.
//!
//! Key expressions under a prefix (default `sim/default`):
//! - `<prefix>/frame`: simulator → runtime, one [`FrameMessage`] per frame (envelope below);
//! - `<prefix>/truth`: simulator → runtime, optional per-frame ground truth (JSON);
//! - `<prefix>/nav_hint`: runtime → simulator, one [`NavHint`] (JSON);
//! - `<prefix>/alive`: the simulator's liveliness token.
//!
//! Frame envelope: the 4 bytes `ERF1`, a little-endian u32 header length, a UTF-8 JSON
//! [`FrameHeader`] of that length, then the image bytes (JPEG, PNG or raw rgb8). Everything a
//! peer sends is validated before use; nothing is allocated from a size a header claims.

use embodied_r_perception::{Action, Frame, Pose};
use serde::{Deserialize, Serialize};

/// Envelope magic.
pub const MAGIC: &[u8; 4] = b"ERF1";
/// Largest JSON header accepted.
pub const MAX_HEADER: usize = 64 * 1024;
/// Largest image side accepted.
pub const MAX_SIDE: u32 = 8192;
/// Largest image payload accepted (bytes).
pub const MAX_IMAGE: usize = 64 * 1024 * 1024;

/// Why a bridge message was refused.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Not a frame envelope.
    #[error("frame message on {key}: {reason}")]
    Envelope {
        /// Key expression it arrived on.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The JSON header or a nav hint did not parse.
    #[error("{what} on {key}: invalid JSON: {source}")]
    Json {
        /// Which message.
        what: &'static str,
        /// Key expression it arrived on.
        key: String,
        /// Parser error (names the field).
        source: serde_json::Error,
    },
    /// The image did not decode or does not match the header.
    #[error("frame {seq} on {key}: {reason}")]
    Image {
        /// Frame sequence number from the header.
        seq: u64,
        /// Key expression it arrived on.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A nav hint names no known action.
    #[error("nav hint on {key}: {source}")]
    Action {
        /// Key expression it arrived on.
        key: String,
        /// The parse error (lists the accepted actions).
        source: embodied_r_perception::ParseActionError,
    },
    /// zenoh failed (session, declaration, publication).
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// A frame could not be encoded for sending.
    #[error("cannot encode frame {seq}: {reason}")]
    Encode {
        /// Frame sequence number.
        seq: u64,
        /// What failed.
        reason: String,
    },
}

/// Image encodings a frame may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageEncoding {
    /// JPEG (what simulators should send: raw frames choke links).
    Jpeg,
    /// PNG.
    Png,
    /// Packed rgb8, row-major, width × height × 3 bytes.
    Rgb8,
}

/// A pose as numbers: world_from_camera_optical (x right, y down, z forward), metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WirePose {
    /// Translation x, y, z.
    pub translation: [f64; 3],
    /// Rotation quaternion x, y, z, w (normalised on receipt).
    pub rotation_xyzw: [f64; 4],
}

impl WirePose {
    /// From an isometry.
    pub fn from_pose(p: &Pose) -> Self {
        let t = p.translation.vector;
        let q = p.rotation.quaternion();
        Self {
            translation: [t.x, t.y, t.z],
            rotation_xyzw: [q.i, q.j, q.k, q.w],
        }
    }

    /// To an isometry; `None` for non-finite numbers or a zero quaternion.
    pub fn to_pose(&self) -> Option<Pose> {
        use nalgebra::{Quaternion, Translation3, UnitQuaternion};
        let [x, y, z, w] = self.rotation_xyzw;
        let all = self.translation.iter().chain(self.rotation_xyzw.iter());
        if all.into_iter().any(|v| !v.is_finite()) {
            return None;
        }
        let q = Quaternion::new(w, x, y, z);
        if q.norm() < 1e-9 {
            return None;
        }
        let [tx, ty, tz] = self.translation;
        Some(Pose::from_parts(
            Translation3::new(tx, ty, tz),
            UnitQuaternion::from_quaternion(q),
        ))
    }
}

/// The JSON header of a frame message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameHeader {
    /// Sequence number (increasing per stream).
    pub seq: u64,
    /// Capture time, seconds (simulation clock).
    pub stamp: f64,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Image encoding.
    pub encoding: ImageEncoding,
    /// Camera pose, when the simulator knows it.
    #[serde(default)]
    pub pose: Option<WirePose>,
    /// Horizontal field of view, degrees (optional).
    #[serde(default)]
    pub hfov_deg: Option<f32>,
}

/// A frame message: header and image bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameMessage {
    /// Header.
    pub header: FrameHeader,
    /// Encoded image.
    pub image: Vec<u8>,
}

impl FrameMessage {
    /// Encodes `frame` (JPEG at `quality`, or PNG/raw) into a message.
    pub fn from_frame(
        frame: &Frame,
        encoding: ImageEncoding,
        quality: u8,
        hfov_deg: Option<f32>,
    ) -> Result<Self, BridgeError> {
        use image::ImageEncoder;
        let enc_err = |e: image::ImageError| BridgeError::Encode {
            seq: frame.seq,
            reason: e.to_string(),
        };
        let mut image = Vec::new();
        match encoding {
            ImageEncoding::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut image,
                quality.clamp(1, 100),
            )
            .write_image(
                &frame.rgb,
                frame.width,
                frame.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(enc_err)?,
            ImageEncoding::Png => image::codecs::png::PngEncoder::new(&mut image)
                .write_image(
                    &frame.rgb,
                    frame.width,
                    frame.height,
                    image::ExtendedColorType::Rgb8,
                )
                .map_err(enc_err)?,
            ImageEncoding::Rgb8 => image.extend_from_slice(&frame.rgb),
        }
        Ok(Self {
            header: FrameHeader {
                seq: frame.seq,
                stamp: frame.stamp,
                width: frame.width,
                height: frame.height,
                encoding,
                pose: frame.pose.as_ref().map(WirePose::from_pose),
                hfov_deg,
            },
            image,
        })
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a plain struct of numbers and enums cannot fail.
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let mut out = Vec::with_capacity(8 + header.len() + self.image.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.image);
        out
    }

    /// Parses wire bytes that arrived on `key`, validating every length.
    pub fn decode(bytes: &[u8], key: &str) -> Result<Self, BridgeError> {
        let bad = |reason: String| BridgeError::Envelope {
            key: key.to_string(),
            reason,
        };
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(bad(format!(
                "expected the 'ERF1' envelope, got {} bytes starting {:02x?}",
                bytes.len(),
                &bytes[..bytes.len().min(4)]
            )));
        }
        let hlen = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        if hlen > MAX_HEADER || hlen > bytes.len() - 8 {
            return Err(bad(format!(
                "header length {hlen} exceeds the message ({} bytes) or the {MAX_HEADER}-byte limit",
                bytes.len()
            )));
        }
        let header: FrameHeader =
            serde_json::from_slice(&bytes[8..8 + hlen]).map_err(|source| BridgeError::Json {
                what: "frame header",
                key: key.to_string(),
                source,
            })?;
        let image = &bytes[8 + hlen..];
        let img_err = |reason: String| BridgeError::Image {
            seq: header.seq,
            key: key.to_string(),
            reason,
        };
        if header.width == 0
            || header.height == 0
            || header.width > MAX_SIDE
            || header.height > MAX_SIDE
        {
            return Err(img_err(format!(
                "size {}x{} outside 1..={MAX_SIDE} per side",
                header.width, header.height
            )));
        }
        if image.is_empty() || image.len() > MAX_IMAGE {
            return Err(img_err(format!(
                "image payload of {} bytes (expected 1..={MAX_IMAGE})",
                image.len()
            )));
        }
        if !header.stamp.is_finite() {
            return Err(img_err("stamp is not a finite number".into()));
        }
        Ok(Self {
            header,
            image: image.to_vec(),
        })
    }

    /// Decodes the image into a [`Frame`], checking it against the header.
    pub fn to_frame(&self, key: &str) -> Result<Frame, BridgeError> {
        let h = &self.header;
        let err = |reason: String| BridgeError::Image {
            seq: h.seq,
            key: key.to_string(),
            reason,
        };
        let rgb = match h.encoding {
            ImageEncoding::Rgb8 => {
                let want = h.width as usize * h.height as usize * 3;
                if self.image.len() != want {
                    return Err(err(format!(
                        "rgb8 {}x{} needs {want} bytes, got {}",
                        h.width,
                        h.height,
                        self.image.len()
                    )));
                }
                self.image.clone()
            }
            ImageEncoding::Jpeg | ImageEncoding::Png => {
                let format = if h.encoding == ImageEncoding::Jpeg {
                    image::ImageFormat::Jpeg
                } else {
                    image::ImageFormat::Png
                };
                let mut reader =
                    image::ImageReader::with_format(std::io::Cursor::new(&self.image), format);
                let mut limits = image::Limits::default();
                limits.max_image_width = Some(MAX_SIDE);
                limits.max_image_height = Some(MAX_SIDE);
                limits.max_alloc = Some(512 * 1024 * 1024);
                reader.limits(limits);
                let img = reader
                    .decode()
                    .map_err(|e| err(format!("cannot decode {:?}: {e}", h.encoding)))?;
                if img.width() != h.width || img.height() != h.height {
                    return Err(err(format!(
                        "image is {}x{}, header says {}x{}",
                        img.width(),
                        img.height(),
                        h.width,
                        h.height
                    )));
                }
                img.to_rgb8().into_raw()
            }
        };
        let pose =
            match &h.pose {
                Some(p) => Some(p.to_pose().ok_or_else(|| {
                    err("pose has non-finite numbers or a zero quaternion".into())
                })?),
                None => None,
            };
        Frame::new(h.seq, h.stamp, h.width, h.height, rgb, pose).map_err(|e| err(e.to_string()))
    }
}

/// A navigation hint from the runtime to the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct NavHint {
    /// One of the ten actions.
    pub action: Action,
    /// What the hint steers toward (an object name), if any.
    pub target: Option<String>,
    /// A short reason.
    pub reason: Option<String>,
    /// The question it answers, if any.
    pub question_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHint {
    action: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    question_id: Option<String>,
}

impl NavHint {
    /// JSON bytes, e.g. `{"action":"rotate left","target":"tower","reason":"…"}`.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&WireHint {
            action: self.action.phrase().to_string(),
            target: self.target.clone(),
            reason: self.reason.clone(),
            question_id: self.question_id.clone(),
        })
        .unwrap_or_default()
    }

    /// Parses JSON bytes that arrived on `key`.
    pub fn decode(bytes: &[u8], key: &str) -> Result<Self, BridgeError> {
        let w: WireHint = serde_json::from_slice(bytes).map_err(|source| BridgeError::Json {
            what: "nav hint",
            key: key.to_string(),
            source,
        })?;
        let action = w.action.parse().map_err(|source| BridgeError::Action {
            key: key.to_string(),
            source,
        })?;
        Ok(Self {
            action,
            target: w.target,
            reason: w.reason,
            question_id: w.question_id,
        })
    }
}

/// The key expressions of one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Frames.
    pub frame: String,
    /// Ground truth.
    pub truth: String,
    /// Navigation hints.
    pub nav_hint: String,
    /// Liveliness token.
    pub alive: String,
}

impl Keys {
    /// Keys under `prefix` (no trailing slash; must not contain wildcards).
    pub fn new(prefix: &str) -> Result<Self, BridgeError> {
        let p = prefix.trim_end_matches('/');
        if p.is_empty()
            || p.contains(['*', '$', '?', '#'])
            || p.starts_with('/')
            || p.contains("//")
        {
            return Err(BridgeError::Zenoh(format!(
                "prefix {prefix:?}: expected a key expression without wildcards, such as sim/default"
            )));
        }
        Ok(Self {
            frame: format!("{p}/frame"),
            truth: format!("{p}/truth"),
            nav_hint: format!("{p}/nav_hint"),
            alive: format!("{p}/alive"),
        })
    }
}

#[cfg(feature = "zenoh")]
pub use self::net::*;

#[cfg(feature = "zenoh")]
mod net {
    //! The zenoh side: sessions, the simulator's publisher, the runtime's frame source.

    use super::*;
    use embodied_r_perception::{DropOldest, QueueStats};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use zenoh::Wait;

    /// How to join the zenoh network.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct NetConfig {
        /// `peer` (default), `client` or `router`.
        pub mode: Option<String>,
        /// Endpoints to connect to (e.g. `tcp/127.0.0.1:7447`).
        pub connect: Vec<String>,
        /// Endpoints to listen on.
        pub listen: Vec<String>,
        /// Multicast scouting (on by default in zenoh; tests turn it off to stay on loopback).
        pub multicast_scouting: bool,
        /// A zenoh JSON5 configuration file read first (access control, TLS certificates,
        /// authentication, anything zenoh configures); the fields above override it where set
        /// (`mode` when given, the endpoint lists when not empty, scouting always).
        pub config_file: Option<std::path::PathBuf>,
        /// Largest message the session reassembles from the network (zenoh's
        /// `transport/link/rx/max_message_size`, 1 GiB by default): a bigger one is dropped by
        /// the transport before anything of ours sees it, so a peer cannot make us buffer more.
        pub max_message_bytes: Option<usize>,
    }

    fn z<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BridgeError + '_ {
        move |e| BridgeError::Zenoh(format!("{what}: {e}"))
    }

    /// Opens a zenoh session.
    pub fn open(cfg: &NetConfig) -> Result<zenoh::Session, BridgeError> {
        zenoh::open(zenoh_config(cfg)?)
            .wait()
            .map_err(z("opening the session"))
    }

    /// The zenoh configuration for `cfg` (for callers that open the session asynchronously).
    pub fn zenoh_config(cfg: &NetConfig) -> Result<zenoh::Config, BridgeError> {
        let mut c = match &cfg.config_file {
            None => zenoh::Config::default(),
            Some(p) => zenoh::Config::from_file(p).map_err(|e| {
                BridgeError::Zenoh(format!(
                    "zenoh configuration file {}: {e} (expected zenoh's JSON5 configuration)",
                    p.display()
                ))
            })?,
        };
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        if let Some(mode) = &cfg.mode {
            c.insert_json5("mode", &format!("{mode:?}"))
                .map_err(z("mode (expected peer, client or router)"))?;
        }
        if !cfg.connect.is_empty() {
            c.insert_json5("connect/endpoints", &json(&cfg.connect))
                .map_err(z("connect endpoints"))?;
        }
        if !cfg.listen.is_empty() {
            c.insert_json5("listen/endpoints", &json(&cfg.listen))
                .map_err(z("listen endpoints"))?;
        }
        c.insert_json5(
            "scouting/multicast/enabled",
            if cfg.multicast_scouting {
                "true"
            } else {
                "false"
            },
        )
        .map_err(z("scouting"))?;
        if let Some(n) = cfg.max_message_bytes {
            c.insert_json5("transport/link/rx/max_message_size", &n.to_string())
                .map_err(z("transport/link/rx/max_message_size"))?;
        }
        Ok(c)
    }

    /// A decoded subscription: its queue, the refused-message counter and the subscriber.
    type Subscription<T> = (
        Arc<DropOldest<T>>,
        Arc<AtomicU64>,
        zenoh::pubsub::Subscriber<()>,
    );

    /// Subscribes to `key`, decoding each sample with `decode` into a drop-oldest queue of
    /// `capacity`; malformed messages are counted, logged and skipped. The zenoh callback never
    /// blocks.
    fn subscribe<T, F>(
        session: &zenoh::Session,
        key: &str,
        capacity: usize,
        decode: F,
    ) -> Result<Subscription<T>, BridgeError>
    where
        T: Send + 'static,
        F: Fn(&[u8], &str) -> Result<T, BridgeError> + Send + Sync + 'static,
    {
        let queue = Arc::new(DropOldest::new(capacity));
        let bad = Arc::new(AtomicU64::new(0));
        let (q, b) = (queue.clone(), bad.clone());
        let sub = session
            .declare_subscriber(key.to_string())
            .callback(move |sample| {
                let key = sample.key_expr().to_string();
                match decode(&sample.payload().to_bytes(), &key) {
                    Ok(item) => {
                        q.push(item);
                    }
                    Err(e) => {
                        b.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("skipping a malformed message: {e}");
                    }
                }
            })
            .wait()
            .map_err(|e| BridgeError::Zenoh(format!("subscribing to {key}: {e}")))?;
        Ok((queue, bad, sub))
    }

    /// The simulator's end: publishes frames (and truth), receives nav hints, holds a liveliness
    /// token.
    pub struct SimPublisher {
        keys: Keys,
        frames: zenoh::pubsub::Publisher<'static>,
        truth: zenoh::pubsub::Publisher<'static>,
        hints: Arc<DropOldest<NavHint>>,
        bad_hints: Arc<AtomicU64>,
        _sub: zenoh::pubsub::Subscriber<()>,
        _token: zenoh::liveliness::LivelinessToken,
    }

    impl SimPublisher {
        /// Declares the simulator's publishers, subscriber and token under `prefix`.
        pub fn new(session: &zenoh::Session, prefix: &str) -> Result<Self, BridgeError> {
            let keys = Keys::new(prefix)?;
            let frames = session
                .declare_publisher(keys.frame.clone())
                .wait()
                .map_err(z("declaring the frame publisher"))?;
            let truth = session
                .declare_publisher(keys.truth.clone())
                .wait()
                .map_err(z("declaring the truth publisher"))?;
            let (hints, bad_hints, sub) = subscribe(session, &keys.nav_hint, 64, NavHint::decode)?;
            let token = session
                .liveliness()
                .declare_token(keys.alive.clone())
                .wait()
                .map_err(z("declaring the liveliness token"))?;
            Ok(Self {
                keys,
                frames,
                truth,
                hints,
                bad_hints,
                _sub: sub,
                _token: token,
            })
        }

        /// The keys in use.
        pub fn keys(&self) -> &Keys {
            &self.keys
        }

        /// Publishes a frame.
        pub fn publish(&self, msg: &FrameMessage) -> Result<(), BridgeError> {
            self.frames
                .put(msg.encode())
                .wait()
                .map_err(z("publishing a frame"))
        }

        /// Publishes a frame's ground truth (JSON).
        pub fn publish_truth(&self, json: Vec<u8>) -> Result<(), BridgeError> {
            self.truth.put(json).wait().map_err(z("publishing truth"))
        }

        /// Whether a frame subscriber is connected.
        pub fn has_subscriber(&self) -> bool {
            self.frames
                .matching_status()
                .wait()
                .is_ok_and(|m| m.matching())
        }

        /// Waits up to `timeout` for a frame subscriber.
        pub fn wait_for_subscriber(&self, timeout: Duration) -> bool {
            let end = std::time::Instant::now() + timeout;
            while std::time::Instant::now() < end {
                if self.has_subscriber() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        }

        /// The next received nav hint, if any.
        pub fn next_hint(&self) -> Option<NavHint> {
            self.hints.try_pop()
        }

        /// Nav hints refused as malformed.
        pub fn bad_hints(&self) -> u64 {
            self.bad_hints.load(Ordering::Relaxed)
        }
    }

    /// Counters of a [`FrameSource`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct SourceStats {
        /// Queue counters (pushed, dropped because full, taken).
        pub queue: QueueStats,
        /// Messages refused as malformed (counted, logged, skipped).
        pub bad: u64,
    }

    /// The runtime's end: a camera source fed by a simulator over zenoh. Never blocks the
    /// network thread: frames go into a drop-oldest queue.
    pub struct FrameSource {
        keys: Keys,
        queue: Arc<DropOldest<Frame>>,
        bad: Arc<AtomicU64>,
        hints: zenoh::pubsub::Publisher<'static>,
        _sub: zenoh::pubsub::Subscriber<()>,
    }

    impl FrameSource {
        /// Subscribes to `<prefix>/frame`, keeping at most `capacity` undelivered frames.
        pub fn new(
            session: &zenoh::Session,
            prefix: &str,
            capacity: usize,
        ) -> Result<Self, BridgeError> {
            let keys = Keys::new(prefix)?;
            let (queue, bad, sub) = subscribe(session, &keys.frame, capacity, |bytes, key| {
                FrameMessage::decode(bytes, key).and_then(|m| m.to_frame(key))
            })?;
            let hints = session
                .declare_publisher(keys.nav_hint.clone())
                .wait()
                .map_err(z("declaring the nav-hint publisher"))?;
            Ok(Self {
                keys,
                queue,
                bad,
                hints,
                _sub: sub,
            })
        }

        /// The keys in use.
        pub fn keys(&self) -> &Keys {
            &self.keys
        }

        /// The next frame, waiting up to `timeout`.
        pub fn next_frame(&self, timeout: Duration) -> Option<Frame> {
            self.queue.pop_timeout(timeout)
        }

        /// Sends a navigation hint to the simulator.
        pub fn send_hint(&self, hint: &NavHint) -> Result<(), BridgeError> {
            self.hints
                .put(hint.encode())
                .wait()
                .map_err(z("publishing a nav hint"))
        }

        /// Counters so far.
        pub fn stats(&self) -> SourceStats {
            SourceStats {
                queue: self.queue.stats(),
                bad: self.bad.load(Ordering::Relaxed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        let rgb: Vec<u8> = (0..32 * 24 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let pose = crate::CameraPose {
            position: crate::math::V3::new(1.0, 2.0, 3.0),
            yaw: 0.5,
            pitch: -0.1,
        }
        .isometry();
        Frame::new(4, 0.25, 32, 24, rgb, Some(pose)).unwrap()
    }

    #[test]
    fn frames_round_trip_in_every_encoding() {
        let f = frame();
        for enc in [ImageEncoding::Rgb8, ImageEncoding::Png, ImageEncoding::Jpeg] {
            let m = FrameMessage::from_frame(&f, enc, 90, Some(90.0)).unwrap();
            let back = FrameMessage::decode(&m.encode(), "sim/x/frame").unwrap();
            assert_eq!(back, m);
            let g = back.to_frame("sim/x/frame").unwrap();
            assert_eq!((g.seq, g.width, g.height, g.stamp), (4, 32, 24, 0.25));
            let (p, q) = (f.pose.unwrap(), g.pose.unwrap());
            assert!((p.translation.vector - q.translation.vector).norm() < 1e-12);
            assert!(p.rotation.angle_to(&q.rotation) < 1e-9);
            if enc != ImageEncoding::Jpeg {
                assert_eq!(g.rgb, f.rgb);
            }
        }
    }

    #[test]
    fn bad_messages_are_named_errors() {
        let f = frame();
        let good = FrameMessage::from_frame(&f, ImageEncoding::Rgb8, 90, None)
            .unwrap()
            .encode();
        let key = "sim/x/frame";
        let e = FrameMessage::decode(b"JUNKJUNK", key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ERF1") && e.contains(key), "{e}");
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = FrameMessage::decode(&huge, key).unwrap_err().to_string();
        assert!(e.contains("header length"), "{e}");
        let e = FrameMessage::decode(&good[..good.len() - 5], key)
            .unwrap()
            .to_frame(key)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("frame 4") && e.contains("needs 2304 bytes"),
            "{e}"
        );
        // Unknown header fields are refused, naming the field.
        let mut m = FrameMessage::decode(&good, key).unwrap();
        let mut hdr = serde_json::to_value(&m.header).unwrap();
        hdr["colour"] = "blue".into();
        let hb = serde_json::to_vec(&hdr).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend((hb.len() as u32).to_le_bytes());
        bytes.extend(hb);
        bytes.extend(&m.image);
        let e = FrameMessage::decode(&bytes, key).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        // A corrupt JPEG.
        m.header.encoding = ImageEncoding::Jpeg;
        m.image = vec![0xff, 0xd8, 0xff, 0x00, 1, 2, 3];
        let e = m.to_frame(key).unwrap_err().to_string();
        assert!(e.contains("cannot decode Jpeg"), "{e}");
    }

    #[test]
    fn nav_hints_round_trip_and_reject_junk() {
        let h = NavHint {
            action: Action::TiltDownward,
            target: Some("tower".into()),
            reason: Some("the tower is below".into()),
            question_id: None,
        };
        assert_eq!(NavHint::decode(&h.encode(), "k").unwrap(), h);
        let e = NavHint::decode(br#"{"action":"jump"}"#, "sim/a/nav_hint")
            .unwrap_err()
            .to_string();
        assert!(e.contains("jump") && e.contains("sim/a/nav_hint"), "{e}");
        let e = NavHint::decode(br#"{"action":"move up","speed":3}"#, "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("speed"), "{e}");
        assert!(Keys::new("sim/*").is_err());
        assert_eq!(Keys::new("sim/a/").unwrap().frame, "sim/a/frame");
    }
}
