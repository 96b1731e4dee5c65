"""Pre-run check of a benchmark: unreadable files, and the per-class mix of file formats,
image sizes and JPEG qualities.

Many benchmarks keep reals as camera JPEGs and fakes as PNGs, or fakes at one fixed
size: a detector can then score well without seeing any generator trace. The check
says so before a run (and suggests ``--protocol jpeg-aligned``). Every file goes
through the one safe decoder, so what it calls unreadable is what a run would skip.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from aligngemini.datamodules.images import BadImageError, DecodeLimits, decode_image
from aligngemini.datamodules.jpeg_quality import estimate_jpeg_quality
from aligngemini.datamodules.records import LABEL_NAMES, ImageRecord

FORMAT_GAP = 0.5  # warn when a format's share differs by more than this between real and fake
SIZE_RATIO = 1.5  # ... when the median pixel counts differ by more than this factor
QUALITY_GAP = 10  # ... when the median JPEG qualities differ by this much or more


@dataclass(frozen=True)
class FileInfo:
    path: str
    label: int
    subset: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    jpeg_quality: int | None = None
    error: str | None = None


def inspect_file(record: ImageRecord, limits: DecodeLimits = DecodeLimits()) -> FileInfo:
    try:
        image = decode_image(record.path, limits)
    except BadImageError as err:
        return FileInfo(record.path, record.label, record.subset, error=err.reason)
    try:
        with Image.open(record.path) as opened:
            file_format = opened.format
    except OSError:
        file_format = None
    quality = estimate_jpeg_quality(record.path) if file_format == "JPEG" else None
    return FileInfo(record.path, record.label, record.subset, file_format, image.width, image.height,
                    os.path.getsize(record.path), quality)


def _class_summary(infos: list[FileInfo]) -> dict:
    if not infos:
        return {"n": 0}
    formats = Counter(i.format or "unknown" for i in infos)
    pixels = [i.width * i.height for i in infos]
    qualities = [i.jpeg_quality for i in infos if i.jpeg_quality is not None]
    return {
        "n": len(infos),
        "formats": dict(formats.most_common()),
        "width": {"min": min(i.width for i in infos), "median": statistics.median(i.width for i in infos),
                  "max": max(i.width for i in infos)},
        "height": {"min": min(i.height for i in infos), "median": statistics.median(i.height for i in infos),
                   "max": max(i.height for i in infos)},
        "median_megapixels": round(statistics.median(pixels) / 1e6, 4),
        "median_kilobytes": round(statistics.median(i.bytes for i in infos) / 1024, 1),
        "median_jpeg_quality": statistics.median(qualities) if qualities else None,
    }


def _by_class(infos: list[FileInfo]) -> dict[str, dict]:
    return {name: _class_summary([i for i in infos if i.label == label]) for label, name in enumerate(LABEL_NAMES)}


def bias_warnings(by_class: dict[str, dict], where: str = "") -> list[str]:
    real, fake = by_class.get("real", {}), by_class.get("fake", {})
    if not real.get("n") or not fake.get("n"):
        return []
    prefix = f"{where}: " if where else ""
    warnings = []
    for fmt in sorted(set(real["formats"]) | set(fake["formats"])):
        share_real = real["formats"].get(fmt, 0) / real["n"]
        share_fake = fake["formats"].get(fmt, 0) / fake["n"]
        if abs(share_real - share_fake) > FORMAT_GAP:
            warnings.append(
                f"{prefix}{share_real:.0%} of real images are {fmt} but {share_fake:.0%} of fake images are: "
                "a detector can tell them apart by file format; compare with --protocol jpeg-aligned"
            )
    big, small = sorted((real["median_megapixels"], fake["median_megapixels"]), reverse=True)
    if small > 0 and big / small > SIZE_RATIO:
        warnings.append(
            f"{prefix}median image size is {real['median_megapixels']:g} MP for real and "
            f"{fake['median_megapixels']:g} MP for fake images: size alone separates the classes"
        )
    q_real, q_fake = real.get("median_jpeg_quality"), fake.get("median_jpeg_quality")
    if q_real is not None and q_fake is not None and abs(q_real - q_fake) >= QUALITY_GAP:
        warnings.append(f"{prefix}median JPEG quality is {q_real:g} for real and {q_fake:g} for fake images")
    return warnings


def check_records(records: Sequence[ImageRecord], limits: DecodeLimits = DecodeLimits(),
                  workers: int | None = None) -> dict:
    """The check's report (also stored under ``benchmarks.<name>.check`` in metrics.json)::

        {"n_files", "n_unreadable", "unreadable": [{"path", "reason"}],
         "by_class": {"real"|"fake": {"n", "formats": {FORMAT: count}, "width"/"height":
                      {"min", "median", "max"}, "median_megapixels", "median_kilobytes",
                      "median_jpeg_quality"}},
         "by_subset": {subset: {"real": ..., "fake": ...}}, "warnings": [str]}
    """
    unique = list({r.path: r for r in records}.values())
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        infos = list(pool.map(lambda r: inspect_file(r, limits), unique))
    bad = [i for i in infos if i.error]
    good = [i for i in infos if not i.error]
    by_class = _by_class(good)
    subsets = sorted({r.subset for r in records})
    members = {s: {r.path for r in records if r.subset == s} for s in subsets}
    by_subset = {s: _by_class([i for i in good if i.path in members[s]]) for s in subsets}
    warnings = [f"{len(bad)} of {len(infos)} files cannot be read and will be skipped"] if bad else []
    warnings += bias_warnings(by_class)
    if len(subsets) > 1:
        for subset in subsets:
            warnings += [w for w in bias_warnings(by_subset[subset], subset) if "file format" in w]
    return {
        "n_files": len(infos),
        "n_unreadable": len(bad),
        "unreadable": [{"path": i.path, "reason": i.error} for i in bad],
        "by_class": by_class,
        "by_subset": by_subset,
        "warnings": warnings,
    }


def format_check(report: dict, name: str) -> str:
    """Plain-text summary for the terminal."""
    lines = [f"{name}: {report['n_files']} files, {report['n_unreadable']} unreadable"]
    for cls, summary in report["by_class"].items():
        if not summary.get("n"):
            continue
        formats = ", ".join(f"{fmt} {count}" for fmt, count in summary["formats"].items())
        quality = summary["median_jpeg_quality"]
        lines.append(
            f"  {cls:4s} n={summary['n']}: {formats}; median {summary['width']['median']:g}x"
            f"{summary['height']['median']:g} px, {summary['median_kilobytes']:g} KB"
            + (f", JPEG q~{quality:g}" if quality is not None else "")
        )
    lines += [f"  ! {item['path']}: {item['reason']}" for item in report["unreadable"][:20]]
    lines += [f"  warning: {w}" for w in report["warnings"]]
    return "\n".join(lines)
