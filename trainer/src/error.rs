//! The trainer's errors: each names the file, key or example it is about.

use std::path::PathBuf;

/// Errors of data loading, training and export.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A data file or example is not what the trainer accepts.
    #[error("{0}")]
    Data(String),
    /// The training configuration is invalid.
    #[error("training config: {0}")]
    Config(String),
    /// The model failed (load, forward, generation).
    #[error(transparent)]
    Model(#[from] embodied_r_reasoner::Error),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {what}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// The curves could not be plotted (no font, an unwritable file, no steps).
    #[error("plot: {0}")]
    Plot(String),
    /// The consistency judge failed; the step is not scored with another signal instead.
    #[error("{0}")]
    Judge(String),
}

/// The trainer's result type.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
