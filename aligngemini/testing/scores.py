"""Score files like the branches' ``predict --out`` writes, from known distributions (tests, bench, demo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aligngemini.datamodules.fusion import write_scores


def complementary_scores(root: Path, n: int = 600, seed: int = 0, confidence: float = 3.0) -> dict[str, str]:
    """Half real, a quarter of fakes only the pixel expert sees (e.g. a known VAE's artifacts
    on a plausible scene), a quarter only the VLM sees (impossible content, re-encoded so no
    artifacts survive). Each branch alone ranks at best ~0.75 AUROC; together they separate.
    ``confidence`` scales the logits: deep branches are overconfident."""
    rng = np.random.default_rng(seed)
    kind = np.array(["real"] * (n // 2) + ["pixel_fake"] * (n // 4) + ["semantic_fake"] * (n - n // 2 - n // 4))
    pixel = np.where(kind == "pixel_fake", 2.0, -2.0) + rng.normal(0, 1, n)
    semantic = np.where(kind == "semantic_fake", 2.0, -2.0) + rng.normal(0, 1, n)
    files = {}
    for name, logits in (("pixel", pixel * confidence), ("semantic", semantic * confidence)):
        rows = [
            {"path": f"/data/img_{i:04d}.png", "subset": "mix", "label": int(k != "real"),
             "logit": float(z), "probability": float(1 / (1 + np.exp(-z)))}
            for i, (k, z) in enumerate(zip(kind, logits))
        ]
        files[name] = str(write_scores(root / f"{name}.jsonl", rows))
    return files
