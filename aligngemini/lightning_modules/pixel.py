"""PixelBranch: the thin LightningModule around :class:`~aligngemini.models.pixel.PixelDetector`."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from aligngemini.datamodules.batches import PixelBatch
from aligngemini.lightning_modules.base import CheckpointWeights, DetectorModule, default_optimizer
from aligngemini.models.pixel import VIT_LORA_TARGETS, LoraSettings, PixelDetector, PixelPreprocess, TrainingMode


class PixelBranch(DetectorModule):
    """Pixel-artifact branch: any timm backbone by name, LoRA / linear probe / full fine-tune.

    Args:
        backbone: timm model name (paper: ``vit_large_patch14_dinov2.lvd142m``).
        pretrained: load timm's pretrained weights (needs them in the local cache offline).
        crop_size: the crop the model sees; images are padded and cropped, never resized.
        mode: ``lora`` (paper), ``linear`` (frozen backbone) or ``full``.
        lora_rank, lora_alpha, lora_dropout, lora_targets: LoRA settings (paper: 8, 1, 0,
            qkv/proj/fc1/fc2 of every block); ``lora_targets`` is a regex or a list of names.
        backbone_kwargs: extra ``timm.create_model`` arguments (e.g. a tiny depth for tests).
        backbone_revision: Hub commit of the pretrained weights (pins them; the zoo records it).
    """

    def __init__(
        self,
        backbone: str = "vit_large_patch14_dinov2.lvd142m",
        pretrained: bool = True,
        crop_size: int = 224,
        mode: TrainingMode = "lora",
        lora_rank: int = 8,
        lora_alpha: float = 1.0,
        lora_dropout: float = 0.0,
        lora_targets: str | list[str] = VIT_LORA_TARGETS,
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_revision: str | None = None,
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        threshold: float = 0.5,
        checkpoint_weights: CheckpointWeights = "auto",
    ):
        super().__init__(optimizer, lr_scheduler, threshold, checkpoint_weights)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.crop_size = crop_size

    def build_model(self) -> PixelDetector:
        h = self.hparams
        lora = LoraSettings(h.lora_rank, h.lora_alpha, h.lora_dropout, h.lora_targets)
        return PixelDetector(h.backbone, h.pretrained, h.crop_size, h.mode, lora, h.backbone_kwargs,
                             h.get("backbone_revision"))

    @property
    def base_is_reproducible(self) -> bool:
        # Random-init backbones are not reproducible from a name: keep every weight then.
        return bool(self.hparams.pretrained) and self.hparams.mode != "full"

    @property
    def preprocess(self) -> PixelPreprocess:
        self.configure_model()
        return self.model.preprocess

    def forward_logits(self, batch: PixelBatch) -> torch.Tensor:
        return self.model(batch.images)

    @torch.inference_mode()
    def score_images(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a float (B, 3, crop, crop) batch in [0, 1]: the detector's entry point."""
        self.configure_model()
        return self.model(images.to(self.device)).float()
