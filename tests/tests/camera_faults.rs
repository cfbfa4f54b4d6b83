//! A camera stream that yields corrupt frames and then ends, end to end: a real `embodied-r
//! run` process reading an image folder in real time (good frames, a file of random bytes, a
//! truncated JPEG, an empty file; a loopback VLM server describes), answered over zenoh after
//! the stream has ended.
//! The status counts the bad frames and says the source ended; the runtime keeps its key-frame
//! buffer and answers from it, saying how old its newest key frame is — older with every ask.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::client::ask;
use embodied_r_tests::{
    FakeVlm, Proc, free_port, next_status, openai_describer, question, runtime_config, zenoh_peer,
};
use serde_json::Value;
use std::time::{Duration, Instant};

fn frame(i: u32, w: u32, h: u32) -> image::RgbImage {
    // A bright square that moves across a gradient: the selector sees motion.
    image::RgbImage::from_fn(w, h, |x, y| {
        let inside = x.abs_diff(10 + i * 12) < 14 && y.abs_diff(40 + i * 3) < 14;
        if inside {
            image::Rgb([250, 240, 20])
        } else {
            image::Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y + i * 9) % 256) as u8,
            ])
        }
    })
}

fn config(
    dir: &std::path::Path,
    frames: &std::path::Path,
    port: u16,
    vlm: &str,
) -> std::path::PathBuf {
    let text = format!(
        r#"[source]
kind = "folder"
path = "{frames}"
fps = 6.0
rate = "realtime"

{describer}
[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
multicast = false
status_period_ms = 200

[log]
enabled = false
"#,
        frames = frames.display(),
        describer = openai_describer(vlm),
    );
    runtime_config(dir, "cam.toml", "cam", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_are_counted_and_answers_go_on_after_the_stream_ends() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..12u32 {
        frame(i, 160, 120)
            .save(frames.join(format!("{i:03}.png")))
            .unwrap();
    }
    // Three bad frames among the good ones.
    std::fs::write(frames.join("003a.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    // A JPEG cut inside its header (one cut in the entropy-coded data still decodes: the
    // decoder fills the rest, which is right for a camera that lost a packet).
    let mut jpeg = Vec::new();
    frame(3, 160, 120)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    std::fs::write(frames.join("006a.jpg"), &jpeg[..40]).unwrap();
    std::fs::write(frames.join("009a.bmp.png"), [0u8; 0]).unwrap();

    let port = free_port();
    let vlm = FakeVlm::start("1. Move forward. 2. A yellow square on a gradient. 3. Nothing else.");
    let cfg = config(dir.path(), &frames, port, &vlm.url);
    let mut rt = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], &[]);
    rt.wait_line("ready ", Duration::from_secs(180));
    let s = zenoh_peer(port).await;

    // Wait for the end of the stream (15 files at 6 fps).
    let end = Instant::now() + Duration::from_secs(60);
    let st = loop {
        let st = next_status(&s, "robots/cam/embodied-r/status").await;
        if st["source"]["ended"] == true || Instant::now() > end {
            break st;
        }
    };
    assert_eq!(st["source"]["ended"], true, "{st}");
    assert_eq!(st["source"]["error"], Value::Null, "{st}");
    assert_eq!(st["source"]["bad"], 3, "three bad files: {st}");
    assert_eq!(st["source"]["frames"], 12, "twelve good ones: {st}");
    assert!(st["keyframes"]["buffered"].as_u64().unwrap() >= 1, "{st}");

    let req = question("What did I pass?", 60_000);
    let key = "robots/cam/embodied-r/ask";
    let first = ask(&s, key, &req, Duration::from_secs(90)).await.unwrap();
    assert!(
        first.get("error").is_none(),
        "answers from the buffer: {first}"
    );
    let age1 = first["grounding"]["newest_age_s"].as_f64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = ask(&s, key, &req, Duration::from_secs(90)).await.unwrap();
    assert!(second.get("error").is_none(), "{second}");
    let age2 = second["grounding"]["newest_age_s"].as_f64().unwrap();
    eprintln!("after the stream ended: newest key frame {age1:.2} s old, then {age2:.2} s");
    assert!(age1 > 0.0 && age2 >= age1 + 1.4, "{age1} → {age2}");

    rt.terminate();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        rt.stderr()
    );
    let logs = rt.stderr();
    for bad in ["003a.png", "006a.jpg", "009a.bmp.png"] {
        assert!(
            logs.contains(bad),
            "the skipped file {bad} is named in the log: {logs}"
        );
    }
}
