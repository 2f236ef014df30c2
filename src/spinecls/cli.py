"""Command-line interface: ``spinecls synth``, ``demo``, ``train``, ``localize``, ``predict``, ...

Every command is a thin wrapper over a library function. Exit status: 0 done, 2 a bad
argument, path or input (one line on stderr), 130 interrupted by Ctrl-C (SIGINT), 143
terminated (SIGTERM); an interrupted or failed run leaves no output behind. A command that
writes checks its destination before the work (:func:`spinecls._atomic.check_destination`)
and replaces an existing output only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from ._atomic import Terminated, atomic_file, check_destination, stop_on_signals
from ._scheduler import add_scheduler_option, dask_backend
from .labels import CONDITIONS, SEVERITIES

OVERWRITE_DIRECTORY = "replace an existing output directory (only one that spinecls wrote)"
DEVICE_HELP = "torch device, e.g. cuda or cuda:1 (default cpu)"
MODEL_DEVICE_HELP = (
    "torch device to predict on, e.g. cuda (default cpu, whatever device the model was trained on)"
)
CALIBRATION_HELP = "fit a temperature per head on the validation split (docs/quality.md)"
TTA_HELP = (
    "test-time augmentation: average with the mirror (and shifts); in predict, replaces the "
    "model's own, with which its temperatures were fitted"
)


def _summary(frame) -> str:
    table = (
        frame.groupby("condition")["severity"]
        .value_counts(normalize=True)
        .unstack(fill_value=0.0)
        .reindex(index=list(CONDITIONS), columns=list(SEVERITIES), fill_value=0.0)
    )
    overall = frame["severity"].value_counts(normalize=True).reindex(list(SEVERITIES), fill_value=0)
    lines = [
        f"{frame['study_id'].nunique()} studies, {frame['series_id'].nunique()} series, "
        f"{len(frame)} labelled coordinates",
        "severity balance (share of rows):",
        (100 * table).round(1).to_string(),
        "all: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in overall.items()),
    ]
    return "\n".join(lines)


def _inputs(args: argparse.Namespace) -> list[Path | None]:
    localizer = getattr(args, "localizer", None)
    return [
        getattr(args, "data", None),
        getattr(args, "model", None),
        localizer if isinstance(localizer, Path) else None,
    ]


def _check_output(args: argparse.Namespace, path: Path | None, *, directory: bool = False) -> None:
    """Refuse a bad destination before any long work (see ``check_destination``)."""
    if path is not None:
        check_destination(
            path,
            directory=directory,
            overwrite=args.overwrite,
            inputs=_inputs(args),
            overwrite_hint="--overwrite",
        )


def _check_data(path: Path | None) -> None:
    if path is not None and not path.is_dir():
        raise NotADirectoryError(f"--data {path} is not a directory")


def _check_device(device: str) -> None:
    from .persistence import check_device

    check_device(device, "--device")


def _synth(args: argparse.Namespace) -> int:
    if args.truth is not None and args.split != "test":
        raise ValueError("--truth is only written with --split test")
    truth = None
    if args.split == "test":
        truth = args.truth or args.outdir.with_name(f"{args.outdir.name}_truth")
    for destination in (args.outdir, truth):
        _check_output(args, destination, directory=True)
    from .datasets import load_rsna, make_synthetic_rsna

    root = make_synthetic_rsna(
        args.outdir,
        n_studies=args.studies,
        random_state=args.seed,
        n_jobs=args.n_jobs,
        overwrite=args.overwrite,
        split=args.split,
        truth_dir=truth,
    )
    if truth is None:
        print(f"wrote a synthetic RSNA dataset to {root}")
    else:
        print(f"wrote a synthetic RSNA test set to {root} and its labels to {truth}")
    print(_summary(load_rsna(truth or root)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    _check_data(args.data)
    _check_output(args, args.out, directory=True)
    from .demo import run_demo

    run_demo(
        args.data,
        args.out,
        studies=args.studies,
        quick=args.quick,
        random_state=args.seed,
        weights=args.weights,
        overwrite=args.overwrite,
        localize=not args.no_localize,
    )
    return 0


def _load_pipeline(path: Path, data: Path, device: str):
    from .persistence import load_pipeline

    if path.is_dir():
        raise IsADirectoryError(f"--model {path} is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return load_pipeline(path, data_dir=data, device=device, verbose=1)


def _train(args: argparse.Namespace) -> int:
    _check_data(args.data)
    _check_output(args, args.out)
    _check_device(args.device)
    from sklearn.pipeline import Pipeline

    from .classifier import DualHeadClassifier
    from .datasets import load_rsna
    from .persistence import save_pipeline
    from .preprocessing import LumbarPatchTransformer

    frame = load_rsna(args.data)
    transformer = LumbarPatchTransformer(
        patch_size=args.patch_size,
        output_size=args.size,
        mode=args.mode,
        slices=args.slices,
        verbose=1,
    )
    X = transformer.fit_transform(frame)
    model = DualHeadClassifier(
        backbone=args.backbone,
        lr=args.lr,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        augment=args.augment,
        severity_weights=args.severity_weights,
        tta=args.tta,
        weights=args.weights,
        calibration=args.calibration,
        device=args.device,
        random_state=args.seed,
        verbose=1,
    )
    print(f"training the {args.backbone} model on {len(X)} patches", flush=True)
    model.fit(X, frame[["condition", "severity"]], groups=frame["study_id"].to_numpy())
    localizer = _train_localizer(args, frame) if args.localizer else None
    with atomic_file(args.out, overwrite=args.overwrite, inputs=_inputs(args)) as tmp:
        save_pipeline(
            Pipeline([("patches", transformer), ("clf", model)]), tmp, localizer=localizer
        )
    carried = " and the level localizer" if localizer is not None else ""
    print(f"saved the {args.backbone} model{carried} to {args.out}")
    return 0


def _train_localizer(args: argparse.Namespace, coordinates):
    from .datasets import load_series
    from .localization import LevelLocalizer

    series = load_series(args.data, split="train")
    localizer = LevelLocalizer(
        max_epochs=args.localizer_epochs, device=args.device, random_state=args.seed, verbose=1
    )
    print(f"training the level localizer on {len(series)} series", flush=True)
    return localizer.fit(series, coordinates)


def _located(args: argparse.Namespace) -> bool:
    """Whether ``predict`` must find the levels itself: no coordinates file, or asked to."""
    return (
        args.localizer is not None
        or not (args.data / f"{args.split}_label_coordinates.csv").is_file()
    )


def _predict(args: argparse.Namespace) -> int:
    _check_data(args.data)
    _check_output(args, args.out)
    _check_device(args.device)
    from .datasets import load_coordinates
    from .metrics import to_submission

    pipeline = _load_pipeline(args.model, args.data, args.device)
    if args.tta is not None:
        pipeline[-1].set_params(tta=None if args.tta == "none" else args.tta)
    if _located(args):
        from .inference import predict_studies
        from .persistence import load_localizer

        localizer = load_localizer(args.localizer or args.model, device=args.device)
        print(f"no coordinates given: locating the levels of {args.split}_images", flush=True)
        submission = predict_studies(args.data, pipeline, localizer, split=args.split)
        studies = len(submission) // 25
    else:
        frame = load_coordinates(args.data, split=args.split)
        proba = pipeline.predict_proba(frame)[1]
        submission = to_submission(frame, proba, classes=pipeline.classes_[1])
        studies = frame["study_id"].nunique()
    with atomic_file(args.out, overwrite=args.overwrite, inputs=_inputs(args)) as tmp:
        submission.to_csv(tmp, index=False)
    print(f"wrote {len(submission)} rows for {studies} studies to {args.out}")
    return 0


def _localize(args: argparse.Namespace) -> int:
    _check_data(args.data)
    _check_output(args, args.out)
    _check_device(args.device)
    from .datasets import load_series
    from .localization import POINT_COLUMNS
    from .persistence import load_localizer

    if args.model.is_dir():
        raise IsADirectoryError(f"--model {args.model} is a directory, not a model file")
    localizer = load_localizer(args.model, device=args.device)
    points = localizer.predict(load_series(args.data, split=args.split))
    with atomic_file(args.out, overwrite=args.overwrite, inputs=_inputs(args)) as tmp:
        columns = [*POINT_COLUMNS, "confidence", *[c for c in points if c.startswith("qc_")]]
        points[columns].to_csv(tmp, index=False)
    print(
        f"wrote {len(points)} points for {points['study_id'].nunique()} studies to {args.out} "
        f"({int(points[['qc_outside_image', 'qc_order']].any(axis=1).sum())} flagged for review)"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _check_data(args.data)
    _check_output(args, args.json)
    _check_device(args.device)
    from .datasets import load_rsna
    from .evaluation import evaluate

    pipeline = _load_pipeline(args.model, args.data, args.device)
    evaluation = evaluate(pipeline, load_rsna(args.data))
    print(evaluation.report)
    print(f"\ncompetition score (lower is better): {evaluation.score:.4f}")
    if args.json is not None:
        with atomic_file(args.json, overwrite=args.overwrite, inputs=_inputs(args)) as tmp:
            tmp.write_text(json.dumps(evaluation.to_dict(), indent=2))
    return 0


def _input_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's to fix (a bad argument, file or setup): one line, exit 2."""
    from .dicom import MissingCodecError  # loaded already if it was raised

    return isinstance(exc, (OSError, ValueError, MissingCodecError))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # The system's own errors ("[Errno 13] ...") in a readable form.
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        return f"{' -> '.join(names)}: {exc.strerror}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    """The ``spinecls`` argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="spinecls",
        description="Detect and grade degenerative lumbar-spine conditions on MRI.",
    )
    parser.add_argument("--version", action="version", version=f"spinecls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    synth.add_argument("--overwrite", action="store_true", help=OVERWRITE_DIRECTORY)
    synth.set_defaults(func=_synth)

    demo = sub.add_parser(
        "demo",
        help="reproduce the study's three-model comparison",
        description="Train the study's three pipelines (simple CNN, Inception CNN, VGG-16) on "
        "synthetic studies or a competition directory, and compare them on held-out studies.",
    )
    demo.add_argument("--data", type=Path, help="competition directory (default: synthetic)")
    demo.add_argument("--out", type=Path, default=Path("spinecls-demo"), help="output directory")
    demo.add_argument("--studies", type=int, help="synthetic studies (default 30, quick 12)")
    demo.add_argument("--quick", action="store_true", help="small and fast: under two minutes")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--weights", help="pretrained VGG-16 weights: a file or IMAGENET1K_V1")
    demo.add_argument(
        "--no-localize",
        action="store_true",
        help="skip the end-to-end stage (localizer training, grading from located points)",
    )
    demo.add_argument("--overwrite", action="store_true", help=OVERWRITE_DIRECTORY)
    add_scheduler_option(demo)
    demo.set_defaults(func=_demo)

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
    train.set_defaults(func=_train)

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
    localize.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    localize.set_defaults(func=_localize)

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
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_scheduler_option(predict)
    predict.set_defaults(func=_predict)

    evaluate = sub.add_parser("evaluate", help="report and competition score on labelled data")
    evaluate.add_argument("--data", type=Path, required=True, help="competition directory")
    evaluate.add_argument("--model", type=Path, required=True, help="model file from train")
    evaluate.add_argument("--json", type=Path, help="also write the report as JSON")
    evaluate.add_argument("--device", default="cpu", help=MODEL_DEVICE_HELP)
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace an existing --json file"
    )
    add_scheduler_option(evaluate)
    evaluate.set_defaults(func=_evaluate)
    return parser


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
