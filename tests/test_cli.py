"""The training CLI end to end on the tiny pixel preset, in process."""

import csv
import json
import shutil

import pytest
import torch

from aligngemini.cli import main
from aligngemini.datamodules.records import load_records, write_manifest

CONFIG = "configs/pixel/tiny_cpu.yaml"


def _args(verb, manifest, root, *extra):
    return [verb, "-c", CONFIG, "--data.root", str(manifest), "--trainer.default_root_dir", str(root),
            "--trainer.logger.init_args.save_dir", str(root), "--trainer.enable_progress_bar", "false",
            "--data.split_fractions", "[0.7, 0.15, 0.15]", *extra]


@pytest.fixture(scope="module")
def fitted_run(paired_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    assert main(_args("fit", paired_dataset, root, "--trainer.max_epochs", "2")) == 0
    return root


def test_fit_writes_last_checkpoint_and_config(fitted_run):
    assert (fitted_run / "checkpoints" / "last.ckpt").is_file()
    assert any(fitted_run.rglob("config.yaml"))
    checkpoint = torch.load(fitted_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1


def test_test_and_predict_rows(fitted_run, paired_dataset, tmp_path):
    ckpt = str(fitted_run / "checkpoints" / "last.ckpt")
    assert main(_args("test", paired_dataset, tmp_path, "--ckpt_path", ckpt)) == 0
    for suffix in ("csv", "jsonl"):
        out = tmp_path / f"scores.{suffix}"
        assert main(_args("predict", paired_dataset, tmp_path, "--ckpt_path", ckpt, "--out", str(out))) == 0
        if suffix == "csv":
            rows = list(csv.DictReader(out.open()))
        else:
            rows = [json.loads(line) for line in out.open()]
        assert rows and {"path", "subset", "label", "logit", "probability"} <= set(rows[0])
        for row in rows:
            probability = float(row["probability"])
            assert 0.0 <= probability <= 1.0
            assert abs(torch.sigmoid(torch.tensor(float(row["logit"]))).item() - probability) < 1e-6
        assert len({row["path"] for row in rows}) == len(rows)


def test_resume_from_last_continues_training(fitted_run, paired_dataset, tmp_path):
    root = tmp_path / "resumed"
    shutil.copytree(fitted_run, root)
    assert main(_args("fit", paired_dataset, root, "--trainer.max_epochs", "3", "--ckpt_path", "last")) == 0
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 2


def test_print_config_round_trips(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", CONFIG, "--print_config"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "aligngemini.lightning_modules.pixel.PixelBranch" in text and "PixelDataModule" in text


def test_broken_file_is_skipped_and_reported(paired_dataset, tmp_path):
    records = load_records(paired_dataset)
    broken = tmp_path / "broken.png"
    broken.write_bytes(open(records[0].path, "rb").read()[:200])  # truncated PNG
    for split in ("train", "val", "test"):
        records.append(type(records[0])(str(broken) if split == "train" else str(tmp_path / f"gone_{split}.png"),
                                        1, "demo", split=split))
    manifest = write_manifest(records, tmp_path / "with_broken.csv")
    root = tmp_path / "run"
    assert main(_args("fit", manifest, root, "--trainer.max_epochs", "1")) == 0
    report = [json.loads(line) for line in (root / "checkpoints" / "bad_files.jsonl").open()]
    reasons = {row["path"]: row["reason"] for row in report}
    assert "truncated" in reasons[str(broken)]
    assert "file not found" in reasons[str(tmp_path / "gone_val.png")]


def test_fail_fast_policy_names_the_file(paired_dataset, tmp_path, capsys):
    records = load_records(paired_dataset)
    records.append(type(records[0])(str(tmp_path / "missing.png"), 1, "demo", split="train"))
    manifest = write_manifest(records, tmp_path / "fail.csv")
    code = main(_args("fit", manifest, tmp_path / "run", "--trainer.max_epochs", "1", "--data.bad_input", "fail"))
    assert code == 2
    assert "missing.png: file not found" in capsys.readouterr().err


def test_version_and_unknown_verb(capsys):
    assert main(["--version"]) == 0
    assert "aligngemini" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
