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


class ConfigError(AlignGeminiError, ValueError):
    """A setting that cannot work (an unknown backbone, an empty split); the message says which."""


def is_user_error(err: BaseException) -> bool:
    from argparse import ArgumentError

    from aligngemini.datamodules.images import BadImageError
    from aligngemini.datamodules.records import ManifestError

    try:  # jsonargparse's own parse error (unknown key, wrong type, missing config file)
        from jsonargparse import ArgumentError as ParserError
    except ImportError:
        ParserError = ArgumentError
    return isinstance(err, (AlignGeminiError, ManifestError, BadImageError, FileNotFoundError, NotADirectoryError,
                            ArgumentError, ParserError))


def one_line(err: BaseException, limit: int = 400) -> str:
    """A (possibly multi-line, nested) parser message as one line: where, what was expected, what was given."""
    lines = [line.strip(" -") for line in str(err).splitlines() if line.strip(" -")]
    if not lines:
        return type(err).__name__
    keep = [lines[0]]
    after_class_problem = False
    for line in lines[1:]:
        if "NoneType" in line or "NestedArg" in line:
            continue  # the "or None" half of every Optional, and jsonargparse's internal wrapper
        if after_class_problem or line.startswith(("Parser key", "Option", "Expected", "Key", "File", "Given value:")):
            keep.append(line)  # the line after "Problem with given class_path" is its cause
        after_class_problem = line.startswith("Problem with given class_path")
    text = keep[0]
    for line in keep[1:]:
        text += (" " if text.endswith(":") else "; ") + line
    return text if len(text) <= limit else text[: limit - 3] + "..."
