"""``aligngemini data reconstruct|semantic|tiny-vae``: build the two kinds of pure supervision."""

from __future__ import annotations

import sys
from typing import Literal

from aligngemini.data_builders import vae_io


def reconstruct(
    source: str,
    out_dir: str,
    vae: str = vae_io.DEFAULT_VAE,
    subfolder: str | None = vae_io.DEFAULT_SUBFOLDER,
    revision: str | None = None,
    manifest: str = "pairs.jsonl",
    batch_size: int = 4,
    max_side: int | None = None,
    oversize: Literal["skip", "tile"] = "skip",
    seed: int = 0,
    device: str = "auto",
    dtype: Literal["float32", "float16", "bfloat16"] = "float32",
    write_real: bool = False,
    progress: bool = True,
) -> int:
    """Real photos -> their VAE reconstructions + a paired manifest (label 0 real, 1 reconstruction).

    Args:
        source: folder of photos (any layout) or a CSV/JSONL manifest; records labelled fake are skipped.
        out_dir: where reconstructions (PNG), the manifest and skipped.jsonl go; rerunning resumes.
        vae: Hub id or local folder of a diffusers AutoencoderKL (safetensors weights only).
        subfolder: subfolder of ``vae`` holding the VAE; ignored for a folder that holds it directly.
        revision: Hub revision (commit sha, tag or branch) to pin.
        manifest: paired manifest file (.jsonl or .csv), relative to out_dir unless absolute.
        batch_size: images of the same size reconstructed together.
        max_side: largest side reconstructed in one piece; larger images follow ``oversize``.
        oversize: skip (report) or tile (reconstruct in max_side tiles) images over max_side.
        seed: seed of the posterior samples (each image gets its own, stable across reruns).
        device: auto, cpu, cuda or cuda:N.
        dtype: VAE weight dtype.
        write_real: also save each cropped real photo as PNG and point the manifest at it.
        progress: show a progress bar.
    """
    from aligngemini.data_builders.reconstruct import reconstruct as run

    report = run(source, out_dir, vae=vae, subfolder=subfolder, revision=revision, manifest=manifest,
                 batch_size=batch_size, max_side=max_side, oversize=oversize, seed=seed, device=device,
                 dtype=dtype, write_real=write_real, progress=progress)
    print(report.summary())
    return 0 if report.pairs else 1


def semantic(source: str, out: str = "semantic.jsonl", rationales: str | None = None) -> int:
    """Labelled records (+ a rationale file) -> the manifest the semantic view reads.

    Args:
        source: labelled folder (real/ + fake/ layouts) or CSV/JSONL manifest.
        out: manifest to write (.jsonl, or .csv).
        rationales: CSV/JSONL with path,rationale or a JSON {path: rationale} mapping.
    """
    from aligngemini.data_builders.semantic import build_semantic_manifest

    report = build_semantic_manifest(source, out, rationales)
    print(report.summary())
    return 0


def tiny_vae(
    out_dir: str,
    steps: int = 600,
    batch_size: int = 8,
    crop: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    photos: str | None = None,
    block_out_channels: tuple[int, ...] = (16, 32),
    latent_channels: int = 4,
) -> int:
    """Train a tiny AutoencoderKL on photo crops (CPU, seconds) for offline demos; saves safetensors.

    Args:
        out_dir: folder for config.json + diffusion_pytorch_model.safetensors + training.json.
        steps: optimisation steps.
        batch_size: crops per step.
        crop: crop side in pixels (a multiple of 8).
        lr: AdamW learning rate (cosine decay).
        seed: seed of the weights and the crops.
        photos: folder or manifest of training photos; default: photos bundled with scikit-image.
        block_out_channels: channels per level; n levels downsample by 2**(n-1).
        latent_channels: channels of the latent.
    """
    from aligngemini.data_builders.tiny_vae import TinyVAEConfig, TrainSettings, make_tiny_vae

    images = None
    if photos is not None:
        from aligngemini.datamodules.images import BadImageError, decode_image
        from aligngemini.datamodules.records import load_records

        images = []
        for record in load_records(photos, allow_unlabelled=True):
            try:
                images.append(decode_image(record.path))
            except BadImageError as err:
                print(f"skipped {err}", file=sys.stderr)
        images = [image for image in images if min(image.size) >= crop]
    summary = make_tiny_vae(
        out_dir,
        TinyVAEConfig(block_out_channels=tuple(block_out_channels), latent_channels=latent_channels),
        TrainSettings(steps=steps, batch_size=batch_size, crop=crop, lr=lr, seed=seed),
        images,
    )
    print(f"tiny VAE saved to {out_dir}: {summary['seconds']} s, PSNR {summary['psnr_before_db']} -> "
          f"{summary['psnr_after_db']} dB on photo crops")
    return 0


COMMANDS = {"reconstruct": reconstruct, "semantic": semantic, "tiny-vae": tiny_vae}


def main(argv: list[str]) -> int:
    from jsonargparse import auto_cli

    return int(auto_cli(COMMANDS, args=list(argv), prog="aligngemini data") or 0)
