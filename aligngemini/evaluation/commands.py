"""``aligngemini evaluate``: the paper's protocol and the usual detection metrics, per benchmark.

Two inputs:

- a predictions file (``aligngemini predict --out`` / ``detect --out`` rows):
  ``aligngemini evaluate --predictions chameleon=preds.jsonl --out report/``
- a model and benchmark folders or manifests, scored through the model's own view:
  ``aligngemini evaluate --ckpt best.ckpt --benchmark chameleon=/data/Chameleon
  --benchmark wildrf=/data/WildRF --protocol jpeg-aligned --sweep jpeg=90,70,50 --out report/``

Writes ``metrics.json`` (schema in :mod:`aligngemini.evaluation.report`), ``report.md``
and ``plots/*.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from aligngemini.evaluation.layouts import LAYOUTS, layouts_help
from aligngemini.evaluation.protocol import DEFAULT_ALIGN_QUALITY, PROTOCOLS, Protocol


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aligngemini evaluate",
        description="Per-subset real/fake accuracy and their mean at 0.5 (the paper's protocol), AP, AUROC, EER, "
        "TPR at 1%/5% FPR and ECE; averages per benchmark; robustness sweeps; metrics.json + report.md + plots.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmark layouts:\n" + layouts_help(),
    )
    source = p.add_argument_group("what to evaluate (one of)")
    source.add_argument("--predictions", action="append", default=[], metavar="[NAME=]FILE",
                        help="a CSV/JSONL of prediction rows (path, subset, label, logit, probability); repeatable")
    source.add_argument("--ckpt", help="a Lightning checkpoint of a branch (a fusion head or the full detector: "
                        "evaluate their predict/detect rows with --predictions)")
    source.add_argument("--model", help="a zoo name (name@v1, hf-hub:org/repo@rev, local-dir:/path)")
    p.add_argument("--benchmark", action="append", default=[], metavar="[NAME=]PATH",
                   help=f"a benchmark folder or manifest; NAME picks its layout when it is one of {', '.join(LAYOUTS)}; "
                   "with --predictions, gives labels and subsets by path to the predictions of the same NAME "
                   "(or to all of them when only one benchmark is given); repeatable")
    p.add_argument("--out", help="output folder for metrics.json, report.md and plots/")
    p.add_argument("--protocol", choices=PROTOCOLS, default="native")
    p.add_argument("--jpeg-quality", type=int, default=DEFAULT_ALIGN_QUALITY, help="quality of the jpeg-aligned protocol")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--ece-bins", type=int, default=15)
    p.add_argument("--sweep", action="append", default=[], metavar="KIND[=S1,S2,...]|paper",
                   help="robustness sweep: jpeg, double_jpeg, blur, resize, double_resize (paper strengths "
                   "without values); 'paper' runs them all; repeatable")
    p.add_argument("--subsets", nargs="+", help="keep only these subsets")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="inspect every file first: unreadable files, format/size mix per class (default: on)")
    p.add_argument("--check-only", action="store_true", help="run the check and stop")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--list-layouts", action="store_true", help="print the benchmark trees each layout expects")
    model = p.add_argument_group("scoring a model")
    model.add_argument("--model-class", help="the checkpoint's LightningModule class, if it does not name one")
    model.add_argument("--data-class", help="the datamodule view to read images with (default: the model's own)")
    model.add_argument("--trust-checkpoint", action="store_true", help="allow pickled objects in the checkpoint")
    model.add_argument("--batch-size", type=int, default=32)
    model.add_argument("--num-workers", type=int, default=0)
    model.add_argument("--accelerator", default="auto")
    model.add_argument("--precision", default=None)
    model.add_argument("--chunk-size", type=int, default=1024, help="images perturbed and scored at a time")
    model.add_argument("--progress", action="store_true")
    rows = p.add_argument_group("reading predictions")
    rows.add_argument("--probability-column", default="probability",
                      help="e.g. pixel_probability to evaluate one branch of `aligngemini detect` rows")
    rows.add_argument("--logit-column", default=None,
                      help="default: 'logit' with the default probability column, none otherwise")
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_layouts:
        print(layouts_help())
        return 0
    from aligngemini.evaluation.runner import run

    if args.check_only:
        if not args.benchmark:
            parser.error("--check-only needs --benchmark")
    elif sum(map(bool, (args.predictions, args.ckpt, args.model))) != 1:
        parser.error("give exactly one of --predictions, --ckpt or --model")
    elif not args.out:
        parser.error("--out is required")
    elif not args.predictions and not args.benchmark:
        parser.error("--ckpt/--model need at least one --benchmark")
    try:
        protocol = Protocol(args.protocol, args.jpeg_quality, args.threshold, args.ece_bins)
    except ValueError as err:
        parser.error(str(err))
    return run(args, protocol)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
