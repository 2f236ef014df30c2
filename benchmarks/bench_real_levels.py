"""LevelLocalizer on real sagittal lumbar MRI: are the five levels named right?

Run: ``python benchmarks/bench_real_levels.py --source DIR [--folds 5] [--seed 0]``.

``DIR`` is a snapshot of github:JonathanRamos/fastcleverseg: a checkout, or the git
directory that the project's ``fetch`` tool brings (read with ``git show``). Its
``ImageDatasets/VBs`` sets are used: VB1 (Chu et al. 2015, T1/T2/TIRM from several
hospitals), VB2 (Zukic et al. 2014, T2 TSE) and VB3 (Burian et al. 2019, the
MyoSegmenTUM water-fat images), each a 1 mm isotropic MATLAB volume ``I`` with a label
mask ``GT`` of the vertebral bodies. The ``IVD`` set is reserved for an independent
check: this script never reads it. Files that are byte-identical copies are dropped.

The volumes belong to their authors: they are converted into a temporary folder
(``--workdir`` keeps it for another run) and never committed. Each becomes one study in
the competition layout (:func:`spinecls.datasets.write_volumes`): a sagittal series of
4 mm slices (slabs averaged, as a thick clinical slice), described ``Sagittal T2/STIR``,
with one spinal canal point per level at the disc's centre from the mask
(:func:`spinecls.datasets.levels_from_mask`: midway between the facing endplates of
two adjacent bodies; L5/S1 below L5 by half a disc where S1 is not labelled).

The labels number the bodies arbitrarily (checked on pictures): bodies are named by
their height, counting up from the lowest, which is S1 in VB1 (its volumes reach the
sacrum, whose first segment is labelled) and L5 in VB2 (T11-L5) and VB3 (L1-L5).

Cross-validation is grouped by subject (VB1's sequences of one session stay together:
AKa*, AKs*, DzZ_*; its files are numbered in the alphabetical order of the exams) and
stratified by set. Printed per set and overall:

- within 5 mm: predicted point within 5 mm (patient space) of its true point;
- levels named right: the point is nearer its own level's true point than any other
  level's, counting a virtual T12/L1 and S1/S2 one step beyond the labelled chain;
- studies with all five named right;
- how often the level-shift flag (``qc_level_shift``) fires on studies with a misnamed
  level and on studies named right, when the localizer gives it;
- training time per fold and inference time per study.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedGroupKFold

import spinecls
from spinecls.datasets import SpineVolume, levels_from_mask, write_volumes
from spinecls.datasets.baselines import template_baseline
from spinecls.geometry import SeriesGeometry
from spinecls.labels import LEVELS
from spinecls.localization import LevelLocalizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _saved import check_record, model_record, write_record  # noqa: E402

SETS = ("VB1", "VB2", "VB3")
FOLDER = "ImageDatasets/VBs/{set}/Isotropic/Matlab"
# the lowest labelled body of each set (checked on pictures of every volume)
LOWEST = {"VB1": "S1", "VB2": "L5", "VB3": "L5"}
# VB1's files, numbered in the alphabetical order of its exams (the volume sizes match
# the exam table of its readme): the sequences of one session share a subject
VB1_SUBJECT = {1: "AKa", 2: "AKa", 3: "AKa", 4: "AKs", 5: "AKs", 6: "AKs", 7: "AKs", 8: "AKs"}
VB1_SUBJECT |= {10: "DzZ", 11: "DzZ"}
CANAL = "Spinal Canal Stenosis"
DESCRIPTION = "Sagittal T2/STIR"
SLICE_MM = 4.0
NAMES = ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
TARGETS = {"within 5 mm": 0.90, "levels named right": 0.95, "studies all five": 0.90}


class Source:
    """The snapshot's files, from a checkout or a bare git directory."""

    def __init__(self, path: Path):
        self.path = path
        self.git = not (path / "ImageDatasets").is_dir()
        if self.git and not (path / "HEAD").is_file():
            raise SystemExit(f"{path}: neither a checkout with ImageDatasets/ nor a git directory")

    def listing(self, folder: str) -> list[str]:
        if not self.git:
            return sorted(p.name for p in (self.path / folder).glob("*.mat"))
        out = subprocess.run(
            ["git", "--git-dir", str(self.path), "ls-tree", "--name-only", f"HEAD:{folder}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return sorted(name for name in out.split() if name.endswith(".mat"))

    def read(self, path: str) -> bytes | None:
        if not self.git:
            return (self.path / path).read_bytes()
        done = subprocess.run(
            ["git", "--git-dir", str(self.path), "show", f"HEAD:{path}"], capture_output=True
        )
        return done.stdout if done.returncode == 0 else None  # large files are absent


def read_volumes(source: Source) -> list[dict]:
    """Every readable, unique volume of the VBs sets with its subject and body names."""
    from scipy.io import loadmat

    seen, out = set(), []
    for name in SETS:
        folder = FOLDER.format(set=name)
        for file in source.listing(folder):
            data = source.read(f"{folder}/{file}")
            if not data:
                continue
            digest = hashlib.sha1(data).hexdigest()
            if digest in seen:
                print(f"  {name}/{file}: a copy of an earlier file, dropped")
                continue
            seen.add(digest)
            mat = loadmat(io.BytesIO(data))
            image, mask = mat["I"], mat["GT"]
            depth = min(image.shape[2], mask.shape[2])
            number = int(Path(file).stem)
            subject = VB1_SUBJECT.get(number, str(number)) if name == "VB1" else str(number)
            out.append(
                {
                    "set": name,
                    "file": file,
                    "subject": f"{name}:{subject}",
                    "image": image[:, :, :depth],
                    "mask": mask[:, :, :depth],
                }
            )
    return out


def body_names(mask: np.ndarray, lowest: str) -> dict[int, str]:
    """Label value -> vertebra, counting up from the lowest body by height (axis 0 runs
    from head to foot)."""
    values = [v for v in np.unique(mask) if v]
    height = {v: np.argwhere(mask == v)[:, 0].mean() for v in values}
    ordered = sorted(values, key=lambda v: -height[v])  # lowest first
    start = NAMES.index(lowest)
    return {int(v): NAMES[start - n] for n, v in enumerate(ordered) if start - n >= 0}


def convert(volumes: list[dict], root: Path) -> pd.DataFrame:
    """Write the volumes as studies under ``root``; their table (study, set, subject)."""
    specs, table = [], []
    for n, v in enumerate(volumes):
        study = 1000 * (SETS.index(v["set"]) + 1) + n
        points = levels_from_mask(v["mask"], body_names(v["mask"], LOWEST[v["set"]]))
        points.insert(0, "condition", CANAL)
        specs.append(SpineVolume(v["image"], (1.0, 1.0, 1.0), study, 10 * study + 1, points))
        table.append(
            {"study_id": study, "set": v["set"], "file": v["file"], "subject": v["subject"]}
        )
    write_volumes(root, specs, slice_spacing=SLICE_MM, overwrite=True)
    return pd.DataFrame(table)


def patient_points(frame: pd.DataFrame, root: Path, geometries: dict) -> np.ndarray:
    out = []
    for r in frame.itertuples():
        if r.series_id not in geometries:
            folder = root / "train_images" / str(r.study_id) / str(r.series_id)
            geometries[r.series_id] = SeriesGeometry.from_directory(folder)
        out.append(geometries[r.series_id].pixel_to_patient(r.instance_number, r.x, r.y))
    return np.array(out, dtype=float).reshape(-1, 3)


def score(predicted: pd.DataFrame, truth: pd.DataFrame, root: Path, geometries) -> pd.DataFrame:
    """Per study and level: distance (mm: in 3-D, and in the sagittal plane, leaving out
    the left-right offset), the slice, named right, the flag."""
    truth = truth.assign(**dict(zip("XYZ", patient_points(truth, root, geometries).T)))
    predicted = predicted.loc[predicted["condition"] == CANAL]
    predicted = predicted.assign(**dict(zip("XYZ", patient_points(predicted, root, geometries).T)))
    rows = []
    for study, mine in truth.groupby("study_id"):
        at = {r.level: np.array([r.X, r.Y, r.Z]) for r in mine.itertuples()}
        chain = [at[lv] for lv in LEVELS if lv in at]
        if len(chain) == len(LEVELS):  # virtual neighbours one step beyond the chain
            chain = [2 * chain[0] - chain[1], *chain, 2 * chain[-1] - chain[-2]]
        names = ["T12/L1", *LEVELS, "S1/S2"] if len(chain) == len(LEVELS) + 2 else list(at)
        for r in predicted.loc[predicted["study_id"] == study].itertuples():
            if r.level not in at:
                continue
            p = np.array([r.X, r.Y, r.Z])
            distances = [float(np.linalg.norm(p - q)) for q in chain]
            true = mine.loc[mine["level"] == r.level].iloc[0]
            rows.append(
                {
                    "study_id": study,
                    "level": r.level,
                    "mm": float(np.linalg.norm(p - at[r.level])),
                    "plane mm": float(np.linalg.norm((p - at[r.level])[1:])),
                    "slice": r.instance_number == true["instance_number"],
                    "confidence": float(getattr(r, "confidence", np.nan)),
                    "level confidence": float(getattr(r, "level_confidence", np.nan)),
                    "named right": names[int(np.argmin(distances))] == r.level,
                    "flag": bool(getattr(r, "qc_level_shift", False)),
                    # sagittal-plane coordinates (patient mm: front-back, up-down) for --figure
                    "y": r.Y,
                    "z": r.Z,
                    "true y": true["Y"],
                    "true z": true["Z"],
                }
            )
    return pd.DataFrame(rows)


def plot_failures(scores: pd.DataFrame, table: pd.DataFrame, path: Path, columns: int = 6):
    """A PNG of the studies with a misnamed level, drawn without the scans' pixels (the
    images belong to their authors): the true disc centres (grey, named) and the predicted
    points (red where misnamed) in the sagittal plane, titled with the set, the study's
    lowest level confidence and whether ``qc_level_shift`` fired; the last panel shows the
    lowest level confidence of every study, named right or not, against the flag's threshold."""
    from spinecls.localization._localize import LEVEL_SHIFT_BELOW
    from spinecls.plotting import new_figure, save_figure

    sets = table.set_index("study_id")["set"]
    per_study = scores.groupby("study_id").agg(
        right=("named right", "all"), flagged=("flag", "any"), sure=("level confidence", "min")
    )
    wrong = per_study.index[~per_study["right"]]
    panels = len(wrong) + 1
    rows = -(-panels // columns)
    figure = new_figure(figsize=(2.4 * columns, 3.2 * rows), layout="constrained")
    for i, study in enumerate(wrong):
        ax = figure.add_subplot(rows, columns, i + 1)
        mine = scores[scores["study_id"] == study]
        ax.plot(mine["true y"], mine["true z"], "o-", color="0.6", ms=5, lw=1)
        for level, y, z in zip(mine["level"], mine["true y"], mine["true z"]):
            ax.annotate(level, (y, z), fontsize=6, color="0.4", xytext=(4, -2),
                        textcoords="offset points")  # fmt: skip
        colours = np.where(mine["named right"], "tab:blue", "tab:red")
        ax.scatter(mine["y"], mine["z"], c=colours, marker="x", s=30, zorder=3)
        info = per_study.loc[study]
        ax.set_title(
            f"{sets.get(study, '?')} {study}\nconfidence {info['sure']:.2f}, "
            f"{'flagged' if info['flagged'] else 'not flagged'}",
            fontsize=7,
        )
        middle = float(np.nanmedian(mine["true y"]))
        ax.set_xlim(middle - 60, middle + 60)  # the same mm to the inch across and down
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=6)
    ax = figure.add_subplot(rows, columns, panels)
    for right, colour, name in (
        (True, "tab:blue", "all named right"),
        (False, "tab:red", "misnamed"),
    ):
        values = per_study.loc[per_study["right"] == right, "sure"]
        ax.scatter(values, np.random.default_rng(0).uniform(-0.3, 0.3, len(values)) + right,
                   s=8, c=colour, label=name)  # fmt: skip
    ax.axvline(LEVEL_SHIFT_BELOW, color="k", lw=0.8, ls="--")
    ax.set_yticks([0, 1], ["misnamed", "right"], fontsize=6)
    ax.set_xlabel("lowest level confidence", fontsize=6)
    ax.tick_params(labelsize=6)
    figure.suptitle(
        "Misnamed real studies: true disc centres (grey) and predicted points (x; red: "
        "misnamed), sagittal plane, mm",
        fontsize=8,
    )
    return save_figure(figure, path)


def _share(flags: pd.Series) -> float:
    return float(flags.mean()) if len(flags) else np.nan


def summarise(scores: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """One row per set and overall."""
    per_study = scores.groupby("study_id").agg(
        all_right=("named right", "all"), flagged=("flag", "any")
    )
    scores = scores.merge(table[["study_id", "set"]], on="study_id")
    per_study = per_study.join(table.set_index("study_id")["set"])
    rows = []
    for name, part, studies in [
        *((s, scores[scores["set"] == s], per_study[per_study["set"] == s]) for s in SETS),
        ("all", scores, per_study),
    ]:
        wrong = ~studies["all_right"]
        rows.append(
            {
                "set": name,
                "studies": len(studies),
                "within 5 mm": (part["plane mm"] <= 5).mean(),
                "3-D within 5 mm": (part["mm"] <= 5).mean(),
                "slice exact": part["slice"].mean(),
                "levels named right": part["named right"].mean(),
                "studies all five": studies["all_right"].mean(),
                "median mm": part["plane mm"].median(),
                "flag on misnamed": _share(studies.loc[wrong, "flagged"]),
                "flag on right": _share(studies.loc[~wrong, "flagged"]),
            }
        )
    return pd.DataFrame(rows)


def template(train_coords, test_series, root, geometries) -> pd.DataFrame:
    for r in pd.concat([train_coords, test_series]).itertuples():
        if r.series_id not in geometries:
            folder = root / "train_images" / str(r.study_id) / str(r.series_id)
            geometries[r.series_id] = SeriesGeometry.from_directory(folder)
    return template_baseline(train_coords, geometries, test_series, geometries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, help="keep the converted studies here")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="the folds' and networks' seed")
    parser.add_argument("--params", default="{}", help="LevelLocalizer parameters as JSON")
    parser.add_argument("--only-fold", type=int, help="run one fold (development)")
    parser.add_argument("--no-template", action="store_true")
    parser.add_argument("--save", type=Path, help="write the per-point scores (CSV) here")
    parser.add_argument(
        "--figure", type=Path, help="draw the misnamed studies (PNG, no scan pixels) here"
    )
    parser.add_argument(
        "--models", type=Path, help="save each fold's localizer here, or load it if saved"
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    params = json.loads(args.params)

    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        root = work / "layout"
        table_csv = work / "studies.csv"
        if not table_csv.is_file():
            print("converting", args.source)
            volumes = read_volumes(Source(args.source))
            table = convert(volumes, root)
            table.to_csv(table_csv, index=False)
        table = pd.read_csv(table_csv)
        print(f"{len(table)} studies: " + ", ".join(f"{s} {sum(table['set'] == s)}" for s in SETS))
        series = spinecls.load_series(root)
        coords = spinecls.datasets.load_coordinates(root, split="train")
        splitter = StratifiedGroupKFold(args.folds, shuffle=True, random_state=args.seed)
        folds = list(splitter.split(table, table["set"], table["subject"]))
        geometries: dict = {}
        results = {"LevelLocalizer": [], "template": []}
        train_s, predict_s, n_predicted = [], 0.0, 0
        for k, (train, test) in enumerate(folds):
            if args.only_fold is not None and k != args.only_fold:
                continue
            train_ids = set(table["study_id"].iloc[train])
            test_ids = set(table["study_id"].iloc[test])
            fit_series = series[series["study_id"].isin(train_ids)]
            fit_coords = coords[coords["study_id"].isin(train_ids)]
            test_series = series[series["study_id"].isin(test_ids)]
            truth = coords[coords["study_id"].isin(test_ids)]
            saved = args.models / f"fold{k}.pt" if args.models else None
            # a fold's record: what trained it (a saved one is used only for the same)
            made = {
                "random_state": args.seed,
                "params": params,
                "folds": args.folds,
                "train studies": sorted(int(i) for i in train_ids),
            }
            if saved is not None:
                check_record(model_record(saved), made, "model", saved)
            start = time.perf_counter()
            if saved is not None and saved.is_file():
                loc = LevelLocalizer.load(saved)
            else:
                loc = LevelLocalizer(**{"random_state": args.seed, **params})
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    loc.fit(fit_series, fit_coords)
                if saved is not None:
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    loc.save(saved)
                    write_record(model_record(saved), made)
            train_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            predicted = loc.predict(test_series)
            predict_s += time.perf_counter() - start
            n_predicted += len(test_ids)
            results["LevelLocalizer"].append(score(predicted, truth, root, geometries))
            if not args.no_template:
                guess = template(fit_coords, test_series, root, geometries)
                results["template"].append(score(guess, truth, root, geometries))
            fold = summarise(results["LevelLocalizer"][-1], table).iloc[-1]
            print(
                f"fold {k}: {len(train_ids)} train / {len(test_ids)} test, trained in "
                f"{train_s[-1]:.0f} s; named right {fold['levels named right']:.1%}, all five "
                f"{fold['studies all five']:.1%}, within 5 mm {fold['within 5 mm']:.1%}",
                flush=True,
            )
        pd.set_option("display.width", 160)
        for name, parts in results.items():
            if not parts:
                continue
            scores = pd.concat(parts, ignore_index=True)
            if args.save and name == "LevelLocalizer":
                scores.to_csv(args.save, index=False)
            if args.figure and name == "LevelLocalizer":
                plot_failures(scores, table, args.figure)
            print(f"\n{name} ({params if name == 'LevelLocalizer' else 'baseline'})")
            print(summarise(scores, table).to_string(index=False, float_format="{:.3f}".format))
        overall = summarise(pd.concat(results["LevelLocalizer"]), table).iloc[-1]
        print(
            "\ntargets: "
            + ", ".join(
                f"{k} {overall[k]:.1%} (target {v:.0%}: {'met' if overall[k] >= v else 'NOT met'})"
                for k, v in TARGETS.items()
            )
        )
        print(
            f"training {np.mean(train_s):.0f} s per fold ({len(fit_series)} studies), inference "
            f"{predict_s / max(n_predicted, 1):.2f} s per study; torch threads "
            f"{torch.get_num_threads()}"
        )


if __name__ == "__main__":
    main()
