//! Questions with exact answers, computed from the scene geometry and the trajectory — never from
//! the position of an option in a template.
//!
//! Categories follow the paper's benchmarks: UrbanVideo-Bench's Landmark Position,
//! Counterfactual, Progress Evaluation and Action Generation for drone flights; VSI-Bench's
//! object_rel_distance, object_rel_direction (easy/medium/hard), route_planning and
//! obj_appearance_order for rooms; and VSI-Bench's numeric object_counting, object_abs_distance
//! and room_size, scored by mean relative accuracy (`embodied_r_reasoner::reward`).

use crate::math::{V3, atan2, deg, wrap_deg};
use crate::render::CameraPose;
use crate::scene::{Scene, SceneKind, SimObject};
use crate::trajectory::{Motion, Trajectory, controller, relative};
use crate::truth::{FrameTruth, seen};
use embodied_r_perception::Action;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The eight categories of the paper and VSI-Bench's three numeric ones.
pub const CATEGORIES: [&str; 11] = [
    "Landmark Position",
    "Counterfactual",
    "Progress Evaluation",
    "Action Generation",
    "object_rel_distance",
    "object_rel_direction",
    "route_planning",
    "obj_appearance_order",
    "object_counting",
    "object_abs_distance",
    "room_size",
];

/// The eight egocentric sectors used by Landmark Position, counter-clockwise from ahead.
pub const SECTORS: [&str; 8] = [
    "ahead",
    "ahead-left",
    "left",
    "behind-left",
    "behind",
    "behind-right",
    "right",
    "ahead-right",
];

/// What a question's answer is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Params {
    /// Direction of a landmark from the final pose.
    LandmarkPosition {
        /// Landmark name.
        landmark: String,
    },
    /// Which candidate would be closest to straight ahead had the last action been `alternative`.
    Counterfactual {
        /// The action taken instead of the last one.
        alternative: Action,
        /// Candidate object names (the options).
        candidates: Vec<String>,
    },
    /// How many steps of a route description have been completed.
    ProgressEvaluation {
        /// Goal name.
        goal: String,
        /// The route, one entry per step (executed steps first, then the planned rest).
        route: Vec<RouteStep>,
        /// Steps the video shows as done.
        completed: usize,
    },
    /// The next action toward a goal.
    ActionGeneration {
        /// Goal name.
        goal: String,
    },
    /// Which candidate's centre is closest to the target's centre.
    RelDistance {
        /// Target name.
        target: String,
        /// Candidate names.
        candidates: Vec<String>,
    },
    /// Where `target` is for someone standing at `stand` facing `face` (top view).
    RelDirection {
        /// easy, medium or hard.
        difficulty: String,
        /// Standing by.
        stand: String,
        /// Facing.
        face: String,
        /// Asked about.
        target: String,
    },
    /// The turns of a route start → face → via → goal.
    RoutePlanning {
        /// Start object.
        start: String,
        /// Initially faced object (first waypoint).
        face: String,
        /// Second waypoint.
        via: String,
        /// Destination.
        goal: String,
    },
    /// Order of first appearance in the video.
    AppearanceOrder {
        /// Object names, in the order the question lists them.
        objects: Vec<String>,
    },
    /// Objects of a category seen in the video.
    Count {
        /// Category.
        category: String,
    },
    /// Distance between two objects' centres.
    AbsDistance {
        /// First object.
        a: String,
        /// Second object.
        b: String,
    },
    /// Floor area of the room.
    RoomSize,
}

/// One step of a route: an action repeated `repeats` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteStep {
    /// The action.
    pub action: Action,
    /// How many times in a row.
    pub repeats: u32,
}

/// A generated question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Unique id within the benchmark.
    pub question_id: u64,
    /// Video it is about.
    pub video_id: String,
    /// Scene of the video.
    pub scene_name: String,
    /// Category (see [`CATEGORIES`]).
    pub category: String,
    /// The question without its options.
    pub stem: String,
    /// Options without letters; empty for numeric questions.
    pub choices: Vec<String>,
    /// The answer: a letter for multiple choice, a number for numeric questions.
    pub answer: String,
    /// What the answer was computed from.
    pub params: Params,
}

