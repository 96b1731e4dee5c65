"""The hostile corpus through every entry point: a result or a named error per file, no run dies."""

import json
from pathlib import Path

import pytest

from aligngemini.cli import main
from aligngemini.datamodules.images import BadImageError, decode_image
from aligngemini.testing.hostile import make_hostile_corpus
from tests.reliability.runs import PRESET


def _reason(path: Path) -> str | None:
    try:
        decode_image(path)
    except BadImageError as err:
        return err.reason
    return None


@pytest.fixture(scope="module")
def hostile(paired_dataset, tmp_path_factory):
    """The corpus, a training manifest that mixes it into good pairs, and a run fitted on it."""
    root = tmp_path_factory.mktemp("hostile_runs")
    cases = make_hostile_corpus(root / "corpus")
    good = [json.dumps({"path": str(paired_dataset.parent / line.split(",")[0]), "label": line.split(",")[1],
                        "pair_id": line.split(",")[3], "subset": "demo"})
            for line in paired_dataset.read_text().splitlines()[1:]]
    hostile_rows = [json.dumps({"path": str(c.path), "label": 1, "subset": "hostile", "split": "train"})
                    for c in cases]
    manifest = root / "mixed.jsonl"
    manifest.write_text("\n".join(good + hostile_rows) + "\n")
    unlabelled = root / "corpus.jsonl"
    unlabelled.write_text("".join(json.dumps({"path": str(c.path)}) + "\n" for c in cases))
    run = root / "run"
    code = main(["fit", "-c", str(PRESET), "--data.root", str(manifest), "--trainer.max_epochs", "1",
                 "--trainer.default_root_dir", str(run), "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false"])
    return {"cases": cases, "root": root, "run": run, "fit_code": code, "unlabelled": unlabelled,
            "manifest": manifest}


def test_fit_survives_and_reports_every_bad_file_by_name(hostile):
    assert hostile["fit_code"] == 0
    reported = {row["path"]: row["reason"] for row in
                map(json.loads, (hostile["run"] / "checkpoints" / "bad_files.jsonl").read_text().splitlines())}
    for case in hostile["cases"]:
        if case.is_bad:
            assert reported.get(str(case.path)) == _reason(case.path), case.name
        else:
            assert str(case.path) not in reported, case.name


def test_predict_gives_each_file_a_score_or_its_error(hostile):
    out = hostile["root"] / "predictions.jsonl"
    code = main(["predict", "-c", str(PRESET), "--data.predict_root", str(hostile["unlabelled"]),
                 "--ckpt_path", str(hostile["run"] / "checkpoints" / "last.ckpt"), "--out", str(out),
                 "--trainer.default_root_dir", str(hostile["root"] / "predict"), "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false"])
    assert code == 0
    rows = {row["path"]: row for row in map(json.loads, out.read_text().splitlines())}
    for case in hostile["cases"]:
        row = rows[str(case.path)]
        if case.is_bad:
            assert row["probability"] is None and row["error"] == _reason(case.path), case.name
        else:
            assert 0.0 <= row["probability"] <= 1.0 and not row.get("error"), case.name


def test_detect_gives_each_file_a_verdict_or_its_error(hostile, capsys):
    out = hostile["root"] / "detect.jsonl"
    code = main(["detect", str(hostile["unlabelled"]), "--pixel", str(hostile["run"] / "checkpoints" / "last.ckpt"),
                 "--out", str(out), "--no-progress"])
    assert code == 0
    rows = {row["path"]: row for row in map(json.loads, out.read_text().splitlines())}
    for case in hostile["cases"]:
        row = rows[str(case.path)]
        assert bool(row.get("error")) == case.is_bad, (case.name, row)
        if case.is_bad:
            assert case.reason in row["error"], case.name


def test_evaluate_runs_over_a_benchmark_with_hostile_files(hostile):
    out = hostile["root"] / "evaluation"
    code = main(["evaluate", "--ckpt", str(hostile["run"] / "checkpoints" / "last.ckpt"),
                 "--benchmark", str(hostile["manifest"]), "--out", str(out), "--no-plots", "--no-check"])
    assert code == 0
    assert (out / "metrics.json").is_file()


@pytest.mark.slow  # imports diffusers
def test_reconstruct_builder_gives_each_photo_a_pair_or_a_reason(hostile, tmp_path):
    from aligngemini.data_builders.tiny_vae import TinyVAEConfig, build_tiny_vae

    vae = tmp_path / "vae"
    build_tiny_vae(TinyVAEConfig(block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4),
                   seed=0).save_pretrained(vae, safe_serialization=True)
    out = tmp_path / "pairs"
    code = main(["data", "reconstruct", str(hostile["unlabelled"]), str(out), "--vae", str(vae),
                 "--device", "cpu", "--progress=false"])
    assert code == 0
    paired = {json.loads(line)["path"] for line in (out / "pairs.jsonl").read_text().splitlines()}
    skipped = {json.loads(line)["path"]: json.loads(line)["reason"]
               for line in (out / "skipped.jsonl").read_text().splitlines()}
    for case in hostile["cases"]:
        assert (str(case.path) in paired) != (str(case.path) in skipped), case.name
        if case.is_bad:
            assert case.reason in skipped[str(case.path)], case.name
