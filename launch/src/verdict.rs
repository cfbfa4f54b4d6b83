//! How every command that shows an answer (`ask`, `watch`, `demo`, `episodes`, `eval`) says
//! which option it names and whether it is right, so that one reply gets one verdict
//! everywhere. The rule is the reasoner's strict one: the option is read from the `<answer>`
//! block only, and accuracy is scored by `reward::score` with `Extraction::Strict` (what the
//! runtime records in the episode log and `eval` uses by default). When a completion has no
//! answer block, the option its whole text names is shown as a lenient reading, never as the
//! answer and never scored.

use embodied_r_reasoner::answer::{lenient_choice, parse_completion, strict_choice};
use embodied_r_reasoner::reward::{Extraction, score};

/// The name of the rule, as printed beside verdicts.
pub const STRICT: &str = "strict: the <answer> block";

/// What the answer's option is, by the strict rule, with the lenient reading beside it when
/// there is no answer block: `B (strict: the <answer> block)`, or `none (no <answer> block;
/// lenient reading: C, not scored)`.
pub fn reading(choice: Option<&str>, lenient: Option<&str>, format_ok: bool) -> String {
    match (choice, lenient) {
        (Some(c), _) => format!("{c} ({STRICT})"),
        (None, Some(l)) => format!("none (no <answer> block; lenient reading: {l}, not scored)"),
        (None, None) if format_ok => format!("none ({STRICT} names no option)"),
        (None, None) => "none (no <answer> block)".into(),
    }
}

/// The strict and lenient readings of a recorded completion. Records keep the completion, so
/// a log written by an older runtime (whose `choice` field could hold a lenient reading) is
/// shown by today's rule too.
pub fn readings_of(completion: &str, choices: &[String]) -> (Option<String>, Option<String>) {
    let parsed = parse_completion(completion);
    (
        strict_choice(&parsed, choices).map(String::from),
        lenient_choice(&parsed, completion, choices).map(String::from),
    )
}

/// The strict accuracy of a recorded completion against its truth (`reward::score`, as the
/// runtime and `eval` compute it).
pub fn accuracy_of(completion: &str, truth: &str, choices: &[String]) -> f64 {
    score(completion, truth, choices, Extraction::Strict).accuracy
}

/// `right`, `wrong` or `partly right (0.43)` for an accuracy reward.
pub fn word(accuracy: f64) -> String {
    if accuracy >= 1.0 {
        "right".to_string()
    } else if accuracy > 0.0 {
        format!("partly right ({accuracy:.2})")
    } else {
        "wrong".to_string()
    }
}

/// [`word`] with the rule's name.
pub fn judged(accuracy: f64) -> String {
    format!("{} ({STRICT})", word(accuracy))
}

/// How `eval` names the reader it scored with.
pub fn eval_rule(extraction: Extraction) -> &'static str {
    match extraction {
        Extraction::Strict => STRICT,
        Extraction::Reference => {
            "reference: the paper's whole-completion reader (lenient; for comparison with \
             published figures)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lenient_reading_is_never_the_answer() {
        assert_eq!(reading(Some("B"), None, true), format!("B ({STRICT})"));
        let s = reading(None, Some("C"), false);
        assert!(
            s.starts_with("none") && s.contains("lenient reading: C, not scored"),
            "{s}"
        );
        assert_eq!(reading(None, None, false), "none (no <answer> block)");
        assert!(judged(1.0).starts_with("right") && judged(0.0).starts_with("wrong"));
        assert!(judged(0.5).starts_with("partly right (0.50)"));
        let ch: Vec<String> = vec!["left".into(), "right".into()];
        assert_eq!(
            readings_of("it is on the right", &ch),
            (None, Some("B".into()))
        );
        assert_eq!(readings_of("<answer>x</answer> right", &ch), (None, None));
        assert_eq!(
            readings_of("<think>t</think><answer>A</answer>", &ch),
            (Some("A".into()), None)
        );
        assert_eq!(accuracy_of("it is on the right", "B", &ch), 0.0);
        assert_eq!(
            accuracy_of("<think>t</think><answer>right</answer>", "B", &ch),
            1.0
        );
    }
}
