"""Contract over every VLM family: the table matches the real architecture classes."""

from __future__ import annotations

import re

import pytest

from aligngemini.models.semantic import end_of_answer_id, verdict_token_ids
from aligngemini.testing.tiny_vlm import TINY_FAMILIES, build_tiny_vlm
from aligngemini.zoo.backbones import VLM_FAMILIES, family_for_model_type, get_family


def test_every_family_has_a_tiny_builder():
    assert set(VLM_FAMILIES) == set(TINY_FAMILIES)


@pytest.mark.parametrize("name", sorted(VLM_FAMILIES))
def test_family_entry_matches_the_architecture(name):
    family = get_family(name)
    model, processor = build_tiny_vlm(name, hidden=32)
    assert family_for_model_type(model.config.model_type) is family
    modules = dict(model.named_modules())
    for prefix in family.skip_quantization:
        assert prefix in modules, f"{name}: skip prefix {prefix} is not a module"
    targets = [n for n in modules if re.fullmatch(family.lora_target_regex(), n)]
    assert targets and all(n.startswith(family.language_model + ".") for n in targets)
    # every projection of the language model is targeted: 7 per decoder layer
    assert len(targets) == 7 * model.config.get_text_config().num_hidden_layers
    assert not any(n.startswith(p) for n in targets for p in family.skip_quantization)
    real_id, fake_id = verdict_token_ids(processor.tokenizer, family)
    assert real_id != fake_id
    assert end_of_answer_id(processor.tokenizer, family) not in (real_id, fake_id)


def test_unknown_model_type_names_the_table():
    with pytest.raises(ValueError, match="VLM_FAMILIES"):
        family_for_model_type("not_a_vlm")
