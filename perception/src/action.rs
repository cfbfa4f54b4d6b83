//! The paper's ten-action vocabulary (spec §2.3), shared by the simulator, the describer prompts
//! and the navigation hints.

use std::fmt;
use std::str::FromStr;

/// One of the ten egocentric actions of Embodied-R / UrbanVideo-Bench.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Translate along the heading.
    MoveForward,
    /// Translate against the heading.
    MoveBackward,
    /// Translate to the left, heading unchanged.
    MoveLeft,
    /// Translate to the right, heading unchanged.
    MoveRight,
    /// Climb.
    MoveUpward,
    /// Descend.
    MoveDownward,
    /// Turn the heading counter-clockwise (seen from above).
    RotateLeft,
    /// Turn the heading clockwise (seen from above).
    RotateRight,
    /// Pitch the camera up.
    TiltUpward,
    /// Pitch the camera down.
    TiltDownward,
}

/// A string that is not one of the ten actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {input:?}: expected one of {}", Action::ALL.map(|a| a.phrase()).join(", "))]
pub struct ParseActionError {
    /// The text that failed to parse.
    pub input: String,
}

impl Action {
    /// All ten, in the spec's order.
    pub const ALL: [Action; 10] = [
        Action::MoveForward,
        Action::MoveBackward,
        Action::MoveLeft,
        Action::MoveRight,
        Action::MoveUpward,
        Action::MoveDownward,
        Action::RotateLeft,
        Action::RotateRight,
        Action::TiltDownward,
        Action::TiltUpward,
    ];

    /// The spec's wording, lower case ("move forward", "tilt downward").
    pub fn phrase(self) -> &'static str {
        match self {
            Action::MoveForward => "move forward",
            Action::MoveBackward => "move backward",
            Action::MoveLeft => "move left",
            Action::MoveRight => "move right",
            Action::MoveUpward => "move upward",
            Action::MoveDownward => "move downward",
            Action::RotateLeft => "rotate left",
            Action::RotateRight => "rotate right",
            Action::TiltUpward => "tilt upward",
            Action::TiltDownward => "tilt downward",
        }
    }

    /// The action that undoes this one.
    pub fn opposite(self) -> Action {
        match self {
            Action::MoveForward => Action::MoveBackward,
            Action::MoveBackward => Action::MoveForward,
            Action::MoveLeft => Action::MoveRight,
            Action::MoveRight => Action::MoveLeft,
            Action::MoveUpward => Action::MoveDownward,
            Action::MoveDownward => Action::MoveUpward,
            Action::RotateLeft => Action::RotateRight,
            Action::RotateRight => Action::RotateLeft,
            Action::TiltUpward => Action::TiltDownward,
            Action::TiltDownward => Action::TiltUpward,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

impl FromStr for Action {
    type Err = ParseActionError;

    /// Accepts the spec's phrases in any case, with `_`/`-` for spaces, a trailing period, and the
    /// short forms VLMs produce ("move up", "turn left", "tilt down").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .replace(['_', '-'], " ");
        let words: Vec<&str> = norm.split_whitespace().collect();
        let action = match words.as_slice() {
            ["move" | "go" | "fly", "forward" | "forwards" | "ahead"] => Action::MoveForward,
            ["move" | "go" | "fly", "backward" | "backwards" | "back"] => Action::MoveBackward,
            ["move" | "go" | "fly", "left"] => Action::MoveLeft,
            ["move" | "go" | "fly", "right"] => Action::MoveRight,
            ["move" | "go" | "fly", "upward" | "upwards" | "up"] | ["ascend"] => Action::MoveUpward,
            ["move" | "go" | "fly", "downward" | "downwards" | "down"] | ["descend"] => {
                Action::MoveDownward
            }
            ["rotate" | "turn", "left"] => Action::RotateLeft,
            ["rotate" | "turn", "right"] => Action::RotateRight,
            ["tilt", "upward" | "upwards" | "up"] => Action::TiltUpward,
            ["tilt", "downward" | "downwards" | "down"] => Action::TiltDownward,
            _ => {
                return Err(ParseActionError {
                    input: s.to_string(),
                });
            }
        };
        Ok(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_variants() {
        for a in Action::ALL {
            assert_eq!(a.phrase().parse::<Action>(), Ok(a));
            assert_eq!(a.opposite().opposite(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a);
        }
        assert_eq!("Move Upward.".parse::<Action>(), Ok(Action::MoveUpward));
        assert_eq!("turn_left".parse::<Action>(), Ok(Action::RotateLeft));
        assert_eq!("tilt down".parse::<Action>(), Ok(Action::TiltDownward));
        let err = "jump".parse::<Action>().unwrap_err();
        assert!(err.to_string().contains("\"jump\""), "{err}");
        assert!(err.to_string().contains("tilt upward"), "{err}");
    }
}
