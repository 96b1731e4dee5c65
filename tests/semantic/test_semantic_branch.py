"""SemanticBranch under a Trainer: adapter-only checkpoints that restore the same scores."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from aligngemini.datamodules.semantic import SemanticDataModule
from aligngemini.lightning_modules.semantic import SemanticBranch
from aligngemini.models.semantic import folder_fingerprint
from semantic_constants import SHORT_PROMPTS


def predict_scores(branch, data):
    branch.eval()
    with torch.no_grad():
        return torch.cat([branch.forward_logits(batch) for batch in data.predict_dataloader()])


def test_checkpoint_round_trip_restores_identical_scores(tiny_vlm_dir, semantic_manifest, tmp_path):
    folder = tiny_vlm_dir("qwen2_vl")
    revision = folder_fingerprint(folder)  # pins the local base, so "auto" keeps only the adapter
    branch = SemanticBranch(model_id=folder, revision=revision, lora_r=4, lora_alpha=16, lora_dropout=0.0,
                            optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    data = SemanticDataModule(model_id=folder, revision=revision, root=str(semantic_manifest), batch_size=4,
                              **SHORT_PROMPTS)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(branch, datamodule=data)
    path = tmp_path / "semantic.ckpt"
    trainer.save_checkpoint(path)

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    keys = set(checkpoint["state_dict"])
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert checkpoint["aligngemini_checkpoint_weights"] == "trainable"
    assert sum(v.numel() for v in checkpoint["state_dict"].values()) < 0.2 * sum(
        p.numel() for p in branch.parameters())

    trained = predict_scores(branch, data)
    restored = SemanticBranch.load_from_checkpoint(path)
    assert restored.hparams.revision == revision
    assert torch.equal(predict_scores(restored, data), trained)
    prompts = next(iter(data.predict_dataloader())).prompt_inputs
    answers = restored.model.generate_answer_ids(prompts, max_new_tokens=3)
    assert len(answers) == 2 and all(len(a) <= 3 for a in answers)
    fresh = SemanticBranch(model_id=folder, revision=revision, lora_r=4, lora_alpha=16)
    fresh.configure_model()
    assert not torch.equal(predict_scores(fresh, data), trained)  # the adapter is what carries the change


def test_revision_pins_a_local_folder(tiny_vlm_dir):
    with pytest.raises(ValueError, match="fingerprint"):
        SemanticBranch(model_id=tiny_vlm_dir("qwen2_vl"), revision="0123456789abcdef").configure_model()


def test_model_and_data_must_agree(tiny_vlm_dir, semantic_manifest):
    branch = SemanticBranch(model_id=tiny_vlm_dir("qwen2_vl"), verdict_words=("authentic", "generated"))
    data = SemanticDataModule(model_id=tiny_vlm_dir("qwen2_vl"), root=str(semantic_manifest))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="verdict_words"):
        trainer.validate(branch, datamodule=data)
