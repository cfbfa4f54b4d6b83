#!/usr/bin/env python3
"""Paired comparison of `embodied-r eval --results FILE` item logs on the same questions.

Prints, per run: accuracy with a 95 % Wilson interval overall and per category, format rate, and
consistency rate over correct option answers; for each run after the first, the exact (binomial)
McNemar test against the first on the questions both answered (numeric answers count as correct
when their accuracy reaches 0.5, the MRA midpoint).

    python3 tools/compare_evals.py base.jsonl sft.jsonl [more.jsonl ...]
"""
import json
import math
import sys
from collections import defaultdict


def wilson(k, n, z=1.96):
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def mcnemar_exact(b, c):
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def load(path):
    items = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                it = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            items[it["id"]] = it
    return items


def main(paths):
    runs = [(p, load(p)) for p in paths]
    common = set.intersection(*(set(r) for _, r in runs))
    if not common:
        sys.exit("no question is in every file")
    print(f"{len(common)} questions in all {len(runs)} files")
    base = runs[0][1]
    for path, r in runs:
        its = [r[i] for i in sorted(common)]
        acc = sum(i["accuracy"] for i in its) / len(its)
        right = sum(1 for i in its if i["accuracy"] >= 0.5)
        lo, hi = wilson(right, len(its))
        fmt = sum(i["format"] for i in its) / len(its)
        opt = [i for i in its if i.get("consistency") is not None and i["accuracy"] >= 1.0]
        cons = (sum(i["consistency"] for i in opt) / len(opt)) if opt else float("nan")
        print(f"\n{path}: accuracy {acc:.1%} (correct {right}/{len(its)}, 95% {lo:.1%}-{hi:.1%}),"
              f" format {fmt:.1%}, consistency {cons:.1%} of {len(opt)} correct option answers")
        cats = defaultdict(list)
        for i in its:
            cats[i["category"]].append(i)
        for c in sorted(cats):
            v = cats[c]
            k = sum(1 for i in v if i["accuracy"] >= 0.5)
            lo, hi = wilson(k, len(v))
            a = sum(i["accuracy"] for i in v) / len(v)
            print(f"  {c:28s} n {len(v):3d}  acc {a:6.1%}  95% {lo:6.1%}-{hi:6.1%}")
        if r is not base:
            b = sum(1 for i in common if base[i]["accuracy"] >= 0.5 and r[i]["accuracy"] < 0.5)
            c = sum(1 for i in common if base[i]["accuracy"] < 0.5 and r[i]["accuracy"] >= 0.5)
            print(f"  McNemar vs {runs[0][0]}: {c} gained, {b} lost, exact p = {mcnemar_exact(b, c):.2g}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
