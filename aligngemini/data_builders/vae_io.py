"""Load a diffusers ``AutoencoderKL`` safely and run it on image tensors.

Weights load from safetensors only; offline, a model that is not cached locally
fails with a message that says what to do instead of a stack of hub retries.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aligngemini.errors import AlignGeminiError, require

DEFAULT_VAE = "stabilityai/stable-diffusion-2-1"
DEFAULT_SUBFOLDER = "vae"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class VAELoadError(AlignGeminiError):
    """The VAE named on the command line cannot be loaded; the message says why."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_vae(name_or_path: str, subfolder: str | None = DEFAULT_SUBFOLDER, revision: str | None = None,
             device: str = "auto", dtype: str = "float32"):
    """``AutoencoderKL`` from a Hub id or a local folder (with or without the ``subfolder``)."""
    diffusers = require("diffusers", "vae", "building VAE reconstructions")
    if dtype not in DTYPES:
        raise VAELoadError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    local = Path(name_or_path).expanduser()
    if local.is_dir() and subfolder and not (local / subfolder).is_dir() and (local / "config.json").is_file():
        subfolder = None  # a folder holding the VAE itself, e.g. the output of `data tiny-vae`
    try:
        vae = diffusers.AutoencoderKL.from_pretrained(
            str(local) if local.is_dir() else name_or_path,
            subfolder=subfolder or None,
            revision=revision,
            use_safetensors=True,
            torch_dtype=DTYPES[dtype],
        )
    except (OSError, ValueError) as err:
        where = f"{name_or_path!r}" + (f" (subfolder {subfolder!r})" if subfolder else "")
        hint = ""
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"} and not local.exists():
            hint = (" HF_HUB_OFFLINE=1 is set and it is not in the local Hugging Face cache: download it "
                    "once with network access, or pass a local folder (e.g. one written by "
                    "`aligngemini data tiny-vae`).")
        raise VAELoadError(
            f"cannot load an AutoencoderKL with safetensors weights from {where}: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}.{hint}"
        ) from err
    return vae.to(resolve_device(device)).eval()


def spatial_factor(vae) -> int:
    """Pixels per latent cell: 8 for the Stable Diffusion VAEs."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images of one size -> float tensor in [-1, 1], shape (N, 3, H, W)."""
    array = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).div_(127.5).sub_(1.0)


def to_images(batch: torch.Tensor) -> list[Image.Image]:
    array = ((batch.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a) for a in array.permute(0, 2, 3, 1).cpu().numpy()]


@torch.inference_mode()
def reconstruct_tensor(vae, batch: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """Encode, draw one posterior sample per image (seeded per image), decode.

    Each image's noise comes from its own generator, so a result does not depend on
    which other images shared its batch (a resumed run reproduces the same pixels).
    """
    parameter = next(vae.parameters())
    posterior = vae.encode(batch.to(parameter.device, parameter.dtype)).latent_dist
    noise = torch.stack([
        torch.randn(posterior.mean.shape[1:], generator=torch.Generator().manual_seed(seed))
        for seed in seeds
    ]).to(posterior.mean.device, posterior.mean.dtype)
    latents = posterior.mean + posterior.std * noise
    return vae.decode(latents).sample


def reconstruct_tiled(vae, image: torch.Tensor, seed: int, tile: int) -> torch.Tensor:
    """Reconstruct one (1, 3, H, W) image in independent ``tile`` x ``tile`` pieces.

    Memory stays bounded by the tile; seams at tile borders are the price (each piece
    is a faithful reconstruction of its own pixels, so the pair stays aligned).
    """
    out = torch.empty_like(image)
    _, _, height, width = image.shape
    k = 0
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            piece = image[:, :, top : top + tile, left : left + tile]
            out[:, :, top : top + tile, left : left + tile] = reconstruct_tensor(vae, piece, [seed + k]).cpu()
            k += 1
    return out
