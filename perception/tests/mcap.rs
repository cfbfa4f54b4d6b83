//! rosbag2 MCAP playback against a bag written by an independent implementation (the `rosbags`
//! Python package, tools/fixtures_mcap.py): every encoding decodes to the pixels OpenCV gives,
//! bad messages are counted and skipped, and the stream carries on past them.

use embodied_r_perception::source::mcap::{McapSource, image_topics};
use embodied_r_perception::source::{CameraSource, SourceError};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcap")
}

fn expected() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir().join("images.json")).expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["messages"].as_array().expect("messages").clone()
}

fn play(topic: &str) -> (Vec<embodied_r_perception::Frame>, u64) {
    let mut s = McapSource::open(&dir().join("images.mcap"), Some(topic)).expect("opens");
    let mut frames = Vec::new();
    while let Some(f) = s.next_frame().expect("plays") {
        frames.push(f);
    }
    (frames, s.stats().bad)
}

fn check(topic: &str) {
    let (frames, bad) = play(topic);
    let want: Vec<serde_json::Value> = expected()
        .into_iter()
        .filter(|m| m["topic"] == topic)
        .collect();
    let good: Vec<&serde_json::Value> = want.iter().filter(|m| m["bad"] == false).collect();
    assert_eq!(frames.len(), good.len(), "{topic}");
    assert_eq!(bad as usize, want.len() - good.len(), "{topic}");
    for (f, m) in frames.iter().zip(&good) {
        let label = format!(
            "{topic} {}",
            m["encoding"]
                .as_str()
                .or(m["format"].as_str())
                .unwrap_or("?")
        );
        assert_eq!((f.width, f.height), (8, 6), "{label}");
        let stamp = m["stamp_ns"].as_u64().expect("stamp") as f64 * 1e-9;
        assert!(
            (f.stamp - stamp).abs() < 1e-6,
            "{label}: stamp {} vs {stamp}",
            f.stamp
        );
        let rgb: Vec<u8> = m["rgb"]
            .as_array()
            .expect("rgb")
            .iter()
            .map(|v| v.as_u64().expect("u8") as u8)
            .collect();
        // JPEG decoders may upsample chroma differently from libjpeg-turbo.
        let tolerance = if m["lossy"] == true { 20 } else { 0 };
        let worst = f
            .rgb
            .iter()
            .zip(&rgb)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        assert!(worst <= tolerance, "{label}: max difference {worst}");
    }
    // The input index survives skipped messages: seq counts every message of the topic.
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    let positions: Vec<u64> = want
        .iter()
        .enumerate()
        .filter(|(_, m)| m["bad"] == false)
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(seqs, positions, "{topic}");
}

#[test]
fn raw_images_in_every_encoding() {
    check("/camera/image_raw");
}

#[test]
fn compressed_images_jpeg_and_png() {
    check("/camera/image_raw/compressed");
}

#[test]
fn topics_are_listed_and_a_choice_is_required() {
    let bag = dir().join("images.mcap");
    let topics = image_topics(&bag).expect("summary");
    let names: Vec<&str> = topics.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["/camera/image_raw", "/camera/image_raw/compressed"]);
    assert_eq!(topics[0].1, "sensor_msgs/msg/Image");
    assert_eq!(topics[0].2, 6);
    let e = McapSource::open(&bag, None).err().expect("ambiguous");
    assert!(e.to_string().contains("several image topics"), "{e}");
    let mut s = McapSource::open(&bag, Some("/no/such/topic")).expect("opens");
    let e = s.next_frame().expect_err("no messages");
    assert!(e.to_string().contains("no messages"), "{e}");
}

#[test]
fn files_that_are_not_mcap_are_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("broken.mcap");
    std::fs::write(&p, b"this is not an mcap file").expect("write");
    let e = McapSource::open(&p, Some("/camera/image_raw"))
        .err()
        .expect("fails");
    assert!(matches!(e, SourceError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("broken.mcap"), "{e}");
    let e = McapSource::open(&tmp.path().join("missing.mcap"), Some("/x"))
        .err()
        .expect("fails");
    assert!(e.to_string().contains("missing.mcap"), "{e}");
}

