//! `embodied-r keyframes` end to end: the real binary on a folder written by `sim warp`, the same
//! frames as a lossless video decoded by ffmpeg, and the errors users see for bad input.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_embodied-r"))
}

fn warp(dir: &Path) {
    let out = bin()
        .args([
            "sim",
            "warp",
            "--frames-per-phase",
            "8",
            "--width",
            "320",
            "--height",
            "240",
            "--out",
        ])
        .arg(dir)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keyframes(args: &[&str], input: &Path) -> serde_json::Value {
    let out = bin()
        .arg("keyframes")
        .arg("--input")
        .arg(input)
        .args(args)
        .arg("--json")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a line");
    serde_json::from_str(last).expect("the last line is JSON")
}

#[test]
fn a_folder_and_the_same_frames_as_a_video_give_the_same_key_frames() {
    let tmp = tempfile::tempdir().expect("tmp");
    let frames = tmp.path().join("frames");
    warp(&frames);
    let r = keyframes(&["--no-downsample"], &frames);
    assert_eq!(r["frames"], 32);
    let kept: Vec<u64> = r["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|v| v.as_u64().expect("index"))
        .collect();
    assert!(kept.len() >= 4 && kept.len() <= 32, "{kept:?}");
    assert_eq!(kept.first(), Some(&0));
    assert_eq!(kept.last(), Some(&31));
    assert!(r["fps"].as_f64().expect("fps") > 0.0);
    assert_eq!(r["decisions"].as_array().expect("decisions").len(), 32);

    // Downsampling a 4 fps folder keeps every 4th frame and the last: 0, 4, ..., 28, 31.
    let d = keyframes(&["--fps", "4"], &frames);
    assert_eq!(d["processed"], 9);
    assert!(d["kept"].as_array().expect("kept").iter().all(|v| {
        let i = v.as_u64().expect("index");
        i % 4 == 0 || i == 31
    }));

    // The same frames as a lossless FFV1 video: ffmpeg decodes them bit-exactly.
    let video = tmp.path().join("warp.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-framerate", "4", "-i"])
        .arg(frames.join("frame_%04d.png"))
        .args(["-c:v", "ffv1", "-pix_fmt", "bgr0"])
        .arg(&video)
        .status()
        .expect("ffmpeg is installed (apt-get install ffmpeg)");
    assert!(status.success());
    let v = keyframes(&["--no-downsample"], &video);
    assert_eq!(v["kept"], r["kept"]);
    assert_eq!(v["frames"], 32);
    assert_eq!(v["input_fps"], 4.0);
    let v4 = keyframes(&[], &video);
    assert_eq!(v4["kept"], d["kept"]);
}

fn error_of(args: &[&str]) -> String {
    let out = bin().arg("keyframes").args(args).output().expect("runs");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_inputs_get_errors_that_name_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let e = error_of(&["--input", "/no/such/place"]);
    assert!(e.contains("/no/such/place"), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    std::fs::write(empty.join("notes.txt"), "hello").expect("write");
    let e = error_of(&["--input", empty.to_str().expect("utf8")]);
    assert!(e.contains("no image files") && e.contains("empty"), "{e}");
    // A folder whose only image is corrupt: skipped with a warning, then "no decodable frames".
    std::fs::write(empty.join("frame_0000.png"), b"not a png").expect("write");
    let e = error_of(&["--input", empty.to_str().expect("utf8")]);
    assert!(
        e.contains("no decodable frames") && e.contains("frame_0000.png"),
        "{e}"
    );
    let not_video = tmp.path().join("clip.mp4");
    std::fs::write(&not_video, b"garbage").expect("write");
    let e = error_of(&["--input", not_video.to_str().expect("utf8")]);
    assert!(e.contains("clip.mp4"), "{e}");
    let e = error_of(&[
        "--input",
        empty.to_str().expect("utf8"),
        "--min",
        "5",
        "--max",
        "4",
    ]);
    assert!(e.contains("--min 5 --max 4"), "{e}");
}
