"""Rebuild a model from an exported folder: ``config.json`` + safetensors, no pickles.

``config.json`` names the LightningModule (only classes inside the ``aligngemini``
package are accepted) and its init arguments as JSON; jsonargparse turns those back
into typed arguments (dataclass settings, enums, tuples) from the class signature.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
from pathlib import Path, PurePath
from typing import Any

import torch

from aligngemini.errors import AlignGeminiError
from aligngemini.zoo.specs import PICKLE_SUFFIXES

FORMAT = "aligngemini-export/1"
CONFIG_FILE = "config.json"
# Init arguments that only matter while training; LightningCLI stores `_class_path` and
# `_instantiator` in hparams, and the optimizer / scheduler as class-path dicts.
TRAINING_ONLY_ARGS = ("optimizer", "lr_scheduler", "_class_path", "_instantiator")
ALLOWED_PREFIXES = ("aligngemini.",)
ALLOWED_NESTED_PREFIXES = ("aligngemini.", "torch.nn.")


class ExportFormatError(AlignGeminiError, ValueError):
    """An exported folder is incomplete, unsafe or from a different format."""


class IntegrityError(AlignGeminiError):
    """A file's bytes do not match the sha256 recorded for it."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def to_jsonable(value: Any, where: str = "init_args") -> Any:
    """Plain JSON for hparams: dataclasses become dicts, enums their value, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value), where)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ExportFormatError(f"{where}: {type(value).__name__} cannot be written to config.json; "
                            "give the module plain, dataclass or enum settings")


def inference_init_args(hparams: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in hparams.items() if k not in TRAINING_ONLY_ARGS}


def import_class(class_path: str, allowed: tuple[str, ...] = ALLOWED_PREFIXES) -> type:
    if not class_path.startswith(allowed):
        raise ExportFormatError(f"refusing to import {class_path!r}: only classes under "
                                f"{', '.join(p.rstrip('.') for p in allowed)} can be rebuilt from a config")
    module_name, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ExportFormatError(f"{class_path}: no such class in this aligngemini version ({err})") from err


def _check_nested_class_paths(value: Any, where: str) -> None:
    if isinstance(value, dict):
        path = value.get("class_path")
        if isinstance(path, str) and not path.startswith(ALLOWED_NESTED_PREFIXES):
            raise ExportFormatError(f"{where}.class_path {path!r}: only aligngemini and torch.nn classes may be named")
        for key, item in value.items():
            _check_nested_class_paths(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_nested_class_paths(item, f"{where}[{i}]")


def instantiate(class_path: str, init_args: dict[str, Any]):
    """Build ``class_path(**init_args)`` with arguments typed from the class signature."""
    from jsonargparse import ArgumentParser

    from aligngemini.lightning_modules.base import DetectorModule

    cls = import_class(class_path)
    if not (isinstance(cls, type) and issubclass(cls, DetectorModule)):
        raise ExportFormatError(f"{class_path} is not an aligngemini DetectorModule")
    init_args = inference_init_args(init_args)
    _check_nested_class_paths(init_args, "init_args")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "model", fail_untyped=False, skip=set(TRAINING_ONLY_ARGS))
    try:
        config = parser.parse_object({"model": init_args})
    except Exception as err:  # jsonargparse raises its own ArgumentError with the failing key
        raise ExportFormatError(f"config.json init_args do not fit {class_path}: {err}") from err
    return parser.instantiate_classes(config).model


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ExportFormatError(f"{folder}: no {CONFIG_FILE}; is this an `aligngemini zoo export` folder?")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ExportFormatError(f"{path}: not valid JSON ({err})") from err
    if config.get("format") != FORMAT:
        raise ExportFormatError(f"{path}: format {config.get('format')!r}; this aligngemini reads {FORMAT!r}")
    return config


def load_weights(folder: Path, config: dict[str, Any], allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The state dict named by ``config.json``, checked against the sha256 recorded there."""
    weights = config["weights"]
    path = Path(folder) / weights["file"]
    if not path.is_file():
        raise ExportFormatError(f"{folder}: {weights['file']} is missing")
    actual = sha256_of(path)
    if weights.get("sha256") and actual != weights["sha256"]:
        raise IntegrityError(f"{path}: sha256 {actual} does not match {weights['sha256']} recorded in config.json; "
                             "the file is corrupt or was modified")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ExportFormatError(f"{path}: pickle checkpoints can run code when loaded and are refused; "
                                    "use safetensors, or pass allow_pickle=True (--allow-pickle) if you trust the source")
        return torch.load(path, map_location="cpu", weights_only=True)
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _asks_remote_code(value: Any) -> bool:
    if isinstance(value, dict):
        return any((k == "trust_remote_code" and v) or _asks_remote_code(v) for k, v in value.items())
    return isinstance(value, list) and any(_asks_remote_code(v) for v in value)


def build_from_folder(folder: str | Path, allow_pickle: bool = False, trust_remote_code: bool = False,
                      device: str | torch.device = "cpu"):
    """config.json + weights -> a LightningModule in eval mode on ``device``, ready for inference.

    The model is built on ``device`` (a 4-bit VLM must be quantised where it will run)."""
    folder = Path(folder)
    config = read_config(folder)
    if config.get("family") == "detector":
        raise ExportFormatError(f"{folder} is a detector naming its parts {config.get('parts')}; "
                                "load it with aligngemini's detector (AlignGemini(model=...)), not as one module")
    if _asks_remote_code(config.get("init_args", {})) and not trust_remote_code:
        raise ExportFormatError(f"{folder}/config.json asks for trust_remote_code, which runs code from the Hub; "
                                "refused (pass trust_remote_code=True only for a source you trust)")
    module = instantiate(config["class_path"], config.get("init_args", {}))
    module.to(device)  # before configure_model: modules that build lazily build on their own device
    module.configure_model()
    state = load_weights(folder, config, allow_pickle=allow_pickle)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected:
        raise ExportFormatError(f"{folder}: weights hold keys the model does not have: {sorted(unexpected)[:5]}")
    needed = set(module.state_dict()) if config["weights"].get("keys") == "all" else module.trainable_state_keys()
    if needed & set(missing):
        raise ExportFormatError(f"{folder}: weights lack {sorted(needed & set(missing))[:5]}; "
                                "was the folder exported from a different model configuration?")
    module.zoo_config = config
    return module.to(device).eval()
