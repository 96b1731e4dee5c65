"""Loading a model to evaluate: a Lightning checkpoint -> its DetectorModule, and a factory
for the datamodule view that module reads, rebuilt from the checkpoint's data settings."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import pickle
from pathlib import Path, PurePath
from typing import Any

import torch

from aligngemini.checkpointing import allowed_checkpoint_globals
from aligngemini.datamodules.base import RecordsDataModule
from aligngemini.errors import AlignGeminiError
from aligngemini.evaluation.scoring import DatamoduleFactory
from aligngemini.lightning_modules.base import DetectorModule

# The datamodule view each model class reads when its checkpoint does not name one.
DEFAULT_VIEWS = {
    "PixelBranch": "aligngemini.datamodules.pixel.PixelDataModule",
    "SemanticBranch": "aligngemini.datamodules.semantic.SemanticDataModule",
}
# Data settings that describe *which* images a run read, not how it reads them.
_NOT_VIEW_SETTINGS = {"root", "val_root", "test_root", "predict_root", "subsets", "split_fractions", "_class_path",
                      "_instantiator"}


def import_class(path: str, base: type, what: str) -> type:
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise AlignGeminiError(f"cannot import {what} class {path!r} ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise AlignGeminiError(f"{what} class {path!r} is not a {base.__name__}")
    return cls


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
    with torch.serialization.safe_globals(allowed_checkpoint_globals(path, trust)):
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
