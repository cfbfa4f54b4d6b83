//! Renderer speed: frames per second at 640×480 for a city and an indoor view.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use embodied_r_sim::{Camera, Scene, SceneKind, render, trajectory};

fn bench(c: &mut Criterion) {
    let cam = Camera::default();
    for kind in [SceneKind::City, SceneKind::Indoor] {
        let scene = Scene::generate(kind, 7, 0);
        let t = trajectory::plan(&scene, 1, 4, 2);
        let pose = t.poses[t.poses.len() / 2];
        c.bench_function(&format!("render_640x480_{}", kind.as_str()), |b| {
            b.iter(|| std::hint::black_box(render(&scene, &cam, &pose)))
        });
        let img = render(&scene, &cam, &pose);
        let dir = std::env::temp_dir();
        let path = dir.join(format!("bench_{}.png", kind.as_str()));
        c.bench_function(&format!("png_640x480_{}", kind.as_str()), |b| {
            b.iter(|| embodied_r_sim::dataset::write_png(&path, img.width, img.height, &img.rgb))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
