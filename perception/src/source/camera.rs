//! Live V4L2/UVC cameras through nokhwa (feature `camera`; building it needs libclang for the
//! V4L2 bindings). Deliberately thin: list devices, negotiate a mode with
//! [`choose_mode`](super::camera_format::choose_mode), and hand raw buffers to
//! [`decode_capture`](super::camera_format::decode_capture). The device lives on its own thread
//! (nokhwa's camera is not `Send`); frames cross a small bounded channel.

use super::camera_format::{Mode, ModeRequest, PixelFormat, choose_mode, decode_capture};
use super::{CameraSource, SourceError, SourceStats, ThreadFeed, skip_bad};
use crate::Frame;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// A camera the system lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index to open it with (`/dev/video<index>` on Linux).
    pub index: u32,
    /// Human-readable name.
    pub name: String,
    /// Driver description.
    pub description: String,
}

fn pixel(f: FrameFormat) -> PixelFormat {
    match f {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        FrameFormat::GRAY => PixelFormat::Gray,
        FrameFormat::RAWRGB => PixelFormat::Rgb,
        FrameFormat::RAWBGR => PixelFormat::Bgr,
        FrameFormat::NV12 => PixelFormat::Nv12,
    }
}

fn frame_format(f: PixelFormat) -> FrameFormat {
    match f {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Gray => FrameFormat::GRAY,
        PixelFormat::Rgb => FrameFormat::RAWRGB,
        PixelFormat::Bgr => FrameFormat::RAWBGR,
        PixelFormat::Nv12 => FrameFormat::NV12,
    }
}

/// Lists V4L2 cameras.
pub fn list() -> Result<Vec<DeviceInfo>, SourceError> {
    let infos = nokhwa::query(ApiBackend::Video4Linux).map_err(|e| SourceError::Device {
        source_name: "camera".into(),
        what: e.to_string(),
    })?;
    Ok(infos
        .iter()
        .filter_map(|i| match i.index() {
            CameraIndex::Index(n) => Some(DeviceInfo {
                index: *n,
                name: i.human_name(),
                description: i.description().to_string(),
            }),
            CameraIndex::String(_) => None,
        })
        .collect())
}

/// A live camera.
pub struct LiveCamera {
    name: String,
    mode: Mode,
    feed: ThreadFeed,
}

impl LiveCamera {
    /// Opens camera `index` in the offered mode closest to `want` and starts streaming.
    pub fn open(index: u32, want: ModeRequest) -> Result<LiveCamera, SourceError> {
        let name = format!("camera:{index}");
        let (tx, rx) = sync_channel(2);
        let (mode_tx, mode_rx) = sync_channel(1);
        let stats = Arc::new(Mutex::new(SourceStats::default()));
        let (n, s) = (name.clone(), stats.clone());
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let dev = |e: nokhwa::NokhwaError| SourceError::Device {
                    source_name: n.clone(),
                    what: e.to_string(),
                };
                let any = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
                let opened = nokhwa::Camera::with_backend(
                    CameraIndex::Index(index),
                    any,
                    ApiBackend::Video4Linux,
                )
                .and_then(|mut c| c.compatible_camera_formats().map(|f| (c, f)));
                let (camera, offered) = match opened {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = mode_tx.send(Err(dev(e)));
                        return;
                    }
                };
                drop(camera);
                let modes: Vec<Mode> = offered
                    .iter()
                    .map(|f| Mode {
                        width: f.resolution().width_x,
                        height: f.resolution().height_y,
                        format: pixel(f.format()),
                        fps: f.frame_rate(),
                    })
                    .collect();
                let Some(mode) = choose_mode(&modes, want) else {
                    let _ = mode_tx.send(Err(SourceError::Device {
                        source_name: n.clone(),
                        what: format!("no usable capture mode among {modes:?}"),
                    }));
                    return;
                };
                let exact = CameraFormat::new(
                    Resolution::new(mode.width, mode.height),
                    frame_format(mode.format),
                    mode.fps,
                );
                let request = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Exact(exact));
                let mut camera = match nokhwa::Camera::with_backend(
                    CameraIndex::Index(index),
                    request,
                    ApiBackend::Video4Linux,
                )
                .and_then(|mut c| c.open_stream().map(|()| c))
                {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = mode_tx.send(Err(dev(e)));
                        return;
                    }
                };
                if mode_tx.send(Ok(mode)).is_err() {
                    return;
                }
                let start = Instant::now();
                let mut seq = 0u64;
                loop {
                    let buffer = match camera.frame() {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.send(Err(dev(e)));
                            return;
                        }
                    };
                    let this = seq;
                    seq += 1;
                    let res = buffer.resolution();
                    let decoded = decode_capture(
                        pixel(buffer.source_frame_format()),
                        res.width_x,
                        res.height_y,
                        buffer.buffer(),
                    )
                    .map_err(|e| e.to_string())
                    .and_then(|rgb| {
                        Frame::new(
                            this,
                            start.elapsed().as_secs_f64(),
                            res.width_x,
                            res.height_y,
                            rgb,
                            None,
                        )
                        .map_err(|e| e.to_string())
                    });
                    match decoded {
                        Ok(f) => {
                            s.lock().unwrap_or_else(PoisonError::into_inner).frames += 1;
                            if tx.send(Ok(f)).is_err() {
                                return;
                            }
                        }
                        Err(why) => skip_bad(
                            &mut s.lock().unwrap_or_else(PoisonError::into_inner),
                            &n,
                            this,
                            &why,
                        ),
                    }
                }
            })
            .map_err(|e| SourceError::Device {
                source_name: name.clone(),
                what: format!("cannot start the capture thread: {e}"),
            })?;
        let mode = mode_rx.recv().map_err(|_| SourceError::Device {
            source_name: name.clone(),
            what: "capture thread ended before negotiating a mode".into(),
        })??;
        tracing::info!(camera = %name, ?mode, "streaming");
        Ok(LiveCamera {
            name,
            mode,
            feed: ThreadFeed::new(rx, stats),
        })
    }

    /// The negotiated mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl CameraSource for LiveCamera {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        Some(f64::from(self.mode.fps))
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        self.feed.next_frame()
    }

    fn stats(&self) -> SourceStats {
        self.feed.stats()
    }
}
