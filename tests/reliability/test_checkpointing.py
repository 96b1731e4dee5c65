"""Atomic checkpoint files, RNG states and the resumable data position, in process."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from aligngemini.checkpointing import (
    AtomicCheckpointIO,
    ResumableDataLoader,
    capture_rng_states,
    remove_stale_temp_files,
    restore_rng_states,
)
from aligngemini.datamodules.base import DistributedSeededSampler, SeededSampler
from aligngemini.datamodules.pixel import PixelDataModule


def test_a_write_that_dies_half_way_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)

    def dying_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process is going down mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_temp_files_of_killed_writers_are_removed_and_torn_files_are_named(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".last.ckpt.{int(dead.stdout)}.0123abcd.tmp"
    mine = tmp_path / f".last.ckpt.{os.getpid()}.0123abcd.tmp"  # a live writer's file stays
    stale.write_bytes(b"partial")
    mine.write_bytes(b"in progress")
    AtomicCheckpointIO().save_checkpoint({"step": 3}, tmp_path / "last.ckpt")
    assert not stale.exists() and mine.exists()
    assert remove_stale_temp_files(tmp_path) == []
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes((tmp_path / "last.ckpt").read_bytes()[:50])
    with pytest.raises(RuntimeError, match="torn.ckpt"):
        AtomicCheckpointIO().load_checkpoint(torn)


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    io = AtomicCheckpointIO()
    io.save_checkpoint({"rng": capture_rng_states()}, tmp_path / "rng.ckpt")
    expected = (random.random(), np.random.randn(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_states(io.load_checkpoint(tmp_path / "rng.ckpt", weights_only=True)["rng"])
    got = (random.random(), np.random.randn(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_resumed_loader_skips_consumed_batches_without_decoding_them(paired_dataset):
    data = PixelDataModule(root=str(paired_dataset), crop_size=24, batch_size=3)
    data.setup()
    loader = data.train_dataloader()
    assert isinstance(loader, ResumableDataLoader)
    loader.sampler.set_epoch(2)
    full = list(loader)
    consumed = iter(loader)
    for _ in range(2):
        next(consumed)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 2}

    fresh = PixelDataModule(root=str(paired_dataset), crop_size=24, batch_size=3)
    fresh.setup()
    decoded = []
    original = fresh.load_unit
    fresh.load_unit = lambda unit, rng, train: decoded.append(unit) or original(unit, rng, train)
    resumed = fresh.train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(full) - 2 and len(decoded) == sum(len(b.paths) for b in rest) // 2
    for a, b in zip(rest, full[2:]):
        assert a.paths == b.paths and torch.equal(a.images, b.images)
    resumed.load_state_dict({"epoch": 2, "batches": len(full)})  # saved at the epoch's end
    assert resumed.sampler.epoch == 3 and len(list(resumed)) == len(full)


def test_ddp_ranks_together_take_the_single_process_batch():
    single = [b for b in torch.utils.data.BatchSampler(SeededSampler(19, 0, True), 8, False)]
    ranks = [list(torch.utils.data.BatchSampler(DistributedSeededSampler(19, 0, True, r, 2), 4, False))
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for step, batch in enumerate(single):
        together = ranks[0][step] + ranks[1][step]
        assert set(batch) <= set(together) and len(together) - len(batch) <= 1  # one pad at most
