"""FusionHead end to end: the learned head beats each branch and is calibrated; the CLI fits it."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

import aligngemini
from aligngemini.cli import main
from aligngemini.datamodules.fusion import FusionDataModule
from aligngemini.lightning_modules.fusion import FusionHead
from aligngemini.models.fusion import expected_calibration_error
from aligngemini.testing.scores import complementary_scores

CONFIGS = Path(aligngemini.__file__).parent / "configs" / "fusion"


def fit(head, data, tmp_path, epochs=4):
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(head, data)
    return trainer


def test_logistic_beats_each_branch_and_is_calibrated(tmp_path):
    data = FusionDataModule(complementary_scores(tmp_path), seed=0)
    head = FusionHead(mode="logistic")
    fit(head, data, tmp_path)
    batch = next(iter(data.test_dataloader()))  # held out from training and calibration
    x, labels = head.branch_logits(batch), batch.labels.long()
    with torch.no_grad():
        fused = head.model(x)
        raw = head.model.raw_logits(x)
    branch_auroc = [float(binary_auroc(x[:, k], labels)) for k in range(2)]
    fused_auroc = float(binary_auroc(fused, labels))
    assert fused_auroc > max(branch_auroc) + 0.1, (fused_auroc, branch_auroc)

    def balanced_accuracy(fake):
        return 0.5 * (fake[labels == 1].float().mean() + (~fake[labels == 0]).float().mean())

    fused_acc = balanced_accuracy(torch.tensor([v == "fake" for v in head.model.verdicts(x)]))
    assert fused_acc > max(balanced_accuracy(x[:, k] > 0) for k in range(2)) + 0.1
    calibrated_ece = expected_calibration_error(torch.sigmoid(fused), labels)
    uncalibrated_ece = expected_calibration_error(torch.sigmoid(raw), labels)
    assert calibrated_ece < uncalibrated_ece / 2, (calibrated_ece, uncalibrated_ece)


def test_checkpoint_carries_calibration_and_fpr_threshold(tmp_path):
    data = FusionDataModule(complementary_scores(tmp_path), seed=0)
    head = FusionHead(mode="logistic", target_fpr=0.05)
    trainer = fit(head, data, tmp_path, epochs=2)
    path = tmp_path / "head.ckpt"
    trainer.save_checkpoint(path)
    restored = FusionHead.load_from_checkpoint(path)
    assert restored.target_fpr == 0.05
    assert restored.model.calibration.scale.item() == pytest.approx(head.model.calibration.scale.item())
    assert restored.model.calibration.scale.item() != 1.0
    assert restored.model.decision_threshold.item() == pytest.approx(head.model.decision_threshold.item())
    batch = next(iter(data.test_dataloader()))
    assert torch.allclose(restored.forward_logits(batch), head.forward_logits(batch))
    # the threshold holds the FPR on the calibration split it was chosen on
    val = next(iter(data.val_dataloader()))
    fake = torch.tensor([v == "fake" for v in restored.model.verdicts(restored.branch_logits(val))])
    assert fake[val.labels == 0].float().mean() <= 0.05


def test_cli_fit_then_predict_logistic_and_test_or_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs' run folders are relative
    scores = complementary_scores(tmp_path)
    scores_arg = json.dumps(scores)
    assert main(["fit", "-c", str(CONFIGS / "logistic.yaml"), "--data.scores", scores_arg,
                 "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false"]) == 0
    checkpoint = tmp_path / "runs" / "fusion_logistic" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    out = tmp_path / "fused.jsonl"
    assert main(["predict", "-c", str(CONFIGS / "logistic.yaml"), "--data.scores", scores_arg,
                 "--ckpt_path", str(checkpoint), "--out", str(out), "--trainer.enable_progress_bar", "false"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 120 and {r["verdict"] for r in rows} == {"real", "fake"}
    assert all({"pixel_contribution", "semantic_contribution", "probability"} <= set(r) for r in rows)
    accuracy = sum((r["probability"] > 0.5) == (r["label"] == 1) for r in rows) / len(rows)
    assert accuracy > 0.85
    # The paper's rule, evaluated on the same test split, through the same command line.
    or_out = tmp_path / "or.jsonl"
    assert main(["predict", "-c", str(CONFIGS / "or_rule.yaml"), "--data.scores", scores_arg,
                 "--out", str(or_out), "--trainer.enable_progress_bar", "false"]) == 0
    or_rows = {r["path"]: r for r in map(json.loads, or_out.read_text().splitlines())}
    assert set(or_rows) == {r["path"] for r in rows}
    for row in or_rows.values():
        paper = row["pixel_probability"] > 0.5 or row["semantic_probability"] > 0.5
        assert (row["verdict"] == "fake") == paper


def test_cli_fit_of_the_or_rule_leaves_a_loadable_checkpoint(tmp_path, monkeypatch):
    from aligngemini.detect.branches import load_part

    monkeypatch.chdir(tmp_path)
    scores = json.dumps(complementary_scores(tmp_path))
    assert main(["fit", "-c", str(CONFIGS / "or_rule.yaml"), "--data.scores", scores,
                 "--model.init_args.thresholds", '{"pixel": 0.7, "semantic": 0.5}',
                 "--trainer.enable_progress_bar", "false"]) == 0
    head = load_part(tmp_path / "runs" / "fusion_or" / "checkpoints" / "last.ckpt", "fusion")
    assert head.mode == "or" and head.model.rule.thresholds.tolist() == [0.7, 0.5]


def test_head_trains_from_plain_dataloaders_too(tmp_path):
    data = FusionDataModule(complementary_scores(tmp_path), seed=0)
    head = FusionHead(mode="logistic")
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(head, train_dataloaders=data.train_dataloader(), val_dataloaders=data.val_dataloader())
    assert bool(head.model.rule.standardised) and head.model.calibration.scale.item() != 1.0
