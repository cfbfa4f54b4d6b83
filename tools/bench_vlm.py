#!/usr/bin/env python3
"""The transformers anchor for `embodied-r bench vlm` (run by hand; it installs nothing).

Loads the random-weight folder that `embodied-r bench vlm --config NAME --keep DIR` wrote, so
both sides run the same model on the same synthetic 640x480 frames (the same pattern as
`bench_frame` in launch/src/bench_vlm.rs), with the PIL image processor and the same prompt,
and prints the same four figures for float32 and bfloat16:

    encode_ms_per_image=<x> prefill_tok_s=<y> decode_tok_s=<z> peak_mib=<m>

encode = preprocessing + vision tower + connector (+ the prompt's token embeddings), prefill =
the language model over the whole prompt, decode = greedy tokens after it (EOS ignored). Peak
memory is the process's ru_maxrss after the run (each dtype runs in its own process).
SmolVLM folders and Qwen2.5-VL folders (M-RoPE positions from the model's get_rope_index) are
both handled; the folder's config.json decides.

Usage:
  embodied-r bench vlm --config smolvlm-256m --images 1 --threads 2 --keep /tmp/smolvlm-256m
  python3 tools/bench_vlm.py /tmp/smolvlm-256m --images 1 --threads 2 [--dtype float32|bfloat16]

Needs: pip install torch torchvision transformers pillow num2words numpy
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

PROMPT = "Describe what the robot sees, object by object, with positions."


def frame(i):
    import numpy as np

    w, h = 640, 480
    y, x = np.mgrid[0:h, 0:w]
    checker = (((x // 40 + y // 40 + i) % 2) * 120).astype(np.uint8)
    r = ((x * 255 // w).astype(np.uint8)) ^ checker
    g = (y * 255 // h).astype(np.uint8)
    b = ((x + y + 37 * i) % 256).astype(np.uint8)
    return np.stack([r, g, b], -1)


def load(folder, dt):
    """The model, its processor and the language-model callable for this folder's family."""
    from transformers import PreTrainedTokenizerFast

    pc = json.load(open(os.path.join(folder, "processor_config.json")))
    ipc = {k: v for k, v in pc["image_processor"].items() if k != "image_processor_type"}
    tc = json.load(open(os.path.join(folder, "tokenizer_config.json")))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"),
                                  **{k: tc[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if k in tc})
    template = open(os.path.join(folder, "chat_template.jinja")).read()
    arch = json.load(open(os.path.join(folder, "config.json")))["architectures"][0]
    if arch.startswith("Qwen2_5_VL"):
        from transformers import (Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil,
                                  Qwen2VLVideoProcessor)

        proc = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessorPil(**ipc), tokenizer=tok,
                                   video_processor=Qwen2VLVideoProcessor(), chat_template=template)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=dt, attn_implementation="sdpa")
        return "qwen", model, proc, model.model.language_model
    from transformers import SmolVLMForConditionalGeneration, SmolVLMImageProcessorPil, SmolVLMProcessor, SmolVLMVideoProcessor

    proc = SmolVLMProcessor(image_processor=SmolVLMImageProcessorPil(**ipc), tokenizer=tok,
                            video_processor=SmolVLMVideoProcessor(), image_seq_len=pc["image_seq_len"],
                            chat_template=template)
    model = SmolVLMForConditionalGeneration.from_pretrained(folder, dtype=dt, attn_implementation="sdpa")
    return "smolvlm", model, proc, model.model.text_model


def run_one(folder, images, threads, dtype, decode_tokens):
    import torch
    from PIL import Image

    torch.set_num_threads(threads)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    family, model, proc, lm = load(folder, dt)
    model.eval()
    imgs = [Image.fromarray(frame(i)) for i in range(images)]
    content = [{"type": "image"} for _ in imgs] + [{"type": "text", "text": PROMPT}]
    text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    with torch.inference_mode():
        t0 = time.perf_counter()
        if family == "qwen":
            inputs = proc(text=[text], images=imgs, return_tensors="pt")
            pv = inputs["pixel_values"].to(dt)
            feats = model.model.get_image_features(pixel_values=pv, image_grid_thw=inputs["image_grid_thw"])
            tiles = len(imgs)
        else:
            inputs = proc(text=[text], images=[imgs], return_tensors="pt")
            pv = inputs["pixel_values"].to(dt)
            feats = model.model.get_image_features(pixel_values=pv, pixel_attention_mask=inputs["pixel_attention_mask"])
            tiles = int(pv.shape[1])
        embeds = model.model.get_input_embeddings()(inputs["input_ids"])
        pooled = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        encode_s = time.perf_counter() - t0
        n = inputs["input_ids"].shape[1]
        # Prefill: the language model over the prompt's embeddings (image features in place).
        mask = inputs["input_ids"] == model.config.image_token_id
        if isinstance(pooled, (list, tuple)):
            pooled = torch.cat([p.reshape(-1, p.shape[-1]) for p in pooled])
        embeds = embeds.masked_scatter(mask.unsqueeze(-1), pooled.reshape(-1, pooled.shape[-1]).to(embeds.dtype))
        kw, delta = {}, 0
        if family == "qwen":
            pos, delta = model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                                    image_grid_thw=inputs["image_grid_thw"])
            kw = {"position_ids": pos}
            delta = int(delta[0, 0])
        t1 = time.perf_counter()
        out = lm(inputs_embeds=embeds, use_cache=True, **kw)
        logits = model.lm_head(out.last_hidden_state[:, -1:])
        prefill_s = time.perf_counter() - t1
        past = out.past_key_values
        tokv = logits.argmax(-1)
        t2 = time.perf_counter()
        for step in range(decode_tokens - 1):
            kw = {}
            if family == "qwen":
                kw = {"position_ids": torch.full((3, 1, 1), n + step + delta, dtype=torch.long)}
            o = lm(input_ids=tokv, past_key_values=past, use_cache=True, **kw)
            past = o.past_key_values
            tokv = model.lm_head(o.last_hidden_state).argmax(-1)
        decode_s = time.perf_counter() - t2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "dtype": dtype, "images": images, "tiles": tiles, "prompt_tokens": int(n),
        "encode_ms_per_image": encode_s * 1000 / images, "prefill_tok_s": n / prefill_s,
        "decode_tok_s": (decode_tokens - 1) / decode_s, "peak_mib": peak, "threads": threads,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"])
    a = ap.parse_args()
    if a.dtype:
        r = run_one(a.folder, a.images, a.threads, a.dtype, a.decode_tokens)
        print(json.dumps(r))
        return
    # Each dtype in its own process, so peak memory is its own.
    for dt in ["float32", "bfloat16"]:
        out = subprocess.run([sys.executable, __file__, a.folder, "--images", str(a.images), "--threads",
                              str(a.threads), "--decode-tokens", str(a.decode_tokens), "--dtype", dt],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"transformers {dt}: {json.dumps(r)}", file=sys.stderr)
        print(f"encode_ms_per_image={r['encode_ms_per_image']:.1f} prefill_tok_s={r['prefill_tok_s']:.1f} "
              f"decode_tok_s={r['decode_tok_s']:.2f} peak_mib={r['peak_mib']:.0f} dtype={dt}")


if __name__ == "__main__":
    main()