impl Question {
    /// The Embodied-R `question` field: "Question: …\nChoices:\nA. …\nB. …".
    pub fn embodied_r_text(&self) -> String {
        let mut s = format!("Question: {}", self.stem);
        if !self.choices.is_empty() {
            s.push_str("\nChoices:");
            for (i, c) in self.choices.iter().enumerate() {
                s.push_str(&format!("\n{}. {c}", letter(i)));
            }
        }
        s
    }

    /// Whether the answer is numeric (scored by mean relative accuracy).
    pub fn is_numeric(&self) -> bool {
        self.choices.is_empty()
    }
}

/// Option letter for an index (0 → 'A').
pub fn letter(i: usize) -> char {
    (b'A' + i as u8) as char
}

/// Places the correct option so that letters stay balanced across a benchmark.
#[derive(Debug, Default, Clone)]
pub struct LetterBalancer {
    counts: BTreeMap<usize, Vec<u64>>,
}

impl LetterBalancer {
    /// Returns the options in order and the index of the correct one.
    pub fn place(
        &mut self,
        rng: &mut ChaCha8Rng,
        correct: String,
        mut distractors: Vec<String>,
    ) -> (Vec<String>, usize) {
        shuffle(rng, &mut distractors);
        let n = distractors.len() + 1;
        let counts = self.counts.entry(n).or_insert_with(|| vec![0; n]);
        let min = counts.iter().copied().min().unwrap_or(0);
        let least: Vec<usize> = (0..n).filter(|&i| counts[i] == min).collect();
        let pos = least[rng.random_range(0..least.len() as u32) as usize];
        counts[pos] += 1;
        distractors.insert(pos, correct);
        (distractors, pos)
    }

    /// How often each letter was correct, per number of options.
    pub fn counts(&self) -> &BTreeMap<usize, Vec<u64>> {
        &self.counts
    }
}

fn shuffle<T>(rng: &mut ChaCha8Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i as u32) as usize;
        v.swap(i, j);
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, v: &'a [T]) -> Option<&'a T> {
    (!v.is_empty()).then(|| &v[rng.random_range(0..v.len() as u32) as usize])
}

/// Draw `k` distinct elements.
fn sample<T: Clone>(rng: &mut ChaCha8Rng, v: &[T], k: usize) -> Vec<T> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    shuffle(rng, &mut idx);
    idx.into_iter().take(k).map(|i| v[i].clone()).collect()
}

/// A question before its letters are placed.
struct Draft {
    category: &'static str,
    stem: String,
    /// Correct option text, or the numeric answer.
    correct: String,
    /// Wrong options (empty for numeric).
    distractors: Vec<String>,
    params: Params,
}

/// Everything a generator may look at.
pub struct Context<'a> {
    /// The scene.
    pub scene: &'a Scene,
    /// The trajectory.
    pub trajectory: &'a Trajectory,
    /// Per-frame truth.
    pub frames: &'a [FrameTruth],
    /// Pixels per frame.
    pub frame_pixels: u32,
}

impl Context<'_> {
    fn final_pose(&self) -> &CameraPose {
        &self.frames[self.frames.len() - 1].camera
    }

    /// First frame where each object is seen, by id.
    pub fn first_seen(&self) -> BTreeMap<u16, usize> {
        let mut out = BTreeMap::new();
        for f in self.frames {
            for v in &f.visible {
                if seen(v, self.frame_pixels) {
                    out.entry(v.id).or_insert(f.index);
                }
            }
        }
        out
    }

    fn seen_objects(&self) -> Vec<&SimObject> {
        let first = self.first_seen();
        self.scene
            .askable()
            .filter(|o| first.contains_key(&o.id))
            .collect()
    }
}

