"""Protocols and sweeps score the pixels they name: checked on what the model was shown."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from aligngemini.datamodules.images import decode_image
from aligngemini.datamodules.transforms import Perturbation, eval_crop, jpeg
from aligngemini.evaluation.protocol import Protocol
from aligngemini.evaluation.scoring import FunctionScorer, Scorer
from aligngemini.evaluation.sweeps import PAPER_STRENGTHS, parse_sweeps, run_sweeps

from .tiny import CropView, EchoDetector

CROP = 32


def _scorer(root_dir=None):
    module = EchoDetector(crop_size=CROP)
    return module, Scorer(module, lambda: CropView(crop_size=CROP, batch_size=8), accelerator="cpu",
                          root_dir=root_dir)


def _shown(module) -> list[torch.Tensor]:
    """Images in the order they were scored (perturbed copies are numbered in record order)."""
    return [image for _, image in sorted(module.seen.items())]


@pytest.mark.parametrize("kind, strength", [("jpeg", 40), ("double_jpeg", 60), ("blur", 2.0), ("resize", 0.5),
                                            ("double_resize", 0.5)])
def test_each_sweep_applies_its_perturbation(paired_records, kind, strength):
    records = paired_records[:3]
    module, scorer = _scorer()
    (sweep,) = parse_sweeps([f"{kind}={strength}"])
    results = run_sweeps(scorer, records, [sweep])
    [(got_strength, rows)] = results[kind]
    assert got_strength == strength and [r["path"] for r in rows] == [r.path for r in records]
    perturbation = Perturbation(kind, strength)
    for record, shown in zip(records, _shown(module)):
        original = decode_image(record.path)
        assert torch.equal(shown, eval_crop(perturbation.apply(original), CROP))
        assert not torch.equal(shown, eval_crop(original, CROP))  # it really changed the pixels


def test_sweep_rows_follow_the_perturbed_pixels(paired_records):
    records = paired_records[:4]
    module, scorer = _scorer()
    plain = scorer.score(records)
    blurred = scorer.score(records, Perturbation("blur", 3.0))
    module.configure_model()
    for before, after, record in zip(plain, blurred, records):
        with torch.no_grad():
            expected = module.model(eval_crop(Perturbation("blur", 3.0).apply(decode_image(record.path)), CROP)[None])
        assert after["logit"] == pytest.approx(float(expected), abs=1e-5)
        assert after["logit"] != pytest.approx(before["logit"], abs=1e-3)  # blur smooths: roughness drops


def test_jpeg_aligned_protocol_reencodes_every_image(paired_records):
    records = paired_records[:4]
    module, scorer = _scorer()
    protocol = Protocol("jpeg-aligned", jpeg_quality=70)
    assert protocol.to_dict()["jpeg_quality"] == 70
    scorer.score(records, protocol.chain)
    for record, shown in zip(records, _shown(module)):
        assert torch.equal(shown, eval_crop(jpeg(decode_image(record.path), 70), CROP))


def test_native_protocol_scores_the_files_themselves(paired_records):
    records = paired_records[:4]
    module, scorer = _scorer()
    assert Protocol("native").chain == ()
    scorer.score(records, Protocol("native").chain)
    assert set(module.seen) == {r.path for r in records}
    for record in records:
        assert torch.equal(module.seen[record.path], eval_crop(decode_image(record.path), CROP))


def test_a_broken_file_gets_an_error_row_under_a_perturbation(paired_records, tmp_path):
    broken = tmp_path / "broken.png"
    Image.new("RGB", (40, 40)).save(broken)
    broken.write_bytes(broken.read_bytes()[:60])
    from dataclasses import replace

    records = [*paired_records[:2], replace(paired_records[0], path=str(broken))]
    _, scorer = _scorer(root_dir=tmp_path)
    for chain in ((), (Perturbation("jpeg", 80),)):
        rows = scorer.score(records, chain)
        assert [r["path"] for r in rows] == [r.path for r in records]
        assert rows[2]["error"] and rows[2]["probability"] is None and rows[2]["label"] == records[2].label
        assert all(r["probability"] is not None for r in rows[:2])
    assert str(broken) in (tmp_path / "bad_files.jsonl").read_text()  # Lightning's bad-file report


def test_sweep_specs():
    assert [s.kind for s in parse_sweeps(["paper"])] == list(PAPER_STRENGTHS)
    (jpeg_sweep,) = parse_sweeps(["jpeg=90, 50"])
    assert jpeg_sweep.strengths == (90.0, 50.0)
    assert parse_sweeps(["double-resize"])[0].strengths == PAPER_STRENGTHS["double_resize"]
    for bad, message in [("sharpen=1", "unknown kind"), ("jpeg=0", "1..100"), ("resize=-1", "> 0"),
                         ("blur=x", "numbers")]:
        with pytest.raises(ValueError, match=message):
            parse_sweeps([bad])


def test_any_records_to_rows_callable_can_be_swept(paired_records):
    """The full detector is no DetectorModule; a FunctionScorer sweeps it all the same."""
    records = paired_records[:3]
    seen = []

    def brightness(batch):
        rows = []
        for record in batch:
            image = decode_image(record.path)
            seen.append(image)
            mean = float(torch.tensor(list(image.getdata()), dtype=torch.float64).mean()) / 255
            rows.append({"path": record.path, "probability": mean})
        return rows

    rows = FunctionScorer(brightness, chunk_size=2).score(records, Perturbation("resize", 0.5))
    assert [r["path"] for r in rows] == [r.path for r in records]
    assert [im.size for im in seen] == [Perturbation("resize", 0.5).apply(decode_image(r.path)).size for r in records]
    assert all(0 < r["probability"] < 1 and r["label"] == rec.label for r, rec in zip(rows, records))
