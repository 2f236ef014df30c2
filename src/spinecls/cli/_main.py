"""Command-line interface: ``spinecls synth``, ``demo``, ``train``, ``localize``, ``predict``, ...

Every command is a thin wrapper over a library function. Exit status: 0 done, 2 a bad
argument, path or input (one line on stderr), 130 interrupted by Ctrl-C (SIGINT), 143
terminated (SIGTERM); an interrupted or failed run leaves no output behind. A command that
writes checks its destination before the work (:func:`spinecls._utils.atomic.check_destination`)
and replaces an existing output only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from .._utils.atomic import Terminated, stop_on_signals
from ._commands import (
    demo_command,
    evaluate_command,
    localize_command,
    predict_command,
    report_command,
    synth_command,
    train_command,
)
from ._scheduler import add_scheduler_option, dask_backend

OVERWRITE_DIRECTORY = "replace an existing output directory (only one that spinecls wrote)"
OVERWRITE_SYNTH = (
    "replace an existing OUTDIR and, with --split test, an existing --truth directory (only "
    "directories that spinecls wrote: a dataset written by synth at --truth is replaced too)"
)
STRICT_HELP = (
    "stop at the first DICOM file that cannot be read (exit 2, naming it); default: skip it "
    "(its slice, else its series) with a warning and give its rows the class prior"
)
DEVICE_HELP = "torch device, e.g. cuda or cuda:1 (default cpu)"
MODEL_DEVICE_HELP = (
    "torch device to predict on, e.g. cuda (default cpu, whatever device the model was trained on)"
)
CALIBRATION_HELP = "fit a temperature per head on the validation split (docs/quality.md)"
TTA_HELP = (
    "test-time augmentation: average with the mirror (and shifts); in predict, replaces the "
    "model's own, with which its temperatures were fitted"
)


def _input_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's to fix (a bad argument, file or setup): one line, exit 2."""
    from ..dicom import MissingCodecError  # loaded already if it was raised

    return isinstance(exc, (OSError, ValueError, MissingCodecError))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # The system's own errors ("[Errno 13] ...") in a readable form.
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        return f"{' -> '.join(names)}: {exc.strerror}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # The library's advice names its keyword; here the user passes the option.
    return ("; ".join(lines) or type(exc).__name__).replace("overwrite=True", "--overwrite")


