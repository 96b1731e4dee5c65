"""Real photos that ship inside installed packages: the only real data available offline.

scikit-image bundles a dozen photographs; Debian's wallpaper packages
(``lomiri-wallpapers-16.04``, ``mate-backgrounds``) add large ones when installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "camera", "coins", "moon", "brick", "grass", "gravel", "cell", "stereo_motorcycle",
)
WALLPAPER_DIRS = ("/usr/share/backgrounds", "/usr/share/lomiri/wallpapers")


def skimage_photos() -> Iterator[tuple[str, Image.Image]]:
    try:
        import skimage.data
    except ImportError as err:
        raise ImportError("the demo photos need scikit-image: pip install 'aligngemini[dev]'") from err
    for name in SKIMAGE_PHOTOS:
        array = getattr(skimage.data, name)()
        if isinstance(array, tuple):  # stereo pairs: the left view
            array = array[0]
        array = np.asarray(array)
        if array.dtype != np.uint8:
            array = (array.astype(np.float64) / max(float(array.max()), 1.0) * 255).astype(np.uint8)
        yield name, Image.fromarray(array).convert("RGB")


def wallpaper_photos(limit: int = 20) -> Iterator[tuple[str, Image.Image]]:
    found = 0
    for folder in WALLPAPER_DIRS:
        for path in sorted(Path(folder).rglob("*")) if Path(folder).is_dir() else []:
            if path.suffix.lower() in {".jpg", ".jpeg", ".png"} and found < limit:
                with Image.open(path) as image:
                    image = image.convert("RGB")
                    image.thumbnail((1024, 1024))  # wallpapers are huge; keep demo runs short
                found += 1
                yield f"wallpaper_{path.stem}", image


def photo_tiles(tile: int, per_photo: int, seed: int = 0, wallpapers: bool = True) -> Iterator[tuple[str, Image.Image]]:
    """Non-overlapping ``tile`` x ``tile`` crops from every available photo."""
    rng = np.random.default_rng(seed)
    sources = list(skimage_photos()) + (list(wallpaper_photos()) if wallpapers else [])
    for name, image in sources:
        width, height = image.size
        cells = [(x, y) for y in range(0, height - tile + 1, tile) for x in range(0, width - tile + 1, tile)]
        for k in rng.permutation(len(cells))[:per_photo]:
            x, y = cells[k]
            yield f"{name}_{x}_{y}", image.crop((x, y, x + tile, y + tile))


def write_photo_tiles(out_dir: str | Path, tile: int = 64, per_photo: int = 4, seed: int = 0,
                      wallpapers: bool = True) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in photo_tiles(tile, per_photo, seed, wallpapers):
        path = out / f"{name}.png"
        image.save(path)
        paths.append(path)
    return paths
