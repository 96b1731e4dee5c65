"""Two CPU processes (gloo DDP) against one process with the same global batch."""

import pytest
import torch

from tests.reliability.runs import TINY_VIT, epoch_metrics, finish, fit_args, start, state_dict

# 18 training pairs: global batches of 8, 8 and 2 pairs in both runs (no rank padding).
COMMON = ["--trainer.max_epochs", "2", "--data.split_fractions", "[0.6,0.2,0.2]", *TINY_VIT]
WEIGHT_ATOL = 2e-4  # summation order (all-reduce vs one batch), grown by AdamW; measured 3e-5
METRIC_ATOL = 1e-4


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(paired_dataset, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    one = start(fit_args(paired_dataset, single, *COMMON, "--data.batch_size", "8"), tmp_path / "single.log",
                "--save-final", str(tmp_path / "single.pt"))
    two = start(fit_args(paired_dataset, ddp, *COMMON, "--data.batch_size", "4", "--trainer.devices", "2",
                         "--trainer.strategy", "ddp"), tmp_path / "ddp.log", "--save-final", str(tmp_path / "ddp.pt"))
    assert finish(two, tmp_path / "ddp.log") == 0 and finish(one, tmp_path / "single.log") == 0
    log = (tmp_path / "ddp.log").read_text()
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log

    expected, got = state_dict(tmp_path / "single.pt"), state_dict(tmp_path / "ddp.pt")
    worst = max((expected[k] - got[k]).abs().max().item() for k in expected)
    assert worst < WEIGHT_ATOL
    reference, synced = epoch_metrics(single), epoch_metrics(ddp)
    assert synced.keys() == reference.keys() and {e for e, _ in reference} == {0, 1}
    for key, value in reference.items():  # val_* synced across ranks, train_* from all ranks' updates
        assert synced[key] == pytest.approx(value, abs=METRIC_ATOL), key


@pytest.mark.slow
def test_semantic_branch_two_process_ddp_matches_one_process(paired_dataset, tmp_path):
    from aligngemini.testing.tiny_vlm import save_tiny_vlm

    from tests.reliability.runs import SEMANTIC_PRESET

    vlm = save_tiny_vlm("qwen2_vl", tmp_path / "tiny_vlm").folder  # 4-bit QLoRA Qwen2-VL, built on each rank
    common = ["fit", "-c", str(SEMANTIC_PRESET), "--data.init_args.root", str(paired_dataset),
              "--model.init_args.model_id", str(vlm), "--data.init_args.model_id", str(vlm),
              "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
              "--data.init_args.split_fractions", "[0.6,0.2,0.2]",
              "--trainer.logger.class_path", "lightning.pytorch.loggers.CSVLogger"]

    def run(name, *extra):
        root = tmp_path / name
        args = [*common, "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
                *extra]
        return start(args, tmp_path / f"{name}.log", "--save-final", str(tmp_path / f"{name}.pt"))

    one = run("single", "--data.init_args.batch_size", "4")
    two = run("ddp", "--data.init_args.batch_size", "2", "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert finish(two, tmp_path / "ddp.log") == 0 and finish(one, tmp_path / "single.log") == 0
    expected, got = state_dict(tmp_path / "single.pt"), state_dict(tmp_path / "ddp.pt")
    adapters = [k for k in expected if "lora_" in k]
    assert adapters and max((expected[k] - got[k]).abs().max().item() for k in adapters) < WEIGHT_ATOL
    reference, synced = epoch_metrics(tmp_path / "single"), epoch_metrics(tmp_path / "ddp")
    assert reference and synced.keys() == reference.keys()
    for key, value in reference.items():
        assert synced[key] == pytest.approx(value, abs=METRIC_ATOL), key
