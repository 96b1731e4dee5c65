"""Loading the detector's parts, and scoring raw PIL images with each branch.

A part is given as a LightningModule, a Lightning checkpoint (``.ckpt``), an exported
folder (``config.json`` + safetensors, see :mod:`aligngemini.zoo`) or a zoo name; the
zoo is reached through :func:`load_part` only, so the detector does not care which.

The branches score typed batches built by their datamodules; the scorers here build
those inputs from in-memory images instead (tiles for the pixel branch, processor
prompts for the semantic branch), so the detector decodes each file once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from aligngemini.detect.tiling import ImageTiles, TilingConfig, aggregate_logits, image_tiles
from aligngemini.errors import AlignGeminiError
from aligngemini.lightning_modules.base import DetectorModule

ROLE_CLASSES = {
    "pixel": "aligngemini.lightning_modules.pixel:PixelBranch",
    "semantic": "aligngemini.lightning_modules.semantic:SemanticBranch",
    "fusion": "aligngemini.lightning_modules.fusion:FusionHead",
}


class PartLoadError(AlignGeminiError):
    """A detector part that cannot be loaded; the message names it."""


def _role_class(role: str) -> type[DetectorModule]:
    import importlib

    # extra pixel experts ("pixel_flux", ...) are pixel branches
    module_name, _, name = ROLE_CLASSES.get(role, ROLE_CLASSES["pixel"]).partition(":")
    return getattr(importlib.import_module(module_name), name)


def load_part(source: str | Path | DetectorModule, role: str, device: torch.device | str = "cpu") -> DetectorModule:
    """``source`` -> a DetectorModule in eval mode on ``device``. ``role`` (pixel, semantic,
    fusion, or an extra pixel expert's name) picks the class of a plain checkpoint."""
    if isinstance(source, DetectorModule):
        module = source
    else:
        path = Path(str(source)).expanduser()
        if path.is_file():
            try:
                module = _role_class(role).load_from_checkpoint(path, map_location="cpu")
            except (KeyError, RuntimeError, TypeError, ValueError) as err:
                raise PartLoadError(f"{path}: not a {role} checkpoint ({err})") from err
        elif path.is_dir():
            from aligngemini.zoo.rebuild import build_from_folder

            module = build_from_folder(path, device=device)  # built where it runs: a 4-bit VLM cannot move
        elif _looks_like_a_path(str(source)):
            raise PartLoadError(f"{source}: {role} checkpoint not found")
        else:
            module = zoo_load(str(source), device)
    module.configure_model()
    return module.to(device).eval()


def _looks_like_a_path(text: str) -> bool:
    if text.startswith(("hf-hub:", "local-dir:")):
        return False
    return text.endswith((".ckpt", ".safetensors", ".pt")) or "/" in text or "\\" in text


def zoo_load(name: str, device: torch.device | str = "cpu") -> DetectorModule:
    try:
        from aligngemini.zoo.api import load
    except ImportError as err:  # the zoo is optional for checkpoint users
        raise PartLoadError(f"{name}: not a file, and the model zoo is unavailable ({err})") from err
    return load(name, device=device)


def detector_parts(name: str) -> dict[str, str] | None:
    """For a zoo entry of family ``detector``: its parts as {role: zoo ref}; else None."""
    try:
        from aligngemini.zoo.catalog import CATALOG, CatalogSource
    except ImportError:
        return None
    source = CATALOG.resolve(name)  # an unknown name raises the zoo's error, with suggestions
    if isinstance(source, CatalogSource) and source.spec.family == "detector":
        return dict(source.spec.parts)
    return None


@dataclass
class PixelScore:
    logit: float
    tiles: ImageTiles
    tile_logits: torch.Tensor


class PixelScorer:
    """Whole-image score from a pixel branch: tiles at the branch's crop size, aggregated.

    ``prepare`` (CPU only, thread-safe) and ``score`` (the model) are separate so that the
    detector can prepare the next batch while this one is scored; calling the scorer does both.
    """

    def __init__(self, branch: DetectorModule, tiling: TilingConfig = TilingConfig(), tile_batch: int = 64):
        self.branch = branch
        self.crop = int(branch.preprocess.crop_size)
        self.tiling = tiling
        self.tile_batch = tile_batch

    def prepare(self, images: list[Image.Image]) -> list[ImageTiles]:
        return [image_tiles(image, self.crop, self.tiling.max_tiles) for image in images]

    def __call__(self, images: list[Image.Image]) -> list[PixelScore]:
        return self.score(self.prepare(images))

    @torch.inference_mode()
    def score(self, per_image: list[ImageTiles]) -> list[PixelScore]:
        stacked = torch.cat([t.tiles for t in per_image])
        logits = torch.cat([self.branch.score_images(chunk).float().cpu()
                            for chunk in stacked.split(self.tile_batch)])
        out, start = [], 0
        for tiles in per_image:
            mine = logits[start : start + len(tiles.tiles)]
            start += len(tiles.tiles)
            out.append(PixelScore(float(aggregate_logits(mine, self.tiling)), tiles, mine))
        return out


@dataclass
class SemanticScore:
    logit: float
    rationale: str | None = None


@dataclass(frozen=True)
class SemanticPrompting:
    """How an image becomes a prompt for the VLM. Unset fields come from the settings of
    the data view the branch was trained with (see :func:`training_data_settings`), else
    from :class:`aligngemini.datamodules.semantic.SemanticDataModule`'s defaults."""

    max_image_side: int | None = None
    conversation: dict = field(default_factory=dict)  # system_prompt / question / verdict_words


PROMPT_SETTINGS = ("system_prompt", "question", "verdict_words")
DEFAULT_MAX_IMAGE_SIDE = 448


def training_data_settings(source, module: DetectorModule) -> dict:
    """The data view's settings a part was trained with: an exported folder records them in
    ``config.json``, a Lightning checkpoint holds its datamodule's hyperparameters."""
    zoo_config = getattr(module, "zoo_config", None)
    if zoo_config:
        return dict((zoo_config.get("preprocess") or {}).get("settings") or {})
    if isinstance(source, (str, Path)) and Path(source).is_file():
        try:  # mmap: the tensors are not read again, only the small dictionaries
            checkpoint = torch.load(source, map_location="cpu", mmap=True, weights_only=False)
        except Exception:  # noqa: BLE001 - the settings are a refinement; loading already succeeded
            return {}
        return dict(checkpoint.get("datamodule_hyper_parameters") or {})
    return {}


class SemanticScorer:
    """Verdict-token logits (and, with ``explain``, generated answers) for PIL images.

    The branch scores processor batches; this adapter encodes the prompts the way the
    semantic data view does (same conversation, same image bound, no scrambling at test).
    """

    def __init__(self, branch: DetectorModule, prompting: SemanticPrompting = SemanticPrompting(),
                 trained: dict | None = None):
        from aligngemini.datamodules.semantic import ConversationConfig
        from aligngemini.models.semantic import load_processor, resolve_family

        self.branch = branch
        hp = branch.hparams
        trained = trained or {}
        settings = {"verdict_words": tuple(branch.verdict_words),
                    **{k: trained[k] for k in PROMPT_SETTINGS if trained.get(k) is not None},
                    **prompting.conversation}
        self.conversation = ConversationConfig.from_dict(settings)
        self.family = resolve_family(hp.model_id, hp.revision, hp.family)
        self.processor = load_processor(hp.model_id, hp.revision)
        if prompting.max_image_side is not None:
            self.max_image_side = prompting.max_image_side
        else:
            self.max_image_side = trained.get("max_image_side", DEFAULT_MAX_IMAGE_SIDE)
        # A fast tokenizer must not be used from two threads at once ("Already borrowed"):
        # the detector prepares the next batch in a thread while this one is generated.
        self._tokenizer_lock = threading.Lock()

    def _bounded(self, image: Image.Image) -> Image.Image:
        if self.max_image_side and max(image.size) > self.max_image_side:
            image = image.copy()
            image.thumbnail((self.max_image_side, self.max_image_side), Image.BICUBIC)
        return image

    def prepare(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """The processor batch (CPU only); the detector runs this ahead, in its decode thread."""
        from aligngemini.datamodules.semantic import encode_prompts

        bounded = [self._bounded(im) for im in images]
        with self._tokenizer_lock:
            return encode_prompts(self.processor, self.family, self.conversation, bounded)

    def __call__(self, images: list[Image.Image], explain: bool = False) -> list[SemanticScore]:
        return self.score(self.prepare(images), explain)

    @torch.inference_mode()
    def score(self, prompts: dict[str, torch.Tensor], explain: bool = False) -> list[SemanticScore]:
        device = self.branch.device
        prompts = {k: v.to(device) if torch.is_tensor(v) else v for k, v in prompts.items()}
        logits = self.branch.model.score(prompts).float().cpu()
        rationales: list[str | None] = [None] * len(logits)
        if explain:
            with self._tokenizer_lock:
                rationales = self.branch.model.generate_answers(prompts, self.branch.max_new_tokens)
        return [SemanticScore(float(z), r) for z, r in zip(logits, rationales)]
