//! The one error type of the reasoner crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running the language model.
///
/// Each variant names the input it is about (a file, a tensor, a metadata key) and what was
/// expected, so a user can act on the message without reading our code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// A GGUF file is malformed: bad magic, truncated, a size that points past the end, ...
    #[error("GGUF file {path}: {what}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong, with the offset where it was found when known.
        what: String,
    },

    /// A tensor is stored in a type this crate cannot dequantize.
    #[error(
        "tensor `{tensor}` has type {type_name} (ggml type id {type_id}); supported: {supported}"
    )]
    UnsupportedTensorType {
        /// The tensor's name as stored in the file.
        tensor: String,
        /// The type's name, or "unknown".
        type_name: String,
        /// The raw type id from the file.
        type_id: u32,
        /// The list of supported types.
        supported: &'static str,
    },

    /// A safetensors file (or its index) is malformed.
    #[error("safetensors {path}: {what}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },

    /// A LoRA adapter folder is malformed or does not fit the model.
    #[error("LoRA adapter {path}: {what}")]
    Adapter {
        /// The adapter's file or folder.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },

    /// A tensor the architecture needs is not in the checkpoint.
    #[error("checkpoint has no tensor `{name}` (needed for {needed_for})")]
    MissingTensor {
        /// The tensor name in the checkpoint's own naming scheme.
        name: String,
        /// Which part of the model needed it.
        needed_for: String,
    },

    /// The checkpoint holds tensors the architecture does not use: usually the wrong config.
    #[error("checkpoint has {count} tensor(s) this architecture does not use, e.g. `{example}`")]
    UnexpectedTensors {
        /// How many were left over.
        count: usize,
        /// One of them, by name.
        example: String,
    },

    /// A tensor's shape disagrees with the model config.
    #[error("tensor `{name}` has shape {found:?}, but the config implies {expected:?}")]
    ShapeMismatch {
        /// The tensor name.
        name: String,
        /// The shape the config implies (rows, columns for a matrix).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },

    /// The model config (config.json or GGUF metadata) is missing a key or has a bad value.
    #[error("model config: {0}")]
    Config(String),

    /// The tokenizer could not be built or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The chat template did not parse or failed to render.
    #[error("chat template: {0}")]
    ChatTemplate(String),

    /// A generation request is invalid (empty prompt, context overflow, bad sampling value).
    #[error("generation: {0}")]
    Generation(String),

    /// An input image cannot be used (undecodable, empty, too large).
    #[error("image {what}: {message}")]
    Image {
        /// Which image (file name or position).
        what: String,
        /// What is wrong and what was expected.
        message: String,
    },

    /// The requested backend is not compiled into this binary.
    #[error("backend `{requested}` is not compiled in; this build has: {available}")]
    BackendNotCompiled {
        /// What the user asked for.
        requested: String,
        /// What this build offers.
        available: String,
    },
}

/// The reasoner crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
