"""Writing output so that nothing a user had is lost and nothing half-written is left.

Every function and command of spinecls that writes a file or a directory goes through here:

- :func:`check_destination` holds the rules, checked before any long work starts: an
  existing output is replaced only when asked to (``overwrite``), a directory only when
  spinecls wrote it (a :data:`MARKER` file inside says so and lists what it wrote), and
  never the working directory, the home directory, an input, or a parent of any of them.
- :func:`atomic_directory` and :func:`atomic_file` write into a hidden temporary sibling
  and rename it into place at the end; on any exception, Ctrl-C included, the temporary
  is removed and the destination is left as it was.
- :func:`stop_on_signals` makes SIGINT (and SIGTERM) end a block even inside code that
  swallows ``KeyboardInterrupt``, as skorch's ``fit`` does, so that an interrupted run
  unwinds through the cleanups above instead of carrying on or dying without them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .._version import __version__

MARKER = ".spinecls-output.json"
"""Name of the file spinecls writes in every output directory: what wrote it, and what."""

_LISTED = 3


def _listing(names: list[str]) -> str:
    shown = ", ".join(sorted(names)[:_LISTED])
    more = len(names) - _LISTED
    return f"{shown}, and {more} more" if more > 0 else shown


def _entries(directory: Path) -> list[str]:
    with os.scandir(directory) as it:
        return [entry.name + ("/" if entry.is_dir() else "") for entry in it]


def _written_entries(directory: Path) -> set[str] | None:
    """What spinecls wrote in ``directory`` according to its marker; None when not ours."""
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("entries"), list):
        return None
    return {str(name) for name in marker["entries"]} | {MARKER}


def _protected(inputs: Iterable[str | os.PathLike | None]) -> list[tuple[Path, str, bool]]:
    """(resolved path, name for messages, whether it is an input) of what is never an output."""
    places = [(Path.cwd(), "the current working directory", False)]
    with suppress(RuntimeError):  # no home directory to resolve
        places.append((Path.home().resolve(), "the home directory", False))
    for p in inputs:
        if p is not None:
            kind = "data directory" if Path(p).is_dir() else "file"
            places.append((Path(p).resolve(), f"the input {kind} {p}", True))
    return places


def _check_protected(path: Path, target: Path, inputs, directory: bool) -> None:
    for place, name, is_input in _protected(inputs):
        if directory and target == place:
            raise ValueError(f"{path} is {name}: choose a new directory for the output")
        if directory and place.is_relative_to(target):
            raise ValueError(f"{path} contains {name}: choose a new directory for the output")
        if is_input and target.is_relative_to(place) and (directory or target.exists()):
            what = "lies inside" if target != place else "is"
            raise ValueError(f"{path} {what} {name}: choose an output outside the input data")


def _check_parent(path: Path, create_parents: bool) -> None:
    parent = path.parent
    while create_parents and not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the nearest existing ancestor must take the new directories
    if not parent.exists():
        raise FileNotFoundError(f"cannot write {path}: the directory {path.parent} does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: no permission to write in {parent}")
    try:
        # os.access does not see read-only file systems, ACLs and the like: try it.
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as exc:
        raise PermissionError(f"cannot write {path}: {exc.strerror} in {parent}") from exc


def check_destination(
    path: str | os.PathLike,
    *,
    directory: bool,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    create_parents: bool = False,
    overwrite_hint: str = "overwrite=True",
) -> Path:
    """Refuse an output path that would lose a user's files, before the work starts.

    Parameters
    ----------
    path : str or path-like
        The file or directory to be written.
    directory : bool
        Whether ``path`` is to be a directory (else a file).
    overwrite : bool, default=False
        Whether an existing output may be replaced. A directory is replaced only if
        spinecls wrote it (its :data:`MARKER` lists everything in it).
    inputs : iterable of path-like
        Input files and directories of the run: never replaced, and for a directory
        output, never the output's location, parent or ancestor. None entries are skipped.
    create_parents : bool, default=False
        Allow missing parent directories (they are created later); else they are an error.
    overwrite_hint : str, default="overwrite=True"
        How the caller asks for ``overwrite``, for the messages (``--overwrite`` in the CLI).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    FileExistsError, IsADirectoryError, NotADirectoryError, FileNotFoundError, PermissionError
        Each with a one-line message naming the path and what to do.
    ValueError
        The output is, contains or lies inside a protected directory or an input.
    """
    path = Path(path)
    target = path.resolve()
    inputs = list(inputs)
    _check_protected(path, target, inputs, directory)
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link: give the real path")
    if directory:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a directory")
        if path.is_dir() and os.path.ismount(path):
            raise ValueError(f"{path} is a mount point: give a new directory inside it")
        if path.is_dir() and (entries := _entries(path)):
            if not overwrite:
                raise FileExistsError(
                    f"{path} exists and is not empty: choose a new directory, or pass "
                    f"{overwrite_hint} to replace an output of spinecls"
                )
            written = _written_entries(path)
            if written is None:
                raise FileExistsError(
                    f"{path} was not written by spinecls (it has no {MARKER}), so it is not "
                    f"replaced: {overwrite_hint} would delete {_listing(entries)}; remove it "
                    "yourself or choose another directory"
                )
            if others := [e for e in entries if e.rstrip("/") not in written]:
                raise FileExistsError(
                    f"{path} holds files spinecls did not write ({_listing(others)}), so it is "
                    f"not replaced: move them out or choose another directory"
                )
    else:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory: give a file name")
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} exists: pass {overwrite_hint} to replace it")
            if not path.is_file():
                raise ValueError(f"{path} is not a regular file: it is not replaced")
    _check_parent(path, create_parents)
    return path


def _make_parents(directory: Path) -> list[Path]:
    """Create missing directories down to ``directory``; return those created, deepest first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir()
    return missing


