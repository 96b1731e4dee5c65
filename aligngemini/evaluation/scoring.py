"""Scoring records with any :class:`DetectorModule` through its own datamodule view
(:class:`Scorer`), or with any ``records -> rows`` callable (:class:`FunctionScorer`).

The module scorer hands records to a fresh view (``datamodule_factory()``) as its predict
split and runs ``Trainer.predict``, so each branch decodes and preprocesses exactly as
it does in ``aligngemini predict``, and bad files come back as rows with an ``error``.
With a perturbation chain the records are first replaced, a chunk at a time, by
perturbed copies in a scratch folder (see :mod:`aligngemini.evaluation.protocol`).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning as L

from aligngemini.datamodules.base import RecordsDataModule
from aligngemini.datamodules.records import UNLABELLED, ImageRecord
from aligngemini.datamodules.transforms import Perturbation
from aligngemini.evaluation.protocol import Chain, write_perturbed_copies
from aligngemini.lightning_modules.base import DetectorModule

DatamoduleFactory = Callable[[], RecordsDataModule]


class RowScorer:
    """Scores records through a ``predict(records) -> rows`` step: de-duplicates paths, works
    a chunk at a time and, for a perturbation chain, hands ``predict`` perturbed copies
    and maps their rows back to the original paths.

    Args:
        chunk_size: images perturbed and scored at a time (bounds the scratch folder's size).
        scratch_dir: where perturbed copies go (a temporary folder by default).
        workers: threads that write perturbed copies.
    """

    def __init__(self, chunk_size: int = 1024, scratch_dir: str | None = None, workers: int | None = None):
        self.chunk_size = chunk_size
        self.scratch_dir = scratch_dir
        self.workers = workers

    def predict(self, records: list[ImageRecord]) -> Iterable[dict]:
        """Rows with at least ``path`` (as given) and ``logit``/``probability`` or ``error``."""
        raise NotImplementedError

    def score(self, records: Sequence[ImageRecord], chain: Perturbation | Chain | None = None) -> list[dict]:
        """One row per record: ``path, subset, label, logit, probability, error`` (+ extras).

        A path listed more than once (a real pool shared by several subsets) is scored once.
        """
        chain = (chain,) if isinstance(chain, Perturbation) else tuple(chain or ())
        by_path: dict[str, list[ImageRecord]] = {}
        for record in records:
            by_path.setdefault(record.path, []).append(record)
        unique = [group[0] for group in by_path.values()]
        scored: dict[str, dict] = {}
        for start in range(0, len(unique), self.chunk_size):
            chunk = unique[start : start + self.chunk_size]
            scored.update(self._score_chunk(chunk, chain) if chain else self._rows_by_path(chunk, {}))
        rows = []
        for record in records:
            row = dict(scored.get(record.path) or {"logit": None, "probability": None, "error": "not scored"})
            row.update(path=record.path, subset=record.subset, label=None if record.label == UNLABELLED else record.label)
            rows.append(row)
        return rows

    def _score_chunk(self, chunk: list[ImageRecord], chain: Chain) -> dict[str, dict]:
        with tempfile.TemporaryDirectory(prefix="aligngemini-eval-", dir=self.scratch_dir) as folder:
            copies = write_perturbed_copies(chunk, chain, folder, workers=self.workers)
            scored = self._rows_by_path(copies.records, copies.original_path) if copies.records else {}
        for path, reason in copies.failed.items():
            scored[path] = {"logit": None, "probability": None, "error": reason}
        return scored

    def _rows_by_path(self, records: list[ImageRecord], original_path: dict[str, str]) -> dict[str, dict]:
        scored = {}
        for row in self.predict(list(records)):
            path = original_path.get(str(row["path"]), str(row["path"]))
            scored[path] = {**row, "path": path}
        return scored


class FunctionScorer(RowScorer):
    """A :class:`RowScorer` around any callable, e.g. the full detector:
    ``FunctionScorer(lambda records: [d.to_row() for d in detector(records)])``."""

    def __init__(self, predict: Callable[[list[ImageRecord]], Iterable[dict]], **settings: Any):
        super().__init__(**settings)
        self._predict_fn = predict

    def predict(self, records: list[ImageRecord]) -> Iterable[dict]:
        return self._predict_fn(records)


class Scorer(RowScorer):
    """Scores records with ``module`` through its own view; one Trainer, reused for every
    protocol and sweep point.

    Args:
        module: any DetectorModule (built or not; ``configure_model`` is idempotent).
        datamodule_factory: returns a fresh, unconfigured view, e.g. ``lambda: PixelDataModule(batch_size=32)``.
        accelerator, precision: Trainer settings; evaluation runs on one device.
        root_dir: the Trainer's folder, where the branch's ``bad_files.jsonl`` goes (default: cwd).
        chunk_size, scratch_dir, workers: see :class:`RowScorer`.
    """

    def __init__(
        self,
        module: DetectorModule,
        datamodule_factory: DatamoduleFactory,
        accelerator: str = "auto",
        precision: str | None = None,
        chunk_size: int = 1024,
        scratch_dir: str | None = None,
        root_dir: str | None = None,
        workers: int | None = None,
        progress: bool = False,
    ):
        super().__init__(chunk_size, scratch_dir, workers)
        self.module = module
        self.datamodule_factory = datamodule_factory
        self.trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=precision,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            default_root_dir=root_dir,
        )

    def predict(self, records: list[ImageRecord]) -> Iterable[dict]:
        datamodule = self.datamodule_factory()
        datamodule.records = {"train": [], "val": [], "test": [], "predict": records}
        with warnings.catch_warnings():  # Lightning 2.6 warns about its own use of torch's pytree on every call
            warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
            batches = self.trainer.predict(self.module, datamodule=datamodule, return_predictions=True) or []
        return [row for batch_rows in batches for row in batch_rows]


def score_records(
    module: DetectorModule,
    datamodule_factory: DatamoduleFactory,
    records: Sequence[ImageRecord],
    perturbation: Perturbation | Chain | None = None,
    **scorer_settings: Any,
) -> list[dict]:
    """Rows for ``records`` scored by ``module`` through ``datamodule_factory()``'s view."""
    return Scorer(module, datamodule_factory, **scorer_settings).score(records, perturbation)
