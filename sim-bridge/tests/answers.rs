//! Independent check of every generated answer: recompute each category's answer from the
//! ground-truth sidecar alone, with code written separately from the generators (f64 math,
//! its own geometry), and compare with the option the benchmark marks correct.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn vec3(v: &Value) -> [f64; 3] {
    [f(&v["x"]), f(&v["y"]), f(&v["z"])]
}

fn wrap(mut a: f64) -> f64 {
    while a > 180.0 {
        a -= 360.0;
    }
    while a <= -180.0 {
        a += 360.0;
    }
    a
}

struct Video {
    truth: Value,
    objects: BTreeMap<String, Value>,
}

impl Video {
    fn obj(&self, name: &str) -> &Value {
        self.objects
            .get(name)
            .unwrap_or_else(|| panic!("no object {name}"))
    }
    fn center(&self, name: &str) -> [f64; 3] {
        vec3(&self.obj(name)["center"])
    }
    fn frames(&self) -> &Vec<Value> {
        self.truth["frames"].as_array().expect("frames")
    }
    fn final_cam(&self) -> (f64, f64, f64, f64, f64) {
        let c = &self.frames().last().expect("frame")["camera"];
        let p = vec3(&c["position"]);
        (p[0], p[1], p[2], f(&c["yaw"]), f(&c["pitch"]))
    }
    /// Pixels an object needs in a frame to count as seen (the documented rule).
    fn seen_px(&self) -> u64 {
        let cam = &self.truth["camera"];
        150u64.max(cam["width"].as_u64().expect("w") * cam["height"].as_u64().expect("h") / 800)
    }
    fn first_seen(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for fr in self.frames() {
            for v in fr["visible"].as_array().expect("visible") {
                if v["pixels"].as_u64().expect("px") >= self.seen_px() {
                    out.entry(v["name"].as_str().expect("name").to_string())
                        .or_insert(fr["index"].as_u64().expect("index"));
                }
            }
        }
        out
    }
}

/// Bearing in degrees (positive left) of point `t` from a camera at (x, y) with heading `yaw`.
fn bearing(x: f64, y: f64, yaw: f64, t: [f64; 3]) -> f64 {
    wrap((t[1] - y).atan2(t[0] - x).to_degrees() - yaw.to_degrees())
}

