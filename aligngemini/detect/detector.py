"""AlignGemini: both branches and the fusion head behind one call.

    detector = AlignGemini(pixel="pixel.ckpt", semantic="semantic.ckpt", fusion="fusion.ckpt")
    for row in detector(["a.jpg", "b.png", pil_image]):
        print(row.path, row.verdict, row.probability, row.pixel_score, row.semantic_score)

Images stream through in batches of ``batch_size`` (the next batch is decoded in a
background thread while the current one is scored), so memory stays flat however many
files there are. Every input gets a :class:`Detection`; a file that cannot be read gets
one with ``error`` set instead of stopping the run.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from PIL import Image

from aligngemini.datamodules.images import BadImageError, DecodeLimits, load_rgb
from aligngemini.datamodules.records import UNLABELLED, ImageRecord
from aligngemini.detect.branches import (
    PixelScorer,
    SemanticPrompting,
    SemanticScorer,
    detector_parts,
    load_part,
    training_data_settings,
)
from aligngemini.detect.tiling import TilingConfig, tile_heatmap
from aligngemini.errors import AlignGeminiError
from aligngemini.lightning_modules.base import DetectorModule

ImageInput = Union[str, Path, Image.Image, ImageRecord]


class DetectorConfigError(AlignGeminiError, ValueError):
    """The detector's parts do not fit together; the message says what to change."""


@dataclass
class Detection:
    """One image's answer. ``scores`` are branch probabilities, ``contributions`` what each
    branch added to the fused logit (see :meth:`FusionModel.contributions`)."""

    path: str
    probability: float | None = None
    logit: float | None = None
    verdict: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    contributions: dict[str, float | None] = field(default_factory=dict)
    rationale: str | None = None
    heatmap: str | None = None
    tiles: int | None = None
    label: int | None = None
    subset: str | None = None
    error: str | None = None

    @property
    def pixel_score(self) -> float | None:
        return self.scores.get("pixel")

    @property
    def semantic_score(self) -> float | None:
        return self.scores.get("semantic")

    def to_row(self) -> dict[str, Any]:
        """A flat row with the same keys for every image (CSV columns come from the first row)."""
        row: dict[str, Any] = {
            "path": self.path, "subset": self.subset, "label": self.label, "logit": self.logit,
            "probability": self.probability, "verdict": self.verdict, "error": self.error,
        }
        for name, value in self.scores.items():
            row[f"{name}_probability"] = value
        for name, value in self.contributions.items():
            row[f"{name}_contribution"] = value
        row.update(tiles=self.tiles, rationale=self.rationale, heatmap=self.heatmap)
        return row


@dataclass
class _Decoded:
    """One input after reading: its image, or why it could not be read."""

    index: int
    path: str
    label: int | None
    subset: str | None
    image: Image.Image | None = None
    error: str | None = None


@dataclass
class _Prepared:
    decoded: list[_Decoded]
    prepared: dict[str, Any]  # branch name -> its model inputs for the readable images (None: failed)


