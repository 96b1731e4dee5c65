"""Errors a user can fix get one clear line from the CLI; the rest keep their traceback."""

from __future__ import annotations


class AlignGeminiError(Exception):
    """Base for errors whose message tells the user what to change."""


class MissingExtraError(AlignGeminiError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(f"{purpose} needs {package}: pip install 'aligngemini[{extra}]'")


def require(module: str, extra: str, purpose: str):
    """Import ``module`` or raise a :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(module, extra, purpose) from err


def is_user_error(err: BaseException) -> bool:
    from aligngemini.datamodules.images import BadImageError
    from aligngemini.datamodules.records import ManifestError

    return isinstance(err, (AlignGeminiError, ManifestError, BadImageError, FileNotFoundError, NotADirectoryError))
