//! Flights and walks made of the paper's ten actions, with smooth motion between them.

use crate::math::{V3, atan2, cos, deg, rad, sin, wrap_deg};
use crate::render::CameraPose;
use crate::scene::{Scene, SceneKind, SimObject};
use embodied_r_perception::Action;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How far one action moves or turns the camera.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Motion {
    /// Horizontal translation per move action, metres.
    pub step_m: f32,
    /// Vertical translation per move upward/downward, metres.
    pub climb_m: f32,
    /// Rotation per rotate action, degrees.
    pub turn_deg: f32,
    /// Pitch change per tilt action, degrees.
    pub tilt_deg: f32,
    /// Pitch limits, degrees (min, max).
    pub pitch_range: (f32, f32),
    /// Clearance kept from objects, metres.
    pub clearance_m: f32,
}

impl Motion {
    /// Defaults for a kind of scene: a drone flies 10 m steps, a robot walks 0.6 m steps.
    pub fn for_kind(kind: SceneKind) -> Self {
        match kind {
            SceneKind::City => Self {
                step_m: 10.0,
                climb_m: 6.0,
                turn_deg: 30.0,
                tilt_deg: 15.0,
                pitch_range: (-45.0, 15.0),
                clearance_m: 2.0,
            },
            SceneKind::Indoor => Self {
                step_m: 0.6,
                climb_m: 0.0,
                turn_deg: 30.0,
                tilt_deg: 10.0,
                pitch_range: (-30.0, 20.0),
                clearance_m: 0.3,
            },
        }
    }

    /// The pose after `fraction` (0..=1) of `action` from `p`.
    pub fn apply(&self, p: &CameraPose, action: Action, fraction: f32) -> CameraPose {
        let fwd = V3::new(cos(p.yaw), sin(p.yaw), 0.0);
        let left = V3::new(-sin(p.yaw), cos(p.yaw), 0.0);
        let up = V3::new(0.0, 0.0, 1.0);
        let mut q = *p;
        let s = self.step_m * fraction;
        match action {
            Action::MoveForward => q.position = p.position + fwd * s,
            Action::MoveBackward => q.position = p.position - fwd * s,
            Action::MoveLeft => q.position = p.position + left * s,
            Action::MoveRight => q.position = p.position - left * s,
            Action::MoveUpward => q.position = p.position + up * (self.climb_m * fraction),
            Action::MoveDownward => q.position = p.position - up * (self.climb_m * fraction),
            Action::RotateLeft => q.yaw = p.yaw + rad(self.turn_deg) * fraction,
            Action::RotateRight => q.yaw = p.yaw - rad(self.turn_deg) * fraction,
            Action::TiltUpward | Action::TiltDownward => {
                let sign = if action == Action::TiltUpward {
                    1.0
                } else {
                    -1.0
                };
                let target = (deg(p.pitch) + sign * self.tilt_deg)
                    .clamp(self.pitch_range.0, self.pitch_range.1);
                q.pitch = p.pitch + (rad(target) - p.pitch) * fraction;
            }
        }
        q
    }

    /// Whether `action` from `p` is possible (no collision along the way, pitch within limits).
    pub fn allowed(&self, scene: &Scene, p: &CameraPose, action: Action) -> bool {
        match action {
            Action::TiltUpward => deg(p.pitch) + 1.0 < self.pitch_range.1,
            Action::TiltDownward => deg(p.pitch) - 1.0 > self.pitch_range.0,
            Action::MoveUpward | Action::MoveDownward if self.climb_m == 0.0 => false,
            Action::RotateLeft | Action::RotateRight => true,
            _ => (1..=4).all(|k| {
                let q = self.apply(p, action, k as f32 / 4.0);
                !scene.collides(q.position, self.clearance_m)
            }),
        }
    }
}

