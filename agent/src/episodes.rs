//! The episode log writer: append-only JSONL segments plus key-frame JPEG files, crash-safe.
//!
//! A record is written as one `write` of one line after its frame files exist, then (policy
//! `always`) fsynced with its directory. After `kill -9` the log therefore holds whole records
//! and at most one torn line at the end; on open the writer cuts that tail off (with a warning
//! naming the byte offset) before appending, and readers skip it
//! ([`embodied_r_reasoner::episode::read_segment`]). Segments rotate at a size cap and the
//! oldest are deleted, with their frames, beyond a count cap.

use crate::config::{FsyncPolicy, LogConfig};
use embodied_r_perception::buffer::KeyFrame;
use embodied_r_reasoner::episode::{EpisodeRecord, LogContents, read_segment, segments};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the log could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// File-system failure (disk full, permissions, ...).
    #[error("episode log {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// OS reason.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes a file-size limit (`RLIMIT_FSIZE`, `ulimit -f`) surface as a write error (`EFBIG`)
/// that the log reports, instead of the `SIGXFSZ` that would kill the process by default: a
/// robot whose log hits a quota keeps answering. Process-wide; binaries call it once at start.
pub fn surface_file_size_limits() {
    #[cfg(unix)]
    {
        #[allow(unsafe_code)]
        // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code; it only
        // changes what the kernel does with SIGXFSZ, which nothing else in the process uses.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    }
}

/// Appends episodes.
pub struct EpisodeLog {
    cfg: LogConfig,
    file: File,
    path: PathBuf,
    index: u64,
    bytes: u64,
    written: u64,
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("episodes-{index:06}.jsonl"))
}

/// An episode id as a directory name.
fn safe_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Cuts a torn last line off `path`; returns the bytes removed.
fn repair_tail(path: &Path) -> Result<u64, LogError> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    if len == 0 {
        return Ok(0);
    }
    // Scan back for the last newline, in blocks.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let keep = loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start)).map_err(io(path))?;
        f.read_exact(&mut buf[..n]).map_err(io(path))?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    if keep < len {
        tracing::warn!(
            file = %path.display(),
            offset = keep,
            bytes = len - keep,
            "episode log ends in a torn record at byte {keep} ({} bytes, from an interrupted write); cutting it off",
            len - keep
        );
        f.set_len(keep).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
    }
    Ok(len - keep)
}

