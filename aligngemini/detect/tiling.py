"""Whole-image pixel evidence: tile, score every crop, aggregate, and draw a heatmap.

The pixel branch never resizes (resizing wipes the very artifacts it looks for), so it
sees ``crop_size`` pixels at a time. Scoring only the centre crop of a 4000 px photo
ignores almost all of it; here the image is covered by a grid of crops (edge tiles are
shifted inwards, an image smaller than a crop is padded as in training) and the tile
logits are aggregated. ``max_tiles`` bounds the work per image: a larger grid is thinned
to evenly spread rows and columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from aligngemini.datamodules.transforms import ConfigMixin, crop_at, to_tensor

Aggregate = Literal["max", "mean", "topk"]


@dataclass(frozen=True)
class TilingConfig(ConfigMixin):
    """How a large image becomes pixel evidence.

    aggregate: ``mean`` (default: keeps the scale of one crop's logit, which the branch's
        0.5 threshold and a fusion head fitted on ``predict`` scores assume, with less noise),
        ``max`` (one fake patch is enough: for local edits and inpainting, but the max of many
        noisy tiles raises false positives) or ``topk`` (mean of the ``top_k`` highest tiles).
    max_tiles: at most this many crops per image; 1 scores the centre crop only.
    """

    aggregate: Aggregate = "mean"
    top_k: int = 3
    max_tiles: int = 16

    def __post_init__(self):
        if self.aggregate not in ("max", "mean", "topk"):
            raise ValueError(f"tiling: aggregate must be max, mean or topk, got {self.aggregate!r}")
        if self.top_k < 1 or self.max_tiles < 1:
            raise ValueError("tiling: top_k and max_tiles must be at least 1")


def _axis_offsets(length: int, crop: int, count: int) -> list[int]:
    if length <= crop or count == 1:
        return [max((length - crop) // 2, 0)]
    return [round(i * (length - crop) / (count - 1)) for i in range(count)]


def tile_grid(width: int, height: int, crop: int, max_tiles: int) -> tuple[list[int], list[int]]:
    """(top offsets, left offsets) of a grid of crops covering the image.

    Full coverage needs ceil(side / crop) crops per axis; when rows x cols exceeds
    ``max_tiles``, both axes shrink by the same factor (at least one each).
    """
    rows, cols = max(1, math.ceil(height / crop)), max(1, math.ceil(width / crop))
    if rows * cols > max_tiles:
        shrink = math.sqrt(max_tiles / (rows * cols))
        rows, cols = max(1, int(rows * shrink)), max(1, int(cols * shrink))
        while rows * cols > max_tiles:
            rows, cols = (rows - 1, cols) if rows >= cols else (rows, cols - 1)
    return _axis_offsets(height, crop, rows), _axis_offsets(width, crop, cols)


@dataclass
class ImageTiles:
    tiles: torch.Tensor  # (N, 3, crop, crop) float in [0, 1]
    tops: list[int]
    lefts: list[int]
    crop: int
    size: tuple[int, int]  # (width, height) of the image

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.tops), len(self.lefts)


def image_tiles(image: Image.Image, crop: int, max_tiles: int) -> ImageTiles:
    tops, lefts = tile_grid(image.width, image.height, crop, max_tiles)
    tiles = torch.stack([to_tensor(crop_at(image, top, left, crop)) for top in tops for left in lefts])
    return ImageTiles(tiles, tops, lefts, crop, image.size)


def aggregate_logits(logits: torch.Tensor, config: TilingConfig) -> torch.Tensor:
    """One logit from the tile logits of one image."""
    if config.aggregate == "max":
        return logits.max()
    if config.aggregate == "mean":
        return logits.mean()
    return logits.topk(min(config.top_k, logits.numel())).values.mean()


def _colour(probability: float) -> tuple[int, int, int]:
    """Blue (real) -> white (0.5) -> red (fake)."""
    p = min(max(probability, 0.0), 1.0)
    if p < 0.5:
        t = p / 0.5
        return int(40 + 215 * t), int(90 + 165 * t), 255
    t = (p - 0.5) / 0.5
    return 255, int(255 - 215 * t), int(255 - 215 * t)


def tile_heatmap(image: Image.Image, tiles: ImageTiles, tile_probs: torch.Tensor, max_side: int = 1024,
                 opacity: float = 0.45) -> Image.Image:
    """The image with each tile tinted by its fake probability (where tiles overlap, the
    later one wins) and outlined; scaled to at most ``max_side``."""
    from PIL import ImageDraw

    overlay = Image.new("RGB", image.size, (128, 128, 128))
    mask = Image.new("L", image.size, 0)
    draw, mask_draw = ImageDraw.Draw(overlay), ImageDraw.Draw(mask)
    probs = tile_probs.detach().float().reshape(tiles.shape).tolist()
    for r, top in enumerate(tiles.tops):
        for c, left in enumerate(tiles.lefts):
            box = (left, top, left + tiles.crop - 1, top + tiles.crop - 1)
            draw.rectangle(box, fill=_colour(probs[r][c]), outline=(0, 0, 0))
            mask_draw.rectangle(box, fill=int(255 * opacity))
    out = Image.composite(overlay, image.convert("RGB"), mask)
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.BILINEAR)
    return out


def tile_probability_grid(tiles: ImageTiles, tile_logits: torch.Tensor) -> np.ndarray:
    """(rows, cols) tile probabilities, for callers that draw their own plots."""
    return torch.sigmoid(tile_logits.detach().float()).reshape(tiles.shape).numpy()
