from __future__ import annotations

from pathlib import Path

import pytest

from aligngemini.datamodules.records import load_records


@pytest.fixture(scope="session")
def paired_records(paired_dataset: Path):
    return load_records(paired_dataset)
