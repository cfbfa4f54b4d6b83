//! The "video text": per-key-frame descriptions assembled into the paragraph the reasoner reads
//! (spec §2.5), whatever produced the descriptions (a VLM, the simulator's describer).

/// What the describer said about one key frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameDescription {
    /// The action that led from the previous key frame to this one; `None` for frame 0 and when a
    /// VLM reply could not be parsed (rendered as the literal `None`, as the reference does).
    pub action: Option<String>,
    /// What is observed: for frame 0 the scene, afterwards the new information and the objects the
    /// question mentions.
    pub view: String,
}

/// The header sentences of spec §2.5. The reference joins them with five spaces (a Python
/// line-continuation artefact); we keep that for parity with its training data.
const HEADER: [&str; 4] = [
    "I will describe the content of the video to you in the form of text.",
    "The 0th frame is the initial frame, which shows the scene the agent observes at its initial position.",
    "The agent keeps moving, so it keeps obtaining new visual observations (frames).",
    "The last frame is the visual observation at the agent's current position.",
];

/// Assembles the video text: the header, then `Frame 0: Observe: …` and
/// `Frame i: After <action>, Observe: …` lines, each preceded by a newline.
pub fn assemble(frames: &[FrameDescription]) -> String {
    let mut out = HEADER.join("     ");
    for (i, f) in frames.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!("\nFrame 0: Observe: {}", f.view));
        } else {
            let action = f.action.as_deref().unwrap_or("None");
            out.push_str(&format!("\nFrame {i}: After {action}, Observe: {}", f.view));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_reference() {
        let text = assemble(&[
            FrameDescription {
                action: None,
                view: "a red sofa ahead".into(),
            },
            FrameDescription {
                action: Some("rotate left".into()),
                view: "a lamp to the left".into(),
            },
            FrameDescription {
                action: None,
                view: "raw reply".into(),
            },
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("text.     The 0th frame"));
        assert_eq!(lines[1], "Frame 0: Observe: a red sofa ahead");
        assert_eq!(
            lines[2],
            "Frame 1: After rotate left, Observe: a lamp to the left"
        );
        assert_eq!(lines[3], "Frame 2: After None, Observe: raw reply");
    }
}
