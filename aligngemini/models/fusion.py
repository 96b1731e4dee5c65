"""Fusion of branch logits into one fake probability per image (pure ``nn.Module``s).

Two rules over a ``(B, K)`` tensor of branch logits, one column per branch ("pixel",
"semantic", extra pixel experts, ...):

* :class:`OrRule`, the paper's rule: fake when any branch's probability exceeds that
  branch's threshold (0.5 for the pixel expert; the VLM's verdict is its fake-token
  probability > 0.5). Its fused logit is the largest per-branch margin
  ``logit_k - logit(t_k)``, which is > 0 exactly when the rule fires and also ranks images.
* :class:`LogisticFusion`, this project's learned head: standardised logits -> linear
  (or one small hidden layer) -> one logit.

Either is wrapped in :class:`FusionModel`, which adds a post-hoc :class:`Calibration`
(Platt ``a*z + b`` or temperature ``z / T``), a decision threshold (possibly chosen for a
target false-positive rate) and an optional "uncertain" band. Everything fitted is a
buffer, so a checkpoint or ``state_dict`` carries it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

FusionMode = Literal["or", "logistic"]
CalibrationMethod = Literal["platt", "temperature", "none"]
PAPER_THRESHOLD = 0.5
VERDICTS = ("real", "fake", "uncertain")


def probability_to_logit(p: float | torch.Tensor, eps: float = 1e-6):
    if isinstance(p, torch.Tensor):
        p = p.clamp(eps, 1 - eps)
        return torch.log(p) - torch.log1p(-p)
    p = min(max(float(p), eps), 1 - eps)
    return math.log(p) - math.log1p(-p)


class OrRule(nn.Module):
    """Fake if any branch's probability is above its own threshold (the paper's fusion)."""

    def __init__(self, feature_names: Sequence[str], thresholds: Mapping[str, float] | None = None):
        super().__init__()
        thresholds = dict(thresholds or {})
        unknown = set(thresholds) - set(feature_names)
        if unknown:
            raise ValueError(f"OR rule: thresholds for unknown branches {sorted(unknown)}; branches: {list(feature_names)}")
        values = [float(thresholds.get(name, PAPER_THRESHOLD)) for name in feature_names]
        if any(not 0.0 < t < 1.0 for t in values):
            raise ValueError(f"OR rule: thresholds must be probabilities in (0, 1), got {values}")
        self.feature_names = tuple(feature_names)
        self.register_buffer("thresholds", torch.tensor(values, dtype=torch.float64))

    def margins(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, K) per-branch logit margins over their thresholds: > 0 where that branch says fake."""
        offsets = probability_to_logit(self.thresholds).to(logits.dtype)
        return logits - offsets

    def fires(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the rule as the authors' evaluation code writes it, on probabilities."""
        probs = torch.sigmoid(logits.double())
        return (probs > self.thresholds).any(dim=1)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.margins(logits).max(dim=1).values


class LogisticFusion(nn.Module):
    """Learned head on branch logits. Inputs are standardised with statistics of the
    training split (buffers set once by :meth:`set_standardisation`) so that a VLM's
    ±20 logits and a pixel expert's ±3 train at the same learning rate."""

    def __init__(self, num_features: int, hidden: int = 0):
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.GELU(), nn.Linear(hidden, 1))
        else:
            self.net = nn.Linear(num_features, 1)
            # Start from "average of the standardised branch logits": every branch's logit
            # already points towards fake, so training starts on the right side.
            nn.init.constant_(self.net.weight, 1.0 / num_features)
            nn.init.zeros_(self.net.bias)
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))
        self.register_buffer("standardised", torch.tensor(False))

    @torch.no_grad()
    def set_standardisation(self, features: torch.Tensor) -> None:
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(features.std(dim=0).clamp_min(1e-3) if len(features) > 1 else torch.ones_like(self.feature_std))
        self.standardised.fill_(True)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        x = (logits - self.feature_mean) / self.feature_std
        return self.net(x).squeeze(-1)


