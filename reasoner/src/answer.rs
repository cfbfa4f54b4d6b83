//! Reading a completion: the `<think>` and `<answer>` blocks, the format rule of spec §4.1, and
//! the chosen option, taken only from the `<answer>` block (the "strict" extraction; the
//! reference's whole-completion normaliser and its quirks come with the trainer's rewards).

use serde::{Deserialize, Serialize};

/// What a completion says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedCompletion {
    /// The first `<think>` block's content, trimmed; `None` when absent or empty.
    pub think: Option<String>,
    /// The first `<answer>` block's content, trimmed; `None` when absent.
    pub answer: Option<String>,
    /// Spec §4.1: starts with `<think>`, only whitespace between `</think>` and `<answer>`, ends
    /// exactly at `</answer>`.
    pub format_ok: bool,
}

/// Parses a completion.
pub fn parse_completion(completion: &str) -> ParsedCompletion {
    let think = block(completion, "<think>", "</think>").filter(|t| !t.is_empty());
    let answer = block(completion, "<answer>", "</answer>");
    ParsedCompletion {
        think,
        answer,
        format_ok: format_ok(completion),
    }
}

/// The trimmed content of the first `open … close` block (dot matches newlines).
fn block(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(text[start..end].trim().to_string())
}

/// Spec §4.1's format rule: `^<think>.*?</think>\s*<answer>.*?</answer>(?![\s\S])` with DOTALL.
/// Backtracking lets any `</think>` followed by whitespace and `<answer>` serve, as long as the
/// text ends with `</answer>` after it.
pub fn format_ok(text: &str) -> bool {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";
    const A_OPEN: &str = "<answer>";
    const A_CLOSE: &str = "</answer>";
    if !text.starts_with(OPEN) || !text.ends_with(A_CLOSE) {
        return false;
    }
    let last = text.len() - A_CLOSE.len();
    let mut from = OPEN.len();
    while let Some(i) = text[from..].find(CLOSE) {
        let after = from + i + CLOSE.len();
        let rest = text[after..].trim_start();
        let q = text.len() - rest.len();
        if rest.starts_with(A_OPEN) && q + A_OPEN.len() <= last {
            return true;
        }
        from = from + i + 1;
    }
    false
}

/// The option letter an answer names, reading only the answer text: a leading letter (`C`,
/// `C.`, `(C)`, `C) the door`, `Option C`, `Answer: C`), else the one option whose text it
/// states (case-insensitive, ignoring a trailing period). `n_choices` bounds the letters
/// (0 = any of A–H).
pub fn choice_letter(answer: &str, choices: &[String]) -> Option<char> {
    let n = if choices.is_empty() {
        8
    } else {
        choices.len().min(8)
    };
    let mut s = answer.trim();
    for prefix in [
        "the answer is",
        "answer:",
        "answer",
        "option",
        "choice:",
        "choice",
    ] {
        if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
            s = s[prefix.len()..].trim_start();
            break;
        }
    }
    let s = s.strip_prefix('(').unwrap_or(s);
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        let up = c.to_ascii_uppercase();
        let next = chars.next();
        let standalone = next.is_none_or(|n| !n.is_alphanumeric());
        if standalone && let Some(i) = crate::prompt::LETTERS.iter().position(|&l| l == up) {
            // A lower-case lone "a" is an article more often than an option.
            if i < n && (c.is_ascii_uppercase() || next.is_some_and(|n| n == '.' || n == ')')) {
                return Some(up);
            }
        }
    }
    let norm = |t: &str| {
        t.trim()
            .trim_end_matches('.')
            .trim()
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let said = norm(answer);
    if said.is_empty() {
        return None;
    }
    let exact: Vec<usize> = (0..choices.len().min(8))
        .filter(|&i| norm(&choices[i]) == said)
        .collect();
    if let [i] = exact[..] {
        return Some(crate::prompt::LETTERS[i]);
    }
    let contained: Vec<usize> = (0..choices.len().min(8))
        .filter(|&i| {
            let c = norm(&choices[i]);
            !c.is_empty() && said.contains(&c)
        })
        .collect();
    match contained[..] {
        [i] => Some(crate::prompt::LETTERS[i]),
        _ => None,
    }
}

/// The option the `<answer>` block names: the strict reading, the only one that rewards,
/// accuracy and every verdict count. `None` for free-form questions (no `choices`) and when the
/// completion has no answer block or the block names no option.
pub fn strict_choice(parsed: &ParsedCompletion, choices: &[String]) -> Option<char> {
    if choices.is_empty() {
        return None;
    }
    parsed
        .answer
        .as_deref()
        .and_then(|a| choice_letter(a, choices))
}

