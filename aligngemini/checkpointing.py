"""Crash-safe training: atomic checkpoint files, exact resume of RNG, metrics and data position.

A fit killed with SIGKILL at any moment resumes with ``--ckpt_path last`` and ends with
the same weights and metrics as a run that was never interrupted:

* :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file in the same
  folder, fsyncs it and renames it over the old one, so ``last.ckpt`` is always either
  the previous complete checkpoint or the new complete one, never a torn file.
* :class:`ResumeState` stores what Lightning leaves out: the global Python/NumPy/torch
  RNG states (dropout, stochastic depth) and, for a checkpoint written mid-epoch, each
  rank's running training-metric states.
* :class:`ResumableDataLoader` tells Lightning how many batches of the epoch were
  consumed; on resume it skips those index batches without decoding a single image
  (samplers here are pure functions of seed and epoch).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import random
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader
from torchmetrics import Metric

from aligngemini.errors import AlignGeminiError

log = logging.getLogger(__name__)
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def _is_local(path: str | os.PathLike) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``.NAME.PID.RAND.tmp`` beside ``path``, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary checkpoint files left by processes that no longer run (killed mid-write)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if match and not _pid_alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose writes are atomic on local disks (remote URLs: fsspec's own)."""

    def __init__(self) -> None:
        super().__init__()
        self._cleaned: set[Path] = set()

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(str(path).removeprefix("file://"))
        if path.parent not in self._cleaned:
            for stale in remove_stale_temp_files(path.parent):
                log.info("removed partial checkpoint %s left by a killed run", stale)
            self._cleaned.add(path.parent)
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any = lambda storage, loc: storage, weights_only: bool | None = None):
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except (RuntimeError, EOFError, OSError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise RuntimeError(f"{path}: cannot read checkpoint ({err}); was it written by another tool?") from err


# --- global RNG --------------------------------------------------------------------------
def capture_rng_states() -> dict[str, Any]:
    """Global RNG states as plain types and tensors, so checkpoints still load ``weights_only``."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = states["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
        "has_gauss": saved["has_gauss"],
        "gauss": saved["gauss"],
    })
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


# --- training metrics --------------------------------------------------------------------
def _metric_states(module: torch.nn.Module) -> dict[str, dict[str, Any]]:
    out = {}
    for name, metric in module.named_modules():
        if isinstance(metric, Metric) and metric.update_called:
            state = {k: ([t.detach().cpu() for t in v] if isinstance(v, list) else v.detach().cpu())
                     for k, v in metric.metric_state.items()}
            out[name] = {"state": state, "updates": metric.update_count}
    return out


def _load_metric_states(module: torch.nn.Module, saved: dict[str, dict[str, Any]]) -> None:
    metrics = dict(module.named_modules())
    for name, entry in saved.items():
        metric = metrics.get(name)
        if not isinstance(metric, Metric):
            continue
        for key, value in entry["state"].items():
            device = metric.device
            setattr(metric, key, [t.to(device) for t in value] if isinstance(value, list) else value.to(device))
        metric._update_count = entry["updates"]
        metric._computed = None


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ResumeState(Callback):
    """Saves the global RNG states and, mid-epoch, every rank's training-metric states.

    Lightning restores weights, optimiser, loop counters and (through
    :class:`ResumableDataLoader`) the data position, but not these.
    """

    KEY = "aligngemini_resume"

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        rank, world = _world()
        # Written at a training-batch end inside an epoch, the running training metrics are part of
        # the state; at the epoch's last batch or after validation, Lightning resumes at the next epoch.
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        mid_epoch = trainer.training and 0 < done < trainer.num_training_batches
        local = {"rng": capture_rng_states(), "metrics": _metric_states(pl_module) if mid_epoch else {}}
        per_rank = [None] * world
        if world > 1:  # every rank runs this hook; only rank 0 writes the file
            torch.distributed.all_gather_object(per_rank, local)
        else:
            per_rank = [local]
        checkpoint[self.KEY] = {"world_size": world, "ranks": per_rank}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(self.KEY)
        if not saved:
            return
        rank, world = _world()
        if saved["world_size"] != world:
            log.warning(
                "checkpoint was written by %d process(es), resuming on %d: RNG and mid-epoch metric "
                "states are not restored, so the result will differ from an uninterrupted run",
                saved["world_size"], world,
            )
            return
        state = saved["ranks"][rank]
        restore_rng_states(state["rng"])
        if state["metrics"]:
            _load_metric_states(pl_module, state["metrics"])


# --- data position -----------------------------------------------------------------------
class _SkipFirst:
    """The loader's index sampler, minus the batches a resumed run has already consumed."""

    def __init__(self, sampler, loader: ResumableDataLoader):
        self.sampler, self.loader = sampler, loader

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        skip, self.loader._skip = self.loader._skip, 0
        return itertools.islice(iter(self.sampler), skip, None)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that Lightning sees as stateful: its state is (epoch, batches consumed).

    On resume it skips the consumed batches as indices (nothing is decoded). Its sampler
    has ``epoch``/``set_epoch`` (``SeededSampler``, or Lightning's distributed wrapper
    around it), so the order is a pure function of seed and epoch.
    """

    _position = (0, 0)
    _skip = 0
    _generator_seed: int | None = None

    @property
    def _index_sampler(self):
        # torch's iterators draw batch indices from this property: wrap it to skip on resume.
        return _SkipFirst(super()._index_sampler, self)

    def __iter__(self):
        # A generator: nothing is read until the first batch is asked for, after Lightning's set_epoch.
        epoch = _sampler_epoch(self)
        if self.generator is not None:
            # Worker seeds become a function of (seed, epoch), and making the iterator draws
            # nothing from the global RNG, so a resumed run sees the same global RNG stream.
            if self._generator_seed is None:
                self._generator_seed = self.generator.initial_seed()
            self.generator.manual_seed(self._generator_seed * 1_000_003 + epoch)
        consumed = self._skip
        for batch in super().__iter__():
            consumed += 1  # counted before the yield: the checkpoint is written while it is in use
            self._position = (epoch, consumed)
            yield batch

    def state_dict(self) -> dict[str, int]:
        epoch, consumed = self._position
        return {"epoch": epoch, "batches": consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, consumed = int(state["epoch"]), int(state["batches"])
        if consumed >= len(self):
            epoch, consumed = epoch + 1, 0
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)  # workers may draw indices before Lightning's own set_epoch
        self._skip = consumed
        self._position = (epoch, consumed)


def _sampler_epoch(loader: DataLoader) -> int:
    return int(getattr(loader.sampler, "epoch", 0))


def default_plugins() -> list[Any]:
    return [AtomicCheckpointIO()]


class UnsafeCheckpointError(AlignGeminiError):
    """A checkpoint that pickles classes from outside aligngemini (they could run code)."""


def allowed_checkpoint_globals(path: str | os.PathLike, trust: bool = False) -> list:
    """The classes ``torch.load(weights_only=True)`` may rebuild from ``path``: aligngemini's
    own settings (dataclasses, enums) and paths. Anything else is refused unless ``trust``."""
    if trust:
        return []
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    foreign = [name for name in unsafe if not name.startswith(("aligngemini.", "pathlib."))]
    if foreign:
        raise UnsafeCheckpointError(f"{path}: the checkpoint pickles {foreign[:3]}, which could run code when "
                                    "loaded; pass --trust-checkpoint if you trust this file")
    allowed = []
    for name in unsafe:
        module_name, _, attr = name.rpartition(".")
        allowed.append(getattr(importlib.import_module(module_name), attr))
    return allowed


def read_checkpoint(path: str | os.PathLike, trust: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint, unpickled with ``weights_only=True`` unless ``trust``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals(allowed_checkpoint_globals(path)):
        return torch.load(path, map_location="cpu", weights_only=True)
