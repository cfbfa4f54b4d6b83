//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template` or
//! `tokenizer_config.json`), rendered with minijinja the way transformers renders it
//! (`trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`, a `tojson` that
//! does not HTML-escape).
//!
//! A template comes from a model file, which may be hostile: rendering is bounded in work
//! ([`TEMPLATE_FUEL`] VM instructions, so no endless loop) and in output ([`MAX_RENDERED_BYTES`]),
//! and our filters refuse arguments that would allocate without bound. What minijinja itself
//! allocates for intermediate strings is not bounded here (SECURITY.md).

use minijinja::value::Kwargs;
use minijinja::{Environment, ErrorKind, Value, context};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// VM instructions one render may take: far beyond any real chat template over a prompt (a few
/// thousand), small enough that a looping template fails in well under a second.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// Longest rendered prompt: far beyond any context window we run.
pub const MAX_RENDERED_BYTES: usize = 4 << 20;

/// Widest `tojson(indent=…)` accepted.
const MAX_JSON_INDENT: usize = 64;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template plus the special-token strings templates refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

fn tojson(v: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    if let Some(n) = indent.filter(|&n| n > MAX_JSON_INDENT) {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson indent {n} is wider than {MAX_JSON_INDENT}"),
        ));
    }
    // Accept and ignore the other json.dumps options templates pass.
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&v)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let text = match indent {
        Some(n) => {
            let mut buf = Vec::new();
            let ind = vec![b' '; n];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&ind);
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&json, &mut ser)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            String::from_utf8_lossy(&buf).into_owned()
        }
        None => serde_json::to_string(&json)
            .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?,
    };
    Ok(Value::from_safe_string(text))
}

/// Days since 1970-01-01 (UTC), now.
fn now_days() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86_400) as i64)
        .unwrap_or(0)
}

/// The subset of `strftime` chat templates use for dates (%Y %m %d %B %b), for `days` since
/// the Unix epoch; other directives are left as written.
fn strftime_utc(fmt: &str, days: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let month = MONTHS[(m - 1).clamp(0, 11) as usize];
    fmt.replace("%Y", &y.to_string())
        .replace("%m", &format!("{m:02}"))
        .replace("%d", &format!("{d:02}"))
        .replace("%B", month)
        .replace("%b", &month[..3])
}

impl ChatTemplate {
    /// Compiles `source`. `bos_token` / `eos_token` are the strings the template may print.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |fmt: String| -> String {
            strftime_utc(&fmt, now_days())
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::ChatTemplate(format!("does not parse: {e}")))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The BOS string the template may print.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The EOS string the template may print.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_values(messages, add_generation_prompt)
    }

    /// Renders messages of any serialisable shape, e.g. a multimodal message whose `content` is
    /// a list of parts (`{"type": "image"}`, `{"type": "text", "text": …}`), as transformers'
    /// `apply_chat_template` passes them.
    pub fn render_values<M: Serialize>(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let t = self
            .env
            .get_template("chat")
            .map_err(|e| Error::ChatTemplate(e.to_string()))?;
        let mut out = BoundedWriter(Vec::new());
        t.render_captured_to(
            context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            },
            &mut out,
        )
        .map_err(|e| {
            if out.0.len() >= MAX_RENDERED_BYTES {
                Error::ChatTemplate(format!(
                    "render failed: the prompt grew past {MAX_RENDERED_BYTES} bytes"
                ))
            } else {
                Error::ChatTemplate(format!("render failed: {e}"))
            }
        })?;
        String::from_utf8(out.0)
            .map_err(|e| Error::ChatTemplate(format!("render produced invalid UTF-8: {e}")))
    }
}

/// Collects rendered text, refusing to grow past [`MAX_RENDERED_BYTES`].
struct BoundedWriter(Vec<u8>);

impl std::io::Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            self.0.resize(MAX_RENDERED_BYTES, 0);
            return Err(std::io::Error::other("rendered prompt too long"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plain ChatML template for models that ship none (Qwen's format; SmolLM2 uses it too).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(strftime_utc("%Y-%m-%d", 0), "1970-01-01");
        assert_eq!(strftime_utc("%d %B %Y", 20_597), "24 May 2026");
        assert_eq!(strftime_utc("%b", 59), "Mar");
    }

    #[test]
    fn chatml_renders() {
        let t = ChatTemplate::new(CHATML_TEMPLATE, "", "<|im_end|>").unwrap();
        let s = t
            .render(
                &[
                    ChatMessage::new("system", "S"),
                    ChatMessage::new("user", "hi"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            s,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_and_exceptions() {
        let src = "{% for m in messages %}{% if m.role not in ['user','assistant'] %}{{ raise_exception('bad role ' + m.role) }}{% endif %}{{ m.content.strip() | tojson }}{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(
            t.render(&[ChatMessage::new("user", "  a<b  ")], false)
                .unwrap(),
            "\"a<b\""
        );
        let e = t
            .render(&[ChatMessage::new("tool", "x")], false)
            .unwrap_err();
        assert!(e.to_string().contains("bad role tool"), "{e}");
        assert!(ChatTemplate::new("{% if %}", "", "").is_err());
    }

    #[test]
    fn hostile_templates_are_bounded() {
        let msgs = [ChatMessage::new("user", "hi")];
        // Endless work: fuel runs out.
        let spin =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let e = ChatTemplate::new(spin, "", "")
            .unwrap()
            .render(&msgs, true)
            .unwrap_err();
        assert!(e.to_string().contains("render failed"), "{e}");
        // Endless output: the writer stops it.
        let flood = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}";
        let e = ChatTemplate::new(flood, "", "")
            .unwrap()
            .render(&msgs, true)
            .unwrap_err();
        assert!(e.to_string().contains("grew past"), "{e}");
        // A huge indent is refused before it is allocated.
        let wide = "{{ messages | tojson(indent=1000000000000) }}";
        let e = ChatTemplate::new(wide, "", "")
            .unwrap()
            .render(&msgs, true)
            .unwrap_err();
        assert!(e.to_string().contains("wider than"), "{e}");
        // Real-sized work still renders.
        let ok = "{% for i in range(1000) %}{{ messages[0].content }}{% endfor %}";
        let s = ChatTemplate::new(ok, "", "")
            .unwrap()
            .render(&msgs, true)
            .unwrap();
        assert_eq!(s.len(), 2000);
    }
}
