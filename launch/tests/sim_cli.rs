//! `embodied-r sim generate | preview` as the README's command-line contract states it.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_embodied-r"))
}

#[test]
fn generate_writes_the_contract_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let o = bin()
        .args([
            "sim", "generate", "--kind", "both", "--scenes", "3", "--seed", "9", "--out",
        ])
        .arg(&out)
        .args([
            "--width",
            "128",
            "--height",
            "96",
            "--actions",
            "6",
            "--no-mp4",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["videos"], 12);
    let mut rows = 0;
    for split in ["train", "val", "test"] {
        let text = std::fs::read_to_string(out.join(format!("{split}_data.json"))).unwrap();
        let v: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for r in &v {
            for key in [
                "Question_id",
                "video_id",
                "question_category",
                "question",
                "answer",
                "scene_name",
            ] {
                assert!(r.get(key).is_some(), "{key} missing in {r}");
            }
            let vid = r["video_id"].as_str().unwrap();
            assert!(out.join("videos").join(vid).join("frame_0000.png").exists());
            assert!(
                out.join("ground_truth")
                    .join(format!("{vid}.json"))
                    .exists()
            );
        }
        rows += v.len();
    }
    assert_eq!(summary["questions"].as_u64().unwrap() as usize, rows);
    // 1 + 6 actions × 4 frames.
    assert!(out.join("videos/city_0000_v0/frame_0024.png").exists());
    assert!(!out.join("videos/city_0000_v0/frame_0025.png").exists());
    let png = std::fs::read(out.join("videos/indoor_0002_v1/frame_0010.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn preview_writes_a_sheet_and_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("sheet.png");
    let o = bin()
        .args([
            "sim",
            "preview",
            "--scene",
            "city_0002",
            "--frames",
            "6",
            "--cols",
            "3",
            "--width",
            "160",
            "--height",
            "120",
            "--out",
        ])
        .arg(&sheet)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = std::fs::read(&sheet).unwrap();
    // IHDR width/height: 3 columns and 2 rows of 160×120 with 4-pixel gaps.
    let w = u32::from_be_bytes(img[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(img[20..24].try_into().unwrap());
    assert_eq!((w, h), (3 * 160 + 4 * 4, 2 * 120 + 3 * 4));

    let o = bin()
        .args(["sim", "preview", "--scene", "garden_3", "--out"])
        .arg(&sheet)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("garden_3") && err.contains("city_0003"),
        "{err}"
    );

    let o = bin()
        .args(["sim", "generate", "--scenes", "0", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("scenes = 0") && err.contains("1..=100000"),
        "{err}"
    );
}
