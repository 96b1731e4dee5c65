"""The template every AlignGemini model follows (pixel branch, semantic branch, fusion head).

A subclass builds a pure ``nn.Module`` in :meth:`build_model` and turns a typed batch
into one logit per image in :meth:`forward_logits`; losses, metrics, logging of bad
files, optimisers, prediction rows and trimmed checkpoints live here once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryAveragePrecision

from aligngemini.datamodules.batches import RecordBatch
from aligngemini.datamodules.images import BadFileLog

log = logging.getLogger(__name__)
CheckpointWeights = Literal["auto", "trainable", "all"]


def default_optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)


class BalancedAccuracy(Metric):
    """The paper's accuracy: mean of real accuracy and fake accuracy at a fixed threshold."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("real_correct", "real_total", "fake_correct", "fake_total"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        pred_fake = probs > self.threshold
        target = target.bool()
        self.fake_correct += (pred_fake & target).sum()
        self.fake_total += target.sum()
        self.real_correct += (~pred_fake & ~target).sum()
        self.real_total += (~target).sum()

    def compute(self) -> torch.Tensor:
        accs = [c / t for c, t in ((self.real_correct, self.real_total), (self.fake_correct, self.fake_total)) if t > 0]
        return torch.stack(accs).mean() if accs else torch.tensor(float("nan"))


def detection_metrics(threshold: float = 0.5, ranking: bool = True) -> MetricCollection:
    """Accuracy and the paper's balanced accuracy; with ``ranking``, exact AUROC and AP too
    (those keep every score of the epoch, so training, which can see millions, skips them)."""
    metrics = {"acc": BinaryAccuracy(threshold=threshold), "bal_acc": BalancedAccuracy(threshold=threshold)}
    if ranking:
        metrics |= {"auroc": BinaryAUROC(), "ap": BinaryAveragePrecision()}
    return MetricCollection(metrics)


class DetectorModule(L.LightningModule):
    """Template base class. Subclasses implement ``build_model`` and ``forward_logits``.

    Args:
        optimizer: callable that takes the trainable parameters (LightningCLI injects it).
        lr_scheduler: optional callable that takes the optimizer.
        threshold: probability above which an image is called fake (paper: 0.5).
        checkpoint_weights: what checkpoints hold. ``trainable`` keeps only parameters
            that train (LoRA, head); ``all`` keeps everything; ``auto`` picks
            ``trainable`` when the frozen base can be rebuilt from a named source.
    """

    monitor = "val_bal_acc"

    def __init__(
        self,
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        threshold: float = 0.5,
        checkpoint_weights: CheckpointWeights = "auto",
    ):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.threshold = threshold
        self.checkpoint_weights = checkpoint_weights
        self.model: nn.Module | None = None
        self.strict_loading = False  # trimmed checkpoints hold a subset of the keys
        self._bad_files: BadFileLog | None = None
        self.configure_losses()
        self.configure_metrics()

    # --- what subclasses provide -------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def forward_logits(self, batch: RecordBatch) -> torch.Tensor:
        raise NotImplementedError

    @property
    def base_is_reproducible(self) -> bool:
        """True when frozen weights come from a named, pinned source (pretrained timm/Hub)."""
        return False

    def prediction_extras(self, batch: RecordBatch, logits: torch.Tensor) -> list[dict[str, Any]]:
        """Branch-specific columns added to each prediction row (e.g. a rationale)."""
        return [{} for _ in range(len(batch))]

    # --- template ----------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.model is None:  # idempotent: Lightning may call it more than once
            self.model = self.build_model()

    def configure_losses(self) -> None:
        self.criterion = nn.BCEWithLogitsLoss()

    def configure_metrics(self) -> None:
        self.train_metrics = detection_metrics(self.threshold, ranking=False).clone(prefix="train_")
        metrics = detection_metrics(self.threshold)
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")

    def forward(self, batch: RecordBatch) -> torch.Tensor:
        return self.forward_logits(batch)

    def compute_loss(self, logits: torch.Tensor, batch: RecordBatch) -> torch.Tensor:
        return self.criterion(logits, batch.labels.to(logits.dtype))

    def _step(self, batch: RecordBatch, stage: str) -> torch.Tensor | None:
        self.report_skipped(batch)
        labelled = batch.labels >= 0 if len(batch) else None
        if not len(batch) or (stage == "train" and not bool(labelled.all())):
            return None
        logits = self.forward_logits(batch)
        loss = self.compute_loss(logits[labelled], _select(batch, labelled))
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(torch.sigmoid(logits[labelled].detach().float()), batch.labels[labelled].long())
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=len(batch), sync_dist=stage != "train")
        return loss

    def training_step(self, batch: RecordBatch, batch_idx: int) -> torch.Tensor | None:
        return self._step(batch, "train")

    def validation_step(self, batch: RecordBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: RecordBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics = getattr(self, f"{stage}_metrics")
        if any(m.update_called for m in metrics.values()):
            self.log_dict(metrics.compute(), prog_bar=stage != "train", sync_dist=False)
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def predict_step(self, batch: RecordBatch, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        self.report_skipped(batch)
        rows: list[dict[str, Any]] = [
            {"path": path, "subset": None, "label": None, "logit": None, "probability": None, "error": reason}
            for path, reason in batch.skipped
        ]
        if not len(batch):
            return rows
        logits = self.forward_logits(batch).float()
        probs = torch.sigmoid(logits)
        extras = self.prediction_extras(batch, logits)
        for i, path in enumerate(batch.paths):
            label = int(batch.labels[i])
            rows.append(
                {
                    "path": path,
                    "subset": batch.subsets[i],
                    "label": label if label >= 0 else None,
                    "logit": float(logits[i]),
                    "probability": float(probs[i]),
                    **extras[i],
                }
            )
        return rows

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self).__name__}: no trainable parameters; check the training mode")
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}

    # --- bad files -----------------------------------------------------------------------
    def report_skipped(self, batch: RecordBatch) -> None:
        if not batch.skipped:
            return
        if self._bad_files is None:
            self._bad_files = BadFileLog(self.bad_file_report_path())
        for path, reason in batch.skipped:
            if self._bad_files.add(path, reason):
                log.warning("skipped bad file %s: %s", path, reason)

    def bad_file_report_path(self) -> Path | None:
        """``bad_files.jsonl`` beside the checkpoints (or in the run's root folder)."""
        try:
            trainer = self.trainer
        except RuntimeError:
            return None
        callback = trainer.checkpoint_callback
        folder = getattr(callback, "dirpath", None) or trainer.default_root_dir
        return Path(folder) / "bad_files.jsonl"

    @property
    def bad_file_count(self) -> int:
        return len(self._bad_files) if self._bad_files else 0

    # --- checkpoints -------------------------------------------------------------------
    def trainable_state_keys(self) -> set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        mode = self.checkpoint_weights
        if mode == "auto":
            mode = "trainable" if self.base_is_reproducible else "all"
        if mode == "trainable":
            keep = self.trainable_state_keys()
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["aligngemini_checkpoint_weights"] = mode

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.configure_model()  # build before Lightning loads the (trimmed) state dict
        missing_trainable = self.trainable_state_keys() - set(checkpoint.get("state_dict", {}))
        if missing_trainable and checkpoint.get("state_dict"):
            raise KeyError(
                f"checkpoint does not hold trainable weights {sorted(missing_trainable)[:5]}...; "
                "was it written by a different model configuration?"
            )


def _select(batch: RecordBatch, mask: torch.Tensor) -> RecordBatch:
    if bool(mask.all()):
        return batch
    return replace(batch, labels=batch.labels[mask])
