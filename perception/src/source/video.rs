//! Video files, decoded by the `ffmpeg` program (any container and codec it reads) into raw
//! rgb24 frames over a pipe; `ffprobe` gives the size and frame rate.

use super::{CameraSource, SourceError, SourceStats, skip_bad};
use crate::Frame;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// What `ffprobe` says about a file's first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Average frame rate.
    pub fps: f64,
    /// Frame count from the container, when it states one (it can be wrong).
    pub frames: Option<u64>,
}

fn parse_rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    let r = n / d;
    (r.is_finite() && r > 0.0).then_some(r)
}

/// Parses `ffprobe -of json -show_entries stream=…` output.
pub(crate) fn parse_probe(json: &str) -> Result<VideoInfo, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("ffprobe output is not JSON: {e}"))?;
    let s = v
        .get("streams")
        .and_then(|s| s.get(0))
        .ok_or("no video stream")?;
    let dim = |k: &str| {
        s.get(k)
            .and_then(|x| x.as_u64())
            .and_then(|x| u32::try_from(x).ok())
            .filter(|&x| x > 0)
            .ok_or(format!("video stream has no valid {k}"))
    };
    let rate = |k: &str| s.get(k).and_then(|x| x.as_str()).and_then(parse_rate);
    let fps = rate("avg_frame_rate")
        .or_else(|| rate("r_frame_rate"))
        .ok_or("video stream has no frame rate")?;
    let frames = s
        .get("nb_frames")
        .and_then(|x| x.as_str())
        .and_then(|x| x.parse().ok());
    Ok(VideoInfo {
        width: dim("width")?,
        height: dim("height")?,
        fps,
        frames,
    })
}

/// A video file decoded by ffmpeg.
pub struct VideoSource {
    name: String,
    path: PathBuf,
    info: VideoInfo,
    fps: f64,
    child: Child,
    stdout: ChildStdout,
    index: u64,
    done: bool,
    stats: SourceStats,
}

fn tool_error(name: &str, tool: &str, e: std::io::Error) -> SourceError {
    let what = if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "reading video files needs `{tool}` on PATH (Debian/Ubuntu: apt-get install ffmpeg)"
        )
    } else {
        format!("cannot run {tool}: {e}")
    };
    SourceError::Tool {
        source_name: name.to_string(),
        what,
    }
}

impl VideoSource {
    /// Probes and opens a video. `fps` overrides the file's own rate for timestamps.
    pub fn open(path: &Path, fps: Option<f64>) -> Result<VideoSource, SourceError> {
        let name = format!("video:{}", path.display());
        if let Err(e) = std::fs::metadata(path) {
            return Err(SourceError::Io {
                source_name: name,
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .arg("stream=width,height,avg_frame_rate,r_frame_rate,nb_frames")
            .args(["-of", "json"])
            .arg(path)
            .output()
            .map_err(|e| tool_error(&name, "ffprobe", e))?;
        if !probe.status.success() {
            return Err(SourceError::Invalid {
                source_name: name,
                what: format!(
                    "not a readable video (ffprobe: {})",
                    String::from_utf8_lossy(&probe.stderr).trim()
                ),
            });
        }
        let info = parse_probe(&String::from_utf8_lossy(&probe.stdout)).map_err(|what| {
            SourceError::Invalid {
                source_name: name.clone(),
                what: format!("not a readable video: {what}"),
            }
        })?;
        if let Some(f) = fps.filter(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(SourceError::Invalid {
                source_name: name,
                what: format!("frame rate {f} is not a positive number"),
            });
        }
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(path)
            .args([
                "-map",
                "0:v:0",
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| tool_error(&name, "ffmpeg", e))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(SourceError::Tool {
                source_name: name,
                what: "ffmpeg gave no output pipe".into(),
            });
        };
        Ok(VideoSource {
            fps: fps.unwrap_or(info.fps),
            name,
            path: path.to_path_buf(),
            info,
            child,
            stdout,
            index: 0,
            done: false,
            stats: SourceStats::default(),
        })
    }

    /// The probed stream properties.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }
}

impl CameraSource for VideoSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        Some(self.fps)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let size = self.info.width as usize * self.info.height as usize * 3;
        let mut buf = vec![0u8; size];
        let mut filled = 0;
        while filled < size {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(SourceError::Io {
                        source_name: self.name.clone(),
                        path: self.path.clone(),
                        reason: format!("reading decoded frames: {e}"),
                    });
                }
            }
        }
        if filled < size {
            self.done = true;
            if filled > 0 {
                let why = format!("truncated frame: {filled} of {size} bytes");
                skip_bad(&mut self.stats, &self.name, self.index, &why);
            }
            let status = self.child.wait();
            if self.stats.frames == 0 {
                let what = match status {
                    Ok(s) if !s.success() => format!("ffmpeg could not decode the video ({s})"),
                    _ => "the video has no decodable frames".to_string(),
                };
                return Err(SourceError::Invalid {
                    source_name: self.name.clone(),
                    what,
                });
            }
            return Ok(None);
        }
        let index = self.index;
        self.index += 1;
        self.stats.frames += 1;
        let frame = Frame::new(
            index,
            index as f64 / self.fps,
            self.info.width,
            self.info.height,
            buf,
            None,
        )
        .map_err(|e| SourceError::Invalid {
            source_name: self.name.clone(),
            what: e.to_string(),
        })?;
        Ok(Some(frame))
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

impl Drop for VideoSource {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_with_fractional_and_missing_fields() {
        let j = r#"{"programs":[],"streams":[{"width":640,"height":480,"r_frame_rate":"30000/1001","avg_frame_rate":"30000/1001","nb_frames":"91"}]}"#;
        let i = parse_probe(j).expect("parses");
        assert_eq!((i.width, i.height, i.frames), (640, 480, Some(91)));
        assert!((i.fps - 29.97).abs() < 0.01);
        let j = r#"{"streams":[{"width":320,"height":240,"avg_frame_rate":"0/0","r_frame_rate":"25/1"}]}"#;
        let i = parse_probe(j).expect("parses");
        assert_eq!((i.fps, i.frames), (25.0, None));
        assert!(
            parse_probe(r#"{"streams":[]}"#)
                .unwrap_err()
                .contains("no video stream")
        );
        assert!(
            parse_probe(r#"{"streams":[{"width":0,"height":2,"avg_frame_rate":"1/1"}]}"#)
                .unwrap_err()
                .contains("width")
        );
        assert!(parse_probe("garbage").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let e = VideoSource::open(Path::new("/no/such/video.mp4"), None)
            .err()
            .expect("fails");
        assert!(e.to_string().contains("/no/such/video.mp4"), "{e}");
    }
}
