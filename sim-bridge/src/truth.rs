//! Ground truth per frame and per video: what is visible where, and the sidecar file format.

use crate::math::{V3, atan2, deg};
use crate::render::{Camera, CameraPose, Render};
use crate::scene::{Scene, SceneKind, SimObject};
use crate::trajectory::ActionStep;
use embodied_r_perception::Action;
use serde::{Deserialize, Serialize};

/// An object seen in a frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisibleObject {
    /// Object id.
    pub id: u16,
    /// Object name.
    pub name: String,
    /// Pixels showing the object.
    pub pixels: u32,
    /// 2-D box in pixels, `[x_min, y_min, x_max, y_max]` (inclusive).
    pub bbox: [u32; 4],
    /// Visible pixels over the pixels the object would cover in this frame unoccluded.
    pub visible_fraction: f32,
    /// Distance from the camera to the closest point of the object, metres.
    pub distance_m: f32,
    /// Horizontal angle of the object's centre from the optical axis, degrees, positive to the
    /// left (counter-clockwise seen from above, REP 103).
    pub bearing_deg: f32,
    /// Vertical angle of the object's centre above the optical axis, degrees.
    pub elevation_deg: f32,
}

/// Ground truth of one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameTruth {
    /// Frame index in the video.
    pub index: usize,
    /// Seconds since the first frame.
    pub stamp: f64,
    /// The action in progress when this frame was taken (`None` for frame 0).
    pub action: Option<Action>,
    /// Camera pose (position, yaw, pitch).
    pub camera: CameraPose,
    /// The same pose as an isometry world_from_camera_optical: translation xyz and quaternion
    /// xyzw.
    pub pose: PoseRecord,
    /// Objects with at least one visible pixel, by decreasing pixel count.
    pub visible: Vec<VisibleObject>,
}

/// An isometry as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseRecord {
    /// Translation x, y, z (metres).
    pub translation: [f64; 3],
    /// Rotation quaternion x, y, z, w.
    pub rotation_xyzw: [f64; 4],
}

impl PoseRecord {
    /// From an isometry.
    pub fn from_pose(p: &embodied_r_perception::Pose) -> Self {
        let t = p.translation.vector;
        let q = p.rotation.quaternion();
        Self {
            translation: [t.x, t.y, t.z],
            rotation_xyzw: [q.i, q.j, q.k, q.w],
        }
    }
}

/// Camera of a video as written in the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intrinsics {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Horizontal field of view, degrees.
    pub hfov_deg: f32,
    /// Focal length, pixels.
    pub fx: f32,
    /// Focal length, pixels.
    pub fy: f32,
    /// Principal point x.
    pub cx: f32,
    /// Principal point y.
    pub cy: f32,
}

impl From<&Camera> for Intrinsics {
    fn from(c: &Camera) -> Self {
        let f = c.focal();
        let (cx, cy) = c.center();
        Self {
            width: c.width,
            height: c.height,
            hfov_deg: c.hfov_deg,
            fx: f,
            fy: f,
            cx,
            cy,
        }
    }
}

/// The ground-truth sidecar of one video: `ground_truth/<video_id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoTruth {
    /// Format version of this file.
    pub format: u32,
    /// Video id.
    pub video_id: String,
    /// Scene name.
    pub scene_name: String,
    /// City or indoor.
    pub kind: SceneKind,
    /// Frames per second of the video.
    pub fps: f64,
    /// Camera intrinsics.
    pub camera: Intrinsics,
    /// Every object of the scene.
    pub objects: Vec<SimObject>,
    /// Floor area (indoor), square metres.
    pub floor_area: Option<f32>,
    /// Goal of the flight, by name (city).
    pub goal: Option<String>,
    /// How far each action moves or turns the camera.
    pub motion: crate::trajectory::Motion,
    /// Executed actions with their frame spans.
    pub actions: Vec<ActionStep>,
    /// The rest of the route the controller had planned (not executed).
    pub planned: Vec<Action>,
    /// Per-frame truth.
    pub frames: Vec<FrameTruth>,
    /// The questions asked about this video, with the parameters their answers come from.
    pub questions: Vec<crate::qa::Question>,
}

