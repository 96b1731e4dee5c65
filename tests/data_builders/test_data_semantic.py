"""`data semantic`: labelled records + rationales -> the semantic view's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aligngemini.cli import main
from aligngemini.data_builders.semantic import RationaleFileError, build_semantic_manifest, read_rationales
from aligngemini.datamodules.records import ImageRecord, load_records, write_manifest


@pytest.fixture()
def labelled(tmp_path) -> Path:
    """real/ + fake/ folder of four tiny files (the builder never decodes images)."""
    for rel in ("real/a.png", "real/b.png", "fake/c.png", "fake/d.png"):
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / rel).write_bytes(b"png")
    return tmp_path / "data"


def test_cli_joins_rationales_by_relative_path_bare_name_or_absolute_path_and_reports_missing(
        labelled, tmp_path, capsys):
    rationales = tmp_path / "notes" / "rationales.csv"
    rationales.parent.mkdir()
    rationales.write_text(
        "path,rationale\n"
        '../data/fake/c.png,"The hand has six fingers, and the text is garbled."\n'
        f"{labelled / 'real' / 'a.png'},Consistent shadows and reflections.\n"
        "d.png,The clock face has no numbers.\n"
        "fake/zz.png,names no record\n",
        encoding="utf-8",
    )
    out = tmp_path / "semantic.jsonl"
    assert main(["data", "semantic", str(labelled), "--out", str(out), "--rationales", str(rationales)]) == 0
    by_name = {Path(r.path).name: r for r in load_records(out)}
    assert by_name["c.png"].rationale == "The hand has six fingers, and the text is garbled."
    assert (by_name["a.png"].label, by_name["a.png"].rationale) == (0, "Consistent shadows and reflections.")
    assert by_name["d.png"].rationale == "The clock face has no numbers."
    assert by_name["b.png"].rationale is None
    printed = capsys.readouterr().out
    assert "1 records lack a rationale (1 real)" in printed and "b.png" in printed
    assert "1 rationale entries match no record" in printed and "fake/zz.png" in printed


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_mapping_and_jsonl_rationales(labelled, tmp_path, suffix):
    table = {"fake/c.png": "Melted fingers.", "fake/d.png": "Impossible staircase."}
    path = tmp_path / f"r{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(table), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps({"path": k, "rationale": v}) + "\n" for k, v in table.items()))
    report = build_semantic_manifest(labelled, tmp_path / "out.jsonl", path)
    assert report.with_rationale == 2 and report.missing_by_label == {"real": 2}
    assert sorted(Path(p).name for p in report.missing) == ["a.png", "b.png"]


def test_manifest_rationales_are_kept_subsets_preserved_and_file_wins(labelled, tmp_path):
    source = write_manifest([
        ImageRecord(str(labelled / "real/a.png"), 0, "coco", rationale="Plausible scene."),
        ImageRecord(str(labelled / "fake/c.png"), 1, "flux", rationale="old text"),
    ], tmp_path / "records.csv")
    (tmp_path / "r.json").write_text(json.dumps({"fake/c.png": "new text", "real/a.png": ""}))
    build_semantic_manifest(source, tmp_path / "out.jsonl", tmp_path / "r.json")
    records = {Path(r.path).name: r for r in load_records(tmp_path / "out.jsonl")}
    assert (records["c.png"].subset, records["c.png"].rationale) == ("flux", "new text")
    assert records["a.png"].rationale == "Plausible scene."  # an empty entry erases nothing


@pytest.mark.parametrize("name, content, message", [
    ("r.csv", "file,why\nx.png,y\n", r"r\.csv: CSV header must name 'path' and 'rationale'"),
    ("r.jsonl", '{"path": "x.png", "rationale": "y"}\n{oops\n', r"r\.jsonl:2: not valid JSON"),
    ("r.jsonl", '{"path": "x.png"}\n', r"r\.jsonl:1: expected an object with 'path' and 'rationale'"),
    ("r.json", '["x.png"]', r"r\.json: item 0: expected an object"),
    ("r.json", '{"x.png": 3}', r"r\.json: key 'x.png': rationale must be a string"),
    ("r.csv", "path,rationale\nx.png,one\nx.png,two\n", r"r\.csv:3: 'x.png' already has a different rationale at .*r\.csv:2"),
    ("r.txt", "x.png one", r"r\.txt: rationale file must end in .csv, .jsonl or .json"),
])
def test_malformed_rationale_files_name_the_file_and_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RationaleFileError, match=message):
        read_rationales(path)


def test_cli_reports_a_malformed_rationale_file_as_one_line(labelled, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["data", "semantic", str(labelled), "--out", str(tmp_path / "o.jsonl"),
                 "--rationales", str(bad)]) == 2
    assert f"{bad}:1: not valid JSON" in capsys.readouterr().err


def test_an_ambiguous_bare_name_matches_nothing(tmp_path):
    for rel in ("real/x.png", "fake/x.png"):
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / rel).write_bytes(b"png")
    (tmp_path / "r.json").write_text(json.dumps({"x.png": "which one?", "fake/x.png": "this one"}))
    report = build_semantic_manifest(tmp_path / "data", tmp_path / "out.jsonl", tmp_path / "r.json")
    assert report.unmatched == ["x.png"] and report.with_rationale == 1
    assert [Path(p).parent.name for p in report.missing] == ["real"]
