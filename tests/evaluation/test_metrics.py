"""Every metric against scikit-learn (a test-only oracle), and the paper protocol by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from aligngemini.evaluation.metrics import Scores, benchmark_metrics, compute_metrics


def _sklearn_ece(labels, probs, n_bins):
    prob_true, prob_pred = calibration_curve(labels, probs, n_bins=n_bins, strategy="uniform")
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(bins[1:-1], probs, side="right"), minlength=n_bins)
    weights = counts[counts > 0] / len(probs)
    return float(np.sum(weights * np.abs(prob_true - prob_pred)))


def _sklearn_metrics(labels, logits, n_bins=15):
    probs = 1.0 / (1.0 + np.exp(-logits))
    pred = probs > 0.5
    fpr, tpr, _ = skm.roc_curve(labels, logits, drop_intermediate=False)
    return {
        "real_acc": skm.accuracy_score(labels[labels == 0], pred[labels == 0]),
        "fake_acc": skm.accuracy_score(labels[labels == 1], pred[labels == 1]),
        "acc": skm.balanced_accuracy_score(labels, pred),
        "ap": skm.average_precision_score(labels, logits),
        "auroc": skm.roc_auc_score(labels, logits),
        # The usual EER recipe: the root of 1 - fpr - tpr(fpr) on the interpolated curve.
        "eer": brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0),
        "tpr_at_fpr_1": tpr[fpr <= 0.01].max(),
        "tpr_at_fpr_5": tpr[fpr <= 0.05].max(),
        "ece": _sklearn_ece(labels, probs, n_bins),
    }


@pytest.mark.parametrize("seed, n, ties", [(0, 500, False), (1, 1000, False), (2, 300, True), (3, 57, True)])
def test_every_metric_agrees_with_sklearn(seed, n, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = rng.normal(0, 1.5, n) + 1.2 * labels
    if ties:  # quantised scores: many thresholds with several images each
        logits = np.round(logits * 2) / 2
    scores = Scores(torch.sigmoid(torch.tensor(logits)), torch.tensor(labels), torch.tensor(logits))
    ours = compute_metrics(scores, threshold=0.5, ece_bins=15)
    oracle = _sklearn_metrics(labels, logits)
    assert ours["n_real"] == int((labels == 0).sum()) and ours["n_fake"] == int(labels.sum())
    for name, expected in oracle.items():
        assert ours[name] == pytest.approx(float(expected), abs=1e-6), name


def test_probabilities_alone_rank_like_logits():
    rng = np.random.default_rng(5)
    labels = torch.tensor(rng.integers(0, 2, 200))
    logits = torch.tensor(rng.normal(0, 3, 200))
    with_logits = compute_metrics(Scores(torch.sigmoid(logits), labels, logits))
    without = compute_metrics(Scores(torch.sigmoid(logits), labels, None))
    assert with_logits == pytest.approx(without, abs=1e-9)


def test_paper_protocol_matches_a_hand_computation():
    # subset "a": reals 0.1 0.7 0.2 0.4 -> 3/4 called real; fakes 0.9 0.6 0.3 -> 2/3 called fake.
    # subset "b": reals 0.5 (exactly the threshold: called real) 0.8 -> 1/2; fakes 0.95 0.51 -> 2/2.
    # subset "c": fakes only 0.2 0.99 0.7 0.6 -> 3/4; its acc is its fake accuracy.
    table = [("a", 0, 0.1), ("a", 0, 0.7), ("a", 0, 0.2), ("a", 0, 0.4), ("a", 1, 0.9), ("a", 1, 0.6),
             ("a", 1, 0.3), ("b", 0, 0.5), ("b", 0, 0.8), ("b", 1, 0.95), ("b", 1, 0.51),
             ("c", 1, 0.2), ("c", 1, 0.99), ("c", 1, 0.7), ("c", 1, 0.6)]
    rows = [{"path": f"{i}.png", "subset": s, "label": y, "probability": p} for i, (s, y, p) in enumerate(table)]
    result = benchmark_metrics(rows)
    a, b, c = (result["subsets"][k] for k in "abc")
    assert (a["real_acc"], a["fake_acc"], a["acc"]) == pytest.approx((3 / 4, 2 / 3, (3 / 4 + 2 / 3) / 2))
    assert (b["real_acc"], b["fake_acc"], b["acc"]) == pytest.approx((1 / 2, 1.0, 3 / 4))
    assert c["real_acc"] is None and c["acc"] == pytest.approx(3 / 4) and c["auroc"] is None
    average = result["average"]
    assert average["acc"] == pytest.approx(((3 / 4 + 2 / 3) / 2 + 3 / 4 + 3 / 4) / 3)
    assert average["real_acc"] == pytest.approx((3 / 4 + 1 / 2) / 2)  # c has no reals
    assert average["n_real"] == 6 and average["n_fake"] == 9 and average["n_subsets"] == 3
    pooled = result["pooled"]
    assert pooled["real_acc"] == pytest.approx(4 / 6) and pooled["fake_acc"] == pytest.approx(7 / 9)


def test_shared_real_pool_counts_once_when_pooled():
    rows = [{"path": "r.png", "subset": s, "label": 0, "probability": 0.2} for s in ("x", "y")]
    rows += [{"path": f"{s}.png", "subset": s, "label": 1, "probability": 0.9} for s in ("x", "y")]
    result = benchmark_metrics(rows)
    assert result["subsets"]["x"]["n_real"] == 1 and result["pooled"]["n_real"] == 1
    assert result["pooled"]["n_fake"] == 2


def test_failed_and_unlabelled_rows_are_left_out():
    rows = [{"path": "a", "label": 1, "probability": 0.9}, {"path": "b", "label": None, "probability": 0.1},
            {"path": "c", "label": 0, "probability": None, "logit": None, "error": "truncated"},
            {"path": "d", "label": 0, "logit": -2.0}]
    scores = Scores.from_rows(rows)
    assert scores.labels.tolist() == [1, 0]
    assert scores.probabilities[1] == pytest.approx(1 / (1 + np.exp(2.0)))


def test_group_averages_for_group_slash_generator_subsets():
    rows = []
    for i, (subset, fake_prob) in enumerate([("semantic/a", 0.9), ("semantic/b", 0.4), ("pixel/c", 0.8)]):
        rows += [{"path": f"r{i}", "subset": subset, "label": 0, "probability": 0.1},
                 {"path": f"f{i}", "subset": subset, "label": 1, "probability": fake_prob}]
    groups = benchmark_metrics(rows)["groups"]
    assert groups["semantic"]["acc"] == pytest.approx((1.0 + 0.5) / 2) and groups["semantic"]["n_subsets"] == 2
    assert groups["pixel"]["acc"] == pytest.approx(1.0)
    assert "groups" not in benchmark_metrics(rows[:2])