/// One executed action and the frames it spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionStep {
    /// The action.
    pub action: Action,
    /// Index of the frame where it starts (the pose before it).
    pub start_frame: usize,
    /// Index of the frame where it ends.
    pub end_frame: usize,
}

/// A trajectory: the executed actions and one pose per frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Executed actions in order.
    pub steps: Vec<ActionStep>,
    /// Pose per frame; frame 0 is the start.
    pub poses: Vec<CameraPose>,
    /// The goal object of a goal-directed flight (city), by id.
    pub goal: Option<u16>,
    /// What the flight's controller would do next (the rest of the route), not executed.
    pub planned: Vec<Action>,
    /// Motion parameters used.
    pub motion: Motion,
}

/// Where an object is relative to a pose: bearing (degrees, positive to the left), horizontal
/// distance, height difference (object centre minus camera).
pub fn relative(p: &CameraPose, target: V3) -> (f32, f32, f32) {
    let d = target - p.position;
    let bearing = wrap_deg(deg(atan2(d.y, d.x)) - deg(p.yaw));
    (bearing, d.norm_xy(), d.z)
}

/// The height a drone should fly at to reach `goal`.
pub fn goal_altitude(goal: &SimObject) -> f32 {
    match goal.category.as_str() {
        "balcony" => goal.center.z + 2.0,
        "bridge" => goal.top() + 6.0,
        "tower" => (goal.top() * 0.6).min(60.0),
        _ => goal.top() + 6.0,
    }
}

/// The next action toward `goal` from `p` (city flights). `None` when the goal is reached.
pub fn controller(
    motion: &Motion,
    scene: &Scene,
    p: &CameraPose,
    goal: &SimObject,
) -> Option<Action> {
    let (bearing, dist, _) = relative(p, goal.center);
    let want_z = goal_altitude(goal);
    if bearing.abs() > 20.0 {
        return Some(if bearing > 0.0 {
            Action::RotateLeft
        } else {
            Action::RotateRight
        });
    }
    if p.position.z < want_z - motion.climb_m * 0.75 {
        return Some(Action::MoveUpward);
    }
    if p.position.z > want_z + motion.climb_m * 1.5 && dist < 80.0 {
        return Some(Action::MoveDownward);
    }
    let reach = goal.size.x.max(goal.size.y) / 2.0 + 15.0;
    if dist > reach {
        if motion.allowed(scene, p, Action::MoveForward) {
            return Some(Action::MoveForward);
        }
        return Some(Action::MoveUpward);
    }
    None
}

/// Plans and samples a trajectory in `scene`.
///
/// City: a goal-directed flight toward a landmark with some exploratory actions mixed in.
/// Indoor: a walk that scans the room. `frames_per_action` frames are rendered per action
/// (smoothstep easing), plus the start frame.
pub fn plan(scene: &Scene, seed: u64, actions: usize, frames_per_action: usize) -> Trajectory {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ scene.seed.rotate_left(17));
    let motion = Motion::for_kind(scene.kind);
    let start = start_pose(scene, &motion, &mut rng);
    let goal = match scene.kind {
        SceneKind::City => {
            let landmarks: Vec<&SimObject> = scene.objects.iter().filter(|o| o.landmark).collect();
            (!landmarks.is_empty())
                .then(|| landmarks[rng.random_range(0..landmarks.len() as u32) as usize])
        }
        SceneKind::Indoor => None,
    };
    // Indoor walks scan the room mostly in one turning direction, as VSI-Bench's videos do.
    let scan_left = rng.random::<bool>();
    let mut pose = start;
    let mut chosen = Vec::with_capacity(actions);
    for _ in 0..actions {
        let action = match (scene.kind, goal) {
            (SceneKind::City, Some(g)) if rng.random::<f32>() > 0.25 => {
                controller(&motion, scene, &pose, g)
                    .unwrap_or_else(|| explore(scene, &motion, &pose, scan_left, &mut rng))
            }
            _ => explore(scene, &motion, &pose, scan_left, &mut rng),
        };
        let action = if motion.allowed(scene, &pose, action) {
            action
        } else {
            Action::RotateLeft
        };
        pose = motion.apply(&pose, action, 1.0);
        chosen.push(action);
    }
    let mut planned = Vec::new();
    if let Some(g) = goal {
        let mut p = pose;
        for _ in 0..3 {
            match controller(&motion, scene, &p, g) {
                Some(a) => {
                    planned.push(a);
                    p = motion.apply(&p, a, 1.0);
                }
                None => break,
            }
        }
    }
    sample(
        &motion,
        start,
        &chosen,
        frames_per_action,
        goal.map(|g| g.id),
        planned,
    )
}

