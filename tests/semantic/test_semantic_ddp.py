"""QLoRA under DDP: each of two CPU processes builds its own 4-bit model in configure_model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from semantic_constants import TINY_PRESET as PRESET


@pytest.mark.slow
def test_fit_under_ddp_with_two_processes(tiny_vlm_dir, semantic_manifest, tmp_path):
    folder = tiny_vlm_dir("qwen2_vl")
    command = [
        sys.executable, "-m", "aligngemini", "fit", "-c", str(PRESET),
        "--model.init_args.model_id", folder, "--data.init_args.model_id", folder,
        "--data.init_args.root", str(semantic_manifest), "--data.init_args.batch_size", "2",
        "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_steps", "2",
        "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stderr + done.stdout
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state and all("lora_" in key for key in state)
    assert any(float(v.abs().sum()) > 0 for k, v in state.items() if "lora_B" in k)  # the adapter trained