#[test]
fn a_torn_bag_delivers_what_it_holds_then_reports() {
    let bytes = std::fs::read(dir().join("images.mcap")).expect("read");
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("torn.mcap");
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).expect("write");
    match McapSource::open(&p, Some("/camera/image_raw")) {
        Ok(mut s) => {
            let mut n = 0;
            let end = loop {
                match s.next_frame() {
                    Ok(Some(_)) => n += 1,
                    other => break other,
                }
            };
            // Either a clean end or a named error; never a panic, and what came through stays.
            if let Err(e) = end {
                assert!(e.to_string().contains("torn.mcap"), "{e}");
            }
            assert!(n <= 5);
        }
        Err(e) => assert!(e.to_string().contains("torn.mcap"), "{e}"),
    }
}

#[test]
fn a_split_bag_directory_plays_its_files_in_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bag = tmp.path().join("drive");
    std::fs::create_dir(&bag).expect("dir");
    // rosbag2 numbers split files; "_10" must come after "_2", not between "_1" and "_2".
    for i in [10, 0, 2] {
        std::fs::copy(
            dir().join("images.mcap"),
            bag.join(format!("drive_{i}.mcap")),
        )
        .expect("copy");
    }
    std::fs::write(
        bag.join("metadata.yaml"),
        "rosbag2_bagfile_information: {}\n",
    )
    .expect("yaml");
    let (single, _) = play("/camera/image_raw");
    let mut s = McapSource::open(&bag, Some("/camera/image_raw")).expect("opens");
    let mut seqs = Vec::new();
    while let Some(f) = s.next_frame().expect("plays") {
        seqs.push(f.seq);
    }
    assert_eq!(seqs.len(), 3 * single.len());
    // Messages are numbered across files (a skipped bad message keeps its number).
    let per_file = single.len() as u64 + 1;
    let want: Vec<u64> = (0..3 * per_file)
        .filter(|i| i % per_file != per_file - 1)
        .collect();
    assert_eq!(seqs, want);
    assert_eq!(s.stats().bad, 3, "one bad message per file, each counted");
    assert!(s.name().contains("drive"), "{}", s.name());

    let sqlite = tmp.path().join("old");
    std::fs::create_dir(&sqlite).expect("dir");
    std::fs::write(sqlite.join("old_0.db3"), b"SQLite format 3\0").expect("db3");
    let e = McapSource::open(&sqlite, Some("/x"))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("ros2 bag convert"), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("dir");
    let e = McapSource::open(&empty, Some("/x")).err().expect("refused");
    assert!(
        e.to_string().contains("no .mcap file") && e.to_string().contains("empty"),
        "{e}"
    );
}

#[test]
fn raw_messages_come_out_as_recorded_and_a_torn_file_is_named() {
    let want = expected();
    let mut got = Vec::new();
    let n = embodied_r_perception::source::mcap::for_each_message(
        &dir().join("images.mcap"),
        &[],
        |m| {
            got.push(m);
            true
        },
    )
    .expect("reads");
    assert_eq!(n as usize, want.len());
    for (m, w) in got.iter().zip(&want) {
        assert_eq!(m.topic, w["topic"].as_str().expect("topic"));
        assert_eq!(m.schema, w["type"].as_str().expect("type"));
        assert_eq!(m.encoding, "cdr");
        assert_eq!(m.log_time_ns, w["stamp_ns"].as_u64().expect("stamp"));
        assert_eq!(m.data.len() as u64, w["cdr_len"].as_u64().expect("len"));
    }
    // A topic filter and an early stop.
    let mut first = None;
    embodied_r_perception::source::mcap::for_each_message(
        &dir().join("images.mcap"),
        &["/camera/image_raw/compressed".to_string()],
        |m| {
            first = Some(m.topic);
            false
        },
    )
    .expect("reads");
    assert_eq!(first.as_deref(), Some("/camera/image_raw/compressed"));
    let bytes = std::fs::read(dir().join("images.mcap")).expect("read");
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("torn.mcap");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    let mut seen = 0;
    let r = embodied_r_perception::source::mcap::for_each_message(&p, &[], |_| {
        seen += 1;
        true
    });
    if let Err(e) = r {
        assert!(e.to_string().contains("torn.mcap"), "{e}");
    }
    assert!(seen < want.len());
}
