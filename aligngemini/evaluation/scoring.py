"""Scoring records with any :class:`DetectorModule` through its own datamodule view.

The scorer hands records to a fresh view (``datamodule_factory()``) as its predict
split and runs ``Trainer.predict``, so each branch decodes and preprocesses exactly as
it does in ``aligngemini predict``, and bad files come back as rows with an ``error``.
With a perturbation chain the records are first replaced, a chunk at a time, by
perturbed copies in a scratch folder (see :mod:`aligngemini.evaluation.protocol`).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import pickle
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any

import lightning as L
import torch

from aligngemini.datamodules.base import RecordsDataModule
from aligngemini.datamodules.records import UNLABELLED, ImageRecord
from aligngemini.datamodules.transforms import Perturbation
from aligngemini.errors import AlignGeminiError
from aligngemini.evaluation.protocol import Chain, write_perturbed_copies
from aligngemini.lightning_modules.base import DetectorModule

DatamoduleFactory = Callable[[], RecordsDataModule]
# The datamodule view each model class reads when its checkpoint does not name one.
DEFAULT_VIEWS = {
    "PixelBranch": "aligngemini.datamodules.pixel.PixelDataModule",
    "SemanticBranch": "aligngemini.datamodules.semantic.SemanticDataModule",
}
# Data settings that describe *which* images a run read, not how it reads them.
_NOT_VIEW_SETTINGS = {"root", "val_root", "test_root", "predict_root", "subsets", "split_fractions", "_class_path",
                      "_instantiator"}


class Scorer:
    """Scores records with ``module``; one Trainer, reused for every protocol and sweep point.

    Args:
        module: any DetectorModule (built or not; ``configure_model`` is idempotent).
        datamodule_factory: returns a fresh, unconfigured view, e.g. ``lambda: PixelDataModule(batch_size=32)``.
        accelerator, precision: Trainer settings; evaluation runs on one device.
        chunk_size: images perturbed and scored at a time (bounds the scratch folder's size).
        scratch_dir: where perturbed copies go (a temporary folder by default).
        root_dir: the Trainer's folder, where the branch's ``bad_files.jsonl`` goes (default: cwd).
        workers: threads that write perturbed copies.
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
        self.module = module
        self.datamodule_factory = datamodule_factory
        self.chunk_size = chunk_size
        self.scratch_dir = scratch_dir
        self.workers = workers
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

    def score(self, records: Sequence[ImageRecord], chain: Perturbation | Chain | None = None) -> list[dict]:
        """One row per record: ``path, subset, label, logit, probability, error`` (+ view extras).

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
            scored.update(self._score_chunk(chunk, chain) if chain else self._predict(chunk, {}))
        rows = []
        for record in records:
            row = dict(scored.get(record.path) or {"logit": None, "probability": None, "error": "not scored"})
            row.update(path=record.path, subset=record.subset, label=None if record.label == UNLABELLED else record.label)
            rows.append(row)
        return rows

    def _score_chunk(self, chunk: list[ImageRecord], chain: Chain) -> dict[str, dict]:
        with tempfile.TemporaryDirectory(prefix="aligngemini-eval-", dir=self.scratch_dir) as folder:
            copies = write_perturbed_copies(chunk, chain, folder, workers=self.workers)
            scored = self._predict(copies.records, copies.original_path) if copies.records else {}
        for path, reason in copies.failed.items():
            scored[path] = {"logit": None, "probability": None, "error": reason}
        return scored

    def _predict(self, records: list[ImageRecord], original_path: dict[str, str]) -> dict[str, dict]:
        datamodule = self.datamodule_factory()
        datamodule.records = {"train": [], "val": [], "test": [], "predict": list(records)}
        with warnings.catch_warnings():  # Lightning 2.6 warns about its own use of torch's pytree on every call
            warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
            batches = self.trainer.predict(self.module, datamodule=datamodule, return_predictions=True) or []
        scored = {}
        for batch_rows in batches:
            for row in batch_rows:
                path = original_path.get(row["path"], row["path"])
                scored[path] = {**row, "path": path}
        return scored


def score_records(
    module: DetectorModule,
    datamodule_factory: DatamoduleFactory,
    records: Sequence[ImageRecord],
    perturbation: Perturbation | Chain | None = None,
    **scorer_settings: Any,
) -> list[dict]:
    """Rows for ``records`` scored by ``module`` through ``datamodule_factory()``'s view."""
    return Scorer(module, datamodule_factory, **scorer_settings).score(records, perturbation)


# --- loading a model from a checkpoint ------------------------------------------------------
def import_class(path: str, base: type, what: str) -> type:
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise AlignGeminiError(f"cannot import {what} class {path!r} ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise AlignGeminiError(f"{what} class {path!r} is not a {base.__name__}")
    return cls


def _checkpoint_globals(path: Path, trust: bool) -> list:
    """The classes ``torch.load(weights_only=True)`` must be allowed to rebuild: aligngemini's
    own settings (dataclasses, enums) and paths; anything else is refused unless trusted."""
    if trust:
        return []
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    foreign = [name for name in unsafe if not name.startswith(("aligngemini.", "pathlib."))]
    if foreign:
        raise AlignGeminiError(f"{path}: the checkpoint pickles {foreign[:3]}, which could run code when loaded; "
                               "pass --trust-checkpoint if you trust this file")
    allowed = []
    for name in unsafe:
        module_name, _, attr = name.rpartition(".")
        allowed.append(getattr(importlib.import_module(module_name), attr))
    return allowed


def load_checkpoint_module(
    path: str | Path, model_class: str | None = None, trust: bool = False
) -> tuple[DetectorModule, dict]:
    """The module a Lightning checkpoint holds, and the checkpoint dict.

    The class comes from ``model_class`` or, for runs started by ``aligngemini fit``, from
    the checkpoint's ``hyper_parameters._class_path`` (only ``aligngemini.*`` classes
    are imported on the checkpoint's word). Unpickling is limited to tensors, plain data
    and aligngemini's settings classes unless ``trust``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    with torch.serialization.safe_globals(_checkpoint_globals(path, trust)):
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=not trust)
        except pickle.UnpicklingError as err:
            raise AlignGeminiError(f"{path}: cannot read the checkpoint ({str(err).strip()[:200]})") from None
        class_path = model_class or checkpoint.get("hyper_parameters", {}).get("_class_path")
        if not class_path:
            raise AlignGeminiError(
                f"{path}: the checkpoint does not name its model class; pass --model-class MODULE.CLASS")
        if model_class is None and not class_path.startswith("aligngemini."):
            raise AlignGeminiError(f"{path}: the checkpoint asks for class {class_path!r} outside aligngemini; "
                                   "pass --model-class to confirm you trust it")
        cls = import_class(class_path, DetectorModule, "model")
        module = cls.load_from_checkpoint(path, map_location="cpu", weights_only=not trust)
    module.eval()
    return module, checkpoint


def _view_settings(cls: type) -> set[str] | None:
    """Names a datamodule class accepts, following ``**kwargs`` up the class tree; None = any."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params) or klass is RecordsDataModule:
            return names - {"self"}
    return None


def datamodule_factory_for(
    module: DetectorModule,
    checkpoint: dict | None = None,
    data_class: str | None = None,
    **overrides: Any,
) -> DatamoduleFactory:
    """A factory for the view ``module`` reads: ``data_class``, else the class the checkpoint's
    datamodule settings name, else :data:`DEFAULT_VIEWS`. The checkpoint's view settings
    (crop size, decode limits...) are kept; where the images come from is not."""
    saved = dict((checkpoint or {}).get("datamodule_hyper_parameters") or {})
    class_path = data_class or saved.get("_class_path") or DEFAULT_VIEWS.get(type(module).__name__)
    if class_path is None:
        raise AlignGeminiError(f"no datamodule view is known for {type(module).__name__}; pass --data-class MODULE.CLASS")
    cls = import_class(class_path, RecordsDataModule, "datamodule")
    accepted = _view_settings(cls)
    settings = {k: _plain(v) for k, v in saved.items() if k not in _NOT_VIEW_SETTINGS}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if accepted is not None:
        settings = {k: v for k, v in settings.items() if k in accepted}
    return _typed_factory(cls, settings)


def _plain(value: Any) -> Any:
    """Saved settings as plain data (dataclass settings -> dicts, enums -> values)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _typed_factory(cls: type, settings: dict) -> DatamoduleFactory:
    """Settings -> typed init arguments the way LightningCLI reads them (a dataclass setting
    may be saved as ``{"class_path", "init_args"}`` or as a dict), checked once, now."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "data", fail_untyped=False)
    try:
        config = parser.parse_object({"data": settings})
    except Exception as err:  # jsonargparse raises its own error types
        raise AlignGeminiError(f"cannot rebuild the {cls.__name__} view from the checkpoint's settings: {err}") from None
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return lambda: instantiate(config).data