/// Generates the questions for one video, placing letters with `balancer`.
/// `question_id`s are assigned from `next_id`.
pub fn generate(
    ctx: &Context<'_>,
    video_id: &str,
    rng: &mut ChaCha8Rng,
    balancer: &mut LetterBalancer,
    next_id: &mut u64,
) -> Vec<Question> {
    type Gen = fn(&Context<'_>, &mut ChaCha8Rng) -> Option<Draft>;
    let gens: &[Gen] = match ctx.scene.kind {
        SceneKind::City => &[
            landmark_position,
            landmark_position,
            counterfactual,
            progress_evaluation,
            action_generation,
        ],
        SceneKind::Indoor => &[
            rel_distance,
            rel_direction,
            rel_direction,
            route_planning,
            appearance_order,
            object_counting,
            abs_distance,
            room_size,
        ],
    };
    let mut out: Vec<Question> = Vec::new();
    for g in gens {
        for _attempt in 0..40 {
            let Some(d) = g(ctx, rng) else { continue };
            // No two questions of a video with the same stem.
            if out.iter().any(|q| q.stem == d.stem) {
                continue;
            }
            let (choices, answer) = if d.distractors.is_empty() {
                (Vec::new(), d.correct)
            } else {
                let (choices, pos) = balancer.place(rng, d.correct, d.distractors);
                (choices, letter(pos).to_string())
            };
            out.push(Question {
                question_id: *next_id,
                video_id: video_id.to_string(),
                scene_name: ctx.scene.name.clone(),
                category: d.category.to_string(),
                stem: d.stem,
                choices,
                answer,
                params: d.params,
            });
            *next_id += 1;
            break;
        }
    }
    out
}

/// Sector index (0..8, see [`SECTORS`]) of a bearing, or `None` within `margin` degrees of a
/// boundary.
pub fn sector(bearing_deg: f32, margin: f32) -> Option<usize> {
    let b = wrap_deg(bearing_deg);
    let k = (b / 45.0).round();
    let off = (b - k * 45.0).abs();
    if off > 22.5 - margin {
        return None;
    }
    Some(((k as i32).rem_euclid(8)) as usize)
}

fn landmark_position(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let landmarks: Vec<&SimObject> = ctx.scene.objects.iter().filter(|o| o.landmark).collect();
    let l = *pick(rng, &landmarks)?;
    let (bearing, dist, _) = relative(ctx.final_pose(), l.center);
    if dist < l.size.x.max(l.size.y) {
        return None; // directly above or inside its footprint: no clear direction
    }
    let s = sector(bearing, 6.0)?;
    let others: Vec<String> = (0..8)
        .filter(|&k| k != s)
        .map(|k| SECTORS[k].to_string())
        .collect();
    let n = rng.random_range(3..=4u32) as usize;
    let stems = [
        format!(
            "At the end of the video, in which direction is the {} relative to you?",
            l.name
        ),
        format!(
            "From your current position and heading, where is the {}?",
            l.name
        ),
        format!(
            "Relative to the way you are facing now, where is the {} located?",
            l.name
        ),
    ];
    Some(Draft {
        category: "Landmark Position",
        stem: pick(rng, &stems)?.clone(),
        correct: SECTORS[s].to_string(),
        distractors: sample(rng, &others, n - 1),
        params: Params::LandmarkPosition {
            landmark: l.name.clone(),
        },
    })
}

/// The candidate most nearly straight ahead of `pose` (smallest |bearing|, within 45°), when it
/// leads the runner-up by at least 10°.
pub fn most_ahead(pose: &CameraPose, candidates: &[&SimObject]) -> Option<usize> {
    let mut scored: Vec<(f32, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, o)| (relative(pose, o.center).0.abs(), i))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let best = scored.first()?;
    let second = scored.get(1).map_or(f32::MAX, |s| s.0);
    (best.0 <= 45.0 && second - best.0 >= 10.0).then_some(best.1)
}

fn counterfactual(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let last = ctx.trajectory.steps.last()?;
    let before = ctx.frames[last.start_frame].camera;
    let alts: Vec<Action> = [
        Action::RotateLeft,
        Action::RotateRight,
        Action::MoveLeft,
        Action::MoveRight,
    ]
    .into_iter()
    .filter(|&a| a != last.action)
    .collect();
    let alt = *pick(rng, &alts)?;
    let motion: &Motion = &ctx.trajectory.motion;
    let alt_pose = motion.apply(&before, alt, 1.0);
    let pool: Vec<&SimObject> = ctx
        .scene
        .askable()
        .filter(|o| o.landmark || o.category == "car" || o.category == "truck")
        .filter(|o| relative(&alt_pose, o.center).1 > o.size.x.max(o.size.y))
        .collect();
    let n = rng.random_range(3..=4u32) as usize;
    let cands = sample(rng, &pool, n);
    if cands.len() < 3 {
        return None;
    }
    let best = most_ahead(&alt_pose, &cands)?;
    let stems = [
        format!(
            "Suppose that at the last step you had chosen to {} instead of {}. Which of these would then be most nearly straight ahead of you?",
            alt.phrase(),
            last.action.phrase()
        ),
        format!(
            "If your last action had been '{}' rather than '{}', which of the following would be closest to directly in front of you?",
            alt.phrase(),
            last.action.phrase()
        ),
    ];
    Some(Draft {
        category: "Counterfactual",
        stem: pick(rng, &stems)?.clone(),
        correct: cands[best].name.clone(),
        distractors: cands
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, o)| o.name.clone())
            .collect(),
        params: Params::Counterfactual {
            alternative: alt,
            candidates: cands.iter().map(|o| o.name.clone()).collect(),
        },
    })
}

