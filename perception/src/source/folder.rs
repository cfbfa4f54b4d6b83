//! An image folder played as a video: PNG and JPEG files in file-name order.

use super::decode::decode_compressed;
use super::{CameraSource, SourceError, SourceStats, skip_bad};
use crate::Frame;
use std::path::{Path, PathBuf};

/// Image files in a folder, sorted by file name, at a given frame rate.
pub struct FolderSource {
    name: String,
    files: Vec<PathBuf>,
    next: usize,
    fps: f64,
    stats: SourceStats,
}

/// File extensions read as frames.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

impl FolderSource {
    /// Lists the folder. `fps` sets the timestamps (`index / fps`); it must be positive.
    pub fn open(dir: &Path, fps: f64) -> Result<FolderSource, SourceError> {
        let name = format!("folder:{}", dir.display());
        if !(fps.is_finite() && fps > 0.0) {
            return Err(SourceError::Invalid {
                source_name: name,
                what: format!("frame rate {fps} is not a positive number"),
            });
        }
        let entries = std::fs::read_dir(dir).map_err(|e| SourceError::Io {
            source_name: name.clone(),
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SourceError::Invalid {
                source_name: name,
                what: format!("no image files (expected {})", IMAGE_EXTENSIONS.join(", ")),
            });
        }
        Ok(FolderSource {
            name,
            files,
            next: 0,
            fps,
            stats: SourceStats::default(),
        })
    }

    /// Number of image files (frames, good or bad).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when the folder has no image files (never, after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl CameraSource for FolderSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        Some(self.fps)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        while self.next < self.files.len() {
            let index = self.next;
            self.next += 1;
            let path = &self.files[index];
            let decoded = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    decode_compressed("image file", &bytes).map_err(|e| e.to_string())
                });
            match decoded {
                Ok(img) => {
                    let frame = Frame::new(
                        index as u64,
                        index as f64 / self.fps,
                        img.width,
                        img.height,
                        img.data,
                        None,
                    );
                    match frame {
                        Ok(f) => {
                            self.stats.frames += 1;
                            return Ok(Some(f));
                        }
                        Err(e) => skip_bad(&mut self.stats, &self.name, index as u64, &e),
                    }
                }
                Err(e) => {
                    let why = format!("{}: {e}", path.display());
                    skip_bad(&mut self.stats, &self.name, index as u64, &why);
                }
            }
        }
        Ok(None)
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}
