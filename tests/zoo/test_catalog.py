import hashlib

import pytest

from aligngemini.zoo.catalog import (
    CATALOG,
    Catalog,
    CatalogSource,
    DuplicateEntryError,
    HubSource,
    LocalSource,
    UnknownModelError,
)
from aligngemini.zoo.specs import FileSpec, SpecError, WeightsSpec

from .contract import check_entry


def entry(name: str, version: str, **overrides) -> WeightsSpec:
    """A well-formed entry whose hashes are computed from stand-in bytes (never published)."""
    files = tuple(FileSpec(p, hashlib.sha256(f"{name}{version}{p}".encode()).hexdigest(), 10)
                  for p in ("README.md", "config.json", "model.safetensors"))
    fields = dict(name=name, version=version, family="pixel", repo_id=f"org/{name}",
                  commit=hashlib.sha1(f"{name}{version}".encode()).hexdigest(), files=files)
    return WeightsSpec(**{**fields, **overrides})


@pytest.fixture
def catalog():
    return Catalog(entry("pixel-vit", v) for v in ("1.0.0", "1.2.0", "1.10.1", "2.0.0", "1.2.3"))


@pytest.mark.parametrize("ref, version", [
    ("pixel-vit", "2.0.0"),
    ("pixel-vit@v1", "1.10.1"),  # numeric, not string, ordering
    ("pixel-vit@v1.2", "1.2.3"),
    ("pixel-vit@v1.2.0", "1.2.0"),
    ("pixel-vit@1.2.0", "1.2.0"),
])
def test_names_resolve_to_the_highest_matching_version(catalog, ref, version):
    source = catalog.resolve(ref)
    assert isinstance(source, CatalogSource) and source.spec.version == version


def test_hub_and_local_references(catalog, tmp_path):
    assert catalog.resolve("hf-hub:org/repo@v1.0.0") == HubSource("org/repo", "v1.0.0")
    assert catalog.resolve("hf-hub:org/repo") == HubSource("org/repo", "main")
    assert catalog.resolve(f"local-dir:{tmp_path}") == LocalSource(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        catalog.resolve(f"local-dir:{tmp_path / 'missing'}")
    with pytest.raises(UnknownModelError, match="hf-hub:org/repo"):
        catalog.resolve("hf-hub:not-a-repo-id")


def test_unknown_names_and_versions_say_what_exists(catalog):
    with pytest.raises(UnknownModelError, match="did you mean pixel-vit"):
        catalog.resolve("pixel-vitt")
    with pytest.raises(UnknownModelError, match="published: 1.0.0, 1.2.0, 1.2.3, 1.10.1, 2.0.0"):
        catalog.resolve("pixel-vit@v3")
    with pytest.raises(UnknownModelError, match="v1, v1.2 or v1.2.0"):
        catalog.resolve("pixel-vit@latest")


def test_duplicate_entries_raise(catalog):
    with pytest.raises(DuplicateEntryError, match="pixel-vit@v1.0.0 is already in the catalog"):
        catalog.register(entry("pixel-vit", "1.0.0"))
    with pytest.raises(DuplicateEntryError, match="both claim org/pixel-vit tag v2.0.0"):
        catalog.register(entry("other-name", "2.0.0", repo_id="org/pixel-vit"))


@pytest.mark.parametrize("overrides, message", [
    ({"commit": "v1.0.0"}, "40-hex sha"),
    ({"family": "vision"}, "family must be one of"),
    ({"weights": "model.bin"}, "files must include model.bin"),
])
def test_malformed_entries_are_rejected(overrides, message):
    with pytest.raises(SpecError, match=message):
        entry("pixel-vit", "1.0.0", **overrides)


def test_versions_are_semantic():
    with pytest.raises(SpecError, match="MAJOR.MINOR.PATCH"):
        entry("pixel-vit", "1.0")
    with pytest.raises(SpecError, match="without 'v'"):
        entry("pixel-vit", "v1.0.0")
    with pytest.raises(SpecError, match="lowercase"):
        entry("Pixel ViT", "1.0.0")


def test_pickle_weights_cannot_be_catalogued():
    files = (FileSpec("config.json", "0" * 64, 1), FileSpec("model.bin", "1" * 64, 1))
    with pytest.raises(SpecError, match="safetensors, not a pickle"):
        entry("pixel-vit", "1.0.0", files=files, weights="model.bin")


def test_printed_entry_round_trips(catalog):
    for spec in catalog:
        check_entry(spec)


@pytest.mark.parametrize("spec", list(CATALOG), ids=lambda s: s.ref)
def test_published_catalog_entry_contract(spec):
    check_entry(spec, CATALOG)



def test_a_printed_entry_pastes_into_the_catalog_module():
    import aligngemini.zoo.catalog as catalog_module
    from aligngemini.zoo.specs import LoraSpec, ModelRef, PreprocessCfg, QuantSpec

    spec = entry("semantic-qwen", "1.0.0", family="semantic", metrics=(("auroc", 0.9),),
                 base_models=(ModelRef("Qwen/Qwen2.5-VL-7B-Instruct", "a" * 40),), quant=QuantSpec(),
                 lora=LoraSpec(16, 32.0, 0.05, ("q_proj", "v_proj")),
                 preprocess=PreprocessCfg("aligngemini.datamodules.semantic.SemanticDataModule",
                                          {"max_image_side": 448, "scramble": {"enabled": True}}))
    namespace = dict(vars(catalog_module))
    exec(f"ENTRIES = ({spec.to_python()}\n)", namespace)
    assert catalog_module.Catalog(namespace["ENTRIES"]).get(spec.name, spec.version) == spec