/// Consecutive identical actions merged into route steps.
pub fn route_steps(actions: &[Action]) -> Vec<RouteStep> {
    let mut out: Vec<RouteStep> = Vec::new();
    for &a in actions {
        match out.last_mut() {
            Some(s) if s.action == a => s.repeats += 1,
            _ => out.push(RouteStep {
                action: a,
                repeats: 1,
            }),
        }
    }
    out
}

/// How a route step reads in an instruction.
pub fn describe_step(s: &RouteStep, m: &Motion) -> String {
    let r = s.repeats as f32;
    match s.action {
        Action::MoveForward | Action::MoveBackward | Action::MoveLeft | Action::MoveRight => {
            format!("{} about {:.0} m", s.action.phrase(), m.step_m * r)
        }
        Action::MoveUpward | Action::MoveDownward => {
            format!("{} about {:.0} m", s.action.phrase(), m.climb_m * r)
        }
        Action::RotateLeft | Action::RotateRight => {
            format!("{} {:.0} degrees", s.action.phrase(), m.turn_deg * r)
        }
        Action::TiltUpward | Action::TiltDownward => format!("{} the camera", s.action.phrase()),
    }
}

fn progress_evaluation(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let goal = ctx.scene.object(ctx.trajectory.goal?)?;
    let executed: Vec<Action> = ctx.trajectory.steps.iter().map(|s| s.action).collect();
    let done = route_steps(&executed);
    let rest = route_steps(&ctx.trajectory.planned);
    // The planned rest continues the route; merge when it repeats the last executed action so
    // that the step boundary stays visible.
    if let (Some(a), Some(b)) = (done.last(), rest.first())
        && a.action == b.action
    {
        return None;
    }
    let mut route = done.clone();
    route.extend(rest);
    let completed = done.len();
    if route.len() < 3 || completed == 0 || route.len() > 9 {
        return None;
    }
    let m = &ctx.trajectory.motion;
    let listing: Vec<String> = route
        .iter()
        .enumerate()
        .map(|(i, s)| format!("({}) {}", i + 1, describe_step(s, m)))
        .collect();
    let option = |k: usize| {
        if k == route.len() {
            format!("all {k} steps; the route is finished")
        } else {
            format!("step {k}; next is step {}", k + 1)
        }
    };
    let others: Vec<String> = (1..=route.len())
        .filter(|&k| k != completed)
        .map(option)
        .collect();
    let n = rng.random_range(3..=4u32).min(route.len() as u32) as usize;
    let stems = [
        format!(
            "You are flying to the {}. Your route is: {}. Which step of the route have you just completed?",
            goal.name,
            listing.join(", ")
        ),
        format!(
            "Navigation instruction toward the {}: {}. Up to which step have you carried out the instruction?",
            goal.name,
            listing.join("; ")
        ),
    ];
    Some(Draft {
        category: "Progress Evaluation",
        stem: pick(rng, &stems)?.clone(),
        correct: option(completed),
        distractors: sample(rng, &others, n - 1),
        params: Params::ProgressEvaluation {
            goal: goal.name.clone(),
            route,
            completed,
        },
    })
}

