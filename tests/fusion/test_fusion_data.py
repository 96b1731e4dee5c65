"""Joining the branches' score files into fusion batches."""

from __future__ import annotations

import pytest
import torch

from aligngemini.datamodules.fusion import FusionDataModule, read_scores, write_scores
from aligngemini.datamodules.records import ManifestError


def rows(values, label=1, errors=()):
    out = []
    for i, logit in enumerate(values):
        row = {"path": f"/imgs/{i}.png", "subset": "s", "label": label if i % 2 else 0, "logit": logit, "probability": None}
        if i in errors:
            row.update(logit=None, error="truncated image data")
        out.append(row)
    return out


def test_join_by_path_across_csv_and_jsonl_in_feature_order(tmp_path):
    pixel = write_scores(tmp_path / "pixel.csv", rows([0.1, 0.2, 0.3, 0.4]))
    # the semantic file lists the images in another order and gives hard verdicts only
    semantic_rows = rows([None] * 4)
    for row, verdict in zip(semantic_rows, [1, 0, 1, 0]):
        row["probability"] = verdict
    semantic = write_scores(tmp_path / "semantic.jsonl", list(reversed(semantic_rows)))
    table = read_scores({"semantic": semantic, "pixel": pixel})
    assert table.feature_names == ("semantic", "pixel")
    by_path = {r.path: r for r in table.rows}
    assert by_path["/imgs/2.png"].features[1] == pytest.approx(0.3)
    assert by_path["/imgs/2.png"].features[0] > 10 and by_path["/imgs/1.png"].features[0] < -10
    assert [by_path[f"/imgs/{i}.png"].label for i in range(4)] == [0, 1, 0, 1]


def test_error_rows_and_missing_images_are_reported_and_skipped(tmp_path):
    pixel = write_scores(tmp_path / "pixel.jsonl", rows([0.0] * 10, errors={3}))
    semantic = write_scores(tmp_path / "semantic.jsonl", rows([0.0] * 9))  # lacks image 9
    data = FusionDataModule({"pixel": str(pixel), "semantic": str(semantic)}, split_fractions=(1.0, 0.0, 0.0), batch_size=4)
    batches = list(data.train_dataloader())
    seen = [p for b in batches for p in b.paths]
    assert sorted(seen) == sorted(f"/imgs/{i}.png" for i in range(9) if i != 3)
    skipped = dict(batches[0].skipped)
    assert "truncated image data" in skipped["/imgs/3.png"] and "pixel" in skipped["/imgs/3.png"]
    assert "semantic" in skipped["/imgs/9.png"]
    assert all(not b.skipped for b in batches[1:])
    assert batches[0].features.dtype == torch.float32 and batches[0].feature_names == ("pixel", "semantic")


def test_disagreeing_labels_name_the_image(tmp_path):
    pixel = write_scores(tmp_path / "pixel.jsonl", rows([0.0, 0.0]))
    flipped = rows([0.0, 0.0])
    flipped[1]["label"] = 0
    semantic = write_scores(tmp_path / "semantic.jsonl", flipped)
    with pytest.raises(ManifestError, match="/imgs/1.png.*disagree"):
        read_scores({"pixel": pixel, "semantic": semantic})


def test_calibration_files_become_the_validation_split(tmp_path):
    train = {n: str(write_scores(tmp_path / f"{n}.jsonl", rows([0.5] * 20))) for n in ("pixel", "semantic")}
    calib_rows = [dict(r, path=r["path"].replace("imgs", "calib")) for r in rows([1.0] * 6)]
    calib = {n: str(write_scores(tmp_path / f"{n}_cal.jsonl", calib_rows)) for n in ("pixel", "semantic")}
    data = FusionDataModule(train, calibration_scores=calib, split_fractions=(0.8, 0.2, 0.0))
    data.setup()
    assert len(data.tables["train"].rows) == 16
    assert sorted(r.path for r in data.tables["val"].rows) == sorted(r["path"] for r in calib_rows)
    with pytest.raises(ValueError, match="name the branches"):
        FusionDataModule(train, calibration_scores={"semantic": calib["semantic"], "pixel": calib["pixel"]})


def test_missing_file_and_bad_rows_are_clear_errors(tmp_path):
    with pytest.raises(ManifestError, match="nope.jsonl.*pixel"):
        read_scores({"pixel": tmp_path / "nope.jsonl"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "/a.png", "label": 1}\n')
    with pytest.raises(ManifestError, match="bad.jsonl:1.*neither a logit nor a probability"):
        read_scores({"pixel": bad})


def test_detect_rows_give_each_branch_its_own_column(tmp_path):
    rows = [{"path": "/a.png", "label": 1, "logit": 9.0, "probability": 0.9999, "verdict": "fake",
             "pixel_probability": 0.8, "semantic_probability": 0.1, "error": None},
            {"path": "/b.png", "label": 0, "logit": None, "probability": None, "verdict": None,
             "pixel_probability": None, "semantic_probability": None, "error": "empty file (0 bytes)"}]
    detect_out = write_scores(tmp_path / "detect.jsonl", rows)
    table = read_scores({"pixel": detect_out, "semantic": detect_out})
    assert len(table.rows) == 1 and dict(table.skipped)["/b.png"].endswith("empty file (0 bytes)")
    assert torch.sigmoid(torch.tensor(table.rows[0].features)).tolist() == pytest.approx([0.8, 0.1], rel=1e-5)