/// Turns a list of actions into per-frame poses.
pub fn sample(
    motion: &Motion,
    start: CameraPose,
    actions: &[Action],
    frames_per_action: usize,
    goal: Option<u16>,
    planned: Vec<Action>,
) -> Trajectory {
    let n = frames_per_action.max(1);
    let mut poses = vec![start];
    let mut steps = Vec::with_capacity(actions.len());
    let mut pose = start;
    for &a in actions {
        let s0 = poses.len() - 1;
        for k in 1..=n {
            let t = k as f32 / n as f32;
            let eased = t * t * (3.0 - 2.0 * t);
            poses.push(motion.apply(&pose, a, eased));
        }
        pose = motion.apply(&pose, a, 1.0);
        if let Some(last) = poses.last_mut() {
            *last = pose;
        }
        steps.push(ActionStep {
            action: a,
            start_frame: s0,
            end_frame: poses.len() - 1,
        });
    }
    Trajectory {
        steps,
        poses,
        goal,
        planned,
        motion: *motion,
    }
}

fn start_pose(scene: &Scene, motion: &Motion, rng: &mut ChaCha8Rng) -> CameraPose {
    let (lo, hi) = (scene.bounds_min, scene.bounds_max);
    for _ in 0..500 {
        let (pos, pitch) = match scene.kind {
            SceneKind::City => {
                // Above a road, below most rooftops.
                let x = lo.x + (hi.x - lo.x) * rng.random::<f32>();
                let y = lo.y + (hi.y - lo.y) * rng.random::<f32>();
                let z = 12.0 + 25.0 * rng.random::<f32>();
                (V3::new(x, y, z), -15.0)
            }
            SceneKind::Indoor => {
                let x = lo.x + 0.5 + (hi.x - lo.x - 1.0) * rng.random::<f32>();
                let y = lo.y + 0.5 + (hi.y - lo.y - 1.0) * rng.random::<f32>();
                (V3::new(x, y, 1.25), -10.0)
            }
        };
        if !scene.collides(pos, motion.clearance_m * 2.0) {
            let yaw = match scene.kind {
                SceneKind::City => rad(15.0 * rng.random_range(0..24u32) as f32),
                // Face into the room, as someone starting a recording does.
                SceneKind::Indoor => {
                    let c = (lo + hi) * 0.5 - pos;
                    atan2(c.y, c.x) + rad(rng.random_range(0..5u32) as f32 * 15.0 - 30.0)
                }
            };
            return CameraPose {
                position: pos,
                yaw,
                pitch: rad(pitch),
            };
        }
    }
    // A generated scene always has free space near its centre at this height.
    CameraPose {
        position: V3::new((lo.x + hi.x) / 2.0, (lo.y + hi.y) / 2.0, hi.z.min(60.0)),
        yaw: 0.0,
        pitch: 0.0,
    }
}

/// Whether the horizontal line of sight ahead of `p` is free for `dist` metres.
fn clear_ahead(scene: &Scene, p: &CameraPose, dist: f32, margin: f32) -> bool {
    let fwd = V3::new(cos(p.yaw), sin(p.yaw), 0.0);
    (1..=8).all(|k| !scene.collides(p.position + fwd * (dist * k as f32 / 8.0), margin))
}

