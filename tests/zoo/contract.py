"""What every published catalog entry must satisfy (run over the real catalog and over
entries that tests push to the loopback Hub)."""

from __future__ import annotations

import math

from aligngemini.zoo import specs as specs_module
from aligngemini.zoo.rebuild import import_class
from aligngemini.zoo.specs import COMMIT_SHA, FAMILIES, WeightsSpec


def check_entry(spec: WeightsSpec, catalog=None) -> None:
    paths = {f.path for f in spec.files}
    assert {"config.json", "README.md"} <= paths, f"{spec.ref}: config and card are published"
    if spec.family == "detector":
        assert spec.parts, f"{spec.ref}: a detector names its parts"
    else:
        assert spec.weights in paths and spec.weights.endswith(".safetensors"), f"{spec.ref}: safetensors weights"
    assert not any(f.is_pickle for f in spec.files), spec.ref
    assert COMMIT_SHA.match(spec.commit), f"{spec.ref}: pinned to a commit, not a tag"
    assert spec.family in FAMILIES
    assert all(f.size > 0 for f in spec.files), f"{spec.ref}: no empty files"
    for base in spec.base_models:
        assert base.pinned, f"{spec.ref}: base model {base.repo_id} must be pinned to a commit sha, got {base.revision}"
    assert all(math.isfinite(value) for _, value in spec.metrics), f"{spec.ref}: metrics are finite numbers"
    if spec.preprocess and spec.preprocess.datamodule:
        import_class(spec.preprocess.datamodule)  # the data view it names exists in this version
    for role, ref in spec.parts:
        assert role in FAMILIES[:3] and "@v" in ref, f"{spec.ref}: detector parts are pinned zoo refs, got {role}={ref}"
        if catalog is not None:
            part = catalog.resolve(ref).spec
            assert part.family == role and part.ref == ref, f"{spec.ref}: part {ref} is the exact published {role}"
    namespace = {name: getattr(specs_module, name) for name in dir(specs_module) if not name.startswith("_")}
    assert eval(spec.to_python().rstrip(","), namespace) == spec, f"{spec.ref}: printed entry round-trips"
