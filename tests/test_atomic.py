"""Output safety: the destination rules, write-then-rename, and signals that end a run."""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
from pathlib import Path

import pytest

from spinecls._utils import atomic as _atomic
from spinecls._utils.atomic import (
    MARKER,
    Terminated,
    atomic_directory,
    atomic_file,
    check_destination,
    stop_on_signals,
)

from .snapshots import snapshot


def write_ours(root: Path, text: str = "old") -> None:
    with atomic_directory(root, written_by="test") as tmp:
        (tmp / "result.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "deep.txt").write_text(text)


@pytest.fixture
def user_dir(tmp_path):
    folder = tmp_path / "mine"
    (folder / "photos").mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    return folder


def test_a_new_directory_appears_only_at_the_end_with_a_marker(tmp_path):
    root = tmp_path / "out"
    with atomic_directory(root, written_by="spinecls test") as tmp:
        (tmp / "a.txt").write_text("a")
        assert not root.exists() and tmp.parent == tmp_path and tmp.name.startswith(".")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    marker = json.loads((root / MARKER).read_text())
    assert marker["written_by"] == "spinecls test" and marker["entries"] == ["a.txt"]


def test_an_empty_directory_is_written_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    with atomic_directory(tmp_path / "out", written_by="test") as tmp:
        (tmp / "a.txt").write_text("a")
    assert (tmp_path / "out" / "a.txt").read_text() == "a"


def test_a_users_directory_is_never_replaced(user_dir):
    before = snapshot(user_dir)
    with pytest.raises(FileExistsError, match="not empty.*overwrite=True"):
        check_destination(user_dir, directory=True)
    with (
        pytest.raises(FileExistsError) as info,
        atomic_directory(user_dir, written_by="test", overwrite=True),
    ):
        pytest.fail("the block must not run")
    message = str(info.value)
    assert "not written by spinecls" in message and MARKER in message
    assert "would delete photos/, thesis.tex" in message and "\n" not in message
    assert snapshot(user_dir) == before
    assert sorted(os.listdir(user_dir.parent)) == ["mine"]


def test_an_output_of_ours_is_replaced_with_overwrite_only(tmp_path):
    root = tmp_path / "out"
    write_ours(root, "old")
    with pytest.raises(FileExistsError, match="not empty"):
        write_ours(root, "new")
    assert (root / "result.txt").read_text() == "old"
    with atomic_directory(root, written_by="test", overwrite=True) as tmp:
        (tmp / "result.txt").write_text("new")
    assert sorted(os.listdir(root)) == [MARKER, "result.txt"]  # sub/ went with the old tree
    assert (root / "result.txt").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_an_output_of_ours_with_a_users_file_added_is_not_replaced(tmp_path):
    root = tmp_path / "out"
    write_ours(root)
    (root / "notes.md").write_text("my notes")
    before = snapshot(root)
    with (
        pytest.raises(FileExistsError, match=r"did not write \(notes.md\)"),
        atomic_directory(root, written_by="test", overwrite=True),
    ):
        pytest.fail("the block must not run")
    assert snapshot(root) == before


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_keeps_the_old_output_and_leaves_no_temporary(tmp_path, exc):
    root = tmp_path / "out"
    write_ours(root, "old")
    before = snapshot(root)
    with (
        pytest.raises(type(exc)),
        atomic_directory(root, written_by="test", overwrite=True) as tmp,
    ):
        (tmp / "result.txt").write_text("half")
        raise exc
    assert snapshot(root) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_missing_parents_are_created_and_removed_again_on_failure(tmp_path):
    root = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), atomic_directory(root, written_by="test"):
        assert (tmp_path / "a" / "b").is_dir()
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_destination(root, directory=True)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (".", "is the current working directory"),
        ("..", "contains the current working directory"),
        ("/", "contains the current working directory"),
        ("~", "is the home directory"),
        ("data", "is the input data directory"),
        ("data/results", "lies inside the input data directory"),
        ("../store", "contains the input data directory"),
    ],
)
@pytest.mark.parametrize("overwrite", [False, True])
def test_protected_directories_are_refused_even_with_overwrite(
    tmp_path, monkeypatch, where, message, overwrite
):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "train.csv").write_text("study_id\n1\n")
    (tmp_path / "store" / "rsna").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".bashrc").write_text("x")
    before = snapshot(tmp_path)
    inputs = ["data", "../store/rsna"]
    with (
        pytest.raises(ValueError, match=message),
        atomic_directory(
            Path(where).expanduser(), written_by="t", overwrite=overwrite, inputs=inputs
        ),
    ):
        pytest.fail("the block must not run")
    assert snapshot(tmp_path) == before


