"""Read the settings a catalog entry records (base models, LoRA, quantisation, preprocessing)
out of an export's ``config.json``, whatever the branch calls them in its init arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aligngemini.zoo.specs import LoraSpec, ModelRef, PreprocessCfg, QuantSpec

BASE_MODEL_KEYS = ("backbone", "model_name", "base_model", "model_id", "model_name_or_path", "vlm",
                   "pretrained_model_name_or_path", "timm_name")
LORA_KEYS = {"rank": ("rank", "r", "lora_rank", "lora_r"), "alpha": ("alpha", "lora_alpha"),
             "dropout": ("dropout", "lora_dropout"),
             "target_modules": ("target_modules", "targets", "lora_targets", "lora_target_modules")}


def _flat(init_args: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"lora": {"rank": 8}}`` -> ``{"lora.rank": 8}`` (both spellings are looked up)."""
    flat: dict[str, Any] = {}
    for key, value in init_args.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "class_path" not in value:
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _is_local(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or Path(value).expanduser().exists()


def base_models_of(config: dict[str, Any]) -> list[ModelRef]:
    flat = _flat(config.get("init_args", {}))
    if flat.get("pretrained") is False:  # a randomly initialised backbone has no base model
        return []
    refs = []
    for key, value in flat.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf not in BASE_MODEL_KEYS or not isinstance(value, str) or not value or _is_local(value):
            continue
        stem = key[: -len(leaf)]
        revision = flat.get(f"{key}_revision") or flat.get(f"{stem}revision") or "main"
        repo_id = value if "/" in value else f"timm/{value}"  # timm names live under the timm org
        refs.append(ModelRef(repo_id.removeprefix("hf-hub:"), str(revision)))
    return refs


def lora_of(config: dict[str, Any]) -> LoraSpec | None:
    flat = _flat(config.get("init_args", {}))

    def find(names: tuple[str, ...]):
        for key, value in flat.items():
            leaf = key.rsplit(".", 1)[-1]
            if (leaf in names and ("lora" in key or leaf.startswith("lora"))) and value is not None:
                return value
        return None

    rank = find(LORA_KEYS["rank"])
    mode = flat.get("mode", flat.get("training_mode"))
    if not rank or (isinstance(mode, str) and "lora" not in mode):
        return None
    targets = find(LORA_KEYS["target_modules"]) or ()
    return LoraSpec(rank=int(rank), alpha=float(find(LORA_KEYS["alpha"]) or rank),
                    dropout=float(find(LORA_KEYS["dropout"]) or 0.0),
                    target_modules=tuple(targets) if isinstance(targets, (list, tuple)) else (str(targets),))


def quant_of(config: dict[str, Any]) -> QuantSpec | None:
    flat = {k.rsplit(".", 1)[-1]: v for k, v in _flat(config.get("init_args", {})).items()}
    bits = flat.get("bits") or flat.get("quant_bits") or (4 if flat.get("load_in_4bit") else None)
    if isinstance(flat.get("quantization"), str):
        bits = {"4bit": 4, "nf4": 4, "fp4": 4, "8bit": 8, "int8": 8}.get(flat["quantization"], bits)
    if not bits:
        return None
    return QuantSpec(bits=int(bits), quant_type=str(flat.get("quant_type", "nf4")),
                     double_quant=bool(flat.get("double_quant", flat.get("use_double_quant", True))),
                     compute_dtype=str(flat.get("compute_dtype", "bfloat16")),
                     skip_modules=tuple(flat.get("skip_modules") or flat.get("llm_int8_skip_modules") or ()))


def preprocess_of(config: dict[str, Any]) -> PreprocessCfg | None:
    preprocess = config.get("preprocess") or {}
    if not any(preprocess.get(key) for key in ("datamodule", "settings", "model")):
        return None
    return PreprocessCfg(datamodule=preprocess.get("datamodule"), settings=dict(preprocess.get("settings") or {}),
                         model=dict(preprocess.get("model") or {}))
