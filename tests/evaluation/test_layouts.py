"""Benchmark adapters give each benchmark's own subset names, splits and shared real pools."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from aligngemini.datamodules.records import ManifestError
from aligngemini.evaluation.layouts import LAYOUTS, load_benchmark


def _tree(root: Path, files: list[str]) -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # layouts read names, not pixels
    return root


def _counts(records) -> Counter:
    return Counter((r.subset, r.label) for r in records)


def test_chameleon_keeps_the_test_split_as_one_subset(tmp_path):
    root = _tree(tmp_path, ["test/0_real/a.jpg", "test/0_real/b.jpg", "test/1_fake/c.png", "train/1_fake/d.png"])
    records, layout = load_benchmark(root, "chameleon")
    assert layout == "chameleon" and _counts(records) == {("chameleon", 0): 2, ("chameleon", 1): 1}


def test_wildrf_names_subsets_by_platform(tmp_path):
    files = [f"test/{p}/{c}/x.jpg" for p in ("facebook", "reddit", "twitter") for c in ("0_real", "1_fake")]
    root = _tree(tmp_path, files + ["train/reddit/0_real/y.jpg", "val/reddit/1_fake/z.jpg"])
    records, _ = load_benchmark(root, "wildrf")
    assert _counts(records) == {(p, c): 1 for p in ("facebook", "reddit", "twitter") for c in (0, 1)}


def test_synthwildx_shares_its_real_pool_with_every_generator(tmp_path):
    root = _tree(tmp_path, ["real/r1.jpg", "real/r2.jpg", "dalle3/f1.png", "firefly/f2.jpg", "midjourney/f3.png"])
    records, _ = load_benchmark(root, "synthwildx")
    assert _counts(records) == {(g, label): (2 if label == 0 else 1) for g in ("dalle3", "firefly", "midjourney")
                                for label in (0, 1)}
    assert {r.path for r in records if r.label == 0} == {str(root / "real/r1.jpg"), str(root / "real/r2.jpg")}


def test_genimage_reads_the_val_split_with_generator_names(tmp_path):
    root = _tree(tmp_path, [
        "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/val/ai/a.png",
        "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/val/nature/b.JPEG",
        "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/ai/c.png",
        "glide/imagenet_glide/val/ai/d.png", "glide/imagenet_glide/val/nature/e.JPEG",
    ])
    records, _ = load_benchmark(root, "genimage")
    assert _counts(records) == {("SDv1.4", 1): 1, ("SDv1.4", 0): 1, ("GLIDE", 1): 1, ("GLIDE", 0): 1}


def test_aigi_now_groups_generators_and_aigibench_wild_keeps_its_subsets(tmp_path):
    root = _tree(tmp_path / "now", ["semantic/flux/0_real/a.jpg", "semantic/flux/1_fake/b.png",
                                    "pixel/gpt4o/0_real/c.jpg", "pixel/gpt4o/1_fake/d.png"])
    records, _ = load_benchmark(root, "aigi-now")
    assert {r.subset for r in records} == {"semantic/flux", "pixel/gpt4o"}
    root = _tree(tmp_path / "bench", ["test/SocialRF/0_real/a.jpg", "test/SocialRF/1_fake/b.jpg",
                                      "test/CommunityAI/1_fake/c.png", "test/sdxl/0_real/d.jpg",
                                      "test/sdxl/1_fake/e.png"])
    assert {r.subset for r in load_benchmark(root, "aigibench")[0]} == {"SocialRF", "CommunityAI", "sdxl"}
    assert {r.subset for r in load_benchmark(root, "aigibench-wild")[0]} == {"SocialRF", "CommunityAI"}


def test_bfree_online_reads_sources_on_either_side_of_the_label(tmp_path):
    root = _tree(tmp_path, ["facebook/real/a.jpg", "facebook/fake/b.jpg", "fake/telegram/c.jpg", "real/d.jpg"])
    records, _ = load_benchmark(root, "bfree-online")
    assert _counts(records) == {("facebook", 0): 1, ("facebook", 1): 1, ("telegram", 1): 1, ("telegram", 0): 1}


def test_generic_layouts_and_errors(tmp_path, paired_dataset):
    records, layout = load_benchmark(paired_dataset)
    assert layout == "manifest" and {r.subset for r in records} == {"demo"}
    assert load_benchmark(paired_dataset.parent)[1] == "folder"
    with pytest.raises(ManifestError, match="unknown benchmark layout 'nope'"):
        load_benchmark(tmp_path, "nope")
    empty = _tree(tmp_path / "only_real", ["test/0_real/a.jpg"])
    with pytest.raises(ManifestError, match="not both real and fake.*--list-layouts"):
        LAYOUTS["chameleon"].records(empty)
