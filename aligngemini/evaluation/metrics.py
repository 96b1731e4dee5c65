"""Detection metrics per subset (generator) and their averages per benchmark.

The paper's protocol: an image is called fake when its probability is above 0.5;
*real accuracy* is the share of real images called real, *fake accuracy* the share of
fakes called fake, and ``acc`` is their mean (the mean of the accuracies that exist when a
subset holds one class only, as the authors' scripts do). A benchmark's number is the
mean of its subsets' numbers. Ranking metrics (AP, AUROC, EER, TPR at a fixed FPR) use
the logit when it is known (a probability saturates at 1.0 and ties images), and ECE
(15 equal-width bins, L1) uses the probability. Accuracies, AP, AUROC and ECE come from
torchmetrics; EER and TPR at a fixed FPR are read off torchmetrics' ROC curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_calibration_error,
    binary_recall,
    binary_roc,
    binary_specificity,
)

# Every key of a metrics dict, in report order. Values are floats in [0, 1] or None
# (undefined: e.g. AUROC of a subset that holds one class only).
METRIC_NAMES = ("real_acc", "fake_acc", "acc", "ap", "auroc", "eer", "tpr_at_fpr_1", "tpr_at_fpr_5", "ece")
COUNT_NAMES = ("n_real", "n_fake")
FPR_TARGETS = {"tpr_at_fpr_1": 0.01, "tpr_at_fpr_5": 0.05}
DEFAULT_ECE_BINS = 15


@dataclass(frozen=True)
class Scores:
    """Labelled scores of one group of images (float64, CPU)."""

    probabilities: torch.Tensor  # (N,) in [0, 1]
    labels: torch.Tensor  # (N,) long, 0 real / 1 fake
    logits: torch.Tensor | None = None  # (N,) or None when only probabilities are known

    @property
    def ranking(self) -> torch.Tensor:
        """Scores as dense ranks in [0, 1]: the same order and ties as the logits, but
        torchmetrics would squash values outside [0, 1] with a sigmoid, which saturates."""
        scores = self.logits if self.logits is not None else self.probabilities
        _, ranks = torch.unique(scores, sorted=True, return_inverse=True)
        return ranks.double() / max(int(ranks.max()) if len(ranks) else 1, 1)

    @classmethod
    def from_rows(cls, rows: Iterable[dict]) -> Scores:
        """From prediction rows (``label``, ``probability`` and/or ``logit``); unlabelled and
        failed rows are left out."""
        probs, labels, logits = [], [], []
        for row in rows:
            if row.get("label") not in (0, 1) or row.get("error"):
                continue
            logit, prob = row.get("logit"), row.get("probability")
            if prob is None and logit is None:
                continue
            if prob is None:
                prob = 1.0 / (1.0 + math.exp(-float(logit)))
            probs.append(float(prob))
            labels.append(int(row["label"]))
            logits.append(None if logit is None else float(logit))
        has_logits = bool(logits) and all(v is not None for v in logits)
        return cls(
            probabilities=torch.tensor(probs, dtype=torch.float64),
            labels=torch.tensor(labels, dtype=torch.long),
            logits=torch.tensor(logits, dtype=torch.float64) if has_logits else None,
        )

    def __len__(self) -> int:
        return len(self.labels)


def exact_roc(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torchmetrics' ROC, made exact in float64: it returns float32 rates, which are
    rounded back to the counts they came from (fpr * n_negative is an integer)."""
    fpr, tpr, thresholds = binary_roc(scores, labels)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    fpr = torch.round(fpr.double() * n_neg) / n_neg
    tpr = torch.round(tpr.double() * n_pos) / n_pos
    return fpr, tpr, thresholds


