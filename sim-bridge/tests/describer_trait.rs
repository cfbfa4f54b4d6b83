//! The ground-truth describer behind perception's `Describer` trait gives the same text as
//! calling it directly, and refuses windows it cannot map to the video.

use embodied_r_perception::buffer::KeyFrame;
use embodied_r_perception::describe::Describer;
use embodied_r_sim::dataset::run_video;
use embodied_r_sim::describer::VideoDescriber;
use embodied_r_sim::{Camera, DescriberErrors, GenerateConfig, Scene, SceneKind, SimDescriber};
use std::time::Instant;

#[test]
fn trait_and_direct_calls_agree() {
    let cfg = GenerateConfig {
        camera: Camera {
            width: 160,
            height: 120,
            hfov_deg: 90.0,
        },
        ..GenerateConfig::default()
    };
    let scene = Scene::generate(SceneKind::City, 3, 0);
    let run = run_video(scene.clone(), &cfg, 0, |_, _| Ok(())).expect("renders");
    let sim = SimDescriber::new(DescriberErrors::default(), 9).expect("valid");
    let pixels = 160 * 120;
    let keys = [0usize, 8, 20, 40];
    let q = "Is the tower to my left?";
    let direct = sim
        .describe(&scene, &run.frames, pixels, &keys, q)
        .expect("direct");
    let d = VideoDescriber::new(sim, scene, run.frames.clone(), pixels);
    let window: Vec<KeyFrame> = keys
        .iter()
        .map(|&k| KeyFrame {
            seq: k as u64,
            stamp: k as f64 / 4.0,
            width: 160,
            height: 120,
            pose: None,
            jpeg: Vec::new().into(),
        })
        .collect();
    let via_trait = d.describe(&window, q, Instant::now()).expect("trait");
    assert_eq!(via_trait, direct);
    assert_eq!(d.label(), SimDescriber::LABEL);
    let mut backwards = window.clone();
    backwards.reverse();
    let e = d
        .describe(&backwards, q, Instant::now())
        .expect_err("order");
    assert!(e.to_string().contains("increasing"), "{e}");
    let mut beyond = window;
    beyond[3].seq = 10_000;
    assert!(d.describe(&beyond, q, Instant::now()).is_err());
}
