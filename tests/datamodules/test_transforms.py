import random

import numpy as np
import pytest
import torch
from PIL import Image

from aligngemini.datamodules.transforms import (
    PairParams,
    PixelAugmentConfig,
    ScrambleConfig,
    apply_pair_params,
    eval_crop,
    sample_pair_params,
    to_tensor,
)


def _noise(size=(80, 60), seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_crop_never_resizes_pixels():
    image = _noise()
    (crop,) = apply_pair_params([image], PairParams(crop_unit=(0.0, 1.0)), crop_size=32)
    original = to_tensor(image)
    assert torch.equal(crop, original[:, 0:32, 80 - 32 : 80])


def test_small_image_is_padded_not_scaled():
    image = _noise((20, 10))
    crop = eval_crop(image, 32)
    assert crop.shape == (3, 32, 32)
    assert torch.equal(crop[:, :10, :20], to_tensor(image))  # untouched, on the original grid
    assert crop[:, 10:].abs().sum() == 0 and crop[:, :, 20:].abs().sum() == 0


def test_pair_gets_identical_augmentation():
    config = PixelAugmentConfig(flip_prob=1.0, jpeg_prob=1.0, blur_prob=1.0, resize_prob=1.0)
    params = sample_pair_params(config, random.Random(0))
    image = _noise()
    a, b = apply_pair_params([image, image.copy()], params, crop_size=24)
    assert torch.equal(a, b)
    assert params.jpeg_quality is not None and 55 <= params.jpeg_quality <= 100


def test_pair_of_unequal_sizes_stays_aligned():
    photo = _noise((83, 70))
    recon = photo.crop((0, 0, 80, 64))  # reconstruction cropped top-left to a multiple of 8
    for seed in range(5):
        params = sample_pair_params(PixelAugmentConfig.disabled(), random.Random(seed))
        a, b = apply_pair_params([photo, recon], params, crop_size=32)
        assert torch.equal(a, b)


def test_config_round_trips_as_plain_data_and_rejects_typos():
    config = PixelAugmentConfig(jpeg_quality=(70, 90))
    assert PixelAugmentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="jpeg_qualty"):
        PixelAugmentConfig.from_dict({"jpeg_qualty": [1, 2]})
    with pytest.raises(ValueError, match="jpeg_quality"):
        PixelAugmentConfig(jpeg_quality=(90, 50))


def test_scramble_destroys_high_frequencies_but_keeps_content():
    image = _noise((64, 64))
    out = ScrambleConfig().apply(image, random.Random(0))
    assert out.size == image.size
    diff = np.abs(np.asarray(out, np.float32) - np.asarray(image, np.float32)).mean()
    assert diff > 30  # pixel noise pattern wiped out
    smooth = Image.new("RGB", (64, 64), (120, 60, 200))
    kept = np.asarray(ScrambleConfig(noise_std=0).apply(smooth, random.Random(0)), np.float32)
    assert np.abs(kept - np.array([120, 60, 200])).max() < 6
