"""Frozen descriptions of published weights: what a catalog entry records, as plain data.

A :class:`WeightsSpec` pins one published version: the Hub repo and the commit sha its
tag pointed at when it was pushed (tags move, shas do not), the sha256 of every file,
the base models with their revisions, and the preprocessing / quantisation / LoRA
settings. ``aligngemini zoo push`` prints one as Python source to paste into the catalog.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from aligngemini.errors import AlignGeminiError

FAMILIES = ("pixel", "semantic", "fusion", "detector")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class SpecError(AlignGeminiError, ValueError):
    """A catalog entry (or a pushed folder) breaks the rules a published version must keep."""


def parse_version(version: str) -> tuple[int, int, int]:
    version = version[1:] if version.startswith("v") else version
    match = SEMVER.match(version)
    if not match:
        raise SpecError(f"version {version!r} is not MAJOR.MINOR.PATCH (e.g. 1.2.0)")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


@dataclass(frozen=True)
class FileSpec:
    """One file of a published version and the sha256 its bytes must have."""

    path: str
    sha256: str
    size: int

    def __post_init__(self):
        if not SHA256.match(self.sha256):
            raise SpecError(f"{self.path}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise SpecError(f"{self.path}: file paths are relative to the repo root")

    @property
    def is_pickle(self) -> bool:
        return self.path.lower().endswith(PICKLE_SUFFIXES)


@dataclass(frozen=True)
class ModelRef:
    """A base model the weights sit on (timm backbone, VLM), pinned to a revision."""

    repo_id: str
    revision: str = "main"

    @property
    def pinned(self) -> bool:
        return bool(COMMIT_SHA.match(self.revision))


@dataclass(frozen=True)
class PreprocessCfg:
    """How images become model inputs: the data view's class and its non-path settings
    (crop size, scramble, prompt ...), rebuilt from data, never unpickled."""

    datamodule: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # what the model applies itself (mean/std)


@dataclass(frozen=True)
class QuantSpec:
    bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    skip_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: float
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class WeightsSpec:
    """One published version of one model."""

    name: str
    version: str
    family: str
    repo_id: str
    commit: str
    files: tuple[FileSpec, ...]
    weights: str | None = "model.safetensors"  # None: a detector entry that only names its parts
    base_models: tuple[ModelRef, ...] = ()
    preprocess: PreprocessCfg | None = None
    quant: QuantSpec | None = None
    lora: LoraSpec | None = None
    labels: tuple[str, ...] = ("real", "fake")
    metrics: tuple[tuple[str, float], ...] = ()
    parts: tuple[tuple[str, str], ...] = ()  # detector: (role, zoo ref) of each part
    license: str = "apache-2.0"
    description: str = ""

    def __post_init__(self):
        where = f"{self.name}@{self.version}"
        if not NAME.match(self.name):
            raise SpecError(f"{where}: names are lowercase letters, digits, '.', '_' and '-'")
        parse_version(self.version)
        if self.version.startswith("v"):
            raise SpecError(f"{where}: write the version without 'v' (the tag adds it)")
        if self.family not in FAMILIES:
            raise SpecError(f"{where}: family must be one of {FAMILIES}, got {self.family!r}")
        if not REPO_ID.match(self.repo_id):
            raise SpecError(f"{where}: repo_id must look like 'org/name', got {self.repo_id!r}")
        if not COMMIT_SHA.match(self.commit):
            raise SpecError(f"{where}: commit must be the 40-hex sha the tag pointed at, got {self.commit!r}")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise SpecError(f"{where}: a file is listed twice")
        for required in ("config.json", self.weights):
            if required is not None and required not in paths:
                raise SpecError(f"{where}: files must include {required}")
        if self.weights is None and not (self.family == "detector" and self.parts):
            raise SpecError(f"{where}: only a detector entry naming its parts may come without weights")
        if self.weights is not None and self.weights.lower().endswith(PICKLE_SUFFIXES):
            raise SpecError(f"{where}: weights must be safetensors, not a pickle ({self.weights})")
        for role, ref in self.parts:
            if role not in FAMILIES[:3] or "@" not in ref:
                raise SpecError(f"{where}: parts are (pixel|semantic|fusion, 'name@vX.Y.Z'), got ({role}, {ref})")
        if len(self.labels) != 2:
            raise SpecError(f"{where}: labels are (negative, positive) names, e.g. ('real', 'fake')")

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    def file(self, path: str) -> FileSpec:
        for spec in self.files:
            if spec.path == path:
                return spec
        raise KeyError(f"{self.ref} has no file {path!r}")

    def to_python(self) -> str:
        """Source code for this entry, to paste into ``aligngemini/zoo/catalog.py``."""
        return _source(self, indent=0) + ","


def _source(value: Any, indent: int) -> str:
    pad, inner = "    " * indent, "    " * (indent + 1)
    if hasattr(value, "__dataclass_fields__"):
        parts = []
        for f in fields(value):
            item = getattr(value, f.name)
            default = f.default
            if default is MISSING and f.default_factory is not MISSING:
                default = f.default_factory()
            if default is MISSING or item != default:  # required fields, and settings that differ
                parts.append(f"{inner}{f.name}={_source(item, indent + 1)},")
        short = f"{type(value).__name__}({', '.join(p.strip().rstrip(',') for p in parts)})"
        if len(short) + len(pad) < 100:
            return short
        return f"{type(value).__name__}(\n" + "\n".join(parts) + f"\n{pad})"
    if isinstance(value, tuple) and value:
        items = [_source(v, indent + 1) for v in value]
        short = "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if len(short) + len(pad) < 100:
            return short
        return "(\n" + "".join(f"{inner}{item},\n" for item in items) + f"{pad})"
    return repr(value)
