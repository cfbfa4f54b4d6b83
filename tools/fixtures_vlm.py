#!/usr/bin/env python3
"""Writes the local-VLM parity fixtures (run by hand; the Rust tests then run without Python).

Three tiny random-weight vision-language models of the real architectures, built and run with
transformers on CPU in float32 with eager attention:

- smolvlm/: `SmolVLMForConditionalGeneration` with SmolLM2's real 49k tokenizer (from the
  embedded GGUF) plus SmolVLM's image tokens, tied embeddings, GQA 4:2.
- idefics3/: `Idefics3ForConditionalGeneration` with the small BPE of tiny-tokenizer/ plus the
  same image tokens, untied lm_head, GQA 4:1.
- qwen2_5_vl/: `Qwen2_5_VLForConditionalGeneration` with tiny-tokenizer/ plus Qwen's vision
  tokens, untied lm_head, GQA 4:2, M-RoPE sections [2, 3, 3]; vision tower of 4 blocks with 4-px
  patches, 2x2 merge, 16-px windows (blocks 1 and 3 attend to the whole image), dynamic
  resolution to multiples of 8 between 512 and 1600 pixels (both bounds hit by the images).

The Idefics3 pair: SigLIP vision tower (32-px tiles, 8-px patches, 2 layers), pixel-shuffle connector
(scale 2: 4 tokens per tile), image splitting on (longest edge 64: up to 2x2 tiles + the global
image), two images per prompt. Weights are rounded to bfloat16 and saved as bf16 safetensors
(what real checkpoints hold); the reference numbers are computed in float32 from those rounded
weights, so loading the bf16 file reproduces them exactly.

Written under reasoner/tests/fixtures/vlm/:
- images/*.png: the test images (deterministic patterns, odd sizes, one portrait);
- <model>/: config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
  preprocessor_config.json, processor_config.json, chat_template.json (what a Hugging Face
  folder holds);
- reference/<model>.safetensors: pixel values per image (PIL image processor), vision-tower
  output and connector output for each prompt's tiles, last-position logits;
- reference/<model>.json: per prompt the messages, the rendered chat, the input ids, the
  tile grid of every image and the greedy 16-token continuation (EOS not stopping it).

The image processor is the PIL one (`SmolVLMImageProcessorPil`, `Idefics3ImageProcessorPil`):
its LANCZOS resize is the numerics the checkpoints were trained with. transformers' default
torchvision processor only approximates it; `torchvision_max_abs_diff` in reference.json says by
how much for these images.

Needs: pip install torch torchvision transformers pillow num2words safetensors numpy gguf
and the SmolLM2 GGUF (`embodied-r fetch-model` puts it in models/; or pass its path).
"""

import glob
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "reasoner", "tests", "fixtures")
OUT = os.path.join(ROOT, "vlm")
TOKENS_PER_SIDE = 6  # <row_r_col_c> tokens for r, c in 1..6, as SmolVLM's tokenizer has

CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'] is string %}{{': ' + message['content']}}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

PROMPTS = [
    [{"type": "image"}, {"type": "image"},
     {"type": "text", "text": "What changed between these two views?"}],
    [{"type": "image"}, {"type": "text", "text": "Describe the scene."}],
    [{"type": "text", "text": "Two frames:"}, {"type": "image"}, {"type": "image"},
     {"type": "text", "text": "Which object is closest?"}],
]
# Which images each prompt uses, by file name.
PROMPT_IMAGES = [["wide.png", "tall.png"], ["small.png"], ["tall.png", "wide.png"]]


