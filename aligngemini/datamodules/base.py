"""The shared LightningDataModule: records -> deterministic splits -> typed batches.

A *view* (pixel, semantic) subclasses it and says how one unit of records becomes
tensors (``load_unit``) and how units become a batch (``collate``). Bad files are
caught here once: under the ``skip`` policy a unit whose file cannot be decoded is
dropped from its batch and reported in ``batch.skipped``; under ``fail`` the error,
which names the file, ends the run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from aligngemini.checkpointing import ResumableDataLoader
from aligngemini.datamodules.batches import RecordBatch, empty_like_skipped
from aligngemini.datamodules.images import BadImageError, BadInputPolicy, DecodeLimits
from aligngemini.datamodules.records import SPLITS, ImageRecord, load_records, split_records

STAGES = ("train", "val", "test", "predict")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


class UnitDataset(Dataset):
    """Items are (index, epoch) pairs from :class:`SeededSampler`, so every random
    choice is a pure function of (seed, epoch, index): identical across workers,
    processes and a resumed run."""

    def __init__(self, units: Sequence[Any], load_unit, policy: BadInputPolicy, seed: int, train: bool):
        self.units = units
        self.load_unit = load_unit
        self.policy = BadInputPolicy(policy)
        self.seed = seed
        self.train = train

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, item: tuple[int, int] | int) -> Any:
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        rng = random.Random(hash((self.seed, epoch, index)))
        try:
            return self.load_unit(self.units[index], rng, self.train)
        except BadImageError as err:
            if self.policy is BadInputPolicy.fail:
                raise
            return Skipped(err.path, err.reason)


class SeededSampler(Sampler):
    """Yields (index, epoch); shuffles with a seeded permutation per epoch.

    Lightning calls ``set_epoch`` before each epoch (and wraps this sampler for DDP).
    """

    def __init__(self, length: int, seed: int, shuffle: bool):
        self.length, self.seed, self.shuffle, self.epoch = length, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(range(self.length))
        if self.shuffle:
            random.Random(hash((self.seed, self.epoch))).shuffle(order)
        return iter((i, self.epoch) for i in order)


class DistributedSeededSampler(SeededSampler, DistributedSampler):
    """Training under DDP: rank r takes every world-th item of the seeded order (padded as
    ``DistributedSampler`` pads), so the ranks' batches together are exactly the single
    process's batch of ``world x batch_size``. Being a ``DistributedSampler``, Lightning
    does not wrap it again (its own wrapper would reshuffle the order)."""

    def __init__(self, length: int, seed: int, shuffle: bool, rank: int, world: int):
        SeededSampler.__init__(self, length, seed, shuffle)
        self.rank, self.num_replicas = rank, world

    def __len__(self) -> int:
        return -(-self.length // self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        items = list(SeededSampler.__iter__(self))
        items += items[: len(self) * self.num_replicas - len(items)]
        return iter(items[self.rank :: self.num_replicas])


def _train_sampler(length: int, seed: int) -> SeededSampler:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        if world > 1:
            return DistributedSeededSampler(length, seed, True, torch.distributed.get_rank(), world)
    return SeededSampler(length, seed, shuffle=True)


class RecordsDataModule(L.LightningDataModule):
    """Records shared by every branch.

    Args:
        root: a benchmark folder (``real/`` + ``fake/``, ``0_real/`` + ``1_fake/``, nested per
            subset) or a CSV/JSONL manifest (``path,label[,subset][,pair_id][,rationale][,split]``).
            Split into train/val/test by ``split_fractions`` unless a split has its own root.
        val_root, test_root: optional separate folders/manifests for those splits.
        predict_root: what ``predict`` scores (may be unlabelled); defaults to the test split.
        split_fractions: train/val/test fractions for records without a ``split`` column.
        seed: seeds the split and every augmentation draw.
        batch_size: units per batch (a real/fake pair is one unit of two images).
        num_workers: DataLoader worker processes.
        bad_input: ``skip`` (drop and report a file that cannot be decoded) or ``fail``.
        max_pixels: decoder's decompression-bomb limit.
        subsets: keep only these subsets (generators), if given.
    """

    def __init__(
        self,
        root: str | None = None,
        val_root: str | None = None,
        test_root: str | None = None,
        predict_root: str | None = None,
        split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
        bad_input: BadInputPolicy = BadInputPolicy.skip,
        max_pixels: int = DecodeLimits.max_pixels,
        subsets: list[str] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        for key, value in list(self.hparams.items()):  # plain data: checkpoints load weights_only
            if isinstance(value, BadInputPolicy):
                self.hparams[key] = value.value
            elif hasattr(value, "to_dict"):
                self.hparams[key] = value.to_dict()
        # Data settings live in the saved config.yaml and the checkpoint; merging them into
        # the logger's hparams would clash with same-named model settings (crop_size).
        self._log_hyperparams = False
        self.root = root
        self.val_root, self.test_root, self.predict_root = val_root, test_root, predict_root
        self.split_fractions = tuple(split_fractions)
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.bad_input = BadInputPolicy(bad_input)
        self.limits = DecodeLimits(max_pixels=max_pixels)
        self.subsets = set(subsets) if subsets else None
        self.records: dict[str, list[ImageRecord]] = {}

    # --- what views provide --------------------------------------------------------------
    def make_units(self, records: list[ImageRecord], stage: str) -> Sequence[Any]:
        """Group records into units (default: one record per unit)."""
        return records

    def load_unit(self, unit: Any, rng: random.Random, train: bool) -> Any:
        raise NotImplementedError

    def collate_units(self, samples: list[Any], skipped: list[tuple[str, str]]) -> RecordBatch:
        raise NotImplementedError

    # --- records -------------------------------------------------------------------------
    def _load(self, source: str | None, allow_unlabelled: bool = False) -> list[ImageRecord]:
        if source is None:
            return []
        records = load_records(Path(source).expanduser(), allow_unlabelled=allow_unlabelled)
        if self.subsets is not None:
            records = [r for r in records if r.subset in self.subsets]
        return records

    def setup(self, stage: str | None = None) -> None:
        if self.records:
            return
        if self.root is None and not (self.val_root or self.test_root or self.predict_root):
            raise ValueError("data: set --data.root to a folder or manifest of images")
        splits = split_records(self._load(self.root), self.split_fractions, self.seed) if self.root else {}
        records = {s: splits.get(s, []) for s in SPLITS}
        if self.val_root:
            records["val"] = self._load(self.val_root)
        if self.test_root:
            records["test"] = self._load(self.test_root)
        records["predict"] = self._load(self.predict_root, allow_unlabelled=True) if self.predict_root else records["test"]
        self.records = records

    def _loader(self, stage: str) -> DataLoader:
        if not self.records:
            self.setup(stage)
        records = self.records[stage]
        if not records:
            raise ValueError(f"data: the {stage} split is empty; give more images or set --data.{stage}_root")
        units = self.make_units(records, stage)
        train = stage == "train"
        dataset = UnitDataset(units, self.load_unit, self.bad_input, self.seed, train)
        # Resumable: a checkpoint records the batches consumed; a resumed run skips them.
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=_train_sampler(len(units), self.seed) if train else SeededSampler(len(units), self.seed, False),
            drop_last=False,
            num_workers=self.num_workers,
            collate_fn=self._collate,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _collate(self, samples: list[Any]) -> RecordBatch:
        skipped = [(s.path, s.reason) for s in samples if isinstance(s, Skipped)]
        good = [s for s in samples if not isinstance(s, Skipped)]
        if not good:
            return empty_like_skipped(skipped)
        return self.collate_units(good, skipped)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
