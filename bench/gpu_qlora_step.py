"""One QLoRA training step of the semantic branch on Qwen2.5-VL-7B's architecture, on a GPU.

Random weights with the published 7B shapes are written to a local folder (bf16
safetensors, ~16.6 GB, initialised on the GPU), then loaded through the branch's own
builder: 4-bit nf4 + double quantisation, ``prepare_model_for_kbit_training``,
non-reentrant gradient checkpointing, LoRA r=16 / alpha=32 on the language model.
Batch 1: one 448 px photo, the default conversation and a rationale answer. Prints the
weights' GPU memory, the step's peak memory and tokens/s, and with ``--baseline`` the
same step with bf16 LoRA (no quantisation) measured in the same run, as ratios.

    python bench/gpu_qlora_step.py --baseline            # one H100: a few minutes
    python bench/gpu_qlora_step.py --device cpu --text-layers 1 --vision-depth 1 --image-size 112 --steps 1
                                                          # smoke run of the same code on a CPU (~4 GB RAM)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repository, when not pip-installed

import torch  # noqa: E402

from aligngemini.datamodules.records import ImageRecord  # noqa: E402
from aligngemini.datamodules.semantic import ConversationConfig, append_answers, encode_prompts  # noqa: E402
from aligngemini.models.semantic import AdapterSettings, build_semantic_vlm, end_of_answer_id  # noqa: E402

RATIONALE = "The reflections in the window do not match the street, and the text on the sign is garbled."


def make_batch(model, folder: Path, image_size: int, device: torch.device):
    """Batch 1 as the semantic view builds it: default conversation, one photo, verdict + rationale."""
    from aligngemini.demo.photos import skimage_photos
    from aligngemini.models.semantic import load_processor

    processor = load_processor(str(folder))
    tokenizer = processor.tokenizer
    image = dict(skimage_photos())["astronaut"].resize((image_size, image_size))
    conversation = ConversationConfig()
    prompts = encode_prompts(processor, model.family, conversation, [image])
    record = ImageRecord("astronaut.png", 1, rationale=RATIONALE)
    answer = tokenizer(model.family.answer_prefix + conversation.answer(record), add_special_tokens=False)["input_ids"]
    answer.append(end_of_answer_id(tokenizer, model.family))
    inputs, labels = append_answers(prompts, [answer], tokenizer.pad_token_id, model.family.answer_token_types)
    return {k: v.to(device) for k, v in inputs.items()}, labels.to(device)


def measure(folder: Path, quantization: str, device: torch.device, image_size: int, steps: int) -> dict:
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    model = build_semantic_vlm(str(folder), quantization=quantization, device=device,
                               adapter=AdapterSettings(r=16, alpha=32, dropout=0.05), gradient_checkpointing=True)
    load_s = time.perf_counter() - started
    weights = torch.cuda.memory_allocated(device) if cuda else None
    inputs, labels = make_batch(model, folder, image_size, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    model.train()

    def step() -> float:
        with autocast:
            _, loss = model.score_and_answer_loss(inputs, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up: kernels, allocator, optimizer state
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    losses = [step() for _ in range(steps)]
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    tokens = int(inputs["attention_mask"].sum())
    result = {
        "quantization": quantization,
        "load_s": round(load_s, 1),
        "weights_gib": round(weights / 1024**3, 2) if cuda else None,
        "peak_gib": round(torch.cuda.max_memory_allocated(device) / 1024**3, 2) if cuda else None,
        "tokens_per_step": tokens,
        "answer_tokens": int((labels != -100).sum()),
        "step_s": round(elapsed / steps, 3),
        "tokens_per_s": round(tokens * steps / elapsed, 1),
        "trainable_params": sum(p.numel() for p in trainable),
        "loss": [round(v, 4) for v in losses],
    }
    del model, optimizer, inputs, labels
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--text-layers", type=int, default=28)
    parser.add_argument("--vision-depth", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also run bf16 LoRA (no quantisation)")
    parser.add_argument("--workdir", default=os.environ.get("TMPDIR"))
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU, or pass --device cpu with a small --text-layers for a smoke run")

    from qwen2_5_vl_7b_arch import write_random_qwen2_5_vl

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        started = time.perf_counter()
        folder = write_random_qwen2_5_vl(Path(tmp) / "qwen2_5_vl_7b_random", args.text_layers, args.vision_depth,
                                         args.image_size, device=str(device))
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"wrote random weights in {time.perf_counter() - started:.0f} s", flush=True)
        results = [measure(folder, "nf4", device, args.image_size, args.steps)]
        print(json.dumps(results[-1]), flush=True)
        if args.baseline:
            results.append(measure(folder, "none", device, args.image_size, args.steps))
            print(json.dumps(results[-1]), flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"Qwen2.5-VL-7B architecture ({args.text_layers} layers, {args.vision_depth} vision blocks), "
          f"random weights, batch 1, {args.image_size} px, gradient checkpointing, on {name}")
    for r in results:
        print(f"  {r['quantization']:>4}: weights {r['weights_gib']} GiB, step peak {r['peak_gib']} GiB, "
              f"{r['tokens_per_s']} tokens/s ({r['tokens_per_step']} tokens, {r['step_s']} s/step)")
    if len(results) == 2 and device.type == "cuda":
        q, b = results
        print(f"  nf4 / bf16: weights {q['weights_gib'] / b['weights_gib']:.3f}, "
              f"step peak {q['peak_gib'] / b['peak_gib']:.3f}, tokens/s {q['tokens_per_s'] / b['tokens_per_s']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "results": results}, indent=2))


if __name__ == "__main__":
    main()
