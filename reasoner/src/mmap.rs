//! Read-only memory maps of model files (GGUF, safetensors): the one place outside `quant/`
//! where this crate uses `unsafe`, because mapping a file is an unsafe call in `memmap2`.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// Maps the file at `path` read-only.
pub(crate) fn map_read_only(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the mapping is read-only and this process never writes model files. Another
    // process truncating or rewriting the file while it is mapped is the risk every mmap-based
    // loader accepts; every reader of the bytes checks sizes and offsets against the map first.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) };
    map.map_err(|e| Error::io(path, e))
}
