"""WebDataset shards: same units, augmentation and bad-file reports as the folder path."""

import json
import sys

import pytest
import torch

from aligngemini.datamodules.images import BadImageError, decode_image
from aligngemini.datamodules.pixel import PixelDataModule
from aligngemini.datamodules.records import ImageRecord, ManifestError, load_records, split_records, write_manifest
from aligngemini.datamodules.streaming import ShardStream, StreamingPixelDataModule, iter_units, write_shards
from aligngemini.datamodules.transforms import PixelAugmentConfig
from aligngemini.errors import MissingExtraError
from aligngemini.testing.hostile import make_hostile_corpus

AUGMENT = PixelAugmentConfig(jpeg_prob=0.5, blur_prob=0.3, resize_prob=0.3)


@pytest.fixture(scope="module")
def split_manifest(paired_dataset, tmp_path_factory):
    splits = split_records(load_records(paired_dataset), (0.7, 0.15, 0.15), seed=0)
    rows = [r for split in ("train", "val", "test") for r in splits[split]]
    return write_manifest(rows, tmp_path_factory.mktemp("split") / "split.csv")


@pytest.fixture(scope="module")
def shards(split_manifest, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_shards(split_manifest, folder, units_per_shard=4)
    return folder


def _by_path(loader):
    return {path: image for batch in loader for path, image in zip(batch.paths, batch.images)}


@pytest.mark.parametrize("stage", ["train", "val"])
def test_streamed_batches_equal_the_folder_path(split_manifest, shards, stage):
    folder = PixelDataModule(root=str(split_manifest), crop_size=32, batch_size=4, augment=AUGMENT,
                             split_fractions=(0.7, 0.15, 0.15))
    stream = StreamingPixelDataModule(shards=str(shards), crop_size=32, batch_size=4, augment=AUGMENT)
    folder.setup()
    stream.setup()
    expected = _by_path(getattr(folder, f"{stage}_dataloader")())
    got = _by_path(getattr(stream, f"{stage}_dataloader")())
    assert set(got) == set(expected) and len(got) > 0
    for path, image in expected.items():  # same pairs, same draws of resize/blur/JPEG/crop/flip
        assert torch.equal(got[path], image), path


@pytest.mark.parametrize("units_per_shard", [4, 1000])  # shards per rank / fewer shards than ranks
def test_ranks_get_equal_shares_of_the_units(split_manifest, tmp_path, units_per_shard):
    write_shards(split_manifest, tmp_path, units_per_shard=units_per_shard)

    def keys(rank, world, epoch):
        stream = ShardStream(str(tmp_path), "train", lambda unit, rng, train: unit[0].record.path,
                             seed=0, train=True, split_pairs=False)
        stream.rank, stream.world, stream.epoch = rank, world, epoch
        return list(stream)

    single = keys(0, 1, epoch=3)
    rank0, rank1 = keys(0, 2, epoch=3), keys(1, 2, epoch=3)
    assert len(rank0) == len(rank1) == (len(single) + 1) // 2  # equal steps: DDP never waits forever
    assert not set(rank0) & set(rank1)
    if units_per_shard == 1000:
        assert set(rank0) | set(rank1) == set(single)
    assert keys(0, 1, epoch=3) == single and keys(0, 1, epoch=4) != single  # seeded per epoch


def test_bad_files_are_stored_and_reported_with_their_reason(tmp_path):
    cases = make_hostile_corpus(tmp_path / "hostile")
    manifest = tmp_path / "m.jsonl"  # by hand: write_manifest would resolve the symlinks
    manifest.write_text("".join(json.dumps({"path": str(c.path), "label": 1, "split": "val"}) + "\n" for c in cases))
    write_shards(manifest, tmp_path / "shards")
    stream = StreamingPixelDataModule(shards=str(tmp_path / "shards"), crop_size=16, batch_size=64)
    stream.setup()
    batches = list(stream.val_dataloader())
    skipped = dict(s for batch in batches for s in batch.skipped)
    decoded = {p for batch in batches for p in batch.paths}
    for case in cases:
        if case.is_bad:
            with pytest.raises(BadImageError) as info:
                decode_image(case.path)
            assert skipped[str(case.path)] == info.value.reason, case.name
        else:
            assert str(case.path) in decoded, case.name


def test_a_pair_split_across_the_manifest_is_an_error():
    rows = [ImageRecord("a.png", 0, pair_id="p"), ImageRecord("b.png", 0, pair_id="q"),
            ImageRecord("c.png", 1, pair_id="p")]
    with pytest.raises(ManifestError, match="adjacent"):
        list(iter_units(rows))
    assert [len(u) for u in iter_units(sorted(rows, key=lambda r: r.pair_id))] == [2, 1]


def test_missing_webdataset_names_the_extra(split_manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "webdataset", None)
    with pytest.raises(MissingExtraError, match=r"aligngemini\[stream\]"):
        write_shards(split_manifest, tmp_path)


def test_streaming_is_selected_in_the_data_config_and_trains(shards, tmp_path):
    from aligngemini.cli import main
    from tests.reliability.runs import PRESET

    code = main(["fit", "-c", str(PRESET), "--data.class_path", "aligngemini.datamodules.streaming.StreamingPixelDataModule",
                 "--data.init_args.shards", str(shards), "--trainer.max_epochs", "1", "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    assert code == 0 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "StreamingPixelDataModule" in (tmp_path / "config.yaml").read_text()
