#!/usr/bin/env python3
"""The speed anchor: llama.cpp (llama-cpp-python) on the same GGUF and the same chat prompt
as `embodied-r bench lm`. Prints `prefill_tok_s=<x> decode_tok_s=<y>` as its last line.

Install: CMAKE_ARGS="-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
         python3 -m pip install llama-cpp-python==0.3.36
Usage:   python3 tools/bench_llamacpp.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                         [--threads 2] [--decode-tokens 128] [--runs 3]
"""

import argparse
import json
import os
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import llama_cpp

    chat = json.load(open(os.path.join(HERE, "..", "launch", "assets", "bench_chat.json")))
    llm = llama_cpp.Llama(args.model, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads,
                          n_batch=1024, n_ubatch=1024, verbose=False)
    from transformers import AutoTokenizer  # the GGUF's chat template, rendered as transformers does

    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.model)),
                                        gguf_file=os.path.basename(args.model))
    text = tok.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=True)
    ids = llm.tokenize(text.encode(), add_bos=False, special=True)

    # warm-up
    llm.reset()
    llm.eval(ids[:32])
    prefill, decode = [], []
    for _ in range(args.runs):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        n = 0
        for t in llm.generate([], top_k=1, temp=0.0, reset=False):
            n += 1
            if n == args.decode_tokens:
                break
        t2 = time.perf_counter()
        prefill.append(len(ids) / (t1 - t0))
        # The first token comes from the prompt's logits; the rest are decode steps.
        decode.append((n - 1) / (t2 - t1))
        print(f"run: prefill {len(ids)} tok {prefill[-1]:.1f} tok/s, decode {n} tok {decode[-1]:.1f} tok/s",
              flush=True)
    print(f"prefill_tok_s={statistics.median(prefill):.1f} decode_tok_s={statistics.median(decode):.1f}")


if __name__ == "__main__":
    main()
