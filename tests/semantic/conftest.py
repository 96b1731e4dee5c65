"""Fixtures for the semantic branch: tiny random VLM folders and a small labelled manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligngemini.datamodules.records import ImageRecord, write_manifest
from aligngemini.demo.photos import photo_tiles
from aligngemini.testing.tiny_vlm import save_tiny_vlm
from semantic_constants import RATIONALE


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    """``tiny_vlm_dir(family)`` -> folder of a tiny random VLM (built once per session)."""
    root = tmp_path_factory.mktemp("tiny_vlms")
    return lambda family: str(save_tiny_vlm(family, root / family).folder)


@pytest.fixture(scope="session")
def semantic_manifest(tmp_path_factory) -> Path:
    """12 photo tiles: 8 train (fakes with a rationale), 2 val, 2 test; real and fake in each."""
    root = tmp_path_factory.mktemp("semantic_data")
    records = []
    for i, (name, image) in enumerate(photo_tiles(64, 1, seed=0, wallpapers=False)):
        if i == 12:
            break
        path = root / f"{name}.png"
        image.save(path)
        label = i % 2
        split = "train" if i < 8 else "val" if i < 10 else "test"
        records.append(ImageRecord(str(path), label, "demo", rationale=RATIONALE if label else None, split=split))
    return write_manifest(records, root / "records.csv")
