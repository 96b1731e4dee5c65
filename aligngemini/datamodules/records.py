"""Image records: one labelled image, read from benchmark folder layouts or manifests.

Every branch reads the same records. A record keeps its ``subset`` (generator or
benchmark part) so that evaluation can report per generator, and an optional
``pair_id`` that ties a real photo to its own reconstruction for the pixel view.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

REAL, FAKE, UNLABELLED = 0, 1, -1
LABEL_NAMES = ("real", "fake")
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif", ".avif", ".heic"}
)
# Folder names that carry a label in the common benchmark layouts
# (ForenSynths/AIGCDetect `0_real`/`1_fake`, GenImage `nature`/`ai`, Chameleon/WildRF `real`/`fake`).
REAL_DIR_NAMES = frozenset({"real", "0_real", "0real", "nature", "authentic", "reals"})
FAKE_DIR_NAMES = frozenset({"fake", "1_fake", "1fake", "ai", "synthetic", "generated", "fakes"})
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest or folder that cannot be turned into records; the message names the file."""


@dataclass(frozen=True)
class ImageRecord:
    path: str
    label: int = UNLABELLED
    subset: str = "default"
    pair_id: str | None = None
    rationale: str | None = None
    split: str | None = None

    @property
    def label_name(self) -> str:
        return LABEL_NAMES[self.label] if self.label in (REAL, FAKE) else "unlabelled"

    def to_row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_label(value: object, where: str) -> int:
    """Accept 0/1, real/fake and the folder names above; anything else is an error naming ``where``."""
    if value is None or value == "":
        return UNLABELLED
    text = str(value).strip().lower()
    if text in {"0", "0.0", "false"} or text in REAL_DIR_NAMES:
        return REAL
    if text in {"1", "1.0", "true"} or text in FAKE_DIR_NAMES:
        return FAKE
    if text in {"-1", "unlabelled", "unknown"}:
        return UNLABELLED
    raise ManifestError(f"{where}: label {value!r} is not one of 0/1/real/fake")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def scan_folder(root: str | Path, allow_unlabelled: bool = False) -> list[ImageRecord]:
    """Records from a benchmark folder.

    The label comes from the nearest ancestor folder named like ``real``/``fake``
    (``0_real``/``1_fake``, ``nature``/``ai``); the folders above it, relative to
    ``root``, name the subset (``sdv4/0_real/x.png`` -> subset ``sdv4``). Files with no
    label folder are an error unless ``allow_unlabelled`` (then label -1).
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory")
    records = []
    for path in _walk_images(root):
        parts = path.relative_to(root).parts[:-1]
        label, subset_parts = UNLABELLED, parts
        for i in range(len(parts) - 1, -1, -1):
            name = parts[i].lower()
            if name in REAL_DIR_NAMES or name in FAKE_DIR_NAMES:
                label = REAL if name in REAL_DIR_NAMES else FAKE
                subset_parts = parts[:i]
                break
        if label == UNLABELLED and not allow_unlabelled:
            raise ManifestError(
                f"{path}: no real/fake folder above this file under {root}; use a layout like "
                "real/ + fake/ or 0_real/ + 1_fake/, or a CSV/JSONL manifest"
            )
        records.append(ImageRecord(str(path), label, "/".join(subset_parts) or "default"))
    if not records:
        raise ManifestError(f"{root}: no image files found")
    return records


def _walk_images(root: Path) -> Iterator[Path]:
    """Sorted, recursive, follows directory symlinks once (a symlink loop is skipped)."""
    seen: set[Path] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            real = folder.resolve()
        except (OSError, RuntimeError):
            continue
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir():
                    subdirs.append(entry)
                elif is_image_file(entry):
                    yield entry
            except OSError:  # e.g. a symlink loop: "Too many levels of symbolic links"
                if is_image_file(entry):
                    yield entry  # the decoder reports it as a named bad file
        stack.extend(reversed(subdirs))


_FIELDS = {f.name for f in fields(ImageRecord)}


def _record_from_row(row: dict, base: Path, where: str) -> ImageRecord:
    if not row.get("path"):
        raise ManifestError(f"{where}: missing 'path'")
    path = Path(str(row["path"]))
    if not path.is_absolute():
        path = base / path
    unknown = set(row) - _FIELDS
    if unknown - {"", None}:
        extra = ", ".join(sorted(str(k) for k in unknown))
        raise ManifestError(f"{where}: unknown column(s) {extra}; expected {sorted(_FIELDS)}")
    split = row.get("split") or None
    if split is not None and split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {SPLITS}")
    return ImageRecord(
        path=str(path),
        label=parse_label(row.get("label"), where),
        subset=str(row.get("subset") or "default"),
        pair_id=str(row["pair_id"]) if row.get("pair_id") not in (None, "") else None,
        rationale=row.get("rationale") or None,
        split=split,
    )


def iter_rows(path: str | Path, what: str = "manifest") -> Iterator[tuple[str, dict]]:
    """``(where, row)`` for every row of a CSV or JSONL table with a ``path`` column.

    ``where`` is ``file:line`` for error messages; ``what`` names the table in them
    (manifest, score file, predictions). Manifests, score files and predictions all
    read through here.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: {what} not found")
    suffix = path.suffix.lower()
    with path.open(newline="", encoding="utf-8") as handle:
        if suffix == ".csv":
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ManifestError(f"{path}: CSV header must name a 'path' column")
            for line, row in enumerate(reader, start=2):
                yield f"{path}:{line}", row
        elif suffix in {".jsonl", ".ndjson"}:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{path}:{line}: not valid JSON ({err.msg})") from None
                if not isinstance(row, dict) or not row.get("path"):
                    raise ManifestError(f"{path}:{line}: each line must be a JSON object with a 'path'")
                yield f"{path}:{line}", row
        else:
            raise ManifestError(f"{path}: {what} must end in .csv or .jsonl")


