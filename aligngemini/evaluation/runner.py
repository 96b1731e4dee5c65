"""What ``aligngemini evaluate`` does once its options are parsed: load the benchmarks, check
them, score them (or read scored rows), run the sweeps and write the report."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

from aligngemini.evaluation.check import check_records, format_check
from aligngemini.evaluation.inputs import EvaluateError, filter_subsets, label_rows, read_prediction_rows, split_spec
from aligngemini.evaluation.layouts import LAYOUTS, load_benchmark
from aligngemini.evaluation.protocol import Protocol
from aligngemini.evaluation.report import BenchmarkResult, write_report
from aligngemini.evaluation.sweeps import parse_sweeps, run_sweeps


def _load_model(args: Namespace):
    """(module, datamodule factory, model description) from --ckpt or --model."""
    from aligngemini.evaluation.loading import datamodule_factory_for, load_checkpoint_module

    view = {"batch_size": args.batch_size, "num_workers": args.num_workers, "bad_input": "skip"}
    if args.ckpt:
        module, checkpoint = load_checkpoint_module(args.ckpt, args.model_class, args.trust_checkpoint)
        source = f"ckpt:{args.ckpt}"
    else:
        from aligngemini.zoo.hub import pull
        from aligngemini.zoo.rebuild import build_from_folder

        folder = pull(args.model).folder
        module = build_from_folder(folder)
        preprocess = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("preprocess") or {}
        saved = dict(preprocess.get("settings") or {})
        if preprocess.get("datamodule"):
            saved["_class_path"] = preprocess["datamodule"]
        checkpoint = {"datamodule_hyper_parameters": saved}
        source = f"zoo:{args.model}"
    factory = datamodule_factory_for(module, checkpoint, args.data_class, **view)
    klass = type(module)
    return module, factory, {"source": source, "class": f"{klass.__module__}.{klass.__qualname__}"}


def _print_summary(metrics: dict, out: Path) -> None:
    for name, bench in metrics["benchmarks"].items():
        a = bench["average"]
        fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        print(f"{name}: acc {fmt(a['acc'])} (real {fmt(a['real_acc'])}, fake {fmt(a['fake_acc'])}), "
              f"AP {fmt(a['ap'])}, AUROC {fmt(a['auroc'])}, EER {fmt(a['eer'])} over {a['n_subsets']} subset(s)"
              + (f"; {bench['n_failed']} unreadable" if bench["n_failed"] else ""))
    print(f"wrote {out / 'metrics.json'} and {out / 'report.md'}")


def run(args: Namespace, protocol: Protocol) -> int:
    try:
        sweeps = parse_sweeps(args.sweep)
    except ValueError as err:
        raise EvaluateError(str(err)) from None
    benchmarks = {}
    for spec in args.benchmark:
        name, path = split_spec(spec)
        records, layout = load_benchmark(path, name if name.lower() in LAYOUTS else "auto")
        benchmarks[name] = (filter_subsets(records, args.subsets), layout, path)

    if args.check_only:
        reports = {}
        for name, (records, _, _) in benchmarks.items():
            reports[name] = check_records(records)
            print(format_check(reports[name], name))
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "check.json").write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
        return 0

    results = []
    if args.predictions:
        if sweeps or protocol.name != "native":
            raise EvaluateError("sweeps and the jpeg-aligned protocol re-score images: give --ckpt or --model, "
                                "not --predictions")
        for spec in args.predictions:
            name, path = split_spec(spec)
            rows = read_prediction_rows(path, args.probability_column, args.logit_column)
            layout, labelled_by = "predictions", None
            # Labels and subsets come from the benchmark of the same name, or from the only one given.
            labels_from = benchmarks.get(name) or (next(iter(benchmarks.values())) if len(benchmarks) == 1 else None)
            if labels_from is not None:
                records, layout, labelled_by = labels_from
                rows = label_rows(rows, records)
            results.append(BenchmarkResult(name, layout, path, filter_subsets(rows, args.subsets),
                                           labels_from=labelled_by))
        model = {"source": "predictions:" + ",".join(split_spec(s)[1] for s in args.predictions), "class": None}
    else:
        from aligngemini.evaluation.scoring import Scorer

        module, factory, model = _load_model(args)
        scorer = Scorer(module, factory, accelerator=args.accelerator, precision=args.precision,
                        chunk_size=args.chunk_size, root_dir=args.out, progress=args.progress)
        for name, (records, layout, path) in benchmarks.items():
            check = None
            if args.check:
                check = check_records(records)
                print(format_check(check, name))
            print(f"{name}: scoring {len({r.path for r in records})} images ({protocol.name})", flush=True)
            rows = scorer.score(records, protocol.chain)
            swept = run_sweeps(scorer, records, sweeps, protocol.chain,
                               on_point=lambda p, name=name: print(f"{name}: sweep {p.name}", flush=True))
            results.append(BenchmarkResult(name, layout, path, rows, swept, check))
    out = Path(args.out)
    metrics = write_report(results, protocol, model, out, with_plots=args.plots)
    _print_summary(metrics, out)
    return 0
