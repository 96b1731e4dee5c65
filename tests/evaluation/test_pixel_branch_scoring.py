"""The scorer and the evaluate verb with the real pixel branch and its view."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from aligngemini.cli import main
from aligngemini.datamodules.pixel import PixelDataModule
from aligngemini.datamodules.records import load_records
from aligngemini.errors import AlignGeminiError
from aligngemini.evaluation.loading import datamodule_factory_for, load_checkpoint_module
from aligngemini.evaluation.scoring import score_records
from aligngemini.lightning_modules.pixel import PixelBranch

TINY_VIT = dict(backbone="vit_small_patch14_dinov2", pretrained=False, crop_size=28,
                backbone_kwargs={"depth": 1, "embed_dim": 24, "num_heads": 2})


@pytest.fixture(scope="module")
def pixel_checkpoint(paired_dataset, tmp_path_factory):
    """A checkpoint the way users make one: ``aligngemini fit`` (it records the model and view classes)."""
    root = tmp_path_factory.mktemp("pixel")
    assert main(["fit", "-c", "configs/pixel/tiny_cpu.yaml", "--data.root", str(paired_dataset),
                 "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
                 "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "1",
                 "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]) == 0
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def hand_made_checkpoint(paired_dataset, tmp_path_factory):
    """A checkpoint from a plain Trainer: no class recorded, settings pickled as dataclasses."""
    folder = tmp_path_factory.mktemp("pixel_plain")
    torch.manual_seed(0)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=folder)
    trainer.fit(PixelBranch(**TINY_VIT), PixelDataModule(root=str(paired_dataset), batch_size=4))
    trainer.save_checkpoint(folder / "pixel.ckpt")
    return folder / "pixel.ckpt"


def test_scorer_gives_the_rows_of_the_branchs_own_predict(hand_made_checkpoint, paired_dataset, tmp_path):
    with pytest.raises(AlignGeminiError, match="does not name its model class"):
        load_checkpoint_module(hand_made_checkpoint)
    module, checkpoint = load_checkpoint_module(hand_made_checkpoint, "aligngemini.lightning_modules.pixel.PixelBranch")
    factory = datamodule_factory_for(module, checkpoint, batch_size=16)
    assert isinstance(factory(), PixelDataModule)
    records = load_records(paired_dataset)[:12]
    rows = score_records(module, factory, records, accelerator="cpu")
    reference = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    data = PixelDataModule(predict_root=str(paired_dataset), batch_size=16)
    expected = {r["path"]: r for batch in reference.predict(module, datamodule=data) for r in batch}
    for row, record in zip(rows, records):
        assert row["path"] == record.path and row["label"] == record.label
        assert row["logit"] == pytest.approx(expected[record.path]["logit"], abs=1e-6)


def test_evaluate_a_pixel_checkpoint_under_the_jpeg_aligned_protocol(pixel_checkpoint, paired_dataset, tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", "--ckpt", str(pixel_checkpoint), "--benchmark", f"demo={paired_dataset}",
                 "--protocol", "jpeg-aligned", "--jpeg-quality", "80", "--no-plots", "--no-check",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == {"name": "jpeg-aligned", "jpeg_quality": 80, "threshold": 0.5, "ece_bins": 15}
    assert metrics["model"]["class"] == "aligngemini.lightning_modules.pixel.PixelBranch"
    demo = metrics["benchmarks"]["demo"]
    assert demo["n_images"] == 60 and demo["n_failed"] == 0 and demo["average"]["auroc"] is not None


def test_evaluate_a_zoo_export_and_feed_its_card(pixel_checkpoint, paired_dataset, tmp_path):
    from aligngemini.zoo.cards import eval_rows
    from aligngemini.zoo.export import export_checkpoint

    export = export_checkpoint(pixel_checkpoint, tmp_path / "export")
    out = tmp_path / "out"
    assert main(["evaluate", "--model", f"local-dir:{export}", "--benchmark", f"demo={paired_dataset}",
                 "--no-plots", "--no-check", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["source"] == f"zoo:local-dir:{export}" and metrics["benchmarks"]["demo"]["n_images"] == 60
    rows = eval_rows(metrics)  # what the model card's model-index is built from
    assert {"dataset": "demo", "metric": "acc", "value": metrics["benchmarks"]["demo"]["average"]["acc"]} in rows