fn action_generation(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let goal = ctx.scene.object(ctx.trajectory.goal?)?;
    let pose = ctx.final_pose();
    let m = &ctx.trajectory.motion;
    // Stay away from the controller's decision boundaries.
    let (bearing, dist, _) = relative(pose, goal.center);
    if (bearing.abs() - 20.0).abs() < 5.0 {
        return None;
    }
    let want = crate::trajectory::goal_altitude(goal);
    let dz = pose.position.z - want;
    if (dz + m.climb_m * 0.75).abs() < 1.0 || (dz - m.climb_m * 1.5).abs() < 1.0 {
        return None;
    }
    let reach = goal.size.x.max(goal.size.y) / 2.0 + 15.0;
    if (dist - reach).abs() < 3.0 || (dist - 80.0).abs() < 3.0 {
        return None;
    }
    let action = controller(m, ctx.scene, pose, goal)?;
    let pool: Vec<String> = [
        Action::MoveForward,
        Action::RotateLeft,
        Action::RotateRight,
        Action::MoveUpward,
        Action::MoveDownward,
        Action::MoveBackward,
    ]
    .into_iter()
    .filter(|&a| a != action)
    .map(|a| a.phrase().to_string())
    .collect();
    let n = rng.random_range(3..=5u32) as usize;
    let stems = [
        format!(
            "Your destination is the {}. What should you do next?",
            goal.name
        ),
        format!(
            "You are navigating to the {}. Which action brings you closer to it now?",
            goal.name
        ),
    ];
    Some(Draft {
        category: "Action Generation",
        stem: pick(rng, &stems)?.clone(),
        correct: action.phrase().to_string(),
        distractors: sample(rng, &pool, n - 1),
        params: Params::ActionGeneration {
            goal: goal.name.clone(),
        },
    })
}

fn center_distance(a: &SimObject, b: &SimObject) -> f32 {
    (a.center - b.center).norm()
}

fn rel_distance(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let objs = ctx.seen_objects();
    if objs.len() < 4 {
        return None;
    }
    let target = *pick(rng, &objs)?;
    let others: Vec<&SimObject> = objs.iter().copied().filter(|o| o.id != target.id).collect();
    let n = rng.random_range(3..=4u32) as usize;
    let cands = sample(rng, &others, n);
    let mut d: Vec<(f32, usize)> = cands
        .iter()
        .enumerate()
        .map(|(i, o)| (center_distance(o, target), i))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    if d.len() < 2 || d[1].0 - d[0].0 < 0.3 {
        return None;
    }
    let best = d[0].1;
    let names: Vec<String> = cands.iter().map(|o| o.name.clone()).collect();
    let list = names.join(", ");
    let t = &target.name;
    let stems = [
        format!(
            "Measuring from the centre of each object, which of these objects ({list}) is the closest to the {t}?"
        ),
        format!("Centre to centre, which of the following is nearest to the {t}: {list}?"),
    ];
    let stem = pick(rng, &stems)?.clone();
    Some(Draft {
        category: "object_rel_distance",
        stem,
        correct: names[best].clone(),
        distractors: names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, s)| s.clone())
            .collect(),
        params: Params::RelDistance {
            target: target.name.clone(),
            candidates: names,
        },
    })
}

/// Angle (degrees, positive left) of `target` for someone at `stand` facing `face`, top view.
pub fn turn_angle(stand: V3, face: V3, target: V3) -> f32 {
    let h = face - stand;
    let t = target - stand;
    wrap_deg(deg(atan2(t.y, t.x)) - deg(atan2(h.y, h.x)))
}

/// The answer option of a relative-direction question, or `None` near a boundary.
pub fn direction_answer(difficulty: &str, angle: f32) -> Option<&'static str> {
    let a = angle;
    match difficulty {
        "easy" => {
            if a.abs() < 15.0 || a.abs() > 165.0 {
                None
            } else if a > 0.0 {
                Some("left")
            } else {
                Some("right")
            }
        }
        "medium" => {
            if a.abs() > 145.0 {
                Some("back")
            } else if a > 20.0 && a < 125.0 {
                Some("left")
            } else if a < -20.0 && a > -125.0 {
                Some("right")
            } else {
                None
            }
        }
        _ => {
            let near = |x: f32| (a - x).abs() < 10.0;
            if near(0.0) || near(90.0) || near(-90.0) || a.abs() > 170.0 {
                None
            } else if a > 0.0 && a < 90.0 {
                Some("front-left")
            } else if a >= 90.0 {
                Some("back-left")
            } else if a < 0.0 && a > -90.0 {
                Some("front-right")
            } else {
                Some("back-right")
            }
        }
    }
}

