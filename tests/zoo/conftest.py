"""Zoo fixtures: a loopback Hub server, the real huggingface_hub client pointed at it,
and tiny models of each family built in code."""

from __future__ import annotations

import pytest
import torch

from aligngemini.testing.hub_server import HubServer


@pytest.fixture(scope="session")
def hub_server():
    with HubServer() as server:
        yield server


@pytest.fixture
def hub(hub_server, monkeypatch, tmp_path):
    """Online against the loopback Hub (HF_ENDPOINT), with a fresh download cache."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_TOKEN", "hf_loopback_test_token")  # the loopback Hub accepts any bearer token
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    return hub_server


@pytest.fixture
def offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def tiny_pixel():
    from aligngemini.lightning_modules.pixel import PixelBranch

    torch.manual_seed(0)
    return PixelBranch(backbone="test_resnet", pretrained=False, crop_size=32, mode="full")


def tiny_fusion():
    from aligngemini.lightning_modules.fusion import FusionHead

    torch.manual_seed(0)
    module = FusionHead(mode="logistic", hidden=4)
    with torch.no_grad():  # a trained head: non-trivial weights and calibration buffers
        for param in module.parameters():
            param.uniform_(-1, 1)
        for name, buffer in module.named_buffers():
            if buffer.is_floating_point():
                buffer.add_(torch.rand_like(buffer) * 0.5)
    return module


def pixel_scores(module, seed: int = 0) -> torch.Tensor:
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return module.eval().score_images(images)


def fusion_scores(module) -> torch.Tensor:
    from aligngemini.datamodules.batches import FusionBatch

    features = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    batch = FusionBatch(labels=torch.full((5,), -1.0), paths=[str(i) for i in range(5)], subsets=["x"] * 5,
                        features=features, feature_names=("pixel", "semantic"))
    with torch.no_grad():
        return module.eval().forward_logits(batch)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    from aligngemini.testing.tiny_vlm import save_tiny_vlm

    return save_tiny_vlm("qwen2_vl", tmp_path_factory.mktemp("tiny_vlm") / "qwen2_vl")


def tiny_semantic(folder):
    from aligngemini.lightning_modules.semantic import SemanticBranch
    from aligngemini.models.semantic import folder_fingerprint

    torch.manual_seed(0)
    module = SemanticBranch(model_id=str(folder), revision=folder_fingerprint(folder), quantization="nf4",
                            compute_dtype="float32", lora_r=4, lora_alpha=8, lora_dropout=0.0,
                            gradient_checkpointing=False)
    module.configure_model()
    with torch.no_grad():  # a trained adapter: LoRA B starts at zero, which would hide a lost adapter
        for param in module.parameters():
            if param.requires_grad:
                param.normal_(0.0, 0.5)
    return module


def semantic_scores(module) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    from aligngemini.datamodules.semantic import ConversationConfig, encode_prompts
    from aligngemini.models.semantic import load_processor, resolve_family

    model_id = module.hparams.model_id
    images = [Image.fromarray((np.random.default_rng(i).random((56, 56, 3)) * 255).astype("uint8")) for i in range(2)]
    inputs = encode_prompts(load_processor(model_id), resolve_family(model_id), ConversationConfig(), images)
    with torch.no_grad():
        return module.eval().model.score(inputs)


@pytest.fixture(params=["pixel", "semantic", "fusion"])
def family_case(request):
    """(family, build a tiny trained model, score a fixed input with it)."""
    if request.param == "semantic":
        folder = request.getfixturevalue("tiny_vlm").folder
        return "semantic", lambda: tiny_semantic(folder), semantic_scores
    build, scores = {"pixel": (tiny_pixel, pixel_scores), "fusion": (tiny_fusion, fusion_scores)}[request.param]
    return request.param, build, scores
