"""Semantic supervision view: one conversation per image -> processor batches.

A record becomes (system prompt, question + image, answer). The answer starts with the
verdict word and goes on with the record's rationale when it has one; the loss is on
the answer tokens only. Training images are *scrambled* (down/up-resize, JPEG, noise)
so that pixel evidence is gone and only content can be learned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from aligngemini.datamodules.base import RecordsDataModule
from aligngemini.datamodules.batches import SemanticBatch
from aligngemini.datamodules.images import decode_image
from aligngemini.datamodules.records import FAKE, REAL, ImageRecord
from aligngemini.datamodules.transforms import ConfigMixin, ScrambleConfig
from aligngemini.zoo.backbones import DEFAULT_VERDICT_WORDS, VLMFamily

IGNORE_INDEX = -100
SYSTEM_PROMPT = (
    "You are an expert in detecting AI-generated images. You judge whether the content of an image "
    "is semantically consistent: anatomy, physics, text, lighting and object logic."
)
QUESTION = "Is this image real or fake? Answer real or fake, then explain the evidence in one sentence."


@dataclass(frozen=True)
class ConversationConfig(ConfigMixin):
    """The prompt and answer format: saved with the branch, shared by training and prediction."""

    system_prompt: str = SYSTEM_PROMPT
    question: str = QUESTION
    verdict_words: tuple[str, str] = DEFAULT_VERDICT_WORDS  # (real, fake)

    def answer(self, record: ImageRecord) -> str:
        if record.label not in (REAL, FAKE):
            raise ValueError(f"{record.path}: an answer needs a label (0 real / 1 fake)")
        verdict = self.verdict_words[record.label]
        rationale = (record.rationale or "").strip()
        return f"{verdict}. {rationale}" if rationale else f"{verdict}."

    def prompt_text(self, processor, family: VLMFamily) -> str:
        """The prompt as text, generation prompt included; the processor expands the image tokens."""
        if not family.chat_template:  # prefix-LM: image tokens, then the processor adds bos and "\n"
            return processor.image_token + f"{self.system_prompt} {self.question}".strip()
        question = self.question if family.system_role else f"{self.system_prompt}\n\n{self.question}"
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        if family.system_role and self.system_prompt:
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode_prompts(processor, family: VLMFamily, conversation: ConversationConfig,
                   images: list[Image.Image]) -> dict[str, torch.Tensor]:
    """Processor batch of prompts (left-padded), one image each. Also used by the detector."""
    text = conversation.prompt_text(processor, family)
    inputs = processor(text=[text] * len(images), images=[[im] for im in images], return_tensors="pt", padding=True)
    inputs.pop("labels", None)  # PaliGemma's processor adds its own; ours come from the answers
    return dict(inputs)


def append_answers(prompt_inputs: dict[str, torch.Tensor], answer_ids: list[list[int]], pad_id: int,
                   answer_token_types: dict[str, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Prompt + answer per row, left-padded again; labels are -100 outside the answers."""
    input_ids, mask = prompt_inputs["input_ids"], prompt_inputs["attention_mask"].bool()
    per_token = [k for k, v in prompt_inputs.items() if torch.is_tensor(v) and v.shape == input_ids.shape]
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in per_token + ["labels"]}
    for i, answer in enumerate(answer_ids):
        answer_t = torch.tensor(answer, dtype=input_ids.dtype)
        for key in per_token:
            prompt_part = prompt_inputs[key][i][mask[i]]
            if key == "input_ids":
                tail = answer_t
            else:
                fill = 1 if key == "attention_mask" else answer_token_types.get(key, 0)
                tail = torch.full_like(answer_t, fill, dtype=prompt_part.dtype)
            rows[key].append(torch.cat([prompt_part, tail]))
        rows["labels"].append(torch.cat([torch.full((int(mask[i].sum()),), IGNORE_INDEX), answer_t]))
    length = max(len(r) for r in rows["input_ids"])
    pad_values = {"input_ids": pad_id, "labels": IGNORE_INDEX}
    padded = {
        key: torch.stack([torch.cat([r.new_full((length - len(r),), pad_values.get(key, 0)), r]) for r in values])
        for key, values in rows.items()
    }
    labels = padded.pop("labels")
    full = {k: v for k, v in prompt_inputs.items() if k not in per_token}
    full.update(padded)
    return full, labels


