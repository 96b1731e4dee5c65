"""Tiny real branches for the detector tests: a pixel branch trained a few steps, a random
tiny Qwen2-VL semantic branch and a fusion head fitted on score files; all as checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch

from aligngemini.datamodules.fusion import FusionDataModule
from aligngemini.datamodules.pixel import PixelDataModule
from aligngemini.lightning_modules.fusion import FusionHead
from aligngemini.lightning_modules.pixel import PixelBranch
from aligngemini.lightning_modules.semantic import SemanticBranch
from aligngemini.testing.scores import complementary_scores
from aligngemini.testing.tiny_vlm import save_tiny_vlm

TRAINED_QUESTION = "Real or fake? Answer real or fake."
TINY_VIT = dict(backbone="vit_small_patch14_dinov2", pretrained=False, crop_size=28,
                backbone_kwargs={"depth": 1, "embed_dim": 24, "num_heads": 2})


def _trainer(root: Path, **kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", default_root_dir=root, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, **kwargs)


def save_module_checkpoint(module: L.LightningModule, path: Path) -> Path:
    """What Lightning writes, for a module not trained here: weights + hyperparameters."""
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                  "pytorch-lightning_version": L.__version__}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def pixel_checkpoint(paired_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pixel")
    torch.manual_seed(0)
    module = PixelBranch(**TINY_VIT)
    data = PixelDataModule(root=str(paired_dataset), batch_size=4, split_fractions=(0.7, 0.15, 0.15))
    trainer = _trainer(root, max_epochs=1, limit_train_batches=3, limit_val_batches=1)
    trainer.fit(module, data)
    trainer.save_checkpoint(root / "pixel.ckpt")
    return root / "pixel.ckpt"


@pytest.fixture(scope="session")
def semantic_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("semantic")
    tiny = save_tiny_vlm("qwen2_vl", root / "qwen2_vl")
    module = SemanticBranch(model_id=str(tiny.folder), quantization="none", gradient_checkpointing=False,
                            lora_r=4, lora_alpha=8, max_new_tokens=6)
    module.configure_model()
    path = save_module_checkpoint(module, root / "semantic.ckpt")
    checkpoint = torch.load(path, weights_only=False)  # as Lightning writes it after `fit` with the semantic view
    checkpoint["datamodule_hyper_parameters"] = {"max_image_side": 112, "question": TRAINED_QUESTION,
                                                 "model_id": str(tiny.folder)}
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def fusion_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fusion")
    head = FusionHead(mode="logistic", uncertain_band=0.05)
    trainer = _trainer(root, max_epochs=2)
    trainer.fit(head, FusionDataModule(complementary_scores(root), seed=0))
    trainer.save_checkpoint(root / "fusion.ckpt")
    return root / "fusion.ckpt"


@pytest.fixture(scope="session")
def detector(pixel_checkpoint, semantic_checkpoint, fusion_checkpoint):
    from aligngemini.detect import AlignGemini

    return AlignGemini(pixel=pixel_checkpoint, semantic=semantic_checkpoint, fusion=fusion_checkpoint,
                       batch_size=3, device="cpu")


@pytest.fixture()
def image_folder(photo_folder, tmp_path) -> Path:
    """real/ + fake/ with a few images each, a nested folder, a broken and an empty file."""
    root = tmp_path / "images"
    for label in ("real", "fake"):
        (root / "set_a" / label).mkdir(parents=True)
        for source in sorted((photo_folder / label).glob("*.png"))[:3]:
            shutil.copy(source, root / "set_a" / label / source.name)
    (root / "loose").mkdir()
    shutil.copy(sorted((photo_folder / "real").glob("*.png"))[-1], root / "loose" / "photo.png")
    (root / "set_a" / "fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "loose" / "empty.jpg").write_bytes(b"")
    return root
