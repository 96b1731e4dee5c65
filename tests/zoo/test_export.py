"""Export from a checkpoint written by `aligngemini fit`, model cards, and the PEFT adapter folder."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from aligngemini.cli import main
from aligngemini.zoo.api import load
from aligngemini.zoo.cards import eval_rows, render_card
from aligngemini.zoo.export import export_module

from .conftest import pixel_scores, tiny_pixel, tiny_semantic

CONFIG = str(Path(__file__).resolve().parents[2] / "aligngemini" / "configs" / "pixel" / "tiny_cpu.yaml")


def evaluation_metrics(tmp_path: Path) -> Path:
    """A metrics.json written by the evaluation package's own report builder."""
    from aligngemini.evaluation.protocol import Protocol
    from aligngemini.evaluation.report import BenchmarkResult, build_metrics

    rows = [{"path": f"{subset}/{i}.png", "subset": subset, "label": i % 2, "probability": p}
            for subset, probs in (("sdxl", (0.1, 0.8, 0.3, 0.7)), ("flux", (0.6, 0.9, 0.2, 0.4)))
            for i, p in enumerate(probs)]
    metrics = build_metrics([BenchmarkResult("synthbench", "manifest", "test.csv", rows)], Protocol(),
                            {"source": "ckpt:last.ckpt", "class": None})
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path


@pytest.fixture(scope="module")
def fitted_pixel_run(paired_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("pixel_run")
    assert main(["fit", "-c", CONFIG, "--data.root", str(paired_dataset), "--trainer.default_root_dir", str(root),
                 "--trainer.logger.init_args.save_dir", str(root), "--trainer.enable_progress_bar", "false",
                 "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                 "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"]) == 0
    return root


def test_cli_export_of_a_fitted_checkpoint(fitted_pixel_run, tmp_path):
    from aligngemini.lightning_modules.pixel import PixelBranch

    ckpt = fitted_pixel_run / "checkpoints" / "last.ckpt"
    metrics_path = evaluation_metrics(tmp_path)
    out = tmp_path / "export"
    assert main(["zoo", "export", str(ckpt), "--out", str(out), "--metrics", str(metrics_path),
                 "--training-data", "scikit-image photos and their upsampled copies"]) == 0

    config = json.loads((out / "config.json").read_text())
    assert config["class_path"] == "aligngemini.lightning_modules.pixel.PixelBranch"
    assert "optimizer" not in config["init_args"] and config["init_args"]["crop_size"] == 56
    assert config["preprocess"]["datamodule"] == "aligngemini.datamodules.pixel.PixelDataModule"
    assert "root" not in config["preprocess"]["settings"] and "augment" in config["preprocess"]["settings"]

    trained = PixelBranch.load_from_checkpoint(ckpt, weights_only=False).eval()
    images = torch.rand(3, 3, 56, 56, generator=torch.Generator().manual_seed(3))
    assert torch.equal(load(f"local-dir:{out}").score_images(images), trained.score_images(images))

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "aligngemini" and card.data.license == "apache-2.0"
    given = json.loads(metrics_path.read_text())["benchmarks"]["synthbench"]["average"]
    found = {r.metric_type: r.metric_value for r in card.data.eval_results if r.dataset_name == "synthbench"}
    assert found == {name: value for name, value in given.items() if name in found} and {"acc", "auroc"} <= set(found)
    assert len(found) == sum(value is not None for name, value in given.items() if not name.startswith("n_"))
    assert "class_path: aligngemini.lightning_modules.pixel.PixelBranch" in card.text  # the exact training config
    for section in ("## Intended use", "## Training data", "## Limitations", "## Citation", "arXiv:2512.06746"):
        assert section in card.text
    assert "scikit-image photos" in card.text


def test_card_renders_given_metrics_and_sections(tmp_path):
    metrics = {"dataset": "genimage", "metrics": {"acc": 0.91, "auroc": 0.97, "n_real": 100}}
    folder = export_module(tiny_pixel(), tmp_path / "export", name="pixel-demo",
                           card={"metrics": metrics, "limitations": "Trained on 30 tiles; a demo only.",
                                 "training_config": {"model": {"crop_size": 32}}})
    card = ModelCard(str(render_card(folder, version="2.1.0", repo_id="org/pixel-demo")))
    assert card.data.model_name == "pixel-demo"
    results = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {("genimage", "acc"): 0.91, ("genimage", "auroc"): 0.97}
    assert "Trained on 30 tiles; a demo only." in card.text and "crop_size: 32" in card.text
    assert 'aligngemini.load("pixel-demo@v2.1.0")' in card.text


def test_eval_rows_reads_per_subset_and_row_shapes():
    assert eval_rows({"sdxl": {"ap": 0.5}, "flux": {"ap": 0.25, "n_fake": 3}}) == [
        {"dataset": "sdxl", "metric": "ap", "value": 0.5}, {"dataset": "flux", "metric": "ap", "value": 0.25}]
    assert eval_rows([{"subset": "sdxl", "acc": 0.5, "ece": None}]) == [{"dataset": "sdxl", "metric": "acc", "value": 0.5}]


def test_export_refuses_to_overwrite_and_checks_it_rebuilds(tmp_path):
    folder = export_module(tiny_pixel(), tmp_path / "export")
    with pytest.raises(FileExistsError, match="not empty"):
        export_module(tiny_pixel(), folder)
    module = tiny_pixel()
    assert torch.equal(pixel_scores(load(f"local-dir:{export_module(module, folder, overwrite=True)}")),
                       pixel_scores(module))


def test_semantic_export_holds_a_peft_adapter(tiny_vlm, tmp_path):
    from peft import PeftModel, get_peft_model_state_dict
    from transformers import AutoModelForImageTextToText

    module = tiny_semantic(tiny_vlm.folder)
    folder = export_module(module, tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    assert config["weights"]["keys"] == "trainable" and config["family"] == "semantic"

    adapter = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_vlm.folder), folder / "adapter")
    ours = next(m for m in module.modules() if isinstance(m, PeftModel))
    theirs, expected = get_peft_model_state_dict(adapter), get_peft_model_state_dict(ours)
    assert theirs.keys() == expected.keys() and len(expected) > 0
    assert all(torch.equal(theirs[k], expected[k]) for k in expected)
