//! Perception: what the runtime sees, and the text it turns that into.
//!
//! Owns the types every stage shares about the camera stream — [`Frame`] (an RGB image with a
//! sequence number, a timestamp and an optional [`Pose`]), the paper's ten-action vocabulary
//! ([`Action`]), the drop-oldest queue sources feed ([`DropOldest`]) — and the stages up to the
//! text the reasoner reads: camera sources ([`source`]: image folders, videos, rosbag2 MCAP,
//! V4L2 cameras behind feature `camera`), the paper's key-frame selection ([`keyframe`]), the
//! bounded JPEG key-frame window ([`buffer`]), describers that turn a window into per-frame text
//! ([`describe`], with an OpenAI-compatible VLM client) and the video-text layout
//! ([`video_text`]).
//!
//! It also owns ROS 2 messages as bytes ([`ros`]: CDR, the message types, images to frames),
//! which the MCAP source and the agent's ROS 2 transports share.
//!
//! It must not know about the language model (`reasoner`), about zenoh, a ROS 2 installation or
//! async runtimes: sources that need those live in the crates that own them and hand frames over
//! in these types;
//! the blocking pieces here (sources on threads, the HTTP client with deadlines) are wrapped by
//! the agent.

#![deny(unsafe_code)]

mod action;
pub mod buffer;
pub mod describe;
mod frame;
pub mod keyframe;
pub mod queue;
pub mod ros;
pub mod source;
pub mod video_text;

pub use action::{Action, ParseActionError};
pub use frame::{Frame, FrameError, Pose};
pub use queue::{DropOldest, QueueStats};