/// The option a completion without an `<answer>` block names anywhere in its text: a lenient
/// reading that is shown as such (and may steer the advisory navigation hint) but is never
/// scored. `None` when there is an answer block (then only the strict reading exists) and for
/// free-form questions.
pub fn lenient_choice(
    parsed: &ParsedCompletion,
    completion: &str,
    choices: &[String],
) -> Option<char> {
    if choices.is_empty() || parsed.answer.is_some() {
        return None;
    }
    choice_letter(completion.trim(), choices)
}

/// The first option letter in a short reply (the reference pass's), e.g. `"B"`, `" b."`,
/// `"Answer: C"`.
pub fn reply_letter(reply: &str) -> Option<char> {
    let r = reply.trim();
    if let Some(c) = choice_letter(r, &[]) {
        return Some(c);
    }
    // Otherwise the first standalone capital letter A–H.
    let bytes: Vec<char> = r.chars().collect();
    (0..bytes.len()).find_map(|i| {
        let c = bytes[i];
        let before_ok = i == 0 || !bytes[i - 1].is_alphanumeric();
        let after_ok = bytes.get(i + 1).is_none_or(|n| !n.is_alphanumeric());
        (before_ok && after_ok && crate::prompt::LETTERS.contains(&c)).then_some(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_rule_matches_spec_cases() {
        assert!(format_ok("<think>a</think><answer>B</answer>"));
        assert!(format_ok("<think>a</think> \n <answer>B</answer>"));
        assert!(format_ok("<think></think><answer></answer>"));
        // extra answer blocks in the middle still pass (non-greedy + end anchor)
        assert!(format_ok(
            "<think>a</think><answer>B</answer><answer>C</answer>"
        ));
        // leading whitespace, trailing newline, text between blocks fail
        assert!(!format_ok(" <think>a</think><answer>B</answer>"));
        assert!(!format_ok("<think>a</think><answer>B</answer>\n"));
        assert!(!format_ok("<think>a</think>so<answer>B</answer>"));
        assert!(!format_ok("<think>a<answer>B</answer>"));
        assert!(!format_ok("<THINK>a</THINK><answer>B</answer>"));
        // a later </think> may serve
        assert!(format_ok("<think>a</think>x</think> <answer>B</answer>"));
        assert!(!format_ok("<think>a</think><answer>"));
    }

    #[test]
    fn parse_takes_first_blocks() {
        let p = parse_completion("<think> left of me </think>\n<answer> C. the door </answer>");
        assert_eq!(p.think.as_deref(), Some("left of me"));
        assert_eq!(p.answer.as_deref(), Some("C. the door"));
        assert!(p.format_ok);
        let p = parse_completion("no tags at all");
        assert_eq!((p.think, p.answer, p.format_ok), (None, None, false));
        assert_eq!(parse_completion("<think> </think>").think, None);
    }

    #[test]
    fn strict_and_lenient_readings_never_overlap() {
        let ch: Vec<String> = ["left", "back", "right"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let tagged = "<think>it is west</think><answer>A</answer>";
        let p = parse_completion(tagged);
        assert_eq!(strict_choice(&p, &ch), Some('A'));
        assert_eq!(lenient_choice(&p, tagged, &ch), None);
        // No answer block: nothing strict, and the whole text's reading is the lenient one.
        let bare = "The tower is on the right";
        let p = parse_completion(bare);
        assert_eq!(strict_choice(&p, &ch), None);
        assert_eq!(lenient_choice(&p, bare, &ch), Some('C'));
        // An answer block that names no option: nothing strict, and no lenient fallback.
        let empty = "<think>hm</think><answer>somewhere</answer>";
        let p = parse_completion(empty);
        assert_eq!(
            (strict_choice(&p, &ch), lenient_choice(&p, empty, &ch)),
            (None, None)
        );
        // Free-form questions have no options to read.
        let p = parse_completion(tagged);
        assert_eq!(
            (strict_choice(&p, &[]), lenient_choice(&p, tagged, &[])),
            (None, None)
        );
    }

    #[test]
    fn letters_from_answers() {
        let ch: Vec<String> = ["the door", "the sofa", "the lamp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (a, want) in [
            ("C", Some('C')),
            ("C.", Some('C')),
            ("c.", Some('C')),
            ("(B)", Some('B')),
            ("B) the sofa", Some('B')),
            ("Option A", Some('A')),
            ("Answer: b.", Some('B')),
            ("The sofa.", Some('B')),
            ("I think it is the lamp", Some('C')),
            ("D", None),
            ("a sofa", None),
            ("", None),
            ("both the door and the sofa", None),
        ] {
            assert_eq!(choice_letter(a, &ch), want, "{a:?}");
        }
        assert_eq!(choice_letter("H", &[]), Some('H'));
    }

    #[test]
    fn reply_letters() {
        assert_eq!(reply_letter("B"), Some('B'));
        assert_eq!(reply_letter(" b."), Some('B'));
        assert_eq!(reply_letter("I pick C because"), Some('C'));
        assert_eq!(reply_letter("none"), None);
    }
}
