import lightning as L
import pytest
import torch

from aligngemini.datamodules.pixel import PixelDataModule
from aligngemini.lightning_modules.pixel import PixelBranch

TINY_VIT = dict(backbone="vit_small_patch14_dinov2", pretrained=False, crop_size=28,
                backbone_kwargs={"depth": 1, "embed_dim": 24, "num_heads": 2})


def _fit(module, manifest, tmp_path, epochs=1):
    data = PixelDataModule(root=str(manifest), batch_size=4, split_fractions=(0.7, 0.15, 0.15))
    trainer = L.Trainer(accelerator="cpu", max_epochs=epochs, default_root_dir=tmp_path, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_train_batches=3,
                        limit_val_batches=1)
    trainer.fit(module, data)
    return trainer, data


def test_lora_mode_trains_only_adapters_and_head(paired_dataset, tmp_path):
    torch.manual_seed(0)
    module = PixelBranch(**TINY_VIT, mode="lora", lora_rank=4, lora_alpha=4.0)
    module.configure_model()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainable = module.trainable_state_keys()
    assert trainable and all("lora_" in k or k.startswith("model.head.") for k in trainable)
    _fit(module, paired_dataset, tmp_path)
    after = module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= trainable
    assert any("lora_B" in k for k in changed)  # LoRA B starts at zero: it must have moved


@pytest.mark.parametrize("mode", ["linear", "full"])
def test_linear_and_full_modes(mode):
    module = PixelBranch(**TINY_VIT, mode=mode)
    module.configure_model()
    backbone_trainable = any(p.requires_grad for p in module.model.backbone.parameters())
    assert backbone_trainable == (mode == "full")
    assert all(p.requires_grad for p in module.model.head.parameters())


def test_checkpoint_round_trip_gives_identical_scores(paired_dataset, tmp_path):
    torch.manual_seed(0)
    module = PixelBranch(**TINY_VIT)
    trainer, data = _fit(module, paired_dataset, tmp_path)
    path = tmp_path / "round.ckpt"
    trainer.save_checkpoint(path)
    batch = next(iter(data.test_dataloader()))
    module.eval()
    expected = module.score_images(batch.images)
    torch.manual_seed(123)  # a different seed must not matter: the checkpoint holds what is random
    loaded = PixelBranch.load_from_checkpoint(path).eval()
    assert torch.equal(loaded.score_images(batch.images), expected)


def test_trainable_only_checkpoint_holds_adapters_and_rejects_mismatch(paired_dataset, tmp_path):
    torch.manual_seed(0)
    module = PixelBranch(**TINY_VIT, checkpoint_weights="trainable")
    trainer, _ = _fit(module, paired_dataset, tmp_path)
    path = tmp_path / "small.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    assert set(state) == module.trainable_state_keys()
    assert all("lora_" in k or ".head." in k for k in state)
    other = PixelBranch(**{**TINY_VIT, "mode": "full"})  # different trainable set
    with pytest.raises(KeyError, match="does not hold trainable weights"):
        other.on_load_checkpoint(torch.load(path, weights_only=False))


def test_normalisation_comes_from_the_backbone_config():
    module = PixelBranch(backbone="test_resnet", pretrained=False, crop_size=32, mode="full")
    cfg = module.preprocess
    assert cfg.crop_size == 32 and len(cfg.mean) == 3
    assert torch.allclose(module.model.mean.flatten(), torch.tensor(cfg.mean))


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown timm backbone 'no_such_net'"):
        PixelBranch(backbone="no_such_net", pretrained=False).configure_model()


def test_backbone_revision_pins_the_hub_weights(monkeypatch):
    import timm

    from aligngemini.errors import ConfigError
    from aligngemini.models.pixel import create_backbone

    calls = []
    monkeypatch.setattr(timm, "create_model", lambda name, **kwargs: calls.append(kwargs) or torch.nn.Identity())
    create_backbone("vit_large_patch14_dinov2.lvd142m", True, 224, revision="abc123")
    assert calls[0]["pretrained_cfg_overlay"] == {"hf_hub_id": "timm/vit_large_patch14_dinov2.lvd142m@abc123"}
    with pytest.raises(ConfigError, match="pretrained is false"):
        create_backbone("test_resnet", False, 32, revision="abc123")
