"""Trained module or checkpoint -> a folder the Hub can serve and ``aligngemini.load`` can rebuild.

The folder holds ``model.safetensors`` (the weights the module's checkpoint policy keeps:
trainable ones when the frozen base can be rebuilt from a pinned source), ``config.json``
(class path, init arguments, preprocessing and card inputs, all plain JSON), ``README.md``
(the model card, regenerated on every export) and, for modules that wrap a PEFT model,
an ``adapter/`` folder that ``peft`` loads directly.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from aligngemini import __version__
from aligngemini.checkpointing import read_checkpoint
from aligngemini.errors import AlignGeminiError
from aligngemini.zoo.rebuild import (
    CONFIG_FILE,
    FORMAT,
    ExportFormatError,
    build_from_folder,
    inference_init_args,
    sha256_of,
    to_jsonable,
)
from aligngemini.zoo.specs import FAMILIES

class ExportExistsError(AlignGeminiError, FileExistsError):
    pass


WEIGHTS_FILE = "model.safetensors"
ADAPTER_DIR = "adapter"
# Data settings that say where data lives or how fast it loads, not how an image is prepared.
DATA_RUNTIME_ARGS = ("root", "val_root", "test_root", "predict_root", "split_fractions", "seed", "batch_size",
                     "num_workers", "subsets", "_class_path", "_instantiator")


def class_path_of(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def infer_family(class_path: str) -> str:
    for part in reversed(class_path.split(".")[:-1]):
        if part in FAMILIES:
            return part
    raise ExportFormatError(f"cannot tell the family of {class_path}; pass family= (one of {FAMILIES})")


def preprocess_from_data(class_path: str | None, hparams: dict[str, Any] | None) -> dict[str, Any]:
    settings = {k: v for k, v in (hparams or {}).items() if k not in DATA_RUNTIME_ARGS}
    return {"datamodule": class_path, "settings": to_jsonable(settings, "preprocess")}


def kept_state_dict(module) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict a checkpoint of ``module`` holds, by the module's own policy."""
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    mode = checkpoint.get("aligngemini_checkpoint_weights", "all")
    return checkpoint["state_dict"], mode


def save_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    # clone: safetensors refuses tensors that share storage (tied or viewed weights)
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}, str(path),
              metadata={"format": "pt", "aligngemini": __version__})


def _peft_models(module) -> list:
    if "peft" not in sys.modules:  # a module that wraps PEFT has imported it already
        return []
    from peft import PeftModel

    return [m for m in module.modules() if isinstance(m, PeftModel)]


def export_module(
    module,
    out_dir: str | Path,
    *,
    family: str | None = None,
    class_path: str | None = None,
    init_args: dict[str, Any] | None = None,
    preprocess: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    name: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Write ``module`` as an export folder and (``verify``) check that it rebuilds.

    ``card`` holds the model card's inputs: ``metrics`` (evaluation JSON, see
    :func:`aligngemini.zoo.cards.eval_rows`), ``training_data``, ``intended_use``,
    ``limitations``, ``training_config`` (YAML text or a dict), ``citation``.
    """
    from aligngemini.zoo.cards import write_card

    out = _fresh_folder(Path(out_dir), overwrite)
    module.configure_model()
    class_path = class_path or class_path_of(module)
    if not class_path.startswith("aligngemini."):
        raise ExportFormatError(f"{class_path}: only models defined in the aligngemini package can be exported")
    if preprocess is None:
        preprocess = _preprocess_of_attached_data(module)
    model_preprocess = getattr(module, "preprocess", None)
    if model_preprocess is not None and "model" not in preprocess:
        preprocess = {**preprocess, "model": to_jsonable(model_preprocess, "preprocess.model")}
    state, mode = kept_state_dict(module)
    save_safetensors(state, out / WEIGHTS_FILE)
    for index, peft_model in enumerate(_peft_models(module)):
        adapter = out / (ADAPTER_DIR if index == 0 else f"{ADAPTER_DIR}_{index}")
        peft_model.save_pretrained(str(adapter), safe_serialization=True)
        (adapter / "README.md").unlink(missing_ok=True)  # PEFT's placeholder card; ours is at the root
    hparams = dict(module.hparams) if init_args is None else init_args
    config = {
        "format": FORMAT,
        "name": name or Path(out).name,
        "family": family or infer_family(class_path),
        "class_path": class_path,
        "init_args": to_jsonable(inference_init_args(hparams)),
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_of(out / WEIGHTS_FILE), "keys": mode},
        "preprocess": preprocess,
        "labels": ["real", "fake"],
        "threshold": float(getattr(module, "threshold", 0.5)),
        "card": to_jsonable(card or {}, "card"),
        "aligngemini_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    write_card(out)
    if verify:
        _verify_rebuild(module, out)
    return out


def _fresh_folder(out: Path, overwrite: bool) -> Path:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportExistsError(f"{out} is not empty; choose a new folder or pass overwrite (--overwrite)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _preprocess_of_attached_data(module) -> dict[str, Any]:
    try:
        datamodule = module.trainer.datamodule
    except (RuntimeError, AttributeError):
        datamodule = None
    if datamodule is None:
        return {"datamodule": None, "settings": {}}
    return preprocess_from_data(class_path_of(datamodule), dict(getattr(datamodule, "hparams", {})))


def _verify_rebuild(module, folder: Path) -> None:
    rebuilt = build_from_folder(folder)
    original = kept_state_dict(module)[0]
    restored = rebuilt.state_dict()
    for key, value in original.items():
        if key not in restored or not torch.equal(restored[key].cpu(), value.cpu()):
            raise ExportFormatError(f"{folder}: rebuilding from config.json did not restore {key}; "
                                    "the module's hparams do not describe how it was built")


def load_checkpoint(path: Path, trust_pickle: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint, unpickled with ``weights_only=True``; the only classes allowed
    beyond tensors and builtins are aligngemini's own (enums, dataclass settings)."""
    return read_checkpoint(path, trust=trust_pickle)


