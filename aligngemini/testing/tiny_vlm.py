"""Tiny random VLMs, built offline, saved like a Hub checkpoint.

Each family gets a few-layer, narrow model with the real architecture class, a BPE
tokenizer trained here on the prompts and answers the semantic branch uses (so the
verdict words are single tokens), the family's real processor class and a chat
template in the family's format. ``save_tiny_vlm(family, folder)`` writes it with
``save_pretrained`` so that a config can name the folder as the model id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

# A corpus that covers the prompts, verdict words and rationales the branch writes.
CORPUS = (
    "You are an expert in detecting AI-generated images. Judge the semantic consistency of the image.",
    "Is this image real or fake? Look at anatomy, physics, text, lighting and object logic.",
    "Answer real or fake, then explain the evidence in one sentence.",
    "fake. The hands have six fingers and the shadows point in two directions.",
    "real. The lighting, reflections and text are consistent.",
    "fake. The text on the sign is garbled and the clock has no hands.",
    "real. Nothing in the scene breaks physics or anatomy.",
    "Real Fake real fake REAL FAKE yes no the a an of in on and is are",
    "User: Assistant: USER: ASSISTANT: system user assistant model",
)


@dataclass(frozen=True)
class TinyVLM:
    """What ``save_tiny_vlm`` wrote: the folder to name as model id, and its family."""

    folder: Path
    family: str


def train_tokenizer(special_tokens: list[str], vocab_size: int = 400, **named_tokens):
    """A byte-level BPE tokenizer trained in code; the special tokens come first.

    ``named_tokens`` (bos_token=..., extra_special_tokens={...}) go to the tokenizer class.
    """
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(CORPUS) * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **named_tokens)


# --- chat templates in each family's format ----------------------------------------------------
def _content_loop(image: str, text_suffix: str = "") -> str:
    return (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}"
        f"{{% if part['type'] == 'image' %}}{image}{{% elif part['type'] == 'text' %}}{{{{ part['text'] }}}}{text_suffix}{{% endif %}}"
        "{% endfor %}{% endif %}"
    )


CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    + _content_loop("<|vision_start|><|image_pad|><|vision_end|>")
    + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SMOLVLM = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    + _content_loop("<image>")
    + "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
LLAVA = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    + _content_loop("")
    + " {% elif message['role'] == 'user' %}USER: "
    + _content_loop("<image>\n")
    + " {% else %}ASSISTANT: "
    + _content_loop("")
    + "</s>{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
GEMMA3 = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{% if message['role'] == 'assistant' %}model{% else %}user{% endif %}\n"
    + _content_loop("<start_of_image>", "\n")
    + "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _text_sizes(hidden: int) -> dict:
    return dict(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )


def _token_ids(tokenizer, **names: str) -> dict[str, int]:
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in names.items()}


# --- builders: (tokenizer, hidden) -> (model, processor) -------------------------------------
def qwen_vl_processor(image_size: int):
    """A Qwen2-VL / Qwen2.5-VL processor (trained tokenizer, ChatML template) for square
    ``image_size`` images, and the token ids a model config must carry for it."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tokenizer = train_tokenizer(specials, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = _token_ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
                     vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>")
    ids.update(bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    pixels = image_size * image_size
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels),
        chat_template=CHATML,
    )
    return processor, ids