class Calibration(nn.Module):
    """``a * z + b``: Platt scaling fits both, temperature scaling fits ``a = 1/T`` only."""

    def __init__(self, method: CalibrationMethod = "platt"):
        super().__init__()
        if method not in ("platt", "temperature", "none"):
            raise ValueError(f"calibration must be platt, temperature or none, got {method!r}")
        self.method = method
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("bias", torch.tensor(0.0))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.scale + self.bias

    @torch.no_grad()
    def reset(self) -> None:
        self.scale.fill_(1.0)
        self.bias.fill_(0.0)

    def fit(self, logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> bool:
        """Minimise the log loss of the calibrated logits on a held-out split.

        Returns False (and keeps the identity) when the split lacks one of the classes.
        """
        if self.method == "none":
            return False
        labels = labels.double().flatten()
        if labels.numel() == 0 or labels.min() == labels.max():
            return False
        z = logits.detach().double().flatten()
        log_scale = torch.zeros((), dtype=torch.float64, requires_grad=True)  # a = exp(.) stays > 0
        bias = torch.zeros((), dtype=torch.float64, requires_grad=self.method == "platt")
        params = [log_scale, bias] if self.method == "platt" else [log_scale]
        optimizer = torch.optim.LBFGS(params, lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")
        loss_fn = nn.BCEWithLogitsLoss()

        def closure():
            optimizer.zero_grad()
            loss = loss_fn(z * log_scale.exp() + bias, labels)
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        self.scale.fill_(float(log_scale.detach().exp()))
        self.bias.fill_(float(bias.detach()))
        return True


def threshold_for_fpr(real_probs: torch.Tensor, target_fpr: float) -> float:
    """Smallest threshold such that at most ``target_fpr`` of the real images score above it."""
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target FPR must be in [0, 1), got {target_fpr}")
    if real_probs.numel() == 0:
        raise ValueError("cannot choose a threshold for a target FPR without real images")
    ordered = real_probs.double().flatten().sort(descending=True).values
    allowed = int(math.floor(target_fpr * len(ordered) + 1e-9))
    return float(ordered[min(allowed, len(ordered) - 1)])


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """Mean |accuracy - confidence| of the fake probability over equal-width bins, weighted by count."""
    probs, labels = probs.double().flatten(), labels.double().flatten()
    if probs.numel() == 0:
        return float("nan")
    index = (probs * bins).long().clamp(0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += float(members.sum()) * abs(float(probs[members].mean() - labels[members].mean()))
    return total / probs.numel()


class FusionModel(nn.Module):
    """Branch logits (B, K) -> calibrated fused logit (B,), verdicts and contributions."""

    def __init__(
        self,
        feature_names: Sequence[str],
        mode: FusionMode = "logistic",
        thresholds: Mapping[str, float] | None = None,
        hidden: int = 0,
        calibration: CalibrationMethod = "platt",
        decision_threshold: float = PAPER_THRESHOLD,
        uncertain_band: float = 0.0,
    ):
        super().__init__()
        if not feature_names or len(set(feature_names)) != len(feature_names):
            raise ValueError(f"fusion: feature names must be unique and non-empty, got {list(feature_names)}")
        if not 0.0 <= uncertain_band < 0.5:
            raise ValueError(f"fusion: uncertain_band must be in [0, 0.5), got {uncertain_band}")
        self.feature_names = tuple(feature_names)
        self.mode = mode
        if mode == "or":
            self.rule: nn.Module = OrRule(feature_names, thresholds)
        elif mode == "logistic":
            if thresholds:
                raise ValueError("fusion: per-branch thresholds apply to mode 'or' only")
            self.rule = LogisticFusion(len(feature_names), hidden)
        else:
            raise ValueError(f"fusion: mode must be 'or' or 'logistic', got {mode!r}")
        # The paper's OR rule is a hard verdict: calibrating it would move its 0.5 point.
        self.calibration = Calibration(calibration if mode == "logistic" else "none")
        self.uncertain_band = float(uncertain_band)
        self.register_buffer("decision_threshold", torch.tensor(float(decision_threshold), dtype=torch.float64))

    def raw_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return self.rule(logits)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.calibration(self.raw_logits(logits))

    def is_fake(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) bool. In OR mode at the default threshold this is exactly the paper's rule."""
        if isinstance(self.rule, OrRule) and float(self.decision_threshold) == PAPER_THRESHOLD:
            return self.rule.fires(logits)
        return torch.sigmoid(self(logits).double()) > self.decision_threshold

    def verdicts(self, logits: torch.Tensor) -> list[str]:
        fake = self.is_fake(logits)
        probs = torch.sigmoid(self(logits).double())
        near = (probs - self.decision_threshold).abs() < self.uncertain_band
        return ["uncertain" if n else ("fake" if f else "real") for f, n in zip(fake.tolist(), near.tolist())]

    @torch.no_grad()
    def contributions(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, K) what each branch adds to the fused logit.

        OR mode: each branch's margin over its threshold (the fused logit is their max).
        Logistic mode: fused logit minus the fused logit with that branch set to its
        training mean; for a linear head these are its exact additive terms.
        """
        if isinstance(self.rule, OrRule):
            return self.rule.margins(logits)
        fused = self(logits)
        out = torch.empty_like(logits)
        for k in range(logits.shape[1]):
            neutral = logits.clone()
            neutral[:, k] = self.rule.feature_mean[k]
            out[:, k] = fused - self(neutral)
        return out

    @torch.no_grad()
    def choose_threshold(self, logits: torch.Tensor, labels: torch.Tensor, target_fpr: float) -> float:
        probs = torch.sigmoid(self(logits).double())
        value = threshold_for_fpr(probs[labels == 0], target_fpr)
        self.decision_threshold.fill_(value)
        return value
