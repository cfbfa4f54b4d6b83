"""The test strings for tokenizer parity (shared by the fixture scripts).

At least 200 strings: unicode, whitespace runs, digits, code, special tokens and
chat-formatted text. Deterministic: no randomness, so the fixture is reproducible.
"""

BASE = [
    "", " ", "  ", "\n", "\n\n", "\t", " \t \n ", "a", "A", "Hello world", "Hello  world",
    "hello\nworld", "   leading spaces", "trailing spaces   ", "Tabs\tand\ttabs",
    "0", "7", "12", "123", "1234", "12345678901234567890", "3.14159", "-42", "1,000,000",
    "version 2.0.1", "x=1+2*3", "2024-05-17T12:34:56Z", "+49 (0)30 1234567",
    "naïve café", "Ünïcödé", "日本語のテキスト", "東京タワー", "中文测试", "한국어 텍스트",
    "Привет, мир!", "Γειά σου Κόσμε", "שלום עולם", "مرحبا بالعالم", "हिन्दी",
    "emoji 😀🚁🤖", "👍🏽", "🇩🇪🇫🇷", "e\u0301", "\u200b zero width", "a\u00a0b",
    "def f(x):\n    return x * 2\n", "fn main() { println!(\"hi\"); }",
    "for (int i = 0; i < n; ++i) {}", "<div class=\"a\">b</div>", "SELECT * FROM t WHERE a = 1;",
    "{\"key\": [1, 2, 3], \"ok\": true}", "if a != b && c <= d || !e: pass",
    "path/to/file.txt", "C:\\Windows\\System32", "https://example.com/a?b=c&d=e#f",
    "user@example.com", "#hashtag @mention", "$100.00 and 50%", "a--b__c..d",
    "I'm", "you're", "they've", "she'll", "he'd", "it's", "DON'T", "Rock'n'roll",
    "The quick brown fox jumps over the lazy dog.",
    "Move forward, move backward, move left, move right, move upward, move downward.",
    "rotate left, rotate right, tilt downward, or tilt upward",
    "<think>The tower is to my left.</think>\n<answer>B</answer>",
    "<think> reasoning process here </think> \n<answer> answer here </answer>",
    "Question: Which object is closest to the door?\nChoices:\nA. chair\nB. table\nC. lamp\nD. sofa",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|im_end|>more", "<|im_start|><|im_end|>", "<|im_start", "im_start|>", "< |im_end| >",
    "<s>", "</s>", "<unk>", "[INST] hi [/INST]",
    "   \n\n   \n", "a \n b", "a  \n  b", "end with newline\n", "\r\n windows \r\n",
    "ALL CAPS SENTENCE", "camelCaseIdentifier", "snake_case_identifier", "kebab-case-id",
    "x" * 50, "ab" * 40, " " * 17, "\n" * 9, "1" * 33, "-" * 20, "=" * 12,
]

WORDS = ["drone", "tower", "balcony", "bridge", "red", "building", "left", "right", "ahead",
         "behind", "above", "below", "door", "chair", "table", "3", "42", "100", "7.5"]
SEPS = [" ", "  ", ", ", "\n", "\t", ". ", "-", "_", "/", ": "]


def strings():
    out = list(BASE)
    # Deterministic combinations of words and separators.
    for i in range(120):
        n = 2 + i % 5
        parts = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)]
        sep = SEPS[i % len(SEPS)]
        s = sep.join(parts)
        if i % 4 == 1:
            s = s.capitalize()
        if i % 6 == 2:
            s = " " + s
        if i % 9 == 3:
            s = s + "?"
        out.append(s)
    # Deduplicate, keep order.
    seen, uniq = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


if __name__ == "__main__":
    print(len(strings()))