def _qwen_vl(version: str, hidden: int, image_size: int):
    processor, ids = qwen_vl_processor(image_size)
    head_dim = hidden // 4
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope_section(head_dim)}
    text = dict(_text_sizes(hidden), vocab_size=len(processor.tokenizer), rope_parameters=rope,
                bos_token_id=ids.pop("bos_token_id"), eos_token_id=ids.pop("eos_token_id"),
                pad_token_id=ids.pop("pad_token_id"))
    if version == "2.5":
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model

        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                      fullatt_block_indexes=[1])
    else:
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model

        vision = dict(depth=2, embed_dim=32, hidden_size=hidden, num_heads=2, mlp_ratio=2,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = Config(text_config=text, vision_config=vision, **ids, tie_word_embeddings=False)
    return Model(config), processor


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2  # temporal, height, width sections sum to head_dim / 2
    first = half - 2 * (half // 3)
    return [first, half // 3, half // 3]


def _idefics3_like(family: str, hidden: int, image_size: int):
    image_size = max(image_size, 56)
    patch, scale = 14, 2
    seq_len = (image_size // patch) ** 2 // scale**2
    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                "<image>", "<global-img>", "<video>"]
    tokenizer = train_tokenizer(specials)
    tokenizer.add_special_tokens({"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>",
                                  "pad_token": "<|endoftext|>"})
    text = dict(_text_sizes(hidden), vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=patch)
    image_kwargs = dict(do_image_splitting=False, size={"longest_edge": image_size},
                        max_image_size={"longest_edge": image_size})
    common = dict(text_config=text, vision_config=vision, scale_factor=scale,
                  image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
                  pad_token_id=tokenizer.pad_token_id)
    if family == "smolvlm":
        from transformers import (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor,
                                  SmolVLMProcessor, SmolVLMVideoProcessor)

        model = SmolVLMForConditionalGeneration(SmolVLMConfig(**common))
        processor = SmolVLMProcessor(SmolVLMImageProcessor(**image_kwargs), tokenizer,
                                     SmolVLMVideoProcessor(**image_kwargs), image_seq_len=seq_len,
                                     chat_template=SMOLVLM)
    else:
        from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor,
                                  Idefics3Processor)

        model = Idefics3ForConditionalGeneration(Idefics3Config(**common))
        processor = Idefics3Processor(Idefics3ImageProcessor(**image_kwargs), tokenizer,
                                      image_seq_len=seq_len, chat_template=SMOLVLM)
    return model, processor


def _llava(hidden: int, image_size: int):
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    patch = 14
    tokenizer = train_tokenizer(["<unk>", "<s>", "</s>", "<image>", "<pad>"])
    tokenizer.add_special_tokens({"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
                                  "pad_token": "<pad>"})
    text = dict(_text_sizes(hidden), model_type="llama", vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=image_size, patch_size=patch, projection_dim=32)
    config = LlavaConfig(text_config=text, vision_config=vision, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default",
                         tie_word_embeddings=False)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA)
    return LlavaForConditionalGeneration(config), processor


def _paligemma(hidden: int, image_size: int):
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessor

    patch = 14
    seq_len = (image_size // patch) ** 2
    tokenizer = train_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>", "<image>"])
    tokenizer.add_special_tokens({"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>",
                                  "unk_token": "<unk>"})
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = seq_len
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text = dict(_text_sizes(hidden), model_type="gemma", head_dim=hidden // 4, vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=image_size, patch_size=patch, projection_dim=hidden)
    config = PaliGemmaConfig(text_config=text, vision_config=vision, projection_dim=hidden,
                             image_token_id=processor.image_token_id, tie_word_embeddings=False)
    return PaliGemmaForConditionalGeneration(config), processor


def _gemma3(hidden: int, image_size: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    patch, tokens_per_image = 14, 4
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                "<end_of_image>", "<image_soft_token>"]
    image_tokens = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    tokenizer = train_tokenizer(specials, pad_token="<pad>", eos_token="<end_of_turn>", bos_token="<bos>",
                                unk_token="<unk>", extra_special_tokens=image_tokens)
    ids = {f"{key}_id": tokenizer.convert_tokens_to_ids(token) for key, token in image_tokens.items()}
    text = dict(_text_sizes(hidden), head_dim=hidden // 4, vocab_size=len(tokenizer), sliding_window=64,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=patch)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=tokens_per_image,
                          **ids, tie_word_embeddings=False)
    image_processor = Gemma3ImageProcessor(size={"height": image_size, "width": image_size})
    processor = Gemma3Processor(image_processor, tokenizer, chat_template=GEMMA3,
                                image_seq_length=tokens_per_image)
    return Gemma3ForConditionalGeneration(config), processor


BUILDERS: dict[str, Callable[[int, int], tuple]] = {
    "qwen2_vl": lambda hidden, size: _qwen_vl("2", hidden, size),
    "qwen2_5_vl": lambda hidden, size: _qwen_vl("2.5", hidden, size),
    "smolvlm": lambda hidden, size: _idefics3_like("smolvlm", hidden, size),
    "idefics3": lambda hidden, size: _idefics3_like("idefics3", hidden, size),
    "llava": _llava,
    "paligemma": _paligemma,
    "gemma3": _gemma3,
}
TINY_FAMILIES = tuple(BUILDERS)


def build_tiny_vlm(family: str, hidden: int = 64, image_size: int = 56, seed: int = 0):
    """(model, processor) of a tiny random VLM of ``family``; float32, eval mode."""
    if family not in BUILDERS:
        raise ValueError(f"no tiny builder for VLM family {family!r}; choose from {TINY_FAMILIES}")
    torch.manual_seed(seed)
    model, processor = BUILDERS[family](hidden, image_size)
    # With the usual 0.02 init, a 64-wide model's logits span about +-1 over the whole vocabulary:
    # no adapter could make it confident. Rows of norm ~2 give real models' logit range.
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head.normal_(0.0, 2.0 / head.shape[1] ** 0.5)
    return model.float().eval(), processor


def save_tiny_vlm(family: str, folder: str | Path, hidden: int = 64, image_size: int = 56, seed: int = 0) -> TinyVLM:
    """Write a tiny random VLM (safetensors + processor) to ``folder``; reuse it if already there."""
    folder = Path(folder)
    marker = folder / "aligngemini_tiny.json"
    wanted = {"family": family, "hidden": hidden, "image_size": image_size, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return TinyVLM(folder, family)
    model, processor = build_tiny_vlm(family, hidden, image_size, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    marker.write_text(json.dumps(wanted))
    return TinyVLM(folder, family)


def main(argv: list[str] | None = None) -> None:
    """``python -m aligngemini.testing.tiny_vlm FAMILY FOLDER``: write a tiny VLM folder."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("family", choices=TINY_FAMILIES)
    parser.add_argument("folder")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=56)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tiny = save_tiny_vlm(args.family, args.folder, args.hidden, args.image_size, args.seed)
    print(tiny.folder)


if __name__ == "__main__":
    main()
