//! The simulator as a camera source: a planned flight through a seeded scene, rendered frame by
//! frame with its pose, and the warp video ([`crate::warp`]) — both behind perception's
//! [`CameraSource`] trait, so the runtime and the key-frame tools read them like any camera.

use crate::render::{Camera, CameraPose, render};
use crate::scene::{Scene, SceneKind};
use crate::trajectory::plan;
use crate::warp::{WarpConfig, WarpVideo};
use embodied_r_perception::source::{CameraSource, SourceError, SourceStats};
use embodied_r_perception::{Frame, FrameError};

fn frame_error(name: &str, e: FrameError) -> SourceError {
    SourceError::Invalid {
        source_name: name.to_string(),
        what: e.to_string(),
    }
}

/// A flight through a simulated scene.
pub struct SimSource {
    name: String,
    scene: Scene,
    camera: Camera,
    poses: Vec<CameraPose>,
    next: usize,
    fps: f64,
    stats: SourceStats,
}

impl SimSource {
    /// Plans `actions` actions of `frames_per_action` frames through scene `index` of `kind`
    /// generated from `seed`; timestamps advance at `fps`.
    pub fn new(
        kind: SceneKind,
        seed: u64,
        index: u32,
        actions: usize,
        frames_per_action: usize,
        fps: f64,
        camera: Camera,
    ) -> SimSource {
        let scene = Scene::generate(kind, seed, index);
        let traj = plan(&scene, seed, actions, frames_per_action);
        SimSource {
            name: format!("sim:{}", scene.name),
            scene,
            camera,
            poses: traj.poses,
            next: 0,
            fps: if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                4.0
            },
            stats: SourceStats::default(),
        }
    }

    /// Frames in the flight.
    pub fn len(&self) -> usize {
        self.poses.len()
    }

    /// True for an empty flight.
    pub fn is_empty(&self) -> bool {
        self.poses.is_empty()
    }
}

impl CameraSource for SimSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        Some(self.fps)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(pose) = self.poses.get(self.next) else {
            return Ok(None);
        };
        let i = self.next;
        self.next += 1;
        let img = render(&self.scene, &self.camera, pose);
        let frame = crate::to_frame(i as u64, i as f64 / self.fps, &img, pose)
            .map_err(|e| frame_error(&self.name, e))?;
        self.stats.frames += 1;
        Ok(Some(frame))
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

/// The warp video as a source.
pub struct WarpSource {
    name: String,
    video: WarpVideo,
    config: WarpConfig,
    next: usize,
    fps: f64,
    looping: bool,
    stats: SourceStats,
}

impl WarpSource {
    /// A warp video played at `fps`.
    pub fn new(config: WarpConfig, fps: f64) -> WarpSource {
        WarpSource {
            name: format!("sim:warp_{}", config.seed),
            video: WarpVideo::new(config.clone()),
            config,
            next: 0,
            fps: if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                10.0
            },
            looping: false,
            stats: SourceStats::default(),
        }
    }

    /// The warp video played again and again without end (frame numbers and time stamps keep
    /// counting up): a synthetic camera for soak tests and for trying the runtime without one.
    pub fn looping(config: WarpConfig, fps: f64) -> WarpSource {
        WarpSource {
            name: format!("pattern:{}", config.seed),
            looping: true,
            ..WarpSource::new(config, fps)
        }
    }
}

impl CameraSource for WarpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        Some(self.fps)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.video.is_empty() || (!self.looping && self.next >= self.video.len()) {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        let rgb = self.video.frame(i % self.video.len());
        let frame = Frame::new(
            i as u64,
            i as f64 / self.fps,
            self.config.width,
            self.config.height,
            rgb,
            None,
        )
        .map_err(|e| frame_error(&self.name, e))?;
        self.stats.frames += 1;
        Ok(Some(frame))
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flight_yields_posed_frames_then_ends() {
        let cam = Camera {
            width: 64,
            height: 48,
            ..Camera::default()
        };
        let mut s = SimSource::new(SceneKind::City, 5, 0, 2, 2, 4.0, cam);
        let n = s.len();
        assert_eq!(n, 5);
        let mut seen = 0;
        while let Some(f) = s.next_frame().expect("renders") {
            assert_eq!((f.seq, f.width, f.height), (seen, 64, 48));
            assert!(f.pose.is_some());
            assert!((f.stamp - seen as f64 / 4.0).abs() < 1e-12);
            seen += 1;
        }
        assert_eq!(seen as usize, n);
        assert_eq!(s.stats().frames, n as u64);
    }

    #[test]
    fn the_pattern_loops_with_counting_stamps() {
        let cfg = WarpConfig {
            width: 32,
            height: 24,
            frames_per_phase: 2,
            seed: 3,
        };
        let mut once = WarpSource::new(cfg.clone(), 30.0);
        let first: Vec<Frame> =
            std::iter::from_fn(|| once.next_frame().expect("renders")).collect();
        assert_eq!(first.len(), 8);
        let mut s = WarpSource::looping(cfg.clone(), 30.0);
        assert_eq!(s.name(), "pattern:3");
        for i in 0..20u64 {
            let f = s.next_frame().expect("renders").expect("never ends");
            assert_eq!(f.seq, i);
            assert!((f.stamp - i as f64 / 30.0).abs() < 1e-12);
            assert_eq!(
                f.rgb,
                first[(i % 8) as usize].rgb,
                "frame {i} repeats the video"
            );
        }
        assert_eq!(s.stats().frames, 20);
        let empty = WarpConfig {
            frames_per_phase: 0,
            ..cfg
        };
        assert!(
            WarpSource::looping(empty, 30.0)
                .next_frame()
                .expect("no error")
                .is_none()
        );
    }
}
