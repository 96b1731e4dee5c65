"""Cached branch scores -> fusion batches.

Each branch's ``aligngemini predict ... --out FILE`` writes one row per image
(``path, subset, label, logit, probability[, error]``; see :mod:`aligngemini.predictions`).
The rows of ``aligngemini detect --out FILE`` work too (one file for every branch: the
``{name}_probability`` columns are read), so a head can be fitted on exactly the scores the
detector computes (tiled pixel evidence, the detector's prompts).
This datamodule joins those files by image path, one file per named feature, so the
fusion head trains in seconds without reloading any branch. Rows with an ``error`` (a
file the branch could not read), and images missing from some branch, are reported in
``batch.skipped`` and left out.

The validation split is the *calibration* split: the fusion head fits its calibration
and its FPR threshold there. It comes from ``split_fractions`` or, when
``calibration_scores`` is given, from those files.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from aligngemini.datamodules.batches import FusionBatch
from aligngemini.datamodules.records import (
    SPLITS,
    UNLABELLED,
    ImageRecord,
    ManifestError,
    iter_rows,
    parse_label,
    split_records,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreRow:
    path: str
    label: int
    subset: str
    features: tuple[float, ...]


@dataclass
class ScoreTable:
    """The joined scores of one split, plus what could not be used and why."""

    rows: list[ScoreRow]
    skipped: list[tuple[str, str]]
    feature_names: tuple[str, ...]


def _read_rows(path: Path) -> Iterator[tuple[str, dict]]:
    return iter_rows(path, "score file")


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def row_logit(row: dict, where: str, name: str | None = None) -> float:
    """The branch's logit in this row: ``{name}_probability`` when the row has it (the rows
    ``aligngemini detect`` writes carry every branch), else the row's logit, else the logit
    of its probability (a hard 0/1 verdict gives ±13.8)."""
    try:
        own = _number(row.get(f"{name}_probability")) if name else None
        logit = None if own is not None else _number(row.get("logit"))
        if logit is not None:
            return logit
        probability = own if own is not None else _number(row.get("probability"))
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: logit/probability is not a number") from None
    if probability is None:
        raise ManifestError(f"{where}: row has neither a logit nor a probability")
    if not 0.0 <= probability <= 1.0:
        raise ManifestError(f"{where}: probability {probability} is not in [0, 1]")
    from aligngemini.models.fusion import probability_to_logit

    return probability_to_logit(probability)


def read_scores(files: Mapping[str, str | Path]) -> ScoreTable:
    """Join per-branch score files by (resolved) image path, in the order of ``files``."""
    if not files:
        raise ValueError("fusion data: give one score file per branch, e.g. {pixel: p.jsonl, semantic: s.jsonl}")
    names = tuple(files)
    per_branch: list[dict[str, tuple[float, int, str]]] = []
    skipped: dict[str, str] = {}
    order: list[str] = []
    for name, file in files.items():
        file = Path(file).expanduser()
        if not file.is_file():
            raise ManifestError(f"{file}: score file for branch {name!r} not found")
        table: dict[str, tuple[float, int, str]] = {}
        for where, row in _read_rows(file):
            key = os.path.normpath(str(Path(str(row["path"])).expanduser()))
            if row.get("error"):
                skipped.setdefault(key, f"{name} branch: {row['error']}")
                continue
            if key in table:
                raise ManifestError(f"{where}: image {key} appears twice in the {name!r} scores")
            table[key] = (row_logit(row, where, name), parse_label(row.get("label"), where), str(row.get("subset") or "default"))
            if not per_branch:
                order.append(key)
        per_branch.append(table)
    rows = []
    for key in order:
        if key in skipped:
            continue
        entries = [table.get(key) for table in per_branch]
        missing = [n for n, e in zip(names, entries) if e is None]
        if missing:
            skipped[key] = f"no score from branch(es) {', '.join(missing)}"
            continue
        labels = {e[1] for e in entries} - {UNLABELLED}
        if len(labels) > 1:
            raise ManifestError(f"{key}: the branches' score files disagree on its label ({sorted(labels)})")
        label = labels.pop() if labels else UNLABELLED
        rows.append(ScoreRow(key, label, entries[0][2], tuple(e[0] for e in entries)))
    first = set(order)
    for table, name in zip(per_branch[1:], names[1:]):
        for key in table.keys() - first:
            skipped.setdefault(key, f"no score from branch {names[0]}")
    if skipped:
        log.warning("fusion data: %d image(s) left out (branch errors or missing scores)", len(skipped))
    return ScoreTable(rows, sorted(skipped.items()), names)


class ScoreDataset(Dataset):
    def __init__(self, rows: list[ScoreRow]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> ScoreRow:
        return self.rows[index]


class FusionDataModule(L.LightningDataModule):
    """Fusion batches from the branches' score files.

    Args:
        scores: feature name -> score file (CSV/JSONL from ``predict --out``); the order
            here is the column order of ``batch.features``.
        calibration_scores: optional files of a separate held-out split (same names); they
            become the validation (= calibration) split (then set the middle split fraction
            to 0 so that no rows of ``scores`` are held back for nothing).
        test_scores, predict_scores: optional files for those stages; ``predict`` defaults
            to the test split and may be unlabelled.
        split_fractions: train/val(calibration)/test fractions of ``scores``.
        seed: seeds the split and the shuffling.
        batch_size: images per batch.
    """

    def __init__(
        self,
        scores: dict[str, str],
        calibration_scores: dict[str, str] | None = None,
        test_scores: dict[str, str] | None = None,
        predict_scores: dict[str, str] | None = None,
        split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
        seed: int = 0,
        batch_size: int = 256,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.scores = dict(scores)
        self.calibration_scores = calibration_scores
        self.test_scores = test_scores
        self.predict_scores = predict_scores
        self.split_fractions = tuple(split_fractions)
        self.seed = seed
        self.batch_size = batch_size
        for extra in (calibration_scores, test_scores, predict_scores):
            if extra is not None and list(extra) != list(self.scores):
                raise ValueError(f"fusion data: every score set must name the branches {list(self.scores)} in order, got {list(extra)}")
        self.tables: dict[str, ScoreTable] = {}

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.scores)

    def setup(self, stage: str | None = None) -> None:
        if self.tables:
            return
        main = read_scores(self.scores)
        records = [ImageRecord(r.path, r.label, r.subset) for r in main.rows if r.label != UNLABELLED]
        unlabelled = len(main.rows) - len(records)
        if unlabelled:
            log.warning("fusion data: %d unlabelled row(s) in the training scores are not used", unlabelled)
        by_path = {r.path: r for r in main.rows}
        splits = split_records(records, self.split_fractions, self.seed)
        tables = {s: ScoreTable([by_path[r.path] for r in splits[s]], [], main.feature_names) for s in SPLITS}
        tables["train"].skipped = main.skipped  # reported once, with the training data
        if self.calibration_scores:
            tables["val"] = read_scores(self.calibration_scores)
        if self.test_scores:
            tables["test"] = read_scores(self.test_scores)
        tables["predict"] = read_scores(self.predict_scores) if self.predict_scores else tables["test"]
        self.tables = tables

    def _collate(self, rows: list[ScoreRow], skipped: list[tuple[str, str]]) -> FusionBatch:
        features = torch.tensor([r.features for r in rows], dtype=torch.float32).reshape(len(rows), len(self.scores))
        return FusionBatch(
            labels=torch.tensor([float(r.label) for r in rows], dtype=torch.float32),
            paths=[r.path for r in rows],
            subsets=[r.subset for r in rows],
            skipped=skipped,
            features=features,
            feature_names=self.feature_names,
        )

    def _loader(self, stage: str) -> DataLoader:
        self.setup(stage)
        table = self.tables[stage]
        if not table.rows and not table.skipped:
            raise ValueError(f"fusion data: the {stage} split is empty; give more scores or set its score files")
        pending = list(table.skipped)

        def collate(rows: list[ScoreRow]) -> FusionBatch:
            skipped = pending[:] if pending else []
            pending.clear()  # the skipped rows ride with the first batch only
            return self._collate(rows, skipped)

        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            ScoreDataset(table.rows),
            batch_size=self.batch_size,
            shuffle=stage == "train",
            generator=generator if stage == "train" else None,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")


def write_scores(path: str | Path, rows: list[dict]) -> Path:
    """Write score rows as :class:`aligngemini.predictions.RowWriter` does (tests, tools)."""
    from aligngemini.predictions import RowWriter

    writer = RowWriter(path)
    writer.write(rows)
    writer.close()
    return Path(path)

