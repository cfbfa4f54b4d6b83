#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/seeds/<target>/): small valid
inputs of every format, so the fuzzer starts deep inside each parser instead of at its magic
bytes. Deterministic; rerun after a format changes. Needs `pip install gguf numpy safetensors`.

Usage: python3 tools/fuzz_seeds.py   (from the repository root)
"""
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def gguf_seeds():
    import gguf

    path = SEEDS / "gguf" / "tiny-llama.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    toks = ["<s>", "</s>", "a", "b", "ab", "Ġ", "Ġa"]
    w.add_token_list(toks)
    w.add_token_types([3, 3, 1, 1, 1, 1, 1])
    w.add_token_merges(["a b", "Ġ a"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_chat_template(
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((7, 8)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float16))
    q8 = gguf.quants.quantize(rng.standard_normal((2, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_down.weight", q8, raw_shape=q8.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def safetensors_seeds():
    from safetensors.numpy import save

    rng = np.random.default_rng(1)
    put("safetensors", "three-dtypes.safetensors", save({
        "model.embed_tokens.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "model.norm.weight": np.ones(3, dtype=np.float16),
        "lm_head.weight": rng.standard_normal((2, 3)).astype(np.float32).view(np.uint32).astype(np.uint16),
    }, metadata={"format": "pt"}))
    put("safetensors", "empty.safetensors", save({}))


def chat_template_seeds():
    # Input layout (see fuzz_targets/chat_template.rs): template NUL role NUL content ...
    def seed(name, template, *pairs):
        parts = [template] + [x for p in pairs for x in p]
        put("chat_template", name, "\0".join(parts))

    seed("chatml", open(ROOT / "reasoner/src/chat.rs").read().split('CHATML_TEMPLATE: &str = "')[1]
         .split('";')[0].replace("\\n", "\n"), ("system", "S"), ("user", "hi"))
    for fam in ["smolvlm", "qwen2_5_vl", "idefics3"]:
        t = (ROOT / f"reasoner/tests/fixtures/vlm/{fam}/chat_template.jinja").read_text()
        seed(fam, t, ("user", "Frame 1: a door."), ("assistant", "<think>x</think><answer>A</answer>"))
    cfg = json.loads((ROOT / "reasoner/tests/fixtures/tiny-llama/tokenizer_config.json").read_text())
    if isinstance(cfg.get("chat_template"), str):
        seed("tiny-llama", cfg["chat_template"], ("user", "q"))
    seed("features",
         "{% set ns = namespace(n=0) %}{% for m in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
         "{{ m.role | upper }}{{ m.content.strip() | tojson(indent=2) }}{% set ns.n = ns.n + 1 %}"
         "{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}{% endfor %}"
         "{{ strftime_now('%d %B %Y') }}{{ ns.n }}{{ eos_token }}",
         ("user", "  a  "), ("tool", "x"))


def ask_seeds():
    put("ask_request", "plain.json", '\x01{"question": "Which object is closest to the door?"}')
    put("ask_request", "full.json", '\x01' + json.dumps({
        "question": "Question: Is the tower to my left?", "choices": ["yes", "no"],
        "window": {"last_seconds": 30}, "deadline_ms": 5000, "ground_truth": "A",
        "category": "relative_direction"}))
    put("ask_request", "last_n.json", '\x01{"question": "q", "window": {"last_n": 8}}')
    put("ask_request", "since.json", '\x01{"question": "q", "window": {"since_seq": 120}}')
    put("ask_request", "all.json", '\x01{"question": "q", "window": "all", "choices": ["a","b","c"]}')


def cdr_seeds():
    ros = ROOT / "perception/tests/fixtures/ros"
    for f in ["image_rgb8.cdr", "image_rgb8_big_endian.cdr", "image_mono8_empty_frame.cdr"]:
        put("cdr_image", f, b"\x00" + (ros / f).read_bytes())
    put("cdr_image", "compressed_jpeg.cdr", b"\x01" + (ros / "compressed_jpeg.cdr").read_bytes())


def mcap_seeds():
    put("mcap", "images.mcap", (ROOT / "perception/tests/fixtures/mcap/images.mcap").read_bytes())


def episode_seeds():
    rec = {
        "schema": 1, "id": "robot-1-000001", "robot": "robot-1", "time_unix": 1.7e9,
        "question": "Which object is closest to the door?", "choices": ["chair", "table"],
        "category": "object_rel_distance",
        "frames": [{"seq": 0, "stamp": 0.0, "pose": [0, 0, 1, 0, 0, 0, 1], "file": "frames/0.jpg"},
                   {"seq": 30, "stamp": 1.0, "pose": None, "file": None}],
        "descriptions": [{"action": None, "view": "a door"}, {"action": "move forward", "view": "a chair"}],
        "system": "S", "user": "U", "completion": "<think>t</think><answer>A</answer>",
        "choice": "A", "text": "chair", "think": "t", "format_ok": True, "consistent": True,
        "reference_reply": None, "nav_hint": {"action": "move_forward", "target": "chair", "reason": "r"},
        "ground_truth": "A", "rewards": {"format": 1.0, "accuracy": 1.0, "consistency": 1.0},
        "model": "smollm2", "describer": "sim", "seed": 7, "temperature": 0.0, "max_tokens": 64,
        "timings": {"describe_ms": 1.5}, "error": None,
    }
    line = json.dumps(rec) + "\n"
    put("episode_log", "two-records.jsonl", line + "\n" + line.replace("000001", "000002"))
    put("episode_log", "torn-tail.jsonl", line + line[: len(line) // 2])
    put("episode_log", "damaged.jsonl", line + "{\"schema\": 1, \"id\": 5}\n" + line)


def vlm_reply_seeds():
    put("vlm_reply", "body.json", json.dumps({"choices": [{"message": {"content":
        "Frame 1: A red door on the left. Action: move forward. Frame 2: a tower ahead."}}]}))
    put("vlm_reply", "parts.json", json.dumps({"choices": [{"message": {"content": [
        {"type": "text", "text": "Frame 1: a"}, {"type": "text", "text": " chair"}]}}]}))
    ev = lambda t: "data: " + json.dumps({"choices": [{"delta": {"content": t}}]}) + "\n\n"
    put("vlm_reply", "stream.txt", ev("Frame 1: ") + ": keep-alive\n" + ev("a door.") + "data: [DONE]\n")
    put("vlm_reply", "text.txt", "**Frame 1**: the view shows a chair.\n**Frame 2**: Action: turn left. A table.")


def dataset_seeds():
    put("dataset", "grpo.jsonl", "\x01" + json.dumps({"messages": [{"role": "system", "content": "S"},
        {"role": "user", "content": "Question: q?\nChoices:\nA. x\nB. y"}], "solution": "B"}) + "\n")
    put("dataset", "embodied-r.json", "\x00" + json.dumps([{"question": "Video...\nQuestion: Where is the door?\nChoices:\nA. left\nB. right",
        "answer": "A", "category": "relative_direction", "id": 3}]))


if __name__ == "__main__":
    gguf_seeds()
    safetensors_seeds()
    chat_template_seeds()
    ask_seeds()
    cdr_seeds()
    mcap_seeds()
    episode_seeds()
    vlm_reply_seeds()
    dataset_seeds()
    for d in sorted(SEEDS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
