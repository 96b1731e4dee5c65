"""`aligngemini detect` throughput and memory, with both tiny branches on the CPU.

1. Throughput: the full detector (pixel + semantic + fusion) against the sum of the two
   branches run alone on the same images (a pixel-only and a semantic-only detector, each
   reading the files itself), interleaved, best of ``--repeats``. Target: ratio >= 0.9.
   Also printed: the ratio against the bare branch scorers on images already in memory
   (model time only, no file reading), which the detector cannot beat by sharing decoding.
2. Memory: the detect loop over N and 10N files, each in a fresh process, RSS sampled
   while streaming; the peak should stay flat (target: ratio <= 1.1).

    python bench/bench_detect.py [--images 24] [--repeats 3]
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lightning as L  # noqa: E402
import torch  # noqa: E402

TINY_PIXEL = dict(backbone="vit_small_patch14_dinov2", pretrained=False, crop_size=56,
                  backbone_kwargs={"depth": 2, "embed_dim": 48, "num_heads": 3})


def save_checkpoint(module: L.LightningModule, path: Path) -> Path:
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                  "pytorch-lightning_version": L.__version__}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def make_parts(root: Path) -> dict[str, Path]:
    from aligngemini.lightning_modules.pixel import PixelBranch
    from aligngemini.lightning_modules.semantic import SemanticBranch
    from aligngemini.testing.tiny_vlm import save_tiny_vlm

    torch.manual_seed(0)
    pixel = PixelBranch(**TINY_PIXEL)
    pixel.configure_model()
    tiny = save_tiny_vlm("qwen2_vl", root / "qwen2_vl")
    semantic = SemanticBranch(model_id=str(tiny.folder), quantization="none", gradient_checkpointing=False)
    semantic.configure_model()
    return {"pixel": save_checkpoint(pixel, root / "pixel.ckpt"),
            "semantic": save_checkpoint(semantic, root / "semantic.ckpt")}


def make_images(folder: Path, count: int, side: int = 224) -> list[str]:
    from aligngemini.demo.photos import photo_tiles

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    tiles = photo_tiles(side, per_photo=max(1, count // 10 + 1), seed=0, wallpapers=False)
    for i, (name, image) in zip(range(count), tiles):
        path = folder / f"{i:05d}_{name}.png"
        image.save(path)
        paths.append(str(path))
    if len(paths) < count:  # fewer distinct tiles than asked: repeat them under new names
        for i in range(len(paths), count):
            path = folder / f"{i:05d}_copy.png"
            path.write_bytes(Path(paths[i % len(paths)]).read_bytes())
            paths.append(str(path))
    return paths


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(parts: dict[str, Path], paths: list[str], repeats: int, batch_size: int) -> None:
    from aligngemini.datamodules.images import decode_image
    from aligngemini.detect import AlignGemini

    both = AlignGemini(pixel=parts["pixel"], semantic=parts["semantic"], batch_size=batch_size, device="cpu")
    pixel_only = AlignGemini(pixel=parts["pixel"], batch_size=batch_size, device="cpu")
    semantic_only = AlignGemini(semantic=parts["semantic"], batch_size=batch_size, device="cpu")
    images = [decode_image(p) for p in paths]
    pixel_scorer = next(iter(both.pixel_scorers.values()))
    semantic_scorer = both.semantic_scorer

    def bare(scorer):
        for start in range(0, len(images), batch_size):
            scorer(images[start : start + batch_size])

    runs = {
        "detector (both)": lambda: list(both.stream(paths)),
        "pixel alone": lambda: list(pixel_only.stream(paths)),
        "semantic alone": lambda: list(semantic_only.stream(paths)),
        "bare pixel scorer": lambda: bare(pixel_scorer),
        "bare semantic scorer": lambda: bare(semantic_scorer),
    }
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so a busy moment on the machine hits every variant
        for name, run in runs.items():
            times[name].append(timed(run))
    best = {name: min(values) for name, values in times.items()}
    n = len(paths)
    print(f"throughput on {n} images of 224 px, batch {batch_size}, {torch.get_num_threads()} threads, best of {repeats}:")
    for name, seconds in best.items():
        print(f"  {name:22s} {seconds:7.3f} s   {n / seconds:7.1f} img/s")
    alone = best["pixel alone"] + best["semantic alone"]
    bare_sum = best["bare pixel scorer"] + best["bare semantic scorer"]
    print(f"  ratio (pixel alone + semantic alone) / detector = {alone / best['detector (both)']:.3f}   (target >= 0.9)")
    print(f"  ratio (bare scorers, images in memory) / detector = {bare_sum / best['detector (both)']:.3f}")


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(folder: str, parts_json: str, out: str) -> None:
    """A fresh process: load the detector, then stream the folder to a row file as
    ``aligngemini detect`` does, sampling RSS while it streams (model loading excluded)."""
    import threading

    from aligngemini.detect import AlignGemini
    from aligngemini.detect.commands import iter_inputs
    from aligngemini.predictions import RowWriter

    parts = json.loads(parts_json)
    detector = AlignGemini(pixel=parts["pixel"], semantic=parts["semantic"], batch_size=8, device="cpu")
    loaded = _rss_mib()
    peak, done = [loaded], threading.Event()

    def sample():
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    writer = RowWriter(out)
    for detection in detector.stream(iter_inputs([folder])):
        writer.write([detection.to_row()])
    writer.close()
    done.set()
    sampler.join()
    print(json.dumps({"loaded_mib": loaded, "stream_peak_mib": max(peak[0], _rss_mib()),
                      "process_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def memory(parts: dict[str, Path], root: Path, count: int) -> None:
    small, large = root / "small", root / "large"
    make_images(small, count)
    make_images(large, count * 10)
    parts_json = json.dumps({k: str(v) for k, v in parts.items()})
    peaks = {}
    for name, folder in (("N", small), ("10N", large)):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--child",
                               str(folder), parts_json, str(root / f"{name}.jsonl")],
                              capture_output=True, text=True, check=True)
        report = json.loads(done.stdout.strip().splitlines()[-1])
        rows = sum(1 for _ in open(root / f"{name}.jsonl"))
        peaks[name] = report["stream_peak_mib"]
        print(f"  {rows:5d} files: RSS after loading {report['loaded_mib']:7.1f} MiB, peak while streaming "
              f"{report['stream_peak_mib']:7.1f} MiB (+{report['stream_peak_mib'] - report['loaded_mib']:.1f}), "
              f"process peak {report['process_peak_mib']:7.1f} MiB  ({time.perf_counter() - start:.1f} s)")
    print(f"  ratio streaming peak(10N) / peak(N) = {peaks['10N'] / peaks['N']:.3f}   (target <= 1.1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory-images", type=int, default=12, help="N for the N vs 10N memory run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: stable timings on a shared CPU; 0: torch's default)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        return child(*args.child)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        parts = make_parts(root)
        paths = make_images(root / "images", args.images)
        throughput(parts, paths, args.repeats, args.batch_size)
        if args.skip_memory:
            return
        print(f"memory (fresh process each, batch 8, N = {args.memory_images}):")
        memory(parts, root, args.memory_images)


if __name__ == "__main__":
    main()
