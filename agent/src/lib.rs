//! # embodied-r-agent
//!
//! The on-robot runtime: it joins `perception` (frames, key frames, describers) and `reasoner`
//! (the LM, prompts, answer parsing) into a live pipeline and serves questions over zenoh.
//!
//! What this crate owns:
//! - the configuration ([`config`]): TOML + `EMBODIED_R_*` + overrides, with errors that name
//!   the key, the value and what is accepted;
//! - the capture loop ([`capture`]) and the answering engine ([`engine`]): window → describer
//!   → LM → parse → consistency check → navigation hint ([`answer`]);
//! - the zenoh API ([`runtime`], [`api`], [`client`]): `ask` queryable, `answer`, `nav_hint`,
//!   `keyframes`, `status` publications and a liveliness token;
//! - the ROS 2 side ([`ros2`]): topics over zenoh in zenoh-bridge-ros2dds' or rmw_zenoh's
//!   layout, or a ROS 2 node through r2r (feature `ros2`);
//! - the local describer ([`local_vlm`]): perception's `Describer` on the reasoner's in-process
//!   vision-language model, with the same prompts and reply parsing as a VLM server;
//! - the crash-safe episode log writer ([`episodes`]; the record schema and reader are the
//!   reasoner's, shared with the trainer).
//!
//! What it must not do: model math, image kernels or simulator internals (those are
//! `reasoner`, `perception` and `sim-bridge`), or command-line parsing (`launch`).

#![deny(unsafe_code)]

pub mod answer;
pub mod api;
pub mod capture;
pub mod client;
pub mod collect;
pub mod config;
pub mod engine;
pub mod episodes;
pub mod local_vlm;
pub mod ros2;
pub mod runtime;
pub mod stats;

pub use answer::{Answer, Grounding, NavHint};
pub use api::AskRequest;
pub use config::{Config, ConfigError};
pub use engine::{AskError, Engine};
pub use runtime::{AgentError, Keys, Ready, RunSummary, Runtime};
