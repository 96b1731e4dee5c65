"""The tiny trainable VAE, and the demo flow: train it, then reconstruct photos with it."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from aligngemini.cli import main
from aligngemini.data_builders.tiny_vae import (
    TinyVAEConfig, TrainSettings, build_tiny_vae, is_colour, photo_arrays, random_crops, reconstruction_psnr, train_tiny_vae,
)
from aligngemini.datamodules.records import load_records
from aligngemini.demo.photos import skimage_photos



def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_training_on_photo_crops_reduces_reconstruction_error():
    photos = photo_arrays(image for _, image in skimage_photos() if is_colour(image))
    crops = random_crops(photos, 8, 48, np.random.default_rng(123))
    vae = build_tiny_vae(TinyVAEConfig(block_out_channels=(8, 16), norm_num_groups=4), seed=0)
    before = reconstruction_psnr(vae, crops)
    losses = train_tiny_vae(vae, photos, TrainSettings(steps=60, batch_size=4, crop=32, lr=3e-3))
    after = reconstruction_psnr(vae, crops)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    print(f"PSNR {before:.2f} -> {after:.2f} dB")
    assert after > before + 3.0, (before, after)


def test_cli_trains_a_tiny_vae_and_reconstructs_photos_with_it(photo_dir, tmp_path):
    vae_dir = tmp_path / "vae"
    assert main(["data", "tiny-vae", str(vae_dir), "--steps", "80", "--batch_size", "4", "--lr", "0.003",
                 "--block_out_channels", "[8, 16]"]) == 0
    assert (vae_dir / "diffusion_pytorch_model.safetensors").is_file()
    summary = json.loads((vae_dir / "training.json").read_text())
    assert summary["psnr_after_db"] > summary["psnr_before_db"]

    out = tmp_path / "pairs"
    assert main(["data", "reconstruct", str(photo_dir), str(out), "--vae", str(vae_dir), "--device", "cpu",
                 "--write_real", "true", "--progress", "false"]) == 0
    records = load_records(out / "pairs.jsonl")
    reals = {r.pair_id: r.path for r in records if r.label == 0}
    correlations = []
    for record in (r for r in records if r.label == 1):
        with Image.open(record.path) as fake, Image.open(reals[record.pair_id]) as real:
            assert fake.size == real.size
            f, r = (np.asarray(x.convert("L"), dtype=np.float64) for x in (fake, real))
        correlations.append(correlation(f, r))
    # even after 80 steps the reconstructions look like their photos
    assert np.median(correlations) > 0.6, correlations
