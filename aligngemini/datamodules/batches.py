"""Typed batches. Lightning moves dataclass fields that are tensors to the device."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class RecordBatch:
    """What every batch carries about its images, whatever the branch."""

    labels: torch.Tensor  # (B,) float: 0 real, 1 fake, -1 unlabelled
    paths: list[str]
    subsets: list[str]
    # (path, reason) of files dropped while this batch was assembled (skip policy).
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class PixelBatch(RecordBatch):
    images: torch.Tensor = None  # (B, 3, H, W) float in [0, 1]; the model normalises


@dataclass
class SemanticBatch(RecordBatch):
    # Processor output for prompt + answer (input_ids, attention_mask, pixel_values, ...).
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    # Token labels: -100 everywhere except the answer tokens.
    token_labels: torch.Tensor | None = None
    # Processor output for the prompt alone (generation prompt appended): scoring and --explain.
    prompt_inputs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class FusionBatch(RecordBatch):
    features: torch.Tensor = None  # (B, K) branch logits, in the order of `feature_names`
    feature_names: tuple[str, ...] = ()


def empty_like_skipped(skipped: list[tuple[str, str]]) -> RecordBatch:
    """A batch in which every file was bad: steps skip it, the reports still see the files."""
    return RecordBatch(labels=torch.empty(0), paths=[], subsets=[], skipped=skipped)