def build_parser() -> argparse.ArgumentParser:
    """The ``spinecls`` argument parser with one sub-command per job (one ``_add_*`` each)."""
    parser = argparse.ArgumentParser(
        prog="spinecls",
        description="Detect and grade degenerative lumbar-spine conditions on MRI.",
    )
    parser.add_argument("--version", action="version", version=f"spinecls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_synth(sub)
    _add_demo(sub)
    _add_train(sub)
    _add_localize(sub)
    _add_predict(sub)
    _add_report(sub)
    _add_evaluate(sub)
    return parser


def _add_synth(sub) -> None:
    """``spinecls synth``: write synthetic studies in the competition layout."""
    synth = sub.add_parser(
        "synth",
        help="write a synthetic dataset in the competition layout",
        description="Write synthetic DICOM studies and CSVs in the RSNA 2024 layout, "
        "then print the loaded label balance.",
    )
    synth.add_argument("outdir", type=Path, help="output directory (new or empty)")
    synth.add_argument("--studies", type=int, default=20, help="number of studies (default 20)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--n-jobs", type=int, default=None, help="parallel studies (joblib)")
    synth.add_argument(
        "--split",
        choices=["train", "test"],
        default="train",
        help="train: labels and coordinates beside the images (default); test: the "
        "competition's test layout, its labels and coordinates written to --truth",
    )
    synth.add_argument(
        "--truth",
        type=Path,
        help="with --split test: directory for the labels and coordinates, in the training "
        "files' format (default: OUTDIR_truth beside OUTDIR; new or empty)",
    )
    synth.add_argument(
        "--variation",
        choices=["plain", "clinical"],
        default="plain",
        help="plain: every disc alike (default); clinical: the quirks of real scans (faint or "
        "oblique L5/S1, sacral remnants, transitional vertebrae, 200-400 mm fields of view, "
        "T1/T2/STIR/Dixon contrasts), listed in synthetic_quirks.csv beside train.csv",
    )
    synth.add_argument("--overwrite", action="store_true", help=OVERWRITE_SYNTH)
    synth.set_defaults(func=synth_command)


def _add_demo(sub) -> None:
    """``spinecls demo``: the study's three-model comparison."""
    demo = sub.add_parser(
        "demo",
        help="reproduce the study's three-model comparison",
        description="Train the study's three pipelines (simple CNN, Inception CNN, VGG-16) on "
        "synthetic studies or a competition directory, and compare them on held-out studies.",
    )
    demo.add_argument("--data", type=Path, help="competition directory (default: synthetic)")
    demo.add_argument("--out", type=Path, default=Path("spinecls-demo"), help="output directory")
    demo.add_argument("--studies", type=int, help="synthetic studies (default 80, quick 16)")
    demo.add_argument(
        "--quick",
        action="store_true",
        help="16 studies and short training: every stage in about 110 CPU-seconds",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--weights", help="pretrained VGG-16 weights: a file or IMAGENET1K_V1")
    demo.add_argument(
        "--no-localize",
        action="store_true",
        help="skip the end-to-end stage (localizer training, grading from located points)",
    )
    demo.add_argument("--overwrite", action="store_true", help=OVERWRITE_DIRECTORY)
    add_scheduler_option(demo)
    demo.set_defaults(func=demo_command)


def _add_train(sub) -> None:
    """``spinecls train``: train one model (and optionally a localizer)."""
    train = sub.add_parser("train", help="train one model on a competition directory")
    train.add_argument("--data", type=Path, required=True, help="competition directory")
    train.add_argument("--backbone", default="simple", help="simple, inception, vgg16, ...")
    train.add_argument("--out", type=Path, required=True, help="model file to write")
    train.add_argument("--mode", choices=["crop", "marker"], default="crop")
    train.add_argument("--patch-size", type=int, default=48, help="crop size in pixels")
    train.add_argument("--size", type=int, default=32, help="image size given to the model")
    train.add_argument("--slices", type=int, default=1, help="adjacent slices (odd)")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--augment", choices=["study", "light", "seed"], default=None)
    train.add_argument("--severity-weights", choices=["rsna"], default=None)
    train.add_argument("--weights", help="pretrained weights for torchvision backbones")
    train.add_argument(
        "--calibration", choices=["temperature"], default=None, help=CALIBRATION_HELP
    )
    train.add_argument("--tta", choices=["flip", "flip+shift"], default=None, help=TTA_HELP)
    train.add_argument("--device", default="cpu", help=DEVICE_HELP)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--localizer",
        action="store_true",
        help="also train the level localizer and carry it in the model file, so that "
        "predict grades studies without coordinates",
    )
    train.add_argument(
        "--localizer-epochs", type=int, default=10, help="localizer epochs (default 10)"
    )
    train.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_scheduler_option(train)
    train.set_defaults(func=train_command)


def _add_localize(sub) -> None:
    """``spinecls localize``: write the located level points of every series."""
    localize = sub.add_parser(
        "localize",
        help="write the located level points of every series",
        description="Locate the level points of every series of a competition directory "
        "(no coordinates needed) and write them in the coordinates CSV's columns plus "
        "confidence and the review flags.",
    )
    localize.add_argument("--data", type=Path, required=True, help="competition directory")
    localize.add_argument(
        "--model", type=Path, required=True, help="model file carrying a localizer"
    )
    localize.add_argument("--out", type=Path, required=True, help="coordinates CSV to write")
    localize.add_argument(
        "--split",
        choices=["test", "train"],
        default="test",
        help="read {split}_series_descriptions.csv and {split}_images/ (default test)",
    )
    localize.add_argument("--device", default="cpu", help=MODEL_DEVICE_HELP)
    localize.add_argument("--strict", action="store_true", help=STRICT_HELP)
    localize.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    localize.set_defaults(func=localize_command)


def _add_predict(sub) -> None:
    """``spinecls predict``: write a competition submission."""
    predict = sub.add_parser("predict", help="write a competition submission")
    predict.add_argument("--data", type=Path, required=True, help="competition directory")
    predict.add_argument("--model", type=Path, required=True, help="model file from train")
    predict.add_argument("--out", type=Path, required=True, help="submission CSV to write")
    predict.add_argument(
        "--split",
        choices=["test", "train"],
        default="test",
        help="read {split}_label_coordinates.csv and {split}_images/ (default test)",
    )
    predict.add_argument(
        "--localizer",
        type=Path,
        help="locate the levels with the localizer in this file even where coordinates are "
        "given (default: when {split}_label_coordinates.csv is absent, the one --model carries)",
    )
    predict.add_argument("--device", default="cpu", help=MODEL_DEVICE_HELP)
    predict.add_argument(
        "--tta", choices=["none", "flip", "flip+shift"], default=None, help=TTA_HELP
    )
    predict.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write the HTML report of the graded studies to DIR (see spinecls report)",
    )
    predict.add_argument(
        "--strict", action="store_true", help=STRICT_HELP + " (when the levels are located)"
    )
    predict.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out file (and --report)"
    )
    add_scheduler_option(predict)
    predict.set_defaults(func=predict_command)


