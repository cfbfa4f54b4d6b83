//! Shared plumbing of the fuzz targets: most of our readers take a path (they mmap or stream
//! the file as the runtime does), so a target writes its input to a scratch file first.
//! Owns nothing of the product; touches only its own scratch directory.

use std::path::PathBuf;

/// Writes `data` to `name` inside this process's scratch directory (in `/dev/shm` when it
/// exists, so no disk I/O per run) and returns the path. The directory is reused across runs.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let dir = scratch_dir();
    let path = dir.join(name);
    // The fuzzer's own I/O failing is not a finding: stop loudly.
    std::fs::write(&path, data).expect("scratch file writable");
    path
}

/// This process's scratch directory, created on first use.
pub fn scratch_dir() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("embodied-r-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory creatable");
    dir
}
