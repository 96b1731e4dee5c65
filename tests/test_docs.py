"""Every command and config that README.md and CONTRIBUTING.md name exists and parses."""

import re
import shlex
from pathlib import Path

import pytest

from aligngemini.cli import TRAINER_VERBS, VERBS, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]


def _code_lines():
    for doc in DOCS:
        blocks = re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S)
        text = "\n".join(blocks).replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line:
                yield doc.name, line


def _aligngemini_commands():
    for doc, line in _code_lines():
        words = shlex.split(line)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # environment assignments such as HF_HUB_OFFLINE=0
        if words and words[0] == "aligngemini":
            yield doc, words[1:]


COMMANDS = list(_aligngemini_commands())


def test_docs_name_commands():
    verbs = {words[0] for _, words in COMMANDS}
    assert {"fit", "predict", "evaluate", "detect", "zoo", "data"} <= verbs


@pytest.mark.parametrize("doc, words", COMMANDS, ids=[" ".join(w[:3]) for _, w in COMMANDS])
def test_documented_command_parses(doc, words, capsys):
    verb = words[0]
    assert verb in TRAINER_VERBS or verb in VERBS, f"{doc}: unknown verb {verb}"
    if verb in TRAINER_VERBS:
        config = words[words.index("-c") + 1]
        assert (ROOT / config).is_file(), f"{doc}: {config} does not exist"
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "-c", str(ROOT / config), "--print_config"])
        assert exit_info.value.code == 0
        return
    sub = [w for w in words[1:3] if not w.startswith("-") and "/" not in w and "@" not in w and "." not in w][:1]
    with pytest.raises(SystemExit) as exit_info:
        main([verb, *sub, "--help"])
    assert exit_info.value.code == 0
    options = set(re.findall(r"--[a-z][a-z_-]*", capsys.readouterr().out))
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{doc}: {' '.join(words)}: no option {word}"


def test_shipped_configs_all_parse():
    configs = sorted((ROOT / "aligngemini" / "configs").rglob("*.yaml"))
    assert len(configs) >= 6
    for config in configs:
        verb = "fit"
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "-c", str(config), "--print_config"])
        assert exit_info.value.code == 0, config


def test_makefile_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo:", "test:", "test-fast:", "bench:"):
        assert f"\n{target}" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
