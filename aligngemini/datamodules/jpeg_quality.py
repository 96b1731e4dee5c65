"""Estimate the IJG quality a JPEG file was saved at, from its luminance quantisation table."""

from __future__ import annotations

import os
from functools import lru_cache

from PIL import Image

# ITU-T T.81 Annex K luminance table (the IJG base table that `quality` scales).
_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)


@lru_cache(maxsize=1)
def _table_sums() -> dict[int, int]:
    sums = {}
    for quality in range(1, 101):
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        sums[quality] = sum(min(max((v * scale + 50) // 100, 1), 255) for v in _LUMINANCE)
    return sums


def estimate_jpeg_quality(path: str | os.PathLike) -> int | None:
    """The closest IJG quality (1-100), or ``None`` when ``path`` is not a readable JPEG.

    Compares sums, so the table's storage order (zig-zag or natural) does not matter.
    """
    try:
        with Image.open(path) as image:
            if image.format != "JPEG":
                return None
            tables = getattr(image, "quantization", None) or {}
    except OSError:
        return None
    if 0 not in tables:
        return None
    observed = sum(tables[0])
    return min(_table_sums().items(), key=lambda item: (abs(item[1] - observed), -item[0]))[0]
