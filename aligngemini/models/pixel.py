"""The pixel-artifact detector as a pure ``nn.Module``: timm backbone (+ LoRA) + one logit.

Input is a float image batch in [0, 1] at the crop size; the module normalises with
its backbone's own pretrained mean/std, which it keeps as data (``preprocess``) so
that exported weights rebuild the same preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from aligngemini.errors import ConfigError

TrainingMode = Literal["lora", "linear", "full"]
# DDA's pixel expert: LoRA on attention qkv/proj and MLP fc1/fc2 of every ViT block.
VIT_LORA_TARGETS = r".*blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"


@dataclass(frozen=True)
class PixelPreprocess:
    """What a caller must do to an image before ``forward``: crop (never resize) to
    ``crop_size``; the module itself applies ``mean``/``std``."""

    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: float = 1.0
    dropout: float = 0.0
    targets: str | list[str] = VIT_LORA_TARGETS


def create_backbone(name: str, pretrained: bool, crop_size: int, revision: str | None = None,
                    **overrides: Any) -> nn.Module:
    """A timm backbone without its classifier; ``revision`` pins the Hub commit of its weights."""
    import timm

    if revision is not None:
        if not pretrained:
            raise ConfigError(f"backbone revision {revision!r} is set but pretrained is false: nothing to pin")
        hub_id = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None)
        if not hub_id:
            raise ConfigError(f"timm backbone {name!r} has no Hugging Face Hub weights whose revision could be pinned")
        overrides["pretrained_cfg_overlay"] = {"hf_hub_id": f"{hub_id.split('@')[0]}@{revision}"}
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, img_size=crop_size, **overrides)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **overrides)  # CNNs take any size
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ConfigError(f"unknown timm backbone {name!r}; see timm.list_models()") from None
        raise


def add_lora(module: nn.Module, settings: LoraSettings) -> nn.Module:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=settings.targets)
    try:
        return inject_adapter_in_model(config, module)
    except ValueError as err:
        raise ValueError(f"LoRA targets {settings.targets!r} match no layer of the backbone ({err})") from None


class PixelDetector(nn.Module):
    def __init__(
        self,
        backbone: str,
        pretrained: bool = True,
        crop_size: int = 224,
        mode: TrainingMode = "lora",
        lora: LoraSettings = LoraSettings(),
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_revision: str | None = None,
    ):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained, crop_size, backbone_revision, **(backbone_kwargs or {}))
        cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        self.preprocess = PixelPreprocess(
            crop_size=crop_size,
            mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        )
        self.register_buffer("mean", torch.tensor(self.preprocess.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.preprocess.std).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Linear(self.backbone.num_features, 1)
        self._set_mode(mode, lora)

    def _set_mode(self, mode: TrainingMode, lora: LoraSettings) -> None:
        if mode not in ("lora", "linear", "full"):
            raise ValueError(f"training mode must be lora, linear or full, got {mode!r}")
        if mode == "full":
            return
        self.backbone.requires_grad_(False)
        if mode == "lora":
            self.backbone = add_lora(self.backbone, lora)
            for name, param in self.backbone.named_parameters():
                param.requires_grad = "lora_" in name

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images - self.mean) / self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B,) logits (positive = fake)."""
        return self.head(self.features(images)).squeeze(-1)