def write_images():
    d = os.path.join(OUT, "images")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)

    def pattern(h, w, seed):
        y, x = np.mgrid[0:h, 0:w]
        r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
        g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
        b = (((x // 5 + y // 3 + seed) % 2) * 200 + 20).astype(np.uint8)
        img = np.stack([r, g, b], -1)
        noise = rng.integers(0, 40, size=img.shape, dtype=np.uint8)
        return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)

    sizes = {"wide.png": (30, 45, 0), "tall.png": (70, 26, 1), "small.png": (20, 24, 2)}
    for name, (h, w, seed) in sizes.items():
        Image.fromarray(pattern(h, w, seed)).save(os.path.join(d, name))
    return d


def image_tokens():
    toks = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    for r in range(1, TOKENS_PER_SIDE + 1):
        for c in range(1, TOKENS_PER_SIDE + 1):
            toks.append(f"<row_{r}_col_{c}>")
    return toks


def smollm2_tokenizer(gguf_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
    tok.add_special_tokens({"additional_special_tokens": image_tokens()})
    return tok


def tiny_tokenizer():
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(ROOT, "tiny-tokenizer", "tokenizer.json"),
        bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
    )
    tok.add_special_tokens({"additional_special_tokens": image_tokens()})
    return tok


def round_to_bf16(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1] if p.dim() == 2 else int(np.prod(p.shape[1:]))
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)


def build(kind, tok, seed):
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil,
                              Idefics3Processor, SmolVLMConfig, SmolVLMForConditionalGeneration,
                              SmolVLMImageProcessorPil, SmolVLMProcessor, SmolVLMVideoProcessor)

    vocab = len(tok)
    image_token_id = tok.convert_tokens_to_ids("<image>")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  image_size=32, patch_size=8, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    text = dict(model_type="llama", vocab_size=vocab, hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=4, head_dim=8,
                num_key_value_heads=2 if kind == "smolvlm" else 1,
                rms_norm_eps=1e-5, rope_theta=100000.0, max_position_embeddings=2048,
                tie_word_embeddings=kind == "smolvlm",
                bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<end_of_utterance>"),
                pad_token_id=tok.pad_token_id)
    common = dict(vision_config=vision, text_config=text, scale_factor=2, image_token_id=image_token_id,
                  tie_word_embeddings=kind == "smolvlm", pad_token_id=tok.pad_token_id)
    proc_kw = dict(do_image_splitting=True, size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    if kind == "smolvlm":
        cfg = SmolVLMConfig(**common)
        model = SmolVLMForConditionalGeneration(cfg)
        ip = SmolVLMImageProcessorPil(**proc_kw)
        vp = SmolVLMVideoProcessor()
        proc = SmolVLMProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, image_seq_len=4,
                                chat_template=CHAT_TEMPLATE)
    else:
        cfg = Idefics3Config(**common)
        model = Idefics3ForConditionalGeneration(cfg)
        ip = Idefics3ImageProcessorPil(**proc_kw)
        proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=CHAT_TEMPLATE)
    model.config._attn_implementation = "eager"
    for sub in (model.model.vision_model, model.model.text_model):
        sub.config._attn_implementation = "eager"
    randomise(model, seed)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    round_to_bf16(model)
    model.eval()
    return model, proc


