"""The demo's data: real photos from installed packages, split into disjoint groups.

Two kinds of fakes, one per subtask, so the demo shows why AlignGemini needs both
branches:

- ``vae``: a photo passed through a VAE (``aligngemini data reconstruct``). The content
  is the photo's own; only decoder artifacts give it away (pixel branch).
- ``semantic``: a photo cut into blocks, rearranged, and with its colour channels rotated
  (green skies, blue skin). Every pixel value comes from a camera photo, so no decoder
  artifact exists; only broken object logic and implausible colours give it away
  (semantic branch).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from PIL import Image

from aligngemini.datamodules.records import FAKE, REAL, ImageRecord, load_records, write_manifest
from aligngemini.demo.photos import photo_tiles

GROUPS = {"train": 0.45, "calib": 0.25, "bench": 0.30}
SEMANTIC_RATIONALE = ("Implausible colours for the objects shown, and the scene is cut into blocks that do not fit: "
                      "outlines and horizons break at the block edges.")
REAL_RATIONALE = "Objects, edges and lighting continue consistently across the whole scene."


def semantic_fake(image: Image.Image, rng: random.Random) -> Image.Image:
    red, green, blue = shuffle_blocks(image, 3, rng).split()
    return Image.merge("RGB", (green, blue, red))


def shuffle_blocks(image: Image.Image, grid: int, rng: random.Random) -> Image.Image:
    width, height = image.size
    bw, bh = width // grid, height // grid
    boxes = [(x * bw, y * bh, (x + 1) * bw, (y + 1) * bh) for y in range(grid) for x in range(grid)]
    order = list(range(len(boxes)))
    while order == sorted(order):
        rng.shuffle(order)
    out = image.copy()
    for target, source in zip(boxes, order):
        out.paste(image.crop(boxes[source]), target[:2])
    return out


def write_photo_groups(out: Path, tile: int, per_photo: int, seed: int = 0) -> dict[str, Path]:
    """Tiles of every available photo, dealt into train/calib/bench folders (no overlap)."""
    tiles = list(photo_tiles(tile, per_photo, seed=seed))
    random.Random(seed).shuffle(tiles)
    folders, start = {}, 0
    for i, (group, fraction) in enumerate(GROUPS.items()):
        end = len(tiles) if i == len(GROUPS) - 1 else start + round(fraction * len(tiles))
        folder = out / group
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in tiles[start:end]:
            image.save(folder / f"{name}.png")
        folders[group], start = folder, end
    return folders


def write_semantic_source(photos: Path, out: Path, seed: int = 0) -> tuple[Path, Path]:
    """``real/`` + ``fake/`` (semantic fakes) folders and a rationale CSV for ``data semantic``."""
    rng = random.Random(seed)
    rationales = []
    for path in sorted(photos.glob("*.png")):
        real, fake = out / "real" / path.name, out / "fake" / path.name
        real.parent.mkdir(parents=True, exist_ok=True)
        fake.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image.save(real)
            semantic_fake(image.convert("RGB"), rng).save(fake)
        rationales += [(real, REAL_RATIONALE), (fake, SEMANTIC_RATIONALE)]
    rationale_file = out / "rationales.csv"
    with rationale_file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "rationale"])
        writer.writerows((str(p), text) for p, text in rationales)
    return out, rationale_file


def write_benchmark(pairs_manifest: Path, out: Path, name: str, seed: int = 0) -> Path:
    """A manifest with subsets ``vae`` and ``semantic`` from one group's reconstruction pairs.

    Half of the pairs keep their reconstruction (subset ``vae``); the other half swap it
    for a semantic fake of the photo (subset ``semantic``), so each subset has its own
    reals and its own fakes.
    """
    rng = random.Random(seed)
    by_pair: dict[str, dict[int, ImageRecord]] = {}
    for record in load_records(pairs_manifest):
        by_pair.setdefault(record.pair_id or record.path, {})[record.label] = record
    semantic_dir = out / f"{name}_semantic_fakes"
    semantic_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i, key in enumerate(sorted(by_pair)):
        pair = by_pair[key]
        if REAL not in pair or FAKE not in pair:
            continue
        real = pair[REAL]
        if i % 2 == 0:
            records += [ImageRecord(real.path, REAL, "vae"), ImageRecord(pair[FAKE].path, FAKE, "vae")]
        else:
            target = semantic_dir / Path(real.path).name
            with Image.open(real.path) as image:
                semantic_fake(image.convert("RGB"), rng).save(target)
            records += [ImageRecord(real.path, REAL, "semantic"), ImageRecord(str(target), FAKE, "semantic")]
    return write_manifest(records, out / f"{name}.csv")
