#!/usr/bin/env python3
"""Proof that llama.cpp runs what `embodied-r train export --gguf` writes, and how it answers.

Exports the shipped adapter merged into the default SmolLM2-135M GGUF as Q8_0 with our binary,
loads the file with llama.cpp (llama-cpp-python) and writes tests/fixtures/gguf_export.json: the
exported file's SHA-256 and, for a few chat-formatted prompts (token ids from llama.cpp's
tokenizer of that file), llama.cpp's greedy continuation and the top-2 logit margin at each
step. The committed test (tests/tests/export_gguf.rs) exports the same file again (the export is
deterministic: the hash must match, else rerun this script), runs our fast path on the same ids
and requires the same tokens up to the first step where llama.cpp itself was within a near tie.

Needs: `cargo run -p embodied-r-launch -- fetch-model`, a debug build of the binary, and
       CMAKE_ARGS="-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
       python3 -m pip install llama-cpp-python==0.3.36 numpy
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "target", "debug", "embodied-r")
BASE = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
ADAPTER = os.path.join(ROOT, "launch", "models", "embodied-r-smollm2")
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf_export.json")
STEPS = 24

SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags."
)
USERS = [
    "Video content:\nFrame 0: a red door to the left, a tall tower ahead.\nFrame 1: After move forward, "
    "the tower is closer.\nQuestion: Is the tower to my left or right?\nChoices:\nA. left\nB. right",
    "Question: How many chairs are in the room?",
    "The tower was ahead, then I turned left. Where is the tower now?\nChoices:\nA. ahead\nB. right\nC. behind",
]


def chatml(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def main():
    import llama_cpp
    import numpy as np

    tmp = tempfile.mkdtemp(prefix="gguf_export_")
    gguf = os.path.join(tmp, "merged-q8_0.gguf")
    out = subprocess.run([BIN, "train", "export", "--adapter", ADAPTER, "--base", BASE, "--gguf", gguf,
                          "--quant", "q8_0"], check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    sha = hashlib.sha256(open(gguf, "rb").read()).hexdigest()

    llm = llama_cpp.Llama(model_path=gguf, n_ctx=1024, n_threads=2, n_batch=512, logits_all=True,
                          verbose=False)
    prompts = []
    for user in USERS:
        text = chatml(user)
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        greedy, margins = [], []
        for _ in range(STEPS):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            top = np.argsort(logits)[-2:]
            greedy.append(int(top[1]))
            margins.append(float(logits[top[1]] - logits[top[0]]))
            llm.eval([int(top[1])])
        prompts.append({
            "text": text,
            "ids": [int(i) for i in ids],
            "greedy": greedy,
            "greedy_text": llm.detokenize(greedy).decode("utf-8", "replace"),
            "margins": margins,
        })
        print(f"{len(ids)} prompt tokens → {prompts[-1]['greedy_text']!r}", file=sys.stderr)
    fixture = {
        "export": {"adapter": "launch/models/embodied-r-smollm2", "base": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
                   "quant": "q8_0", "sha256": sha, "bytes": report["bytes"]},
        "llama_cpp_python": llama_cpp.__version__,
        "prompts": prompts,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
