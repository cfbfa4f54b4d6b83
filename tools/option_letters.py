#!/usr/bin/env python3
"""Does the answer letter say what the think concluded? For every option answer in an
`embodied-r eval --results FILE` log, finds the option text the think's last sentence names (the
option whose text ends last in it; longest texts first, so "ahead-left" is not read as "left")
and compares that text's letter with the letter answered. A think that ends like the rules
traces, "So <option text> is <letter>.", names that text.

Prints, overall and per category: option answers, how many name an option in the last sentence,
how many of those answer another letter than the named text's, and the accuracy the answers
would have if the letter always followed the named text.

    python3 tools/option_letters.py DATA.json RESULTS.jsonl
"""
import json
import re
import sys
from collections import defaultdict

from compare_evals import load


def options(question):
    out = {}
    seen = False
    for line in question.splitlines():
        if line.strip() == "Choices:":
            seen = True
            continue
        m = re.match(r"^([A-Z])\. (.+)$", line.strip())
        if seen and m:
            out[m.group(1)] = m.group(2).strip()
    return out


def named(think, opts):
    """(letter, text) of the option whose text ends last in the think's last sentence naming one."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", think.strip()) if s]
    # The rules traces' ending, "So <option text> is <letter>.": the text is the conclusion.
    m = re.match(r"^So (.+?) (?:is|would be) [A-Z]\.$", sentences[-1]) if sentences else None
    if m:
        for letter, text in opts.items():
            if text.lower() == m.group(1).strip().lower():
                return letter, text
    by_len = sorted(opts.items(), key=lambda kv: -len(kv[1]))
    for s in reversed(sentences):
        low = s.lower()
        best = None
        taken = [False] * len(low)
        for letter, text in by_len:
            pat = r"(?<![\w-])" + re.escape(text.lower()) + r"(?![\w-])"
            for m in re.finditer(pat, low):
                if any(taken[m.start():m.end()]):
                    continue
                for i in range(m.start(), m.end()):
                    taken[i] = True
                if best is None or m.end() > best[0]:
                    best = (m.end(), letter, text)
        if best:
            return best[1], best[2]
    return None


def main(data_path, results_path):
    data = {str(r["Question_id"]): r for r in json.load(open(data_path))}
    stats = defaultdict(lambda: defaultdict(int))
    for it in load(results_path).values():
        row = data.get(str(it["id"]))
        if row is None or it.get("choice") is None:
            continue
        opts = options(row["question"])
        if not opts:
            continue
        comp = it["completion"]
        think = comp.split("</think>")[0].replace("<think>", "")
        for key in ("all", it["category"]):
            st = stats[key]
            st["answers"] += 1
            st["correct"] += it["choice"] == row["answer"]
            n = named(think, opts)
            if n is None:
                st["if_followed"] += it["choice"] == row["answer"]
                continue
            st["named"] += 1
            st["mismatch"] += it["choice"] != n[0]
            st["if_followed"] += n[0] == row["answer"]
    for key in ["all"] + sorted(k for k in stats if k != "all"):
        st = stats[key]
        a = st["answers"]
        print(f"{key:28s} answers {a:3d}  name an option {st['named']:3d}  "
              f"letter differs {st['mismatch']:3d}  correct {st['correct'] / a:6.1%}  "
              f"if the letter followed the text {st['if_followed'] / a:6.1%}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
