"""A Hub token in the environment never reaches configs, checkpoints, logs, cards or the console."""

import pytest

from aligngemini.cli import main
from tests.reliability.runs import PRESET

TOKEN = "hf_SeNtInEl0123456789abcdefghijklmnopqrstu"


def _files_holding(root, needle: bytes):
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_hf_token_is_never_written_or_printed(paired_dataset, tmp_path, monkeypatch, capfd):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN"):
        monkeypatch.setenv(name, TOKEN)
    run = tmp_path / "run"
    assert main(["fit", "-c", str(PRESET), "--data.root", str(paired_dataset), "--trainer.max_epochs", "1",
                 "--trainer.default_root_dir", str(run), "--trainer.logger.init_args.save_dir", str(run),
                 "--trainer.enable_progress_bar", "false", "--trainer.limit_train_batches", "1",
                 "--trainer.limit_val_batches", "1"]) == 0
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert (run / "config.yaml").is_file() or list(run.rglob("config.yaml"))
    assert main(["zoo", "export", str(checkpoint), "--out", str(tmp_path / "export"), "--name", "secret-test",
                 "--trust-checkpoint"]) == 0
    assert list((tmp_path / "export").rglob("*.md")), "a card was written"
    assert _files_holding(tmp_path, TOKEN[3:20].encode()) == []  # not whole, not in part
    captured = capfd.readouterr()
    assert TOKEN[3:20] not in captured.out + captured.err
