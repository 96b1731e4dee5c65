"""FusionHead: the third sibling. Branch logits in, one calibrated probability out.

``mode="or"`` is the paper's rule (nothing to train; ``fit`` records the rule, and the
FPR threshold when ``target_fpr`` is set, in ``last.ckpt``; ``test``/``predict`` evaluate it). ``mode="logistic"`` trains a small head
on the training split; at the end of every validation epoch, the validation split (the
held-out *calibration* split, see :class:`~aligngemini.datamodules.fusion.FusionDataModule`)
refits the Platt/temperature calibration and, when ``target_fpr`` is set, the decision
threshold. Both are buffers, so every checkpoint saved after that epoch carries the
calibration that matches its weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from aligngemini.datamodules.batches import FusionBatch, RecordBatch
from aligngemini.lightning_modules.base import DetectorModule
from aligngemini.models.fusion import (
    CalibrationMethod,
    FusionMode,
    FusionModel,
    expected_calibration_error,
    threshold_for_fpr,
)


def fusion_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=0.05, weight_decay=0.0)


class FusionHead(DetectorModule):
    """Fuses branch logits (pixel expert(s), semantic verdict) into one probability.

    Args:
        mode: ``or`` (paper: fake if any branch is above its threshold) or ``logistic``.
        feature_names: the branches, in any order; batches are matched to them by name.
        thresholds: OR mode, per-branch probability thresholds (default 0.5 each, as the paper).
        hidden: logistic mode, width of one hidden layer (0: plain logistic regression).
        calibration: ``platt``, ``temperature`` or ``none``, fitted on the calibration split.
        target_fpr: choose the decision threshold so that at most this fraction of the
            calibration split's real images is called fake (default: ``threshold``).
        uncertain_band: probabilities within this distance of the decision threshold get
            the verdict ``uncertain``.
    """

    monitor = "val_bal_acc"

    def __init__(
        self,
        mode: FusionMode = "logistic",
        feature_names: list[str] = ("pixel", "semantic"),
        thresholds: dict[str, float] | None = None,
        hidden: int = 0,
        calibration: CalibrationMethod = "platt",
        target_fpr: float | None = None,
        uncertain_band: float = 0.0,
        optimizer: OptimizerCallable = fusion_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        threshold: float = 0.5,
        checkpoint_weights: Literal["auto", "trainable", "all"] = "all",
    ):
        super().__init__(optimizer, lr_scheduler, threshold, checkpoint_weights)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.mode = mode
        self.feature_names = tuple(feature_names)
        self.thresholds = dict(thresholds or {})
        self.hidden = hidden
        self.calibration_method = calibration
        self.target_fpr = target_fpr
        self.uncertain_band = uncertain_band
        if mode == "or":
            self.automatic_optimization = False  # nothing to train: fit only runs validation
        self._calibration_logits: list[torch.Tensor] = []
        self._calibration_labels: list[torch.Tensor] = []
        self.configure_model()  # tiny and device-agnostic: build now so buffers load with the state dict

    def build_model(self) -> FusionModel:
        return FusionModel(
            self.feature_names,
            mode=self.mode,
            thresholds=self.thresholds,
            hidden=self.hidden,
            calibration=self.calibration_method,
            decision_threshold=self.threshold,
            uncertain_band=self.uncertain_band,
        )

    # --- inputs ------------------------------------------------------------------------
    def branch_logits(self, batch: FusionBatch) -> torch.Tensor:
        """Batch features reordered to this head's ``feature_names``."""
        names = tuple(batch.feature_names)
        if names == self.feature_names:
            return batch.features
        missing = [n for n in self.feature_names if n not in names]
        if missing:
            raise ValueError(f"fusion head expects branches {list(self.feature_names)}; the data lacks {missing}")
        return batch.features[:, [names.index(n) for n in self.feature_names]]

    def forward_logits(self, batch: FusionBatch) -> torch.Tensor:
        return self.model(self.branch_logits(batch))

    # --- training ----------------------------------------------------------------------
    def on_train_start(self) -> None:
        """Standardise the inputs with training-split statistics (once: not on resume)."""
        rule = self.model.rule
        loader = self.trainer.train_dataloader
        if self.mode != "logistic" or bool(rule.standardised) or not isinstance(loader, DataLoader):
            return
        features = []
        for batch in loader:
            self.report_skipped(batch)  # the skipped rows ride with the first batch of this pass
            if len(batch):
                features.append(self.branch_logits(batch))
        if features:
            rule.set_standardisation(torch.cat(features).to(self.device))

    def training_step(self, batch: RecordBatch, batch_idx: int) -> torch.Tensor | None:
        if self.mode == "or":
            self.report_skipped(batch)
            return None
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: RecordBatch, batch_idx: int) -> None:
        """Collect raw head logits; metrics are computed after calibration, at epoch end."""
        self.report_skipped(batch)
        if not len(batch):
            return
        labelled = batch.labels >= 0
        raw = self.model.raw_logits(self.branch_logits(batch))[labelled]
        labels = batch.labels[labelled]
        if len(labels):
            self._calibration_logits.append(raw.detach())
            self._calibration_labels.append(labels)
            self.log("val_loss", self.criterion(self.model.calibration(raw), labels), batch_size=len(labels))

    def on_validation_epoch_end(self) -> None:
        if not self._calibration_logits:
            return super().on_validation_epoch_end()
        raw = torch.cat(self._calibration_logits)
        labels = torch.cat(self._calibration_labels)
        self._calibration_logits, self._calibration_labels = [], []
        if self._fitting:
            self.fit_calibration(raw, labels)
        logits = self.model.calibration(raw)
        probs = torch.sigmoid(logits.float())
        self.val_metrics.update(probs, labels.long())
        self.log("val_ece", expected_calibration_error(probs, labels), prog_bar=True)
        super().on_validation_epoch_end()

    @property
    def _fitting(self) -> bool:
        trainer = self._trainer
        return trainer is not None and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    @torch.no_grad()
    def fit_calibration(self, raw_logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit calibration, then the FPR threshold, on held-out raw head logits."""
        if self.mode == "logistic":
            self.model.calibration.reset()
            self.model.calibration.fit(raw_logits, labels)
        if self.target_fpr is not None:
            probs = torch.sigmoid(self.model.calibration(raw_logits).double())
            self.model.decision_threshold.fill_(threshold_for_fpr(probs[labels == 0], self.target_fpr))

    def on_fit_end(self) -> None:
        """OR mode takes no optimizer steps, so ModelCheckpoint never fires: write
        ``last.ckpt`` here so that ``fit`` leaves a head the detector can load."""
        callback = self.trainer.checkpoint_callback
        if self.mode == "or" and callback is not None and callback.dirpath:
            self.trainer.save_checkpoint(Path(callback.dirpath) / "last.ckpt")

    def configure_optimizers(self) -> Any:
        if self.mode == "or":
            return None
        return super().configure_optimizers()

    # --- outputs -----------------------------------------------------------------------
    def explain_logits(self, branch_logits: torch.Tensor) -> list[dict[str, Any]]:
        """Per image: verdict and each branch's contribution to the fused logit."""
        verdicts = self.model.verdicts(branch_logits)
        contributions = self.model.contributions(branch_logits)
        rows = []
        for i, verdict in enumerate(verdicts):
            row: dict[str, Any] = {"verdict": verdict}
            for k, name in enumerate(self.feature_names):
                row[f"{name}_probability"] = float(torch.sigmoid(branch_logits[i, k]))
                row[f"{name}_contribution"] = float(contributions[i, k])
            rows.append(row)
        return rows

    def prediction_extras(self, batch: RecordBatch, logits: torch.Tensor) -> list[dict[str, Any]]:
        return self.explain_logits(self.branch_logits(batch))

