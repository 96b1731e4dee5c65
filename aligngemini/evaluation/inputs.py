"""Inputs of ``aligngemini evaluate``: ``NAME=PATH`` specs and predictions files."""

from __future__ import annotations

from pathlib import Path

from aligngemini.datamodules.records import ImageRecord, ManifestError, iter_rows, parse_label
from aligngemini.errors import AlignGeminiError


class EvaluateError(AlignGeminiError, ValueError):
    """A bad combination of options or an unreadable predictions file."""


def split_spec(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare PATH is named after its folder or file stem."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name:
        return name, path
    path = spec
    return (Path(path).stem if Path(path).suffix else Path(path).name) or "benchmark", path


def _number(value, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EvaluateError(f"{where}: {value!r} is not a number") from None


def read_prediction_rows(path: str | Path, probability_column: str = "probability",
                         logit_column: str | None = None) -> list[dict]:
    """Rows of a predictions CSV/JSONL with typed ``label``, ``logit``, ``probability``.

    ``probability_column`` picks the score (``detect`` rows also hold ``pixel_probability``
    and ``semantic_probability``); logits are read from ``logit_column``, which defaults
    to ``logit`` only when the probability is the default one, so that a branch's
    probability is never ranked by the fused logit.
    """
    if logit_column is None:
        logit_column = "logit" if probability_column == "probability" else ""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: predictions file not found")
    try:
        raw = list(iter_rows(path, "predictions file"))
    except ManifestError as err:
        raise EvaluateError(str(err)) from None
    rows = []
    for where, row in raw:
        if not isinstance(row, dict) or not row.get("path"):
            raise EvaluateError(f"{where}: each row needs a 'path'")
        probability = _number(row.get(probability_column), where)
        logit = _number(row.get(logit_column), where) if logit_column else None
        error = row.get("error") or None
        if probability is None and logit is None and not error:
            wanted = f"'{probability_column}'" + (f" or '{logit_column}'" if logit_column else "")
            raise EvaluateError(f"{where}: no {wanted} value")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise EvaluateError(f"{where}: probability {probability} is outside [0, 1]")
        label = parse_label(row.get("label"), where)
        rows.append({**row, "path": str(row["path"]), "subset": row.get("subset") or "default",
                     "label": label if label >= 0 else None, "probability": probability, "logit": logit,
                     "error": error})
    if not rows:
        raise EvaluateError(f"{path}: no prediction rows")
    return rows


def label_rows(rows: list[dict], records: list[ImageRecord]) -> list[dict]:
    """Labels and subsets from benchmark records, joined by resolved path: one row per record;
    a record that no row scored is kept as a failure (``error``), rows of other images are dropped."""
    by_path = {str(Path(r["path"]).resolve()): r for r in rows}
    joined, matched = [], 0
    for record in records:
        row = by_path.get(str(Path(record.path).resolve()))
        matched += row is not None
        row = row or {"logit": None, "probability": None, "error": "no prediction row for this image"}
        joined.append({**row, "path": record.path, "subset": record.subset, "label": record.label})
    if not matched:
        raise EvaluateError("no prediction row matches a benchmark image path; were they scored from this folder?")
    return joined


def filter_subsets(records_or_rows, subsets):
    if not subsets:
        return records_or_rows
    wanted = set(subsets)
    kept = [r for r in records_or_rows if (r.subset if isinstance(r, ImageRecord) else r.get("subset")) in wanted]
    if not kept:
        raise EvaluateError(f"none of the subsets {sorted(wanted)} is present")
    return kept
