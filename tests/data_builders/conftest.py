"""Fixtures for the supervision builders: a tiny AutoencoderKL and folders of real photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from aligngemini.data_builders.tiny_vae import TinyVAEConfig, build_tiny_vae
from aligngemini.demo.photos import photo_tiles

# 4 levels: the 8x spatial compression of Stable Diffusion's VAE, at toy width.
TINY = TinyVAEConfig(block_out_channels=(8, 16, 16, 16), latent_channels=4, norm_num_groups=4)


@pytest.fixture(autouse=True)
def one_thread():
    """Toy convolutions run fastest on one thread, and stall badly with two on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory) -> Path:
    """A random tiny VAE saved with save_pretrained (safetensors), loadable by path."""
    out = tmp_path_factory.mktemp("tiny_vae")
    build_tiny_vae(TINY, seed=0).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture()
def tiny_vae():
    return build_tiny_vae(TINY, seed=0).eval()


def make_photo_folder(root: Path) -> dict[str, Path]:
    """Real photo crops in a plain folder (no labels): same-size tiles, odd sizes, a JPEG, a broken file."""
    tiles = list(photo_tiles(64, 1, seed=0, wallpapers=False))
    paths = {}
    for i, (name, image) in enumerate(tiles[:5]):  # five 48x48 tiles: batched together
        paths[name] = root / "same" / f"{name}.png"
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        image.crop((0, 0, 48, 48)).save(paths[name])
    odd_name, odd = tiles[5]
    paths["odd"] = root / "odd" / "odd_size.png"
    paths["odd"].parent.mkdir(parents=True, exist_ok=True)
    odd.crop((0, 0, 61, 43)).save(paths["odd"])  # cropped to 56x40
    paths["jpeg"] = root / "odd" / "photo.jpg"
    tiles[6][1].crop((0, 0, 37, 50)).save(paths["jpeg"], quality=90)  # cropped to 32x48
    paths["broken"] = root / "broken.png"
    paths["broken"].write_bytes(b"this is not an image")
    return paths


@pytest.fixture()
def photo_dir(tmp_path) -> Path:
    make_photo_folder(tmp_path / "photos")
    return tmp_path / "photos"

