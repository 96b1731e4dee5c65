"""The semantic branch's pure model: a VLM with (Q)LoRA adapters that scores a verdict.

``build_semantic_vlm`` loads any family in :data:`aligngemini.zoo.backbones.VLM_FAMILIES`
through ``AutoModelForImageTextToText`` (4-bit nf4 with double quantisation by default),
prepares it for k-bit training, turns on non-reentrant gradient checkpointing and adds
LoRA to the language model. :class:`SemanticVLM` turns processor batches into

* a verdict logit: ``log P(fake token) - log P(real token)`` at the answer position,
* the language-model loss on the answer tokens,
* a bounded, greedy generation of the answer (verdict + rationale).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from aligngemini.errors import require
from aligngemini.zoo.backbones import DEFAULT_VERDICT_WORDS, VLMFamily, family_for_model_type, get_family
from aligngemini.zoo.rebuild import sha256_of

log = logging.getLogger(__name__)
Quantization = Literal["nf4", "none"]
IGNORE_INDEX = -100


@dataclass(frozen=True)
class AdapterSettings:
    """LoRA on the language model (paper-like default: r=16, alpha=32)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] | None = None  # projection names; None: the family's


def compute_dtype_for(device: torch.device, name: str = "auto") -> torch.dtype:
    """bf16 on GPU, float32 on CPU (bitsandbytes' CPU kernels and the CPU tests want float32)."""
    if name != "auto":
        return getattr(torch, name)
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over a local model folder's weight files: the 'revision' of an unpublished base."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights in this model folder")
    for path in files:
        digest.update(f"{path.name}:{sha256_of(path)}\n".encode())
    return digest.hexdigest()[:16]


def check_local_revision(model_id: str, revision: str | None) -> None:
    """A local folder pinned by ``revision`` must still hold the weights it was pinned to."""
    if revision is None or not Path(model_id).is_dir():
        return
    actual = folder_fingerprint(model_id)
    if actual != revision:
        raise ValueError(
            f"{model_id}: the weights' fingerprint is {actual} but the config pins revision {revision}; "
            "the adapter was trained on a different base model"
        )


def resolve_family(model_id: str, revision: str | None = None, family: str | None = None) -> VLMFamily:
    if family:
        return get_family(family)
    from transformers import AutoConfig

    hub_revision = None if Path(model_id).is_dir() else revision
    config = AutoConfig.from_pretrained(model_id, revision=hub_revision)
    return family_for_model_type(config.model_type)


def load_processor(model_id: str, revision: str | None = None):
    """The family's processor, left-padding (answers and the scored position sit at the right edge)."""
    from transformers import AutoProcessor

    hub_revision = None if Path(model_id).is_dir() else revision
    processor = AutoProcessor.from_pretrained(model_id, revision=hub_revision)
    processor.tokenizer.padding_side = "left"
    return processor


def verdict_token_ids(tokenizer, family: VLMFamily, words: tuple[str, str] = DEFAULT_VERDICT_WORDS) -> tuple[int, int]:
    """(real id, fake id): the first token of each verdict word as it follows the generation prompt."""
    ids = [tokenizer(family.answer_prefix + word, add_special_tokens=False)["input_ids"] for word in words]
    first = tuple(int(i[0]) for i in ids)
    if first[0] == first[1]:
        raise ValueError(
            f"verdict words {words} start with the same token ({first[0]}) in this tokenizer; "
            "choose words whose first tokens differ (set verdict_words)"
        )
    for word, tokens in zip(words, ids):
        if len(tokens) > 1:
            log.info("verdict word %r is %d tokens; the score uses the first", word, len(tokens))
    return first


def end_of_answer_id(tokenizer, family: VLMFamily) -> int:
    token = family.end_of_answer or tokenizer.eos_token
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no end-of-answer token {token!r}")
    return int(token_id)


def load_base_vlm(model_id: str, revision: str | None, quantization: Quantization, device: torch.device,
                  dtype: torch.dtype, family: VLMFamily, trust_remote_code: bool = False) -> nn.Module:
    """The frozen base model, 4-bit (nf4, double quantisation) or in ``dtype``, on ``device``."""
    from transformers import AutoModelForImageTextToText

    hub_revision = None if Path(model_id).is_dir() else revision
    kwargs = dict(revision=hub_revision, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
    if quantization == "nf4":
        require("bitsandbytes", "qlora", "4-bit QLoRA")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=torch.uint8,
            llm_int8_skip_modules=list(family.skip_quantization),
        )
        kwargs["device_map"] = {"": torch.device(device)}
    elif quantization != "none":
        raise ValueError(f"quantization must be 'nf4' or 'none', got {quantization!r}")
    model = AutoModelForImageTextToText.from_pretrained(model_id, **kwargs)
    if quantization == "nf4":
        _keep_one_cpu_weight_layout(model)
        return model
    return model.to(device)


