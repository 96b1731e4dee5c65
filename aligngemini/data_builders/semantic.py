"""Labelled records + optional rationales -> the manifest the semantic view reads.

A rationale is a short text naming the semantic evidence for a verdict ("the hand
has six fingers"). It is given per image in a rationale file:

- CSV with a header naming ``path`` and ``rationale`` columns,
- JSONL, one ``{"path": ..., "rationale": ...}`` object per line,
- JSON, a ``{path: rationale}`` mapping or a list of such objects.

A key may be an absolute path, a path relative to the rationale file or to the
records' root, or any path ending (``fake/c.png``, ``c.png``) that only one record has.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from aligngemini.datamodules.records import ImageRecord, ManifestError, load_records, write_manifest


class RationaleFileError(ManifestError):
    """A malformed rationale file; the message names the file (and line) and the problem."""


@dataclass
class SemanticReport:
    manifest: Path
    records: int = 0
    with_rationale: int = 0
    missing: list[str] = field(default_factory=list)  # record paths without a rationale
    missing_by_label: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)  # rationale keys that name no record

    def summary(self, show: int = 10) -> str:
        text = f"{self.records} records in {self.manifest}, {self.with_rationale} with a rationale"
        if self.missing:
            by_label = ", ".join(f"{n} {label}" for label, n in sorted(self.missing_by_label.items()))
            text += f"\n{len(self.missing)} records lack a rationale ({by_label}):"
            text += "".join(f"\n  {path}" for path in self.missing[:show])
            if len(self.missing) > show:
                text += f"\n  ... and {len(self.missing) - show} more"
        if self.unmatched:
            text += f"\n{len(self.unmatched)} rationale entries match no record, e.g. {self.unmatched[0]!r}"
        return text


def _text(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RationaleFileError(f"{where}: rationale must be a string, got {type(value).__name__}")
    return value.strip() or None


def read_rationales(path: str | Path) -> dict[str, str | None]:
    """``{key: rationale}`` from a CSV, JSONL or JSON rationale file (empty text -> None)."""
    path = Path(path)
    if not path.is_file():
        raise RationaleFileError(f"{path}: rationale file not found")
    entries: list[tuple[str, object, str]] = []  # key, rationale, where
    suffix = path.suffix.lower()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            if suffix == ".csv":
                reader = csv.DictReader(handle)
                missing = {"path", "rationale"} - set(reader.fieldnames or ())
                if missing:
                    raise RationaleFileError(f"{path}: CSV header must name 'path' and 'rationale' "
                                             f"columns (missing {', '.join(sorted(missing))})")
                entries = [(row["path"], row["rationale"], f"{path}:{n}") for n, row in enumerate(reader, 2)]
            elif suffix in {".jsonl", ".ndjson"}:
                for n, line in enumerate(handle, 1):
                    if line.strip():
                        entries.append(_entry(_json(line, f"{path}:{n}"), f"{path}:{n}"))
            elif suffix == ".json":
                data = _json(handle.read(), str(path))
                if isinstance(data, dict):
                    entries = [(key, value, f"{path}: key {key!r}") for key, value in data.items()]
                elif isinstance(data, list):
                    entries = [_entry(item, f"{path}: item {n}") for n, item in enumerate(data)]
                else:
                    raise RationaleFileError(f"{path}: JSON must be a {{path: rationale}} mapping or a list of objects")
            else:
                raise RationaleFileError(f"{path}: rationale file must end in .csv, .jsonl or .json")
    except UnicodeDecodeError as err:
        raise RationaleFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise RationaleFileError(f"{path}: malformed CSV ({err})") from None
    rationales: dict[str, str | None] = {}
    first_seen: dict[str, str] = {}
    for key, value, where in entries:
        if not isinstance(key, str) or not key.strip():
            raise RationaleFileError(f"{where}: missing 'path'")
        text = _text(value, where)
        if key in rationales and rationales[key] != text:
            raise RationaleFileError(f"{where}: {key!r} already has a different rationale at {first_seen[key]}")
        rationales[key], first_seen[key] = text, first_seen.get(key, where)
    return rationales


def _json(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RationaleFileError(f"{where}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def _entry(item: object, where: str) -> tuple[str, object, str]:
    if not isinstance(item, dict) or "path" not in item or "rationale" not in item:
        raise RationaleFileError(f"{where}: expected an object with 'path' and 'rationale'")
    return item["path"], item["rationale"], where


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a symlink loop: compare the path as written
        return str(path.absolute())


class _RecordIndex:
    """Finds the record a rationale key names: by path, or by a path ending only one record has."""

    AMBIGUOUS = -1

    def __init__(self, records: list[ImageRecord], root: Path):
        self.root = root
        self.by_path = {_resolved(Path(r.path)): i for i, r in enumerate(records)}
        self.by_ending: dict[tuple[str, ...], int] = {}
        for i, record in enumerate(records):
            parts = Path(record.path).parts
            for k in range(1, len(parts)):
                ending = parts[-k:]
                self.by_ending[ending] = self.AMBIGUOUS if ending in self.by_ending else i

    def find(self, key: str, rationale_dir: Path) -> int | None:
        candidate = Path(key).expanduser()
        bases = [None] if candidate.is_absolute() else [rationale_dir, self.root]
        for base in bases:
            found = self.by_path.get(_resolved(candidate if base is None else base / candidate))
            if found is not None:
                return found
        parts = tuple(p for p in PurePosixPath(key.replace("\\", "/")).parts if p not in {".", "/"})
        found = self.by_ending.get(parts)
        return None if found in (None, self.AMBIGUOUS) else found


def build_semantic_manifest(source: str | Path, out: str | Path, rationales: str | Path | None = None) -> SemanticReport:
    """Write ``out`` (JSONL or CSV) with every labelled record of ``source`` and its rationale.

    Rationales already in a source manifest are kept unless the rationale file names
    the same image, in which case the file wins.
    """
    source, out = Path(source), Path(out)
    records = load_records(source)
    unmatched: list[str] = []
    if rationales is not None:
        index = _RecordIndex(records, source if source.is_dir() else source.parent)
        for key, text in read_rationales(rationales).items():
            found = index.find(key, Path(rationales).parent)
            if found is None:
                unmatched.append(key)
            elif text is not None:  # an empty entry never erases a rationale the manifest has
                records[found] = replace(records[found], rationale=text)
    report = SemanticReport(manifest=out, records=len(records), unmatched=unmatched)
    for record in records:
        if record.rationale:
            report.with_rationale += 1
        else:
            report.missing.append(record.path)
            report.missing_by_label[record.label_name] = report.missing_by_label.get(record.label_name, 0) + 1
    write_manifest(records, out)
    return report
