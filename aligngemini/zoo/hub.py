"""Push an export folder to the Hub as a tagged version; pull a version back, verified.

Push uploads the folder in one commit, tags ``v{version}`` on that commit and returns the
catalog entry (commit sha + sha256 of every file). Pull downloads at the pinned commit,
checks every file against the catalog's sha256, and works offline from the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from aligngemini.errors import AlignGeminiError
from aligngemini.zoo.catalog import CATALOG, Catalog, CatalogSource, HubSource, LocalSource, Source
from aligngemini.zoo.rebuild import IntegrityError, read_config, sha256_of
from aligngemini.zoo.settings import base_models_of, lora_of, preprocess_of, quant_of
from aligngemini.zoo.specs import NAME, PICKLE_SUFFIXES, FileSpec, SpecError, WeightsSpec, parse_version

log = logging.getLogger(__name__)
# Files a pull needs; a Hub repo may hold others (pickles, logs) that are never fetched.
PULL_PATTERNS = ("config.json", "README.md", "*.safetensors", "adapter*/*")


class VersionExistsError(AlignGeminiError):
    """Published versions are immutable."""


class OfflineError(AlignGeminiError):
    pass


@dataclass(frozen=True)
class Pulled:
    folder: Path
    source: Source
    spec: WeightsSpec | None = None


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


def _endpoint(endpoint: str | None) -> str | None:
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def folder_files(folder: Path) -> tuple[FileSpec, ...]:
    """Every file an upload sends (hidden files and folders are skipped, as upload does)."""
    specs = []
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in relative.split("/")):
            specs.append(FileSpec(relative, sha256_of(path), path.stat().st_size))
    return tuple(specs)


def push(
    folder: str | Path,
    repo_id: str,
    version: str,
    *,
    name: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    catalog: Catalog = CATALOG,
) -> WeightsSpec:
    from huggingface_hub import HfApi

    from aligngemini.zoo.cards import DEFAULT_DATASET, eval_rows, write_card

    folder = Path(folder)
    version = ".".join(str(part) for part in parse_version(version))
    config = read_config(folder)
    verify_export(folder)
    name = name or repo_id.split("/")[-1].lower()
    if not NAME.match(name):
        raise SpecError(f"{name!r} cannot be a catalog name (lowercase letters, digits, '.', '_', '-'); pass --name")
    if (name, version) in {(s.name, s.version) for s in catalog}:
        raise VersionExistsError(f"{name}@v{version} is already in the catalog; bump the version")
    if _offline():
        raise OfflineError("push needs the network but HF_HUB_OFFLINE=1 (the aligngemini CLI sets it by default); "
                           "run with HF_HUB_OFFLINE=0")
    api = HfApi(endpoint=_endpoint(endpoint), token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    tag = f"v{version}"
    existing = {ref.name: ref.target_commit for ref in api.list_repo_refs(repo_id).tags}
    if tag in existing:
        raise VersionExistsError(f"{repo_id} already has tag {tag} (commit {existing[tag]}); "
                                 "published versions never change: push a new version")
    if config["name"] != name:
        import json

        config["name"] = name
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    write_card(folder, version=version, repo_id=repo_id)
    card = config.get("card", {})
    metrics = tuple((row["metric"] if row["dataset"] == DEFAULT_DATASET else f"{row['dataset']}/{row['metric']}",
                     row["value"]) for row in eval_rows(card.get("metrics") or {}))
    if (config.get("weights") or {}).get("keys") == "trainable" and not base_models_of(config):
        log.warning("%s holds trainable weights only, but its base model is not a Hub id with a revision; "
                    "others cannot rebuild it", folder)
    spec = WeightsSpec(  # built before uploading, so that a malformed entry never reaches the Hub
        name=name, version=version, family=config["family"], repo_id=repo_id, commit="0" * 40,
        files=folder_files(folder), weights=config["weights"]["file"] if config.get("weights") else None,
        parts=tuple(sorted((config.get("parts") or {}).items())), base_models=tuple(base_models_of(config)),
        preprocess=preprocess_of(config), quant=quant_of(config), lora=lora_of(config),
        labels=tuple(config.get("labels", ("real", "fake"))), metrics=metrics,
        description=card.get("description", ""),
    )
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=f"{name} v{version}",
                               ignore_patterns=[".*", "**/.*"]).oid
    _check_remote_tree(api, repo_id, commit, folder, spec.files)
    api.create_tag(repo_id, tag=tag, revision=commit, tag_message=f"{name} v{version}")
    return replace(spec, commit=commit)


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _check_remote_tree(api, repo_id: str, commit: str, folder: Path, files: tuple[FileSpec, ...]) -> None:
    """Before tagging: the commit holds every file with our bytes (LFS sha256 or git blob sha1)."""
    from huggingface_hub.hf_api import RepoFile

    remote = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True, revision=commit)
              if isinstance(f, RepoFile)}
    for expected in files:
        entry = remote.get(expected.path)
        if entry is None:
            raise IntegrityError(f"{repo_id}@{commit[:12]}: {expected.path} is missing after the upload; not tagged")
        ok = (entry.lfs.sha256 == expected.sha256 if entry.lfs is not None
              else entry.blob_id == _git_blob_sha1(folder / expected.path))
        if not ok:
            raise IntegrityError(f"{repo_id}@{commit[:12]}: the Hub's {expected.path} differs from the uploaded "
                                 "file; not tagged")


def _download(repo_id: str, filename: str, commit: str, cache_dir, endpoint, force: bool) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, revision=commit, cache_dir=cache_dir,
                                    endpoint=_endpoint(endpoint), force_download=force))
    except LocalEntryNotFoundError as err:
        if _offline():
            raise OfflineError(f"{filename} of {repo_id}@{commit[:12]} is not in the cache and HF_HUB_OFFLINE=1; "
                               "pull it once with HF_HUB_OFFLINE=0") from err
        raise


def verify_file(path: Path, expected: FileSpec, where: str) -> None:
    actual = sha256_of(path)
    if actual != expected.sha256:
        raise IntegrityError(
            f"{expected.path} from {where} failed its hash check: sha256 {actual}, the catalog pins "
            f"{expected.sha256}. The download is corrupt or was tampered with; it will not be loaded. "
            f"Retry with --force-download, or report it if it persists. (file: {path})")


def pull_spec(spec: WeightsSpec, *, cache_dir=None, endpoint=None, allow_pickle=False, force=False) -> Path:
    pickles = [f.path for f in spec.files if f.is_pickle]
    if pickles and not allow_pickle:
        raise IntegrityError(f"{spec.ref} lists pickle files {pickles}; refused (pass --allow-pickle to accept)")
    folder = None
    for expected in spec.files:
        path = _download(spec.repo_id, expected.path, spec.commit, cache_dir, endpoint, force)
        verify_file(path, expected, f"{spec.repo_id}@{spec.commit[:12]} ({spec.ref})")
        folder = Path(str(path)[: -len(expected.path)])
    return folder


def pull_hub(repo_id: str, revision: str, *, cache_dir=None, endpoint=None, allow_pickle=False, force=False) -> Path:
    """Any Hub repo: the weights are checked against the sha256 its own config.json records."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = list(PULL_PATTERNS) + (["*" + s for s in PICKLE_SUFFIXES] if allow_pickle else [])
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, endpoint=_endpoint(endpoint),
                                        allow_patterns=patterns, force_download=force))
    except LocalEntryNotFoundError as err:
        if _offline():
            raise OfflineError(f"hf-hub:{repo_id}@{revision} is not in the cache and HF_HUB_OFFLINE=1; "
                               "pull it once with HF_HUB_OFFLINE=0") from err
        raise
    verify_export(folder, allow_pickle=allow_pickle)
    return folder


