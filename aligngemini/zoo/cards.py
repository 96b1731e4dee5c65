"""Model cards: ``model_cards/*.md.jinja`` rendered with huggingface_hub's ``ModelCard``.

Everything on a card comes from the export folder's ``config.json``: the YAML metadata
(licence, base models, ``model-index`` results from the evaluation JSON), the exact
training configuration, preprocessing, and the card inputs given at export time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from aligngemini.zoo.rebuild import read_config

TEMPLATES = Path(__file__).resolve().parent.parent / "model_cards"
TASK = "image-classification"
DEFAULT_DATASET = "evaluation"
CITATION = """@article{chen2025aligngemini,
  title   = {AlignGemini: Generalizable AI-Generated Image Detection Through Task-Model Alignment},
  author  = {Chen and others},
  journal = {arXiv preprint arXiv:2512.06746},
  year    = {2025}
}"""


def load_metrics(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: evaluation metrics must be JSON ({err})") from err


def eval_rows(metrics: Any, dataset: str = DEFAULT_DATASET) -> list[dict[str, Any]]:
    """Flatten an evaluation JSON into ``{"dataset", "metric", "value"}`` rows.

    Reads ``aligngemini evaluate``'s ``metrics.json`` (schema ``aligngemini.evaluation/1``:
    each benchmark's average over its subsets) and simpler shapes: ``{"auroc": 0.9}``,
    ``{"subset": {"auroc": 0.9}}``, a ``{"metrics": ...}`` wrapper, or a list of rows with
    ``dataset``/``subset`` and metric columns. Counts (``n_*``) and nulls are left out.
    """
    if isinstance(metrics, dict) and str(metrics.get("schema", "")).startswith("aligngemini.evaluation/"):
        names = metrics.get("metric_names") or []
        return [{"dataset": bench, "metric": name, "value": float(entry["average"][name])}
                for bench, entry in metrics.get("benchmarks", {}).items()
                for name in names if entry.get("average", {}).get(name) is not None]
    if isinstance(metrics, dict) and set(metrics) & {"metrics", "results"} and len(metrics) <= 3:
        dataset = str(metrics.get("dataset", dataset))
        metrics = metrics.get("metrics", metrics.get("results"))
    rows: list[dict[str, Any]] = []
    if isinstance(metrics, list):
        for item in metrics:
            if {"metric", "value"} <= set(item):
                rows.append({"dataset": str(item.get("dataset", item.get("subset", dataset))),
                             "metric": str(item["metric"]), "value": float(item["value"])})
            else:
                name = str(item.get("dataset", item.get("subset", dataset)))
                rows += eval_rows({k: v for k, v in item.items() if k not in ("dataset", "subset")}, name)
        return rows
    for key, value in (metrics or {}).items():
        if isinstance(value, bool) or value is None or str(key).startswith("n_"):
            continue
        if isinstance(value, (int, float)):
            rows.append({"dataset": dataset, "metric": str(key), "value": float(value)})
        elif isinstance(value, dict):
            nested = eval_rows(value, str(key) if dataset == DEFAULT_DATASET else f"{dataset}/{key}")
            rows += nested
    return rows


def _base_models(config: dict[str, Any]) -> list[str]:
    from aligngemini.zoo.settings import base_models_of

    return [ref.repo_id for ref in base_models_of(config)]


def render_card(folder: str | Path, version: str | None = None, repo_id: str | None = None):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from aligngemini.zoo.settings import lora_of, quant_of

    config = read_config(Path(folder))
    card = config.get("card", {})
    name = config.get("name", "model")
    rows = eval_rows(card.get("metrics") or {}, card.get("eval_dataset", DEFAULT_DATASET))
    results = [EvalResult(task_type=TASK, dataset_type=row["dataset"], dataset_name=row["dataset"],
                          metric_type=row["metric"], metric_name=row["metric"], metric_value=row["value"])
               for row in rows]
    data = ModelCardData(
        license=config.get("license", "apache-2.0"),
        library_name="aligngemini",
        pipeline_tag=TASK,
        tags=["aligngemini", "ai-generated-image-detection", config["family"]],
        base_model=_base_models(config) or None,
        model_name=name,
        eval_results=results or None,
    )
    training_config = card.get("training_config")
    if isinstance(training_config, dict):
        training_config = yaml.safe_dump(training_config, sort_keys=False)
    ref = f"{name}@v{version}" if version else f"local-dir:{Path(folder).resolve()}"
    template = TEMPLATES / f"{config['family']}.md.jinja"
    return ModelCard.from_template(
        data,
        template_path=str(template if template.is_file() else TEMPLATES / "model.md.jinja"),
        name=name,
        family=config["family"],
        version=version,
        repo_id=repo_id,
        load_ref=ref,
        description=card.get("description", ""),
        metric_rows=rows,
        intended_use=card.get("intended_use"),
        training_data=card.get("training_data"),
        limitations=card.get("limitations"),
        training_config=(training_config or "").strip() or None,
        init_args=json.dumps(config.get("init_args", {}), indent=2),
        preprocess=json.dumps(config.get("preprocess", {}), indent=2),
        lora=lora_of(config),
        quant=quant_of(config),
        weights=config.get("weights"),
        parts=config.get("parts") or {},
        threshold=config.get("threshold", 0.5),
        aligngemini_version=config.get("aligngemini_version"),
        citation=card.get("citation") or CITATION,
    )


def write_card(folder: str | Path, version: str | None = None, repo_id: str | None = None) -> Path:
    path = Path(folder) / "README.md"
    render_card(folder, version, repo_id).save(path)
    return path
