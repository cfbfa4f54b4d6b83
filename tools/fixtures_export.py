#!/usr/bin/env python3
"""Proof that transformers loads what `embodied-r train export` writes, and computes the same
numbers from it.

Runs the trainer's `exported_folder_matches_transformers` test with EMBODIED_R_EXPORT_DIR set,
so the test trains the tiny Llama for a few GRPO steps, exports the LoRA-merged checkpoint as a
Hugging Face folder and keeps it. Then loads that folder with transformers (model, tokenizer and
chat template) and writes trainer/tests/fixtures/export_tiny.json: the prompt, last-position
logits and an 8-token greedy continuation. The committed test compares our loader's numbers on
its own export with these, without Python.

Needs: pip install torch transformers
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROMPT = [1, 20, 33, 47, 5, 99, 300, 12]


def main():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tempfile.mkdtemp(prefix="export_tiny_")
    env = dict(os.environ, EMBODIED_R_EXPORT_DIR=out)
    subprocess.run(
        ["cargo", "test", "-p", "embodied-r-trainer", "--test", "learns",
         "exported_folder_matches_transformers"],
        cwd=ROOT, env=env, check=True,
    )
    model = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(out)
    chat = tok.apply_chat_template([{"role": "user", "content": "Where is the door?"}],
                                   tokenize=False, add_generation_prompt=True)
    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        logits = model(ids).logits[0, -1].tolist()
        gen = model.generate(ids, max_new_tokens=8, do_sample=False, min_new_tokens=8)
    greedy = gen[0, len(PROMPT):].tolist()
    fix = {
        "prompt": PROMPT,
        "last_logits": logits,
        "greedy": greedy,
        "chat_render": chat,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
    }
    path = os.path.join(ROOT, "trainer", "tests", "fixtures", "export_tiny.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(fix, f)
    print(f"wrote {path}: greedy {greedy}")


if __name__ == "__main__":
    sys.exit(main())