impl EpisodeLog {
    /// Opens (creating) the log directory, repairs a torn tail of the newest segment and
    /// continues appending to it.
    pub fn open(cfg: &LogConfig) -> Result<EpisodeLog, LogError> {
        let dir = &cfg.dir;
        std::fs::create_dir_all(dir.join("frames")).map_err(io(dir))?;
        let segs = segments(dir).map_err(|e| LogError::Io {
            path: dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let index = segs
            .last()
            .and_then(|p| {
                p.file_name()?
                    .to_str()?
                    .strip_prefix("episodes-")?
                    .strip_suffix(".jsonl")?
                    .parse()
                    .ok()
            })
            .unwrap_or(1);
        let path = segment_path(dir, index);
        if path.exists() {
            repair_tail(&path)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let bytes = file.metadata().map_err(io(&path))?.len();
        Ok(EpisodeLog {
            cfg: cfg.clone(),
            file,
            path,
            index,
            bytes,
            written: 0,
        })
    }

    /// Records written by this process.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Writes the frames (when configured) and then the record, filling the records' `file`
    /// fields.
    pub fn append(
        &mut self,
        record: &mut EpisodeRecord,
        frames: &[KeyFrame],
    ) -> Result<(), LogError> {
        let always = self.cfg.fsync == FsyncPolicy::Always;
        if self.cfg.frames && !record.frames.is_empty() {
            let rel_dir = format!("frames/{}", safe_id(&record.id));
            let dir = self.cfg.dir.join(&rel_dir);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for fr in record.frames.iter_mut() {
                let Some(kf) = frames.iter().find(|k| k.seq == fr.seq) else {
                    continue;
                };
                let name = format!("{:08}.jpg", fr.seq);
                let p = dir.join(&name);
                let mut f = File::create(&p).map_err(io(&p))?;
                f.write_all(&kf.jpeg).map_err(io(&p))?;
                if always {
                    f.sync_all().map_err(io(&p))?;
                }
                fr.file = Some(format!("{rel_dir}/{name}"));
            }
            if always {
                sync_dir(&dir).map_err(io(&dir))?;
            }
        }
        let mut line = serde_json::to_vec(record).map_err(|e| LogError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        if self.bytes > 0 && self.bytes + line.len() as u64 > self.cfg.segment_bytes {
            self.rotate()?;
        }
        // A write that failed earlier (a full disk) may have left part of a line behind: cut the
        // segment back to its last whole record before adding to it.
        let len = self.file.metadata().map_err(io(&self.path))?.len();
        if len != self.bytes {
            self.file.set_len(self.bytes).map_err(io(&self.path))?;
        }
        let written = self.file.write_all(&line).and_then(|()| {
            if always {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Never leave half a line for the next record to follow (the reader would stop at
            // it and lose everything after): cut it off now, or on the next append.
            if let Err(t) = self.file.set_len(self.bytes) {
                tracing::error!(
                    segment = %self.path.display(),
                    "cannot cut a partly written record off yet ({t}); the next append will"
                );
            }
            return Err(io(&self.path)(e));
        }
        self.bytes += line.len() as u64;
        self.written += 1;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        self.index += 1;
        let path = segment_path(&self.cfg.dir, self.index);
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.path = path;
        self.bytes = 0;
        if self.cfg.fsync == FsyncPolicy::Always {
            sync_dir(&self.cfg.dir).map_err(io(&self.cfg.dir))?;
        }
        let segs = segments(&self.cfg.dir).map_err(|e| LogError::Io {
            path: self.cfg.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let excess = segs.len().saturating_sub(self.cfg.max_segments);
        for old in &segs[..excess] {
            // Delete the frames first: a crash in between leaves records without frames
            // (readers tolerate missing files), never frames nobody can find.
            let mut contents = LogContents::default();
            if read_segment(old, &mut contents).is_ok() {
                for r in &contents.records {
                    let d = self.cfg.dir.join("frames").join(safe_id(&r.id));
                    if d.exists()
                        && let Err(e) = std::fs::remove_dir_all(&d)
                    {
                        tracing::warn!("cannot remove {}: {e}", d.display());
                    }
                }
            }
            std::fs::remove_file(old).map_err(io(old))?;
            tracing::info!(segment = %old.display(), "rotated out the oldest episode segment");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embodied_r_reasoner::episode::{FrameRef, read_log};
    use std::sync::Arc;

    fn record(id: &str, pad: usize) -> EpisodeRecord {
        EpisodeRecord {
            frames: vec![FrameRef {
                seq: 5,
                stamp: 1.25,
                pose: None,
                file: None,
            }],
            ..EpisodeRecord::new(id, "r", "q".repeat(pad))
        }
    }

    fn kf() -> KeyFrame {
        KeyFrame {
            seq: 5,
            stamp: 1.25,
            width: 1,
            height: 1,
            pose: None,
            jpeg: Arc::from(vec![0xff, 0xd8, 0xff, 0xd9]),
        }
    }

    fn cfg(dir: &Path) -> LogConfig {
        LogConfig {
            dir: dir.to_path_buf(),
            ..LogConfig::default()
        }
    }

    #[test]
    fn appends_records_and_frames() {
        let d = tempfile::tempdir().unwrap();
        let mut log = EpisodeLog::open(&cfg(d.path())).unwrap();
        for i in 0..3 {
            log.append(&mut record(&format!("e{i}"), 1), &[kf()])
                .unwrap();
        }
        let got = read_log(d.path()).unwrap();
        assert_eq!(got.records.len(), 3);
        assert!(got.warnings.is_empty());
        let f = got.records[1].frames[0].file.clone().unwrap();
        assert_eq!(f, "frames/e1/00000005.jpg");
        assert_eq!(
            std::fs::read(d.path().join(f)).unwrap(),
            [0xff, 0xd8, 0xff, 0xd9]
        );
    }

    #[test]
    fn reopening_cuts_a_torn_tail_and_keeps_everything_before_it() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut log = EpisodeLog::open(&cfg(d.path())).unwrap();
            log.append(&mut record("a", 1), &[]).unwrap();
            log.append(&mut record("b", 1), &[]).unwrap();
        }
        let seg = d.path().join("episodes-000001.jsonl");
        let whole = std::fs::read(&seg).unwrap();
        // a record cut mid-write, as kill -9 leaves it
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"schema\":1,\"id\":\"c\",\"rob").unwrap();
        drop(f);
        assert_eq!(read_log(d.path()).unwrap().records.len(), 2);
        let mut log = EpisodeLog::open(&cfg(d.path())).unwrap();
        assert_eq!(std::fs::read(&seg).unwrap(), whole);
        log.append(&mut record("d", 1), &[]).unwrap();
        let got = read_log(d.path()).unwrap();
        let ids: Vec<_> = got.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "d"]);
        assert!(got.warnings.is_empty());
    }

    #[test]
    fn rotates_by_size_and_deletes_the_oldest_with_their_frames() {
        let d = tempfile::tempdir().unwrap();
        let c = LogConfig {
            segment_bytes: 4096,
            max_segments: 2,
            ..cfg(d.path())
        };
        let mut log = EpisodeLog::open(&c).unwrap();
        for i in 0..12 {
            log.append(&mut record(&format!("e{i:02}"), 1500), &[kf()])
                .unwrap();
        }
        let segs = segments(d.path()).unwrap();
        assert_eq!(segs.len(), 2, "{segs:?}");
        let got = read_log(d.path()).unwrap();
        assert!(got.records.len() < 12 && got.records.len() >= 2);
        assert_eq!(got.records.last().unwrap().id, "e11");
        assert!(!d.path().join("frames/e00").exists());
        assert!(d.path().join("frames/e11").exists());
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let e = EpisodeLog::open(&cfg(Path::new("/proc/no/such/dir")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/proc/no/such/dir"), "{e}");
    }
}
