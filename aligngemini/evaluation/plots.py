"""PNG plots for the report: ROC, precision-recall, reliability diagram, accuracy against
each perturbation's strength. Needs matplotlib (``pip install 'aligngemini[plots]'``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torchmetrics.functional.classification import binary_precision_recall_curve

from aligngemini.errors import require
from aligngemini.evaluation.metrics import Scores, exact_roc, group_rows, unique_by_path
from aligngemini.evaluation.sweeps import STRENGTH_LABELS

MAX_CURVES = 12  # beyond this a legend is unreadable: the rest are drawn unlabelled and grey


def _pyplot():
    matplotlib = require("matplotlib", "plots", "evaluation plots")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "benchmark"


def _both_classes(scores: Scores) -> bool:
    return 0 < int(scores.labels.sum()) < len(scores)


def _curve_groups(rows: Sequence[dict]) -> list[tuple[str, Scores]]:
    groups = [(name, Scores.from_rows(group)) for name, group in group_rows(rows).items()]
    groups = [(name, s) for name, s in groups if _both_classes(s)]
    if len(groups) > 1:
        pooled = Scores.from_rows(unique_by_path(rows))
        if _both_classes(pooled):
            groups.append(("all (pooled)", pooled))
    return groups


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _style(index: int, name: str) -> dict:
    if name == "all (pooled)":
        return {"color": "black", "linewidth": 2.0, "label": name}
    if index < MAX_CURVES:
        return {"linewidth": 1.2, "label": name}
    return {"color": "0.75", "linewidth": 0.8, "label": "_nolegend_"}


def roc_plot(rows: Sequence[dict], path: Path, title: str) -> Path | None:
    """One ROC curve per subset that holds both classes (plus the pooled curve)."""
    groups = _curve_groups(rows)
    if not groups:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for i, (name, scores) in enumerate(groups):
        fpr, tpr, _ = exact_roc(scores.ranking, scores.labels)
        ax.plot(fpr.numpy(), tpr.numpy(), **_style(i, name))
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.6", linewidth=0.8)
    ax.set(xlabel="false-positive rate (reals called fake)", ylabel="true-positive rate (fakes caught)",
           title=f"ROC - {title}", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def pr_plot(rows: Sequence[dict], path: Path, title: str) -> Path | None:
    """Precision-recall with *fake* as the positive class, one curve per subset."""
    groups = _curve_groups(rows)
    if not groups:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for i, (name, scores) in enumerate(groups):
        precision, recall, _ = binary_precision_recall_curve(scores.ranking, scores.labels)
        ax.plot(recall.numpy(), precision.numpy(), drawstyle="steps-post", **_style(i, name))
    ax.set(xlabel="recall (fakes caught)", ylabel="precision", title=f"Precision-recall - {title}",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def reliability_plot(rows: Sequence[dict], path: Path, title: str, n_bins: int = 15) -> Path | None:
    """Observed share of fakes against the mean predicted probability, per probability bin
    (the bins torchmetrics' ECE uses), with the number of images per bin below."""
    scores = Scores.from_rows(unique_by_path(rows))
    if not len(scores):
        return None
    plt = _pyplot()
    probs, labels = scores.probabilities, scores.labels.double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = (torch.bucketize(probs, edges, right=True) - 1).clamp(0, n_bins - 1)
    counts = torch.bincount(index, minlength=n_bins).double()
    filled = counts > 0
    mean_prob = torch.bincount(index, probs, minlength=n_bins)[filled] / counts[filled]
    share_fake = torch.bincount(index, labels, minlength=n_bins)[filled] / counts[filled]
    fig, (ax, ax_counts) = plt.subplots(2, 1, figsize=(5.2, 5.6), height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.6", linewidth=0.8, label="perfect calibration")
    ax.plot(mean_prob.numpy(), share_fake.numpy(), marker="o", label="model")
    ax.set(ylabel="share of fakes", title=f"Reliability - {title}", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=7, loc="upper left")
    centres = ((edges[:-1] + edges[1:]) / 2).numpy()
    ax_counts.bar(centres, counts.numpy(), width=1.0 / n_bins, color="0.5")
    ax_counts.set(xlabel="predicted probability of fake", ylabel="images")
    return _save(fig, path)


def sweep_plot(kind: str, points: Sequence[dict], baseline: dict | None, path: Path, title: str,
               metric: str = "acc") -> Path | None:
    """``metric`` per subset and on average against the strength of one perturbation kind.

    ``points`` are the report's sweep points (``strength``, ``average``, ``subsets``);
    ``baseline`` the unperturbed benchmark result, drawn as a dashed line.
    """
    if not points:
        return None
    plt = _pyplot()
    points = sorted(points, key=lambda p: p["strength"])
    strengths = [p["strength"] for p in points]
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    subsets = sorted({name for p in points for name in p["subsets"]})
    if len(subsets) > 1:
        for i, name in enumerate(subsets):
            values = [_percent(p["subsets"].get(name, {}).get(metric)) for p in points]
            ax.plot(strengths, values, marker=".", **_style(i, name))
    ax.plot(strengths, [_percent(p["average"].get(metric)) for p in points], marker="o", color="black",
            linewidth=2.0, label="average")
    if baseline and baseline["average"].get(metric) is not None:
        ax.axhline(_percent(baseline["average"][metric]), linestyle="--", color="0.4", linewidth=1.0,
                   label="unperturbed")
    if kind in ("jpeg", "double_jpeg"):
        ax.invert_xaxis()  # stronger compression to the right
    if kind in ("resize", "double_resize"):
        ax.set_xscale("log", base=2)
    ax.set(xlabel=STRENGTH_LABELS.get(kind, "strength"), ylabel=f"{metric} (%)",
           title=f"{kind} - {title}", ylim=(0, 101))
    ax.legend(fontsize=7)
    return _save(fig, path)


def _percent(value: float | None) -> float:
    return float("nan") if value is None else 100.0 * value
