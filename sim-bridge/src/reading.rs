//! Reading the simulator describer's video text back, and answering from it by rules.
//!
//! [`VideoText::parse`] turns the text the LM sees (spec §2.6 layout, written by
//! [`crate::describer`]) into sightings: which object, in which egocentric direction, how far, in
//! which key frame, after which action. [`answer`] then answers a question of each category from
//! those sightings alone — never from the scene or the trajectory — and says why in a short think
//! text built only from facts the video text states. Its accuracy per category is what a
//! text-only reasoner can reach with this describer (`embodied-r eval --answerer rules`); where
//! it is right, its think text is a training trace (`embodied-r train sft`).
//!
//! What the rules know beyond the text is the robot's motion model (a rotation turns 30°, a
//! step is 10 m flying or 0.6 m walking, [`crate::trajectory::Motion`]) and that each key frame
//! follows one action: the text names the main action between two key frames, not how many.

use crate::math::{V3, atan2, deg, wrap_deg};
use crate::qa::{SECTORS, turn_angle};
use crate::scene::{SceneKind, palette_names};
use crate::trajectory::Motion;
use embodied_r_perception::Action;

/// One object as a key frame's description states it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// The label as written ("red chair 2", "tallest grey building").
    pub label: String,
    /// The direction words ("ahead-left", "to the right").
    pub direction: String,
    /// `Some("above")`/`Some("below")` when stated.
    pub elevation: Option<String>,
    /// Stated distance, metres.
    pub distance_m: f32,
}

impl Sighting {
    /// The bearing the direction words stand for (degrees, positive left): the middle of the
    /// words' range.
    pub fn bearing_deg(&self) -> f32 {
        direction_bearing(&self.direction).unwrap_or(0.0)
    }

    /// Position in the key frame's camera coordinates (x ahead, y left), metres.
    pub fn local_xy(&self) -> (f32, f32) {
        let b = self.bearing_deg().to_radians();
        (self.distance_m * b.cos(), self.distance_m * b.sin())
    }
}

/// One key frame's description.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameText {
    /// The action that led to this key frame (none for the first).
    pub action: Option<Action>,
    /// Every object described in this key frame (seen, newly visible, or named by the question).
    pub sightings: Vec<Sighting>,
    /// Objects that are described here for the first time, in the order written.
    pub first_mentions: Vec<String>,
    /// Flying altitude, when stated.
    pub altitude_m: Option<f32>,
}

/// The video text, read back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoText {
    /// Key frames in order.
    pub frames: Vec<FrameText>,
    /// Whether the text is of a flight (it states an altitude) rather than a walk.
    pub flying: bool,
}

/// Direction words → the middle of their bearing range (see `truth::direction_words`).
pub fn direction_bearing(words: &str) -> Option<f32> {
    Some(match words.trim() {
        "ahead" => 0.0,
        "ahead-left" => 37.5,
        "to the left" | "left" => 90.0,
        "behind-left" => 150.0,
        "behind" => 180.0,
        "behind-right" => -150.0,
        "to the right" | "right" => -90.0,
        "ahead-right" => -37.5,
        _ => return None,
    })
}

/// Parses one "a {label} {direction}[, above|below], about {d} m away" item.
fn parse_item(item: &str) -> Option<Sighting> {
    let item = item.trim().trim_end_matches('.');
    let body = item
        .strip_prefix("a ")
        .or_else(|| item.strip_prefix("an "))?;
    let (head, tail) = body.rsplit_once(", about ")?;
    let distance_m: f32 = tail.strip_suffix(" m away")?.trim().parse().ok()?;
    let (head, elevation) = match head.rsplit_once(", ") {
        Some((h, e @ ("above" | "below"))) => (h, Some(e.to_string())),
        _ => (head, None),
    };
    // The direction is the last one or three words.
    for dir in [
        "to the left",
        "to the right",
        "ahead-left",
        "ahead-right",
        "behind-left",
        "behind-right",
        "ahead",
        "behind",
    ] {
        if let Some(label) = head.strip_suffix(dir)
            && let Some(label) = label.strip_suffix(' ')
        {
            return Some(Sighting {
                label: label.to_string(),
                direction: dir.to_string(),
                elevation,
                distance_m,
            });
        }
    }
    None
}

fn items(list: &str) -> Vec<Sighting> {
    list.split("; ").filter_map(parse_item).collect()
}

