"""Weight memory of the semantic branch's VLM: 4-bit nf4 (double quantisation) vs bf16, on CPU.

Same random-weight architecture both ways: Qwen2.5-VL-7B-Instruct's shapes. Decoder
layers (and vision blocks) are identical, so the bench loads three shallow variants,
measures each in its own process, and solves for the fixed part, one decoder layer and
one vision block; the full 28-layer / 32-block model is then exact arithmetic on measured
bytes. Bytes are the state dict's (4-bit weights + their quantisation statistics); process RSS
is no measure here, as safetensors weights are memory-mapped and stay untouched.

    python bench/bench_semantic_memory.py            # ~3 GB of RAM and disk per variant, ~7 min on 2 cores

Prints the ratio for the quantised linear layers (target <= 0.3) and for the whole model
with the family's modules kept out of 4 bit (vision tower, lm_head; embeddings never quantise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TARGET = 0.3


def measure(folder: str, quantization: str) -> dict:
    """In this process: load ``folder`` and sum state-dict bytes (all, and of the 4-bit linears)."""
    import torch

    from aligngemini.models.semantic import load_base_vlm
    from aligngemini.zoo.backbones import get_family

    family = get_family("qwen2_5_vl")
    model = load_base_vlm(folder, None, quantization, torch.device("cpu"), torch.bfloat16, family)
    state = model.state_dict()
    total = sum(t.numel() * t.element_size() for t in state.values())
    quantisable = _language_linear_prefixes(model, family)
    linear = sum(t.numel() * t.element_size() for k, t in state.items() if k.rsplit(".weight", 1)[0] in quantisable
                 or any(k.startswith(p + ".weight.") for p in quantisable))
    return {"total": total, "linear": linear}


def _language_linear_prefixes(model, family) -> set[str]:
    from torch import nn

    import bitsandbytes as bnb

    return {name for name, module in model.named_modules()
            if isinstance(module, (nn.Linear, bnb.nn.Linear4bit)) and name.startswith(family.language_model + ".")}


def run_child(folder: Path, quantization: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), quantization],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "QUANT"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help="where the random models are written (default: a temp dir)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from qwen2_5_vl_7b_arch import TEXT_7B, VISION_7B, write_random_qwen2_5_vl

    variants = {"base": (1, 1), "plus_layer": (2, 1), "plus_block": (1, 2)}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        results = {}
        for name, (layers, blocks) in variants.items():
            folder = write_random_qwen2_5_vl(Path(tmp) / name, layers, blocks)
            results[name] = {q: run_child(folder, q) for q in ("none", "nf4")}
            for path in folder.glob("*.safetensors"):
                path.unlink()
    full_layers, full_blocks = TEXT_7B["num_hidden_layers"], VISION_7B["depth"]

    def full(quant: str, key: str) -> float:
        base = results["base"][quant][key]
        per_layer = results["plus_layer"][quant][key] - base
        per_block = results["plus_block"][quant][key] - base
        return base + (full_layers - 1) * per_layer + (full_blocks - 1) * per_block

    linear_ratio = full("nf4", "linear") / full("none", "linear")
    total_ratio = full("nf4", "total") / full("none", "total")
    gib = 1024**3
    print("Qwen2.5-VL-7B architecture, random weights, CPU; bytes of the state dict")
    print(f"  language-model linear layers: bf16 {full('none', 'linear') / gib:6.2f} GiB  "
          f"nf4 {full('nf4', 'linear') / gib:6.2f} GiB  ratio {linear_ratio:.3f}  (target <= {TARGET})")
    print(f"  whole model (vision, lm_head, embeddings dense): bf16 {full('none', 'total') / gib:6.2f} GiB  "
          f"4-bit {full('nf4', 'total') / gib:6.2f} GiB  ratio {total_ratio:.3f}")
    print("PASS" if linear_ratio <= TARGET else "FAIL", f"quantised-weight ratio {linear_ratio:.3f} vs target {TARGET}")


if __name__ == "__main__":
    main()
