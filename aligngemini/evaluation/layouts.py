"""Benchmark folder layouts -> :class:`ImageRecord` lists with the benchmarks' own subset names.

``scan_folder`` already reads ``[subset/...]{real,fake}/`` trees (``0_real``/``1_fake``,
``nature``/``ai``). A benchmark adapter adds what that benchmark needs beyond it: which
split folder holds the test images, which folder level names the generator (and its
usual spelling), and whether a pool of real images is shared by every generator.
Shared reals are listed once per generator subset (scored once), so each generator
gets the paper's real/fake mean; pooled numbers count them once.

Expected trees (``*`` = any depth of further folders; names are case-insensitive):

- ``chameleon``: ``Chameleon/[test/]{0_real,1_fake}/*`` -> one subset ``chameleon``
  (a ``train/`` folder beside ``test/`` is ignored).
- ``wildrf``: ``WildRF/[test/]{facebook,reddit,twitter}/{0_real,1_fake}/*`` -> subsets by
  platform (``train/``, ``val/`` ignored).
- ``synthwildx``: ``SynthWildX/{real,dalle3,firefly,midjourney}/*`` -> one subset per
  generator folder, each with the shared ``real/`` pool.
- ``bfree-online``: ``BFree-Online/<source>/{real,fake}/*`` or ``{real,fake}/<source>/*`` ->
  subsets by source (platform) folder; a fake-only source gets the shared real pool.
- ``aigibench``: ``AIGIBench/[test/]<subset>/{0_real,1_fake}/*`` -> every subset;
  ``aigibench-wild`` keeps the in-the-wild ones the paper reports (SocialRF, CommunityAI).
  A fake-only subset gets the real images of subsets that hold no fakes.
- ``genimage``: ``GenImage/<generator>/<name>/{train,val}/{nature,ai}/*`` -> the ``val``
  split, subsets named ADM, BigGAN, GLIDE, Midjourney, SDv1.4, SDv1.5, VQDM, Wukong.
- ``aigi-now``: ``AIGI-Now/<group>/<generator>/{0_real,1_fake}/*`` (groups: ``semantic``,
  ``pixel``) -> subsets ``<group>/<generator>``, averaged per group as well; a tree
  without groups gives subsets ``<generator>``. A fake-only generator gets the real pool.
- ``folder``: any ``[subset/...]{real,fake}/`` tree (``scan_folder``); ``manifest``: a CSV/JSONL.

These trees follow each benchmark's release as it is usually unpacked; a download laid out
differently is read through a manifest (``path,label,subset``) or the ``folder`` layout.

Check a download with ``aligngemini evaluate --check-only --benchmark NAME=PATH`` before a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from aligngemini.datamodules.records import (
    FAKE,
    FAKE_DIR_NAMES,
    REAL,
    REAL_DIR_NAMES,
    ImageRecord,
    ManifestError,
    _walk_images,
    load_records,
)

# (label, subset) for a file from its folders relative to the benchmark root; None skips the file.
Placement = Callable[[tuple[str, ...]], "tuple[int, str] | None"]
SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing"}
GENIMAGE_NAMES = {"adm": "ADM", "biggan": "BigGAN", "glide": "GLIDE", "midjourney": "Midjourney",
                  "stable_diffusion_v_1_4": "SDv1.4", "stable_diffusion_v_1_5": "SDv1.5", "vqdm": "VQDM",
                  "wukong": "Wukong"}
SHARED_REAL_POOL = "real"  # subset name given to reals that belong to no generator


def _label_index(parts: tuple[str, ...]) -> int | None:
    for i in range(len(parts) - 1, -1, -1):
        name = parts[i].lower()
        if name in REAL_DIR_NAMES or name in FAKE_DIR_NAMES:
            return i
    return None


def _split_label(parts: tuple[str, ...], drop: set[str]) -> tuple[int, list[str], list[str]] | None:
    """(label, folders above the label folder, folders below it) without split folders;
    None for a file in a ``drop`` split or without a label folder."""
    if any(p.lower() in drop for p in parts):
        return None
    i = _label_index(parts)
    if i is None:
        return None
    label = REAL if parts[i].lower() in REAL_DIR_NAMES else FAKE
    keep = [p for p in parts[:i] if p.lower() not in SPLIT_NAMES]
    return label, keep, [p for p in parts[i + 1 :] if p.lower() not in SPLIT_NAMES]


def _chameleon(parts):
    found = _split_label(parts, {"train", "val"})
    return None if found is None else (found[0], "chameleon")


def _by_folder_above(drop: set[str]) -> Placement:
    def place(parts):
        found = _split_label(parts, drop)
        if found is None:
            return None
        label, above, _ = found
        return label, "/".join(above) or "default"

    return place


def _synthwildx(parts):
    if not parts:
        return None
    found = _split_label(parts, set())
    if found is not None and (found[1] or found[2]):  # 1_fake/<generator>/ or <generator>/1_fake/ variants
        label, above, below = found
        return label, (below[0] if below else above[0]) if label == FAKE else SHARED_REAL_POOL
    top = parts[0].lower()
    return (REAL, SHARED_REAL_POOL) if top in REAL_DIR_NAMES else (FAKE, parts[0])


def _by_source(parts):
    """``<source>/{real,fake}`` or ``{real,fake}/<source>``."""
    found = _split_label(parts, {"train", "val"})
    if found is None:
        return None
    label, above, below = found
    source = above[0] if above else (below[0] if below else None)
    return label, source or SHARED_REAL_POOL


def _genimage(parts):
    found = _split_label(parts, {"train"})
    if found is None:
        return None
    label, above, _ = found
    if not above:
        return label, "default"
    return label, GENIMAGE_NAMES.get(above[0].lower(), above[0])


@dataclass(frozen=True)
class Layout:
    name: str
    place: Placement
    share_real_pool: bool = False
    subsets: tuple[str, ...] | None = None  # keep only these (case-insensitive)

    def records(self, root: str | Path) -> list[ImageRecord]:
        root = Path(root)
        if not root.is_dir():
            raise ManifestError(f"{root}: the {self.name} layout needs a folder")
        records = []
        for path in _walk_images(root):
            placed = self.place(path.relative_to(root).parts[:-1])
            if placed is not None:
                records.append(ImageRecord(str(path), placed[0], placed[1]))
        if self.subsets is not None:
            wanted = {s.lower() for s in self.subsets}
            records = [r for r in records if r.subset.lower() in wanted or r.subset == SHARED_REAL_POOL]
        if self.share_real_pool:
            records = share_real_pool(records)
        if not records or len({r.label for r in records}) < 2:
            raise ManifestError(
                f"{root}: found {len(records)} labelled images for the {self.name} layout, not both real and fake; "
                f"see `aligngemini evaluate --list-layouts` for the tree it expects"
            )
        return records


def share_real_pool(records: list[ImageRecord]) -> list[ImageRecord]:
    """List the reals of subsets that hold no fakes in every subset that holds no reals."""
    has = {}
    for r in records:
        has.setdefault(r.subset, set()).add(r.label)
    pool_subsets = {s for s, labels in has.items() if labels == {REAL}}
    needy = sorted(s for s, labels in has.items() if labels == {FAKE})
    if not pool_subsets or not needy:
        return records
    pool = [r for r in records if r.subset in pool_subsets]
    kept = [r for r in records if r.subset not in pool_subsets]
    return kept + [replace(r, subset=s) for s in needy for r in pool]


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("chameleon", _chameleon),
        Layout("wildrf", _by_folder_above({"train", "val"})),
        Layout("synthwildx", _synthwildx, share_real_pool=True),
        Layout("bfree-online", _by_source, share_real_pool=True),
        Layout("aigibench", _by_folder_above({"train"}), share_real_pool=True),
        Layout("aigibench-wild", _by_folder_above({"train"}), share_real_pool=True, subsets=("SocialRF", "CommunityAI")),
        Layout("genimage", _genimage),
        Layout("aigi-now", _by_folder_above({"train", "val"}), share_real_pool=True),
    )
}
GENERIC = ("folder", "manifest")


def layout_names() -> list[str]:
    return [*LAYOUTS, *GENERIC]


def load_benchmark(source: str | Path, layout: str = "auto") -> tuple[list[ImageRecord], str]:
    """Records of a benchmark and the layout used. ``auto`` reads a CSV/JSONL manifest or a
    ``scan_folder`` tree; a benchmark name applies its adapter."""
    source = Path(source).expanduser()
    key = layout.lower().replace("_", "-")
    if key in LAYOUTS:
        return LAYOUTS[key].records(source), key
    if key not in ("auto", *GENERIC):
        raise ManifestError(f"unknown benchmark layout {layout!r}; choose from {', '.join(layout_names())}")
    if key == "manifest" and source.is_dir():
        raise ManifestError(f"{source}: the manifest layout needs a .csv or .jsonl file")
    return load_records(source), "folder" if source.is_dir() else "manifest"


def layouts_help() -> str:
    return __doc__.split("Expected trees", 1)[1].split("Check a download", 1)[0].strip(" :\n")
