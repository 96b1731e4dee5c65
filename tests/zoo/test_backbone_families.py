"""Zoo-side contract over every VLM family in aligngemini.zoo.backbones: the fields a catalog
entry and a model card rely on. (tests/semantic checks each entry against the architecture.)"""

import dataclasses
import re

import pytest

from aligngemini.zoo.backbones import VLM_FAMILIES, VLMFamily
from aligngemini.zoo.specs import REPO_ID


@pytest.mark.parametrize("name", sorted(VLM_FAMILIES))
def test_family_entry_has_the_fields_the_zoo_needs(name):
    family = VLM_FAMILIES[name]
    assert isinstance(family, VLMFamily) and family.name == name
    assert family.model_types and all(t and t == t.strip() for t in family.model_types)
    assert REPO_ID.match(family.example), f"{name}: example must be a Hub id a base ModelRef can name"
    assert family.language_model and not family.language_model.endswith(".")
    assert family.lora_targets and all(re.fullmatch(r"[A-Za-z_][\w]*", t) for t in family.lora_targets)
    assert all(p and not p.endswith(".") for p in family.skip_quantization)
    assert not any(p.startswith(family.language_model) for p in family.skip_quantization), \
        f"{name}: the language model carries the adapter and must be quantised"
    with pytest.raises(dataclasses.FrozenInstanceError):  # an entry cannot be changed after import
        family.language_model = "model"


def test_each_model_type_belongs_to_one_family():
    owners = [t for family in VLM_FAMILIES.values() for t in family.model_types]
    assert len(owners) == len(set(owners))