fn rel_direction(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let objs = ctx.seen_objects();
    if objs.len() < 3 {
        return None;
    }
    let three = sample(rng, &objs, 3);
    let (a, b, c) = (three[0], three[1], three[2]);
    if center_distance(a, b) < 0.8 || center_distance(a, c) < 0.5 {
        return None;
    }
    let difficulty = *pick(rng, &["easy", "medium", "hard"])?;
    let angle = turn_angle(a.center, b.center, c.center);
    let answer = direction_answer(difficulty, angle)?;
    let (options, tail): (&[&str], &str) = match difficulty {
        "easy" => (&["left", "right"], "to my left or to my right"),
        "medium" => (&["left", "right", "back"], "to my left, right, or back"),
        _ => (
            &["front-left", "front-right", "back-left", "back-right"],
            "to my front-left, front-right, back-left, or back-right",
        ),
    };
    let stems = [
        format!(
            "If I am standing by the {} and facing the {}, is the {} {tail}?",
            a.name, b.name, c.name
        ),
        format!(
            "Imagine standing next to the {} while looking toward the {}. Is the {} {tail}?",
            a.name, b.name, c.name
        ),
    ];
    let mut stem = pick(rng, &stems)?.clone();
    if difficulty == "hard" {
        stem.push_str(" The directions refer to the quadrants of a Cartesian plane (I am standing at the origin and facing along the positive y-axis).");
    }
    Some(Draft {
        category: "object_rel_direction",
        stem,
        correct: answer.to_string(),
        distractors: options
            .iter()
            .filter(|o| **o != answer)
            .map(|s| s.to_string())
            .collect(),
        params: Params::RelDirection {
            difficulty: difficulty.to_string(),
            stand: a.name.clone(),
            face: b.name.clone(),
            target: c.name.clone(),
        },
    })
}

/// The turn at a waypoint: "turn left/right/back", or `None` when going (nearly) straight or near
/// a boundary.
pub fn turn_word(angle: f32) -> Option<&'static str> {
    let a = angle.abs();
    if a < 42.0 || (a > 138.0 && a < 162.0) {
        None
    } else if a >= 162.0 {
        Some("turn back")
    } else if angle > 0.0 {
        Some("turn left")
    } else {
        Some("turn right")
    }
}

