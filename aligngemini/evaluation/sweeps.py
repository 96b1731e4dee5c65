"""Robustness sweeps: score a benchmark again under each strength of a post-processing.

Kinds are those of :class:`~aligngemini.datamodules.transforms.Perturbation`:
``jpeg`` (quality), ``double_jpeg`` (first quality, then 95), ``blur`` (Gaussian sigma),
``resize`` (scale factor) and ``double_resize`` (scale by a factor and back). The
defaults follow the authors' sweeps: JPEG q10-100, double JPEG, blur sigma 0-4, resize
x0.25-4, double resize. A sweep runs after the protocol's own alignment (if any).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aligngemini.datamodules.records import ImageRecord
from aligngemini.datamodules.transforms import Perturbation

PAPER_STRENGTHS: dict[str, tuple[float, ...]] = {
    "jpeg": (100, 90, 80, 70, 60, 50, 40, 30, 20, 10),
    "double_jpeg": (90, 80, 70, 60, 50),
    "blur": (0.5, 1.0, 2.0, 3.0, 4.0),
    "resize": (0.25, 0.5, 0.75, 1.5, 2.0, 4.0),
    "double_resize": (0.25, 0.5, 0.75),
}
STRENGTH_LABELS = {"jpeg": "JPEG quality", "double_jpeg": "first JPEG quality (then 95)", "blur": "Gaussian sigma",
                   "resize": "scale factor", "double_resize": "down-scale factor (then back)"}


@dataclass(frozen=True)
class Sweep:
    kind: str
    strengths: tuple[float, ...]

    def __post_init__(self):
        if self.kind not in PAPER_STRENGTHS:
            raise ValueError(f"unknown sweep {self.kind!r}; choose from {sorted(PAPER_STRENGTHS)}")
        for s in self.strengths:
            _check_strength(self.kind, s)

    def perturbations(self) -> list[Perturbation]:
        return [Perturbation(self.kind, s) for s in self.strengths]


def _check_strength(kind: str, strength: float) -> None:
    if kind in ("jpeg", "double_jpeg") and not (1 <= strength <= 100 and float(strength).is_integer()):
        raise ValueError(f"{kind} sweep: quality must be an integer in 1..100, got {strength:g}")
    if kind == "blur" and strength < 0:
        raise ValueError(f"blur sweep: sigma must be >= 0, got {strength:g}")
    if kind in ("resize", "double_resize") and strength <= 0:
        raise ValueError(f"{kind} sweep: factor must be > 0, got {strength:g}")


def parse_sweeps(specs: Iterable[str]) -> list[Sweep]:
    """``paper`` (every default sweep), ``KIND`` (its default strengths) or ``KIND=S1,S2,...``."""
    sweeps: dict[str, Sweep] = {}
    for spec in specs:
        spec = spec.strip()
        if spec == "paper":
            sweeps.update({k: Sweep(k, v) for k, v in PAPER_STRENGTHS.items()})
            continue
        kind, _, values = spec.partition("=")
        kind = kind.strip().replace("-", "_")
        if kind not in PAPER_STRENGTHS:
            raise ValueError(f"--sweep {spec!r}: unknown kind {kind!r}; choose from paper, {', '.join(PAPER_STRENGTHS)}")
        if not values:
            sweeps[kind] = Sweep(kind, PAPER_STRENGTHS[kind])
            continue
        try:
            strengths = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--sweep {spec!r}: strengths must be numbers separated by commas") from None
        sweeps[kind] = Sweep(kind, strengths)
    return list(sweeps.values())


def run_sweeps(scorer, records: Sequence[ImageRecord], sweeps: Sequence[Sweep], base_chain=(),
               on_point: Callable[[Perturbation], None] | None = None) -> dict:
    """``{kind: [(strength, rows), ...]}``: every strength of every sweep, scored by ``scorer``
    (a :class:`~aligngemini.evaluation.scoring.Scorer`) after ``base_chain``; ``on_point``
    hears of each point before it is scored."""
    results: dict[str, list[tuple[float, list[dict]]]] = {}
    for sweep in sweeps:
        results[sweep.kind] = []
        for perturbation in sweep.perturbations():
            if on_point is not None:
                on_point(perturbation)
            results[sweep.kind].append((perturbation.strength, scorer.score(records, (*base_chain, perturbation))))
    return results
