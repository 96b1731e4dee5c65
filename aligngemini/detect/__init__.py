"""The full detector: ``AlignGemini(...)(images)`` -> one :class:`Detection` per image."""

from aligngemini.detect.detector import AlignGemini, Detection
from aligngemini.detect.tiling import TilingConfig

__all__ = ["AlignGemini", "Detection", "TilingConfig"]
