"""``aligngemini detect PATH... --out results.jsonl|csv``: the detector on files, folders and manifests.

Folders are walked recursively (a ``real``/``fake`` folder above a file gives it a label,
for later evaluation); ``.csv``/``.jsonl`` files are manifests; anything else is an image.
Inputs are streamed, so a folder of a million files costs no more memory than ten. A file
that cannot be read becomes a row with ``error`` set; a summary closes the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from aligngemini.datamodules.records import (
    FAKE,
    FAKE_DIR_NAMES,
    REAL,
    REAL_DIR_NAMES,
    ImageRecord,
    _walk_images,
    iter_manifest,
)
from aligngemini.errors import AlignGeminiError

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aligngemini detect",
        description="Score images with the pixel branch, the semantic branch and the fusion head: "
                    "one row per image (fused probability, verdict, each branch's score and contribution).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or CSV/JSONL manifests")
    parser.add_argument("--out", help="write one row per image to this .jsonl or .csv file (default: JSON lines on stdout)")
    parts = parser.add_argument_group("models (checkpoint, exported folder or zoo name)")
    parts.add_argument("--model", help="a zoo detector (e.g. aligngemini-base@v1) naming all parts")
    parts.add_argument("--pixel", help="pixel branch")
    parts.add_argument("--semantic", help="semantic branch (omit for a pixel-only detector)")
    parts.add_argument("--fusion", help="fusion head (default: the paper's OR rule)")
    parts.add_argument("--expert", action="append", default=[], metavar="NAME=SOURCE",
                       help="an extra pixel expert the fusion head was trained with (repeatable)")
    tiling = parser.add_argument_group("whole-image pixel evidence")
    tiling.add_argument("--aggregate", choices=("mean", "max", "topk"), default="mean",
                        help="how tile scores combine: mean (the scale fusion heads expect), max or topk "
                             "(most sensitive to a local edit)")
    tiling.add_argument("--top-k", type=int, default=3, help="tiles averaged by --aggregate topk")
    tiling.add_argument("--max-tiles", type=int, default=16, help="crops per image at most (1: centre crop only)")
    parser.add_argument("--semantic-image-side", type=int, default=None,
                        help="downscale larger images to this side before the VLM (default: as the branch "
                             "was trained, else 448)")
    parser.add_argument("--explain", action="store_true", help="add the VLM's rationale and per-tile heatmap PNGs")
    parser.add_argument("--heatmap-dir", help="where --explain writes heatmaps (default: beside --out)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step (bounds memory)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... or auto")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _folder_records(root: Path) -> Iterator[ImageRecord]:
    """Like :func:`scan_folder` but lazy, and files without a label folder are unlabelled."""
    found = False
    for path in _walk_images(root):
        found = True
        parts = path.relative_to(root).parts[:-1]
        label, subset_parts = None, parts
        for i in range(len(parts) - 1, -1, -1):
            name = parts[i].lower()
            if name in REAL_DIR_NAMES or name in FAKE_DIR_NAMES:
                label, subset_parts = (REAL if name in REAL_DIR_NAMES else FAKE), parts[:i]
                break
        yield ImageRecord(str(path), -1 if label is None else label, "/".join(subset_parts) or "default")
    if not found:
        yield ImageRecord(str(root))  # the decoder reports "not a regular file": one row says why


def iter_inputs(paths: list[str]) -> Iterator[ImageRecord]:
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            yield from _folder_records(path)
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            yield from iter_manifest(path)
        else:
            yield ImageRecord(str(path))


def _parse_experts(items: list[str]) -> dict[str, str]:
    experts = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise AlignGeminiError(f"--expert {item!r}: write NAME=SOURCE, e.g. pixel_flux=flux.ckpt")
        experts[name] = source
    return experts


class _Sink:
    """Rows to a file (RowWriter) or as JSON lines to stdout."""

    def __init__(self, out: str | None):
        from aligngemini.predictions import RowWriter

        self.writer = RowWriter(out) if out else None

    def write(self, row: dict) -> None:
        if self.writer:
            self.writer.write([row])
        else:
            print(json.dumps(row, default=str), flush=True)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def summarize(counts: Counter, errors: list[tuple[str, str]], seconds: float) -> str:
    total = sum(counts.values())
    verdicts = ", ".join(f"{name} {counts[name]}" for name in ("fake", "real", "uncertain") if counts[name])
    lines = [f"{total} image(s) in {seconds:.1f} s ({total / max(seconds, 1e-9):.1f}/s): "
             f"{verdicts or 'no verdicts'}; errors {counts['error']}"]
    lines += [f"  error: {path}: {reason}" for path, reason in errors[:10]]
    if len(errors) > 10:
        lines.append(f"  ... and {len(errors) - 10} more (see the error column)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from aligngemini.detect.branches import SemanticPrompting
    from aligngemini.detect.detector import AlignGemini
    from aligngemini.detect.tiling import TilingConfig

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in {".csv", ".jsonl"}:
        raise AlignGeminiError(f"{out}: --out must end in .csv or .jsonl")
    heatmap_dir = args.heatmap_dir or (out.with_name(out.stem + "_heatmaps") if out else "heatmaps")
    detector = AlignGemini(
        pixel=args.pixel, semantic=args.semantic, fusion=args.fusion, experts=_parse_experts(args.expert),
        model=args.model, tiling=TilingConfig(args.aggregate, args.top_k, args.max_tiles),
        semantic_prompting=SemanticPrompting(max_image_side=args.semantic_image_side),
        batch_size=args.batch_size, explain=args.explain, heatmap_dir=heatmap_dir, device=args.device,
    )
    sink = _Sink(args.out)
    counts: Counter = Counter()
    errors: list[tuple[str, str]] = []
    start = time.perf_counter()
    progress = tqdm(detector.stream(iter_inputs(args.paths)), unit="img", file=sys.stderr,
                    disable=True if args.no_progress else None)
    try:
        for detection in progress:
            sink.write(detection.to_row())
            if detection.error:
                counts["error"] += 1
                errors.append((detection.path, detection.error))
            else:
                counts[detection.verdict] += 1
    finally:
        progress.close()
        sink.close()
    print(summarize(counts, errors, time.perf_counter() - start), file=sys.stderr)
    if out is not None:
        print(f"wrote {sum(counts.values())} rows to {out}", file=sys.stderr)
    scored = sum(counts.values()) - counts["error"]
    return 0 if scored or not counts["error"] else 1
