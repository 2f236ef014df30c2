"""The command line run as a user runs it, in a subprocess: nothing of theirs is ever lost.

Existing outputs are refused (and with ``--overwrite`` replaced only when spinecls wrote
them); the working directory, the input data and their parents are never outputs; a bad
destination is refused before the work; Ctrl-C exits 130 and SIGTERM 143 leaving nothing
behind, not even hidden temporary files. (Ctrl-C during the demo is shown in this process.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import spinecls
from spinecls.cli import main

from .snapshots import snapshot

# The subprocesses run elsewhere: make a relative PYTHONPATH (``src``) absolute.
_PATH = os.pathsep.join(
    os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
)
ENV = {**os.environ, "PYTHONPATH": _PATH, "PYTHONUNBUFFERED": "1"}


def spinecls_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spinecls", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_line(result: subprocess.CompletedProcess, command: str) -> str:
    """The one line a refused command prints; it must exit 2 and print nothing else."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"spinecls {command}: error: "), lines
    return lines[0]


def start(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    # SIGINT back to its default: a test run in the background inherits it ignored.
    return subprocess.Popen(
        [sys.executable, "-m", "spinecls", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def signal_when(process: subprocess.Popen, text: str, signum: int) -> int:
    """Send ``signum`` once the command has printed a line containing ``text``."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            process.send_signal(signum)
            break
    else:
        pytest.fail(f"the command ended without printing {text!r}:\n{''.join(seen)[-2000:]}")
    process.stdout.read()
    return process.wait(timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Three small synthetic studies, written as ``spinecls synth`` writes them (read-only for
    the tests; test_cli shows that synth and the library write the same files)."""
    root = tmp_path_factory.mktemp("cli") / "data"
    return spinecls.make_synthetic_rsna(root, n_studies=3, random_state=0, image_size=(96, 128))


@pytest.fixture
def work(tmp_path) -> Path:
    """A working directory holding a user's files."""
    folder = tmp_path / "work"
    (folder / "mine").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "mine" / "thesis.tex").write_text("years of work")
    return folder


def test_synth_refuses_a_users_directory_and_the_working_directory(work):
    before = snapshot(work.parent)
    message = error_line(spinecls_cli("synth", "mine", cwd=work), "synth")
    assert "mine exists and is not empty" in message and "--overwrite" in message
    message = error_line(spinecls_cli("synth", "mine", "--overwrite", cwd=work), "synth")
    assert "not written by spinecls" in message and "would delete thesis.tex" in message
    message = error_line(spinecls_cli("synth", ".", "--overwrite", cwd=work), "synth")
    assert ". is the current working directory" in message
    assert snapshot(work.parent) == before


def test_synth_replaces_its_own_output_with_overwrite(data, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    result = spinecls_cli("synth", "copy", "--studies", "1", "--overwrite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert spinecls.load_rsna(copy)["study_id"].nunique() == 1
    assert os.listdir(tmp_path) == ["copy"]


def test_demo_refuses_its_data_and_a_parent_of_the_working_directory(data, work):
    before, data_before = snapshot(work.parent), snapshot(data)
    result = spinecls_cli("demo", "--data", str(data), "--out", str(data), "--overwrite", cwd=work)
    assert "is the input data directory" in error_line(result, "demo")
    result = spinecls_cli("demo", "--out", "..", "--overwrite", cwd=work / "mine")
    assert ".. contains the current working directory" in error_line(result, "demo")
    assert snapshot(work.parent) == before and snapshot(data) == data_before


def test_train_refuses_a_missing_parent_before_training(data, tmp_path):
    result = spinecls_cli("train", "--data", str(data), "--out", "typo/model.pt", cwd=tmp_path)
    assert "typo/model.pt: the directory typo does not exist" in error_line(result, "train")
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_destination_is_refused(data, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root) can write in a read-only directory")
        result = spinecls_cli("train", "--data", str(data), "--out", "locked/m.pt", cwd=tmp_path)
        assert "no permission to write in locked" in error_line(result, "train")
        result = spinecls_cli("synth", "locked/new", cwd=tmp_path)
        assert "no permission to write in locked" in error_line(result, "synth")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_ctrl_c_during_train_exits_130_and_saves_no_model(data, tmp_path):
    before = snapshot(data)
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "stderr.log"
    process = start("train", "--data", str(data), "--out", "out/m.pt", "--epochs", "50",
                    cwd=tmp_path, log=log)  # fmt: skip
    # skorch prints its table header after the first epoch: training is under way.
    assert signal_when(process, "train_loss", signal.SIGINT) == 130
    assert log.read_text().strip().splitlines()[-1] == (
        "spinecls train: interrupted; no output written"
    )
    assert list(out.iterdir()) == []
    assert snapshot(data) == before


def test_ctrl_c_during_demo_exits_130_and_writes_nothing(data, tmp_path, monkeypatch, capsys):
    # In this process (a subprocess would import torch again): the SIGINT reaches the
    # command's own handler while training, as in the subprocess above, and skorch's fit
    # returns normally after it, as skorch does.
    def fit_like_skorch(self, *args, **kwargs):
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        return self

    from spinecls.demo import _run as demo

    monkeypatch.setattr(demo.DualHeadClassifier, "fit", fit_like_skorch)
    monkeypatch.chdir(tmp_path)
    before = snapshot(data)
    out = tmp_path / "out"
    out.mkdir()
    # Python's own Ctrl-C handler, as in a terminal: a test run in the background inherits
    # SIGINT ignored, and the command leaves an ignored signal alone.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main(["demo", "--quick", "--data", str(data), "--out", "out/demo"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "spinecls demo: interrupted; no output written"
    )
    assert list(out.iterdir()) == []
    assert snapshot(data) == before


def test_sigterm_during_synth_exits_143_and_leaves_no_partial_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    process = start("synth", "big", "--studies", "20", cwd=out, log=tmp_path / "stderr.log")
    deadline = time.monotonic() + 300
    while not any(out.glob(".big.partial-*/train_images/*/*/*.dcm")):
        assert process.poll() is None and time.monotonic() < deadline, "synth never wrote"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == 143
    assert list(out.iterdir()) == []
