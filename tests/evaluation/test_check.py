"""The pre-run check names unreadable files and shows the real=JPEG / fake=PNG bias."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from aligngemini.datamodules.records import load_records
from aligngemini.evaluation.check import check_records, format_check
from aligngemini.demo.photos import photo_tiles


def _biased_benchmark(root: Path) -> Path:
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    for i, (name, image) in enumerate(photo_tiles(48, 1, seed=0, wallpapers=False)):
        if i >= 6:
            break
        image.save(root / "real" / f"{name}.jpg", quality=90)
        image.resize((64, 64)).save(root / "fake" / f"{name}.png")
    broken = root / "fake" / "truncated.png"
    Image.new("RGB", (64, 64), "red").save(broken)
    broken.write_bytes(broken.read_bytes()[:50])
    (root / "real" / "notes.jpg").write_text("not an image")
    return root


def test_check_reports_broken_files_and_the_format_mix(tmp_path):
    records = load_records(_biased_benchmark(tmp_path / "bench"))
    report = check_records(records)
    assert report["n_files"] == 14 and report["n_unreadable"] == 2
    reasons = {Path(item["path"]).name: item["reason"] for item in report["unreadable"]}
    assert set(reasons) == {"truncated.png", "notes.jpg"}
    assert "truncated" in reasons["truncated.png"] or "decode" in reasons["truncated.png"]
    real, fake = report["by_class"]["real"], report["by_class"]["fake"]
    assert real["formats"] == {"JPEG": 6} and fake["formats"] == {"PNG": 6}
    assert real["median_jpeg_quality"] == 90 and fake["median_jpeg_quality"] is None
    assert real["width"]["median"] == 48 and fake["width"]["median"] == 64
    warnings = "\n".join(report["warnings"])
    assert "2 of 14 files cannot be read" in warnings
    assert "100% of real images are JPEG but 0% of fake images are" in warnings
    assert "jpeg-aligned" in warnings and "size alone separates" in warnings
    text = format_check(report, "bench")
    assert "truncated.png" in text and "JPEG 6" in text and "PNG 6" in text


def test_an_unbiased_benchmark_gets_no_bias_warning(paired_dataset):
    report = check_records(load_records(paired_dataset))
    assert report["n_unreadable"] == 0 and report["warnings"] == []
