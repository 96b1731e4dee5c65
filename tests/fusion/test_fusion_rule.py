"""The pure fusion modules: the paper's OR rule, calibration, FPR thresholds, verdicts."""

from __future__ import annotations

import itertools

import pytest
import torch

from aligngemini.models.fusion import (
    Calibration,
    FusionModel,
    expected_calibration_error,
    probability_to_logit,
    threshold_for_fpr,
)

PIXEL_PROBS = (0.0, 0.2, 0.49, 0.5, 0.500001, 0.51, 0.9, 1.0)
VLM_VERDICTS = (0.0, 1.0)  # the authors use the VLM's hard verdict


def logits_of(rows):
    return torch.tensor([[probability_to_logit(p) for p in row] for row in rows], dtype=torch.float32)


def test_or_rule_is_the_paper_rule_on_every_combination():
    rows = list(itertools.product(PIXEL_PROBS, VLM_VERDICTS))
    model = FusionModel(["pixel", "semantic"], mode="or")
    fake = model.is_fake(logits_of(rows)).tolist()
    assert fake == [pixel > 0.5 or vlm == 1.0 for pixel, vlm in rows]
    # The fused probability agrees with the verdict and the verdict strings say the same.
    fused = torch.sigmoid(model(logits_of(rows)))
    assert (fused > 0.5).tolist() == fake
    assert model.verdicts(logits_of(rows)) == ["fake" if f else "real" for f in fake]


def test_or_rule_second_pixel_expert_with_its_own_threshold():
    rows = [(0.4, 0.65, 0.0), (0.4, 0.75, 0.0), (0.6, 0.1, 0.0), (0.1, 0.1, 1.0), (0.5, 0.7, 0.0)]
    model = FusionModel(["pixel", "pixel_flux", "semantic"], mode="or", thresholds={"pixel_flux": 0.7})
    assert model.is_fake(logits_of(rows)).tolist() == [p > 0.5 or f > 0.7 or s > 0.5 for p, f, s in rows]
    # contributions: each branch's margin; the one that fired is positive
    margins = model.contributions(logits_of(rows))
    assert margins[1, 1] > 0 and margins[0].max() < 0


def test_or_rule_rejects_thresholds_for_unknown_branches():
    with pytest.raises(ValueError, match="unknown branches"):
        FusionModel(["pixel", "semantic"], mode="or", thresholds={"vlm": 0.5})


def test_platt_recovers_a_known_miscalibration():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(4000, generator=generator) * 3
    labels = torch.bernoulli(torch.sigmoid(0.4 * z - 0.8), generator=generator)
    platt = Calibration("platt")
    assert platt.fit(z, labels)
    assert platt.scale.item() == pytest.approx(0.4, abs=0.05)
    assert platt.bias.item() == pytest.approx(-0.8, abs=0.15)
    before = expected_calibration_error(torch.sigmoid(z), labels)
    after = expected_calibration_error(torch.sigmoid(platt(z)), labels)
    assert after < before / 3
    temperature = Calibration("temperature")
    temperature.fit(z, labels)
    assert temperature.bias.item() == 0.0 and 0.2 < temperature.scale.item() < 0.6


def test_calibration_keeps_identity_without_both_classes():
    calibration = Calibration("platt")
    assert not calibration.fit(torch.randn(10), torch.zeros(10))
    assert calibration.scale.item() == 1.0 and calibration.bias.item() == 0.0


@pytest.mark.parametrize("target", [0.0, 0.05, 0.1, 0.5])
def test_threshold_for_fpr_is_the_tightest_meeting_the_target(target):
    real = torch.rand(200, generator=torch.Generator().manual_seed(1))
    t = threshold_for_fpr(real, target)
    assert (real > t).float().mean() <= target
    lower = real[real < t].max() if (real < t).any() else None
    if lower is not None:  # any lower threshold would exceed the target
        assert (real > lower).float().mean() > target


def test_fusion_model_fpr_threshold_and_uncertain_band():
    model = FusionModel(["pixel", "semantic"], mode="logistic", calibration="none", uncertain_band=0.1)
    logits = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, -5.0]])
    assert model.verdicts(logits) == ["uncertain", "fake", "real"]
    labels = torch.tensor([0, 1, 0])
    chosen = model.choose_threshold(logits, labels, target_fpr=0.0)
    assert chosen == pytest.approx(0.5)
    assert model.verdicts(torch.tensor([[0.3, 0.3]])) == ["uncertain"]


def test_linear_contributions_add_up_to_the_fused_logit():
    model = FusionModel(["pixel", "semantic", "pixel_flux"], mode="logistic")
    model.rule.set_standardisation(torch.randn(50, 3) * 4 + 1)
    with torch.no_grad():
        model.rule.net.weight.copy_(torch.tensor([[0.7, -0.2, 1.3]]))
        model.rule.net.bias.fill_(0.3)
        model.calibration.scale.fill_(2.0)
        model.calibration.bias.fill_(-0.5)
    x = torch.randn(8, 3)
    baseline = model(model.rule.feature_mean.expand(1, 3))
    assert torch.allclose(model.contributions(x).sum(dim=1) + baseline, model(x), atol=1e-5)


def test_hidden_layer_head_contributions_vanish_at_the_training_mean():
    torch.manual_seed(0)
    model = FusionModel(["pixel", "semantic"], mode="logistic", hidden=8)
    model.rule.set_standardisation(torch.randn(40, 2) * 2)
    x = torch.randn(6, 2)
    x[:, 1] = model.rule.feature_mean[1]  # semantic at its mean: it moved nothing
    contributions = model.contributions(x)
    assert torch.allclose(contributions[:, 1], torch.zeros(6), atol=1e-6)
    assert contributions[:, 0].abs().sum() > 0
