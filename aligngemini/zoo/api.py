"""``aligngemini.load``: a zoo name -> a LightningModule ready for inference."""

from __future__ import annotations

from pathlib import Path

import torch

from aligngemini.zoo.catalog import CATALOG, Catalog
from aligngemini.zoo.hub import Pulled, pull
from aligngemini.zoo.rebuild import build_from_folder


def load(
    name: str | Path,
    *,
    catalog: Catalog = CATALOG,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    force_download: bool = False,
    device: str | torch.device = "cpu",
):
    """Pull ``name`` (``name``, ``name@v1``, ``name@v1.2.0``, ``hf-hub:org/repo@rev`` or
    ``local-dir:/path``), verify its files, and rebuild the model in eval mode on ``device``.

    Weights load from safetensors only unless ``allow_pickle``; a config that asks for
    ``trust_remote_code`` is refused unless ``trust_remote_code`` is given here too.
    """
    pulled: Pulled = pull(name, catalog=catalog, cache_dir=cache_dir, endpoint=endpoint,
                          allow_pickle=allow_pickle, force_download=force_download)
    module = build_from_folder(pulled.folder, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                               device=device)
    module.zoo_source = str(pulled.source)
    return module
