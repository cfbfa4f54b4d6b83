//! The Embodied-R prompts (spec §2.6, §3, §4.3 step 4), in one place so the runtime, the
//! trainer and evaluation send the model exactly the same text.
//!
//! The wording follows the method's structure (an R1-style system prompt asking for
//! `<think>`/`<answer>` blocks plus the consistency sentence; a user message with the video text
//! between `<` and `>` and the question after it). We use real newlines and no
//! `User: . Assistant:` leftover (spec §3 lists both as artefacts of the reference scripts).

/// The system prompt of the reasoning LM.
pub const SYSTEM_PROMPT: &str = "A conversation between User and Assistant. The user asks a \
question, and the Assistant solves it. The Assistant first thinks about the reasoning process \
in the mind and then provides the user with the answer. The reasoning process and answer are \
enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> \
reasoning process here </think>\n<answer> answer here </answer>. Ensure that your answer is \
consistent with and directly derived from your thinking process, maintaining logical coherence \
between the two sections.";

/// The opening of the user message.
pub const AGENT_PREAMBLE: &str = "Please assume the role of an agent. The video represents your \
egocentric observations from the past to the present.";

/// System prompt of the consistency check's reference pass.
pub const REFERENCE_SYSTEM: &str = "You are a professional question-answering assistant.";

/// Option letters, in order (the benchmarks use at most eight).
pub const LETTERS: [char; 8] = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'];

/// A question's text as the benchmarks write it: the stem, then `Choices:` and lettered options
/// (none for free-form questions). A leading `Question:` on `stem` is dropped.
pub fn question_text(stem: &str, choices: &[String]) -> String {
    let stem = stem.trim();
    let stem = stem.strip_prefix("Question:").unwrap_or(stem).trim_start();
    let mut s = stem.to_string();
    if !choices.is_empty() {
        s.push_str("\nChoices:");
        for (l, c) in LETTERS.iter().zip(choices) {
            s.push_str(&format!("\n{l}. {}", c.trim()));
        }
    }
    s
}

/// The user message of spec §2.6: preamble, the video text between `<` and `>`, then the
/// question (as [`question_text`] writes it).
pub fn user_message(video_text: &str, question: &str) -> String {
    format!("{AGENT_PREAMBLE}\nVideo content: \n<\n{video_text}\n>\nQuestion: {question}")
}

/// The part of a user message the reference pass sees: from the last `Question:` on (the video
/// text is left out, as the method does), or the whole message when there is none.
pub fn question_part(user_message: &str) -> String {
    match user_message.rfind("Question:") {
        Some(i) => user_message[i..].trim().to_string(),
        None => format!("Question: {}", user_message.trim()),
    }
}

/// The reference pass's user message: the question and the think text only; the model must
/// reply with one letter. `question` is [`question_part`]'s output (it starts with `Question:`).
pub fn reference_message(question: &str, think: &str) -> String {
    format!(
        "This is a multiple-choice question. Based on the question and the thinking process \
below, select the most appropriate option (one letter from A-H).\n\nAnswer with exactly one \
letter and nothing else.\n\n{question}\n\nThinking process: {think}\n\nYour answer (one letter \
A-H):"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_text_letters_options_and_drops_prefix() {
        let q = question_text(
            "Question: Which is closer?",
            &["the door".into(), " the sofa ".into()],
        );
        assert_eq!(q, "Which is closer?\nChoices:\nA. the door\nB. the sofa");
        assert_eq!(question_text("How far?", &[]), "How far?");
    }

    #[test]
    fn user_message_has_the_papers_layout() {
        let m = user_message("Frame 1: I see a door.", "Where?\nChoices:\nA. left");
        assert!(m.starts_with(AGENT_PREAMBLE));
        assert!(m.contains("\nVideo content: \n<\nFrame 1: I see a door.\n>\nQuestion: Where?"));
        assert_eq!(question_part(&m), "Question: Where?\nChoices:\nA. left");
        assert_eq!(question_part("just text"), "Question: just text");
    }
}
