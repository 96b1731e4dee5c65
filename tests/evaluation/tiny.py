"""A tiny DetectorModule and view whose logits are a known function of the pixels it sees."""

from __future__ import annotations

import random

import torch
from torch import nn

from aligngemini.datamodules.base import RecordsDataModule
from aligngemini.datamodules.batches import PixelBatch
from aligngemini.datamodules.images import decode_image
from aligngemini.datamodules.records import ImageRecord
from aligngemini.datamodules.transforms import eval_crop
from aligngemini.lightning_modules.base import DetectorModule


class CropView(RecordsDataModule):
    """Centre crops of ``crop_size`` (padded, never resized)."""

    def __init__(self, crop_size: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.crop_size = crop_size

    def load_unit(self, unit: ImageRecord, rng: random.Random, train: bool):
        return eval_crop(decode_image(unit.path, self.limits), self.crop_size), unit

    def collate_units(self, samples, skipped) -> PixelBatch:
        return PixelBatch(
            images=torch.stack([t for t, _ in samples]),
            labels=torch.tensor([float(r.label) for _, r in samples]),
            paths=[r.path for _, r in samples],
            subsets=[r.subset for _, r in samples],
            skipped=skipped,
        )


class Roughness(nn.Module):
    """logit = weight * (mean |horizontal neighbour difference| - 0.05) * 100 + bias.

    Nearest-neighbour upsampling (the fixtures' fake artifact) halves that roughness,
    so a negative weight calls the smooth fakes fake."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(-1.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        roughness = (images[..., 1:] - images[..., :-1]).abs().mean(dim=(1, 2, 3))
        return self.weight * (roughness - 0.05) * 100 + self.bias


class EchoDetector(DetectorModule):
    """Scores with :class:`Roughness` and remembers every image it was shown, by path."""

    def __init__(self, crop_size: int = 32):
        super().__init__()
        self.save_hyperparameters()
        self.crop_size = crop_size
        self.seen: dict[str, torch.Tensor] = {}

    def build_model(self) -> nn.Module:
        return Roughness()

    def forward_logits(self, batch: PixelBatch) -> torch.Tensor:
        for path, image in zip(batch.paths, batch.images):
            self.seen[path] = image.detach().cpu()
        return self.model(batch.images)