class AlignGemini:
    """Pixel branch + semantic branch + fusion head.

    Args:
        pixel, semantic, fusion: each a LightningModule, a checkpoint, an exported folder
            or a zoo name. ``semantic`` may be None (pixel-only detector); ``fusion`` None
            means the paper's OR rule over the given branches.
        experts: extra pixel experts ``{feature name: source}`` (e.g. ``pixel_flux``) the
            fusion head was trained with.
        model: a zoo detector name whose entry lists its parts (instead of the three above).
        tiling: how the pixel branch covers a large image (see :class:`TilingConfig`).
        semantic_prompting: prompt and image bound for the VLM; unset fields follow the data
            settings the semantic branch was trained with (see :class:`SemanticPrompting`).
        batch_size: images per step; bounds memory together with ``tiling.max_tiles``.
        explain: also return the VLM's rationale and, with ``heatmap_dir``, tile heatmaps.
        heatmap_dir: folder for the per-tile heatmap PNGs written when ``explain`` is on.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... or ``auto``.
    """

    def __init__(
        self,
        pixel: str | Path | DetectorModule | None = None,
        semantic: str | Path | DetectorModule | None = None,
        fusion: str | Path | DetectorModule | None = None,
        experts: dict[str, str | Path | DetectorModule] | None = None,
        *,
        model: str | None = None,
        tiling: TilingConfig = TilingConfig(),
        semantic_prompting: SemanticPrompting = SemanticPrompting(),
        batch_size: int = 8,
        explain: bool = False,
        heatmap_dir: str | Path | None = None,
        device: str = "auto",
        max_pixels: int = DecodeLimits.max_pixels,
    ):
        if model is not None:
            parts = detector_parts(model)
            if parts is None:
                raise DetectorConfigError(f"{model}: not a detector in the zoo; give pixel=/semantic=/fusion= instead")
            pixel, semantic, fusion = parts.pop("pixel", pixel), parts.pop("semantic", semantic), parts.pop("fusion", fusion)
            experts = {**parts, **(experts or {})}
        if pixel is None and semantic is None:
            raise DetectorConfigError("AlignGemini needs at least one branch: pixel=... and/or semantic=...")
        if batch_size < 1:
            raise DetectorConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        sources = {"pixel": pixel, **(experts or {})}
        self.pixel_scorers = {name: PixelScorer(load_part(src, name, self.device), tiling)
                              for name, src in sources.items() if src is not None}
        self.semantic_scorer = None
        if semantic is not None:
            branch = load_part(semantic, "semantic", self.device)
            trained = training_data_settings(semantic, branch)
            self.semantic_scorer = SemanticScorer(branch, semantic_prompting, trained)
        available = list(self.pixel_scorers) + (["semantic"] if self.semantic_scorer else [])
        if fusion is None:
            from aligngemini.lightning_modules.fusion import FusionHead

            fusion = FusionHead(mode="or", feature_names=available, calibration="none")
        self.fusion = load_part(fusion, "fusion", "cpu")
        missing = [n for n in self.fusion.feature_names if n not in available]
        if missing:
            raise DetectorConfigError(f"the fusion head needs branch(es) {missing}; this detector has {available}")
        self.feature_names = tuple(self.fusion.feature_names)
        self.tiling = tiling
        self.batch_size = batch_size
        self.explain = explain
        self.heatmap_dir = Path(heatmap_dir) if heatmap_dir else None
        self.limits = DecodeLimits(max_pixels=max_pixels)

    # --- public API ------------------------------------------------------------------------
    def __call__(self, inputs: ImageInput | Iterable[ImageInput]) -> list[Detection]:
        if isinstance(inputs, (str, Path, Image.Image, ImageRecord)):
            inputs = [inputs]
        return list(self.stream(inputs))

    def stream(self, inputs: Iterable[ImageInput]) -> Iterator[Detection]:
        """Detections in input order. One batch is scored while the next is decoded and
        prepared (tiles, processor inputs) in a background thread; no more is held."""
        chunks = _chunks(enumerate(inputs), self.batch_size)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aligngemini-prepare") as pool:
            pending = None
            for chunk in chunks:
                upcoming = pool.submit(self._prepare_chunk, chunk)
                if pending is not None:
                    yield from self._detect(pending.result())
                pending = upcoming
            if pending is not None:
                yield from self._detect(pending.result())

    # --- steps -----------------------------------------------------------------------------
    def _scorers(self) -> dict[str, PixelScorer | SemanticScorer]:
        scorers: dict[str, PixelScorer | SemanticScorer] = dict(self.pixel_scorers)
        if self.semantic_scorer is not None:
            scorers["semantic"] = self.semantic_scorer
        return {name: scorer for name, scorer in scorers.items() if name in self.feature_names}

    def _prepare_chunk(self, chunk: list[tuple[int, ImageInput]]) -> _Prepared:
        decoded = [self._decode(index, item) for index, item in chunk]
        images = [d.image for d in decoded if d.image is not None]
        prepared: dict[str, Any] = {}
        for name, scorer in self._scorers().items():
            try:
                prepared[name] = scorer.prepare(images) if images else None
            except Exception:  # noqa: BLE001 - scored image by image later, so the culprit is named
                prepared[name] = None
        return _Prepared(decoded, prepared)

    def _decode(self, index: int, item: ImageInput) -> _Decoded:
        label = subset = None
        if isinstance(item, ImageRecord):
            label, subset, item = (item.label if item.label != UNLABELLED else None), item.subset, item.path
        path = f"<image {index}>" if isinstance(item, Image.Image) else str(item)
        decoded = _Decoded(index, path, label, subset)
        try:
            decoded.image = load_rgb(item, self.limits)
        except BadImageError as err:
            decoded.error = err.reason
        except Exception as err:  # a PIL object in an unusable state, a permission quirk, ...
            decoded.error = f"cannot read ({type(err).__name__}: {err})"
        return decoded

    def _detect(self, batch: _Prepared) -> list[Detection]:
        decoded = batch.decoded
        ok = [d for d in decoded if d.image is not None]
        logits: dict[str, list[float | None]] = {}
        results: dict[str, list] = {}
        for name, scorer in self._scorers().items():
            options = {"explain": self.explain} if name == "semantic" else {}
            results[name] = _score_branch(name, scorer, batch.prepared.get(name), ok, **options)
            logits[name] = [r.logit if r else None for r in results[name]]
        rationales = [r.rationale if r else None for r in results["semantic"]] if "semantic" in results else [None] * len(ok)
        complete = [i for i in range(len(ok)) if ok[i].error is None]
        blank = dict.fromkeys(self.feature_names)
        rows = {d.index: Detection(d.path, label=d.label, subset=d.subset, error=d.error, scores=dict(blank),
                                   contributions=dict(blank)) for d in decoded}
        if complete:
            features = torch.tensor([[logits[n][i] for n in self.feature_names] for i in complete], dtype=torch.float32)
            model = self.fusion.model
            with torch.inference_mode():
                fused = model(features)
                verdicts = model.verdicts(features)
                contributions = model.contributions(features)
            for row_index, i in enumerate(complete):
                row = rows[ok[i].index]
                row.logit = float(fused[row_index])
                row.probability = float(torch.sigmoid(fused[row_index]))
                row.verdict = verdicts[row_index]
                row.scores = {n: float(torch.sigmoid(features[row_index, k])) for k, n in enumerate(self.feature_names)}
                row.contributions = {n: float(contributions[row_index, k]) for k, n in enumerate(self.feature_names)}
                row.rationale = rationales[i]
                if "pixel" in results:
                    result = results["pixel"][i]
                    row.tiles = len(result.tile_logits)
                    if self.explain and self.heatmap_dir is not None:
                        row.heatmap = self._save_heatmap(ok[i], result)
        return [rows[d.index] for d in decoded]

    def _save_heatmap(self, decoded: _Decoded, result) -> str:
        self.heatmap_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(decoded.path.encode()).hexdigest()[:8]
        stem = Path(decoded.path).stem if not decoded.path.startswith("<") else f"image{decoded.index}"
        out = self.heatmap_dir / f"{stem}-{digest}-pixel-tiles.png"
        tile_heatmap(decoded.image, result.tiles, torch.sigmoid(result.tile_logits)).save(out)
        return str(out)


def _score_branch(name: str, scorer, prepared, ok: list[_Decoded], **options) -> list:
    """Score prepared inputs; on failure (or when preparing failed) fall back to _isolate."""
    if prepared is not None:
        try:
            return list(scorer.score(prepared, **options))
        except Exception:  # noqa: BLE001 - retried image by image below
            pass
    return _isolate(lambda images: scorer(images, **options), [d.image for d in ok], ok, name)


def _isolate(scorer, images: list[Image.Image], decoded: list[_Decoded], name: str) -> list:
    """Score the batch; if that fails, score image by image so one bad input fails alone."""
    if not images:
        return []
    try:
        return list(scorer(images))
    except Exception as err:  # noqa: BLE001 - any failure becomes that image's error row
        if len(images) == 1:
            decoded[0].error = f"{name} branch failed: {type(err).__name__}: {err}"
            return [None]
    results = []
    for image, d in zip(images, decoded):
        results.extend(_isolate(scorer, [image], [d], name))
    return results


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
