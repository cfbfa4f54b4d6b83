//! ROS 2 messages as bytes: the CDR wire format ([`cdr`]), the message types the runtime reads
//! and writes ([`msg`]), and images to [`Frame`]s. Plain data only — no ROS installation, no
//! middleware: the MCAP source here and the agent's ROS 2 transports (zenoh, r2r) share it.

pub mod cdr;
pub mod msg;

use crate::Frame;
use crate::source::decode::{DecodeError, Encoding, decode_compressed, raw_to_rgb};
use msg::{CompressedImageMsg, ImageMsg, RosType};

/// ROS name of raw images.
pub const IMAGE: &str = <ImageMsg<'static> as RosType>::NAME;
/// ROS name of compressed images.
pub const COMPRESSED_IMAGE: &str = <CompressedImageMsg<'static> as RosType>::NAME;

/// Decodes one serialized image message of type `type_name` ([`IMAGE`] or
/// [`COMPRESSED_IMAGE`]) into an rgb8 frame numbered `seq`. A zero header stamp (a publisher that
/// did not set one) falls back to `fallback_stamp` seconds (a bag's log time, the arrival time).
pub fn image_to_frame(
    type_name: &str,
    payload: &[u8],
    seq: u64,
    fallback_stamp: f64,
) -> Result<Frame, String> {
    let (stamp, width, height, rgb) = match type_name {
        IMAGE => {
            let m = ImageMsg::from_cdr(payload).map_err(|e| e.to_string())?;
            let enc = Encoding::from_ros(&m.encoding)
                .ok_or_else(|| DecodeError::Unsupported(m.encoding.clone()).to_string())?;
            let rgb = raw_to_rgb(enc, m.width, m.height, m.step as usize, m.data)
                .map_err(|e| e.to_string())?;
            (m.header.seconds(), m.width, m.height, rgb)
        }
        COMPRESSED_IMAGE => {
            let m = CompressedImageMsg::from_cdr(payload).map_err(|e| e.to_string())?;
            let img = decode_compressed(&m.format, m.data).map_err(|e| e.to_string())?;
            (m.header.seconds(), img.width, img.height, img.data)
        }
        other => {
            return Err(format!(
                "type {other} is not an image ({IMAGE} or {COMPRESSED_IMAGE})"
            ));
        }
    };
    let stamp = if stamp > 0.0 { stamp } else { fallback_stamp };
    Frame::new(seq, stamp, width, height, rgb, None).map_err(|e| e.to_string())
}
