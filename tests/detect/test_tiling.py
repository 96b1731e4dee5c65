"""Whole-image pixel evidence: the grid covers the image, aggregation finds a local artifact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aligngemini.demo.photos import skimage_photos
from aligngemini.detect.branches import PixelScorer
from aligngemini.detect.tiling import TilingConfig, aggregate_logits, image_tiles, tile_grid, tile_heatmap


@pytest.mark.parametrize("size", [(500, 300), (56, 56), (57, 200), (20, 30)])
def test_grid_covers_every_pixel_when_allowed(size):
    width, height = size
    tops, lefts = tile_grid(width, height, 56, max_tiles=100)
    covered = np.zeros((max(height, 56), max(width, 56)), bool)
    for top in tops:
        for left in lefts:
            covered[top : top + 56, left : left + 56] = True
    assert covered[:height, :width].all()
    assert all(0 <= t <= max(height - 56, 0) for t in tops) and all(0 <= x <= max(width - 56, 0) for x in lefts)


def test_max_tiles_bounds_the_grid_and_one_tile_is_the_centre_crop():
    tops, lefts = tile_grid(4000, 3000, 224, max_tiles=16)
    assert len(tops) * len(lefts) <= 16 and len(tops) >= 3 and len(lefts) >= 3
    assert tile_grid(4000, 3000, 224, max_tiles=1) == ([(3000 - 224) // 2], [(4000 - 224) // 2])


def test_aggregates():
    logits = torch.tensor([-3.0, 1.0, 2.0, 4.0])
    assert aggregate_logits(logits, TilingConfig("max")) == 4.0
    assert aggregate_logits(logits, TilingConfig("mean")) == 1.0
    assert aggregate_logits(logits, TilingConfig("topk", top_k=2)) == 3.0
    with pytest.raises(ValueError, match="aggregate"):
        TilingConfig("median")


class BlockinessBranch(torch.nn.Module):
    """A transparent stand-in pixel branch: the logit rises with the share of 2x2 pixel
    blocks that are exactly flat, the trace nearest-neighbour upsampling leaves."""

    class preprocess:  # noqa: N801 - mirrors PixelBranch.preprocess
        crop_size = 56

    def score_images(self, images: torch.Tensor) -> torch.Tensor:
        blocks = images.unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)  # (B, 3, H/2, W/2, 4)
        flat = (blocks.amax(-1) - blocks.amin(-1) < 1e-6).float().mean(dim=(1, 2, 3))
        return 20 * (flat - 0.5)


def test_tiling_finds_an_artifact_the_centre_crop_misses():
    photo = dict(skimage_photos())["astronaut"].crop((0, 0, 448, 448))
    corner = photo.crop((0, 0, 112, 112))
    corner = corner.resize((56, 56), Image.BILINEAR).resize((112, 112), Image.NEAREST)
    photo.paste(corner, (0, 0))
    branch = BlockinessBranch()
    centre = PixelScorer(branch, TilingConfig(max_tiles=1))([photo])[0]
    tiled_max = PixelScorer(branch, TilingConfig("max", max_tiles=64))([photo])[0]
    tiled_mean = PixelScorer(branch, TilingConfig("mean", max_tiles=64))([photo])[0]
    assert centre.logit < 0 < tiled_max.logit
    assert tiled_mean.logit < tiled_max.logit
    assert len(tiled_max.tile_logits) == 64 and int(tiled_max.tile_logits.argmax()) == 0  # top-left tile
    heatmap = tile_heatmap(photo, tiled_max.tiles, torch.sigmoid(tiled_max.tile_logits))
    assert heatmap.size == photo.size
    red, blue = np.asarray(heatmap)[10, 10], np.asarray(heatmap)[300, 300]
    assert red[0] > red[2] and blue[2] > blue[0]  # the artifact tile is tinted red, a clean one blue


def test_small_image_is_padded_not_resized():
    tiles = image_tiles(Image.new("RGB", (20, 30), (255, 0, 0)), 56, 16)
    assert tiles.tiles.shape == (1, 3, 56, 56)
    assert tiles.tiles[0, 0, :30, :20].eq(1).all() and tiles.tiles[0, 0, 30:, :].eq(0).all()
