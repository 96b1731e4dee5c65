"""What a sweep point costs: scoring through perturbed copies on disk, against two baselines
measured in the same run on the same images with a tiny pixel branch on the CPU.

- native: the same images scored as they are (``Scorer.score(records)``);
- in memory: decode -> perturb -> crop -> model, no files written (the floor any design
  that keeps the views unaware of perturbations could reach).

Printed ratios: copies / native and copies / in-memory (target: copies / in-memory <= 1.5,
i.e. writing lossless copies adds at most half of the in-memory cost).

    OMP_NUM_THREADS=1 python bench/bench_evaluate.py [--images 96] [--size 256] [--repeats 3]

(one thread: on a shared, loaded CPU, multi-threaded torch timings swing by 10x or more).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from aligngemini.datamodules.images import decode_image  # noqa: E402
from aligngemini.datamodules.pixel import PixelDataModule  # noqa: E402
from aligngemini.datamodules.records import ImageRecord  # noqa: E402
from aligngemini.datamodules.transforms import Perturbation, eval_crop  # noqa: E402
from aligngemini.demo.photos import photo_tiles  # noqa: E402
from aligngemini.evaluation.scoring import Scorer  # noqa: E402
from aligngemini.lightning_modules.pixel import PixelBranch  # noqa: E402

TINY_PIXEL = dict(backbone="vit_small_patch14_dinov2", pretrained=False, crop_size=56,
                  backbone_kwargs={"depth": 2, "embed_dim": 48, "num_heads": 3})


def make_images(folder: Path, count: int, size: int) -> list[ImageRecord]:
    records = []
    for i, (name, image) in enumerate(photo_tiles(size, 8, seed=0, wallpapers=True)):
        if i >= count:
            break
        path = folder / f"{name}.png"
        image.save(path)
        records.append(ImageRecord(str(path), i % 2, "bench"))
    return records


def in_memory(module: PixelBranch, records: list[ImageRecord], perturbation: Perturbation, batch: int) -> None:
    with torch.inference_mode():
        for start in range(0, len(records), batch):
            crops = [eval_crop(perturbation.apply(decode_image(r.path)), module.crop_size)
                     for r in records[start : start + batch]]
            module.score_images(torch.stack(crops))


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    module = PixelBranch(**TINY_PIXEL).eval()
    module.configure_model()
    with tempfile.TemporaryDirectory() as folder:
        records = make_images(Path(folder), args.images, args.size)
        scorer = Scorer(module, lambda: PixelDataModule(batch_size=args.batch_size), accelerator="cpu",
                        root_dir=folder)
        perturbation = Perturbation("jpeg", 75)
        scorer.score(records[:4], perturbation)  # warm up
        native = best_of(args.repeats, lambda: scorer.score(records))
        copies = best_of(args.repeats, lambda: scorer.score(records, perturbation))
        memory = best_of(args.repeats, lambda: in_memory(module, records, perturbation, args.batch_size))
    print(f"{len(records)} images of {args.size}px, tiny ViT, {perturbation.name}, best of {args.repeats}")
    print(f"native {native:.2f}s  copies {copies:.2f}s  in-memory {memory:.2f}s")
    print(f"copies / native    = {copies / native:.2f}")
    print(f"copies / in-memory = {copies / memory:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