def _keep_one_cpu_weight_layout(model: nn.Module) -> None:
    """bitsandbytes repacks 4-bit weights for a faster CPU kernel on the first no-grad forward;
    a training step after that (validation runs first) fails in the packed kernel's bias add.
    One layout for training and inference avoids it and keeps scores identical across modes."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def add_adapters(model: nn.Module, family: VLMFamily, adapter: AdapterSettings, quantized: bool,
                 gradient_checkpointing: bool = True) -> nn.Module:
    """Freeze the base, prepare it for k-bit training, add LoRA to the language model only."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    checkpointing_kwargs = {"use_reentrant": False}
    if quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs=checkpointing_kwargs,
        )
    else:
        model.requires_grad_(False)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing_kwargs)
    config = LoraConfig(
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=family.lora_target_regex(adapter.targets),
        bias="none",
    )
    model = get_peft_model(model, config)
    return model.train()  # from_pretrained leaves eval mode; checkpointing and dropout act in train mode


class SemanticVLM(nn.Module):
    """A (Q)LoRA VLM that answers "real"/"fake" (+ rationale) after a prompt.

    Batches are left-padded, so the scored position is the prompt's last token and the
    answer tokens are the last ones of each row.
    """

    def __init__(self, vlm: nn.Module, tokenizer, family: VLMFamily, verdict_words: tuple[str, str]):
        super().__init__()
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.family = family
        self.verdict_words = tuple(verdict_words)
        real_id, fake_id = verdict_token_ids(tokenizer, family, self.verdict_words)
        self.register_buffer("verdict_ids", torch.tensor([real_id, fake_id]), persistent=False)
        self.end_id = end_of_answer_id(tokenizer, family)

    def _verdict_logit(self, next_token_logits: torch.Tensor) -> torch.Tensor:
        pair = next_token_logits.float()[:, self.verdict_ids]
        return pair[:, 1] - pair[:, 0]

    def score(self, prompt_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) logit of the fake verdict against the real one, from a prompt-only batch."""
        logits = self.vlm(**prompt_inputs, logits_to_keep=1, use_cache=False).logits
        return self._verdict_logit(logits[:, -1])

    def score_and_answer_loss(self, inputs: dict[str, torch.Tensor],
                              token_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward over prompt + answer: (verdict logits (B,), mean LM loss on the answer tokens)."""
        answer_lengths = (token_labels != IGNORE_INDEX).sum(dim=1)
        keep = int(answer_lengths.max()) + 1  # the answer tokens and the position that predicts the first
        logits = self.vlm(**inputs, logits_to_keep=keep, use_cache=False).logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        verdict_logits = self._verdict_logit(logits[rows, keep - 1 - answer_lengths])
        targets = token_labels[:, token_labels.shape[1] - keep + 1 :]
        loss = nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
        )
        return verdict_logits, loss

    @torch.no_grad()
    def generate_answer_ids(self, prompt_inputs: dict[str, torch.Tensor], max_new_tokens: int = 64) -> list[list[int]]:
        """Greedy answer tokens (verdict + rationale), at most ``max_new_tokens`` each, stop token dropped."""
        stop = sorted({self.end_id, *_as_list(self.tokenizer.eos_token_id)})
        generated = self.vlm.generate(
            **prompt_inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
            pad_token_id=self.tokenizer.pad_token_id, use_cache=True,
        )
        answers = []
        for row in generated[:, prompt_inputs["input_ids"].shape[1] :].tolist():
            ends = [i for i, token in enumerate(row) if token in stop or token == self.tokenizer.pad_token_id]
            answers.append(row[: ends[0]] if ends else row)
        return answers

    def generate_answers(self, prompt_inputs: dict[str, torch.Tensor], max_new_tokens: int = 64) -> list[str]:
        ids = self.generate_answer_ids(prompt_inputs, max_new_tokens)
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def build_semantic_vlm(
    model_id: str,
    revision: str | None = None,
    family: str | None = None,
    quantization: Quantization = "nf4",
    device: torch.device | str = "cpu",
    compute_dtype: str = "auto",
    adapter: AdapterSettings = AdapterSettings(),
    gradient_checkpointing: bool = True,
    verdict_words: tuple[str, str] | None = None,
    trust_remote_code: bool = False,
) -> SemanticVLM:
    """Load ``model_id`` (Hub id at ``revision`` or a local folder) and wrap it for the branch."""
    check_local_revision(model_id, revision)
    vlm_family = resolve_family(model_id, revision, family)
    device = torch.device(device)
    dtype = compute_dtype_for(device, compute_dtype)
    base = load_base_vlm(model_id, revision, quantization, device, dtype, vlm_family, trust_remote_code)
    vlm = add_adapters(base, vlm_family, adapter, quantization == "nf4", gradient_checkpointing)
    tokenizer = load_processor(model_id, revision).tokenizer
    return SemanticVLM(vlm, tokenizer, vlm_family, tuple(verdict_words or DEFAULT_VERDICT_WORDS))