def torchvision_diff(kind, img):
    """Largest |torchvision - PIL| pixel value for one image (the default processor vs ours)."""
    from transformers import Idefics3ImageProcessor, SmolVLMImageProcessor

    cls = SmolVLMImageProcessor if kind == "smolvlm" else Idefics3ImageProcessor
    kw = dict(do_image_splitting=True, size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    try:
        tv = cls(**kw)(images=[[img]], return_tensors="pt")["pixel_values"]
        return tv
    except Exception as e:  # pragma: no cover - depends on the torchvision build
        print("torchvision processor failed:", e)
        return None


def write_model(kind, tok, seed, image_dir):
    d = os.path.join(OUT, kind)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model, proc = build(kind, tok, seed)
    tensors = {}
    ref = {"architecture": type(model).__name__, "images": {}, "prompts": []}

    # Per-image preprocessing.
    for path in sorted(glob.glob(os.path.join(image_dir, "*.png"))):
        name = os.path.basename(path)
        img = Image.open(path).convert("RGB")
        out = proc.image_processor(images=[[img]], return_tensors="pt", return_row_col_info=True)
        pv = out["pixel_values"][0].contiguous()
        tensors[f"pixels.{name}"] = pv
        entry = {"width": img.width, "height": img.height, "rows": int(out["rows"][0][0]),
                 "cols": int(out["cols"][0][0]), "tiles": int(pv.shape[0])}
        tv = torchvision_diff(kind, img)
        if tv is not None and tv[0].shape == pv.shape:
            entry["torchvision_max_abs_diff"] = float((tv[0] - pv).abs().max())
        ref["images"][name] = entry

    for i, (content, names) in enumerate(zip(PROMPTS, PROMPT_IMAGES)):
        messages = [{"role": "user", "content": content}]
        text = proc.apply_chat_template(messages, add_generation_prompt=True)
        images = [Image.open(os.path.join(image_dir, n)).convert("RGB") for n in names]
        inputs = proc(text=[text], images=[images], return_tensors="pt")
        with torch.no_grad():
            pv = inputs["pixel_values"]
            pam = inputs["pixel_attention_mask"]
            feats = model.model.get_image_features(pixel_values=pv, pixel_attention_mask=pam)
            # The vision tower's output alone (post-layernorm), for the real tiles.
            flat = pv.view(-1, *pv.shape[2:])
            real = (flat == 0.0).sum(dim=(-1, -2, -3)) != flat[0].numel()
            vis = model.model.vision_model(pixel_values=flat[real]).last_hidden_state
            out = model(**inputs)
            logits = out.logits[0, -1].contiguous()
            gen = model.generate(**inputs, max_new_tokens=16, do_sample=False, eos_token_id=None,
                                 min_new_tokens=16, pad_token_id=tok.pad_token_id)
        pooled = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        if isinstance(pooled, (list, tuple)):
            pooled = torch.cat([p.reshape(-1, p.shape[-1]) for p in pooled])
        tensors[f"prompt{i}.vision"] = vis.contiguous()
        tensors[f"prompt{i}.connector"] = pooled.reshape(-1, pooled.shape[-1]).contiguous()
        tensors[f"prompt{i}.logits"] = logits
        ids = inputs["input_ids"][0].tolist()
        new = gen[0, len(ids):].tolist()
        ref["prompts"].append({
            "messages": messages, "images": names, "rendered": text, "input_ids": ids,
            "greedy": new, "greedy_text": tok.decode(new, skip_special_tokens=False),
        })
        print(kind, i, "tokens", len(ids), "tiles", int(real.sum()), "greedy", new[:6])

    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
    proc.save_pretrained(d)
    refdir = os.path.join(OUT, "reference")
    os.makedirs(refdir, exist_ok=True)
    save_file(tensors, os.path.join(refdir, f"{kind}.safetensors"))
    with open(os.path.join(refdir, f"{kind}.json"), "w") as f:
        json.dump(ref, f, indent=1)
    # transformers also writes files we do not need in a fixture.
    for extra in ("generation_config.json", "video_preprocessor_config.json", "special_tokens_map.json"):
        p = os.path.join(d, extra)
        if os.path.exists(p) and extra == "video_preprocessor_config.json":
            os.remove(p)


QWEN_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def qwen_tokenizer():
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(ROOT, "tiny-tokenizer", "tokenizer.json"),
        bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
    )
    tok.add_special_tokens({"additional_special_tokens": QWEN_TOKENS})
    return tok