impl VideoText {
    /// Reads the video text out of a user message (between `Video content:` `<` … `>`), or a
    /// bare video text. Lines it cannot read are left out.
    pub fn parse(user: &str) -> Self {
        let text = match (user.find("Video content:"), user.rfind("\n>\nQuestion:")) {
            (Some(a), Some(b)) if a < b => &user[a..b],
            _ => user,
        };
        let mut out = VideoText::default();
        let mut described: Vec<String> = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("Frame ") else {
                continue;
            };
            let Some((_, rest)) = rest.split_once(": ") else {
                continue;
            };
            let (action, view) = match rest.split_once("Observe: ") {
                Some((pre, view)) => {
                    let action = pre
                        .strip_prefix("After ")
                        .and_then(|a| a.trim().trim_end_matches(',').parse::<Action>().ok());
                    (action, view)
                }
                None => (None, rest),
            };
            let mut f = FrameText {
                action,
                ..FrameText::default()
            };
            for sentence in split_sentences(view) {
                let list = sentence
                    .strip_prefix("I see ")
                    .or_else(|| sentence.strip_prefix("Newly visible: "))
                    .or_else(|| sentence.strip_prefix("Objects from the question: "));
                if let Some(list) = list {
                    for s in items(list) {
                        if !described.contains(&s.label) {
                            described.push(s.label.clone());
                            f.first_mentions.push(s.label.clone());
                        }
                        if !f.sightings.iter().any(|x| x.label == s.label) {
                            f.sightings.push(s);
                        }
                    }
                } else if let Some(alt) = sentence
                    .strip_prefix("I am flying about ")
                    .and_then(|s| s.strip_suffix(" m above the ground"))
                {
                    f.altitude_m = alt.trim().parse().ok();
                    out.flying = true;
                }
            }
            out.frames.push(f);
        }
        out
    }

    /// The motion model the text's robot moves by.
    pub fn motion(&self) -> Motion {
        Motion::for_kind(if self.flying {
            SceneKind::City
        } else {
            SceneKind::Indoor
        })
    }

    /// Every label that the text describes and that `text` names (as a whole name, with or
    /// without its colour), longest first.
    pub fn labels_named_in(&self, text: &str) -> Vec<String> {
        let mut labels: Vec<String> = Vec::new();
        for f in &self.frames {
            for s in &f.sightings {
                if !labels.contains(&s.label) && names(text, &s.label) {
                    labels.push(s.label.clone());
                }
            }
        }
        labels.sort_by_key(|l| std::cmp::Reverse(l.len()));
        labels
    }

    /// The label the text uses for an object the question calls `name`.
    pub fn label_for(&self, name: &str) -> Option<String> {
        let name = name.trim();
        self.frames
            .iter()
            .flat_map(|f| &f.sightings)
            .find(|s| s.label == name || strip_color(&s.label) == name)
            .map(|s| s.label.clone())
    }

    /// Dead-reckoned camera poses (x, y, yaw in degrees) of every key frame, the first at the
    /// origin facing +x: one action between consecutive key frames.
    pub fn poses(&self) -> Vec<(f32, f32, f32)> {
        let m = self.motion();
        let mut out = Vec::with_capacity(self.frames.len());
        let (mut x, mut y, mut yaw) = (0.0f32, 0.0f32, 0.0f32);
        for (i, f) in self.frames.iter().enumerate() {
            if i > 0
                && let Some(a) = f.action
            {
                let (c, s) = (yaw.to_radians().cos(), yaw.to_radians().sin());
                let step = m.step_m;
                match a {
                    Action::MoveForward => (x, y) = (x + c * step, y + s * step),
                    Action::MoveBackward => (x, y) = (x - c * step, y - s * step),
                    Action::MoveLeft => (x, y) = (x - s * step, y + c * step),
                    Action::MoveRight => (x, y) = (x + s * step, y - c * step),
                    Action::RotateLeft => yaw += m.turn_deg,
                    Action::RotateRight => yaw -= m.turn_deg,
                    _ => {}
                }
            }
            out.push((x, y, yaw));
        }
        out
    }

    /// The key frame that shows the most of `labels` (the latest of equals), with how many.
    fn best_frame(&self, labels: &[&str]) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for (i, f) in self.frames.iter().enumerate() {
            let n = labels
                .iter()
                .filter(|l| f.sightings.iter().any(|s| s.label == **l))
                .count();
            if n > 0 && best.is_none_or(|(_, m)| n >= m) {
                best = Some((i, n));
            }
        }
        best
    }

    /// Positions (x, y) of `labels` in the camera coordinates of the key frame that shows most
    /// of them; the others are placed from their last sighting through the dead-reckoned poses.
    /// `None` for a label the text never describes.
    pub fn positions(&self, labels: &[&str]) -> (Option<usize>, Vec<Option<(f32, f32)>>) {
        let Some((k, _)) = self.best_frame(labels) else {
            return (None, vec![None; labels.len()]);
        };
        let poses = self.poses();
        let (kx, ky, kyaw) = poses[k];
        let out = labels
            .iter()
            .map(|l| {
                if let Some(s) = self.frames[k].sightings.iter().find(|s| s.label == *l) {
                    return Some(s.local_xy());
                }
                let (j, s) = self.last_sighting(l)?;
                let (jx, jy, jyaw) = poses[j];
                let (lx, ly) = s.local_xy();
                let (c, sn) = (jyaw.to_radians().cos(), jyaw.to_radians().sin());
                let (wx, wy) = (jx + c * lx - sn * ly, jy + sn * lx + c * ly);
                let (dx, dy) = (wx - kx, wy - ky);
                let (c, sn) = (kyaw.to_radians().cos(), kyaw.to_radians().sin());
                Some((c * dx + sn * dy, -sn * dx + c * dy))
            })
            .collect();
        (Some(k), out)
    }

    /// The last key frame that describes `label`, and that description.
    pub fn last_sighting(&self, label: &str) -> Option<(usize, &Sighting)> {
        self.frames.iter().enumerate().rev().find_map(|(i, f)| {
            f.sightings
                .iter()
                .find(|s| s.label == label)
                .map(|s| (i, s))
        })
    }

    /// The key frame where `label` is first described.
    pub fn first_mention(&self, label: &str) -> Option<usize> {
        self.frames
            .iter()
            .position(|f| f.first_mentions.iter().any(|l| l == label))
    }

    /// The actions after key frame `k`, in order.
    pub fn actions_after(&self, k: usize) -> Vec<Action> {
        self.frames
            .iter()
            .skip(k + 1)
            .filter_map(|f| f.action)
            .collect()
    }
}

