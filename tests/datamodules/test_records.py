import json

import pytest
from PIL import Image

from aligngemini.datamodules.records import (
    ImageRecord,
    ManifestError,
    load_records,
    scan_folder,
    split_records,
    write_manifest,
)


def _touch_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (10, 20, 30)).save(path)


@pytest.mark.parametrize(
    "real_dir, fake_dir",
    [("real", "fake"), ("0_real", "1_fake"), ("nature", "ai")],
)
def test_flat_benchmark_layouts(tmp_path, real_dir, fake_dir):
    _touch_image(tmp_path / real_dir / "a.png")
    _touch_image(tmp_path / fake_dir / "b.jpg")
    records = scan_folder(tmp_path)
    assert {(r.label, r.subset) for r in records} == {(0, "default"), (1, "default")}


def test_nested_per_generator_layout_keeps_subset(tmp_path):
    for gen in ("sdv14", "midjourney"):
        _touch_image(tmp_path / gen / "0_real" / "x.png")
        _touch_image(tmp_path / gen / "1_fake" / "sub" / "y.png")
    records = scan_folder(tmp_path)
    assert sorted((r.subset, r.label) for r in records) == [
        ("midjourney", 0), ("midjourney", 1), ("sdv14", 0), ("sdv14", 1)
    ]


def test_folder_without_label_dirs_names_the_file(tmp_path):
    _touch_image(tmp_path / "photos" / "a.png")
    with pytest.raises(ManifestError, match="a.png"):
        scan_folder(tmp_path)


def test_csv_and_jsonl_manifests_round_trip(tmp_path):
    records = [
        ImageRecord(str(tmp_path / "r.png"), 0, "coco", "p1", None),
        ImageRecord(str(tmp_path / "f.png"), 1, "coco", "p1", "six fingers on the left hand"),
    ]
    for name in ("m.csv", "m.jsonl"):
        path = write_manifest(records, tmp_path / name)
        assert load_records(path) == records


def test_manifest_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"path": "a.png", "label": 0}) + "\n" + json.dumps({"path": "b.png", "label": "maybe"}) + "\n")
    with pytest.raises(ManifestError, match=r"bad.jsonl:2: label 'maybe'"):
        load_records(bad)
    csv = tmp_path / "bad.csv"
    csv.write_text("file,label\na.png,0\n")
    with pytest.raises(ManifestError, match="bad.csv: CSV header must name a 'path' column"):
        load_records(csv)
    with pytest.raises(ManifestError, match="no such folder or manifest"):
        load_records(tmp_path / "missing.csv")


def _records(n_pairs=20, n_single=10):
    out = []
    for i in range(n_pairs):
        out += [ImageRecord(f"r{i}.png", 0, "a", f"p{i}"), ImageRecord(f"f{i}.png", 1, "a", f"p{i}")]
    out += [ImageRecord(f"s{i}.png", i % 2, "b") for i in range(n_single)]
    return out


def test_split_is_deterministic_order_free_and_keeps_pairs_together():
    records = _records()
    first = split_records(records, (0.6, 0.2, 0.2), seed=3)
    again = split_records(list(reversed(records)), (0.6, 0.2, 0.2), seed=3)
    assert first == again
    assert sum(len(v) for v in first.values()) == len(records)
    where = {r.path: s for s, rs in first.items() for r in rs}
    for i in range(20):
        assert where[f"r{i}.png"] == where[f"f{i}.png"]
    assert split_records(records, (0.6, 0.2, 0.2), seed=4) != first
    assert all(first[s] for s in ("train", "val", "test"))


def test_explicit_split_column_wins():
    records = [ImageRecord("x.png", 0, split="test")] + _records(5, 0)
    splits = split_records(records, (1.0, 0.0, 0.0))
    assert [r.path for r in splits["test"]] == ["x.png"]
    assert len(splits["train"]) == 10
