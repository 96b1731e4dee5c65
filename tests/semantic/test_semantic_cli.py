"""`aligngemini fit` then `aligngemini predict --explain` with the tiny CPU preset."""

from __future__ import annotations

import json

import torch

from aligngemini.cli import main
from semantic_constants import SHORT_PROMPTS, TINY_PRESET as PRESET


def test_fit_then_predict_with_rationales(tiny_vlm_dir, semantic_manifest, tmp_path):
    folder = tiny_vlm_dir("qwen2_vl")
    common = [
        "-c", str(PRESET),
        "--model.init_args.model_id", folder, "--data.init_args.model_id", folder,
        "--data.init_args.root", str(semantic_manifest),
        "--data.init_args.system_prompt", SHORT_PROMPTS["system_prompt"],
        "--data.init_args.question", SHORT_PROMPTS["question"],
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    ]
    assert main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                 "--trainer.limit_val_batches", "1"]) == 0
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert state and all("lora_" in key for key in state)  # the adapter only

    out = tmp_path / "scores.jsonl"
    assert main(["predict", *common, "--ckpt_path", str(checkpoint), "--explain", "true", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2  # the test split
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    for row in rows:
        assert 0.0 <= row["probability"] <= 1.0 and row["label"] in (0, 1)
        assert row["verdict"] == ("fake" if row["probability"] > 0.5 else "real")
        assert isinstance(row["rationale"], str)
        # bounded by the preset's 16 new tokens (re-encoding decoded bytes may split merged tokens)
        assert len(tokenizer(row["rationale"])["input_ids"]) <= 2 * 16