/// Current sidecar format version.
pub const FORMAT: u32 = 1;

/// Computes the truth of one rendered frame.
pub fn frame_truth(
    scene: &Scene,
    pose: &CameraPose,
    img: &Render,
    index: usize,
    stamp: f64,
    action: Option<Action>,
) -> FrameTruth {
    let n = scene.objects.len();
    let mut pixels = vec![0u32; n];
    let mut bbox = vec![[u32::MAX, u32::MAX, 0, 0]; n];
    let w = img.width as usize;
    for (i, &id) in img.ids.iter().enumerate() {
        if id == 0 {
            continue;
        }
        let k = usize::from(id) - 1;
        pixels[k] += 1;
        let (x, y) = ((i % w) as u32, (i / w) as u32);
        let b = &mut bbox[k];
        b[0] = b[0].min(x);
        b[1] = b[1].min(y);
        b[2] = b[2].max(x);
        b[3] = b[3].max(y);
    }
    let mut visible: Vec<VisibleObject> = scene
        .objects
        .iter()
        .enumerate()
        .filter(|(k, o)| pixels[*k] > 0 && !o.structure)
        .map(|(k, o)| {
            let c = pose.to_camera(o.center);
            VisibleObject {
                id: o.id,
                name: o.name.clone(),
                pixels: pixels[k],
                bbox: bbox[k],
                visible_fraction: pixels[k] as f32 / img.coverage[k].max(pixels[k]) as f32,
                distance_m: o.distance_to(pose.position),
                bearing_deg: deg(atan2(-c.x, c.z)),
                elevation_deg: deg(atan2(c.y, (c.x * c.x + c.z * c.z).sqrt())),
            }
        })
        .collect();
    visible.sort_by(|a, b| b.pixels.cmp(&a.pixels).then(a.id.cmp(&b.id)));
    FrameTruth {
        index,
        stamp,
        action,
        camera: *pose,
        pose: PoseRecord::from_pose(&pose.isometry()),
        visible,
    }
}

/// Whether an object is "seen" in a frame for question purposes: enough pixels to recognise it.
pub fn seen(v: &VisibleObject, frame_pixels: u32) -> bool {
    v.pixels >= 150.max(frame_pixels / 800)
}

/// Egocentric direction words for a bearing (degrees, positive left) and elevation.
pub fn direction_words(bearing_deg: f32, elevation_deg: f32) -> String {
    let b = bearing_deg;
    let horiz = if b.abs() <= 15.0 {
        "ahead"
    } else if b > 15.0 && b <= 60.0 {
        "ahead-left"
    } else if (-60.0..-15.0).contains(&b) {
        "ahead-right"
    } else if b > 60.0 && b <= 120.0 {
        "to the left"
    } else if (-120.0..-60.0).contains(&b) {
        "to the right"
    } else if b > 120.0 {
        "behind-left"
    } else if b < -120.0 {
        "behind-right"
    } else {
        "behind"
    };
    if elevation_deg < -30.0 {
        format!("{horiz}, below")
    } else if elevation_deg > 30.0 {
        format!("{horiz}, above")
    } else {
        horiz.to_string()
    }
}

/// Position of `target` relative to a camera (bearing in degrees positive left, horizontal
/// distance, height difference).
pub fn egocentric(pose: &CameraPose, target: V3) -> (f32, f32, f32) {
    crate::trajectory::relative(pose, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_words_cover_the_circle() {
        assert_eq!(direction_words(0.0, 0.0), "ahead");
        assert_eq!(direction_words(30.0, 0.0), "ahead-left");
        assert_eq!(direction_words(-90.0, -40.0), "to the right, below");
        assert_eq!(direction_words(150.0, 0.0), "behind-left");
        assert_eq!(direction_words(-170.0, 45.0), "behind-right, above");
    }
}
