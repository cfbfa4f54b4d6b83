//! The whole benchmark directory is reproducible: the same settings give the same bytes in every
//! file (`benchmark.json` and, when ffmpeg is installed, the MP4s included), and another seed
//! gives other content.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn cfg(seed: u64) -> embodied_r_sim::GenerateConfig {
    embodied_r_sim::GenerateConfig {
        scenes: 2,
        seed,
        actions: 5,
        frames_per_action: 2,
        camera: embodied_r_sim::Camera {
            width: 96,
            height: 72,
            hfov_deg: 90.0,
        },
        mp4: embodied_r_sim::dataset::Mp4::Auto,
        ..Default::default()
    }
}

#[test]
fn same_seed_same_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let summary = embodied_r_sim::generate(&cfg(5), a.path(), |_| {})
        .expect("gen a")
        .summary;
    embodied_r_sim::generate(&cfg(5), b.path(), |_| {}).expect("gen b");
    embodied_r_sim::generate(&cfg(6), c.path(), |_| {}).expect("gen c");
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert!(fa.len() > 40, "{} files", fa.len());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        assert!(
            fb[k] == *v,
            "{k} differs between two runs with the same seed"
        );
    }
    let same = fa.iter().filter(|(k, v)| fc.get(*k) == Some(*v)).count();
    assert!(
        same < fa.len() / 10,
        "{same} of {} files equal under another seed",
        fa.len()
    );
    let mp4s = fa.keys().filter(|k| k.ends_with(".mp4")).count();
    if summary.mp4 {
        assert_eq!(mp4s, summary.videos, "one MP4 per video");
    } else {
        eprintln!("ffmpeg not installed: MP4 bytes not compared");
    }
    for split in [
        "benchmark.json",
        "train_data.json",
        "val_data.json",
        "test_data.json",
    ] {
        assert!(fa.contains_key(split), "{split} missing");
    }
}
