"""The semantic view: conversations, loss mask on the answer, scrambling, bad files."""

from __future__ import annotations

import shutil

import pytest
import torch

from aligngemini.datamodules.semantic import IGNORE_INDEX, SemanticDataModule
from semantic_constants import RATIONALE, SHORT_PROMPTS


def make_data(tiny_vlm_dir, manifest, family="qwen2_vl", **kwargs):
    data = SemanticDataModule(model_id=tiny_vlm_dir(family), root=str(manifest), batch_size=4,
                              **{**SHORT_PROMPTS, **kwargs})
    data.setup("fit")
    return data


@pytest.mark.parametrize("family", ["qwen2_vl", "paligemma"])
def test_labels_cover_exactly_the_answer(tiny_vlm_dir, semantic_manifest, family):
    data = make_data(tiny_vlm_dir, semantic_manifest, family)
    batch = next(iter(data.train_dataloader()))
    tokenizer = data.processor.tokenizer
    prompts = next(iter(data.predict_dataloader())).prompt_inputs
    for i, label in enumerate(batch.labels.tolist()):
        answer = batch.token_labels[i][batch.token_labels[i] != IGNORE_INDEX]
        text = tokenizer.decode(answer, skip_special_tokens=True)
        expected = f"fake. {RATIONALE}" if label == 1 else "real."
        assert text.strip() == expected
        assert int(answer[-1]) == tokenizer.convert_tokens_to_ids(data.family.end_of_answer or tokenizer.eos_token)
        # the answer sits at the right edge and follows the prompt unchanged
        n = len(answer)
        assert torch.equal(batch.inputs["input_ids"][i, -n:], answer)
    # the prompt part of a training row is the prompt-only encoding (same processor path)
    mask = batch.inputs["attention_mask"][0].bool() & (batch.token_labels[0] == IGNORE_INDEX)
    assert mask.sum() > 0
    if family == "paligemma":  # answers are the causal suffix of a prefix-LM
        types = batch.inputs["token_type_ids"]
        assert bool((types[batch.token_labels != IGNORE_INDEX] == 1).all())
        assert bool((types[mask.unsqueeze(0) & (batch.token_labels == IGNORE_INDEX)] == 0).all())
    assert "labels" not in batch.inputs and "labels" not in prompts


def test_prompt_of_training_row_equals_predict_prompt(tiny_vlm_dir, semantic_manifest):
    data = make_data(tiny_vlm_dir, semantic_manifest)
    train = next(iter(data.test_dataloader()))  # labelled, unscrambled (eval), same records as predict
    prompt = next(iter(data.predict_dataloader())).prompt_inputs
    for i in range(len(train)):
        row = train.inputs["input_ids"][i][train.token_labels[i] == IGNORE_INDEX]
        row = row[train.inputs["attention_mask"][i][: len(row)].bool()]
        expected = prompt["input_ids"][i][prompt["attention_mask"][i].bool()]
        assert torch.equal(row, expected)


def test_scrambling_changes_training_pixels_only(tiny_vlm_dir, semantic_manifest):
    data = make_data(tiny_vlm_dir, semantic_manifest)
    unit = data.make_units(data.records["train"], "train")[0]
    import random

    _, scrambled, _ = data.load_unit(unit, random.Random(0), train=True)
    _, clean, _ = data.load_unit(unit, random.Random(0), train=False)
    _, again, _ = data.load_unit(unit, random.Random(0), train=True)
    import numpy as np

    assert not np.array_equal(np.asarray(scrambled), np.asarray(clean))
    assert np.array_equal(np.asarray(scrambled), np.asarray(again))  # seeded: reproducible


def test_bad_image_is_skipped_and_named(tiny_vlm_dir, semantic_manifest, tmp_path):
    folder = tmp_path / "data"
    (folder / "real").mkdir(parents=True)
    (folder / "fake").mkdir()
    sources = sorted(semantic_manifest.parent.glob("*.png"))
    shutil.copy(sources[0], folder / "real" / "a.png")
    shutil.copy(sources[1], folder / "fake" / "b.png")
    (folder / "fake" / "broken.png").write_bytes(b"not an image")
    data = SemanticDataModule(model_id=tiny_vlm_dir("qwen2_vl"), predict_root=str(folder), batch_size=4,
                              **SHORT_PROMPTS)
    data.setup("predict")
    batch = next(iter(data.predict_dataloader()))
    assert len(batch) == 2 and batch.prompt_inputs["input_ids"].shape[0] == 2
    assert batch.skipped and batch.skipped[0][0].endswith("broken.png")
