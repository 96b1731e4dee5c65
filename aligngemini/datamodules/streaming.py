"""Streaming data on WebDataset tar shards, for data sets of millions of images.

``write_shards`` turns a manifest (read lazily, row by row) into tar shards per split;
each sample is one *unit* (a real photo and its reconstruction stay together) holding
the original file bytes, never re-encoded, so pixel artifacts survive. A file that
cannot be read at write time is stored as its error and reported, like any bad file,
when training reaches it.

``StreamingPixelDataModule`` reads them with the same pairs, the same augmentation
draws (a pure function of seed, epoch and unit index) and the same bad-file policy as
the folder path. Memory does not grow with the data set: no record list is built.
Select it in a config with::

    data:
      class_path: aligngemini.datamodules.streaming.StreamingPixelDataModule
      init_args: {shards: /data/shards}

and write shards with ``python -m aligngemini.datamodules.streaming MANIFEST OUT_DIR``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import random
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from aligngemini.datamodules.base import Skipped
from aligngemini.datamodules.images import BadImageError, decode_image
from aligngemini.datamodules.jpeg_quality import estimate_jpeg_quality
from aligngemini.datamodules.pixel import PixelDataModule
from aligngemini.datamodules.records import SPLITS, FAKE, REAL, ImageRecord, ManifestError, iter_manifest, scan_folder
from aligngemini.datamodules.transforms import apply_pair_params, eval_crop, jpeg, sample_pair_params
from aligngemini.errors import require

INDEX = "index.json"


def _wds():
    return require("webdataset", "stream", "streaming data shards")


def hash_split(key: str, fractions: tuple[float, float, float], seed: int) -> str:
    """A split drawn from a hash of ``key``: stable, order-free, needs no memory."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def iter_units(records: Iterable[ImageRecord], recent: int = 100_000) -> Iterator[tuple[ImageRecord, ...]]:
    """Adjacent records that share a ``pair_id`` form one unit (real first).

    Pair members must be adjacent, as the pair builders write them; a pair seen again
    among the last ``recent`` units is an error rather than two silently split units.
    """
    closed: OrderedDict[str, None] = OrderedDict()
    for key, group in itertools.groupby(records, key=lambda r: r.pair_id or f"\0{r.path}"):
        members = tuple(sorted(group, key=lambda r: r.label))
        if key in closed:
            raise ManifestError(f"{members[0].path}: pair {key!r} is split across the manifest; "
                                "sort it so that the members of each pair are adjacent")
        closed[key] = None
        if len(closed) > recent:
            closed.popitem(last=False)
        yield members


