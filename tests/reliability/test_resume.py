"""SIGKILL during training and during a checkpoint write; resume; same weights and metrics."""

import json

import pytest
import torch

from tests.reliability.runs import epoch_metrics, finish, fit_args, start, state_dict

# 3 training batches per epoch; a checkpoint every 2 steps lands mid-epoch and at the end.
SETTINGS = ["--trainer.max_epochs", "2", "--checkpoint.every_n_train_steps", "2"]


@pytest.fixture(scope="module")
def data_with_bad_files(paired_dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.png").write_bytes(paired_dataset.parent.joinpath("real").glob("*.png").__next__().read_bytes()[:300])
    manifest = folder / "pairs.csv"
    manifest.write_text(paired_dataset.read_text().replace("real/", f"{paired_dataset.parent}/real/")
                        .replace("fake/", f"{paired_dataset.parent}/fake/")
                        + f"{folder}/empty.png,0,demo,broken\n{folder}/cut.png,1,demo,broken\n")
    return manifest


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_weights_and_metrics(data_with_bad_files, tmp_path):
    ref_dir, crash_dir = tmp_path / "ref", tmp_path / "crash"
    ref_dir.mkdir(), crash_dir.mkdir()
    reference = start(fit_args(data_with_bad_files, ref_dir, *SETTINGS), tmp_path / "ref.log",
                      "--save-final", str(ref_dir / "final.pt"))
    args = fit_args(data_with_bad_files, crash_dir, *SETTINGS)

    # 1: killed as training step 3 starts (the last checkpoint is from step 2, mid-epoch 0).
    assert finish(start(args, tmp_path / "1.log", "--kill-at-step", "3"), tmp_path / "1.log") == -9
    assert state_dict(crash_dir / "checkpoints" / "last.ckpt")  # whole and loadable
    # 2: resumed, then killed half-way through its second write of last.ckpt.
    second = start([*args, "--ckpt_path", "last"], tmp_path / "2.log", "--kill-in-save", "2")
    assert finish(second, tmp_path / "2.log") == -9
    assert any(p.name.endswith(".tmp") for p in (crash_dir / "checkpoints").iterdir())  # the torn write
    # 3: resumed from the intact last.ckpt to the end.
    third = start([*args, "--ckpt_path", "last"], tmp_path / "3.log", "--save-final", str(crash_dir / "final.pt"))
    assert finish(third, tmp_path / "3.log") == 0
    assert finish(reference, tmp_path / "ref.log") == 0

    expected, got = state_dict(ref_dir / "final.pt"), state_dict(crash_dir / "final.pt")
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name  # bit for bit
    ref_metrics, crash_metrics = epoch_metrics(ref_dir), epoch_metrics(crash_dir)
    assert {e for e, _ in ref_metrics} == {0, 1} and crash_metrics == ref_metrics
    assert not any(p.name.endswith(".tmp") for p in (crash_dir / "checkpoints").iterdir())

    def bad(root):
        return {json.loads(line)["path"] for line in (root / "checkpoints" / "bad_files.jsonl").read_text().splitlines()}

    # The broken pair is dropped and reported by its first bad file, once, in both histories.
    assert bad(crash_dir) == bad(ref_dir) == {str(data_with_bad_files.parent / "empty.png")}
