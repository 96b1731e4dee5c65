"""Streaming shards (WebDataset) against the plain folder/manifest path, measured in one run.

1. Throughput: one training epoch of the pixel view (decode + paired augmentation + crop)
   over the same N units, read from a CSV manifest of files and from tar shards; each in
   a fresh process, best of ``--repeats``. Printed: images/s and the ratio stream/folder
   (target: >= 1.0; shards read sequentially instead of one file open per image).
2. Memory: peak RSS of the shard writer and of the streaming reader over a manifest of N
   and of 10N units, each in a fresh process; the ratio 10N/N should stay flat (target:
   <= 1.1): neither builds a record list. The folder path's ratio is printed beside it.

    python bench/bench_streaming.py [--units 1000] [--repeats 2] [--tile 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CROP, BATCH = 32, 32


def make_data(root: Path, tile: int, distinct: int = 64) -> list[tuple[str, str]]:
    """``distinct`` real photo tiles and their 2x-upsampled 'fakes' as PNG files."""
    from PIL import Image

    from aligngemini.demo.photos import photo_tiles

    pairs = []
    for i, (name, image) in enumerate(photo_tiles(tile, 4, seed=0, wallpapers=False)):
        if i == distinct:
            break
        real, fake = root / "real" / f"{name}.png", root / "fake" / f"{name}.png"
        real.parent.mkdir(parents=True, exist_ok=True)
        fake.parent.mkdir(parents=True, exist_ok=True)
        image.save(real)
        small = image.resize((tile // 2, tile // 2), Image.BILINEAR)
        small.resize((tile, tile), Image.NEAREST).save(fake)
        pairs.append((str(real), str(fake)))
    return pairs


def write_manifest(path: Path, pairs: list[tuple[str, str]], units: int) -> Path:
    """``units`` pairs (files reused, pair ids distinct), all in the train split."""
    with path.open("w") as handle:
        handle.write("path,label,subset,pair_id,split\n")
        for i in range(units):
            real, fake = pairs[i % len(pairs)]
            handle.write(f"{real},0,bench,p{i},train\n{fake},1,bench,p{i},train\n")
    return path


def child(mode: str, source: str) -> dict:
    """Runs in a fresh process: one epoch (or one shard write); returns time, images, peak RSS."""
    from aligngemini.datamodules.pixel import PixelDataModule
    from aligngemini.datamodules.streaming import StreamingPixelDataModule, write_shards

    baseline = _rss_mb()  # after imports: the data path's own memory is what grows, or not
    start = time.perf_counter()
    images, high = 0, baseline
    if mode == "write":
        index = write_shards(source, Path(source).with_suffix(".shards"), units_per_shard=1000)
        images = index["splits"]["train"]["images"]
    else:
        if mode == "folder":
            data = PixelDataModule(root=source, crop_size=CROP, batch_size=BATCH)
        else:
            data = StreamingPixelDataModule(shards=source, crop_size=CROP, batch_size=BATCH, shuffle_buffer=256)
        data.setup("fit")
        for batch in data.train_dataloader():
            images += len(batch)
            high = max(high, _rss_mb())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Growth: the highest RSS seen while batches flow (the writer: its peak), over the RSS after imports.
    grown = (high if mode != "write" else peak) - baseline
    return {"seconds": seconds, "images": images, "peak_mb": peak, "data_mb": max(grown, 0.1)}


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_child(mode: str, source: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(source)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1000, help="N: pairs in the small manifest")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pairs = make_data(root / "images", args.tile)
        small = write_manifest(root / "small.csv", pairs, args.units)
        large = write_manifest(root / "large.csv", pairs, args.units * 10)
        write_small, write_large = run_child("write", small), run_child("write", large)

        folder_runs = [run_child("folder", small) for _ in range(args.repeats)]
        stream_runs = [run_child("stream", small.with_suffix(".shards")) for _ in range(args.repeats)]
        best_folder = min(folder_runs, key=lambda r: r["seconds"])
        best_stream = min(stream_runs, key=lambda r: r["seconds"])
        folder_rate = best_folder["images"] / best_folder["seconds"]
        stream_rate = best_stream["images"] / best_stream["seconds"]
        print(f"throughput, {args.units} pairs of {args.tile}px PNGs, crop {CROP}, batch {BATCH}, 1 worker thread:")
        print(f"  folder/manifest path : {folder_rate:8.0f} images/s ({best_folder['images']} images)")
        print(f"  streaming shards     : {stream_rate:8.0f} images/s ({best_stream['images']} images)")
        print(f"  ratio stream/folder  : {stream_rate / folder_rate:.2f}  (target >= 1.0)")

        stream_large = run_child("stream", large.with_suffix(".shards"))
        folder_large = run_child("folder", large)
        print(f"memory, {args.units} -> {args.units * 10} pairs (10x): peak RSS, and its growth over the RSS "
              "after imports (the data path's own share)")
        for name, a, b in (("shard writer", write_small, write_large),
                           ("streaming reader", best_stream, stream_large),
                           ("folder/manifest path", best_folder, folder_large)):
            target = "  (target <= 1.1)" if name != "folder/manifest path" else ""
            print(f"  {name:21s}: peak {a['peak_mb']:6.0f} -> {b['peak_mb']:6.0f} MB, ratio {b['peak_mb'] / a['peak_mb']:.2f}{target};"
                  f" growth {a['data_mb']:6.1f} -> {b['data_mb']:6.1f} MB")


if __name__ == "__main__":
    main()
