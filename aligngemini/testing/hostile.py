"""A generated corpus of hostile image files, with what the decoder must make of each.

Every file either decodes to an upright RGB image or must raise ``BadImageError``
naming the file and the problem; none may crash a run or use unbounded memory.

    from aligngemini.testing.hostile import make_hostile_corpus
    cases = make_hostile_corpus(tmp_path / "hostile")   # list[HostileCase]

Built in code (PIL + a few raw bytes), in well under a second.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Colours the checks look for.
RED, WHITE = (255, 0, 0), (255, 255, 255)


@dataclass(frozen=True)
class HostileCase:
    """One file of the corpus.

    ``expect`` is ``"image"`` (decodes; ``size`` is the upright size) or ``"error"``
    (``BadImageError`` whose reason contains ``reason``).
    """

    name: str
    path: Path
    expect: str
    reason: str = ""
    size: tuple[int, int] | None = None
    what: str = ""

    @property
    def is_bad(self) -> bool:
        return self.expect == "error"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header declares ``width`` x ``height`` RGB pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels)
            + _png_chunk(b"IEND", b""))


def _photo(width: int = 48, height: int = 32) -> Image.Image:
    """A smooth colour gradient: compresses like a photo, easy to check."""
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1)
    return Image.fromarray(array.astype(np.uint8))


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    """Stored 40x24, left half red; EXIF orientation 6 says: turn 90 degrees clockwise to view."""
    image = Image.new("RGB", (40, 24), WHITE)
    image.paste(Image.new("RGB", (20, 24), RED), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encoded(image, "JPEG", quality=95, exif=exif.tobytes())


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, (0, 255, 0), (0, 0, 255))]
    return _encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)


def _sixteen_bit() -> Image.Image:
    ramp = np.tile(np.linspace(0, 65535, 64), (16, 1)).astype(np.uint16)  # left to right, full range
    return Image.fromarray(ramp)  # mode I;16


def _alpha() -> Image.Image:
    """32x32: left half opaque red, right half fully transparent black (must come out white)."""
    array = np.zeros((32, 32, 4), np.uint8)
    array[:, :16] = (255, 0, 0, 255)
    return Image.fromarray(array)


def _palette_with_transparency() -> Image.Image:
    image = _alpha().convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    black = next(i for i, (r, g, b) in enumerate(zip(*[iter(image.getpalette()[:12])] * 3)) if (r, g, b) == (0, 0, 0))
    image.info["transparency"] = black
    return image


def make_hostile_corpus(root: str | os.PathLike) -> list[HostileCase]:
    """Write the corpus under ``root`` (created) and return what each file must give."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases: list[HostileCase] = []

    def add(name: str, data: bytes | Image.Image | None, expect: str, reason: str = "", size=None, what="", **save):
        path = root / name
        if isinstance(data, Image.Image):
            data.save(path, **save)
        elif data is not None:
            path.write_bytes(data)
        cases.append(HostileCase(name, path, expect, reason, size, what))

    photo_png, photo_jpg = _encoded(_photo(), "PNG"), _encoded(_photo(), "JPEG", quality=90)
    # --- must decode ------------------------------------------------------------------------
    add("plain.png", photo_png, "image", size=(48, 32), what="control: an ordinary PNG")
    add("png_named.jpg", photo_png, "image", size=(48, 32), what="PNG bytes behind a .jpg extension")
    add("jpeg_named.png", photo_jpg, "image", size=(48, 32), what="JPEG bytes behind a .png extension")
    add("cmyk.jpg", Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "image", size=(32, 32), what="CMYK JPEG (red)")
    add("gray16.png", _sixteen_bit(), "image", size=(64, 16), what="16-bit greyscale, full range")
    add("palette.png", _photo().convert("P", palette=Image.Palette.ADAPTIVE), "image", size=(48, 32),
        what="palette (P mode)")
    add("palette_transparent.png", _palette_with_transparency(), "image", size=(32, 32),
        what="palette with a transparent index")
    add("alpha.png", _alpha(), "image", size=(32, 32), what="RGBA, right half transparent")
    add("grey_alpha.png", _alpha().convert("LA"), "image", size=(32, 32), what="greyscale + alpha")
    add("exif_rotated.jpg", _exif_rotated_jpeg(), "image", size=(24, 40), what="EXIF orientation 6")
    add("animated.gif", _animated("GIF"), "image", size=(32, 32), what="animated GIF, 3 frames")
    add("animated.webp", _animated("WEBP"), "image", size=(32, 32), what="animated WebP, 3 frames")
    add("wide.png", Image.new("RGB", (8000, 8), RED), "image", size=(8000, 8), what="1000:1 aspect ratio")
    add("tall.png", Image.new("RGB", (8, 6000), RED), "image", size=(8, 6000), what="1:750 aspect ratio")
    add("float32.tif", Image.fromarray(np.linspace(-1, 1, 256, dtype=np.float32).reshape(16, 16)),
        "image", size=(16, 16), what="32-bit float TIFF")
    add("bilevel.bmp", Image.new("1", (16, 16), 1), "image", size=(16, 16), what="1-bit BMP")
    # --- must be a named error ---------------------------------------------------------------
    add("zero_byte.jpg", b"", "error", "empty file", what="0 bytes")
    add("truncated.png", photo_png[: len(photo_png) // 2], "error", "truncated", what="PNG cut in half")
    add("truncated.jpg", photo_jpg[: len(photo_jpg) // 2], "error", "truncated", what="JPEG cut in half")
    add("header_only.png", photo_png[:40], "error", "not an image", what="PNG signature and IHDR, nothing else")
    add("text.jpg", b"this is not an image\n" * 10, "error", "not an image", what="text behind a .jpg name")
    add("html.png", b"<!doctype html><html><body>404 Not Found</body></html>", "error", "not an image",
        what="an HTML error page saved as .png")
    add("bomb.png", png_declaring(100_000, 100_000), "error", "decompression bomb",
        what="60 bytes declaring 10 gigapixels")
    add("bomb_moderate.png", png_declaring(9_000, 9_000), "error", "decompression bomb",
        what="81 megapixels: over our limit, under PIL's own")
    add("tiny_1x1.png", Image.new("RGB", (1, 1), RED), "error", "smaller than", what="1x1 pixel")
    add("sliver.png", Image.new("RGB", (4000, 1), RED), "error", "smaller than", what="4000x1 pixels")
    (root / "folder.jpg").mkdir(exist_ok=True)
    add("folder.jpg", None, "error", "not a regular file", what="a directory named like an image")
    loop = root / "loop.jpg"
    if not loop.is_symlink():
        loop.symlink_to("loop.jpg")
    add("loop.jpg", None, "error", "cannot stat", what="a symlink to itself")
    pair_a, pair_b = root / "loop_a.png", root / "loop_b.png"
    if not pair_a.is_symlink():
        pair_a.symlink_to(pair_b.name)
        pair_b.symlink_to(pair_a.name)
    add("loop_a.png", None, "error", "cannot stat", what="two symlinks pointing at each other")
    dangling = root / "dangling.png"
    if not dangling.is_symlink():
        dangling.symlink_to("does_not_exist.png")
    add("dangling.png", None, "error", "not found", what="a symlink to a missing file")
    return cases


def hostile_files(cases: list[HostileCase]) -> list[Path]:
    return [case.path for case in cases]