fn split_sentences(view: &str) -> Vec<&str> {
    // Items end in "m away" and hold commas, so split on ". " followed by a capital letter.
    let mut out = Vec::new();
    let mut start = 0;
    let b = view.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'.'
            && (i + 1 == b.len()
                || (b[i + 1] == b' ' && b.get(i + 2).is_some_and(u8::is_ascii_uppercase)))
        {
            out.push(view[start..i].trim());
            start = (i + 2).min(b.len());
        }
    }
    if start < b.len() && !view[start..].trim().is_empty() {
        out.push(view[start..].trim());
    }
    out
}

fn strip_color(label: &str) -> &str {
    for c in palette_names() {
        if let Some(rest) = label.strip_prefix(c)
            && let Some(rest) = rest.strip_prefix(' ')
        {
            return rest;
        }
    }
    label
}

/// Whether `text` names `label`'s object as a whole name (with or without the colour).
fn names(text: &str, label: &str) -> bool {
    let hay = text.to_lowercase();
    [label, strip_color(label)].iter().any(|n| {
        let n = n.to_lowercase();
        hay.match_indices(&n).any(|(i, _)| {
            let before = hay[..i].chars().next_back();
            let after = hay[i + n.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric)
                && !after.is_some_and(|c| {
                    c.is_alphanumeric() || c == ' ' && digit_follows(&hay[i + n.len()..])
                })
        })
    })
}

/// " 2…" — a number right after a name makes it another object ("chair" vs "chair 2").
fn digit_follows(rest: &str) -> bool {
    rest.trim_start()
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
}

/// A rules answer: the answer (an option letter or a number) and the think text that leads to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAnswer {
    /// Option letter, or a number for numeric questions.
    pub answer: String,
    /// Short reasoning from facts the video text states.
    pub think: String,
    /// Whether the text held what the rule needed (false: a fallback guess).
    pub grounded: bool,
}

impl RuleAnswer {
    /// `<think>…</think><answer>…</answer>`, the completion layout of spec §2.6.
    pub fn completion(&self) -> String {
        format!(
            "<think>{}</think><answer>{}</answer>",
            self.think, self.answer
        )
    }
}

fn letter(i: usize) -> String {
    char::from(b'A' + i as u8).to_string()
}

fn guess(why: &str) -> RuleAnswer {
    RuleAnswer {
        answer: "A".into(),
        think: format!("{why} I cannot tell, so I guess."),
        grounded: false,
    }
}

/// The answer of option `i`; the think ends by naming that option, so the letter the answer
/// gives is a copy of what the think concluded (a small model that reasons to the right option
/// text and then writes another letter learns nothing from a think that stops short of it).
/// The think ends with the options written text first (`red car is A; tower is B.`) and then the
/// pick in the same words (`So tower is B.`): the letter follows an earlier copy of the same
/// text, which a small model copies forward, where finding the letter before an option's text
/// in the prompt is a backward lookup it gets wrong.
fn pick(choices: &[String], i: usize, think: String) -> RuleAnswer {
    let l = letter(i);
    let think = match choices.get(i) {
        Some(c) => {
            let table: Vec<String> = choices
                .iter()
                .enumerate()
                .map(|(j, t)| format!("{t} is {}", letter(j)))
                .collect();
            format!("{think} The options: {}. So {c} is {l}.", table.join("; "))
        }
        None => think,
    };
    RuleAnswer {
        answer: l,
        think,
        grounded: true,
    }
}

