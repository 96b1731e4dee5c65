"""`data reconstruct`: real photos -> aligned VAE reconstructions + a paired manifest."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aligngemini.data_builders.reconstruct import TMP_MARK, reconstruct
from aligngemini.data_builders.vae_io import VAELoadError, load_vae
from aligngemini.datamodules.records import ImageRecord, load_records, write_manifest



def crop8(image: Image.Image) -> tuple[int, int]:
    return image.width - image.width % 8, image.height - image.height % 8


def count_calls(monkeypatch, vae, name: str) -> list[int]:
    """Record the batch size of every call to ``vae.<name>``."""
    calls, original = [], getattr(vae, name)

    def wrapper(x, *args, **kwargs):
        calls.append(x.shape[0])
        return original(x, *args, **kwargs)

    monkeypatch.setattr(vae, name, wrapper)
    return calls


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_pairs_are_cropped_top_left_to_multiples_of_8_and_manifest_groups_them(tiny_vae, photo_dir, tmp_path):
    out = tmp_path / "out"
    report = reconstruct(photo_dir, out, vae=tiny_vae, batch_size=2, write_real=True, progress=False)

    broken = str(photo_dir / "broken.png")
    assert set(report.skipped) == {broken} and "not an image" in report.skipped[broken]
    assert broken in (out / "skipped.jsonl").read_text()
    assert report.pairs == report.written == 7

    records = load_records(report.manifest)
    pairs: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        pairs[record.pair_id].append(record)
    assert len(pairs) == 7
    originals = {p for p in photo_dir.rglob("*") if p.is_file() and p.name != "broken.png"}
    for pair_id, members in pairs.items():
        real, fake = sorted(members, key=lambda r: r.label)
        assert (real.label, fake.label) == (0, 1) and real.subset == fake.subset
        assert Path(fake.path).suffix == ".png"
        original = next(p for p in originals if p.stem == Path(real.path).stem)
        with Image.open(original) as image, Image.open(fake.path) as recon:
            expected = crop8(image)
            assert recon.size == expected and recon.width % 8 == 0 and recon.height % 8 == 0
        # the saved real is the top-left crop of the photo, pixel for pixel (lossless)
        width, height = expected
        assert np.array_equal(pixels(real.path), pixels(original)[:height, :width])


def test_without_write_real_the_manifest_points_at_the_original_photo(tiny_vae, photo_dir, tmp_path):
    report = reconstruct(photo_dir, tmp_path / "out", vae=tiny_vae, manifest="pairs.csv", progress=False)
    reals = {r.path for r in load_records(report.manifest) if r.label == 0}
    assert str(photo_dir / "odd" / "photo.jpg") in reals
    assert not list((tmp_path / "out").rglob("0_real"))


def test_same_size_images_are_batched_and_results_do_not_depend_on_batching(tiny_vae, photo_dir, tmp_path,
                                                                          monkeypatch):
    calls = count_calls(monkeypatch, tiny_vae, "encode")
    reconstruct(photo_dir, tmp_path / "b4", vae=tiny_vae, batch_size=4, progress=False)
    # five 48x48 tiles: one batch of 4 and one of 1; the 56x40 and 32x48 images alone
    assert sorted(calls) == [1, 1, 1, 4]
    reconstruct(photo_dir, tmp_path / "b1", vae=tiny_vae, batch_size=1, progress=False)
    for path in (tmp_path / "b4").rglob("*.png"):
        other = tmp_path / "b1" / path.relative_to(tmp_path / "b4")
        assert np.abs(pixels(path) - pixels(other)).max() <= 1  # per-image seeds


def test_resume_after_interruption_redoes_only_unfinished_files(tiny_vae, photo_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    original_decode, decoded = tiny_vae.decode, []

    def interrupted_decode(z, *args, **kwargs):
        if len(decoded) == 3:
            raise KeyboardInterrupt
        decoded.append(1)
        return original_decode(z, *args, **kwargs)

    monkeypatch.setattr(tiny_vae, "decode", interrupted_decode)
    with pytest.raises(KeyboardInterrupt):
        reconstruct(photo_dir, out, vae=tiny_vae, batch_size=1, progress=False)
    monkeypatch.setattr(tiny_vae, "decode", original_decode)
    finished = sorted(out.rglob("*.png"))
    assert len(finished) == 3 and not list(out.rglob(f"*{TMP_MARK}"))
    stamps = {p: p.stat().st_mtime_ns for p in finished}

    calls = count_calls(monkeypatch, tiny_vae, "encode")
    report = reconstruct(photo_dir, out, vae=tiny_vae, batch_size=1, progress=False)
    assert (report.resumed, report.written, len(calls)) == (3, 4, 4)
    assert all(p.stat().st_mtime_ns == stamps[p] for p in finished)

    # a damaged output is redone, and the same seed gives the same pixels
    victim = finished[0]
    before = pixels(victim)
    victim.write_bytes(victim.read_bytes()[:50])
    calls.clear()
    report = reconstruct(photo_dir, out, vae=tiny_vae, batch_size=1, progress=False)
    assert (report.resumed, report.written, len(calls)) == (6, 1, 1)
    assert np.abs(pixels(victim) - before).max() <= 1
    assert report.pairs == 7 and len(load_records(report.manifest)) == 14


def test_oversize_images_are_skipped_with_a_reason_or_tiled(tiny_vae, photo_dir, tmp_path):
    report = reconstruct(photo_dir, tmp_path / "skip", vae=tiny_vae, max_side=48, progress=False)
    odd = str(photo_dir / "odd" / "odd_size.png")
    assert "56x40 exceeds max_side=48" in report.skipped[odd] and report.pairs == 6

    report = reconstruct(photo_dir, tmp_path / "tile", vae=tiny_vae, max_side=32, oversize="tile", progress=False)
    assert report.pairs == 7
    fake = next(r.path for r in load_records(report.manifest) if r.label == 1 and "odd_size" in r.path)
    with Image.open(fake) as image:
        assert image.size == (56, 40)


def test_manifest_input_keeps_subset_and_split_and_skips_labelled_fakes(tiny_vae, photo_dir, tmp_path):
    same = sorted((photo_dir / "same").glob("*.png"))
    manifest = write_manifest([
        ImageRecord(str(same[0]), 0, "coco", split="train"),
        ImageRecord(str(same[1]), -1, "coco", split="val"),
        ImageRecord(str(same[2]), 1, "sdxl"),
    ], tmp_path / "in.jsonl")
    report = reconstruct(manifest, tmp_path / "out", vae=tiny_vae, progress=False)
    assert report.skipped == {str(same[2]): "labelled fake: reconstruct takes real photos"}
    records = load_records(report.manifest)
    assert {(r.subset, r.split) for r in records} == {("coco", "train"), ("coco", "val")}
    assert sorted(r.label for r in records) == [0, 0, 1, 1]


def test_vae_loads_by_local_path_and_missing_hub_vae_fails_clearly(tiny_vae_dir):
    assert (tiny_vae_dir / "diffusion_pytorch_model.safetensors").is_file()
    vae = load_vae(str(tiny_vae_dir), device="cpu")  # default subfolder "vae" is not required
    assert vae.config.latent_channels == 4
    with pytest.raises(VAELoadError, match="no-such-org/no-such-vae.*HF_HUB_OFFLINE=1"):
        load_vae("no-such-org/no-such-vae", device="cpu")


def test_cli_reconstruct_runs_in_process(tiny_vae_dir, photo_dir, tmp_path, capsys):
    from aligngemini.cli import main

    out = tmp_path / "out"
    code = main(["data", "reconstruct", str(photo_dir), str(out), "--vae", str(tiny_vae_dir),
                 "--device", "cpu", "--batch_size", "2", "--progress", "false"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "7 pairs" in printed and "broken.png" in printed
    assert len(load_records(out / "pairs.jsonl")) == 14
    # a VAE that cannot be found is one clear line, not a traceback
    assert main(["data", "reconstruct", str(photo_dir), str(out), "--vae", str(tmp_path / "nowhere"),
                 "--progress", "false"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_its_manifest_trains_the_pixel_branch_on_pairs(tiny_vae, tmp_path):
    import lightning as L
    import torch

    from aligngemini.datamodules.pixel import PixelDataModule
    from aligngemini.demo.photos import write_photo_tiles
    from aligngemini.lightning_modules.pixel import PixelBranch

    write_photo_tiles(tmp_path / "photos", tile=40, per_photo=1, wallpapers=False)
    report = reconstruct(tmp_path / "photos", tmp_path / "pairs", vae=tiny_vae, batch_size=8, progress=False)
    data = PixelDataModule(root=str(report.manifest), batch_size=4, crop_size=28,
                           split_fractions=(0.7, 0.15, 0.15))
    units = data.make_units(load_records(report.manifest), "train")
    assert len(units) == report.pairs and all([r.label for r in unit] == [0, 1] for unit in units)

    torch.manual_seed(0)
    module = PixelBranch(backbone="vit_small_patch14_dinov2", pretrained=False, crop_size=28,
                         backbone_kwargs={"depth": 1, "embed_dim": 24, "num_heads": 2}, mode="full")
    module.configure_model()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, default_root_dir=tmp_path, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_train_batches=2,
                        limit_val_batches=1, enable_checkpointing=False)
    trainer.fit(module, data)
    assert trainer.state.finished
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())