def write_qwen(seed, image_dir):
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessorPil, Qwen2VLVideoProcessor)

    kind = "qwen2_5_vl"
    tok = qwen_tokenizer()
    d = os.path.join(OUT, kind)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_TOKENS}
    vision = dict(depth=4, hidden_size=32, intermediate_size=48, num_heads=2, in_channels=3, patch_size=4,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=16, out_hidden_size=64,
                  fullatt_block_indexes=[1, 3], hidden_act="silu", tokens_per_second=2)
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                max_position_embeddings=2048,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    cfg = Qwen2_5_VLConfig(vision_config=vision, text_config=text, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    model.config._attn_implementation = "eager"
    for sub in (model.model.visual, model.model.language_model):
        sub.config._attn_implementation = "eager"
    randomise(model, seed)
    round_to_bf16(model)
    model.eval()
    ip = Qwen2VLImageProcessorPil(patch_size=4, merge_size=2, temporal_patch_size=2,
                                  size={"shortest_edge": 512, "longest_edge": 1600})
    proc = Qwen2_5_VLProcessor(image_processor=ip, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                               chat_template=QWEN_TEMPLATE)
    tensors = {}
    ref = {"architecture": type(model).__name__, "images": {}, "prompts": []}
    for path in sorted(glob.glob(os.path.join(image_dir, "*.png"))):
        name = os.path.basename(path)
        img = Image.open(path).convert("RGB")
        out = ip(images=[img], return_tensors="pt")
        tensors[f"pixels.{name}"] = out["pixel_values"].contiguous()
        t, h, w = out["image_grid_thw"][0].tolist()
        ref["images"][name] = {"width": img.width, "height": img.height, "grid": [t, h, w]}
    for i, (content, names) in enumerate(zip(PROMPTS, PROMPT_IMAGES)):
        messages = [{"role": "user", "content": content}]
        text_in = proc.apply_chat_template(messages, add_generation_prompt=True)
        images = [Image.open(os.path.join(image_dir, n)).convert("RGB") for n in names]
        inputs = proc(text=[text_in], images=images, return_tensors="pt")
        with torch.no_grad():
            vis = model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output
            out = model(**inputs)
            logits = out.logits[0, -1].contiguous()
            gen = model.generate(**inputs, max_new_tokens=16, do_sample=False, eos_token_id=None,
                                 min_new_tokens=16, pad_token_id=tok.pad_token_id)
            pos, delta = model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                                    image_grid_thw=inputs["image_grid_thw"])
        tensors[f"prompt{i}.vision"] = vis.contiguous()
        tensors[f"prompt{i}.logits"] = logits
        ids_ = inputs["input_ids"][0].tolist()
        new = gen[0, len(ids_):].tolist()
        ref["prompts"].append({
            "messages": messages, "images": names, "rendered": text_in, "input_ids": ids_,
            "positions": pos[:, 0].tolist(), "rope_delta": int(delta[0, 0]),
            "greedy": new, "greedy_text": tok.decode(new, skip_special_tokens=False),
        })
        print(kind, i, "tokens", len(ids_), "grids", inputs["image_grid_thw"].tolist(), "greedy", new[:6])
    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
    proc.save_pretrained(d)
    for extra in ("video_preprocessor_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    refdir = os.path.join(OUT, "reference")
    os.makedirs(refdir, exist_ok=True)
    save_file(tensors, os.path.join(refdir, f"{kind}.safetensors"))
    with open(os.path.join(refdir, f"{kind}.json"), "w") as f:
        json.dump(ref, f, indent=1)


def main():
    torch.manual_seed(0)
    gguf = sys.argv[1] if len(sys.argv) > 1 else None
    if gguf is None:
        found = glob.glob(os.path.join(HERE, "..", "models", "*.gguf"))
        if not found:
            sys.exit("pass the SmolLM2 GGUF path (or run `embodied-r fetch-model` first)")
        gguf = found[0]
    image_dir = write_images()
    write_model("smolvlm", smollm2_tokenizer(gguf), 1, image_dir)
    write_model("idefics3", tiny_tokenizer(), 2, image_dir)
    write_qwen(3, image_dir)
    for root, _, files in os.walk(OUT):
        for f in files:
            p = os.path.join(root, f)
            print(f"{os.path.getsize(p):>9} {os.path.relpath(p, OUT)}")


if __name__ == "__main__":
    main()