fn explore(
    scene: &Scene,
    motion: &Motion,
    p: &CameraPose,
    scan_left: bool,
    rng: &mut ChaCha8Rng,
) -> Action {
    let (scan, other) = if scan_left {
        (Action::RotateLeft, Action::RotateRight)
    } else {
        (Action::RotateRight, Action::RotateLeft)
    };
    let table: &[(Action, f32)] = match scene.kind {
        SceneKind::City => &[
            (Action::MoveForward, 0.3),
            (Action::RotateLeft, 0.15),
            (Action::RotateRight, 0.15),
            (Action::MoveUpward, 0.1),
            (Action::MoveDownward, 0.05),
            (Action::MoveLeft, 0.07),
            (Action::MoveRight, 0.07),
            (Action::TiltDownward, 0.05),
            (Action::TiltUpward, 0.03),
            (Action::MoveBackward, 0.03),
        ],
        SceneKind::Indoor => &[
            (Action::MoveForward, 0.32),
            (scan, 0.32),
            (other, 0.08),
            (Action::MoveLeft, 0.07),
            (Action::MoveRight, 0.07),
            (Action::MoveBackward, 0.04),
            (Action::TiltDownward, 0.05),
            (Action::TiltUpward, 0.05),
        ],
    };
    // Indoors, turn away from a wall close ahead instead of staring at it.
    if scene.kind == SceneKind::Indoor && !clear_ahead(scene, p, 1.4, motion.clearance_m) {
        return scan;
    }
    for _ in 0..20 {
        let mut x = rng.random::<f32>();
        let mut pick = table[0].0;
        for &(a, w) in table {
            if x < w {
                pick = a;
                break;
            }
            x -= w;
        }
        if motion.allowed(scene, p, pick) {
            return pick;
        }
    }
    if rng.random::<bool>() {
        Action::RotateLeft
    } else {
        Action::RotateRight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trajectories_are_seeded_collision_free_and_smooth() {
        for kind in [SceneKind::City, SceneKind::Indoor] {
            for i in 0..6 {
                let scene = Scene::generate(kind, 9, i);
                let t = plan(&scene, 3, 10, 4);
                assert_eq!(t, plan(&scene, 3, 10, 4));
                assert_eq!(t.poses.len(), 1 + 10 * 4);
                assert_eq!(t.steps.len(), 10);
                let m = Motion::for_kind(kind);
                for p in &t.poses {
                    assert!(
                        !scene.collides(p.position, m.clearance_m * 0.5),
                        "{} {:?}",
                        scene.name,
                        p
                    );
                }
                for w in t.poses.windows(2) {
                    let dp = (w[1].position - w[0].position).norm();
                    assert!(dp <= m.step_m.max(m.climb_m) * 0.8 + 1e-3, "jump {dp}");
                    assert!((w[1].yaw - w[0].yaw).abs() <= rad(m.turn_deg) * 0.8);
                }
                if kind == SceneKind::City {
                    assert!(t.goal.is_some());
                }
            }
        }
    }

    #[test]
    fn motion_is_egocentric() {
        let m = Motion::for_kind(SceneKind::Indoor);
        let p = CameraPose {
            position: V3::new(1.0, 1.0, 1.2),
            yaw: rad(90.0),
            pitch: 0.0,
        };
        let q = m.apply(&p, Action::MoveLeft, 1.0);
        assert!((q.position.x - (1.0 - 0.6)).abs() < 1e-5);
        let q = m.apply(&p, Action::RotateRight, 1.0);
        assert!((deg(q.yaw) - 60.0).abs() < 1e-4);
        let (b, _, _) = relative(&p, V3::new(0.0, 1.0, 1.2));
        assert!(
            (b - 90.0).abs() < 1e-4,
            "west of a north-facing camera is to its left"
        );
    }
}
