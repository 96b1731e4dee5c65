"""Qwen2.5-VL-7B-Instruct's architecture with random weights, written like a Hub folder.

The shapes are the published model's (config.json of Qwen/Qwen2.5-VL-7B-Instruct); depth
can be cut for CPU benches, which extrapolate per layer. The processor is the test one
(tokenizer trained in code, Qwen's special tokens), so no file is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_7B = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000, rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
)
VISION_7B = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
    hidden_act="silu",
)


def qwen2_5_vl_7b_config(token_ids: dict[str, int], text_layers: int = 28, vision_depth: int = 32):
    from transformers import Qwen2_5_VLConfig

    ids = dict(token_ids)
    text = dict(TEXT_7B, num_hidden_layers=text_layers, bos_token_id=ids.pop("bos_token_id"),
                eos_token_id=ids.pop("eos_token_id"), pad_token_id=ids.pop("pad_token_id"))
    full_attention = [i for i in VISION_7B["fullatt_block_indexes"] if i < vision_depth] or [vision_depth - 1]
    vision = dict(VISION_7B, depth=vision_depth, fullatt_block_indexes=full_attention)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def write_random_qwen2_5_vl(folder: str | Path, text_layers: int = 28, vision_depth: int = 32,
                            image_size: int = 448, device: str = "cpu") -> Path:
    """Random bf16 weights of the 7B architecture (optionally shallower) + processor -> ``folder``."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from aligngemini.testing.tiny_vlm import qwen_vl_processor

    folder = Path(folder)
    processor, token_ids = qwen_vl_processor(image_size)
    config = qwen2_5_vl_7b_config(token_ids, text_layers, vision_depth)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    del model
    return folder
