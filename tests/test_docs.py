"""The documentation's code blocks, the README's commands and the examples all run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from spinecls.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(page: Path, language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(page.read_text()) if lang == language]


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")], ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(_blocks(page, "python")):
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)


def _commands(page: Path) -> list[list[str]]:
    """The ``spinecls`` commands of a page's bash blocks, as argument lists (no --help)."""
    commands = []
    for code in _blocks(page, "bash"):
        for line in code.splitlines():
            for command in line.split("&&"):
                words = shlex.split(command.strip())
                if words[:1] == ["spinecls"] and "--help" not in words:
                    commands.append(["x" if w == "OUTDIR" else w for w in words[1:]])
    return commands


@pytest.mark.parametrize("page", [p for p in PAGES if _commands(p)], ids=lambda p: p.name)
def test_spinecls_commands_in_bash_blocks_parse(page):
    parser = build_parser()
    for words in _commands(page):
        parser.parse_args(words)


@pytest.mark.skipif(
    os.environ.get("SPINECLS_EXAMPLES_CHECKED") == "1",
    reason="the examples ran against the installed wheel (.ci/check_wheel)",
)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_run_small(example, tmp_path):
    env = {**os.environ, "SPINECLS_EXAMPLE_SMALL": "1"}
    result = subprocess.run(
        [sys.executable, str(example), str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
