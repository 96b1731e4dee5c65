"""The one safe image decoder. Every branch, builder and the detector read images here.

Policy: a file that cannot be decoded raises :class:`BadImageError` naming the file
and the problem. Datasets catch it and, under the default ``skip`` policy, drop the
sample and report it (see :class:`BadFileLog`); under ``fail`` the error ends the run.
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# 64 megapixels is ~5x a 24 MP camera; beyond it a file is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 64_000_000
MIN_SIDE = 8


class BadInputPolicy(str, Enum):
    skip = "skip"
    fail = "fail"


class BadImageError(ValueError):
    """An image file that cannot be used; ``str()`` names the file and the problem."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class DecodeLimits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = MIN_SIDE


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        # 16/32-bit greyscale: scale the actual range to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if mode.startswith("I;16") else max(float(array.max()), 1.0)
        array = np.clip(array / high * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        scaled = (array - lo) / (hi - lo or 1.0) * 255.0
        return Image.fromarray(np.nan_to_num(scaled).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        # Composite on white: transparent pixels carry arbitrary colours that must not leak.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def decode_image(
    path: str | os.PathLike, limits: DecodeLimits = DecodeLimits(), data: bytes | None = None
) -> Image.Image:
    """Read ``path`` as an RGB PIL image, upright (EXIF orientation applied).

    With ``data``, decode those bytes (e.g. read from a shard) and name ``path`` in errors.

    Animated files give their first frame. Raises :class:`BadImageError` for missing,
    empty, truncated, non-image, too large (decompression bomb) or too small files.
    """
    path = Path(path)
    if data is None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise BadImageError(path, "file not found") from None
        except OSError as err:
            raise BadImageError(path, f"cannot stat file ({err.strerror or err})") from None
        if not path.is_file():
            raise BadImageError(path, "not a regular file")
    else:
        size = len(data)
    if size == 0:
        raise BadImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise BadImageError(
                        path, f"{width}x{height} exceeds the {limits.max_pixels}-pixel limit (decompression bomb?)"
                    )
                if min(width, height) < limits.min_side:
                    raise BadImageError(path, f"{width}x{height} is smaller than {limits.min_side} px on a side")
                image.seek(0)
                image.load()
                upright = ImageOps.exif_transpose(image)  # a new image, detached from the file
                return _to_rgb(upright)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image PIL can identify (wrong extension or corrupt header)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(path, f"decompression bomb ({err})") from None
    except OSError as err:
        text = str(err)
        if "truncated" in text.lower() or "broken data stream" in text.lower():
            raise BadImageError(path, f"truncated image data ({text})") from None
        raise BadImageError(path, f"cannot decode ({text})") from None
    except (ValueError, SyntaxError, MemoryError, EOFError, struct.error) as err:
        raise BadImageError(path, f"cannot decode ({type(err).__name__}: {err})") from None


ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey image


def load_rgb(source: str | os.PathLike | Image.Image, limits: DecodeLimits = DecodeLimits()) -> Image.Image:
    """Decode a path, or normalise an in-memory PIL image through the same RGB rules."""
    if isinstance(source, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(source) or source)
    return decode_image(source, limits)


class BadFileLog:
    """Collects skipped files and appends them, one JSON line each, to ``path``.

    Lines are flushed as they come so that the report survives a crash; a path is
    reported once even when an epoch revisits it.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self.entries: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.path and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.entries[row["path"]] = row["reason"]
                except (json.JSONDecodeError, KeyError):
                    continue

    def add(self, path: str, reason: str) -> bool:
        with self._lock:
            if path in self.entries:
                return False
            self.entries[path] = reason
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"path": path, "reason": reason}) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            return True

    def __len__(self) -> int:
        return len(self.entries)
