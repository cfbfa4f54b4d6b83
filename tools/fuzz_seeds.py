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


def ros_msg_seeds():
    # First byte: 0 String (a question), 1 Odometry, 2 TwistStamped (fuzz_targets/ros_msgs.rs).
    ros = ROOT / "perception/tests/fixtures/ros"
    put("ros_msgs", "string_json.cdr", b"\x00" + (ros / "string_json.cdr").read_bytes())
    put("ros_msgs", "string_empty.cdr", b"\x00" + (ros / "string_empty.cdr").read_bytes())
    put("ros_msgs", "odometry.cdr", b"\x01" + (ros / "odometry.cdr").read_bytes())
    put("ros_msgs", "twist_stamped.cdr", b"\x02" + (ros / "twist_stamped.cdr").read_bytes())


def sim_bridge_seeds():
    # First byte even: an ERF1 frame envelope; odd: a nav-hint JSON (fuzz_targets/sim_bridge.rs).
    def envelope(header, image):
        h = json.dumps(header).encode()
        return b"\x00ERF1" + len(h).to_bytes(4, "little") + h + image
    pose = {"translation": [1.0, 0.5, 2.0], "rotation_xyzw": [0.0, 0.0, 0.3826834, 0.9238795]}
    put("sim_bridge", "rgb8.erf1", envelope(
        {"seq": 3, "stamp": 1.25, "width": 4, "height": 3, "encoding": "rgb8", "pose": pose,
         "hfov_deg": 90.0}, bytes(range(36))))
    # The first JPEG of the rosbag2 fixture, with its size from the SOF0 segment.
    bag = (ROOT / "perception/tests/fixtures/mcap/images.mcap").read_bytes()
    start = bag.find(b"\xff\xd8\xff")
    jpeg = bag[start:bag.find(b"\xff\xd9", start) + 2]
    sof = jpeg.find(b"\xff\xc0")
    jh, jw = int.from_bytes(jpeg[sof + 5:sof + 7], "big"), int.from_bytes(jpeg[sof + 7:sof + 9], "big")
    put("sim_bridge", "jpeg.erf1", envelope(
        {"seq": 0, "stamp": 0.0, "width": jw, "height": jh, "encoding": "jpeg"}, jpeg))
    png = (ROOT / "reasoner/tests/fixtures/vlm/images/small.png").read_bytes()
    pw, ph = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    put("sim_bridge", "png.erf1", envelope(
        {"seq": 9, "stamp": 2.0, "width": pw, "height": ph, "encoding": "png"}, png))
    put("sim_bridge", "hint.json", "\x01" + json.dumps(
        {"action": "rotate left", "target": "tower", "reason": "key frame 4 saw it on the left",
         "question_id": "sim-1-00001"}))
    put("sim_bridge", "hint_min.json", '\x01{"action": "move forward"}')


def hf_file_seeds():
    # First byte: 0 config.json, 1 tokenizer.json, 2 tokenizer_config.json,
    # 3 chat_template.json, 4 image-processor settings (fuzz_targets/hf_files.rs).
    fx = ROOT / "reasoner/tests/fixtures"
    put("hf_files", "llama_config.json", b"\x00" + (fx / "tiny-llama/config.json").read_bytes())
    put("hf_files", "tokenizer_tiny.json", b"\x01" + (fx / "tokenizer_tiny.json").read_bytes())
    put("hf_files", "tokenizer_config.json",
        b"\x02" + (fx / "tiny-llama/tokenizer_config.json").read_bytes())
    for fam in ["smolvlm", "qwen2_5_vl", "idefics3"]:
        d = fx / "vlm" / fam
        put("hf_files", f"{fam}_config.json", b"\x00" + (d / "config.json").read_bytes())
        put("hf_files", f"{fam}_tokenizer_config.json",
            b"\x02" + (d / "tokenizer_config.json").read_bytes())
        put("hf_files", f"{fam}_chat_template.json",
            "\x03" + json.dumps({"chat_template": (d / "chat_template.jinja").read_text()}))
        put("hf_files", f"{fam}_processor_config.json",
            b"\x04" + (d / "processor_config.json").read_bytes())


def runtime_config_seeds():
    # The TOML file, NUL-separated EMBODIED_R_* entries, then NUL NUL and --set entries
    # (fuzz_targets/runtime_config.rs).
    cfg = ROOT / "launch/config"
    for name in ["sim.toml", "camera.toml", "ros2.toml", "ros2-zenoh.toml", "vlm-server.toml"]:
        put("runtime_config", name, (cfg / name).read_text())
    put("runtime_config", "sim_env_set.toml", "\0".join([
        (cfg / "sim.toml").read_text(),
        "EMBODIED_R_API__QUEUE=8", "EMBODIED_R_KEYFRAMES__SAMPLE_FPS=2.5",
        "EMBODIED_R_ZENOH__LISTEN=[\"tcp/127.0.0.1:7447\"]", "", "api.per_client=3",
        "source.kind=pattern"]))


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
    ros_msg_seeds()
    sim_bridge_seeds()
    hf_file_seeds()
    runtime_config_seeds()
    for d in sorted(SEEDS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