fn dist3(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Point-in-grown-box test, written from the object's definition.
fn inside(o: &Value, p: [f64; 3], margin: f64) -> bool {
    if o["structure"].as_bool().expect("structure") {
        return false;
    }
    let c = vec3(&o["center"]);
    let s = vec3(&o["size"]);
    let yaw = f(&o["yaw"]);
    let d = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
    let lx = d[0] * yaw.cos() + d[1] * yaw.sin();
    let ly = -d[0] * yaw.sin() + d[1] * yaw.cos();
    lx.abs() <= s[0] / 2.0 + margin
        && ly.abs() <= s[1] / 2.0 + margin
        && d[2].abs() <= s[2] / 2.0 + margin
}

fn expected(v: &Video, q: &Value) -> Option<String> {
    let p = &q["params"];
    let s = |k: &str| p[k].as_str().expect("param").to_string();
    let (x, y, z, yaw, _) = v.final_cam();
    match p["type"].as_str().expect("type") {
        "landmark_position" => {
            let b = bearing(x, y, yaw, v.center(&s("landmark")));
            let k = (b / 45.0).round() as i64;
            let names = [
                "ahead",
                "ahead-left",
                "left",
                "behind-left",
                "behind",
                "behind-right",
                "right",
                "ahead-right",
            ];
            Some(names[k.rem_euclid(8) as usize].to_string())
        }
        "counterfactual" => {
            let actions = v.truth["actions"].as_array().expect("actions");
            let last = actions.last().expect("last action");
            let start = last["start_frame"].as_u64().expect("start") as usize;
            let c = &v.frames()[start]["camera"];
            let pos = vec3(&c["position"]);
            let mut yaw0 = f(&c["yaw"]);
            let (mut px, mut py) = (pos[0], pos[1]);
            let m = &v.truth["motion"];
            let step = f(&m["step_m"]);
            match p["alternative"].as_str().expect("alt") {
                "rotate_left" => yaw0 += f(&m["turn_deg"]).to_radians(),
                "rotate_right" => yaw0 -= f(&m["turn_deg"]).to_radians(),
                "move_left" => {
                    px -= yaw0.sin() * step;
                    py += yaw0.cos() * step;
                }
                "move_right" => {
                    px += yaw0.sin() * step;
                    py -= yaw0.cos() * step;
                }
                other => panic!("unexpected alternative {other}"),
            }
            let mut best = p["candidates"]
                .as_array()
                .expect("cands")
                .iter()
                .map(|n| {
                    let n = n.as_str().expect("name");
                    (bearing(px, py, yaw0, v.center(n)).abs(), n.to_string())
                })
                .collect::<Vec<_>>();
            best.sort_by(|a, b| a.0.total_cmp(&b.0));
            Some(best[0].1.clone())
        }
        "progress_evaluation" => {
            let executed: Vec<&str> = v.truth["actions"]
                .as_array()
                .expect("actions")
                .iter()
                .map(|a| a["action"].as_str().expect("a"))
                .collect();
            let mut runs = 0;
            for (i, a) in executed.iter().enumerate() {
                if i == 0 || executed[i - 1] != *a {
                    runs += 1;
                }
            }
            let total = p["route"].as_array().expect("route").len();
            Some(if runs == total {
                format!("all {runs} steps; the route is finished")
            } else {
                format!("step {runs}; next is step {}", runs + 1)
            })
        }
        "action_generation" => {
            let g = v.obj(&s("goal"));
            let c = vec3(&g["center"]);
            let size = vec3(&g["size"]);
            let top = c[2] + size[2] / 2.0;
            let want = match g["category"].as_str().expect("cat") {
                "balcony" => c[2] + 2.0,
                "bridge" => top + 6.0,
                "tower" => (top * 0.6).min(60.0),
                _ => top + 6.0,
            };
            let m = &v.truth["motion"];
            let climb = f(&m["climb_m"]);
            let b = bearing(x, y, yaw, c);
            let d = ((c[0] - x).powi(2) + (c[1] - y).powi(2)).sqrt();
            let a = if b.abs() > 20.0 {
                if b > 0.0 {
                    "rotate left"
                } else {
                    "rotate right"
                }
            } else if z < want - climb * 0.75 {
                "move upward"
            } else if z > want + climb * 1.5 && d < 80.0 {
                "move downward"
            } else {
                // Forward if the next step is free, else climb.
                let step = f(&m["step_m"]);
                let margin = f(&m["clearance_m"]);
                let free = (1..=4).all(|k| {
                    let t = step * k as f64 / 4.0;
                    let q = [x + yaw.cos() * t, y + yaw.sin() * t, z];
                    !v.objects.values().any(|o| inside(o, q, margin))
                });
                if free { "move forward" } else { "move upward" }
            };
            Some(a.to_string())
        }
        "rel_distance" => {
            let t = v.center(&s("target"));
            let mut best = p["candidates"]
                .as_array()
                .expect("c")
                .iter()
                .map(|n| {
                    let n = n.as_str().expect("n");
                    (dist3(v.center(n), t), n.to_string())
                })
                .collect::<Vec<_>>();
            best.sort_by(|a, b| a.0.total_cmp(&b.0));
            Some(best[0].1.clone())
        }
        "rel_direction" => {
            let (a, b, c) = (
                v.center(&s("stand")),
                v.center(&s("face")),
                v.center(&s("target")),
            );
            let ang = wrap(
                (c[1] - a[1]).atan2(c[0] - a[0]).to_degrees()
                    - (b[1] - a[1]).atan2(b[0] - a[0]).to_degrees(),
            );
            let left = ang > 0.0;
            Some(match s("difficulty").as_str() {
                "easy" => if left { "left" } else { "right" }.to_string(),
                "medium" => {
                    if ang.abs() > 135.0 {
                        "back".into()
                    } else if left {
                        "left".into()
                    } else {
                        "right".into()
                    }
                }
                _ => {
                    let front = ang.abs() < 90.0;
                    format!(
                        "{}-{}",
                        if front { "front" } else { "back" },
                        if left { "left" } else { "right" }
                    )
                }
            })
        }
        "route_planning" => {
            let pts = ["start", "face", "via", "goal"].map(|k| v.center(&s(k)));
            let heading = |a: [f64; 3], b: [f64; 3]| (b[1] - a[1]).atan2(b[0] - a[0]).to_degrees();
            let turn = |i: usize| {
                let t = wrap(heading(pts[i], pts[i + 1]) - heading(pts[i - 1], pts[i]));
                if t.abs() > 150.0 {
                    "Turn back"
                } else if t > 0.0 {
                    "Turn left"
                } else {
                    "Turn right"
                }
            };
            Some(format!("{}, {}", turn(1), turn(2)))
        }
        "appearance_order" => {
            let first = v.first_seen();
            let mut names: Vec<String> = p["objects"]
                .as_array()
                .expect("objs")
                .iter()
                .map(|n| n.as_str().expect("n").to_string())
                .collect();
            names.sort_by_key(|n| first[n]);
            Some(names.join(", "))
        }
        "count" => {
            let first = v.first_seen();
            let n = v
                .objects
                .values()
                .filter(|o| {
                    o["category"] == p["category"]
                        && first.contains_key(o["name"].as_str().expect("n"))
                })
                .count();
            Some(n.to_string())
        }
        "abs_distance" => Some(format!(
            "{:.2}",
            dist3(v.center(&s("a")), v.center(&s("b")))
        )),
        "room_size" => {
            let room = v.obj("room");
            let sz = vec3(&room["size"]);
            Some(format!("{:.2}", sz[0] * sz[1]))
        }
        other => panic!("unknown params type {other}"),
    }
}

#[test]
fn every_answer_recomputed_from_the_sidecar() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = embodied_r_sim::GenerateConfig {
        scenes: 14,
        seed: 2024,
        camera: embodied_r_sim::Camera {
            width: 200,
            height: 150,
            hfov_deg: 90.0,
        },
        mp4: embodied_r_sim::dataset::Mp4::Never,
        ..Default::default()
    };
    let summary = embodied_r_sim::generate(&cfg, dir.path(), |_| {})
        .expect("generate")
        .summary;
    let mut checked = 0;
    let mut per_cat: BTreeMap<String, usize> = BTreeMap::new();
    let truth_dir = dir.path().join("ground_truth");
    let mut rows: BTreeMap<u64, Value> = BTreeMap::new();
    for split in ["train", "val", "test"] {
        let text =
            std::fs::read_to_string(dir.path().join(format!("{split}_data.json"))).expect("split");
        for r in serde_json::from_str::<Vec<Value>>(&text).expect("rows") {
            rows.insert(r["Question_id"].as_u64().expect("id"), r);
        }
    }
    for entry in std::fs::read_dir(&truth_dir).expect("dir") {
        let path = entry.expect("entry").path();
        let truth: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let objects = truth["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .map(|o| (o["name"].as_str().expect("name").to_string(), o.clone()))
            .collect();
        let video = Video { truth, objects };
        for q in video.truth["questions"].as_array().expect("questions") {
            let want = expected(&video, q).expect("answer");
            let choices = q["choices"].as_array().expect("choices");
            let answer = q["answer"].as_str().expect("answer");
            let got = if choices.is_empty() {
                answer.to_string()
            } else {
                let idx = (answer.as_bytes()[0] - b'A') as usize;
                choices[idx].as_str().expect("choice").to_string()
            };
            assert_eq!(
                got,
                want,
                "{} in {}: {}",
                q["category"],
                path.display(),
                q["stem"]
            );
            // The row written to the split files agrees with the sidecar.
            let row = &rows[&q["question_id"].as_u64().expect("id")];
            assert_eq!(row["answer"].as_str(), Some(answer));
            assert!(
                row["question"]
                    .as_str()
                    .expect("q")
                    .starts_with("Question: ")
            );
            // Options are distinct and name things that exist.
            let mut uniq: Vec<&str> = choices.iter().map(|c| c.as_str().expect("c")).collect();
            uniq.sort_unstable();
            uniq.dedup();
            assert_eq!(uniq.len(), choices.len());
            checked += 1;
            *per_cat
                .entry(q["category"].as_str().expect("cat").to_string())
                .or_insert(0) += 1;
        }
    }
    assert_eq!(checked, summary.questions);
    assert_eq!(
        rows.len(),
        summary.questions,
        "every question is in exactly one split"
    );
    assert!(checked >= 300, "only {checked} questions: {per_cat:?}");
    for cat in embodied_r_sim::qa::CATEGORIES {
        assert!(
            per_cat.get(cat).copied().unwrap_or(0) >= 3,
            "{cat}: {per_cat:?}"
        );
    }
    // Letters are balanced: within each number of options, counts differ by at most one.
    for (n, counts) in &summary.letters {
        let (lo, hi) = (
            counts.iter().min().expect("min"),
            counts.iter().max().expect("max"),
        );
        assert!(hi - lo <= 1, "{n} options: {counts:?}");
    }
    // Splits are by scene: no scene in two splits.
    let sc = &summary.split_scenes;
    for a in ["train", "val", "test"] {
        for b in ["train", "val", "test"] {
            if a < b {
                assert!(
                    sc[a].iter().all(|s| !sc[b].contains(s)),
                    "{a}/{b} share a scene"
                );
            }
        }
    }
    assert!(Path::new(&dir.path().join("videos/city_0000_v0/frame_0000.png")).exists());
    eprintln!("checked {checked} questions: {per_cat:?}");
}
