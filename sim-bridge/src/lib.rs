//! sim-bridge: the built-in simulator, the ground-truth spatial-QA benchmark generator, the
//! simulator's describer, and the bridge through which external simulators stream into the
//! runtime.
//!
//! Owns: procedural seeded scenes ([`scene`]), trajectories of the paper's ten actions
//! ([`trajectory`]), a deterministic software renderer with depth and object ids ([`render`]),
//! per-frame ground truth and its sidecar format ([`truth`]), questions with exact answers
//! ([`qa`]), the benchmark writer ([`dataset`]), contact sheets ([`preview`]) and the
//! ground-truth describer ([`describer`]) and the zenoh bridge for external simulators
//! ([`bridge`], its zenoh side behind the default feature `zenoh`).
//!
//! Must not: load or run language models (that is `reasoner`), or own the runtime's pipeline
//! (`agent`). It hands frames over as `embodied_r_perception::Frame`. Everything it produces is
//! reproducible from a seed, byte for byte, on every machine.

#![forbid(unsafe_code)]

pub mod bridge;
pub mod dataset;
pub mod describer;
pub mod flight;
pub mod math;
pub mod preview;
pub mod qa;
pub mod reading;
pub mod render;
pub mod scene;
pub mod source;
pub mod trajectory;
pub mod truth;
pub mod warp;

pub use dataset::{GenerateConfig, Generated, SimError, Summary, generate};
pub use describer::{DescriberErrors, SimDescriber};
pub use flight::SimFlight;
pub use render::{Camera, CameraPose, Render, render};
pub use scene::{Scene, SceneKind};

/// A rendered simulator frame as the runtime's [`embodied_r_perception::Frame`].
pub fn to_frame(
    seq: u64,
    stamp: f64,
    img: &Render,
    pose: &CameraPose,
) -> Result<embodied_r_perception::Frame, embodied_r_perception::FrameError> {
    embodied_r_perception::Frame::new(
        seq,
        stamp,
        img.width,
        img.height,
        img.rgb.clone(),
        Some(pose.isometry()),
    )
}
