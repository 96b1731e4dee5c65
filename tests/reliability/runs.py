"""Helpers for the tests that need real processes: the tiny pixel preset, run and read back."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

import aligngemini

PRESET = Path(aligngemini.__file__).parent / "configs" / "pixel" / "tiny_cpu.yaml"
SEMANTIC_PRESET = Path(aligngemini.__file__).parent / "configs" / "semantic" / "tiny_cpu.yaml"
CRASHING_FIT = Path(__file__).parent / "crashing_fit.py"
# A LayerNorm ViT: BatchNorm statistics would differ per rank (SyncBatchNorm needs CUDA).
TINY_VIT = ["--model.init_args.backbone", "vit_tiny_patch16_224",
            "--model.init_args.backbone_kwargs", '{"patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}']


def fit_args(data: Path, root: Path, *extra: str) -> list[str]:
    return ["fit", "-c", str(PRESET), "--data.root", str(data), "--trainer.default_root_dir", str(root),
            "--trainer.logger.init_args.save_dir", str(root), "--trainer.enable_progress_bar", "false", *extra]


def env(**extra: str) -> dict[str, str]:
    # One thread per process: identical arithmetic in every run, and two runs share 2 cores.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "PYTHONPATH": str(Path(aligngemini.__file__).parents[1]), **extra}


def start(args: list[str], log: Path, *wrapper: str, **extra_env: str) -> subprocess.Popen:
    command = [sys.executable, str(CRASHING_FIT), *wrapper, "--", *args]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env(**extra_env))


def finish(process: subprocess.Popen, log: Path, timeout: float = 300) -> int:
    code = process.wait(timeout=timeout)
    if code not in (0, -9):
        raise AssertionError(f"run failed with {code}:\n{log.read_text()[-3000:]}")
    return code


def epoch_metrics(root: Path) -> dict[tuple[int, str], float]:
    """Epoch-level metrics of every CSV log under ``root``; a later version overrides an earlier one."""
    values = {}
    for path in sorted((root / "lightning_logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])):
        for row in csv.DictReader(path.open()):
            for name, value in row.items():
                if value and name.startswith(("val_", "train_")) and name != "train_loss":
                    values[(int(row["epoch"]), name)] = float(value)
    return values


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    data = torch.load(path, map_location="cpu", weights_only=True)
    return data.get("state_dict", data)
