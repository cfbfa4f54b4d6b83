#!/usr/bin/env python3
"""The speed anchor for `embodied-r bench train`: TRL's GRPOTrainer on CPU with the same model,
group size, prompt and completion lengths and LoRA settings, on this machine.

Run by hand (it installs nothing): pip install torch transformers gguf trl peft datasets
  python3 tools/bench_trl.py --threads 2 --group 8 --prompt-tokens 256 --completion-tokens 128 \
      --lora-rank 16 --steps 4 [--json]

The prompt is a fixed text cut to exactly --prompt-tokens tokens; every completion runs to
--completion-tokens (min_new_tokens), as our benchmark's do, so both sides process the same
token counts. One step = one prompt's group of G completions: generation, the reference and
policy passes, backward and the AdamW update. The first step is a warm-up; the median of the
rest is reported, with the generation share measured by timing `model.generate` calls.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--completion-tokens", type=int, default=128)
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--lora-alpha", type=float, default=32.0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    d, f = os.path.split(os.path.abspath(a.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    loaded = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    # The GGUF-loaded model is marked quantized and refused for training: rebuild a plain one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded

    words = ("Frame 3: After move forward, Observe: the red tower is ahead and slightly left, a bridge "
             "crosses the river below, two cars are parked near the blue building. ") * 64
    ids = tok(words, add_special_tokens=False)["input_ids"][: a.prompt_tokens]
    prompt = tok.decode(ids)
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    data = Dataset.from_dict({"prompt": [prompt] * (a.steps + 1)})

    gen_times = []
    orig_generate = model.generate

    def timed_generate(*args, **kw):
        t = time.perf_counter()
        out = orig_generate(*args, **kw)
        gen_times.append(time.perf_counter() - t)
        return out

    model.generate = timed_generate

    def reward(completions, **_):
        return [float(len(c) % 7) / 7.0 for c in completions]

    step_times = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            step_times.append(time.perf_counter() - self.t)

    cfg = GRPOConfig(
        output_dir="/tmp/bench_trl_out",
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=a.group,
        gradient_accumulation_steps=1,
        num_generations=a.group,
        max_completion_length=a.completion_tokens,
        temperature=1.0,
        top_p=0.9,
        top_k=50,
        beta=0.001,
        num_iterations=1,
        learning_rate=1e-5,
        max_steps=a.steps,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        generation_kwargs={"min_new_tokens": a.completion_tokens},
        seed=0,
    )
    lora = LoraConfig(r=a.lora_rank, lora_alpha=a.lora_alpha,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=data,
                          peft_config=lora, processing_class=tok, callbacks=[Clock()])
    trainer.train()
    steps = step_times[1:] or step_times
    gens = gen_times[1:] or gen_times
    step_s = statistics.median(steps)
    gen_s = statistics.median(gens) if gens else float("nan")
    report = {
        "step_s": step_s,
        "rollout_s": gen_s,
        "update_s": step_s - gen_s,
        "rollout_tok_s": a.group * a.completion_tokens / gen_s,
        "update_tok_s": a.group * (n + a.completion_tokens) / (step_s - gen_s),
        "prompt_tokens": n,
        "group": a.group,
        "completion_tokens": a.completion_tokens,
        "threads": a.threads,
        "torch": torch.__version__,
    }
    if a.json:
        print(json.dumps(report))
    else:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))


if __name__ == "__main__":
    sys.exit(main())