def verify_export(folder: Path, allow_pickle: bool = False) -> None:
    """The weights named by config.json exist, are not a pickle (unless allowed) and match their sha256."""
    config = read_config(folder)
    weights = config.get("weights")
    if weights is None and config.get("family") == "detector":
        return
    if weights is None:
        raise IntegrityError(f"{folder}/config.json names no weights")
    if Path(weights["file"]).suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise IntegrityError(f"{folder}: weights {weights['file']} are a pickle, which can run code when loaded; "
                             "refused (pass --allow-pickle / allow_pickle=True if you trust the source)")
    path = folder / weights["file"]
    if not path.is_file():
        raise IntegrityError(f"{folder}: {weights['file']} named by config.json is missing")
    if sha256_of(path) != weights["sha256"]:
        raise IntegrityError(f"{path} failed its hash check against config.json ({weights['sha256']})")


def pull(ref: str | Path, *, catalog: Catalog = CATALOG, cache_dir=None, endpoint=None, allow_pickle: bool = False,
         force_download: bool = False) -> Pulled:
    """Resolve ``ref`` (see :mod:`aligngemini.zoo.catalog`) to a verified local folder."""
    source = catalog.resolve(ref)
    options = dict(cache_dir=cache_dir, endpoint=endpoint, allow_pickle=allow_pickle, force=force_download)
    if isinstance(source, LocalSource):
        verify_export(source.path, allow_pickle=allow_pickle)
        return Pulled(source.path, source)
    if isinstance(source, HubSource):
        return Pulled(pull_hub(source.repo_id, source.revision, **options), source)
    assert isinstance(source, CatalogSource)
    return Pulled(pull_spec(source.spec, **options), source, source.spec)
