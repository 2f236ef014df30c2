"""Command-line interface: ``spinecls synth``, ``spinecls demo``.

Every command is a thin wrapper over a library function; errors in paths and
arguments print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .datasets import load_rsna, make_synthetic_rsna
from .labels import CONDITIONS, SEVERITIES


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


def _synth(args: argparse.Namespace) -> int:
    root = make_synthetic_rsna(
        args.outdir,
        n_studies=args.studies,
        random_state=args.seed,
        n_jobs=args.n_jobs,
        overwrite=args.overwrite,
    )
    print(f"wrote a synthetic RSNA dataset to {root}")
    print(_summary(load_rsna(root)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.data is not None and not args.data.is_dir():
        raise NotADirectoryError(f"--data {args.data} is not a directory")
    run_demo(
        args.data,
        args.out,
        studies=args.studies,
        quick=args.quick,
        random_state=args.seed,
        weights=args.weights,
    )
    return 0


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
    synth.add_argument("outdir", help="output directory (must not exist or be empty)")
    synth.add_argument("--studies", type=int, default=20, help="number of studies (default 20)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--n-jobs", type=int, default=None, help="parallel studies (joblib)")
    synth.add_argument("--overwrite", action="store_true", help="replace a non-empty outdir")
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
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on a bad argument, path or input file.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as exc:
        print(f"spinecls {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