/// Answers a question of `category` (see [`crate::qa::CATEGORIES`]) from the video text in
/// `user` (the whole user message) and the question's stem and options.
pub fn answer(category: &str, user: &str, stem: &str, choices: &[String]) -> RuleAnswer {
    let text = VideoText::parse(user);
    match category {
        "Landmark Position" => landmark_position(&text, stem, choices),
        "Counterfactual" => counterfactual(&text, stem, choices),
        "Progress Evaluation" => progress(&text, stem, choices),
        "Action Generation" => action_generation(&text, stem, choices),
        "object_rel_distance" => rel_distance(&text, stem, choices),
        "object_rel_direction" => rel_direction(&text, stem, choices),
        "route_planning" => route_planning(&text, stem, choices),
        "obj_appearance_order" => appearance_order(&text, choices),
        "object_counting" => counting(&text, stem),
        "object_abs_distance" => abs_distance(&text, stem),
        "room_size" => room_size(&text),
        _ if choices.is_empty() => RuleAnswer {
            answer: "0".into(),
            think: "I have no rule for this question.".into(),
            grounded: false,
        },
        _ => guess("I have no rule for this question."),
    }
}

/// How a rotation moves a bearing: rotating left turns the view left, so what was ahead is
/// now to the right.
fn after_actions(text: &VideoText, bearing: f32, actions: &[Action]) -> f32 {
    let turn = text.motion().turn_deg;
    let mut b = bearing;
    for a in actions {
        match a {
            Action::RotateLeft => b -= turn,
            Action::RotateRight => b += turn,
            _ => {}
        }
    }
    wrap_deg(b)
}

fn sector_word(bearing: f32) -> &'static str {
    let k = (wrap_deg(bearing) / 45.0).round() as i32;
    SECTORS[k.rem_euclid(8) as usize]
}

fn count_phrase(actions: &[Action]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < actions.len() {
        let a = actions[i];
        let n = actions[i..].iter().take_while(|&&b| b == a).count();
        parts.push(match n {
            1 => a.phrase().to_string(),
            2 => format!("{} twice", a.phrase()),
            n => format!("{} {n} times", a.phrase()),
        });
        i += n;
    }
    parts.join(", then ")
}

/// The bearing of `label` now, from its last sighting and the rotations since, with a clause
/// saying so.
fn bearing_now(text: &VideoText, label: &str) -> Option<(f32, String)> {
    let (k, s) = text.last_sighting(label)?;
    let last = text.frames.len() - 1;
    let mut why = format!(
        "The {label} was last seen {}, about {:.1} m away, in frame {k}.",
        s.direction, s.distance_m
    );
    let after = text.actions_after(k);
    let b = after_actions(text, s.bearing_deg(), &after);
    if k != last && !after.is_empty() {
        why.push_str(&format!(" Then I did: {}.", count_phrase(&after)));
        // Each rotation, one at a time: the chain a reader can check, not a jump to the end.
        let mut now = s.bearing_deg();
        let mut steps = vec![format!("it was {}", side(now))];
        for a in after
            .iter()
            .filter(|a| matches!(a, Action::RotateLeft | Action::RotateRight))
        {
            now = after_actions(text, now, std::slice::from_ref(a));
            steps.push(format!("after I {} it is {}", a.phrase(), side(now)));
        }
        if steps.len() > 1 {
            why.push_str(&format!(
                " Each rotation turns me {:.0} degrees: {}.",
                text.motion().turn_deg,
                steps.join("; ")
            ));
        }
    }
    Some((b, why))
}

/// A bearing in words a reader can do sums with: "38 degrees left", "straight behind".
fn side(bearing: f32) -> String {
    let b = wrap_deg(bearing);
    let d = b.abs().round();
    if d < 1.0 {
        "straight ahead".into()
    } else if d >= 180.0 {
        "straight behind".into()
    } else {
        format!("{d:.0} degrees {}", if b > 0.0 { "left" } else { "right" })
    }
}

fn nearest_option(choices: &[String], bearing: f32) -> Option<usize> {
    choices
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let b = direction_bearing(c)?;
            Some((wrap_deg(b - bearing).abs(), i))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, i)| i)
}

fn landmark_position(text: &VideoText, stem: &str, choices: &[String]) -> RuleAnswer {
    let Some(label) = text.labels_named_in(stem).into_iter().next() else {
        return guess("The video text never describes the landmark.");
    };
    let Some((b, why)) = bearing_now(text, &label) else {
        return guess("The video text never describes the landmark.");
    };
    let Some(i) = nearest_option(choices, b) else {
        return guess(&why);
    };
    pick(
        choices,
        i,
        format!("{why} So it is {} of me now.", sector_word(b)),
    )
}

