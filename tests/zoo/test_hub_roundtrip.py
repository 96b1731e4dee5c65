"""export -> push -> tag -> pull -> load against a loopback Hub, with the real huggingface_hub client."""

import json

import pytest
import torch
from huggingface_hub import HfApi

from aligngemini.zoo.api import load
from aligngemini.zoo.catalog import Catalog
from aligngemini.zoo.export import export_module
from aligngemini.zoo.hub import OfflineError, VersionExistsError, pull, push
from aligngemini.zoo.rebuild import ExportFormatError, IntegrityError

from .conftest import pixel_scores, tiny_pixel
from .contract import check_entry

_repos = iter(range(10_000))


def publish(tmp_path, family="pixel", version="1.0.0", repo_id=None, build=tiny_pixel):
    """Export a tiny model of ``family`` and push it; returns (spec, module, repo_id)."""
    module = build()
    repo_id = repo_id or f"aligngemini-test/{family}-{next(_repos)}"
    folder = export_module(module, tmp_path / f"export-{family}-{version}", overwrite=True,
                           card={"metrics": {"auroc": 0.875, "acc": 0.75}})
    return push(folder, repo_id, version), module, repo_id


def test_pushed_version_loads_with_identical_scores(hub, tmp_path, family_case):
    family, build, scores = family_case
    spec, module, repo_id = publish(tmp_path, family, build=build)
    expected = scores(module)

    tags = {ref.name: ref.target_commit for ref in HfApi(endpoint=hub.url).list_repo_refs(repo_id).tags}
    assert tags == {"v1.0.0": spec.commit}, "one tag, on the commit the entry pins"
    check_entry(spec)
    assert spec.family == family and dict(spec.metrics) == {"auroc": 0.875, "acc": 0.75}
    if family == "semantic":  # QLoRA settings travel as data; only the adapter is published
        assert (spec.quant.bits, spec.quant.quant_type, spec.lora.rank, spec.lora.alpha) == (4, "nf4", 4, 8.0)
        assert spec.file("model.safetensors").size < 100_000 and spec.file("adapter/adapter_config.json")

    catalog = Catalog([spec])
    loaded = load(f"{spec.name}@v1", catalog=catalog)
    assert not loaded.training
    assert torch.equal(scores(loaded), expected)
    # the same weights by Hub tag, without a catalog entry
    assert torch.equal(scores(load(f"hf-hub:{repo_id}@v1.0.0", catalog=catalog)), expected)


def test_second_push_of_a_version_is_refused(hub, tmp_path):
    spec, _, repo_id = publish(tmp_path)
    with pytest.raises(VersionExistsError, match=f"{repo_id} already has tag v1.0.0 .commit {spec.commit}"):
        publish(tmp_path, repo_id=repo_id)
    newer, _, _ = publish(tmp_path, version="1.1.0", repo_id=repo_id)
    catalog = Catalog([spec, newer])
    assert catalog.resolve(f"{spec.name}@v1").spec.commit == newer.commit
    with pytest.raises(VersionExistsError, match="already in the catalog"):
        push(tmp_path / "export-pixel-1.1.0", f"{repo_id}-copy", "1.0.0", name=spec.name, catalog=catalog)


def test_tampered_file_fails_the_hash_check(hub, tmp_path):
    spec, _, repo_id = publish(tmp_path)
    weights = bytearray(hub.state.repos[repo_id].commits[spec.commit]["model.safetensors"])
    weights[-1] ^= 0xFF  # one flipped byte in the last tensor
    hub.tamper(repo_id, spec.commit, "model.safetensors", bytes(weights))
    with pytest.raises(IntegrityError) as caught:
        load(spec.ref, catalog=Catalog([spec]))
    message = str(caught.value)
    assert "model.safetensors" in message and spec.file("model.safetensors").sha256 in message
    assert "tampered" in message


def test_offline_pull_reads_the_cache(hub, tmp_path, monkeypatch):
    spec, module, repo_id = publish(tmp_path)
    catalog = Catalog([spec])
    online_folder = pull(spec.ref, catalog=catalog).folder
    pull(f"hf-hub:{repo_id}@v1.0.0", catalog=catalog)
    served = len(hub.state.requests)
    assert pull(spec.ref, catalog=catalog).folder == online_folder
    assert len(hub.state.requests) == served, "a pinned version in the cache is read without asking the Hub"

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.tamper(repo_id, spec.commit, "config.json", b"the server is unreachable offline anyway")
    assert pull(spec.ref, catalog=catalog).folder == online_folder
    assert torch.equal(pixel_scores(load(spec.ref, catalog=catalog)), pixel_scores(module))
    assert torch.equal(pixel_scores(load(f"hf-hub:{repo_id}@v1.0.0", catalog=catalog)), pixel_scores(module))
    with pytest.raises(OfflineError, match="not in the cache and HF_HUB_OFFLINE=1"):
        load(f"hf-hub:{repo_id}@main", catalog=catalog)


