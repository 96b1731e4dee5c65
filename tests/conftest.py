"""Shared fixtures: small datasets made from real photos that ship in scikit-image.

Fakes here carry a synthetic *decoder artifact* (2x nearest-neighbour upsampling of a
half-resolution copy: the periodic pattern a transposed-conv decoder leaves), so a
tiny pixel model can learn them in seconds. Each fake is paired with its real photo.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest
from PIL import Image

from aligngemini.datamodules.records import ImageRecord, write_manifest
from aligngemini.demo.photos import photo_tiles


def upsampling_artifact(image: Image.Image) -> Image.Image:
    width, height = image.size
    return image.resize((width // 2, height // 2), Image.BILINEAR).resize((width, height), Image.NEAREST)


def make_paired_dataset(root: Path, tile: int = 48, per_photo: int = 2) -> Path:
    """real/ and fake/ folders plus ``pairs.csv`` (pair_id ties a fake to its real photo)."""
    (root / "real").mkdir(parents=True, exist_ok=True)
    (root / "fake").mkdir(parents=True, exist_ok=True)
    records = []
    for name, image in photo_tiles(tile, per_photo, seed=0, wallpapers=False):
        real, fake = root / "real" / f"{name}.png", root / "fake" / f"{name}.png"
        image.save(real)
        upsampling_artifact(image).save(fake)
        records += [ImageRecord(str(real), 0, "demo", name), ImageRecord(str(fake), 1, "demo", name)]
    return write_manifest(records, root / "pairs.csv")


@pytest.fixture(scope="session")
def paired_dataset(tmp_path_factory) -> Path:
    """Path of a pairs manifest (CSV) over ~30 real/fake pairs of 48 px tiles."""
    return make_paired_dataset(tmp_path_factory.mktemp("paired"))


@pytest.fixture(scope="session")
def photo_folder(paired_dataset) -> Path:
    """The same data as a ``real/`` + ``fake/`` folder."""
    return paired_dataset.parent