fn route_planning(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let objs = ctx.seen_objects();
    if objs.len() < 4 {
        return None;
    }
    let four = sample(rng, &objs, 4);
    let (s, f, v, g) = (four[0], four[1], four[2], four[3]);
    if center_distance(s, f) < 0.8 || center_distance(f, v) < 0.8 || center_distance(v, g) < 0.8 {
        return None;
    }
    let t1 = turn_word(turn_angle(
        f.center,
        f.center + (f.center - s.center),
        v.center,
    ))?;
    let t2 = turn_word(turn_angle(
        v.center,
        v.center + (v.center - f.center),
        g.center,
    ))?;
    let correct = format!("{}, {}", cap(t1), cap(t2));
    let words = ["turn left", "turn right", "turn back"];
    let mut all = Vec::new();
    for x in words {
        for y in words {
            let o = format!("{}, {}", cap(x), cap(y));
            if o != correct {
                all.push(o);
            }
        }
    }
    let stem = format!(
        "You are a robot beginning at the {s} and facing the {f}. You want to navigate to the {g}. You will perform the following actions (Note: for each [please fill in], choose either 'turn back,' 'turn left,' or 'turn right.'): 1. Go forward until the {f} 2. [please fill in] 3. Go forward until the {v} 4. [please fill in] 5. Go forward until the {g}. You have reached the final destination.",
        s = s.name,
        f = f.name,
        v = v.name,
        g = g.name
    );
    Some(Draft {
        category: "route_planning",
        stem,
        correct,
        distractors: sample(rng, &all, 3),
        params: Params::RoutePlanning {
            start: s.name.clone(),
            face: f.name.clone(),
            via: v.name.clone(),
            goal: g.name.clone(),
        },
    })
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn appearance_order(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let first = ctx.first_seen();
    let objs = ctx.seen_objects();
    let k = rng.random_range(3..=4u32) as usize;
    let chosen = sample(rng, &objs, k);
    if chosen.len() < 3 {
        return None;
    }
    let mut order: Vec<(usize, &SimObject)> = chosen.iter().map(|o| (first[&o.id], *o)).collect();
    order.sort_by_key(|(f, _)| *f);
    if order.windows(2).any(|w| w[1].0 < w[0].0 + 2) {
        return None; // too close to call
    }
    let names: Vec<String> = order.iter().map(|(_, o)| o.name.clone()).collect();
    let correct = names.join(", ");
    let mut distractors = Vec::new();
    for _ in 0..30 {
        if distractors.len() == 3 {
            break;
        }
        let mut p = names.clone();
        shuffle(rng, &mut p);
        let s = p.join(", ");
        if s != correct && !distractors.contains(&s) {
            distractors.push(s);
        }
    }
    if distractors.len() < 3 {
        return None;
    }
    let listed: Vec<String> = chosen.iter().map(|o| o.name.clone()).collect();
    let list = listed.join(", ");
    let stems = [
        format!(
            "What will be the first-time appearance order of the following objects in the video: {list}?"
        ),
        format!("In which order do these objects first come into view in the video: {list}?"),
    ];
    let stem = pick(rng, &stems)?.clone();
    Some(Draft {
        category: "obj_appearance_order",
        stem,
        correct,
        distractors,
        params: Params::AppearanceOrder { objects: listed },
    })
}

fn object_counting(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let objs = ctx.seen_objects();
    let mut cats: Vec<&str> = objs.iter().map(|o| o.category.as_str()).collect();
    cats.sort_unstable();
    cats.dedup();
    // Prefer categories with several instances.
    let multi: Vec<&str> = cats
        .iter()
        .copied()
        .filter(|c| objs.iter().filter(|o| o.category == *c).count() > 1)
        .collect();
    let cat = if !multi.is_empty() && rng.random::<f32>() < 0.8 {
        *pick(rng, &multi)?
    } else {
        *pick(rng, &cats)?
    };
    let n = objs.iter().filter(|o| o.category == cat).count();
    Some(Draft {
        category: "object_counting",
        stem: pick(
            rng,
            &[
                format!("How many {cat}(s) appear in the video?"),
                format!("Counting every one you have seen, how many {cat}(s) are there?"),
            ],
        )?
        .clone(),
        correct: n.to_string(),
        distractors: Vec::new(),
        params: Params::Count {
            category: cat.to_string(),
        },
    })
}

fn abs_distance(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let objs = ctx.seen_objects();
    let two = sample(rng, &objs, 2);
    if two.len() < 2 {
        return None;
    }
    let d = center_distance(two[0], two[1]);
    Some(Draft {
        category: "object_abs_distance",
        stem: pick(
            rng,
            &[
                format!(
                    "Measuring from the centre of each object, what is the direct distance between the {} and the {} (in meters)?",
                    two[0].name, two[1].name
                ),
                format!(
                    "How far apart are the centres of the {} and the {}, in meters?",
                    two[0].name, two[1].name
                ),
            ],
        )?
        .clone(),
        correct: format!("{d:.2}"),
        distractors: Vec::new(),
        params: Params::AbsDistance {
            a: two[0].name.clone(),
            b: two[1].name.clone(),
        },
    })
}

fn room_size(ctx: &Context<'_>, rng: &mut ChaCha8Rng) -> Option<Draft> {
    let area = ctx.scene.floor_area?;
    let stems = [
        "What is the size of this room (in square meters)?",
        "What is the floor area of this room, in square meters?",
    ];
    Some(Draft {
        category: "room_size",
        stem: pick(rng, &stems)?.to_string(),
        correct: format!("{area:.2}"),
        distractors: Vec::new(),
        params: Params::RoomSize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn letters_balance() {
        let mut b = LetterBalancer::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut hist = [0u32; 4];
        for i in 0..400 {
            let (opts, pos) = b.place(
                &mut rng,
                format!("c{i}"),
                vec!["x".into(), "y".into(), "z".into()],
            );
            assert_eq!(opts[pos], format!("c{i}"));
            hist[pos] += 1;
        }
        assert_eq!(hist, [100; 4]);
    }

    #[test]
    fn sectors_and_turns() {
        assert_eq!(sector(0.0, 6.0), Some(0));
        assert_eq!(sector(44.0, 6.0), Some(1));
        assert_eq!(sector(-90.0, 6.0), Some(6));
        assert_eq!(sector(179.0, 6.0), Some(4));
        assert_eq!(sector(20.0, 6.0), None);
        assert_eq!(turn_word(90.0), Some("turn left"));
        assert_eq!(turn_word(-100.0), Some("turn right"));
        assert_eq!(turn_word(175.0), Some("turn back"));
        assert_eq!(turn_word(10.0), None);
        let a = turn_angle(
            V3::new(0.0, 0.0, 0.0),
            V3::new(1.0, 0.0, 0.0),
            V3::new(0.0, 1.0, 0.0),
        );
        assert!((a - 90.0).abs() < 1e-4);
        assert_eq!(direction_answer("hard", 135.0), Some("back-left"));
        assert_eq!(direction_answer("medium", 160.0), Some("back"));
    }
}
