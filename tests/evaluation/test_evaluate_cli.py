"""``aligngemini evaluate`` in process: a tiny model's report with plots, predictions files, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image

from aligngemini.cli import main
from aligngemini.evaluation.metrics import benchmark_metrics
from aligngemini.predictions import RowWriter

from .tiny import CropView, EchoDetector

MODEL_CLASS = f"{EchoDetector.__module__}.EchoDetector"
DATA_CLASS = f"{CropView.__module__}.CropView"


@pytest.fixture(scope="module")
def two_generator_benchmark(paired_dataset, tmp_path_factory) -> Path:
    """genA/ and genB/ subsets, each with real/ and fake/, plus one truncated fake."""
    root = tmp_path_factory.mktemp("bench")
    for i, fake in enumerate(sorted((paired_dataset.parent / "fake").glob("*.png"))[:16]):
        subset = "genA" if i % 2 == 0 else "genB"
        for label in ("real", "fake"):
            (root / subset / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(paired_dataset.parent / label / fake.name, root / subset / label / fake.name)
    broken = root / "genB" / "fake" / "truncated.png"
    Image.new("RGB", (48, 48), "blue").save(broken)
    broken.write_bytes(broken.read_bytes()[:60])
    return root


@pytest.fixture(scope="module")
def tiny_checkpoint(paired_dataset, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    module = EchoDetector(crop_size=32)
    trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=folder,
                        limit_val_batches=0)
    trainer.fit(module, CropView(root=str(paired_dataset), crop_size=32, batch_size=8))
    trainer.save_checkpoint(folder / "tiny.ckpt")
    return folder / "tiny.ckpt"


def test_report_with_plots_for_a_tiny_model(tiny_checkpoint, two_generator_benchmark, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["evaluate", "--ckpt", str(tiny_checkpoint), "--model-class", MODEL_CLASS, "--data-class", DATA_CLASS,
                 "--benchmark", f"demo={two_generator_benchmark}", "--sweep", "jpeg=90,50", "--sweep", "blur=1",
                 "--batch-size", "8", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "demo: acc" in printed and "1 unreadable" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == "aligngemini.evaluation/1" and metrics["protocol"]["name"] == "native"
    assert metrics["model"] == {"source": f"ckpt:{tiny_checkpoint}", "class": MODEL_CLASS}
    bench = metrics["benchmarks"]["demo"]
    assert set(bench["subsets"]) == {"genA", "genB"} and bench["layout"] == "folder"
    assert bench["n_images"] == 33 and bench["n_failed"] == 1
    assert bench["failed"][0]["path"].endswith("truncated.png")
    assert bench["subsets"]["genA"]["n_real"] == 8 and bench["subsets"]["genB"]["n_fake"] == 8
    accs = [bench["subsets"][s]["acc"] for s in ("genA", "genB")]
    assert bench["average"]["acc"] == pytest.approx(sum(accs) / 2, abs=1e-6)
    assert metrics["summary"]["acc"] == bench["average"]["acc"]
    assert [p["strength"] for p in bench["sweeps"]["jpeg"]["points"]] == [90.0, 50.0]
    assert set(bench["sweeps"]["blur"]["points"][0]["subsets"]) == {"genA", "genB"}
    assert bench["check"]["n_unreadable"] == 1
    report = (out / "report.md").read_text()
    assert "| genA |" in report and "### Sweep: jpeg" in report and "truncated.png" in report
    assert "| real | 16 | PNG 16 | 48x48 |" in report  # the pre-run check's file table
    expected = {"demo_roc.png", "demo_pr.png", "demo_reliability.png", "demo_sweep_jpeg.png", "demo_sweep_blur.png"}
    assert {p.name for p in (out / "plots").iterdir()} == expected
    for name in expected:
        assert f"(plots/{name})" in report
        with Image.open(out / "plots" / name) as image:
            assert image.format == "PNG" and image.width > 200


def _write_predictions(path: Path, rows: list[dict]) -> Path:
    writer = RowWriter(path)
    writer.write(rows)
    writer.close()
    return path


def _random_rows(n=40, seed=0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    logits = torch.randn(n, generator=g, dtype=torch.float64) + labels
    return [{"path": f"/data/{i}.png", "subset": "ab"[i % 2], "label": int(y), "logit": float(z),
             "probability": float(torch.sigmoid(z))} for i, (y, z) in enumerate(zip(labels, logits))]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_metrics_from_a_predictions_file(tmp_path, suffix):
    rows = _random_rows()
    preds = _write_predictions(tmp_path / f"preds{suffix}", rows)
    out = tmp_path / "out"
    assert main(["evaluate", "--predictions", f"mine={preds}", "--out", str(out), "--no-plots"]) == 0
    bench = json.loads((out / "metrics.json").read_text())["benchmarks"]["mine"]
    expected = benchmark_metrics(rows)
    for name in ("acc", "auroc", "ap", "eer", "ece", "tpr_at_fpr_5"):
        assert bench["average"][name] == pytest.approx(expected["average"][name], abs=1e-6)
        assert bench["subsets"]["b"][name] == pytest.approx(expected["subsets"]["b"][name], abs=1e-6)
    assert not (out / "plots").exists()


def test_unlabelled_predictions_take_labels_from_the_benchmark(paired_dataset, tmp_path):
    from aligngemini.datamodules.records import load_records

    records = load_records(paired_dataset)
    # Rows as `aligngemini detect` writes them for unlabelled input: fused and per-branch scores.
    rows = [{"path": r.path, "logit": -3.0 if "fake" in r.path else 3.0, "probability": 0.05 if "fake" in r.path
             else 0.95, "pixel_probability": 0.9 if "fake" in r.path else 0.2} for r in records[1:]]
    preds = _write_predictions(tmp_path / "detect.jsonl", rows)
    out = tmp_path / "out"
    assert main(["evaluate", "--predictions", f"pixel={preds}", "--benchmark", str(paired_dataset),
                 "--probability-column", "pixel_probability", "--out", str(out), "--no-plots"]) == 0
    demo = json.loads((out / "metrics.json").read_text())["benchmarks"]["pixel"]
    assert demo["subsets"]["demo"]["acc"] == 1.0 and demo["subsets"]["demo"]["auroc"] == 1.0
    assert demo["n_failed"] == 1 and demo["failed"][0] == {"path": records[0].path,
                                                           "reason": "no prediction row for this image"}


def test_user_errors_are_one_line(two_generator_benchmark, tmp_path, capsys):
    preds = _write_predictions(tmp_path / "p.jsonl", _random_rows(6))
    assert main(["evaluate", "--predictions", str(preds), "--sweep", "jpeg", "--out", str(tmp_path / "o")]) == 2
    assert "give --ckpt or --model" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,probability\na.png,1,0.7\nb.png,0,\n")
    assert main(["evaluate", "--predictions", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}:3: no 'probability' or 'logit' value" in capsys.readouterr().err
    assert main(["evaluate", "--ckpt", str(tmp_path / "missing.ckpt"), "--benchmark", str(two_generator_benchmark),
                 "--out", str(tmp_path / "o")]) == 2
    assert "missing.ckpt: checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--predictions", str(preds)])  # no --out


def test_check_only_and_layout_list(two_generator_benchmark, tmp_path, capsys):
    assert main(["evaluate", "--check-only", "--benchmark", str(two_generator_benchmark), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "33 files, 1 unreadable" in printed and "truncated.png" in printed
    saved = json.loads((tmp_path / "check.json").read_text())[two_generator_benchmark.name]
    assert saved["n_unreadable"] == 1 and saved["by_class"]["fake"]["formats"] == {"PNG": 16}
    assert main(["evaluate", "--list-layouts"]) == 0
    assert "synthwildx" in capsys.readouterr().out


def test_plots_without_matplotlib_name_the_extra(monkeypatch, tmp_path):
    import sys

    from aligngemini.errors import MissingExtraError
    from aligngemini.evaluation import plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'aligngemini\[plots\]'"):
        plots.roc_plot(_random_rows(20), tmp_path / "roc.png", "x")


def test_models_side_by_side_on_one_benchmark(paired_dataset, tmp_path):
    """The demo's call: several predictions files labelled by one benchmark."""
    from aligngemini.datamodules.records import load_records

    records = load_records(paired_dataset)
    files = []
    for name, gap in (("pixel", 0.3), ("fused", 0.45)):
        rows = [{"path": r.path, "probability": 0.5 + (gap if r.label else -gap)} for r in records]
        files += ["--predictions", f"{name}={_write_predictions(tmp_path / f'{name}.csv', rows)}"]
    out = tmp_path / "out"
    assert main(["evaluate", *files, "--benchmark", str(paired_dataset), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["benchmarks"]) == ["pixel", "fused"]
    assert all(b["labels_from"] == str(paired_dataset) and b["average"]["acc"] == 1.0
               for b in metrics["benchmarks"].values())
    report = (out / "report.md").read_text()
    assert "| pixel |" in report and "| fused |" in report and "mean over benchmarks" not in report
