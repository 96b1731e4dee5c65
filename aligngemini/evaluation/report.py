"""The evaluation's outputs: ``metrics.json`` (read by the zoo's model cards), ``report.md``
and ``plots/*.png`` in one folder.

``metrics.json`` schema (``"schema": "aligngemini.evaluation/1"``)::

    {
      "schema": "aligngemini.evaluation/1",
      "created": "2026-11-26T07:00:00+00:00",          # UTC, ISO 8601
      "aligngemini_version": "0.1.0",
      "model": {"source": "ckpt:PATH" | "predictions:PATH" | "zoo:NAME", "class": "pkg.Class" | null},
      "protocol": {"name": "native" | "jpeg-aligned", "jpeg_quality": 95 | null,
                   "threshold": 0.5, "ece_bins": 15},
      "metric_names": ["real_acc", "fake_acc", "acc", "ap", "auroc", "eer",
                       "tpr_at_fpr_1", "tpr_at_fpr_5", "ece"],
      "benchmarks": {
        "<benchmark>": {
          "layout": "chameleon" | ... | "folder" | "manifest" | "predictions",
          "source": "<folder, manifest or predictions file>",
          "labels_from": "<benchmark folder or manifest>",    # predictions labelled by path only
          "n_images": 2000, "n_failed": 1,
          "failed": [{"path": "...", "reason": "..."}],       # at most 100 listed
          "subsets": {"<subset>": METRICS},
          "average": METRICS + {"n_subsets": 3},              # the paper's number: average.acc
          "pooled": METRICS,                                  # all images of the benchmark at once
          "groups": {"<group>": METRICS + n_subsets},         # only for group/generator subsets
          "sweeps": {"<kind>": {"strength_label": "JPEG quality",
                                "points": [{"strength": 90.0, "average": METRICS,
                                            "subsets": {"<subset>": METRICS}}]}},
          "check": {...}                                      # see evaluation.check, when run
        }
      },
      "summary": METRICS-like: each metric averaged over the benchmarks' "average" (null if
                 undefined everywhere), plus "benchmarks": [names]
    }

    METRICS = {"n_real": int, "n_fake": int, "real_acc", "fake_acc", "acc", "ap", "auroc",
               "eer", "tpr_at_fpr_1", "tpr_at_fpr_5", "ece": float in [0, 1] or null}

Fractions are stored as fractions (0.953), rounded to 6 decimals; the markdown report
shows percentages. ``null`` means undefined (e.g. AUROC of a subset with one class).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aligngemini.evaluation import plots
from aligngemini.evaluation.metrics import METRIC_NAMES, benchmark_metrics
from aligngemini.evaluation.protocol import Protocol
from aligngemini.evaluation.sweeps import STRENGTH_LABELS

SCHEMA = "aligngemini.evaluation/1"
MAX_LISTED_FAILURES = 100
COLUMN_TITLES = {"real_acc": "real acc", "fake_acc": "fake acc", "acc": "**acc**", "ap": "AP", "auroc": "AUROC",
                 "eer": "EER", "tpr_at_fpr_1": "TPR@1%FPR", "tpr_at_fpr_5": "TPR@5%FPR", "ece": "ECE"}


@dataclass
class BenchmarkResult:
    """What was scored on one benchmark: its rows, sweep rows by kind and strength, its check."""

    name: str
    layout: str
    source: str
    rows: list[dict]
    sweeps: dict[str, list[tuple[float, list[dict]]]] = field(default_factory=dict)
    check: dict | None = None
    labels_from: str | None = None  # the benchmark that labelled a predictions file


def _round(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def benchmark_entry(result: BenchmarkResult, protocol: Protocol) -> dict:
    metrics = benchmark_metrics(result.rows, protocol.threshold, protocol.ece_bins)
    failed = [{"path": r["path"], "reason": r["error"]} for r in result.rows if r.get("error")]
    failed = list({f["path"]: f for f in failed}.values())
    entry = {
        "layout": result.layout,
        "source": result.source,
        "n_images": len({r["path"] for r in result.rows}),
        "n_failed": len(failed),
        "failed": failed[:MAX_LISTED_FAILURES],
        **metrics,
    }
    if result.labels_from:
        entry["labels_from"] = result.labels_from
    if result.sweeps:
        entry["sweeps"] = {}
        for kind, points in result.sweeps.items():
            scored = []
            for strength, rows in points:
                m = benchmark_metrics(rows, protocol.threshold, protocol.ece_bins)
                scored.append({"strength": float(strength), "average": m["average"], "subsets": m["subsets"]})
            entry["sweeps"][kind] = {"strength_label": STRENGTH_LABELS.get(kind, "strength"), "points": scored}
    if result.check is not None:
        entry["check"] = result.check
    return entry


def build_metrics(results: Sequence[BenchmarkResult], protocol: Protocol, model: dict) -> dict:
    from aligngemini import __version__

    benchmarks = {r.name: benchmark_entry(r, protocol) for r in results}
    summary: dict = {"benchmarks": list(benchmarks)}
    for name in METRIC_NAMES:
        values = [b["average"][name] for b in benchmarks.values() if b["average"][name] is not None]
        summary[name] = sum(values) / len(values) if values else None
    return _round({
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "aligngemini_version": __version__,
        "model": model,
        "protocol": protocol.to_dict(),
        "metric_names": list(METRIC_NAMES),
        "benchmarks": benchmarks,
        "summary": summary,
    })


# --- markdown ---------------------------------------------------------------------------------
def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _table(rows: list[tuple[str, dict]], first: str) -> list[str]:
    head = [first, "n real", "n fake", *(COLUMN_TITLES[m] for m in METRIC_NAMES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, m in rows:
        cells = [label, str(m.get("n_real", "")), str(m.get("n_fake", "")), *(_pct(m.get(k)) for k in METRIC_NAMES)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _check_lines(check: dict | None) -> list[str]:
    if not check:
        return []
    lines = ["", "Files (pre-run check):", "", "| class | n | formats | median size (px) | median KB | median JPEG q |",
             "|---|---|---|---|---|---|"]
    for name, c in check["by_class"].items():
        if c.get("n"):
            formats = ", ".join(f"{fmt} {count}" for fmt, count in c["formats"].items())
            quality = "-" if c["median_jpeg_quality"] is None else f"{c['median_jpeg_quality']:g}"
            lines.append(f"| {name} | {c['n']} | {formats} | {c['width']['median']:g}x{c['height']['median']:g} | "
                         f"{c['median_kilobytes']:g} | {quality} |")
    return lines + [f"\n> check: {warning}" for warning in check["warnings"]]


def _several_benchmarks(metrics: dict) -> bool:
    """False for predictions of several models on one benchmark: a mean over them means nothing."""
    entries = list(metrics["benchmarks"].values())
    sources = {e.get("labels_from") for e in entries}
    return len(entries) > 1 and not (len(sources) == 1 and None not in sources)


def render_markdown(metrics: dict, plot_files: dict[str, list[Path]], out_dir: Path) -> str:
    protocol = metrics["protocol"]
    aligned = f" (every image re-encoded as JPEG q{protocol['jpeg_quality']})" if protocol["jpeg_quality"] else ""
    lines = [
        "# AlignGemini evaluation",
        "",
        f"- model: `{metrics['model'].get('source')}`" + (f" ({metrics['model']['class']})" if metrics["model"].get("class") else ""),
        f"- protocol: **{protocol['name']}**{aligned}; an image is called fake when its probability is above "
        f"{protocol['threshold']}; acc = (real acc + fake acc) / 2 per subset, averaged per benchmark (the paper's protocol)",
        f"- created {metrics['created']} with aligngemini {metrics['aligngemini_version']}; all numbers in %",
        "",
        "## Summary",
        "",
        *_table([(name, b["average"]) for name, b in metrics["benchmarks"].items()]
                + ([("**mean over benchmarks**", metrics["summary"])] if _several_benchmarks(metrics) else []),
                "benchmark"),
    ]
    for name, bench in metrics["benchmarks"].items():
        lines += ["", f"## {name}", "", f"`{bench['source']}` (layout: {bench['layout']}), {bench['n_images']} images"
                  + (f", **{bench['n_failed']} could not be read**" if bench["n_failed"] else ""), ""]
        rows = [(s, m) for s, m in bench["subsets"].items()]
        rows += [(f"average: {g}", m) for g, m in (bench.get("groups") or {}).items()]
        rows += [("**average**", bench["average"]), ("pooled", bench["pooled"])]
        lines += _table(rows, "subset")
        lines += _check_lines(bench.get("check"))
        for kind, sweep in (bench.get("sweeps") or {}).items():
            lines += ["", f"### Sweep: {kind} ({sweep['strength_label']})", "",
                      "| strength | acc | real acc | fake acc | AUROC | AP |", "|---|---|---|---|---|---|"]
            for point in sweep["points"]:
                a = point["average"]
                lines.append(f"| {point['strength']:g} | {_pct(a['acc'])} | {_pct(a['real_acc'])} | "
                             f"{_pct(a['fake_acc'])} | {_pct(a['auroc'])} | {_pct(a['ap'])} |")
        for path in plot_files.get(name, []):
            lines += ["", f"![{path.stem}]({path.relative_to(out_dir).as_posix()})"]
        if bench["failed"]:
            lines += ["", "<details><summary>files that could not be read</summary>", ""]
            lines += [f"- `{f['path']}`: {f['reason']}" for f in bench["failed"]]
            lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def make_plots(results: Sequence[BenchmarkResult], metrics: dict, out_dir: Path) -> dict[str, list[Path]]:
    folder = out_dir / "plots"
    made: dict[str, list[Path]] = {}
    for result in results:
        stem, bench = plots.safe_name(result.name), metrics["benchmarks"][result.name]
        paths = [
            plots.roc_plot(result.rows, folder / f"{stem}_roc.png", result.name),
            plots.pr_plot(result.rows, folder / f"{stem}_pr.png", result.name),
            plots.reliability_plot(result.rows, folder / f"{stem}_reliability.png", result.name,
                                   metrics["protocol"]["ece_bins"]),
        ]
        for kind, sweep in (bench.get("sweeps") or {}).items():
            paths.append(plots.sweep_plot(kind, sweep["points"], bench, folder / f"{stem}_sweep_{kind}.png", result.name))
        made[result.name] = [p for p in paths if p is not None]
    return made


def write_report(results: Sequence[BenchmarkResult], protocol: Protocol, model: dict, out_dir: str | Path,
                 with_plots: bool = True) -> dict:
    """Write ``metrics.json``, ``report.md`` and (unless ``with_plots`` is false) ``plots/``;
    returns the metrics dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = build_metrics(results, protocol, model)
    plot_files = make_plots(results, metrics, out_dir) if with_plots else {}
    tmp = out_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "metrics.json")
    (out_dir / "report.md").write_text(render_markdown(metrics, plot_files, out_dir), encoding="utf-8")
    return metrics
