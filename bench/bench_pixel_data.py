"""Paired pixel data path vs torchvision's ImageFolder + DataLoader doing decode + crop.

Both read the same PNG files (real photos and their paired fakes), decode, crop to the
same size and batch; ours also checks every file, keeps pairs aligned and reports bad
files. Measured in the same run, alternating, best of N. Target: ratio >= 1.0 per image.

    python bench/bench_pixel_data.py [--pairs 200] [--size 320] [--crop 224]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from aligngemini.datamodules.pixel import PixelDataModule
from aligngemini.datamodules.records import ImageRecord, write_manifest
from aligngemini.datamodules.transforms import PixelAugmentConfig
from aligngemini.demo.photos import photo_tiles


def build(root: Path, pairs: int, size: int) -> Path:
    records = []
    tiles = list(photo_tiles(size, per_photo=64, wallpapers=True))
    for i in range(pairs):
        name, image = tiles[i % len(tiles)]
        for label, folder in ((0, "real"), (1, "fake")):
            path = root / folder / f"{i:05d}_{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            (image if label == 0 else image.transpose(Image.FLIP_TOP_BOTTOM)).save(path, compress_level=1)
            records.append(ImageRecord(str(path), label, "bench", f"p{i}"))
    return write_manifest(records, root / "pairs.csv")


def images_per_second(loader) -> float:
    start, count = time.perf_counter(), 0
    for batch in loader:
        images = batch.images if hasattr(batch, "images") else batch[0]
        count += images.shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = build(Path(tmp), args.pairs, args.size)
        ours = PixelDataModule(root=str(manifest), crop_size=args.crop, batch_size=16, num_workers=args.workers,
                               augment=PixelAugmentConfig(jpeg_prob=0, blur_prob=0, resize_prob=0),
                               split_fractions=(1.0, 0.0, 0.0))
        ours.setup("fit")
        baseline = DataLoader(
            datasets.ImageFolder(tmp, transform=transforms.Compose(
                [transforms.RandomCrop(args.crop, pad_if_needed=True), transforms.RandomHorizontalFlip(), transforms.ToTensor()])),
            batch_size=32, shuffle=True, num_workers=args.workers,
        )
        ours_rates, base_rates = [], []
        for _ in range(args.repeats):
            base_rates.append(images_per_second(baseline))
            ours_rates.append(images_per_second(ours.train_dataloader()))
    base, mine = max(base_rates), max(ours_rates)
    print(f"{2 * args.pairs} images of {args.size}px, crop {args.crop}, workers {args.workers}, best of {args.repeats}")
    print(f"torchvision ImageFolder+DataLoader : {base:8.1f} images/s")
    print(f"aligngemini paired pixel view      : {mine:8.1f} images/s")
    print(f"ratio paired/ImageFolder           : {mine / base:.3f}  (target >= 1.0)")


if __name__ == "__main__":
    main()