def iter_manifest(path: str | Path) -> Iterator[ImageRecord]:
    """Stream records from a CSV or JSONL manifest; relative paths are relative to its folder."""
    base = Path(path).parent
    for where, row in iter_rows(path):
        yield _record_from_row(row, base, where)


def load_records(source: str | Path, allow_unlabelled: bool = False) -> list[ImageRecord]:
    """Records from a folder (benchmark layout) or a CSV/JSONL manifest."""
    source = Path(source)
    if source.is_dir():
        return scan_folder(source, allow_unlabelled=allow_unlabelled)
    if not source.exists():
        raise ManifestError(f"{source}: no such folder or manifest")
    records = list(iter_manifest(source))
    if not records:
        raise ManifestError(f"{source}: manifest has no rows")
    if not allow_unlabelled and (bad := next((r for r in records if r.label == UNLABELLED), None)):
        raise ManifestError(f"{source}: record {bad.path} has no label")
    return records


def write_manifest(records: Iterable[ImageRecord], path: str | Path) -> Path:
    """Write records as CSV or JSONL (by suffix), paths relative to the manifest when possible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in records:
        row = record.to_row()
        try:
            row["path"] = str(Path(record.path).resolve().relative_to(path.parent.resolve()))
        except (ValueError, OSError, RuntimeError):  # elsewhere, or a symlink loop: keep as given
            pass
        rows.append(row)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        if path.suffix.lower() == ".csv":
            columns = [f.name for f in fields(ImageRecord) if any(f.name in r for r in rows)]
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    tmp.replace(path)
    return path


def split_records(
    records: Sequence[ImageRecord],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, list[ImageRecord]]:
    """Deterministic train/val/test split.

    Records that carry ``split`` keep it. The others are grouped (a pair stays in one
    split, so a reconstruction never leaks into the split its real photo is in),
    stratified by (subset, label) and cut by ``fractions`` with a seeded shuffle of
    the sorted group keys, so the result does not depend on the input order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    out: dict[str, list[ImageRecord]] = {s: [] for s in SPLITS}
    groups: dict[str, list[ImageRecord]] = {}
    for record in records:
        if record.split:
            out[record.split].append(record)
        else:
            groups.setdefault(record.pair_id or record.path, []).append(record)
    strata: dict[tuple, list[str]] = {}
    for key, members in groups.items():
        first = members[0]
        stratum = (first.subset, "pair" if len(members) > 1 else first.label)
        strata.setdefault(stratum, []).append(key)
    rng = random.Random(seed)
    for stratum in sorted(strata, key=str):
        keys = sorted(strata[stratum])
        rng.shuffle(keys)
        n = len(keys)
        n_val = round(n * fractions[1])
        n_test = round(n * fractions[2])
        if n >= 3:  # keep every non-empty fraction represented when the stratum allows it
            n_val = max(n_val, 1 if fractions[1] > 0 else 0)
            n_test = max(n_test, 1 if fractions[2] > 0 else 0)
        n_train = max(n - n_val - n_test, 0)
        cuts = {"train": keys[:n_train], "val": keys[n_train : n_train + n_val], "test": keys[n_train + n_val :]}
        for split, split_keys in cuts.items():
            for key in split_keys:
                out[split].extend(replace(r, split=split) for r in groups[key])
    for split in SPLITS:
        out[split].sort(key=lambda r: (r.subset, r.pair_id or "", r.path))
    return out
