//! One simulated video prepared for the runtime: the frames a camera would deliver (with
//! poses), the ground truth the sim describer reads, and the questions the benchmark generator
//! would ask about it, with their answers. The runtime's `sim` source and `embodied-r demo`
//! use it; frames are rendered once, up front, so playback costs nothing per frame.

use crate::dataset::{GenerateConfig, SimError, run_video};
use crate::describer::{DescriberErrors, SimDescriber, VideoDescriber};
use crate::qa::{self, Context, LetterBalancer, Question};
use crate::scene::{Scene, SceneKind};
use crate::truth::FrameTruth;
use embodied_r_perception::Frame;
use embodied_r_perception::source::{CameraSource, SourceError, SourceStats};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex, PoisonError};

/// A rendered flight with its truth and questions.
#[derive(Debug, Clone)]
pub struct SimFlight {
    /// `<scene>_v<video>`, as in benchmark files.
    pub video_id: String,
    /// The scene.
    pub scene: Scene,
    /// Per-frame truth.
    pub truth: Vec<FrameTruth>,
    /// The frames, with poses; `seq` is the frame index.
    pub frames: Arc<Vec<Frame>>,
    /// The questions the benchmark generator asks about this video.
    pub questions: Vec<Question>,
    /// Pixels per frame.
    pub frame_pixels: u32,
}

impl SimFlight {
    /// Renders video `video` of scene `scene_index` of `kind`, as `sim generate` would with the
    /// same settings (`cfg.kinds` and `cfg.scenes` are ignored).
    pub fn prepare(
        kind: SceneKind,
        scene_index: u32,
        video: u32,
        cfg: &GenerateConfig,
    ) -> Result<SimFlight, SimError> {
        let check = GenerateConfig {
            kinds: vec![kind],
            scenes: scene_index + 1,
            videos_per_scene: video + 1,
            ..cfg.clone()
        };
        check.validate()?;
        let scene = Scene::generate(kind, cfg.seed, scene_index);
        let video_id = format!("{}_v{video}", scene.name);
        let slots: Mutex<Vec<Option<Frame>>> = Mutex::new(Vec::new());
        let run = run_video(scene, cfg, video, |i, img| {
            let mut v = slots.lock().unwrap_or_else(PoisonError::into_inner);
            if v.len() <= i {
                v.resize(i + 1, None);
            }
            // The pose is attached below from the truth (the callback does not see it).
            v[i] = Frame::new(
                i as u64,
                i as f64 / cfg.fps,
                img.width,
                img.height,
                img.rgb.clone(),
                None,
            )
            .ok();
            Ok(())
        })?;
        let mut frames = Vec::with_capacity(run.frames.len());
        for (slot, t) in slots
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .zip(&run.frames)
        {
            let mut f = slot.ok_or_else(|| SimError::Setting {
                name: "camera",
                value: format!("{}x{}", cfg.camera.width, cfg.camera.height),
                expected: "a size the renderer can fill",
            })?;
            f.pose = Some(t.camera.isometry());
            frames.push(f);
        }
        let frame_pixels = cfg.camera.width * cfg.camera.height;
        let ctx = Context {
            scene: &run.scene,
            trajectory: &run.trajectory,
            frames: &run.frames,
            frame_pixels,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x2545_f491_4f6c_dd1d);
        let mut next_id = 0;
        let questions = qa::generate(
            &ctx,
            &video_id,
            &mut rng,
            &mut LetterBalancer::default(),
            &mut next_id,
        );
        Ok(SimFlight {
            video_id,
            scene: run.scene,
            truth: run.frames,
            frames: Arc::new(frames),
            questions,
            frame_pixels,
        })
    }

    /// The ground-truth describer for this flight.
    pub fn describer(
        &self,
        errors: DescriberErrors,
        seed: u64,
    ) -> Result<VideoDescriber, crate::describer::DescriberError> {
        Ok(VideoDescriber::new(
            SimDescriber::new(errors, seed)?,
            self.scene.clone(),
            self.truth.clone(),
            self.frame_pixels,
        ))
    }

    /// A camera source that plays the frames once, in order.
    pub fn source(&self) -> FlightSource {
        FlightSource {
            name: format!("sim:{}", self.video_id),
            frames: self.frames.clone(),
            next: 0,
            fps: self
                .frames
                .get(1)
                .map(|f| 1.0 / f.stamp)
                .filter(|x| x.is_finite()),
            stats: SourceStats::default(),
        }
    }
}

/// Plays a [`SimFlight`]'s frames.
pub struct FlightSource {
    name: String,
    frames: Arc<Vec<Frame>>,
    next: usize,
    fps: Option<f64>,
    stats: SourceStats,
}

impl CameraSource for FlightSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fps(&self) -> Option<f64> {
        self.fps
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(f) = self.frames.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        self.stats.frames += 1;
        Ok(Some(f.clone()))
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Camera;

    #[test]
    fn flight_has_posed_frames_questions_and_a_describer() {
        let cfg = GenerateConfig {
            camera: Camera {
                width: 96,
                height: 72,
                hfov_deg: 90.0,
            },
            actions: 4,
            ..GenerateConfig::default()
        };
        let f = SimFlight::prepare(SceneKind::Indoor, 0, 0, &cfg).unwrap();
        assert_eq!(f.frames.len(), f.truth.len());
        assert!(
            f.frames
                .iter()
                .enumerate()
                .all(|(i, fr)| fr.seq == i as u64 && fr.pose.is_some() && fr.width == 96)
        );
        assert!(!f.questions.is_empty());
        assert!(f.questions.iter().all(|q| q.video_id == f.video_id));
        let mut src = f.source();
        let mut n = 0;
        while let Some(_fr) = src.next_frame().unwrap() {
            n += 1;
        }
        assert_eq!(n, f.frames.len());
        assert_eq!(src.fps(), Some(4.0));
        f.describer(DescriberErrors::default(), 1).unwrap();
        // the same settings give the same questions
        let g = SimFlight::prepare(SceneKind::Indoor, 0, 0, &cfg).unwrap();
        assert_eq!(
            serde_json::to_string(&f.questions).unwrap(),
            serde_json::to_string(&g.questions).unwrap()
        );
    }
}
