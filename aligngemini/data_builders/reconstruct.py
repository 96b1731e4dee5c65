"""Real photos -> their VAE reconstructions: the paper's pure pixel-artifact supervision.

A pair (real photo, its own reconstruction) differs only in decoder artifacts. Each
photo is cropped at its top-left corner to a multiple of 8 (right/bottom remainder
dropped), so reconstruction pixel (x, y) lies on photo pixel (x, y) and the pixel view
can crop both on one grid anchored at the top-left. Outputs are lossless PNGs written
atomically (temp file + ``os.replace``); a rerun skips every finished output.

Output layout mirrors the input under ``out_dir`` with label folders next to the files
(``<subset path>/1_fake/<name>.png``, and ``0_real/`` with ``write_real``), so the
folder also scans as a benchmark layout; the paired manifest is the source of truth.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch
from PIL import Image
from tqdm.auto import tqdm

from aligngemini.data_builders import vae_io
from aligngemini.datamodules.images import BadFileLog, BadImageError, decode_image
from aligngemini.datamodules.records import (
    FAKE, FAKE_DIR_NAMES, REAL, REAL_DIR_NAMES, ImageRecord, load_records, write_manifest,
)

ALIGN = 8  # the pixel view's crop grid; a VAE with a coarser latent grid raises it
TMP_MARK = ".aligngemini-tmp"
FLUSH_PENDING_FACTOR = 4  # decoded images held for batching, as a multiple of batch_size


@dataclass(frozen=True)
class Job:
    record: ImageRecord
    pair_id: str
    fake_out: Path
    real_out: Path | None  # the cropped real, when written alongside

    def seed(self, base: int) -> int:
        digest = hashlib.sha256(f"{base}:{self.pair_id}".encode()).digest()
        return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class ReconstructReport:
    manifest: Path
    pairs: int = 0
    written: int = 0
    resumed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # input path -> reason

    def summary(self) -> str:
        text = (f"{self.pairs} pairs in {self.manifest} ({self.written} reconstructed now, "
                f"{self.resumed} already done, {len(self.skipped)} inputs skipped)")
        for path, reason in list(self.skipped.items())[:10]:
            text += f"\n  skipped {path}: {reason}"
        if len(self.skipped) > 10:
            text += f"\n  ... and {len(self.skipped) - 10} more"
        return text


def crop_top_left(image: Image.Image, multiple: int) -> Image.Image:
    width, height = image.size
    size = (width - width % multiple, height - height % multiple)
    return image if size == image.size else image.crop((0, 0, *size))


def is_finished(path: Path | None) -> bool:
    """A complete, readable PNG (atomic writes mean any file present was fully written)."""
    if path is None:
        return True
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # noqa: BLE001 - any unreadable output is simply redone
        return False


def save_png_atomic(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_MARK}")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plan_jobs(records: list[ImageRecord], root: Path, out_dir: Path, write_real: bool) -> list[Job]:
    """One job per real photo; output names are unique and stable across runs."""
    jobs, taken = [], set()
    root = root.resolve()
    for record in records:
        source = Path(record.path)
        try:
            rel = PurePosixPath(source.resolve().relative_to(root).as_posix())
        except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
            tag = hashlib.sha256(str(source.parent).encode()).hexdigest()[:8]
            rel = PurePosixPath("external", tag, source.name)
        parent = [p for p in rel.parent.parts if p.lower() not in REAL_DIR_NAMES | FAKE_DIR_NAMES]
        stem = PurePosixPath(*parent, rel.stem) if parent else PurePosixPath(rel.stem)
        key, n = str(stem), 1
        while key.lower() in taken:  # x.jpg beside x.png, or real/x.jpg beside x.jpg
            n += 1
            key = f"{stem}__{n}"
        taken.add(key.lower())
        key_path = PurePosixPath(key)
        folder = out_dir.joinpath(*key_path.parent.parts)
        jobs.append(Job(
            record=record,
            pair_id=key,
            fake_out=folder / "1_fake" / f"{key_path.name}.png",
            real_out=folder / "0_real" / f"{key_path.name}.png" if write_real else None,
        ))
    return jobs


def _is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate memory" in str(err))
    )


class _Runner:
    """Batches same-size images, reconstructs them and saves the results."""

    def __init__(self, vae, seed: int, batch_size: int, max_side: int | None, oversize: str,
                 report: ReconstructReport, log: BadFileLog, done: set[Job], bar):
        self.vae, self.seed, self.batch_size = vae, seed, batch_size
        self.max_side, self.oversize = max_side, oversize
        self.report, self.log, self.done, self.bar = report, log, done, bar
        self.multiple = max(ALIGN, vae_io.spatial_factor(vae))
        self.buckets: dict[tuple[int, int], list[tuple[Job, Image.Image]]] = {}

    def skip(self, job: Job, reason: str) -> None:
        self.report.skipped[job.record.path] = reason
        self.log.add(job.record.path, reason)
        self.bar.update(1)

    def add(self, job: Job) -> None:
        try:
            image = crop_top_left(decode_image(job.record.path), self.multiple)
        except BadImageError as err:
            return self.skip(job, err.reason)
        if min(image.size) < self.multiple:
            return self.skip(job, f"smaller than {self.multiple} px after cropping to a multiple of {self.multiple}")
        if self.max_side and max(image.size) > self.max_side:
            if self.oversize == "skip":
                return self.skip(job, f"{image.width}x{image.height} exceeds max_side={self.max_side} "
                                      "(use --oversize tile to reconstruct it in tiles)")
            return self.run([(job, image)], tile=self.max_side - self.max_side % self.multiple)
        bucket = self.buckets.setdefault(image.size, [])
        bucket.append((job, image))
        if len(bucket) >= self.batch_size:
            self.run(self.buckets.pop(image.size))
        elif sum(map(len, self.buckets.values())) >= FLUSH_PENDING_FACTOR * self.batch_size:
            self.flush()

    def flush(self) -> None:
        while self.buckets:
            self.run(self.buckets.pop(next(iter(self.buckets))))

    def run(self, items: list[tuple[Job, Image.Image]], tile: int | None = None) -> None:
        batch = vae_io.to_tensor([image for _, image in items])
        try:
            if tile:
                output = vae_io.reconstruct_tiled(self.vae, batch, items[0][0].seed(self.seed), tile)
            else:
                output = vae_io.reconstruct_tensor(self.vae, batch, [job.seed(self.seed) for job, _ in items])
        except Exception as err:
            if not _is_out_of_memory(err):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(items) > 1:  # retry one by one before giving up on any image
                for item in items:
                    self.run([item])
                return
            job, image = items[0]
            return self.skip(job, f"out of memory at {image.width}x{image.height}; "
                                  "set --max_side (with --oversize tile) to bound memory")
        for (job, image), result in zip(items, vae_io.to_images(output)):
            if job.real_out is not None:
                save_png_atomic(image, job.real_out)
            save_png_atomic(result, job.fake_out)
            self.done.add(job)
            self.report.written += 1
            self.bar.update(1)


def _remove_stale_temp_files(out_dir: Path) -> None:
    for path in out_dir.rglob(f"*{TMP_MARK}"):
        path.unlink(missing_ok=True)


def reconstruct(
    source: str | Path,
    out_dir: str | Path,
    vae: str | object = vae_io.DEFAULT_VAE,
    subfolder: str | None = vae_io.DEFAULT_SUBFOLDER,
    revision: str | None = None,
    manifest: str | Path = "pairs.jsonl",
    batch_size: int = 4,
    max_side: int | None = None,
    oversize: str = "skip",
    seed: int = 0,
    device: str = "auto",
    dtype: str = "float32",
    write_real: bool = False,
    progress: bool = True,
) -> ReconstructReport:
    """Reconstruct every real (or unlabelled) photo in ``source`` and write the paired manifest.

    ``vae`` is a Hub id, a local folder, or an ``AutoencoderKL`` instance. ``manifest``
    (``.jsonl`` or ``.csv``) is relative to ``out_dir`` unless absolute. Inputs labelled
    fake, unreadable files and (with ``oversize='skip'``) images larger than
    ``max_side`` are reported in ``report.skipped`` and in ``out_dir/skipped.jsonl``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if oversize not in {"skip", "tile"}:
        raise ValueError(f"oversize must be 'skip' or 'tile', got {oversize!r}")
    if max_side is not None and max_side < ALIGN:
        raise ValueError(f"max_side must be at least {ALIGN}, got {max_side}")
    source, out_dir = Path(source), Path(out_dir)
    manifest_path = Path(manifest) if Path(manifest).is_absolute() else out_dir / manifest
    records = load_records(source, allow_unlabelled=True)
    report = ReconstructReport(manifest=manifest_path)
    reals = []
    for record in records:
        if record.label == FAKE:
            report.skipped[record.path] = "labelled fake: reconstruct takes real photos"
        else:
            reals.append(record)
    if isinstance(vae, (str, os.PathLike)):
        vae = vae_io.load_vae(str(vae), subfolder, revision, device, dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out_dir)
    (out_dir / "skipped.jsonl").unlink(missing_ok=True)
    log = BadFileLog(out_dir / "skipped.jsonl")
    for path, reason in report.skipped.items():
        log.add(path, reason)

    jobs = plan_jobs(reals, source if source.is_dir() else source.parent, out_dir, write_real)
    done = {job for job in jobs if is_finished(job.fake_out) and is_finished(job.real_out)}
    report.resumed = len(done)
    with tqdm(total=len(jobs), initial=len(done), unit="img", desc="reconstruct", disable=not progress) as bar:
        runner = _Runner(vae, seed, batch_size, max_side, oversize, report, log, done, bar)
        for job in jobs:
            if job not in done:
                runner.add(job)
        runner.flush()

    rows = []
    for job in jobs:
        if job in done:
            real = job.record if job.real_out is None else ImageRecord(str(job.real_out))
            common = dict(subset=job.record.subset, pair_id=job.pair_id, split=job.record.split)
            rows += [ImageRecord(real.path, REAL, **common), ImageRecord(str(job.fake_out), FAKE, **common)]
    report.pairs = len(rows) // 2
    write_manifest(rows, manifest_path)
    return report