def _remove_created(folders: list[Path]) -> None:
    for folder in folders:
        with suppress(OSError):  # not empty: something else wrote there meanwhile
            folder.rmdir()


@contextmanager
def atomic_directory(
    root: str | os.PathLike,
    *,
    written_by: str,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``root``; on success it becomes ``root``.

    The destination is checked first (:func:`check_destination`; missing parents are
    created). At the end the temporary directory gets a :data:`MARKER` naming
    ``written_by`` and listing its entries, and is renamed to ``root``. A ``root`` that
    spinecls wrote before (``overwrite``) is renamed aside first and deleted only once the
    new one is in place. On any exception, Ctrl-C included, the temporary directory and
    the parents created for it are removed, and ``root`` is left as it was.

    Parameters
    ----------
    root : str or path-like
    written_by : str
        What writes it (e.g. ``"spinecls.demo.run_demo"``), recorded in the marker.
    overwrite : bool, default=False
    inputs : iterable of path-like
        See :func:`check_destination`.
    """
    root = Path(root)
    inputs = list(inputs)
    check_destination(root, directory=True, overwrite=overwrite, inputs=inputs, create_parents=True)
    created = _make_parents(root.parent)
    tmp = root.parent / f".{root.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        yield tmp
        marker = {"written_by": written_by, "version": __version__, "entries": os.listdir(tmp)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        # Checked again: something may have appeared at root during the work.
        check_destination(root, directory=True, overwrite=overwrite, inputs=inputs)
        _swap_in(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created)
        raise


def _swap_in(tmp: Path, root: Path) -> None:
    if not root.exists() or not os.listdir(root):
        os.rename(tmp, root)  # replaces an empty directory in one step
        return
    old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(root, old)
    try:
        os.rename(tmp, root)
    except BaseException:
        os.rename(old, root)
        raise
    try:
        shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(old, ignore_errors=True)
        raise


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    The one write-then-rename of the package, without a destination policy (library
    calls such as ``save`` replace their file as ``torch.save`` would). The temporary
    file (``.<name>.<random>.partial``, not created in advance, so the writer creates
    it with the usual permissions) is flushed to disk, renamed over ``path`` when the
    block ends without an exception, and removed on any failure, Ctrl-C included: no
    ``*.partial`` is ever left behind and an earlier ``path`` survives a failed write.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written for {path}")
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()


@contextmanager
def atomic_file(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; what is written there replaces ``path``.

    The destination is checked first (:func:`check_destination`: its directory must
    exist and be writable; an existing file is replaced only with ``overwrite``), and
    again just before the rename; the writing itself is :func:`replacing`.

    Parameters
    ----------
    path : str or path-like
    overwrite : bool, default=False
    inputs : iterable of path-like
        See :func:`check_destination`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    inputs = list(inputs)
    check_destination(path, directory=False, overwrite=overwrite, inputs=inputs)
    with replacing(path) as tmp:
        yield tmp
        if tmp.is_file():
            check_destination(path, directory=False, overwrite=overwrite, inputs=inputs)


class _Stop(BaseException):
    """A signal caught by :func:`stop_on_signals`; not a KeyboardInterrupt, so none swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Terminated(SystemExit):
    """SIGTERM (or another signal than SIGINT) ended a :func:`stop_on_signals` block."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@contextmanager
def stop_on_signals(*signums: int) -> Iterator[None]:
    """Make the given signals (default SIGINT) end the block, whatever code it is running.

    skorch's ``fit`` catches ``KeyboardInterrupt`` and returns as if training had
    finished, so Ctrl-C would save a model trained for a fraction of its epochs. Inside
    this block a signal raises a private exception that no library catches; it unwinds
    through every ``finally`` and context manager (removing temporaries) and leaves the
    block as ``KeyboardInterrupt`` for SIGINT and :class:`Terminated` (exit status
    128 + signal number) for any other. Handlers are only installed from the main thread
    and only over the default ones (an ignored or user-installed handler is left alone),
    and are restored when the block ends.
    """
    signums = signums or (signal.SIGINT,)

    def handler(signum, frame):
        raise _Stop(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in signums:
            current = signal.getsignal(signum)
            if current in (signal.default_int_handler, signal.SIG_DFL):
                previous[signum] = signal.signal(signum, handler)
    try:
        yield
    except _Stop as stop:
        if stop.signum == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise Terminated(stop.signum) from None
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
