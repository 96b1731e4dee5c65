"""A setting a user can fix gives one clear line (exit code 2), never a traceback."""

import logging
import sys

import pytest

from aligngemini.cli import main
from tests.reliability.runs import PRESET


@pytest.fixture()
def fit(paired_dataset, tmp_path):
    def args(*extra):
        return ["fit", "-c", str(PRESET), "--data.root", str(paired_dataset), "--trainer.max_epochs", "1",
                "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false", *extra]
    return args


CASES = {
    "unknown backbone": (lambda fit, tmp: fit("--model.init_args.backbone", "no_such_net"), "no_such_net"),
    "wrong type": (lambda fit, tmp: fit("--trainer.max_epochs", "many"), "many"),
    "bad choice": (lambda fit, tmp: fit("--model.init_args.mode", "sideways"), "sideways"),
    "unknown key": (lambda fit, tmp: fit("--model.init_args.backbon", "x"), "backbon"),
    "missing data path": (lambda fit, tmp: fit("--data.root", str(tmp / "nowhere.csv")), "nowhere.csv"),
    "missing config": (lambda fit, tmp: ["fit", "-c", str(tmp / "nope.yaml")], "nope.yaml"),
    "bad zoo name": (lambda fit, tmp: ["zoo", "info", "no-such-model@v9"], "no-such-model"),
    "bad detector name": (lambda fit, tmp: ["detect", str(tmp), "--model", "no-such-model@v9"], "no-such-model"),
}


@pytest.mark.parametrize("case", CASES)
def test_config_errors_give_one_clear_line(case, fit, tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("ALIGNGEMINI_DEBUG", raising=False)
    for logger in [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:  # bound to an earlier test's closed capture
                monkeypatch.setattr(handler, "stream", sys.stderr)
    build, named = CASES[case]
    args = build(fit, tmp_path)
    assert main(args) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("aligngemini")]
    assert len(lines) == 1 and lines[0].startswith(f"aligngemini {args[0]}: error: "), err
    assert named in lines[0] and len(lines[0]) < 400
