"""What each VLM family needs beyond the generic transformers path: one table entry each.

The semantic branch loads every family through ``AutoModelForImageTextToText`` and
``AutoProcessor``; an entry only says where the language model lives (LoRA goes there
and nowhere else), which modules stay out of 4-bit quantisation (full module prefixes,
as ``llm_int8_skip_modules`` needs them), how the verdict words are tokenised at the
answer position, and the quirks of the family's prompt format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Attention and MLP projections of Llama-style decoders (Qwen2, Llama, Gemma, SmolLM).
DECODER_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_VERDICT_WORDS = ("real", "fake")


@dataclass(frozen=True)
class VLMFamily:
    """One VLM family.

    Attributes:
        name: the family's key in :data:`VLM_FAMILIES`.
        model_types: ``config.model_type`` values that belong to the family.
        language_model: module prefix of the language model inside the
            ``*ForConditionalGeneration`` class (transformers 5 layout).
        skip_quantization: full module prefixes kept in the compute dtype when loading
            in 4 bit (vision tower, projector, output head).
        lora_targets: projection names, matched only under ``language_model``.
        answer_prefix: text the family's template puts between the generation prompt and
            the answer (``"Assistant:"`` + ``" fake"``); part of the verdict token.
        chat_template: False for prefix-LM families (PaliGemma) whose processor builds
            the prompt from plain text.
        system_role: False when the template has no system turn; the system prompt is
            then put in front of the question.
        end_of_answer: token that ends the assistant turn; None means the tokenizer's eos.
        answer_token_types: per-token processor outputs (``token_type_ids``) and the value
            that answer tokens take. PaliGemma marks the suffix 1 so that the answer stays
            causal while the prefix attends both ways.
        example: a public checkpoint of the family (for docs and the GPU bench).
    """

    name: str
    model_types: tuple[str, ...]
    language_model: str
    skip_quantization: tuple[str, ...]
    lora_targets: tuple[str, ...] = DECODER_PROJECTIONS
    answer_prefix: str = ""
    chat_template: bool = True
    system_role: bool = True
    end_of_answer: str | None = None
    answer_token_types: dict[str, int] = field(default_factory=dict)
    example: str = ""

    def lora_target_regex(self, targets: tuple[str, ...] | list[str] | None = None) -> str:
        """peft ``target_modules`` regex (full match): the projections of the language model only."""
        names = "|".join(re.escape(t) for t in (targets or self.lora_targets))
        return rf"{re.escape(self.language_model)}\..*\.({names})"


_VISION_TOWER = ("model.vision_tower", "model.multi_modal_projector", "lm_head")

VLM_FAMILIES: dict[str, VLMFamily] = {
    family.name: family
    for family in (
        VLMFamily(
            name="qwen2_5_vl",
            model_types=("qwen2_5_vl",),
            language_model="model.language_model",
            skip_quantization=("model.visual", "lm_head"),
            example="Qwen/Qwen2.5-VL-7B-Instruct",
        ),
        VLMFamily(
            name="qwen2_vl",
            model_types=("qwen2_vl",),
            language_model="model.language_model",
            skip_quantization=("model.visual", "lm_head"),
            example="Qwen/Qwen2-VL-7B-Instruct",
        ),
        VLMFamily(
            name="smolvlm",
            model_types=("smolvlm",),
            language_model="model.text_model",
            skip_quantization=("model.vision_model", "model.connector", "lm_head"),
            answer_prefix=" ",
            example="HuggingFaceTB/SmolVLM-256M-Instruct",
        ),
        VLMFamily(
            name="idefics3",
            model_types=("idefics3",),
            language_model="model.text_model",
            skip_quantization=("model.vision_model", "model.connector", "lm_head"),
            answer_prefix=" ",
            example="HuggingFaceM4/Idefics3-8B-Llama3",
        ),
        VLMFamily(
            name="llava",
            model_types=("llava",),
            language_model="model.language_model",
            skip_quantization=_VISION_TOWER,
            answer_prefix=" ",
            system_role=False,
            example="llava-hf/llava-1.5-7b-hf",
        ),
        VLMFamily(
            name="paligemma",
            model_types=("paligemma",),
            language_model="model.language_model",
            skip_quantization=_VISION_TOWER,
            chat_template=False,
            system_role=False,
            answer_token_types={"token_type_ids": 1},
            example="google/paligemma2-3b-pt-224",
        ),
        VLMFamily(
            name="gemma3",
            model_types=("gemma3",),
            language_model="model.language_model",
            skip_quantization=_VISION_TOWER,
            end_of_answer="<end_of_turn>",
            example="google/gemma-3-4b-it",
        ),
    )
}


def family_for_model_type(model_type: str) -> VLMFamily:
    """The family whose ``model_types`` include ``model_type`` (from the model's config.json)."""
    for family in VLM_FAMILIES.values():
        if model_type in family.model_types:
            return family
    known = sorted(t for f in VLM_FAMILIES.values() for t in f.model_types)
    raise ValueError(
        f"VLM model_type {model_type!r} has no entry in aligngemini.zoo.backbones.VLM_FAMILIES "
        f"(known: {known}); add one entry there to support it"
    )


def get_family(name: str) -> VLMFamily:
    try:
        return VLM_FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown VLM family {name!r}; choose from {sorted(VLM_FAMILIES)}") from None
