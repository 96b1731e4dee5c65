"""Pixel-artifact supervision view: real/fake pairs, augmented identically, never resized."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from aligngemini.datamodules.base import RecordsDataModule
from aligngemini.datamodules.batches import PixelBatch
from aligngemini.datamodules.images import decode_image
from aligngemini.datamodules.records import FAKE, REAL, ImageRecord
from aligngemini.datamodules.transforms import (
    PixelAugmentConfig,
    apply_pair_params,
    eval_crop,
    jpeg,
    sample_pair_params,
)
from aligngemini.datamodules.jpeg_quality import estimate_jpeg_quality

Unit = tuple[ImageRecord, ...]


class PixelDataModule(RecordsDataModule):
    """Records -> crops for the pixel branch.

    In training, records that share a ``pair_id`` (a photo and its VAE reconstruction)
    form one unit and get the same random resize, blur, JPEG quality, crop and flip,
    so the only difference left between them is the generator's artifact.

    Args:
        crop_size: crop side in pixels; ``None`` takes the model's own crop size.
        augment: training augmentation settings (saved with the run's config).
        pair_by_id: group records by ``pair_id`` for identical augmentation.
        match_real_jpeg: when a real photo is a JPEG file, compress its fake partner at the
            real's estimated quality first, so file format is no shortcut.
        **kwargs: see :class:`~aligngemini.datamodules.base.RecordsDataModule`.
    """

    def __init__(
        self,
        crop_size: int | None = None,
        augment: PixelAugmentConfig = PixelAugmentConfig(),
        pair_by_id: bool = True,
        match_real_jpeg: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.crop_size = crop_size
        self.augment = augment if isinstance(augment, PixelAugmentConfig) else PixelAugmentConfig.from_dict(augment)
        self.pair_by_id = pair_by_id
        self.match_real_jpeg = match_real_jpeg

    def resolve_crop_size(self) -> None:
        """Take the model's crop size when none was given."""
        if self.crop_size is None:
            model = self.trainer.lightning_module if self.trainer is not None else None
            self.crop_size = getattr(model, "crop_size", None)
            if self.crop_size is None:
                raise ValueError("data: set --data.crop_size (the model does not declare one)")

    def setup(self, stage: str | None = None) -> None:
        self.resolve_crop_size()
        super().setup(stage)

    def make_units(self, records: list[ImageRecord], stage: str) -> Sequence[Unit]:
        if stage != "train" or not self.pair_by_id:
            return [(r,) for r in records]
        units: dict[str, list[ImageRecord]] = {}
        for record in records:
            units.setdefault(record.pair_id or record.path, []).append(record)
        # Real first in each pair: its JPEG quality is what the fake is matched to.
        return [tuple(sorted(members, key=lambda r: r.label)) for members in units.values()]

    def load_unit(self, unit: Unit, rng: random.Random, train: bool) -> list[tuple[torch.Tensor, ImageRecord]]:
        images = [decode_image(r.path, self.limits) for r in unit]
        if not train:
            return [(eval_crop(image, self.crop_size), r) for image, r in zip(images, unit)]
        if self.match_real_jpeg and len(unit) > 1 and unit[0].label == REAL:
            quality = estimate_jpeg_quality(unit[0].path)
            if quality is not None:
                images = [jpeg(im, quality) if r.label == FAKE else im for im, r in zip(images, unit)]
        params = sample_pair_params(self.augment, rng)
        return list(zip(apply_pair_params(images, params, self.crop_size), unit))

    def collate_units(self, samples: list[list[tuple[torch.Tensor, ImageRecord]]], skipped) -> PixelBatch:
        items = [item for unit in samples for item in unit]
        return PixelBatch(
            images=torch.stack([tensor for tensor, _ in items]),
            labels=torch.tensor([float(r.label) for _, r in items]),
            paths=[r.path for _, r in items],
            subsets=[r.subset for _, r in items],
            skipped=skipped,
        )
