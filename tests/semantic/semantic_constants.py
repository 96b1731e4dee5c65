"""Constants shared by the semantic tests (a uniquely named module: safer than importing conftest)."""

from pathlib import Path

import aligngemini

# Short prompts keep the tiny models' sequences (and the tests) short.
SHORT_PROMPTS = {"system_prompt": "You judge images.", "question": "Is this image real or fake?"}
RATIONALE = "The shadows point in two directions."
TINY_PRESET = Path(aligngemini.__file__).parent / "configs" / "semantic" / "tiny_cpu.yaml"