def _add_report(sub) -> None:
    """``spinecls report``: an HTML report of located points and grades."""
    report = sub.add_parser(
        "report",
        help="write an HTML report of located points and grades",
        description="Write a folder of static HTML pages from the outputs of a run: an index "
        "of the studies, the studies to check first, and one page per study with the located "
        "points drawn on their slices, the crops the model graded and the probabilities beside "
        "the class prior.",
    )
    report.add_argument("--data", type=Path, required=True, help="competition directory")
    report.add_argument(
        "--points", type=Path, required=True, help="points CSV written by spinecls localize"
    )
    report.add_argument(
        "--submission", type=Path, required=True, help="submission CSV written by spinecls predict"
    )
    report.add_argument("--out", type=Path, required=True, help="report directory (new or empty)")
    report.add_argument("--model", type=Path, help="the model file that graded: show its crops")
    report.add_argument(
        "--split",
        choices=["test", "train"],
        default="test",
        help="read {split}_series_descriptions.csv and {split}_images/ (default test)",
    )
    report.add_argument("--device", default="cpu", help=MODEL_DEVICE_HELP)
    report.add_argument("--overwrite", action="store_true", help=OVERWRITE_DIRECTORY)
    report.set_defaults(func=report_command)


def _add_evaluate(sub) -> None:
    """``spinecls evaluate``: report and competition score on labelled data."""
    evaluate = sub.add_parser("evaluate", help="report and competition score on labelled data")
    evaluate.add_argument("--data", type=Path, required=True, help="competition directory")
    evaluate.add_argument("--model", type=Path, required=True, help="model file from train")
    evaluate.add_argument("--json", type=Path, help="also write the report as JSON")
    evaluate.add_argument("--device", default="cpu", help=MODEL_DEVICE_HELP)
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace an existing --json file"
    )
    add_scheduler_option(evaluate)
    evaluate.set_defaults(func=evaluate_command)


def _close_progress_bars():
    """Close the progress bars an interrupted run left open, so the last line is ours."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is None:
        return
    for bar in list(getattr(tqdm.tqdm, "_instances", ())):
        bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on a bad argument, path or input file, 130 when interrupted
        by SIGINT (Ctrl-C), 143 when terminated by SIGTERM.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with (
            stop_on_signals(signal.SIGINT, signal.SIGTERM),
            dask_backend(getattr(args, "scheduler", None)),
        ):
            return args.func(args)
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"spinecls {args.command}: interrupted; no output written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``spinecls synth x | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Terminated as exc:
        _close_progress_bars()
        print(f"spinecls {args.command}: terminated; no output written", file=sys.stderr)
        return exc.code
    except Exception as exc:
        if not _input_error(exc):
            raise
        print(f"spinecls {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
