#!/usr/bin/env python3
"""Reference numbers for the embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF).

Run by hand after `embodied-r fetch-model`; writes reasoner/tests/fixtures/smollm2/:
- tokenizer.json: ids for every test string from three tokenizers of the same GGUF:
  * "reference": transformers' tokenizer built from the GGUF, with SmolLM2's own pre-tokenizer
    (Digits(individual) + ByteLevel, as in the model's tokenizer.json and llama.cpp's `smollm`);
  * "llama_cpp": llama.cpp's tokenizer (llama-cpp-python, vocab only);
  * "transformers_gguf_default": transformers' GGUF loader as is. It has no `smollm`
    pre-tokenizer and falls back to plain ByteLevel, which differs on a few strings with
    spaces before digits; kept to document that difference.
  plus chat renders of the GGUF's template by transformers' apply_chat_template.
- model.json: prompts (token ids from the reference tokenizer), greedy 32-token continuations
  (transformers, dequantized to f32, do_sample=False) and per-step top-2 margins.
- logits.bin: last-position logits of every prompt, little-endian f32, concatenated.
- model.json also records llama.cpp's distance from those logits (max |Δ| / logit range) and
  how many greedy tokens it shares with transformers: the yardstick for our 8-bit fast path.

Needs: pip install torch transformers gguf accelerate llama-cpp-python numpy
"""

import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_strings import strings  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.environ.get("SMOLLM2_GGUF", os.path.join(HERE, "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
OUT = os.path.join(HERE, "..", "reasoner", "tests", "fixtures", "smollm2")

SYSTEM_R1 = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags."
)

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a drone pilot assistant."},
     {"role": "user", "content": "The tower is ahead and slightly left. Which way should I rotate to face it?"}],
    [{"role": "system", "content": SYSTEM_R1},
     {"role": "user", "content": "Please assume the role of an agent. Video content:\n<\nFrame 0: Observe: a red "
      "building to the left, a tall tower ahead.\nFrame 1: After move forward, Observe: the tower is closer, a "
      "bridge below.\n>\nQuestion: Is the tower to my left or right?\nChoices:\nA. left\nB. right"}],
    [{"role": "user", "content": "Write a haiku about a small robot exploring a city at night."}],
    [{"role": "user", "content": "List three colors."}, {"role": "assistant", "content": "Red, green, blue."},
     {"role": "user", "content": "Now three more, in French, with numbers 1 to 3."}],
    [{"role": "user", "content": "Explain in one sentence why 17 is a prime number."}],
]


def main():
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import llama_cpp

    d, f = os.path.dirname(os.path.abspath(MODEL)), os.path.basename(MODEL)
    os.makedirs(OUT, exist_ok=True)
    default = AutoTokenizer.from_pretrained(d, gguf_file=f)
    ref = AutoTokenizer.from_pretrained(d, gguf_file=f)
    ref.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    lcpp = llama_cpp.Llama(MODEL, vocab_only=True, verbose=False)

    ss = strings()
    tok = {
        "strings": ss,
        "reference": [ref(s, add_special_tokens=False)["input_ids"] for s in ss],
        "llama_cpp": [lcpp.tokenize(s.encode(), add_bos=False, special=True) for s in ss],
        "transformers_gguf_default": [default(s, add_special_tokens=False)["input_ids"] for s in ss],
        "renders": [
            {"messages": c, "add_generation_prompt": g,
             "text": ref.apply_chat_template(c, tokenize=False, add_generation_prompt=g)}
            for c in CHATS for g in (True, False)
        ],
    }
    tok["decoded"] = [ref.decode(i, skip_special_tokens=True) for i in tok["reference"]]
    with open(os.path.join(OUT, "tokenizer.json"), "w") as fh:
        json.dump(tok, fh, ensure_ascii=False)
    n_diff = sum(a != b for a, b in zip(tok["reference"], tok["llama_cpp"]))
    n_tf = sum(a != b for a, b in zip(tok["reference"], tok["transformers_gguf_default"]))
    print(f"tokenizer: {len(ss)} strings; reference vs llama.cpp differ on {n_diff}; "
          f"vs transformers' GGUF default on {n_tf}")

    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    prompts, rows, blob = [], [], bytearray()
    for c in CHATS:
        text = ref.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
        prompts.append({"kind": "chat", "messages": c, "text": text,
                        "ids": ref(text, add_special_tokens=False)["input_ids"]})
    raw = "The drone flew over the bridge and"
    prompts.append({"kind": "raw", "text": raw, "ids": ref(raw, add_special_tokens=False)["input_ids"]})
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p["ids"]])
            logits = model(ids).logits[0, -1].float()
            blob += struct.pack(f"<{logits.numel()}f", *logits.tolist())
            # An explicit all-ones mask: the pad id (2) is also <|im_end|>, which chat prompts
            # contain; without the mask generate() would mask those prompt tokens out.
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32,
                                 do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=2)
            gen = out.sequences[0, ids.shape[1]:].tolist()
            margins = [float(torch.topk(s[0], 2).values[0] - torch.topk(s[0], 2).values[1]) for s in out.scores]
            rows.append({**p, "greedy": gen, "greedy_text": ref.decode(gen), "margins": margins})
    # llama.cpp (8-bit activations) on the same prompts, for comparison with our fast path.
    import numpy as np

    lcpp_full = llama_cpp.Llama(MODEL, n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
    for r in rows:
        lcpp_full.reset()
        lcpp_full.eval(r["ids"])
        got = np.array(lcpp_full.scores[lcpp_full.n_tokens - 1], dtype=np.float32)
        want = np.frombuffer(blob, dtype="<f4").reshape(len(rows), -1)[rows.index(r)]
        r["llama_cpp_rel_err"] = float(np.abs(got - want).max() / (want.max() - want.min()))
        toks = []
        for t in lcpp_full.generate(r["ids"], top_k=1, temp=0.0, reset=True):
            toks.append(t)
            if len(toks) == len(r["greedy"]):
                break
        r["llama_cpp_greedy_match"] = next((i for i, (a, b) in enumerate(zip(toks, r["greedy"])) if a != b),
                                           len(r["greedy"]))
    with open(os.path.join(OUT, "logits.bin"), "wb") as fh:
        fh.write(blob)
    with open(os.path.join(OUT, "model.json"), "w") as fh:
        json.dump({"model": f, "vocab_size": model.config.vocab_size, "prompts": rows}, fh, ensure_ascii=False, indent=1)
    print(f"model: {len(rows)} prompts, min greedy margin {min(min(r['margins']) for r in rows):.4f}, "
          f"llama.cpp worst logit error {max(r['llama_cpp_rel_err'] for r in rows):.3e}, greedy matches "
          f"{[r['llama_cpp_greedy_match'] for r in rows]}")


if __name__ == "__main__":
    main()