def test_cli_push_prints_an_entry_that_pulls(hub, tmp_path, monkeypatch, capsys):
    from aligngemini.cli import main
    from aligngemini.zoo import commands, specs

    folder = export_module(tiny_pixel(), tmp_path / "export", card={"metrics": {"auroc": 0.5}})
    assert main(["zoo", "push", str(folder), "--repo-id", "aligngemini-test/cli-pixel", "--version", "0.1.0"]) == 0
    printed = capsys.readouterr().out
    source = "\n".join(line for line in printed.splitlines() if not line.startswith("#"))
    namespace = {name: getattr(specs, name) for name in dir(specs) if not name.startswith("_")}
    spec = eval(source.strip().rstrip(","), namespace)
    assert spec.name == "cli-pixel" and spec.commit in printed

    monkeypatch.setattr(commands, "catalog", Catalog([spec]))
    assert main(["zoo", "list"]) == 0
    assert "cli-pixel" in capsys.readouterr().out
    assert main(["zoo", "pull", "cli-pixel@v0"]) == 0
    folder_printed = capsys.readouterr().out.strip()
    assert json.loads(open(f"{folder_printed}/config.json").read())["family"] == "pixel"
    assert main(["zoo", "info", "cli-pixel"]) == 0
    assert f"commit='{spec.commit}'" in capsys.readouterr().out
    assert main(["zoo", "card", "cli-pixel@v0.1.0"]) == 0
    assert "# cli-pixel v0.1.0" in capsys.readouterr().out
    assert main(["zoo", "pull", "cli-pixel@v2"]) == 2
    assert "cli-pixel has no version matching 'v2'; published: 0.1.0" in capsys.readouterr().err
    assert main(["zoo", "push", str(folder), "--repo-id", "aligngemini-test/cli-pixel", "--version", "0.1.0"]) == 2
    assert "already" in capsys.readouterr().err


def test_push_needs_the_network(hub, tmp_path, offline):
    folder = export_module(tiny_pixel(), tmp_path / "export")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=0"):
        push(folder, "aligngemini-test/offline", "1.0.0")


def test_pickle_weights_are_refused_unless_opted_in(tmp_path):
    module = tiny_pixel()
    folder = export_module(module, tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "model.bin")
    from aligngemini.zoo.rebuild import sha256_of

    config["weights"].update(file="model.bin", sha256=sha256_of(folder / "model.bin"))
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(IntegrityError, match="are a pickle, which can run code"):
        load(f"local-dir:{folder}")
    assert torch.equal(pixel_scores(load(f"local-dir:{folder}", allow_pickle=True)), pixel_scores(module))


@pytest.mark.parametrize("change, message", [
    ({"class_path": "subprocess.Popen"}, "only classes under aligngemini"),
    ({"init_args": {"backbone_kwargs": {"trust_remote_code": True}}}, "trust_remote_code"),
    ({"init_args": {"backbone_kwargs": {"class_path": "os.system"}}}, "only aligngemini and torch.nn classes"),
    ({"format": "someone-else/1"}, "this aligngemini reads"),
])
def test_configs_cannot_import_or_run_foreign_code(tmp_path, change, message):
    folder = export_module(tiny_pixel(), tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportFormatError, match=message):
        load(f"local-dir:{folder}")


def test_detector_entry_pins_its_published_parts(hub, tmp_path, capsys):
    from aligngemini.cli import main
    from aligngemini.zoo import commands

    from .conftest import tiny_fusion

    pixel, _, _ = publish(tmp_path, "pixel", "1.2.0")
    fusion, _, _ = publish(tmp_path, "fusion", build=tiny_fusion)
    catalog = Catalog([pixel, fusion])
    commands.catalog, saved = catalog, commands.catalog
    try:
        out = tmp_path / "detector"
        assert main(["zoo", "export", "--part", f"pixel={pixel.name}@v1", "--part", f"fusion={fusion.name}",
                     "--out", str(out), "--name", "detector-tiny"]) == 0
        with pytest.raises(ExportFormatError, match="must be a published semantic"):
            from aligngemini.zoo.export import export_detector

            export_detector({"semantic": pixel.ref}, tmp_path / "bad", catalog=catalog)
    finally:
        commands.catalog = saved
    capsys.readouterr()
    spec = push(out, "aligngemini-test/detector-tiny", "1.0.0", catalog=catalog)
    catalog.register(spec)
    assert spec.weights is None and dict(spec.parts) == {"pixel": pixel.ref, "fusion": fusion.ref}
    check_entry(spec, catalog)
    folder = pull("detector-tiny@v1", catalog=catalog).folder
    assert f"pixel: `{pixel.ref}`" in (folder / "README.md").read_text()
    with pytest.raises(ExportFormatError, match="AlignGemini"):
        load("detector-tiny", catalog=catalog)


def test_a_corrupted_cache_is_caught_and_repaired_by_force_download(hub, tmp_path):
    spec, module, _ = publish(tmp_path)
    catalog = Catalog([spec])
    cached = (pull(spec.ref, catalog=catalog).folder / "model.safetensors").resolve()
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.safetensors .* failed its hash check.*--force-download"):
        pull(spec.ref, catalog=catalog)
    repaired = load(spec.ref, catalog=catalog, force_download=True)
    assert torch.equal(pixel_scores(repaired), pixel_scores(module))


def test_a_commit_that_does_not_hold_our_bytes_is_not_tagged(hub, tmp_path, monkeypatch):
    folder = export_module(tiny_pixel(), tmp_path / "export")
    upload = HfApi.upload_folder

    def upload_then_corrupt(self, **kwargs):  # the Hub stores something else than what was sent
        info = upload(self, **kwargs)
        hub.tamper(kwargs["repo_id"], info.oid, "model.safetensors", b"not the weights")
        return info

    monkeypatch.setattr(HfApi, "upload_folder", upload_then_corrupt)
    with pytest.raises(IntegrityError, match="model.safetensors differs from the uploaded file; not tagged"):
        push(folder, "aligngemini-test/corrupted-upload", "1.0.0")
    assert HfApi(endpoint=hub.url).list_repo_refs("aligngemini-test/corrupted-upload").tags == []
