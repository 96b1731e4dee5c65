"""Artifact-preserving image operations, configured by plain data.

Pixel artifacts live in the exact pixel grid, so nothing here resizes unless a
config asks for it: crops are padded, never scaled. Every config is a frozen
dataclass that round-trips through ``asdict``/``from_dict`` and is saved with the
weights; random choices are drawn once per *pair* so that a real photo and its
reconstruction get identical treatment.
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=float(sigma))) if sigma > 0 else image


def resize_by(image: Image.Image, factor: float, resample: int = Image.BICUBIC) -> Image.Image:
    width, height = image.size
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return image.resize(size, resample) if size != image.size else image


def down_up(image: Image.Image, factor: float) -> Image.Image:
    """Downscale by ``factor`` and back to the original size: wipes high-frequency artifacts."""
    return resize_by(image, factor, Image.BILINEAR).resize(image.size, Image.BICUBIC)


def add_gaussian_noise(image: Image.Image, std: float, rng: np.random.Generator) -> Image.Image:
    if std <= 0:
        return image
    array = np.asarray(image, dtype=np.float32)
    noisy = array + rng.normal(0.0, std * 255.0, size=array.shape)
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))


def pad_to(image: Image.Image, size: int) -> Image.Image:
    """Pad right/bottom with black so that both sides are at least ``size``; pixels never move."""
    width, height = image.size
    if width >= size and height >= size:
        return image
    canvas = Image.new("RGB", (max(width, size), max(height, size)))
    canvas.paste(image, (0, 0))
    return canvas


def crop_at(image: Image.Image, top: int, left: int, size: int) -> Image.Image:
    return pad_to(image, size).crop((left, top, left + size, top + size))


def center_crop(image: Image.Image, size: int) -> Image.Image:
    image = pad_to(image, size)
    width, height = image.size
    return crop_at(image, (height - size) // 2, (width - size) // 2, size)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class ConfigMixin:
    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class PixelAugmentConfig(ConfigMixin):
    """Training augmentation for the pixel branch (DDA recipe); probabilities per pair."""

    flip_prob: float = 0.5
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (55, 100)
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 3.0)
    resize_prob: float = 0.2
    resize_scale: tuple[float, float] = (0.5, 1.5)

    def __post_init__(self):
        for name in ("flip_prob", "jpeg_prob", "blur_prob", "resize_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PixelAugmentConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"PixelAugmentConfig.jpeg_quality must be 1 <= low <= high <= 100, got {self.jpeg_quality}")

    @classmethod
    def disabled(cls) -> PixelAugmentConfig:
        return cls(flip_prob=0.0, jpeg_prob=0.0, blur_prob=0.0, resize_prob=0.0)


@dataclass(frozen=True)
class PairParams:
    """One draw of the random choices, applied identically to every image of a pair."""

    resize: float | None = None
    blur: float | None = None
    jpeg_quality: int | None = None
    flip: bool = False
    crop_unit: tuple[float, float] = (0.5, 0.5)  # crop position as a fraction of the free range


def sample_pair_params(config: PixelAugmentConfig, rng: random.Random) -> PairParams:
    return PairParams(
        resize=rng.uniform(*config.resize_scale) if rng.random() < config.resize_prob else None,
        blur=rng.uniform(*config.blur_sigma) if rng.random() < config.blur_prob else None,
        jpeg_quality=rng.randint(*config.jpeg_quality) if rng.random() < config.jpeg_prob else None,
        flip=rng.random() < config.flip_prob,
        crop_unit=(rng.random(), rng.random()),
    )


def apply_pair_params(images: list[Image.Image], params: PairParams, crop_size: int) -> list[torch.Tensor]:
    """Resize -> blur -> JPEG -> pad + crop -> flip, identically for every image.

    The crop offset is chosen on the smallest image's grid, so a photo and its
    reconstruction (cropped top-left to a multiple of 8) stay pixel-aligned.
    """
    if params.resize is not None:
        images = [resize_by(im, params.resize) for im in images]
    if params.blur is not None:
        images = [gaussian_blur(im, params.blur) for im in images]
    if params.jpeg_quality is not None:
        images = [jpeg(im, params.jpeg_quality) for im in images]
    width = min(im.size[0] for im in images)
    height = min(im.size[1] for im in images)
    top = int(params.crop_unit[0] * max(height - crop_size, 0) + 0.5)
    left = int(params.crop_unit[1] * max(width - crop_size, 0) + 0.5)
    crops = [crop_at(im, top, left, crop_size) for im in images]
    if params.flip:
        crops = [im.transpose(Image.FLIP_LEFT_RIGHT) for im in crops]
    return [to_tensor(im) for im in crops]


def eval_crop(image: Image.Image, crop_size: int) -> torch.Tensor:
    return to_tensor(center_crop(image, crop_size))


@dataclass(frozen=True)
class ScrambleConfig(ConfigMixin):
    """Semantic view: destroy pixel evidence so only content can be learned.

    Down/up-resize by a factor in ``down_factor``, JPEG at a quality in ``jpeg_quality``,
    additive Gaussian noise with std ``noise_std`` (fraction of the 0-255 range).
    """

    enabled: bool = True
    down_factor: tuple[float, float] = (0.25, 0.5)
    jpeg_quality: tuple[int, int] = (30, 70)
    noise_std: float = 0.01

    def apply(self, image: Image.Image, rng: random.Random) -> Image.Image:
        if not self.enabled:
            return image
        image = down_up(image, rng.uniform(*self.down_factor))
        image = jpeg(image, rng.randint(*self.jpeg_quality))
        return add_gaussian_noise(image, self.noise_std, np.random.default_rng(rng.getrandbits(32)))


@dataclass(frozen=True)
class Perturbation(ConfigMixin):
    """A named post-processing for robustness sweeps: jpeg, double_jpeg, blur, resize, double_resize."""

    kind: str
    strength: float

    KINDS = ("none", "jpeg", "double_jpeg", "blur", "resize", "double_resize")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown perturbation {self.kind!r}; choose from {self.KINDS}")

    def apply(self, image: Image.Image) -> Image.Image:
        s = self.strength
        if self.kind == "jpeg":
            return jpeg(image, int(s))
        if self.kind == "double_jpeg":  # second pass at a fixed 95, as social media re-encodes
            return jpeg(jpeg(image, int(s)), 95)
        if self.kind == "blur":
            return gaussian_blur(image, s)
        if self.kind == "resize":
            return resize_by(image, s)
        if self.kind == "double_resize":
            return resize_by(resize_by(image, s), 1.0 / s)
        return image

    @property
    def name(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}@{self.strength:g}"
