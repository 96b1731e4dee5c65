"""Training-step overhead: `aligngemini fit` (LightningCLI + PixelBranch) vs a bare PyTorch loop.

Same model (tiny preset architecture), same data module and batches, same optimizer;
timed over the same steps after a warm-up, interleaved in one process. Target: ratio >= 0.95.

    python bench/bench_pixel_train_step.py [--steps 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_paired_dataset  # noqa: E402

from aligngemini.cli import main  # noqa: E402
from aligngemini.datamodules.pixel import PixelDataModule  # noqa: E402
from aligngemini.models.pixel import PixelDetector  # noqa: E402

WARMUP = 5


class StepTimer(L.Callback):
    """Wall time of training steps after the warm-up (batch fetch included, as in the bare loop)."""

    # Class attributes: LightningCLI instantiates its own copy from the class path.
    start: float | None = None
    steps = 0
    elapsed = 0.0

    @classmethod
    def reset(cls) -> None:
        cls.start, cls.steps, cls.elapsed = None, 0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == WARMUP:
            StepTimer.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if StepTimer.start is not None:
            StepTimer.steps += 1
            StepTimer.elapsed = time.perf_counter() - StepTimer.start


def bare_loop(manifest: Path, steps: int) -> float:
    torch.manual_seed(0)
    data = PixelDataModule(root=str(manifest), crop_size=56, batch_size=8, split_fractions=(1.0, 0.0, 0.0))
    data.setup("fit")
    model = PixelDetector("test_resnet", pretrained=False, crop_size=56, mode="full")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    criterion = torch.nn.BCEWithLogitsLoss()
    done, start = 0, None
    while True:
        for batch in data.train_dataloader():
            if done == WARMUP:
                start = time.perf_counter()
            loss = criterion(model(batch.images), batch.labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == WARMUP + steps:
                return time.perf_counter() - start


def cli_loop(manifest: Path, steps: int, root: Path) -> float:
    StepTimer.reset()
    main(["fit", "-c", "configs/pixel/tiny_cpu.yaml", "--data.root", str(manifest),
          "--data.split_fractions", "[1.0, 0.0, 0.0]", "--trainer.default_root_dir", str(root),
          "--trainer.logger.init_args.save_dir", str(root), "--trainer.max_steps", str(WARMUP + steps),
          "--trainer.max_epochs", "1000", "--trainer.enable_progress_bar", "false",
          "--trainer.limit_val_batches", "0", "--trainer.callbacks+=__main__.StepTimer"])
    return StepTimer.elapsed


def main_bench() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_paired_dataset(Path(tmp) / "data", tile=64, per_photo=4)
        bare, cli = [], []
        for r in range(args.repeats):
            bare.append(bare_loop(manifest, args.steps))
            cli.append(cli_loop(manifest, args.steps, Path(tmp) / f"run{r}"))
            assert StepTimer.steps == args.steps, StepTimer.steps
    bare_rate, cli_rate = args.steps / min(bare), args.steps / min(cli)
    print(f"bare PyTorch loop : {bare_rate:7.2f} steps/s (best of {args.repeats})")
    print(f"aligngemini fit   : {cli_rate:7.2f} steps/s (best of {args.repeats})")
    print(f"ratio fit/bare    : {cli_rate / bare_rate:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main_bench()