fn counterfactual(text: &VideoText, stem: &str, choices: &[String]) -> RuleAnswer {
    // "… chosen to {alt} instead of {last}." / "… had been '{alt}' rather than '{last}' …"
    let lc = stem.to_lowercase();
    let find = |s: &str| -> Option<Action> {
        Action::ALL
            .iter()
            .copied()
            .filter_map(|a| s.find(a.phrase()).map(|i| (i, a)))
            .min_by_key(|(i, _)| *i)
            .map(|(_, a)| a)
    };
    let (alt, last) = if let Some((a, b)) = lc.split_once(" instead of ") {
        (find(a.rsplit("chosen to").next().unwrap_or(a)), find(b))
    } else if let Some((a, b)) = lc.split_once(" rather than ") {
        (find(a.rsplit("had been").next().unwrap_or(a)), find(b))
    } else {
        (None, None)
    };
    let (Some(alt), Some(last)) = (alt, last) else {
        return guess("I cannot read the two actions.");
    };
    let m = text.motion();
    let mut best: Option<(f32, usize)> = None;
    let mut facts = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        let Some(label) = text.label_for(c) else {
            continue;
        };
        let Some((b, _)) = bearing_now(text, &label) else {
            continue;
        };
        let Some((_, s)) = text.last_sighting(&label) else {
            continue;
        };
        // Undo the last action, then take the other one.
        let d = s.distance_m;
        let (mut x, mut y) = (d * b.to_radians().cos(), d * b.to_radians().sin());
        let mut turn = 0.0;
        for (a, sign) in [(last, -1.0f32), (alt, 1.0)] {
            match a {
                Action::RotateLeft => turn -= sign * m.turn_deg,
                Action::RotateRight => turn += sign * m.turn_deg,
                Action::MoveLeft => y -= sign * m.step_m,
                Action::MoveRight => y += sign * m.step_m,
                Action::MoveForward => x -= sign * m.step_m,
                Action::MoveBackward => x += sign * m.step_m,
                _ => {}
            }
        }
        let nb = wrap_deg(deg(atan2(y, x)) + turn);
        facts.push(format!("the {c} would be {}", sector_word(nb)));
        if best.is_none_or(|(v, _)| nb.abs() < v) {
            best = Some((nb.abs(), i));
        }
    }
    match best {
        Some((_, i)) => pick(
            choices,
            i,
            format!(
                "Had I chosen to {} instead of {}, {}. The {} would be most nearly ahead.",
                alt.phrase(),
                last.phrase(),
                facts.join(", "),
                choices[i]
            ),
        ),
        None => guess("The video text describes none of the options."),
    }
}

fn progress(text: &VideoText, stem: &str, choices: &[String]) -> RuleAnswer {
    // The route: "(1) move forward about 30 m, (2) rotate left 60 degrees, …".
    let mut route: Vec<Action> = Vec::new();
    for k in 1.. {
        let tag = format!("({k}) ");
        let Some(i) = stem.find(&tag) else { break };
        let rest = &stem[i + tag.len()..];
        match Action::ALL
            .iter()
            .copied()
            .filter(|a| rest.starts_with(a.phrase()))
            .max_by_key(|a| a.phrase().len())
        {
            Some(a) => route.push(a),
            None => break,
        }
    }
    if route.is_empty() {
        return guess("I cannot read the route.");
    }
    // The actions the video shows, merged into runs, matched to the route in order.
    let seen: Vec<Action> = text.frames.iter().filter_map(|f| f.action).collect();
    let mut done = 0usize;
    for a in &seen {
        if done < route.len() && *a == route[done] {
            done += 1;
        }
    }
    let want = if done == route.len() {
        format!("all {done} steps")
    } else {
        format!("step {done};")
    };
    let i = choices.iter().position(|c| c.starts_with(&want));
    let think = format!(
        "The video shows: {}. That carries out the route up to step {done}.",
        if seen.is_empty() {
            "no actions".to_string()
        } else {
            count_phrase(&seen)
        }
    );
    match i {
        Some(i) => pick(choices, i, think),
        None => guess(&think),
    }
}

fn action_generation(text: &VideoText, stem: &str, choices: &[String]) -> RuleAnswer {
    let Some(label) = text.labels_named_in(stem).into_iter().next() else {
        return guess("The video text never describes the destination.");
    };
    let Some((b, why)) = bearing_now(text, &label) else {
        return guess("The video text never describes the destination.");
    };
    let elevation = text
        .last_sighting(&label)
        .and_then(|(_, s)| s.elevation.clone());
    let (action, because) = if b > 20.0 {
        (Action::RotateLeft, "it is to my left, so I turn toward it")
    } else if b < -20.0 {
        (
            Action::RotateRight,
            "it is to my right, so I turn toward it",
        )
    } else if elevation.as_deref() == Some("above") {
        (Action::MoveUpward, "it is ahead and above me, so I climb")
    } else if elevation.as_deref() == Some("below") {
        (
            Action::MoveDownward,
            "it is ahead and below me, so I descend",
        )
    } else {
        (Action::MoveForward, "it is ahead, so I go forward")
    };
    let think = format!("{why} Now {because}.");
    match choices
        .iter()
        .position(|c| c.eq_ignore_ascii_case(action.phrase()))
    {
        Some(i) => pick(choices, i, think),
        None => guess(&think),
    }
}

