"""Benchmark inputs saved for reuse (data sets, fitted models), reused only when they were made
with the settings the flags ask for now.

A folder of studies or a model file saved by an earlier run keeps, beside it, a small JSON
record of how it was made (``.bench-recipe.json`` in a data folder, ``<model>.bench.json``
beside a model). A later run whose flags ask for something else stops with a message naming
the differences, instead of measuring the old data or model under the new flags' name.
"""

from __future__ import annotations

import json
from pathlib import Path

import spinecls

DATA_RECIPE = ".bench-recipe.json"


def _normal(value):
    """JSON's view of a value (tuples as lists), so a record compares with the flags."""
    return json.loads(json.dumps(value, default=str))


def _differences(recorded: dict, wanted: dict) -> list[str]:
    wanted = _normal(wanted)
    return [
        f"{key}: saved {recorded.get(key)!r}, asked {value!r}"
        for key, value in wanted.items()
        if recorded.get(key) != value
    ]


def check_record(record: Path, wanted: dict, what: str, saved: Path) -> None:
    """Stop (SystemExit) unless ``record`` holds ``wanted``; write it when nothing is saved.

    Parameters
    ----------
    record : Path
        The JSON record of how ``saved`` was made.
    wanted : dict
        The settings the flags ask for (JSON-able).
    what : str
        What ``saved`` is, for the message ("data", "model").
    saved : Path
        The data folder or model file the record describes.
    """
    if not saved.exists():  # nothing to reuse: a record left beside nothing is stale
        record.unlink(missing_ok=True)
        return
    if record.is_file():
        problems = _differences(json.loads(record.read_text()), wanted)
    else:
        problems = [f"no record of how it was made ({record.name})"]
    if problems:
        raise SystemExit(
            f"the saved {what} at {saved} does not match the flags: "
            + "; ".join(problems)
            + f". Give another path, or remove {saved} to make it again."
        )


def write_record(record: Path, wanted: dict) -> None:
    """Record how a saved data folder or model was made."""
    record.write_text(json.dumps(_normal(wanted), indent=2, sort_keys=True))


def model_record(model: Path) -> Path:
    """The record beside a saved model file."""
    return model.with_name(model.name + ".bench.json")


def synthetic_pair(
    folder: Path, n_train: int, n_test: int, seed: int, variation: str, image_size=None
) -> tuple[Path, Path, Path]:
    """Training studies of data seed ``seed`` and test studies (test layout, truth beside it)
    of ``seed + 1`` under ``folder``: written, or reused if an earlier run wrote them with
    the same settings (else SystemExit)."""
    train, test, truth = folder / "train", folder / "test", folder / "test_truth"
    wanted = {
        "train": n_train,
        "test": n_test,
        "data seed": seed,
        "variation": variation,
        "image size": image_size,
    }
    record = folder / DATA_RECIPE
    if train.exists() or test.exists():
        check_record(record, wanted, "data", folder)
    common = {"n_jobs": -1, "variation": variation}
    if image_size is not None:
        common["image_size"] = tuple(image_size)
    if not train.exists():
        spinecls.make_synthetic_rsna(train, n_train, random_state=seed, **common)
    if not test.exists():
        spinecls.make_synthetic_rsna(
            test, n_test, random_state=seed + 1, split="test", truth_dir=truth, **common
        )
    write_record(record, wanted)
    return train, test, truth
