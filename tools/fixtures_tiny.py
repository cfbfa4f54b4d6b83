#!/usr/bin/env python3
"""Writes the small reference fixtures the reasoner's tests compare against (run by hand).

What it writes under reasoner/tests/fixtures/:
- tiny-tokenizer/tokenizer.json: a byte-level BPE (Qwen2 pre-tokenizer, ChatML specials)
  trained here on a deterministic corpus; tokenizer_tiny.json: its ids for every test string
  (reference: transformers' PreTrainedTokenizerFast) and chat renders (apply_chat_template).
- tiny-qwen2/: a random-weight Qwen2 (q/k/v bias, GQA 4:2, tied embeddings), safetensors.
- tiny-llama/: a random-weight Llama (GQA 4:1, separate lm_head, llama3 rope scaling),
  safetensors in shards with model.safetensors.index.json.
- tiny-qwen2-kquants.gguf: a Qwen2 GGUF with Q8_0, Q4_K, Q6_K, Q4_0, Q4_1, F16, BF16 and F32
  tensors (random valid blocks), and the transformers model loaded from it (gguf_file=).
- tiny_logits.json: for each model, prompts, last-position logits and greedy continuations
  from transformers (f32, CPU, eager attention).
- rope.json: inverse frequencies transformers computes for linear, llama3 and yarn scaling.

Needs: pip install torch transformers gguf tokenizers numpy safetensors
"""

import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_strings import strings  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reasoner", "tests", "fixtures")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Our own ChatML template in the style of Qwen2.5's (default system prompt, generation prompt).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are a careful spatial reasoner.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' and loop.first %}{%- continue %}{%- endif %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content.strip() + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

CHATS = [
    [{"role": "user", "content": "Is the tower to my left?"}],
    [{"role": "system", "content": "Answer with one letter."},
     {"role": "user", "content": "  Which is closest?\nA. door\nB. chair  "}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>x</think><answer>A</answer>"},
     {"role": "user", "content": "again"}],
]


def corpus():
    text = strings()
    text += [
        "The drone moves forward and the red building is to the left.",
        "After move forward, Observe: a tall tower ahead-left, a bridge below.",
        "<think> The balcony is above the door. </think> <answer> B </answer>",
        "Question: Which object is closest to the door? Choices: A. chair B. table C. lamp D. sofa",
    ] * 20
    return text


def train_tokenizer(out_dir):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "add_bos_token": False,
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 256,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return tok.get_vocab_size()


def tokenizer_fixture(tok_dir):
    from transformers import PreTrainedTokenizerFast

    t = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    ss = strings()
    ids = [t(s, add_special_tokens=False)["input_ids"] for s in ss]
    renders = []
    for chat in CHATS:
        for gen in (True, False):
            renders.append({
                "messages": chat,
                "add_generation_prompt": gen,
                "text": t.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen),
            })
    decoded = [t.decode(i, skip_special_tokens=True) for i in ids]
    return {"strings": ss, "ids": ids, "decoded": decoded, "renders": renders}


def greedy(model, ids, n):
    out = []
    with torch.no_grad():
        cur = torch.tensor([ids])
        for _ in range(n):
            logits = model(cur).logits[0, -1]
            top2 = torch.topk(logits, 2).values
            assert float(top2[0] - top2[1]) > 1e-4, "near tie in greedy reference; change the seed"
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            cur = torch.cat([cur, torch.tensor([[nxt]])], dim=1)
    return out


def model_fixture(model, prompts, n_greedy):
    rows = []
    with torch.no_grad():
        for p in prompts:
            logits = model(torch.tensor([p])).logits[0]
            rows.append({
                "prompt": p,
                "last_logits": logits[-1].tolist(),
                "first_logits": logits[0].tolist(),
                "greedy": greedy(model, p, n_greedy),
            })
    return rows


def make_prompts(vocab, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, size=n).tolist() for n in (1, 5, 17, 40)]


def tiny_qwen2(vocab, out_dir, tok_dir):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, initializer_range=0.2,
        bos_token_id=None, eos_token_id=2, attn_implementation="eager",
    )
    m = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # biases are zero at init; make them count
        for layer in m.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.2)
    m.save_pretrained(out_dir, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out_dir, f))
    return m


def tiny_llama(vocab, out_dir, tok_dir):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
        rope_theta=10_000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, initializer_range=0.2,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        bos_token_id=None, eos_token_id=2, attn_implementation="eager",
    )
    m = LlamaForCausalLM(cfg).eval()
    m.save_pretrained(out_dir, safe_serialization=True, max_shard_size="60KB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out_dir, f))
    return m


def random_blocks(qtype, rows, cols, rng):
    """Random but valid blocks of a quantized type: finite, modest f16 scales."""
    import gguf
    from gguf import GGMLQuantizationType as T

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * cols // block
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)

    def f16(v):
        return np.frombuffer(np.float16(v).tobytes(), dtype=np.uint8)

    for b in range(nb):
        s = rng.uniform(0.002, 0.02)
        if qtype == T.Q4_K:
            raw[b, 0:2] = f16(s)
            raw[b, 2:4] = f16(s / 2)
        elif qtype == T.Q6_K:
            raw[b, 208:210] = f16(s / 8)
    return raw.reshape(rows, -1)


