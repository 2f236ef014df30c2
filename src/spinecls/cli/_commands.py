"""The work of each ``spinecls`` command, given its parsed arguments.

:mod:`spinecls.cli` builds the parser and runs these; each checks its inputs and its
destination before any long work (:func:`spinecls._utils.atomic.check_destination`), then calls
the library.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._utils.atomic import atomic_file, check_destination
from ..labels import CONDITIONS, SEVERITIES


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


def _input_paths(args: argparse.Namespace) -> list[Path | None]:
    localizer = getattr(args, "localizer", None)
    return [
        getattr(args, "data", None),
        getattr(args, "model", None),
        localizer if isinstance(localizer, Path) else None,
        getattr(args, "points", None),
        getattr(args, "submission", None),
    ]


def _check_output(args: argparse.Namespace, path: Path | None, *, directory: bool = False) -> None:
    """Refuse a bad destination before any long work (see ``check_destination``)."""
    if path is not None:
        check_destination(
            path,
            directory=directory,
            overwrite=args.overwrite,
            inputs=_input_paths(args),
            overwrite_hint="--overwrite",
        )


def _check_data(path: Path | None) -> None:
    if path is not None and not path.is_dir():
        raise NotADirectoryError(f"--data {path} is not a directory")


def _check_layout(data: Path, split: str) -> None:
    """Refuse a directory without ``split``'s descriptions and images, before any work."""
    from ..datasets.rsna import DESCRIPTIONS_CSV

    for needed, is_there in (
        (data / DESCRIPTIONS_CSV.format(split=split), Path.is_file),
        (data / f"{split}_images", Path.is_dir),
    ):
        if not is_there(needed):
            other = "train" if split == "test" else "test"
            hint = (
                f" (it has {other}_images: --split {other}?)"
                if (data / f"{other}_images").is_dir()
                else ""
            )
            raise FileNotFoundError(f"--data {data} has no {needed.name}{hint}")


def _check_training_options(args: argparse.Namespace) -> None:
    """The options of ``train`` that only the estimators would check, checked before any work."""
    import math

    from ..models import resolve_backbone

    counts = ["epochs", "batch_size", "size", "patch_size"]
    if args.localizer:
        counts.append("localizer_epochs")
    for name in counts:
        if getattr(args, name) < 1:
            option = "--" + name.replace("_", "-")
            raise ValueError(f"{option} must be at least 1, got {getattr(args, name)}")
    if args.slices < 1 or args.slices % 2 == 0:
        raise ValueError(f"--slices must be a positive odd number, got {args.slices}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a positive number, got {args.lr}")
    resolve_backbone(args.backbone)


def _check_device(device: str) -> None:
    from ..persistence import check_device

    check_device(device, "--device")