fn dist(a: (f32, f32), b: (f32, f32)) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// Positions of the named objects, with the frame they are placed in.
fn place(text: &VideoText, names: &[&str]) -> Option<(usize, Vec<(f32, f32)>)> {
    let labels: Vec<String> = names
        .iter()
        .map(|n| text.label_for(n))
        .collect::<Option<_>>()?;
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let (k, pos) = text.positions(&refs);
    Some((k?, pos.into_iter().collect::<Option<_>>()?))
}

/// "{a} …, the {b} …" names after "the " in a stem, longest matches of the text's labels.
fn named_in_order(text: &VideoText, stem: &str) -> Vec<String> {
    let lc = stem.to_lowercase();
    let mut found: Vec<(usize, String)> = Vec::new();
    for l in text.labels_named_in(stem) {
        for n in [l.as_str(), strip_color(&l)] {
            if let Some(i) = lc.find(&format!("the {}", n.to_lowercase())) {
                if !found.iter().any(|(j, _)| *j == i) {
                    found.push((i, strip_color(&l).to_string()));
                }
                break;
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

/// Objects by name, the frame that places them, and their positions in that frame.
type Placed = (Vec<String>, usize, Vec<(f32, f32)>);

/// The first `n` objects the stem names, in its order, and where one frame of the text places
/// them; or the guess to give when the text does not.
#[allow(clippy::result_large_err)]
fn placed_in_order(text: &VideoText, stem: &str, n: usize) -> Result<Placed, RuleAnswer> {
    let count = ["no", "one", "two", "three", "four"]
        .get(n)
        .copied()
        .unwrap_or("the");
    let mut objs = named_in_order(text, stem);
    if objs.len() < n {
        return Err(guess(&format!(
            "The video text does not describe all {count} objects."
        )));
    }
    objs.truncate(n);
    let refs: Vec<&str> = objs.iter().map(String::as_str).collect();
    match place(text, &refs) {
        Some((k, p)) => Ok((objs, k, p)),
        None => Err(guess(&format!(
            "The video text does not place the {count} objects."
        ))),
    }
}

fn rel_distance(text: &VideoText, stem: &str, choices: &[String]) -> RuleAnswer {
    // The target is the object after "closest to the" / "nearest to the".
    let lc = stem.to_lowercase();
    let tail = lc
        .split_once("closest to the ")
        .or_else(|| lc.split_once("nearest to the "))
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    let Some(target) = text
        .labels_named_in(&tail)
        .into_iter()
        .next()
        .map(|l| strip_color(&l).to_string())
    else {
        return guess("The video text never describes the target.");
    };
    let mut best: Option<(f32, usize)> = None;
    let mut facts = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        if let Some((_, p)) = place(text, &[target.as_str(), c.as_str()]) {
            let d = dist(p[0], p[1]);
            facts.push(format!("the {c} about {d:.1} m"));
            if best.is_none_or(|(v, _)| d < v) {
                best = Some((d, i));
            }
        }
    }
    match best {
        Some((_, i)) => pick(
            choices,
            i,
            format!(
                "From where the text places them, from the {target}: {}. The {} is closest.",
                facts.join(", "),
                choices[i]
            ),
        ),
        None => guess("The video text does not place the objects."),
    }
}

fn angle_at(p: &[(f32, f32)]) -> f32 {
    let v = |(x, y): (f32, f32)| V3::new(x, y, 0.0);
    turn_angle(v(p[0]), v(p[1]), v(p[2]))
}

fn rel_direction(text: &VideoText, stem: &str, choices: &[String]) -> RuleAnswer {
    let (objs, k, p) = match placed_in_order(text, stem, 3) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let refs: Vec<&str> = objs.iter().map(String::as_str).collect();
    let a = angle_at(&p);
    let word = match choices.len() {
        2 => {
            if a > 0.0 {
                "left"
            } else {
                "right"
            }
        }
        3 => {
            if a.abs() > 135.0 {
                "back"
            } else if a > 0.0 {
                "left"
            } else {
                "right"
            }
        }
        _ => match (a > 0.0, a.abs() > 90.0) {
            (true, false) => "front-left",
            (true, true) => "back-left",
            (false, false) => "front-right",
            (false, true) => "back-right",
        },
    };
    let think = format!(
        "In frame {k} the text places the {} and the {}; standing by the {} facing the {}, the {} is about {:.0} degrees to the {}: {word}.",
        refs[0],
        refs[1],
        refs[0],
        refs[1],
        refs[2],
        a.abs(),
        if a > 0.0 { "left" } else { "right" }
    );
    match choices.iter().position(|c| c == word) {
        Some(i) => pick(choices, i, think),
        None => guess(&think),
    }
}

fn turn(angle: f32) -> &'static str {
    if angle.abs() > 150.0 {
        "Turn back"
    } else if angle > 0.0 {
        "Turn left"
    } else {
        "Turn right"
    }
}

fn route_planning(text: &VideoText, stem: &str, choices: &[String]) -> RuleAnswer {
    // "beginning at the S and facing the F … until the V … until the G".
    let (objs, _, p) = match placed_in_order(text, stem, 4) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let refs: Vec<&str> = objs.iter().map(String::as_str).collect();
    let ahead = |a: (f32, f32), b: (f32, f32)| (2.0 * b.0 - a.0, 2.0 * b.1 - a.1);
    let t1 = angle_at(&[p[1], ahead(p[0], p[1]), p[2]]);
    let t2 = angle_at(&[p[2], ahead(p[1], p[2]), p[3]]);
    let want = format!("{}, {}", turn(t1), turn(t2));
    let think = format!(
        "Going from the {} to the {}, the {} is about {:.0} degrees to the {}; from there the {} is about {:.0} degrees to the {}.",
        refs[0],
        refs[1],
        refs[2],
        t1.abs(),
        if t1 > 0.0 { "left" } else { "right" },
        refs[3],
        t2.abs(),
        if t2 > 0.0 { "left" } else { "right" }
    );
    match choices.iter().position(|c| c == &want) {
        Some(i) => pick(choices, i, format!("{think} So: {want}.")),
        None => guess(&think),
    }
}

fn appearance_order(text: &VideoText, choices: &[String]) -> RuleAnswer {
    let Some(first) = choices.first() else {
        return guess("There are no options.");
    };
    let names: Vec<&str> = first.split(", ").collect();
    let mut order: Vec<(usize, usize, &str)> = Vec::new();
    for n in &names {
        let Some(label) = text.label_for(n) else {
            return guess(&format!("The video text never describes the {n}."));
        };
        let k = text.first_mention(&label).unwrap_or(usize::MAX);
        let pos = text
            .frames
            .get(k)
            .and_then(|f| f.first_mentions.iter().position(|l| *l == label))
            .unwrap_or(0);
        order.push((k, pos, n));
    }
    order.sort();
    let want: Vec<&str> = order.iter().map(|(_, _, n)| *n).collect();
    let facts: Vec<String> = order
        .iter()
        .map(|(k, _, n)| format!("the {n} in frame {k}"))
        .collect();
    let think = format!("First described: {}.", facts.join(", "));
    match choices.iter().position(|c| *c == want.join(", ")) {
        Some(i) => pick(choices, i, think),
        None => guess(&think),
    }
}

fn counting(text: &VideoText, stem: &str) -> RuleAnswer {
    let lc = stem.to_lowercase();
    let cat = lc
        .split_once("how many ")
        .and_then(|(_, t)| t.split_once("(s)"))
        .map(|(c, _)| c.trim().to_string());
    let Some(cat) = cat else {
        return RuleAnswer {
            answer: "0".into(),
            think: "I cannot read what to count.".into(),
            grounded: false,
        };
    };
    let mut labels: Vec<&str> = Vec::new();
    for f in &text.frames {
        for s in &f.sightings {
            let name = strip_color(&s.label).to_lowercase();
            let is_cat = name == cat
                || name
                    .strip_prefix(&cat)
                    .and_then(|r| r.strip_prefix(' '))
                    .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()));
            if is_cat && !labels.contains(&s.label.as_str()) {
                labels.push(&s.label);
            }
        }
    }
    RuleAnswer {
        answer: labels.len().to_string(),
        think: if labels.is_empty() {
            format!("The video text describes no {cat}.")
        } else {
            format!("The video text describes: {}.", labels.join(", "))
        },
        grounded: true,
    }
}

