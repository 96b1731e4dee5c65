"""Evaluation protocols and the perturbed copies that protocols and sweeps score.

``native`` scores the files as they are. ``jpeg-aligned`` re-encodes every image, real
and fake, at one JPEG quality first: many benchmarks store reals as JPEG and fakes as
PNG, so a detector can score well by spotting the file format; after alignment every
image carries the same compression and only the generator's traces are left.

Perturbations are applied to decoded pixels (through the one safe decoder, upright)
and the result is written losslessly (uncompressed BMP) to a scratch folder, so that any
datamodule view scores exactly the perturbed pixels without knowing about them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from aligngemini.datamodules.images import BadImageError, DecodeLimits, decode_image
from aligngemini.datamodules.records import ImageRecord
from aligngemini.datamodules.transforms import Perturbation
from aligngemini.evaluation.metrics import DEFAULT_ECE_BINS

PROTOCOLS = ("native", "jpeg-aligned")
DEFAULT_ALIGN_QUALITY = 95
Chain = tuple[Perturbation, ...]


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is scored: the paper's 0.5 threshold, the ECE bins and the format alignment."""

    name: str = "native"
    jpeg_quality: int = DEFAULT_ALIGN_QUALITY
    threshold: float = 0.5
    ece_bins: int = DEFAULT_ECE_BINS

    def __post_init__(self):
        if self.name not in PROTOCOLS:
            raise ValueError(f"protocol {self.name!r} is not one of {PROTOCOLS}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"protocol JPEG quality must be in 1..100, got {self.jpeg_quality}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    @property
    def chain(self) -> Chain:
        """What every image goes through before any sweep perturbation."""
        return (Perturbation("jpeg", int(self.jpeg_quality)),) if self.name == "jpeg-aligned" else ()

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "jpeg_quality": int(self.jpeg_quality) if self.name == "jpeg-aligned" else None,
            "threshold": self.threshold,
            "ece_bins": self.ece_bins,
        }


def apply_chain(image: Image.Image, chain: Sequence[Perturbation]) -> Image.Image:
    for perturbation in chain:
        image = perturbation.apply(image)
    return image


def chain_name(chain: Sequence[Perturbation]) -> str:
    return "+".join(p.name for p in chain if p.kind != "none") or "none"


@dataclass(frozen=True)
class PerturbedCopies:
    """Records that point at perturbed copies, the original path of each copy, and the
    originals that could not be decoded (path -> reason)."""

    records: list[ImageRecord]
    original_path: dict[str, str]
    failed: dict[str, str]


def write_perturbed_copies(
    records: Sequence[ImageRecord],
    chain: Sequence[Perturbation],
    folder: str | os.PathLike,
    limits: DecodeLimits = DecodeLimits(),
    workers: int | None = None,
) -> PerturbedCopies:
    """Decode each record, apply ``chain`` and save the pixels as BMP under ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def one(item: tuple[int, ImageRecord]) -> tuple[ImageRecord, str | None, str | None]:
        index, record = item
        try:
            image = apply_chain(decode_image(record.path, limits), chain)
        except BadImageError as err:
            return record, None, err.reason
        target = folder / f"{index:08d}.bmp"
        image.save(target, format="BMP")  # lossless and uncompressed: scratch files, speed over size
        return record, str(target), None

    copies, original, failed = [], {}, {}
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for record, target, reason in pool.map(one, enumerate(records)):
            if target is None:
                failed[record.path] = reason
            else:
                copies.append(replace(record, path=target))
                original[target] = record.path
    return PerturbedCopies(copies, original, failed)
