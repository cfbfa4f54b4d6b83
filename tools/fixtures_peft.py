#!/usr/bin/env python3
"""Proof that a training checkpoint's adapter folder is a complete PEFT adapter.

Runs the trainer's `exported_folder_matches_transformers` test with EMBODIED_R_PEFT_DIR set, so
the test trains the tiny Llama with LoRA for four GRPO steps and copies `checkpoint-4`'s
`adapter_config.json` and `adapter_model.safetensors`, as the trainer wrote them, into
trainer/tests/fixtures/peft_tiny/. Then loads the tiny Llama with transformers, puts the folder
on it with `peft.PeftModel.from_pretrained`, and writes peft_tiny/peft.json: the prompt, the
last-position logits, an 8-token greedy continuation and how far the adapter moved the logits
from the base. The committed test (trainer/tests/learns.rs) loads the same folder with our
`--adapter` path and must compute the same, without Python.

Needs: pip install torch transformers peft safetensors
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TINY = os.path.join(ROOT, "reasoner", "tests", "fixtures", "tiny-llama")
OUT = os.path.join(ROOT, "trainer", "tests", "fixtures", "peft_tiny")
PROMPT = [1, 20, 33, 47, 5, 99, 300, 12]


def main():
    import peft
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    env = dict(os.environ, EMBODIED_R_PEFT_DIR=OUT)
    subprocess.run(["cargo", "test", "-p", "embodied-r-trainer", "--test", "learns",
                    "exported_folder_matches_transformers"], cwd=ROOT, env=env, check=True)
    base = AutoModelForCausalLM.from_pretrained(TINY, torch_dtype=torch.float32).eval()
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        base_logits = base(ids).logits[0, -1].clone()
    model = peft.PeftModel.from_pretrained(base, OUT).eval()
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
        gen = model.generate(input_ids=ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    fix = {
        "prompt": PROMPT,
        "last_logits": logits.tolist(),
        "greedy": gen[0, len(PROMPT):].tolist(),
        "base_peft_max_diff": float((logits - base_logits).abs().max()),
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    with open(os.path.join(OUT, "peft.json"), "w") as f:
        json.dump(fix, f)
    print(f"wrote {OUT}/peft.json: greedy {fix['greedy']}, adapter moved logits by "
          f"{fix['base_peft_max_diff']:.3g}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