fn abs_distance(text: &VideoText, stem: &str) -> RuleAnswer {
    let objs = named_in_order(text, stem);
    let placed = (objs.len() >= 2)
        .then(|| place(text, &[objs[0].as_str(), objs[1].as_str()]))
        .flatten();
    match placed {
        Some((k, p)) => {
            let d = dist(p[0], p[1]);
            RuleAnswer {
                answer: format!("{d:.1}"),
                think: format!(
                    "In frame {k} the text places the {} and the {} about {d:.1} m apart.",
                    objs[0], objs[1]
                ),
                grounded: true,
            }
        }
        None => RuleAnswer {
            answer: "2.0".into(),
            think: "The video text does not place both objects; I guess.".into(),
            grounded: false,
        },
    }
}

fn room_size(text: &VideoText) -> RuleAnswer {
    // The spread of everything described, from the first frame's view.
    let labels: Vec<String> = text
        .frames
        .iter()
        .flat_map(|f| f.sightings.iter().map(|s| s.label.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let (_, pos) = text.positions(&refs);
    let pts: Vec<(f32, f32)> = pos.into_iter().flatten().collect();
    if pts.len() < 2 {
        return RuleAnswer {
            answer: "20.0".into(),
            think: "Too little is described to measure the room; I guess.".into(),
            grounded: false,
        };
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for (x, y) in &pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    // Objects stand inside the walls: add a margin on each side.
    let area = ((x1 - x0) + 1.0) * ((y1 - y0) + 1.0);
    RuleAnswer {
        answer: format!("{area:.1}"),
        think: format!(
            "The objects described span about {:.1} m by {:.1} m; with the space to the walls the room is about {area:.0} square meters.",
            x1 - x0,
            y1 - y0
        ),
        grounded: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "preamble\nVideo content: \n<\nheader\nFrame 0: Observe: I see a grey tower ahead-left, about 120.0 m away; a red building ahead, below, about 40.5 m away. I am flying about 30 m above the ground. Objects from the question: a grey tower ahead-left, about 120.0 m away.\nFrame 1: After Rotate right, Observe: Newly visible: a blue car to the right, about 20.0 m away.\nFrame 2: After Rotate right, Observe: No new objects.\n>\nQuestion: where is the tower?";

    #[test]
    fn the_text_reads_back_into_sightings() {
        let t = VideoText::parse(USER);
        assert_eq!(t.frames.len(), 3);
        assert!(t.flying);
        assert_eq!(t.frames[0].altitude_m, Some(30.0));
        assert_eq!(t.frames[0].sightings.len(), 2);
        let b = &t.frames[0].sightings[1];
        assert_eq!(b.label, "red building");
        assert_eq!(b.direction, "ahead");
        assert_eq!(b.elevation.as_deref(), Some("below"));
        assert!((b.distance_m - 40.5).abs() < 1e-6);
        assert_eq!(t.frames[1].action, Some(Action::RotateRight));
        assert_eq!(t.frames[1].first_mentions, vec!["blue car".to_string()]);
        assert_eq!(t.label_for("tower").as_deref(), Some("grey tower"));
    }

    #[test]
    fn a_landmark_turns_with_the_rotations_since_it_was_seen() {
        // Seen at 37.5° left, then two rotations right (+60°): about 97° left.
        let choices: Vec<String> = ["right", "left", "ahead-left"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = answer(
            "Landmark Position",
            USER,
            "From your current position and heading, where is the tower?",
            &choices,
        );
        assert_eq!(r.answer, "B", "{r:?}");
        assert!(r.grounded);
        assert!(r.think.contains("rotate right twice"), "{}", r.think);
        // Each rotation is a step of the sum, and the think ends naming the option it picks.
        assert!(
            r.think.contains(
                "it was 38 degrees left; after I rotate right it is 68 degrees left; \
                 after I rotate right it is 98 degrees left."
            ),
            "{}",
            r.think
        );
        assert!(
            r.think
                .ends_with("The options: right is A; left is B; ahead-left is C. So left is B."),
            "{}",
            r.think
        );
    }

    #[test]
    fn names_are_whole_names() {
        assert!(names("closest to the chair?", "red chair"));
        assert!(!names("closest to the chair 2?", "red chair"));
        assert!(names("closest to the chair 2?", "red chair 2"));
        assert!(!names("closest to the chair 12?", "red chair 1"));
        assert!(!names("the armchair", "chair"));
    }

    #[test]
    fn counting_counts_distinct_numbered_objects() {
        let user = "Frame 0: Observe: I see a red chair 1 ahead, about 2.0 m away; a blue chair 2 to the left, about 1.0 m away; a table ahead, about 3.0 m away.\nFrame 1: After Rotate left, Observe: Newly visible: a green chair 3 ahead, about 1.5 m away. Objects from the question: a red chair 1 to the right, about 2.0 m away.";
        let r = answer(
            "object_counting",
            user,
            "How many chair(s) appear in the video?",
            &[],
        );
        assert_eq!(r.answer, "3");
    }

    #[test]
    fn appearance_order_follows_first_mentions() {
        let user = "Frame 0: Observe: I see a red sofa ahead, about 2.0 m away.\nFrame 1: After Move forward, Observe: Newly visible: a lamp to the left, about 1.0 m away.\nFrame 2: After Rotate left, Observe: Newly visible: a black tv ahead, about 3.0 m away.";
        let choices: Vec<String> = ["lamp, sofa, tv", "sofa, lamp, tv", "tv, sofa, lamp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = answer("obj_appearance_order", user, "order?", &choices);
        assert_eq!(r.answer, "B", "{r:?}");
    }
}
