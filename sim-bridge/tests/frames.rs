//! Rendered frames: byte-identical from a seed (hashed against committed values, so a machine
//! that renders differently fails), and textured enough that a corner detector finds many corners.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use embodied_r_sim::{Camera, Scene, SceneKind, render, trajectory};
use sha2::{Digest, Sha256};

fn views(kind: SceneKind, scene_index: u32) -> (Scene, Vec<embodied_r_sim::CameraPose>) {
    let scene = Scene::generate(kind, 11, scene_index);
    let t = trajectory::plan(&scene, 5, 6, 3);
    let poses = [0, t.poses.len() / 2, t.poses.len() - 1]
        .map(|i| t.poses[i])
        .to_vec();
    (scene, poses)
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))[..16].to_string()
}

/// Hashes of rgb, depth and ids for fixed scenes and poses, recorded on the build machine.
/// Update only for an intended change of the renderer, with the reason in the commit.
const GOLDEN: &[(&str, &str)] = &[
    ("city_0", "228baf6bd6f66112"),
    ("city_1", "2ae39dfa6d46f404"),
    ("city_2", "5d42d453fb69613b"),
    ("indoor_0", "fd08080c2f3a9e54"),
    ("indoor_1", "4ee5669eb2d1e934"),
    ("indoor_2", "0cdaf93dff02e8cd"),
];

#[test]
fn frames_are_byte_identical_across_runs_and_machines() {
    let cam = Camera {
        width: 320,
        height: 240,
        hfov_deg: 90.0,
    };
    let mut got = Vec::new();
    for kind in [SceneKind::City, SceneKind::Indoor] {
        let (scene, poses) = views(kind, 1);
        for (i, pose) in poses.iter().enumerate() {
            let a = render(&scene, &cam, pose);
            let b = render(&scene, &cam, pose);
            assert_eq!(a, b, "rendering is not repeatable");
            let mut bytes = a.rgb.clone();
            bytes.extend(a.depth.iter().flat_map(|d| d.to_le_bytes()));
            bytes.extend(a.ids.iter().flat_map(|d| d.to_le_bytes()));
            got.push((format!("{}_{i}", kind.as_str()), digest(&bytes)));
        }
    }
    for (name, hash) in &got {
        eprintln!("(\"{name}\", \"{hash}\"),");
    }
    assert_eq!(got.len(), GOLDEN.len(), "golden table incomplete");
    for ((name, hash), (gname, ghash)) in got.iter().zip(GOLDEN) {
        assert_eq!(
            (name.as_str(), hash.as_str()),
            (*gname, *ghash),
            "frame {name} differs from the recorded render"
        );
    }
}

/// FAST-9 segment test (threshold 20) on grey levels; returns corner positions.
fn fast_corners(rgb: &[u8], w: usize, h: usize) -> Vec<(usize, usize)> {
    let grey: Vec<i32> = rgb
        .chunks_exact(3)
        .map(|p| (i32::from(p[0]) * 299 + i32::from(p[1]) * 587 + i32::from(p[2]) * 114) / 1000)
        .collect();
    const CIRCLE: [(i32, i32); 16] = [
        (0, -3),
        (1, -3),
        (2, -2),
        (3, -1),
        (3, 0),
        (3, 1),
        (2, 2),
        (1, 3),
        (0, 3),
        (-1, 3),
        (-2, 2),
        (-3, 1),
        (-3, 0),
        (-3, -1),
        (-2, -2),
        (-1, -3),
    ];
    let mut out = Vec::new();
    for y in 3..h - 3 {
        for x in 3..w - 3 {
            let c = grey[y * w + x];
            let ring: Vec<i32> = CIRCLE
                .iter()
                .map(|(dx, dy)| grey[(y as i32 + dy) as usize * w + (x as i32 + dx) as usize])
                .collect();
            let check = |f: &dyn Fn(i32) -> bool| {
                let mut run = 0;
                for k in 0..32 {
                    if f(ring[k % 16]) {
                        run += 1;
                        if run >= 9 {
                            return true;
                        }
                    } else {
                        run = 0;
                    }
                }
                false
            };
            if check(&|v| v > c + 20) || check(&|v| v < c - 20) {
                out.push((x, y));
            }
        }
    }
    out
}

#[test]
fn renders_have_corners_everywhere() {
    let cam = Camera::default();
    for kind in [SceneKind::City, SceneKind::Indoor] {
        for scene_index in 0..3 {
            let (scene, poses) = views(kind, scene_index);
            for pose in &poses {
                let img = render(&scene, &cam, pose);
                let corners = fast_corners(&img.rgb, 640, 480);
                // Count 16×16 cells with a corner, so one busy patch cannot carry the frame.
                let mut cells = std::collections::BTreeSet::new();
                for (x, y) in &corners {
                    cells.insert((x / 16, y / 16));
                }
                eprintln!(
                    "{} {}: {} corners in {} cells",
                    scene.name,
                    kind.as_str(),
                    corners.len(),
                    cells.len()
                );
                assert!(
                    corners.len() >= 500,
                    "{}: only {} corners",
                    scene.name,
                    corners.len()
                );
                assert!(
                    cells.len() >= 120,
                    "{}: corners in only {} cells",
                    scene.name,
                    cells.len()
                );
            }
        }
    }
}
