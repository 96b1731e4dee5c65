"""The detector end to end with the tiny real branches: every file gets a row, and the
Python API and the command line give the same answers."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from PIL import Image

from aligngemini.cli import main
from aligngemini.datamodules.fusion import read_scores
from aligngemini.datamodules.records import ImageRecord, write_manifest
from aligngemini.detect import AlignGemini, TilingConfig
from aligngemini.detect.detector import _isolate, _Decoded


def cli_rows(tmp_path, args, out_name="out.jsonl"):
    out = tmp_path / out_name
    assert main(["detect", *args, "--out", str(out), "--no-progress"]) == 0
    if out.suffix == ".csv":
        with out.open(newline="") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_folder_with_broken_files_gives_a_row_for_every_file(image_folder, tmp_path, capsys,
                                                             pixel_checkpoint, semantic_checkpoint, fusion_checkpoint):
    files = sorted(str(p) for p in image_folder.rglob("*") if p.is_file())
    rows = cli_rows(tmp_path, [str(image_folder), "--pixel", str(pixel_checkpoint), "--semantic",
                               str(semantic_checkpoint), "--fusion", str(fusion_checkpoint), "--batch-size", "4"])
    assert sorted(r["path"] for r in rows) == files
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert "PIL can identify" in by_name["broken.png"]["error"] and by_name["broken.png"]["probability"] is None
    assert "empty" in by_name["empty.jpg"]["error"]
    good = [r for r in rows if not r["error"]]
    assert len(good) == 7
    for row in good:
        assert 0.0 <= row["probability"] <= 1.0 and row["verdict"] in ("real", "fake", "uncertain")
        assert {"pixel_probability", "semantic_probability", "pixel_contribution", "semantic_contribution"} <= set(row)
        assert row["tiles"] >= 1
    assert {r["label"] for r in good if "/set_a/real/" in r["path"]} == {0}
    assert {r["label"] for r in good if "/set_a/fake/" in r["path"]} == {1}
    assert next(r for r in good if r["path"].endswith("photo.png"))["label"] is None
    summary = capsys.readouterr().err
    assert "9 image(s)" in summary and "errors 2" in summary and "broken.png" in summary
    # the rows are fusion training data too: each branch's column, the broken files left out
    table = read_scores({"pixel": tmp_path / "out.jsonl", "semantic": tmp_path / "out.jsonl"})
    assert len(table.rows) == 7 and len(table.skipped) == 2
    first = next(r for r in good if r["path"] == table.rows[0].path)
    assert torch.sigmoid(torch.tensor(table.rows[0].features, dtype=torch.float64)).tolist() == pytest.approx(
        [first["pixel_probability"], first["semantic_probability"]], rel=1e-6)


def test_python_api_and_cli_agree(detector, image_folder, tmp_path, pixel_checkpoint, semantic_checkpoint,
                                  fusion_checkpoint):
    paths = sorted((str(p) for p in image_folder.rglob("*.png")), key=lambda p: "broken" not in p)
    assert "broken" in paths[0]  # the CSV's columns must not depend on the first row being readable
    manifest = write_manifest([ImageRecord(p) for p in paths], tmp_path / "list.csv")
    api = {d.path: d for d in detector(paths)}
    rows = cli_rows(tmp_path, [str(manifest), "--pixel", str(pixel_checkpoint), "--semantic", str(semantic_checkpoint),
                               "--fusion", str(fusion_checkpoint)], out_name="out.csv")
    assert sorted(r["path"] for r in rows) == sorted(api)
    for row in rows:
        mine = api[row["path"]]
        assert row["error"] == (mine.error or "")
        if mine.error:
            continue
        assert row["verdict"] == mine.verdict
        assert math.isclose(float(row["probability"]), mine.probability, rel_tol=1e-5)
        assert math.isclose(float(row["pixel_probability"]), mine.pixel_score, rel_tol=1e-5)
        assert math.isclose(float(row["semantic_probability"]), mine.semantic_score, rel_tol=1e-5)


def test_pil_images_paths_and_batches_give_the_same_scores(detector, image_folder):
    paths = sorted(str(p) for p in image_folder.rglob("*.png") if "broken" not in p.name)[:4]
    with Image.open(paths[0]) as image:
        pil = image.convert("RGB")
    by_path = detector(paths)
    alone = detector(paths[0])
    from_pil = detector([pil])
    assert from_pil[0].path == "<image 0>"
    assert from_pil[0].probability == pytest.approx(by_path[0].probability, rel=1e-5)
    assert alone[0].probability == pytest.approx(by_path[0].probability, rel=1e-5)  # batch size does not matter
    # the fused probability is the fusion head applied to the two branch scores
    head = detector.fusion.model
    row = by_path[1]
    features = torch.logit(torch.tensor([[row.pixel_score, row.semantic_score]], dtype=torch.float64)).float()
    assert torch.sigmoid(head(features)).item() == pytest.approx(row.probability, abs=1e-4)


def test_explain_writes_heatmaps_and_rationales(image_folder, tmp_path, pixel_checkpoint, semantic_checkpoint):
    rows = cli_rows(tmp_path, [str(image_folder / "set_a" / "real"), "--pixel", str(pixel_checkpoint),
                               "--semantic", str(semantic_checkpoint), "--explain", "--max-tiles", "4",
                               "--aggregate", "topk", "--top-k", "2"])
    assert len(rows) == 3
    for row in rows:
        assert isinstance(row["rationale"], str)
        with Image.open(row["heatmap"]) as heatmap:
            assert heatmap.size[0] > 0
        # no fusion head given: the paper's OR rule over the two branches
        paper = row["pixel_probability"] > 0.5 or row["semantic_probability"] > 0.5
        assert (row["verdict"] == "fake") == paper


def test_stream_reads_its_input_lazily(pixel_checkpoint):
    detector = AlignGemini(pixel=pixel_checkpoint, batch_size=2, device="cpu", tiling=TilingConfig(max_tiles=1))
    consumed = []

    def images():
        for i in range(100):
            consumed.append(i)
            yield Image.new("RGB", (40, 40), (i, 0, 0))

    stream = detector.stream(images())
    first = next(stream)
    assert first.error is None and first.verdict in ("real", "fake")
    assert len(consumed) <= 6  # the batch being scored and the one decoding ahead, not the 100
    stream.close()


def test_one_failing_image_does_not_fail_its_batch():
    decoded = [_Decoded(i, f"img{i}", None, None, image=Image.new("RGB", (8, 8), (i, i, i))) for i in range(4)]

    def scorer(images):
        if any(im.getpixel((0, 0))[0] == 2 for im in images):
            raise RuntimeError("processor choked")
        return [im.getpixel((0, 0))[0] for im in images]

    assert _isolate(scorer, [d.image for d in decoded], decoded, "semantic") == [0, 1, None, 3]
    assert decoded[2].error == "semantic branch failed: RuntimeError: processor choked"
    assert all(d.error is None for i, d in enumerate(decoded) if i != 2)


def test_clear_errors_for_missing_parts(tmp_path, pixel_checkpoint):
    with pytest.raises(ValueError, match="at least one branch"):
        AlignGemini()
    assert main(["detect", str(tmp_path), "--pixel", str(tmp_path / "nope.ckpt")]) == 2
    with pytest.raises(ValueError, match="needs branch"):
        from aligngemini.lightning_modules.fusion import FusionHead

        AlignGemini(pixel=pixel_checkpoint, fusion=FusionHead(mode="or"))


def test_parts_load_from_exported_zoo_folders(tmp_path, pixel_checkpoint, fusion_checkpoint, image_folder):
    from aligngemini.detect.branches import load_part
    from aligngemini.zoo.export import export_module

    pixel_folder = export_module(load_part(pixel_checkpoint, "pixel"), tmp_path / "pixel")
    paths = sorted(str(p) for p in image_folder.rglob("*.png") if "broken" not in p.name)[:2]
    from_folder = AlignGemini(pixel=pixel_folder, device="cpu")(paths)
    from_checkpoint = AlignGemini(pixel=pixel_checkpoint, device="cpu")(paths)
    assert [d.probability for d in from_folder] == pytest.approx([d.probability for d in from_checkpoint], rel=1e-6)
    head = load_part(fusion_checkpoint, "fusion")
    rebuilt = load_part(export_module(head, tmp_path / "fusion"), "fusion")
    features = torch.randn(5, 2) * 3
    assert torch.allclose(rebuilt.model(features), head.model(features))  # calibration travels with it
    assert rebuilt.model.verdicts(features) == head.model.verdicts(features)


def test_semantic_prompts_follow_the_branch_training_data(detector):
    from aligngemini.detect.branches import SemanticPrompting, SemanticScorer

    from .conftest import TRAINED_QUESTION

    scorer = detector.semantic_scorer
    assert scorer.max_image_side == 112 and scorer.conversation.question == TRAINED_QUESTION
    override = SemanticScorer(scorer.branch, SemanticPrompting(max_image_side=64, conversation={"question": "Fake?"}),
                              {"max_image_side": 112, "question": TRAINED_QUESTION})
    assert override.max_image_side == 64 and override.conversation.question == "Fake?"
    assert SemanticScorer(scorer.branch).max_image_side == 448  # nothing known: the data view's default


def test_a_second_pixel_expert_is_or_ed_in_with_its_own_threshold(pixel_checkpoint, image_folder):
    from aligngemini.lightning_modules.fusion import FusionHead

    rule = FusionHead(mode="or", feature_names=["pixel", "pixel_flux"], thresholds={"pixel_flux": 0.9})
    detector = AlignGemini(pixel=pixel_checkpoint, experts={"pixel_flux": pixel_checkpoint}, fusion=rule,
                           device="cpu", tiling=TilingConfig(max_tiles=2))
    rows = detector(sorted(str(p) for p in image_folder.rglob("*.png") if "broken" not in p.name))
    assert rows and all(set(r.scores) == {"pixel", "pixel_flux"} for r in rows)
    for row in rows:
        assert row.scores["pixel"] == pytest.approx(row.scores["pixel_flux"])  # same weights, same tiles
        paper = row.scores["pixel"] > 0.5 or row.scores["pixel_flux"] > 0.9
        assert (row.verdict == "fake") == paper
