//! Perception: what the runtime sees.
//!
//! Owns the types every stage shares about the camera stream — [`Frame`] (an RGB image with a
//! sequence number, a timestamp and an optional [`Pose`]), the paper's ten-action vocabulary
//! ([`Action`]), the drop-oldest queue sources feed ([`DropOldest`]) — and the assembly of the per-key-frame descriptions into the "video text" the
//! reasoner reads ([`video_text`]).
//!
//! It must not know about the language model (`reasoner`), about zenoh, ROS 2 or tokio: sources
//! that need those live in the crates that own them and hand frames over in these types.

mod action;
mod frame;
pub mod keyframe;
pub mod queue;
pub mod source;
pub mod video_text;

pub use action::{Action, ParseActionError};
pub use frame::{Frame, FrameError, Pose};
pub use queue::{DropOldest, QueueStats};