def synth_command(args: argparse.Namespace) -> int:
    """``spinecls synth``: write synthetic studies in the competition layout."""
    if args.truth is not None and args.split != "test":
        raise ValueError("--truth is only written with --split test")
    truth = None
    if args.split == "test":
        truth = args.truth or args.outdir.with_name(f"{args.outdir.name}_truth")
    for destination in (args.outdir, truth):
        _check_output(args, destination, directory=True)
    from ..datasets import load_rsna, make_synthetic_rsna

    root = make_synthetic_rsna(
        args.outdir,
        n_studies=args.studies,
        random_state=args.seed,
        n_jobs=args.n_jobs,
        overwrite=args.overwrite,
        split=args.split,
        truth_dir=truth,
        variation=args.variation,
    )
    if truth is None:
        print(f"wrote a synthetic RSNA dataset to {root}")
    else:
        print(f"wrote a synthetic RSNA test set to {root} and its labels to {truth}")
    print(_summary(load_rsna(truth or root)))
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """``spinecls demo``: run :func:`spinecls.demo.run_demo`."""
    _check_data(args.data)
    _check_output(args, args.out, directory=True)
    from ..demo import run_demo

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
    from ..persistence import load_pipeline

    if path.is_dir():
        raise IsADirectoryError(f"--model {path} is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return load_pipeline(path, data_dir=data, device=device, verbose=1)


def train_command(args: argparse.Namespace) -> int:
    """``spinecls train``: fit a patch-and-classify pipeline and save it."""
    _check_data(args.data)
    _check_output(args, args.out)
    _check_device(args.device)
    _check_training_options(args)
    from sklearn.pipeline import Pipeline

    from ..classifier import DualHeadClassifier
    from ..datasets import load_rsna
    from ..persistence import save_pipeline
    from ..preprocessing import LumbarPatchTransformer

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
    with atomic_file(args.out, overwrite=args.overwrite, inputs=_input_paths(args)) as tmp:
        save_pipeline(
            Pipeline([("patches", transformer), ("clf", model)]), tmp, localizer=localizer
        )
    carried = " and the level localizer" if localizer is not None else ""
    print(f"saved the {args.backbone} model{carried} to {args.out}")
    return 0


def _train_localizer(args: argparse.Namespace, coordinates):
    from ..datasets import load_series
    from ..localization import LevelLocalizer

    series = load_series(args.data, split="train")
    localizer = LevelLocalizer(
        max_epochs=args.localizer_epochs, device=args.device, random_state=args.seed, verbose=1
    )
    print(f"training the level localizer on {len(series)} series", flush=True)
    return localizer.fit(series, coordinates)


def _locates_levels(args: argparse.Namespace) -> bool:
    """Whether ``predict`` must find the levels itself: no coordinates file, or asked to."""
    return (
        args.localizer is not None
        or not (args.data / f"{args.split}_label_coordinates.csv").is_file()
    )


def predict_command(args: argparse.Namespace) -> int:
    """``spinecls predict``: grade studies with a saved model; a submission."""
    _check_data(args.data)
    _check_output(args, args.out)
    _check_output(args, args.report, directory=True)
    _check_device(args.device)
    located = _locates_levels(args)
    if located:
        _check_layout(args.data, args.split)
    from ..datasets import load_coordinates
    from ..metrics import to_submission

    pipeline = _load_pipeline(args.model, args.data, args.device)
    if args.tta is not None:
        pipeline[-1].set_params(tta=None if args.tta == "none" else args.tta)
    if located:
        from ..inference import predict_studies
        from ..persistence import load_localizer

        localizer = load_localizer(args.localizer or args.model, device=args.device)
        submission, points, sources = predict_studies(
            args.data,
            pipeline,
            localizer,
            split=args.split,
            strict=args.strict,
            verbose=1,
            return_points=True,
            return_sources=True,
        )
        studies = sources["study_id"].nunique()
        graded = sources.loc[sources["source"] == "model", "study_id"].nunique()
        fallen = int((sources["source"] == "prior").sum())
        summary = (
            f": {graded} of {studies} studies graded from their images, {fallen} of "
            f"{len(sources)} rows from the class prior"
        )
    else:
        points = load_coordinates(args.data, split=args.split)
        proba = pipeline.predict_proba(points)[1]
        submission = to_submission(points, proba, classes=pipeline.classes_[1])
        studies, summary = points["study_id"].nunique(), ""
    with atomic_file(args.out, overwrite=args.overwrite, inputs=_input_paths(args)) as tmp:
        submission.to_csv(tmp, index=False)
        if args.report is not None:
            # Inside the submission's block: a failed report leaves neither.
            _write_report(args, points, submission, pipeline, args.report)
    print(f"wrote {len(submission)} rows for {studies} studies to {args.out}{summary}")
    return 0


def _write_report(args: argparse.Namespace, points, submission, model, out: Path) -> None:
    from ..report import write_report

    write_report(
        args.data,
        points,
        submission,
        out,
        model=model,
        split=args.split,
        device=args.device,
        overwrite=args.overwrite,
    )
    print(f"wrote the report to {out}: open {out / 'index.html'} in a browser")


def report_command(args: argparse.Namespace) -> int:
    """``spinecls report``: the HTML report of located points and grades."""
    _check_data(args.data)
    _check_output(args, args.out, directory=True)
    if args.model is not None:
        _check_device(args.device)
    for name in ("points", "submission", "model"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"--{name} {path}: no such file")
    _write_report(args, args.points, args.submission, args.model, args.out)
    return 0


def localize_command(args: argparse.Namespace) -> int:
    """``spinecls localize``: train a level localizer, or locate the points of studies."""
    _check_data(args.data)
    _check_output(args, args.out)
    _check_device(args.device)
    _check_layout(args.data, args.split)
    from ..datasets import load_series
    from ..dicom import fail_on_unreadable
    from ..inference import locate_studies
    from ..localization import POINT_COLUMNS
    from ..persistence import load_localizer

    if args.model.is_dir():
        raise IsADirectoryError(f"--model {args.model} is a directory, not a model file")
    localizer = load_localizer(args.model, device=args.device)
    with fail_on_unreadable(args.strict):
        series = load_series(args.data, split=args.split)
        points, _ = locate_studies(localizer, series)
    flags = [c for c in points if c.startswith("qc_")]
    with atomic_file(args.out, overwrite=args.overwrite, inputs=_input_paths(args)) as tmp:
        columns = [*POINT_COLUMNS, "confidence", *flags]
        points.reindex(columns=columns).to_csv(tmp, index=False)
    located = points["study_id"].nunique() if len(points) else 0
    flagged = int(points[flags].any(axis=1).sum()) if flags else 0
    print(
        f"wrote {len(points)} points for {located} of {series['study_id'].nunique()} studies "
        f"to {args.out} ({flagged} flagged for review)"
    )
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``spinecls evaluate``: score a saved model on labelled studies."""
    _check_data(args.data)
    _check_output(args, args.json)
    _check_device(args.device)
    from ..datasets import load_rsna
    from ..evaluation import evaluate

    pipeline = _load_pipeline(args.model, args.data, args.device)
    evaluation = evaluate(pipeline, load_rsna(args.data))
    print(evaluation.report)
    print(f"\ncompetition score (lower is better): {evaluation.score:.4f}")
    if args.json is not None:
        with atomic_file(args.json, overwrite=args.overwrite, inputs=_input_paths(args)) as tmp:
            tmp.write_text(json.dumps(evaluation.to_dict(), indent=2))
    return 0
