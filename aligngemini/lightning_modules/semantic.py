"""SemanticBranch: a VLM fine-tuned with (Q)LoRA on pure semantic supervision.

The score is the logit of the "fake" verdict token against the "real" one at the answer
position; training minimises the language-model loss on the answer tokens (verdict +
rationale). The 4-bit model is built in ``configure_model`` on the strategy's root
device, so each DDP rank quantises its own copy; checkpoints hold the adapter only.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from aligngemini.datamodules.batches import SemanticBatch
from aligngemini.lightning_modules.base import CheckpointWeights, DetectorModule, default_optimizer
from aligngemini.models.semantic import AdapterSettings, SemanticVLM, build_semantic_vlm
from aligngemini.zoo.backbones import DEFAULT_VERDICT_WORDS


class SemanticBranch(DetectorModule):
    """VLM + 4-bit QLoRA; one logit per image from the verdict-token logits.

    Args:
        model_id: Hub id (e.g. ``Qwen/Qwen2.5-VL-7B-Instruct``) or a local model folder.
        revision: pinned Hub commit; for a local folder, its weights' fingerprint
            (:func:`aligngemini.models.semantic.folder_fingerprint`). With a revision the
            base can be rebuilt, so checkpoints keep only the adapter.
        family: key in ``aligngemini.zoo.backbones.VLM_FAMILIES`` (default: from the config).
        quantization: ``nf4`` (4-bit, double quantisation) or ``none`` (LoRA in the compute dtype).
        compute_dtype: ``auto`` (bf16 on GPU, float32 on CPU), ``bfloat16`` or ``float32``.
        lora_r, lora_alpha, lora_dropout: LoRA settings; ``lora_targets``: projection names
            of the language model (default: the family's attention + MLP projections).
        gradient_checkpointing: non-reentrant activation checkpointing while training.
        verdict_words: (real, fake) words that open the answer; must match the data's.
        explain: ``predict`` also generates the answer (``--explain`` sets it).
        max_new_tokens: bound on the generated answer.
        trust_remote_code: never needed for the supported families; off by default.
        optimizer, lr_scheduler, threshold, checkpoint_weights: see :class:`DetectorModule`.
    """

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        family: str | None = None,
        quantization: Literal["nf4", "none"] = "nf4",
        compute_dtype: Literal["auto", "bfloat16", "float32"] = "auto",
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        lora_targets: list[str] | None = None,
        gradient_checkpointing: bool = True,
        verdict_words: tuple[str, str] = DEFAULT_VERDICT_WORDS,
        explain: bool = False,
        max_new_tokens: int = 64,
        trust_remote_code: bool = False,
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        threshold: float = 0.5,
        checkpoint_weights: CheckpointWeights = "auto",
    ):
        super().__init__(optimizer, lr_scheduler, threshold, checkpoint_weights)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.explain = explain
        self.max_new_tokens = max_new_tokens
        self.verdict_words = tuple(verdict_words)
        self._answer_loss: torch.Tensor | None = None

    @property
    def base_is_reproducible(self) -> bool:
        return self.hparams.revision is not None

    def target_device(self) -> torch.device:
        """The rank's device: the strategy's root device under a Trainer, else where the module is."""
        trainer = self._trainer
        return trainer.strategy.root_device if trainer is not None else self.device

    def build_model(self) -> SemanticVLM:
        hp = self.hparams
        adapter = AdapterSettings(hp.lora_r, hp.lora_alpha, hp.lora_dropout,
                                  tuple(hp.lora_targets) if hp.lora_targets else None)
        return build_semantic_vlm(
            hp.model_id, hp.revision, hp.family, hp.quantization, self.target_device(), hp.compute_dtype,
            adapter, hp.gradient_checkpointing, self.verdict_words, hp.trust_remote_code,
        )

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "conversation"):
            return
        mismatches = [
            f"{name}: model {mine!r} vs data {theirs!r}"
            for name, mine, theirs in (
                ("model_id", self.hparams.model_id, datamodule.model_id),
                ("revision", self.hparams.revision, datamodule.revision),
                ("verdict_words", self.verdict_words, tuple(datamodule.conversation.verdict_words)),
            )
            if mine != theirs
        ]
        if mismatches:
            raise ValueError("semantic branch and its data disagree; set both alike: " + "; ".join(mismatches))

    # --- scores and loss ------------------------------------------------------------------
    def forward_logits(self, batch: SemanticBatch) -> torch.Tensor:
        if batch.token_labels is not None:
            logits, self._answer_loss = self.model.score_and_answer_loss(batch.inputs, batch.token_labels)
            return logits
        if not batch.prompt_inputs:
            raise ValueError("semantic batch carries neither answers nor prompts")
        self._answer_loss = None
        return self.model.score(batch.prompt_inputs)

    def compute_loss(self, logits: torch.Tensor, batch: SemanticBatch) -> torch.Tensor:
        """LM loss on the answer tokens; a batch without answers (unlabelled rows) falls back to BCE."""
        loss, self._answer_loss = self._answer_loss, None
        return loss if loss is not None else super().compute_loss(logits, batch)

    def prediction_extras(self, batch: SemanticBatch, logits: torch.Tensor) -> list[dict[str, Any]]:
        probabilities = torch.sigmoid(logits.float())
        rows = [{"verdict": self.verdict_words[int(p > self.threshold)]} for p in probabilities]
        if self.explain:
            prompts = batch.prompt_inputs
            if not prompts:
                raise ValueError("--explain needs prompt-only batches (the predict stage of SemanticDataModule)")
            for row, answer in zip(rows, self.model.generate_answers(prompts, self.max_new_tokens)):
                row["rationale"] = answer
        return rows
