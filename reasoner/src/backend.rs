//! Backends by cargo feature: `flex` (CPU, default), `wgpu` (Vulkan/Metal/DX12), `cuda`.
//!
//! Binaries name a backend at run time with [`BackendKind`] and dispatch to generic code with
//! [`with_backend!`](crate::with_backend); asking for one that is not compiled in is a typed
//! error, not a `cfg` maze in every caller.

use std::str::FromStr;

use crate::error::{Error, Result};

/// burn's CPU backend (burn-flex).
#[cfg(feature = "flex")]
pub type Cpu = burn::backend::Flex;

/// wgpu (Vulkan, Metal, DX12; Mesa's software Vulkan in CI).
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;

/// CUDA on NVIDIA GPUs.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// Whether `B` is the CPU backend, where the packed kernels and host paths apply.
pub fn is_cpu<B: Backend>() -> bool {
    crate::host::is_flex::<B>()
}

/// A backend named at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// CPU (burn-flex).
    Flex,
    /// wgpu.
    Wgpu,
    /// CUDA.
    Cuda,
}

impl BackendKind {
    /// The backends compiled into this build.
    pub fn compiled() -> Vec<BackendKind> {
        let mut v = Vec::new();
        if cfg!(feature = "flex") {
            v.push(BackendKind::Flex);
        }
        if cfg!(feature = "wgpu") {
            v.push(BackendKind::Wgpu);
        }
        if cfg!(feature = "cuda") {
            v.push(BackendKind::Cuda);
        }
        v
    }

    /// The backend's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether the packed CPU kernels are the right default for this backend.
    pub fn is_cpu(self) -> bool {
        self == BackendKind::Flex
    }

    /// Errors unless this backend is compiled in.
    pub fn ensure_compiled(self) -> Result<Self> {
        if Self::compiled().contains(&self) {
            Ok(self)
        } else {
            Err(Error::BackendNotCompiled {
                requested: self.name().into(),
                available: Self::compiled()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let kind = match s.to_ascii_lowercase().as_str() {
            "flex" | "cpu" => BackendKind::Flex,
            "wgpu" | "vulkan" => BackendKind::Wgpu,
            "cuda" => BackendKind::Cuda,
            _ => {
                return Err(Error::BackendNotCompiled {
                    requested: s.into(),
                    available: Self::compiled()
                        .iter()
                        .map(|b| b.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };
        kind.ensure_compiled()
    }
}

/// Runs `$body` with the type alias `$B` bound to the backend `$kind` names.
///
/// ```ignore
/// with_backend!(kind, B => run::<B>(args))
/// ```
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, $B:ident => $body:expr) => {{
        match $kind {
            #[cfg(feature = "flex")]
            $crate::backend::BackendKind::Flex => {
                type $B = $crate::backend::Cpu;
                $body
            }
            #[cfg(feature = "wgpu")]
            $crate::backend::BackendKind::Wgpu => {
                type $B = $crate::backend::Wgpu;
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendKind::Cuda => {
                type $B = $crate::backend::Cuda;
                $body
            }
            #[allow(unreachable_patterns)]
            other => Err(other.ensure_compiled().err().unwrap_or_else(|| {
                $crate::Error::BackendNotCompiled {
                    requested: other.name().into(),
                    available: String::new(),
                }
            }))?,
        }
    }};
}

pub use burn::tensor::backend::Backend;