def test_a_symbolic_link_or_a_file_is_not_an_output_directory(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="symbolic link"):
        check_destination(tmp_path / "link", directory=True, overwrite=True)
    with pytest.raises(NotADirectoryError, match="not a directory"):
        check_destination(tmp_path / "file", directory=True, overwrite=True)
    with pytest.raises(NotADirectoryError, match="file is not a directory"):
        check_destination(tmp_path / "file" / "out", directory=True, create_parents=True)


def test_atomic_file_writes_and_replaces_only_with_overwrite(tmp_path):
    path = tmp_path / "model.pt"
    with atomic_file(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".partial") and not tmp.exists()
        tmp.write_text("one")
    with pytest.raises(FileExistsError, match="model.pt exists: pass --overwrite"):
        check_destination(path, directory=False, overwrite_hint="--overwrite")
    with pytest.raises(FileExistsError), atomic_file(path):
        pytest.fail("the block must not run")
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text("two")
    assert path.read_text() == "two" and os.listdir(tmp_path) == ["model.pt"]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_file_leaves_no_partial_on_failure(tmp_path, exc):
    path = tmp_path / "model.pt"
    path.write_text("old")
    with pytest.raises(type(exc)), atomic_file(path, overwrite=True) as tmp:
        tmp.write_text("half")
        raise exc
    assert os.listdir(tmp_path) == ["model.pt"] and path.read_text() == "old"


def test_atomic_file_refuses_a_directory_an_input_and_a_missing_parent(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("x")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        check_destination(tmp_path / "data", directory=False, overwrite=True)
    with pytest.raises(ValueError, match="lies inside the input data directory"):
        check_destination(
            tmp_path / "data" / "train.csv",
            directory=False,
            overwrite=True,
            inputs=[tmp_path / "data"],
        )
    check_destination(tmp_path / "data" / "new.csv", directory=False, inputs=[tmp_path / "data"])
    with pytest.raises(ValueError, match="is the input file"):
        check_destination(
            tmp_path / "data" / "train.csv",
            directory=False,
            overwrite=True,
            inputs=[tmp_path / "data" / "train.csv"],
        )
    with pytest.raises(FileNotFoundError, match="typo does not exist"):
        check_destination(tmp_path / "typo" / "model.pt", directory=False)
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_file(tmp_path / "e"):
        pass
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_an_unwritable_destination_is_refused_before_the_work(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="no permission to write in"):
        check_destination(tmp_path / "m.pt", directory=False)
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_atomic.tempfile, "TemporaryFile", read_only)
    with pytest.raises(PermissionError, match="Read-only file system"):
        check_destination(tmp_path / "out", directory=True)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes in read-only directories"
)
def test_a_read_only_directory_is_refused(tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="cannot write"):
            check_destination(tmp_path / "ro" / "m.pt", directory=False)
    finally:
        (tmp_path / "ro").chmod(0o755)


def _swallows_keyboard_interrupt() -> str:
    """What skorch's NeuralNet.fit does with Ctrl-C: stop training and return normally."""
    try:
        signal.raise_signal(signal.SIGINT)
        return "not interrupted"
    except KeyboardInterrupt:
        return "swallowed"


def test_sigint_ends_the_block_even_through_code_that_swallows_it():
    handler = signal.getsignal(signal.SIGINT)
    assert _swallows_keyboard_interrupt() == "swallowed"
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        _swallows_keyboard_interrupt()
        pytest.fail("the block must end at the signal")
    assert signal.getsignal(signal.SIGINT) is handler


def test_sigterm_becomes_exit_status_143_and_cleans_up(tmp_path):
    handler = signal.getsignal(signal.SIGTERM)
    with (
        pytest.raises(Terminated) as info,
        stop_on_signals(signal.SIGINT, signal.SIGTERM),
        atomic_file(tmp_path / "out.csv") as tmp,
    ):
        tmp.write_text("half")
        signal.raise_signal(signal.SIGTERM)
    assert info.value.code == 143 and list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is handler


def test_signals_are_left_alone_outside_the_main_thread():
    seen = []

    def worker():
        with stop_on_signals():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
