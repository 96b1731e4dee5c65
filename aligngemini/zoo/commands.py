"""``aligngemini zoo list|info|card|export|push|pull``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from aligngemini.zoo.catalog import CATALOG, Catalog, CatalogSource

# Tests swap in their own catalog; the CLI browses the published one.
catalog: Catalog = CATALOG


def _cmd_list(args) -> int:
    specs = list(catalog)
    if args.json:
        print(json.dumps([asdict(s) for s in specs], indent=2))
        return 0
    if not specs:
        print("No published models yet. Publish one with `aligngemini zoo export` and `aligngemini zoo push`; "
              "load any export with local-dir:/path or hf-hub:org/repo@rev.")
        return 0
    print(f"{'name':<28} {'version':<9} {'family':<9} {'repo':<36} commit")
    for spec in specs:
        print(f"{spec.name:<28} {spec.version:<9} {spec.family:<9} {spec.repo_id:<36} {spec.commit[:12]}")
    return 0


def _cmd_info(args) -> int:
    source = catalog.resolve(args.name)
    if isinstance(source, CatalogSource):
        spec = source.spec
        print(json.dumps(asdict(spec), indent=2) if args.json else spec.to_python().rstrip(","))
        return 0
    from aligngemini.zoo.hub import pull

    folder = pull(args.name, catalog=catalog, cache_dir=args.cache_dir).folder
    print((folder / "config.json").read_text(encoding="utf-8"))
    return 0


def _cmd_card(args) -> int:
    from aligngemini.zoo.cards import render_card

    path = Path(args.name)
    if path.is_dir():
        text = str(render_card(path))
    else:
        from aligngemini.zoo.hub import pull

        text = (pull(args.name, catalog=catalog, cache_dir=args.cache_dir).folder / "README.md").read_text("utf-8")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(args.out)
    else:
        print(text)
    return 0


def _cmd_export(args) -> int:
    from aligngemini.zoo.cards import load_metrics
    from aligngemini.zoo.export import export_checkpoint

    card = {key: getattr(args, key) for key in ("training_data", "intended_use", "limitations", "description",
                                                "eval_dataset") if getattr(args, key)}
    if args.metrics:
        card["metrics"] = load_metrics(args.metrics)
    if args.part:
        from aligngemini.zoo.export import export_detector

        parts = dict(part.split("=", 1) for part in args.part)
        out = export_detector(parts, args.out, card=card, name=args.name, overwrite=args.overwrite, catalog=catalog)
    elif args.checkpoint is None:
        raise SystemExit("aligngemini zoo export: give a checkpoint, or --part ROLE=NAME@VERSION for a detector")
    else:
            out = export_checkpoint(args.checkpoint, args.out, class_path=args.class_path,
                                training_config=args.training_config, card=card, family=args.family,
                                name=args.name, overwrite=args.overwrite, trust_checkpoint=args.trust_checkpoint)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(path)
    return 0


def _cmd_push(args) -> int:
    from aligngemini.zoo.hub import push

    spec = push(args.folder, args.repo_id, args.version, name=args.name, endpoint=args.endpoint,
                private=args.private, catalog=catalog)
    print(f"# pushed {args.repo_id} tag {spec.tag} at commit {spec.commit}")
    print("# add this entry to ENTRIES in aligngemini/zoo/catalog.py:")
    print(spec.to_python())
    return 0


def _cmd_pull(args) -> int:
    from aligngemini.zoo.hub import pull

    pulled = pull(args.name, catalog=catalog, cache_dir=args.cache_dir, endpoint=args.endpoint,
                  allow_pickle=args.allow_pickle, force_download=args.force_download)
    print(pulled.folder)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aligngemini zoo", description="Versioned, verified model checkpoints.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("list", help="published models and versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_list)

    for verb, helptext, run in (("info", "a version's catalog entry (or an export's config.json)", _cmd_info),
                                ("card", "a model card (README.md); an export folder's is re-rendered", _cmd_card)):
        p = verbs.add_parser(verb, help=helptext)
        p.add_argument("name", help="name[@vX[.Y[.Z]]], hf-hub:org/repo@rev, local-dir:/path (card: or a folder)")
        p.add_argument("--cache-dir", default=None)
        if verb == "info":
            p.add_argument("--json", action="store_true")
        else:
            p.add_argument("--out", default=None, help="write the card here instead of printing it")
        p.set_defaults(run=run)

    p = verbs.add_parser("export", help="checkpoint -> model.safetensors + config.json + README.md card")
    p.add_argument("checkpoint", nargs="?", help="a .ckpt written by `aligngemini fit`")
    p.add_argument("--part", action="append", metavar="ROLE=NAME@VERSION",
                   help="instead of a checkpoint: a detector made of published parts (pixel, semantic, fusion)")
    p.add_argument("--out", required=True, help="empty folder to write")
    p.add_argument("--metrics", help="metrics.json from `aligngemini evaluate` (goes into the card's model-index)")
    p.add_argument("--training-config", help="the run's config.yaml (found next to the checkpoint if not given)")
    p.add_argument("--class-path", help="model class, for checkpoints not written by the aligngemini CLI")
    p.add_argument("--family", choices=("pixel", "semantic", "fusion", "detector"))
    p.add_argument("--name", help="model name on the card (default: the folder name)")
    p.add_argument("--training-data", help="card: what the model was trained on")
    p.add_argument("--intended-use", help="card: replaces the default intended-use section")
    p.add_argument("--limitations", help="card: replaces the default limitations section")
    p.add_argument("--description", help="card: a paragraph under the title")
    p.add_argument("--eval-dataset", help="card: dataset name for metrics given without one")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle a checkpoint that holds non-aligngemini classes (only your own files)")
    p.set_defaults(run=_cmd_export)

    p = verbs.add_parser("push", help="upload an export folder in one commit and tag it v{version}")
    p.add_argument("folder")
    p.add_argument("--repo-id", required=True, help="org/name on the Hub")
    p.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH; an existing version is refused")
    p.add_argument("--name", help="catalog name (default: the repo's name)")
    p.add_argument("--private", action="store_true", default=None)
    p.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    p.set_defaults(run=_cmd_push)

    p = verbs.add_parser("pull", help="download a version at its pinned commit and verify every file")
    p.add_argument("name", help="name[@vX[.Y[.Z]]], hf-hub:org/repo@rev or local-dir:/path")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--endpoint", default=None)
    p.add_argument("--allow-pickle", action="store_true", help="accept pickle weights (they can run code)")
    p.add_argument("--force-download", action="store_true", help="ignore the cache (e.g. after a failed check)")
    p.set_defaults(run=_cmd_pull)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)