class SemanticDataModule(RecordsDataModule):
    """Records -> conversations -> :class:`SemanticBatch` for the semantic branch.

    Args:
        model_id: the VLM whose processor and chat template format the conversations;
            must match the branch's ``model_id``.
        revision: pinned Hub revision of ``model_id``.
        family: VLM family key (default: from the model's config).
        system_prompt, question: the conversation; ``verdict_words``: (real, fake) words
            that start the answer (default ``real``/``fake``).
        scramble: pixel scrambling (``enabled``, ``down_factor``, ``jpeg_quality``,
            ``noise_std``); on for training by default.
        scramble_eval: also scramble validation/test/predict images.
        max_image_side: downscale larger images to this side before the processor (bounds
            the image tokens); None keeps the processor's own sizing.
        **kwargs: the shared options of :class:`RecordsDataModule` (root, batch_size, ...).
    """

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        family: str | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        question: str = QUESTION,
        verdict_words: tuple[str, str] = DEFAULT_VERDICT_WORDS,
        scramble: dict[str, Any] | None = None,
        scramble_eval: bool = False,
        max_image_side: int | None = 448,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.model_id, self.revision, self.family_name = model_id, revision, family
        self.conversation = ConversationConfig(system_prompt, question, tuple(verdict_words))
        self.scramble = ScrambleConfig.from_dict(scramble)
        self.scramble_eval = scramble_eval
        self.max_image_side = max_image_side
        self._processor = None
        self._family: VLMFamily | None = None

    @property
    def processor(self):
        if self._processor is None:
            from aligngemini.models.semantic import load_processor, resolve_family

            self._family = resolve_family(self.model_id, self.revision, self.family_name)
            self._processor = load_processor(self.model_id, self.revision)
        return self._processor

    @property
    def family(self) -> VLMFamily:
        _ = self.processor
        return self._family

    def make_units(self, records: list[ImageRecord], stage: str) -> list[tuple[ImageRecord, bool]]:
        """(record, prompt only?): predict batches carry prompts alone, the other stages the answers too."""
        return [(record, stage == "predict") for record in records]

    def load_unit(self, unit: tuple[ImageRecord, bool], rng: random.Random, train: bool) -> tuple:
        record, prompt_only = unit
        image = decode_image(record.path, self.limits)
        if self.max_image_side and max(image.size) > self.max_image_side:
            image.thumbnail((self.max_image_side, self.max_image_side), Image.BICUBIC)
        if train or self.scramble_eval:
            image = self.scramble.apply(image, rng)
        return record, image, prompt_only

    def collate_units(self, samples: list[tuple], skipped: list[tuple[str, str]]) -> SemanticBatch:
        records = [record for record, _, _ in samples]
        labels = torch.tensor([float(r.label) for r in records])
        batch = SemanticBatch(labels=labels, paths=[r.path for r in records], subsets=[r.subset for r in records],
                              skipped=skipped)
        prompts = encode_prompts(self.processor, self.family, self.conversation, [im for _, im, _ in samples])
        if samples[0][2] or bool((labels < 0).any()):
            batch.prompt_inputs = prompts
            return batch
        batch.inputs, batch.token_labels = append_answers(
            prompts, [self.answer_ids(r) for r in records], self.processor.tokenizer.pad_token_id,
            self.family.answer_token_types,
        )
        return batch

    def answer_ids(self, record: ImageRecord) -> list[int]:
        from aligngemini.models.semantic import end_of_answer_id

        tokenizer = self.processor.tokenizer
        text = self.family.answer_prefix + self.conversation.answer(record)
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [end_of_answer_id(tokenizer, self.family)]