def export_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    *,
    class_path: str | None = None,
    training_config: str | Path | None = None,
    card: dict[str, Any] | None = None,
    trust_checkpoint: bool = False,
    **kwargs,
) -> Path:
    """Export a Lightning checkpoint written by ``aligngemini fit`` (or any DetectorModule)."""
    from aligngemini.zoo.rebuild import instantiate

    ckpt_path = Path(ckpt_path)
    checkpoint = load_checkpoint(ckpt_path, trust_pickle=trust_checkpoint)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = class_path or hparams.get("_class_path")
    if not class_path:
        raise ExportFormatError(f"{ckpt_path}: the checkpoint does not say which model wrote it; "
                                "pass --class-path aligngemini.lightning_modules.<family>.<Class>")
    module = instantiate(class_path, hparams)
    module.configure_model()
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    data_hparams = checkpoint.get("datamodule_hyper_parameters")
    preprocess = kwargs.pop("preprocess", None)
    if preprocess is None:
        preprocess = preprocess_from_data(data_hparams.get("_class_path") if data_hparams else None, data_hparams)
    card = dict(card or {})
    config_path = Path(training_config) if training_config else _find_saved_config(ckpt_path)
    if "training_config" not in card and config_path is not None:
        card["training_config"] = config_path.read_text(encoding="utf-8")
    return export_module(module, out_dir, class_path=class_path, init_args=hparams, preprocess=preprocess,
                         card=card, **kwargs)


def _find_saved_config(ckpt_path: Path) -> Path | None:
    """LightningCLI saves ``config.yaml`` in the logger's folder (``ROOT/lightning_logs/version_N``)
    or in ROOT; checkpoints live in ``ROOT/checkpoints``. The newest one under ROOT wins."""
    root = ckpt_path.resolve().parent.parent
    candidates = [root / "config.yaml", *root.glob("*/config.yaml"), *root.glob("*/version_*/config.yaml")]
    found = [c for c in candidates if c.is_file()]
    return max(found, key=lambda c: c.stat().st_mtime) if found else None


def export_detector(
    parts: dict[str, str],
    out_dir: str | Path,
    *,
    card: dict[str, Any] | None = None,
    name: str | None = None,
    overwrite: bool = False,
    catalog=None,
) -> Path:
    """A detector entry: no weights of its own, the zoo refs of its pixel / semantic / fusion parts."""
    from aligngemini.zoo.cards import write_card
    from aligngemini.zoo.catalog import CATALOG

    catalog = CATALOG if catalog is None else catalog
    for role, ref in parts.items():
        if role not in FAMILIES[:3]:
            raise ExportFormatError(f"detector part {role!r}: roles are pixel, semantic and fusion")
        spec = catalog.resolve(ref)
        if not hasattr(spec, "spec") or spec.spec.family != role:
            raise ExportFormatError(f"detector part {role}={ref}: must be a published {role} version in the zoo")
        parts = {**parts, role: spec.spec.ref}  # pinned: name@vX.Y.Z, whatever the user typed
    out = _fresh_folder(Path(out_dir), overwrite)
    config = {"format": FORMAT, "name": name or out.name, "family": "detector", "parts": parts,
              "card": to_jsonable(card or {}, "card"), "aligngemini_version": __version__}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    write_card(out)
    return out