def equal_error_rate(fpr: torch.Tensor, tpr: torch.Tensor) -> float:
    """Where the false-positive rate equals the false-negative rate, interpolating
    linearly between the two ROC points that enclose the crossing."""
    fnr = 1.0 - tpr
    gap = fnr - fpr  # decreases along the curve, from 1 to -1
    crossed = torch.nonzero(gap <= 0)
    i = int(crossed[0]) if len(crossed) else len(gap) - 1
    if i == 0:
        return float(fpr[0])
    g0, g1 = float(gap[i - 1]), float(gap[i])
    t = g0 / (g0 - g1) if g0 != g1 else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(fpr: torch.Tensor, tpr: torch.Tensor, target: float) -> float:
    """The best true-positive rate among thresholds whose false-positive rate is at most ``target``."""
    allowed = fpr <= target + 1e-12
    return float(tpr[allowed].max())


def compute_metrics(
    scores: Scores, threshold: float = 0.5, ece_bins: int = DEFAULT_ECE_BINS
) -> dict[str, float | int | None]:
    """All of :data:`METRIC_NAMES` plus the class counts for one group of images."""
    probs, labels = scores.probabilities, scores.labels
    n_fake = int(labels.sum())
    n_real = len(labels) - n_fake
    out: dict[str, float | int | None] = {"n_real": n_real, "n_fake": n_fake}
    out.update({name: None for name in METRIC_NAMES})
    if not len(labels):
        return out
    if n_real:
        out["real_acc"] = float(binary_specificity(probs, labels, threshold=threshold))
    if n_fake:
        out["fake_acc"] = float(binary_recall(probs, labels, threshold=threshold))
    accs = [out[k] for k in ("real_acc", "fake_acc") if out[k] is not None]
    out["acc"] = sum(accs) / len(accs)
    out["ece"] = float(binary_calibration_error(probs, labels, n_bins=ece_bins, norm="l1"))
    if n_real and n_fake:
        ranking = scores.ranking
        out["ap"] = float(binary_average_precision(ranking, labels))
        out["auroc"] = float(binary_auroc(ranking, labels))
        fpr, tpr, _ = exact_roc(ranking, labels)
        out["eer"] = equal_error_rate(fpr, tpr)
        for name, target in FPR_TARGETS.items():
            out[name] = tpr_at_fpr(fpr, tpr, target)
    return out


def average_metrics(per_subset: Sequence[dict]) -> dict[str, float | int | None]:
    """The benchmark's numbers: the mean over subsets of each metric that is defined
    (counts are summed). ``n_subsets`` says how many subsets went in."""
    out: dict[str, float | int | None] = {k: sum(int(m[k]) for m in per_subset) for k in COUNT_NAMES}
    for name in METRIC_NAMES:
        values = [m[name] for m in per_subset if m.get(name) is not None]
        out[name] = sum(values) / len(values) if values else None
    out["n_subsets"] = len(per_subset)
    return out


def group_rows(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """Rows by ``subset`` (sorted by name); rows without one go to ``default``."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row.get("subset") or "default"), []).append(row)
    return dict(sorted(groups.items()))


def unique_by_path(rows: Iterable[dict]) -> list[dict]:
    """One row per image: layouts that share a real pool between generators list a real
    image once per generator; pooled numbers must count it once."""
    seen: dict[str, dict] = {}
    for row in rows:
        seen.setdefault(str(row.get("path")), row)
    return list(seen.values())


def benchmark_metrics(rows: Sequence[dict], threshold: float = 0.5, ece_bins: int = DEFAULT_ECE_BINS) -> dict:
    """``{"subsets": {name: metrics}, "average": metrics, "pooled": metrics}`` for one benchmark,
    plus ``"groups": {group: average}`` when subsets are named ``group/generator`` with more
    than one group (AIGI-Now's semantic and pixel groups)."""
    subsets = {
        name: compute_metrics(Scores.from_rows(group), threshold, ece_bins) for name, group in group_rows(rows).items()
    }
    result = {
        "subsets": subsets,
        "average": average_metrics(list(subsets.values())),
        "pooled": compute_metrics(Scores.from_rows(unique_by_path(rows)), threshold, ece_bins),
    }
    groups: dict[str, list[dict]] = {}
    for name, metrics in subsets.items():
        if "/" in name:
            groups.setdefault(name.split("/", 1)[0], []).append(metrics)
    if len(groups) > 1:
        result["groups"] = {group: average_metrics(members) for group, members in sorted(groups.items())}
    return result