def _read(path: str) -> tuple[bytes | None, str | None]:
    """The file's bytes, or the decoder's own reason why there are none."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), None
    except OSError:
        try:
            decode_image(path)
        except BadImageError as err:
            return None, err.reason
        return None, "cannot read file"


def write_shards(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    units_per_shard: int = 1000,
) -> dict[str, Any]:
    """Write ``{split}-NNNNNN.tar`` shards and ``index.json`` under ``out_dir``; return the index.

    Records keep their ``split`` column; the others get :func:`hash_split` of their pair.
    """
    wds = _wds()
    source, out_dir = Path(source), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = scan_folder(source) if source.is_dir() else iter_manifest(source)
    writers: dict[str, Any] = {}
    index: dict[str, Any] = {"seed": seed, "splits": {s: {"shards": [], "units": 0, "images": 0} for s in SPLITS}}
    for unit in iter_units(records):
        split = unit[0].split or hash_split(unit[0].pair_id or unit[0].path, tuple(split_fractions), seed)
        entry = index["splits"][split]
        if split not in writers or entry["shards"][-1]["units"] >= units_per_shard:
            if split in writers:
                writers[split].close()
            name = f"{split}-{len(entry['shards']):06d}.tar"
            # An integer mtime: no PAX header per member (faster to read) and byte-identical shards.
            writers[split] = wds.TarWriter(str(out_dir / name), mtime=1)
            entry["shards"].append({"name": name, "units": 0, "first": entry["units"]})
        sample: dict[str, Any] = {"__key__": f"{entry['units']:010d}"}
        members = []
        for i, record in enumerate(unit):
            data, error = _read(record.path)
            members.append({**record.to_row(), "error": error})
            if data is not None:
                sample[f"img{i}"] = data
        sample["json"] = json.dumps(members).encode()
        writers[split].write(sample)
        entry["shards"][-1]["units"] += 1
        entry["units"] += 1
        entry["images"] += len(unit)
    for writer in writers.values():
        writer.close()
    if not any(index["splits"][s]["units"] for s in SPLITS):
        raise ManifestError(f"{source}: no records to write")
    temp = out_dir / f".{INDEX}.tmp"
    temp.write_text(json.dumps(index, indent=1))
    temp.replace(out_dir / INDEX)
    return index


def read_index(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / INDEX
    if not path.is_file():
        raise ManifestError(f"{folder}: no {INDEX}; write shards with `python -m aligngemini.datamodules.streaming`")
    return json.loads(path.read_text())


@dataclass
class StreamItem:
    """One image of a streamed unit: its record, its bytes, or why it has none."""

    record: ImageRecord
    data: bytes | None
    error: str | None


class ShardStream(IterableDataset):
    """Units from the shards of one split, as ``load_unit`` outputs (or ``Skipped``).

    Every rank reads its own shards (shard order shuffled per epoch when training) and
    yields exactly ``ceil(units / world)`` units, repeating its first units when short, as
    ``DistributedSampler`` pads; each DataLoader worker keeps every W-th unit of that stream.
    """

    def __init__(self, folder: str, split: str, load_unit, seed: int, train: bool, split_pairs: bool,
                 shuffle_buffer: int = 1000):
        self.folder, self.split, self.load_unit = folder, split, load_unit
        self.seed, self.train, self.split_pairs, self.shuffle_buffer = seed, train, split_pairs, shuffle_buffer
        self.shards = read_index(folder)["splits"][split]["shards"]
        self.epoch, self.rank, self.world = 0, 0, 1

    def _rank_shards(self) -> tuple[list[dict], int, bool]:
        shards = list(self.shards)
        if self.train:
            random.Random(hash((self.seed, self.epoch))).shuffle(shards)
        total = sum(s["units"] for s in shards)
        by_sample = len(shards) < self.world  # then every rank reads all shards and keeps its share
        mine = shards if by_sample else shards[self.rank :: self.world]
        return mine, math.ceil(total / self.world), by_sample

    def _raw_units(self, shards: list[dict]) -> Iterator[tuple[int, dict]]:
        from webdataset.tariterators import tarfile_samples

        for shard in shards:
            for sample in tarfile_samples(iter([{"url": str(Path(self.folder) / shard["name"])}])):
                yield int(sample["__key__"]), sample

    def _rank_stream(self) -> Iterator[tuple[int, dict]]:
        shards, target, by_sample = self._rank_shards()
        count = 0
        while count < target:  # a short rank repeats its own first units, as DistributedSampler pads
            before = count
            for n, item in enumerate(self._raw_units(shards)):
                if by_sample and n % self.world != self.rank:
                    continue
                yield item
                count += 1
                if count == target:
                    return
            if count == before:
                return

    def _shuffled(self, stream: Iterator) -> Iterator:
        if not self.train or self.shuffle_buffer <= 1:
            yield from stream
            return
        rng = random.Random(hash((self.seed, self.epoch, self.rank)))
        buffer = []
        for item in stream:
            buffer.append(item)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[Any]:
        worker = torch.utils.data.get_worker_info()
        wid, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        for position, (index, sample) in enumerate(self._shuffled(self._rank_stream())):
            if position % workers != wid:
                continue
            members = json.loads(sample["json"])
            items = [StreamItem(_record(m), sample.get(f"img{i}"), m.get("error")) for i, m in enumerate(members)]
            units = [[item] for item in items] if self.split_pairs else [items]
            for unit in units:
                rng = random.Random(hash((self.seed, self.epoch, index)))
                try:
                    yield self.load_unit(unit, rng, self.train)
                except BadImageError as err:
                    yield Skipped(err.path, err.reason)


def _record(row: dict) -> ImageRecord:
    return ImageRecord(path=row["path"], label=int(row.get("label", -1)), subset=row.get("subset", "default"),
                       pair_id=row.get("pair_id"), rationale=row.get("rationale"), split=row.get("split"))


class _EpochLoader(DataLoader):
    """Hands the trainer's epoch and this process's rank to the stream before each pass."""

    epoch_source = None

    def __iter__(self):
        dataset = self.dataset
        dataset.epoch = self.epoch_source() if self.epoch_source else 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            dataset.rank, dataset.world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        yield from super().__iter__()


class StreamingPixelDataModule(PixelDataModule):
    """The pixel view read from WebDataset shards (see :func:`write_shards`).

    Args:
        shards: folder with ``index.json`` and ``{split}-NNNNNN.tar`` shards.
        shuffle_buffer: units held in memory for shuffling inside the shard order.
        **kwargs: see :class:`~aligngemini.datamodules.pixel.PixelDataModule` (``root`` unused).
    """

    def __init__(self, shards: str | None = None, shuffle_buffer: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.shards, self.shuffle_buffer = shards, shuffle_buffer

    def setup(self, stage: str | None = None) -> None:
        if not self.shards:
            raise ValueError("data: set --data.shards to a folder written by write_shards")
        _wds()
        read_index(self.shards)
        self.resolve_crop_size()

    def load_unit(self, unit: list[StreamItem], rng: random.Random, train: bool):
        images = []
        for item in unit:
            if item.data is None:
                raise BadImageError(item.record.path, item.error or "no image bytes in the shard")
            images.append(decode_image(item.record.path, self.limits, data=item.data))
        records = [item.record for item in unit]
        if not train:
            return [(eval_crop(image, self.crop_size), r) for image, r in zip(images, records)]
        if self.match_real_jpeg and len(unit) > 1 and records[0].label == REAL:
            quality = estimate_jpeg_quality(io.BytesIO(unit[0].data))
            if quality is not None:
                images = [jpeg(im, quality) if r.label == FAKE else im for im, r in zip(images, records)]
        params = sample_pair_params(self.augment, rng)
        return list(zip(apply_pair_params(images, params, self.crop_size), records))

    def _loader(self, stage: str) -> DataLoader:
        split = "test" if stage == "predict" else stage
        train = stage == "train"
        if not read_index(self.shards)["splits"][split]["units"]:
            raise ValueError(f"data: the {split} split of {self.shards} is empty")
        dataset = ShardStream(self.shards, split, self.load_unit, self.seed, train,
                              split_pairs=not (train and self.pair_by_id), shuffle_buffer=self.shuffle_buffer)
        loader = _EpochLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                              collate_fn=self._collate)
        loader.epoch_source = self._current_epoch
        return loader

    def _current_epoch(self) -> int:
        return int(self.trainer.current_epoch) if self.trainer is not None else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m aligngemini.datamodules.streaming MANIFEST OUT_DIR [--units-per-shard N]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m aligngemini.datamodules.streaming",
                                     description="Convert a folder or CSV/JSONL manifest into WebDataset shards.")
    parser.add_argument("source")
    parser.add_argument("out_dir")
    parser.add_argument("--units-per-shard", type=int, default=1000)
    parser.add_argument("--split-fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        index = write_shards(args.source, args.out_dir, tuple(args.split_fractions), args.seed, args.units_per_shard)
    except (ManifestError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split, entry in index["splits"].items():
        print(f"{split}: {entry['units']} units, {entry['images']} images, {len(entry['shards'])} shard(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
