"""The one catalog of published weights, and how a model name resolves to a source.

Every published version is one :class:`~aligngemini.zoo.specs.WeightsSpec` in
``ENTRIES`` below, pasted from the output of ``aligngemini zoo push``. Nothing registers
itself on import; a second entry with the same name and version raises.

Names resolve as:

- ``name``: the highest published version
- ``name@v1`` / ``name@v1.2``: the highest 1.x.y / 1.2.x
- ``name@v1.2.0`` (or ``name@1.2.0``): exactly that version
- ``hf-hub:org/repo@rev``: any Hub repo at a branch, tag or commit (``@rev`` defaults to main)
- ``local-dir:/path``: an exported folder on disk
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aligngemini.errors import AlignGeminiError
from aligngemini.zoo.specs import (  # noqa: F401 (the spec classes pasted entries are written in)
    REPO_ID,
    FileSpec,
    LoraSpec,
    ModelRef,
    PreprocessCfg,
    QuantSpec,
    WeightsSpec,
    parse_version,
)

# No AlignGemini weights have been published yet: entries appear here only after a real
# `aligngemini zoo push` has printed them (repo, commit sha and file hashes).
ENTRIES: tuple[WeightsSpec, ...] = ()


class UnknownModelError(AlignGeminiError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateEntryError(AlignGeminiError, ValueError):
    pass


@dataclass(frozen=True)
class CatalogSource:
    spec: WeightsSpec

    def __str__(self) -> str:
        return self.spec.ref


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str = "main"

    def __str__(self) -> str:
        return f"hf-hub:{self.repo_id}@{self.revision}"


@dataclass(frozen=True)
class LocalSource:
    path: Path

    def __str__(self) -> str:
        return f"local-dir:{self.path}"


Source = CatalogSource | HubSource | LocalSource


class Catalog:
    """Published versions keyed by (name, version). Tests build their own instances."""

    def __init__(self, entries: Iterable[WeightsSpec] = ()):
        self._entries: dict[tuple[str, str], WeightsSpec] = {}
        for spec in entries:
            self.register(spec)

    def register(self, spec: WeightsSpec) -> WeightsSpec:
        key = (spec.name, spec.version)
        if key in self._entries:
            raise DuplicateEntryError(f"{spec.ref} is already in the catalog; a published version never changes: "
                                      "bump the version instead")
        for other in self._entries.values():
            if (other.repo_id, other.version) == (spec.repo_id, spec.version):
                raise DuplicateEntryError(f"{spec.ref} and {other.ref} both claim {spec.repo_id} tag {spec.tag}")
        self._entries[key] = spec
        return spec

    def __iter__(self) -> Iterator[WeightsSpec]:
        return iter(sorted(self._entries.values(), key=lambda s: (s.name, s.version_tuple)))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._entries})

    def versions(self, name: str) -> list[WeightsSpec]:
        return [spec for spec in self if spec.name == name]

    def get(self, name: str, version: str | None = None) -> WeightsSpec:
        """The exact version, or the highest version matching a ``1`` / ``1.2`` prefix."""
        candidates = self.versions(name)
        if not candidates:
            close = difflib.get_close_matches(name, self.names(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else (
                f"; published: {', '.join(self.names())}" if self.names() else "; the catalog is empty")
            raise UnknownModelError(f"no model named {name!r} in the zoo{hint} (see `aligngemini zoo list`)")
        if version is None:
            return candidates[-1]
        wanted = _version_prefix(version)
        matching = [s for s in candidates if s.version_tuple[: len(wanted)] == wanted]
        if not matching:
            published = ", ".join(s.version for s in candidates)
            raise UnknownModelError(f"{name} has no version matching {version!r}; published: {published}")
        return matching[-1]

    def resolve(self, ref: str | Path) -> Source:
        if isinstance(ref, Path):
            return LocalSource(ref)
        ref = ref.strip()
        if ref.startswith("local-dir:"):
            path = Path(ref[len("local-dir:"):]).expanduser()
            if not path.is_dir():
                raise FileNotFoundError(f"{ref}: {path} is not a folder")
            return LocalSource(path)
        if ref.startswith("hf-hub:"):
            repo_id, _, revision = ref[len("hf-hub:"):].partition("@")
            if not REPO_ID.match(repo_id):
                raise UnknownModelError(f"{ref}: expected hf-hub:org/repo[@revision]")
            return HubSource(repo_id, revision or "main")
        name, _, version = ref.partition("@")
        return CatalogSource(self.get(name, version or None))


def _version_prefix(version: str) -> tuple[int, ...]:
    text = version[1:] if version.startswith("v") else version
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise UnknownModelError(f"version {version!r}: write v1, v1.2 or v1.2.0")
    if len(parts) == 3:
        parse_version(text)
    return tuple(int(p) for p in parts)


CATALOG = Catalog(ENTRIES)
