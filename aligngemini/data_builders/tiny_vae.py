"""A tiny ``AutoencoderKL``, trained in seconds on photo crops, for offline demos and tests.

No Hub weights can be fetched offline, and a random VAE outputs noise, not a
reconstruction. A few hundred steps on random crops of real photos give an
autoencoder with Stable Diffusion's building blocks (KL posterior, 4 latent channels,
the same ResNet up/down blocks) whose reconstructions look like the photo but carry
its decoder's artifacts: the same kind of supervision as SD's VAE, at toy scale.
The default compresses 2x per side, not SD's 8x: at 8x a toy model needs far more
than a CPU minute of training to look like the photo (measured: ~15 dB vs ~23 dB).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aligngemini.errors import require


@dataclass(frozen=True)
class TinyVAEConfig:
    block_out_channels: tuple[int, ...] = (16, 32)  # n levels downsample 2**(n-1)x; SD has 4 (8x)
    latent_channels: int = 4
    layers_per_block: int = 1
    norm_num_groups: int = 8
    mid_block_add_attention: bool = False  # fully convolutional: any image size, linear cost
    initial_logvar: float = -8.0


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 600
    batch_size: int = 8
    crop: int = 32
    lr: float = 2e-3
    kl_weight: float = 1e-6  # SD's VAE weight: the posterior stays close to a point estimate
    seed: int = 0
    # Toy-sized convolutions gain nothing from more threads, and on a busy CPU the
    # threads' barriers cost ~40x (measured): one thread is both fast and robust.
    threads: int = 1


def build_tiny_vae(config: TinyVAEConfig = TinyVAEConfig(), seed: int = 0):
    diffusers = require("diffusers", "vae", "the tiny VAE")
    torch.manual_seed(seed)
    levels = len(config.block_out_channels)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(config.block_out_channels),
        latent_channels=config.latent_channels,
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        mid_block_add_attention=config.mid_block_add_attention,
    )
    # Start with a narrow posterior (std ~0.02, as in trained SD VAEs): at the default
    # std 1 the decoder sees mostly noise and a few hundred steps teach it little.
    last = vae.quant_conv if vae.quant_conv is not None else vae.encoder.conv_out
    with torch.no_grad():
        last.bias[config.latent_channels :] = config.initial_logvar
    return vae


def is_colour(image: Image.Image) -> bool:
    """False for greyscale photos stored as RGB: they would teach the VAE to drop colour."""
    array = np.asarray(image.convert("RGB"), dtype=np.int16)
    return bool(np.abs(array - array.mean(axis=2, keepdims=True)).max() > 8)


def photo_arrays(images: Iterable[Image.Image]) -> list[np.ndarray]:
    """RGB photos as float32 arrays in [-1, 1], (H, W, 3)."""
    return [np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0 for image in images]


def random_crops(photos: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        height, width, _ = photo.shape
        top, left = rng.integers(height - size + 1), rng.integers(width - size + 1)
        crop = photo[top : top + size, left : left + size]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops))).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def reconstruction_psnr(vae, batch: torch.Tensor) -> float:
    """PSNR (dB) of the posterior-mean reconstruction of a [-1, 1] batch."""
    vae.eval()
    output = vae(batch, sample_posterior=False).sample.clamp(-1, 1)
    mse = float(((output - batch) ** 2).mean()) / 4.0  # on the [0, 1] scale
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def train_tiny_vae(vae, photos: list[np.ndarray], settings: TrainSettings = TrainSettings()) -> list[float]:
    """Train on random crops (L1 + KL, AdamW, cosine decay); returns the loss of every step."""
    if not photos or min(min(p.shape[:2]) for p in photos) < settings.crop:
        raise ValueError(f"training needs photos at least {settings.crop} px on each side")
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps, eta_min=settings.lr * 0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads or threads)
    vae.train()
    losses = []
    try:
        for _ in range(settings.steps):
            batch = random_crops(photos, settings.batch_size, settings.crop, rng)
            posterior = vae.encode(batch).latent_dist
            output = vae.decode(posterior.sample()).sample
            loss = (output - batch).abs().mean() + settings.kl_weight * posterior.kl().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(threads)
        vae.eval()
    return losses


def make_tiny_vae(out_dir: str | Path, config: TinyVAEConfig = TinyVAEConfig(),
                  settings: TrainSettings = TrainSettings(), photos: list[Image.Image] | None = None) -> dict:
    """Build, train and save (safetensors) a tiny VAE; returns the training summary.

    ``photos`` default to the colour photos bundled with scikit-image. The summary,
    also saved as ``training.json``, holds the PSNR on 16 random 64 px crops before and after.
    """
    if photos is None:
        from aligngemini.demo.photos import skimage_photos

        photos = [image for _, image in skimage_photos() if is_colour(image)]
    arrays = photo_arrays(photos)
    eval_crops = random_crops(arrays, 16, 64, np.random.default_rng(settings.seed + 1))
    vae = build_tiny_vae(config, settings.seed)
    psnr_before = reconstruction_psnr(vae, eval_crops)
    start = time.perf_counter()
    losses = train_tiny_vae(vae, arrays, settings)
    summary = {
        "config": asdict(config),
        "training": asdict(settings),
        "seconds": round(time.perf_counter() - start, 1),
        "first_loss": losses[0],
        "last_loss": float(np.mean(losses[-10:])),
        "psnr_before_db": round(psnr_before, 2),
        "psnr_after_db": round(reconstruction_psnr(vae, eval_crops), 2),
    }
    out = Path(out_dir)
    vae.save_pretrained(out, safe_serialization=True)
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