def tiny_qwen2_gguf(vocab_tokens, merges, path):
    """A Qwen2 GGUF with every tensor type we read; returns the transformers model loaded from it."""
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize, quantize

    rng = np.random.default_rng(3)
    hidden, inter, layers, heads, kv, vocab = 256, 512, 2, 4, 2, len(vocab_tokens)
    hd = hidden // heads
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_name("tiny-qwen2-kquants")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(vocab_tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in vocab_tokens])
    w.add_token_merges(merges)
    w.add_eos_token_id(vocab_tokens.index("<|im_end|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def add(name, arr_f32=None, qtype=T.F32, shape=None):
        if qtype in (T.Q4_K, T.Q6_K):
            rows, cols = shape
            raw = random_blocks(qtype, rows, cols, rng)
            w.add_tensor(name, raw, raw_dtype=qtype)
            return dequantize(raw, qtype).reshape(rows, cols)
        if qtype == T.F32:
            w.add_tensor(name, arr_f32.astype(np.float32))
            return arr_f32.astype(np.float32)
        if qtype == T.F16:
            a = arr_f32.astype(np.float16)
            w.add_tensor(name, a)
            return a.astype(np.float32)
        raw = quantize(arr_f32.astype(np.float32), qtype)
        w.add_tensor(name, raw, raw_dtype=qtype)
        return dequantize(raw, qtype).reshape(arr_f32.shape)

    r = lambda *s: rng.normal(0, 0.05, size=s).astype(np.float32)  # noqa: E731
    add("token_embd.weight", r(vocab, hidden) * 4, T.Q8_0)
    add("output_norm.weight", 1 + r(hidden))
    for l in range(layers):
        p = f"blk.{l}."
        add(p + "attn_norm.weight", 1 + r(hidden))
        add(p + "ffn_norm.weight", 1 + r(hidden))
        add(p + "attn_q.weight", qtype=T.Q4_K, shape=(heads * hd, hidden))
        add(p + "attn_q.bias", r(heads * hd) * 4)
        add(p + "attn_k.weight", qtype=T.Q6_K, shape=(kv * hd, hidden))
        add(p + "attn_k.bias", r(kv * hd) * 4)
        add(p + "attn_v.weight", r(kv * hd, hidden), T.Q4_0)
        add(p + "attn_v.bias", r(kv * hd) * 4)
        add(p + "attn_output.weight", r(hidden, heads * hd), T.Q4_1)
        add(p + "ffn_gate.weight", qtype=T.Q6_K, shape=(inter, hidden))
        add(p + "ffn_up.weight", r(inter, hidden), T.BF16 if l == 0 else T.F16)
        add(p + "ffn_down.weight", qtype=T.Q4_K, shape=(hidden, inter))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32,
        attn_implementation="eager",
    ).eval()
    return m


def rope_fixture():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cases = {
        "default": None,
        "linear": {"rope_type": "linear", "factor": 4.0},
        "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 64},
        "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128},
    }
    out = {}
    for name, scaling in cases.items():
        cfg = LlamaConfig(hidden_size=256, num_attention_heads=4, max_position_embeddings=512,
                          rope_theta=10_000.0, rope_scaling=scaling)
        kind = (scaling or {}).get("rope_type", "default")
        inv, scale = ROPE_INIT_FUNCTIONS[kind](cfg, "cpu") if kind != "default" else (
            1.0 / (10_000.0 ** (torch.arange(0, 64, 2, dtype=torch.int64).float() / 64)), 1.0)
        out[name] = {"rope_scaling": scaling, "head_dim": 64, "theta": 10_000.0,
                     "max_position_embeddings": 512, "inv_freq": inv.tolist(), "attention_scaling": float(scale)}
    return out


def main():
    os.makedirs(ROOT, exist_ok=True)
    tok_dir = os.path.join(ROOT, "tiny-tokenizer")
    vocab = train_tokenizer(tok_dir)
    tok_fix = tokenizer_fixture(tok_dir)
    with open(os.path.join(ROOT, "tokenizer_tiny.json"), "w") as f:
        json.dump(tok_fix, f, ensure_ascii=False)

    qdir, ldir = os.path.join(ROOT, "tiny-qwen2"), os.path.join(ROOT, "tiny-llama")
    for d in (qdir, ldir):
        shutil.rmtree(d, ignore_errors=True)
    q = tiny_qwen2(vocab, qdir, tok_dir)
    l = tiny_llama(vocab, ldir, tok_dir)

    tj = json.load(open(os.path.join(tok_dir, "tokenizer.json")))
    inv_vocab = {i: t for t, i in tj["model"]["vocab"].items()}
    for a in tj["added_tokens"]:
        inv_vocab[a["id"]] = a["content"]
    tokens = [inv_vocab[i] for i in range(len(inv_vocab))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    gpath = os.path.join(ROOT, "tiny-qwen2-kquants.gguf")
    g = tiny_qwen2_gguf(tokens, merges, gpath)

    fix = {
        "tiny-qwen2": model_fixture(q, make_prompts(vocab, 10), 12),
        "tiny-llama": model_fixture(l, make_prompts(vocab, 11), 12),
        "tiny-qwen2-kquants.gguf": model_fixture(g, make_prompts(vocab, 12), 12),
    }
    with open(os.path.join(ROOT, "tiny_logits.json"), "w") as f:
        json.dump(fix, f)
    with open(os.path.join(ROOT, "rope.json"), "w") as f:
        json.dump(rope_fixture(), f, indent=1)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(ROOT) for fn in fns)
    print(f"fixtures written to {os.path.abspath(ROOT)} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
