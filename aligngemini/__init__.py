"""AlignGemini: AI-generated image detection by task-model alignment.

Public API (imported lazily, so ``import aligngemini`` stays cheap):

- ``aligngemini.load(name)``: a model from the zoo (``name@v1``, ``hf-hub:org/repo@rev``,
  ``local-dir:/path``), ready for inference.
- ``aligngemini.AlignGemini``: the detector (pixel branch + semantic branch + fusion head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["AlignGemini", "Detection", "load", "__version__"]

if TYPE_CHECKING:
    from aligngemini.detect.detector import AlignGemini, Detection
    from aligngemini.zoo.api import load


def __getattr__(name: str):
    if name == "load":
        from aligngemini.zoo.api import load

        return load
    if name in {"AlignGemini", "Detection"}:
        from aligngemini.detect import detector

        return getattr(detector, name)
    raise AttributeError(f"module 'aligngemini' has no attribute {name!r}")
