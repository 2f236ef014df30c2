"""make_synthetic_rsna: real DICOMs, geometry, labels a reader would pick, the real data's
rates, both layouts, balance, signal, determinism, baselines that must fail, and the
clinical variation's quirks (measured on pixels and headers)."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import MRImageStorage

import spinecls
from spinecls.datasets import (
    _acquisition,
    _anatomy,
    _layout,
    _phantom,
    _variation,
    baselines,
    synthetic,
    synthetic_quirks,
)
from spinecls.datasets._scanner import centred_planes
from spinecls.geometry import SeriesGeometry
from spinecls.labels import CONDITIONS, LEVELS, SEVERITIES, WIDE_COLUMNS

SPINAL, AXIAL = CONDITIONS[0], "Axial T2"


def _pixels(path):
    ds = pydicom.dcmread(path)
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    return ds, ds.pixel_array.astype(np.float64) * slope + intercept


def _patient(ds, x, y) -> np.ndarray:
    """Patient position (mm) of pixel (x = column, y = row), from the header alone."""
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    position = np.array(ds.ImagePositionPatient, dtype=float)
    return position + x * col_spacing * iop[:3] + y * row_spacing * iop[3:]


def _designs(random_state, n_studies, image_size, variation="plain", only=None):
    """The studies' metadata, drawn without pixels exactly as make_synthetic_rsna draws them
    (``only``: the indices of the studies to draw)."""
    seeds = np.random.SeedSequence(random_state).spawn(n_studies + 1)[1:]
    chosen = range(n_studies) if only is None else only
    return [
        _acquisition.design(np.random.default_rng(seeds[i]), image_size, variation) for i in chosen
    ]


def test_layout_and_csv_columns(rsna_root):
    assert sorted(p.name for p in rsna_root.iterdir()) == [
        ".spinecls-output.json",
        "train.csv",
        "train_images",
        "train_label_coordinates.csv",
        "train_series_descriptions.csv",
    ]
    labels = pd.read_csv(rsna_root / "train.csv")
    assert list(labels.columns) == ["study_id", *WIDE_COLUMNS]
    assert set(labels.drop(columns="study_id").stack()) <= {"Normal/Mild", "Moderate", "Severe"}
    descriptions = pd.read_csv(rsna_root / "train_series_descriptions.csv")
    assert set(descriptions["study_id"]) == set(labels["study_id"])
    for study, group in descriptions.groupby("study_id"):
        kinds = group["series_description"].value_counts()
        assert kinds.get("Sagittal T1", 0) <= 2 and kinds.get("Sagittal T2/STIR", 0) <= 1
        assert 1 <= kinds[AXIAL] <= 4
        for series, kind in group[["series_id", "series_description"]].to_numpy():
            files = list((rsna_root / "train_images" / str(study) / str(series)).glob("*.dcm"))
            assert len(files) >= (15 if kind.startswith("Sagittal") else 3)


def test_metadata_fast_path_is_what_is_written(rsna_root):
    coords = pd.read_csv(rsna_root / "train_label_coordinates.csv")
    studies = pd.read_csv(rsna_root / "train.csv")["study_id"]
    for study_id, design in zip(studies, _designs(0, 6, (96, 128))):
        rows = coords[coords.study_id == study_id]
        expected = [
            (
                design.series[p.series].series_id,
                design.series[p.series].instances[p.slice],
                p.condition,
                LEVELS[p.level],
            )
            for p in design.points
        ]
        assert (
            list(map(tuple, rows[["series_id", "instance_number", "condition", "level"]].values))
            == expected
        )
        np.testing.assert_allclose(rows[["x", "y"]], [(p.col, p.row) for p in design.points])


def test_dicom_files_are_valid_mr_images(rsna_root, rsna_frame):
    orientations = {}
    descriptions = pd.read_csv(rsna_root / "train_series_descriptions.csv")
    for study, series_id, kind in descriptions.to_numpy():
        files = sorted((rsna_root / "train_images" / str(study) / str(series_id)).glob("*.dcm"))
        numbers, iops = [], set()
        for path in files:
            ds = pydicom.dcmread(path)
            assert ds.file_meta.MediaStorageSOPClassUID == MRImageStorage
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert ds.SOPClassUID == MRImageStorage
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.Modality == "MR"
            assert ds.PhotometricInterpretation == "MONOCHROME2"
            assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (16, 16, 0)
            assert ds.pixel_array.dtype == np.uint16
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
            assert int(path.stem) == ds.InstanceNumber
            assert ds.SeriesDescription == kind
            assert ds.PatientID == str(study)
            assert len(ds.PixelSpacing) == 2 and 0 < ds.SliceThickness <= ds.SpacingBetweenSlices
            numbers.append(ds.InstanceNumber)
            iop = np.array(ds.ImageOrientationPatient, dtype=float)
            np.testing.assert_allclose(
                [iop[:3] @ iop[:3], iop[3:] @ iop[3:], iop[:3] @ iop[3:]], [1, 1, 0], atol=1e-5
            )
            normal = np.cross(iop[:3], iop[3:])
            if kind.startswith("Sagittal"):
                np.testing.assert_allclose(normal, [-1, 0, 0], atol=1e-6)
            else:
                assert normal[2] > 0.9  # axial, often oblique
            iops.add(tuple(iop.round(4)))
        orientations[series_id] = (kind, iops)
        assert min(numbers) > 1
        assert len({pydicom.dcmread(p).SeriesInstanceUID for p in files}) == 1
    axial = [iops for kind, iops in orientations.values() if kind == AXIAL]
    assert any(len(iops) > 1 for iops in axial)  # per-level blocks: one orientation each
    assert any((1.0, 0.0, 0.0, 0.0, 1.0, 0.0) not in iops for iops in axial)  # oblique


def test_labelled_points_land_on_the_intended_anatomy(rsna_frame):
    """Patient positions from each slice's own header agree across series and with the
    drawn anatomy: canal points cranial to caudal one disc step apart, foramina and
    recesses on their side of the canal, axial points at the disc's height."""
    designs = dict(zip(rsna_frame["study_id"].unique(), _designs(0, 6, (96, 128))))
    for study_id, study in rsna_frame.groupby("study_id", sort=False):
        design = designs[study_id]
        where = {}
        for row in study.itertuples():
            ds = pydicom.dcmread(row.image_path)
            assert 0 <= row.x < ds.Columns and 0 <= row.y < ds.Rows
            assert row.series_description == spinecls.labels.CONDITION_SERIES[row.condition]
            where[row.condition, LEVELS.index(row.level)] = _patient(ds, row.x, row.y)
        canal = np.array([where[SPINAL, k] for k in range(5)])
        drawn = design.pose.to_patient([design.spine.canal_point(k) for k in range(5)])
        # Click jitter (0.8 mm a side) plus up to 0.3 of a slice gap off the slice plane.
        assert np.linalg.norm(canal - drawn, axis=1).max() < 4.5
        steps = np.linalg.norm(np.diff(canal, axis=0), axis=1)
        np.testing.assert_allclose(steps, np.linalg.norm(np.diff(drawn, axis=0), axis=1), atol=4)
        assert (np.diff(canal[:, 2]) < -25).all()  # superior (+z) to inferior
        for k in range(5):
            x = canal[k, 0]
            assert 11 < where["Left Neural Foraminal Narrowing", k][0] - x < 25
            assert 11 < x - where["Right Neural Foraminal Narrowing", k][0] < 25
            if ("Left Subarticular Stenosis", k) not in where:
                continue  # the axial series do not cover this level
            left, right = (
                where["Left Subarticular Stenosis", k],
                where["Right Subarticular Stenosis", k],
            )
            assert 13 < left[0] - right[0] < 24 and left[0] > x > right[0]
            assert abs((left[2] + right[2]) / 2 - canal[k, 2]) < 6


def test_the_spinal_point_carries_to_the_labelled_axial_slice(rsna_root, rsna_frame):
    """Projected through the headers' geometry, each level's spinal canal point lands on
    the axial slice labelled for that level (the disc's centre lies within AXIAL_CLEAR of a
    gap of it, the click within about a millimetre of the centre)."""
    hits = []
    for study_id, study in rsna_frame.groupby("study_id"):
        for row in study[study.condition == SPINAL].itertuples():
            point = _patient(pydicom.dcmread(row.image_path), row.x, row.y)
            for side in study[
                (study.level == row.level) & study.condition.str.contains("Subarticular")
            ].itertuples():
                folder = rsna_root / "train_images" / str(study_id) / str(side.series_id)
                distance = {}
                for path in folder.glob("*.dcm"):
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                    iop = np.array(ds.ImageOrientationPatient, dtype=float)
                    normal = np.cross(iop[:3], iop[3:])
                    offset = point - np.array(ds.ImagePositionPatient, dtype=float)
                    distance[ds.InstanceNumber] = abs(offset @ normal)
                hits.append(min(distance, key=distance.get) == side.instance_number)
    assert len(hits) > 40 and np.mean(hits) > 0.9


def test_labelled_slice_is_clearly_where_the_structure_is_widest(monkeypatch):
    """The canal (deepest on the midline) and a foramen (widest through its centre) are
    widest on the labelled slice by a margin: it lies within CLEAR of a slice gap of the
    structure's centre, every other slice at least 1 - CLEAR away. And the thin cue that
    tells a reader so is on the labelled slice only: the cauda equina in the middle of the
    canal, the exiting root in the foramen (noise-free renders of the nerve tissue alone)."""
    nerve = {t: float(t == "nerve") for t in _phantom.CONTRASTS["T1"]}
    monkeypatch.setitem(_phantom.CONTRASTS, "nerve only", nerve)
    checked = 0
    for design in _designs(11, 4, (160, 192)):
        spine, pose = design.spine, design.pose
        for p in design.points:
            series = design.series[p.series]
            if series.description == AXIAL:
                continue
            disc = _anatomy.EXTRA_DISCS + p.level
            r = spine.narrowing[p.condition][p.level]
            if p.condition == SPINAL:
                centre, half_width = spine.canal_point(p.level), spine.canal_half_width
                bulge = 0.9 * r * spine.canal_depth  # the sac's centre moves back with it
                cue = spine._at_disc(disc, 0.0, (spine.canal_depth + 0.75 * bulge) / 2, 0.0)
            else:
                side = p.condition.split()[0]
                centre, half_width = spine.foramen_point(p.level, side), 3.2
                lateral = spine.foramen_x[int(side != "Left"), disc] * (1 if side == "Left" else -1)
                rise = _anatomy.FORAMEN_RISE + 3.0 * (1 - r)
                cue = spine._at_disc(disc, lateral, _anatomy.FORAMEN_DEPTH - 0.5, rise)
            centre, cue = pose.to_patient(centre), pose.to_patient(cue)
            distance = np.array([abs(plane.distance(centre)) for plane in series.planes])
            # The canal's depth and the foramen's width fall linearly or faster off-centre.
            width = 1 - distance / half_width
            others = np.delete(width, p.slice)
            margin = (1 - 2 * _acquisition.CLEAR) * series.gap / half_width
            assert width[p.slice] - others.max() >= margin
            if p.condition == SPINAL and r > 0.62:
                continue  # a severe stenosis crowds the roots out of sight
            for i in (p.slice - 1, p.slice, p.slice + 1):
                if 0 <= i < len(series.planes):
                    plane = series.planes[i]
                    x, y = plane.to_pixel(cue)
                    seen = _phantom.render(spine, pose, plane, "nerve only")[round(y), round(x)]
                    assert (seen > 0.5) if i == p.slice else (seen < 0.2), (p, i, seen)
            checked += 1
    assert checked >= 55


def test_rates_follow_the_real_data():
    designs = _designs(5, 200, (64, 64))
    axial = Counter(sum(s.description == AXIAL for s in d.series) for d in designs)
    assert axial[1] / 200 == pytest.approx(1 - 335 / 1975, abs=0.06)  # 2-4 axial series
    partial, apart, levels, spread = 0, 0, 0, Counter()
    for d in designs:
        sides = {}
        for p in d.points:
            if "Subarticular" in p.condition:
                sides.setdefault(p.level, []).append(p.series)
        partial += len(sides) < 5
        levels += len(sides)
        apart += sum(a != b for a, b in sides.values())
        for condition in CONDITIONS[:3]:
            slices = {p.slice for p in d.points if p.condition == condition}
            if slices:
                spread[len(slices)] += 1
    assert partial / 200 == pytest.approx(169 / 1974, abs=0.05)
    assert apart / levels == pytest.approx(836 / 9614, abs=0.035)
    total = sum(spread.values())
    real = {1: 2358, 2: 2410, 3: 974, 4: 160, 5: 16}
    for n, count in real.items():
        assert spread[n] / total == pytest.approx(count / 5918, abs=0.07), (n, spread)
    assert set(spread) <= set(real)


def test_a_study_may_lack_a_sagittal_series(tmp_path, monkeypatch):
    monkeypatch.setitem(_layout.RATES, "no_t1", 1.0)
    root = spinecls.make_synthetic_rsna(tmp_path / "d", n_studies=1, image_size=(48, 48))
    descriptions = pd.read_csv(root / "train_series_descriptions.csv")
    assert "Sagittal T1" not in set(descriptions["series_description"])
    frame = spinecls.load_rsna(root)
    assert not frame["condition"].str.contains("Foraminal").any()
    assert len(frame) == 15  # the label stays in train.csv; no coordinates to go with it
    assert pd.read_csv(root / "train.csv").notna().all().all()


def design_baselines(train, test) -> dict[str, float]:
    """What a localizer must beat, from metadata alone (no pixels): the share of

    - sagittal points within 5 px of the training mean of their normalised position
      (per condition and level), and of sagittal points on the series' middle slice or
      on the slice whose ImagePositionPatient x is nearest 0;
    - subarticular points on the axial slice whose centre's height is nearest that of
      the mean-template spinal canal point of the level, placed on the middle Sagittal
      T2/STIR slice.
    """
    rows = []
    for i, d in enumerate(train + test):
        for p in d.points:
            series = d.series[p.series]
            shape = series.planes[0].shape
            rows.append(
                (i < len(train), i, p.condition, p.level, p.col / shape[1], p.row / shape[0])
            )
    frame = pd.DataFrame(rows, columns=["train", "study", "condition", "level", "x", "y"])
    template = frame[frame["train"]].groupby(["condition", "level"])[["x", "y"]].mean()
    close, middle, nearest_zero, axial = [], [], [], []
    for d in test:
        t2 = [s for s in d.series if s.description == "Sagittal T2/STIR"]
        for p in d.points:
            series = d.series[p.series]
            rows, cols = series.planes[0].shape
            if series.description == AXIAL:
                if not t2:
                    continue
                mid = t2[0].planes[(len(t2[0].planes) - 1) // 2]
                x, y = template.loc[(SPINAL, p.level)]
                x, y = x * mid.shape[1], y * mid.shape[0]
                z = (
                    mid.origin + x * mid.spacing[1] * mid.row_dir + y * mid.spacing[0] * mid.col_dir
                )[2]
                heights = [
                    (
                        q.origin
                        + (q.shape[1] - 1) / 2 * q.spacing[1] * q.row_dir
                        + (q.shape[0] - 1) / 2 * q.spacing[0] * q.col_dir
                    )[2]
                    for q in series.planes
                ]
                axial.append(p.slice == int(np.argmin(np.abs(np.array(heights) - z))))
                continue
            mx, my = template.loc[(p.condition, p.level)]
            close.append(np.hypot(mx * cols - p.col, my * rows - p.row) <= 5)
            middle.append(p.slice == (len(series.planes) - 1) // 2)
            xs = np.array([plane.origin[0] for plane in series.planes])
            nearest_zero.append(p.slice == int(np.argmin(np.abs(xs))))
    return {
        "sagittal within 5 px": float(np.mean(close)),
        "sagittal middle slice": float(np.mean(middle)),
        "sagittal IPP x nearest 0": float(np.mean(nearest_zero)),
        "axial slice nearest the template's height": float(np.mean(axial)),
    }


def test_geometry_and_template_baselines_fail_by_a_wide_margin():
    designs = _designs(21, 40, (160, 256))
    scores = design_baselines(designs[:20], designs[20:])
    assert scores["sagittal within 5 px"] < 0.3  # a localizer's target: 0.99
    assert scores["sagittal middle slice"] < 0.6  # targets for slices: 0.9 exact
    assert scores["sagittal IPP x nearest 0"] < 0.3
    assert scores["axial slice nearest the template's height"] < 0.5


def test_the_library_baselines_predict_every_point_and_miss_most(rsna_root, rsna_frame):
    series = spinecls.datasets.read_series_descriptions(rsna_root / "train_series_descriptions.csv")
    geometries = {
        r.series_id: SeriesGeometry.from_directory(
            rsna_root / "train_images" / str(r.study_id) / str(r.series_id)
        )
        for r in series.itertuples()
    }
    studies = series["study_id"].unique()
    train = rsna_frame[rsna_frame["study_id"].isin(studies[:3])]
    held_out = series[series["study_id"].isin(studies[3:])]
    truth = rsna_frame[rsna_frame["study_id"].isin(studies[3:])]
    predicted = baselines.baselines(train, geometries, held_out, geometries)
    per_series = held_out["series_description"].map({"Sagittal T2/STIR": 5}).fillna(10)
    for name, frame in predicted.items():
        assert list(frame.columns) == list(spinecls.datasets.rsna.COORDINATE_COLUMNS), name
        assert frame["series_id"].isin(held_out["series_id"]).all()
        for r in frame.itertuples():
            assert r.instance_number in geometries[r.series_id].instance_numbers
        merged = truth.merge(frame, on=["series_id", "condition", "level"], suffixes=("", "_p"))
        sagittal = ~merged["series_description"].eq(AXIAL)
        near = np.hypot(merged["x"] - merged["x_p"], merged["y"] - merged["y_p"]) <= 5
        same = merged["instance_number"] == merged["instance_number_p"]
        # Targets: 99 % of the sagittal points within 5 px, 90 % of the slices exact.
        assert near[sagittal].mean() < 0.5 and same[sagittal].mean() < 0.5, name
        assert same[~sagittal].mean() < 0.5, name
    # The template predicts every point of every series; the geometry baseline leaves out
    # the axial levels its mean point misses.
    assert len(predicted["template"]) == per_series.sum()
    geometry = predicted["geometry"]
    descriptions = dict(zip(series["series_id"], series["series_description"]))
    spinal = geometry.loc[geometry["condition"] == SPINAL, "series_id"].map(descriptions)
    assert spinal.eq("Sagittal T2/STIR").all()
    assert len(geometry) <= len(predicted["template"])
    with pytest.raises(KeyError, match="no SeriesGeometry given for series"):
        baselines.template_baseline(train, {}, held_out, geometries)
    with pytest.raises(ValueError, match=r"coordinates is missing column\(s\) \['x'\]"):
        baselines.geometry_baseline(train.drop(columns="x"), geometries, held_out, geometries)


def test_class_balance_follows_the_real_data():
    # The severities of the labelled points, from the studies' metadata (which
    # test_metadata_fast_path_is_what_is_written shows is what the files hold): forty
    # studies without rendering a pixel.
    severity = pd.DataFrame(
        [
            (p.condition, SEVERITIES[d.severity[p.condition][p.level]])
            for d in _designs(3, 40, (48, 64))
            for p in d.points
        ],
        columns=["condition", "severity"],
    )
    share = severity["severity"].value_counts(normalize=True)
    assert share["normal_mild"] == pytest.approx(0.774, abs=0.05)
    assert share["moderate"] == pytest.approx(0.163, abs=0.04)
    assert share["severe"] == pytest.approx(0.063, abs=0.03)
    spinal = severity.loc[severity.condition == SPINAL, "severity"]
    assert spinal.value_counts(normalize=True)["normal_mild"] == pytest.approx(0.878, abs=0.06)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Twenty studies' files: four to eight severe points per condition (seed 3)."""
    root = spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("bal") / "rsna", n_studies=20, random_state=3, image_size=(48, 64)
    )
    return spinecls.load_rsna(root)


def test_severity_visibly_narrows_the_structure(graded):
    """Normalised intensity at the coordinate falls with the severity, for every condition:
    fluid or fat is replaced by a dark bulge, bone or ligament."""
    means = {}
    for row in graded.itertuples():
        ds, image = _pixels(row.image_path)
        lo, hi = np.percentile(image, [1, 99])
        image = (image - lo) / (hi - lo)
        r = max(1, round(2.5 / float(ds.PixelSpacing[0])))
        x, y = round(row.x), round(row.y)
        means.setdefault((row.condition, row.severity), []).append(
            image[y - r : y + r + 1, x - r : x + r + 1].mean()
        )
    for condition in CONDITIONS:
        normal, moderate, severe = (np.mean(means[(condition, s)]) for s in SEVERITIES)
        assert normal > moderate + 0.1 > severe + 0.15, condition


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _plain_summary(root):
    """What a plain dataset holds, robust to the last bits of floating point: its CSVs
    (coordinates to 0.01 px), every slice's geometry, and each series' mean pixel value."""
    h = hashlib.sha256()
    for name in ("train.csv", "train_series_descriptions.csv"):
        h.update((root / name).read_bytes())
    coords = pd.read_csv(root / "train_label_coordinates.csv").round({"x": 2, "y": 2})
    h.update(coords.to_csv(index=False).encode())
    means = []
    for folder in sorted((root / "train_images").glob("*/*")):
        pixels = []
        for path in sorted(folder.glob("*.dcm"), key=lambda p: int(p.stem)):
            ds = pydicom.dcmread(path)
            geometry = (
                path.name,
                ds.ImagePositionPatient,
                ds.ImageOrientationPatient,
                ds.PixelSpacing,
                ds.Rows,
                ds.Columns,
            )
            h.update(repr(geometry).encode())
            pixels.append(ds.pixel_array.mean())
        means.append(float(np.mean(pixels)))
    return h.hexdigest(), means


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = spinecls.make_synthetic_rsna(
        tmp_path / "a", n_studies=2, random_state=7, image_size=(48, 64)
    )
    b = spinecls.make_synthetic_rsna(
        tmp_path / "b",
        n_studies=2,
        random_state=7,
        image_size=(48, 64),
        n_jobs=2,
        variation="plain",
    )
    c = spinecls.make_synthetic_rsna(
        tmp_path / "c", n_studies=2, random_state=8, image_size=(48, 64)
    )
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    # The plain phantom as it was before variation="clinical" existed: the same random
    # stream draws the same studies (the figures in the docs rest on it).
    digest, means = _plain_summary(a)
    assert digest == "d2951331ec1c847bab8582d6af8102e6f708b5b477c77e144c3b9ec7bc4fe162"
    np.testing.assert_allclose(means, [382.09, 346.06, 333.76, 833.68, 633.46, 701.22], atol=0.01)


def test_test_layout_and_its_truth(tmp_path):
    train = spinecls.make_synthetic_rsna(
        tmp_path / "train", n_studies=2, random_state=4, image_size=(48, 48)
    )
    root = spinecls.make_synthetic_rsna(
        tmp_path / "test", n_studies=2, random_state=4, image_size=(48, 48), split="test"
    )
    assert sorted(p.name for p in root.iterdir()) == [
        ".spinecls-output.json",
        "sample_submission.csv",
        "test_images",
        "test_series_descriptions.csv",
    ]
    truth = tmp_path / "test_truth"
    assert sorted(p.name for p in truth.iterdir()) == [
        ".spinecls-output.json",
        "train.csv",
        "train_label_coordinates.csv",
        "train_series_descriptions.csv",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test", "test_truth", "train"]
    # The same studies as the training layout, with the images under test_images/.
    for name in ("train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(truth / name), pd.read_csv(train / name))
    assert (root / "test_series_descriptions.csv").read_bytes() == (
        truth / "train_series_descriptions.csv"
    ).read_bytes()
    coords = spinecls.datasets.load_coordinates(root.parent / "test_truth", split="train")
    for row in coords.itertuples():
        assert (root / "test_images" / str(row.study_id) / str(row.series_id)).is_dir()
        assert (
            root
            / "test_images"
            / str(row.study_id)
            / str(row.series_id)
            / f"{row.instance_number}.dcm"
        ).is_file()
    frame = spinecls.load_rsna(truth)
    assert frame["severity"].isin(SEVERITIES).all() and len(frame) > 0
    submission = pd.read_csv(root / "sample_submission.csv")
    assert list(submission.columns) == ["row_id", *SEVERITIES]
    studies = pd.read_csv(truth / "train.csv")["study_id"]
    assert submission["row_id"].tolist() == [f"{s}_{c}" for s in studies for c in WIDE_COLUMNS]
    np.testing.assert_allclose(submission[list(SEVERITIES)], 1 / 3)


def test_test_layout_checks_its_destinations(tmp_path):
    kwargs = dict(n_studies=1, image_size=(48, 48), split="test")
    with pytest.raises(ValueError, match="outside"):
        spinecls.make_synthetic_rsna(tmp_path / "a", truth_dir=tmp_path / "a" / "t", **kwargs)
    with pytest.raises(ValueError, match="split='test'"):
        spinecls.make_synthetic_rsna(tmp_path / "b", truth_dir=tmp_path / "t", n_studies=1)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        spinecls.make_synthetic_rsna(tmp_path / "c", truth_dir=busy, **kwargs)
    # A user's directory is refused even with overwrite, before anything is written.
    with pytest.raises(FileExistsError, match="not written by spinecls.*keep.txt"):
        spinecls.make_synthetic_rsna(tmp_path / "c", truth_dir=busy, overwrite=True, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    # The truth spinecls wrote is replaced on request, with its root.
    root = spinecls.make_synthetic_rsna(tmp_path / "d", random_state=1, **kwargs)
    truth = tmp_path / "d_truth"
    before = pd.read_csv(truth / "train.csv")
    spinecls.make_synthetic_rsna(root, random_state=2, overwrite=True, **kwargs)
    after = pd.read_csv(truth / "train.csv")
    assert before["study_id"].tolist() != after["study_id"].tolist()
    assert (root / "sample_submission.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "d", "d_truth"]


def test_refuses_a_users_directory_and_overwrites_its_own_on_request(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        spinecls.make_synthetic_rsna(root, n_studies=1)
    with pytest.raises(FileExistsError, match="not written by spinecls.*keep.txt"):
        spinecls.make_synthetic_rsna(root, n_studies=1, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in root.iterdir()] == ["keep.txt"]
    assert (root / "keep.txt").read_text() == "mine"
    ours = tmp_path / "ours"
    spinecls.make_synthetic_rsna(ours, n_studies=2, image_size=(48, 48))
    spinecls.make_synthetic_rsna(ours, n_studies=1, image_size=(48, 48), overwrite=True)
    assert len(spinecls.load_rsna(ours)) == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "out"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_failure_leaves_no_partial_output(tmp_path, monkeypatch, split):
    calls = {"n": 0}
    original = synthetic.save_slice

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError("disk full")
        original(*args, **kwargs)

    monkeypatch.setattr(synthetic, "save_slice", flaky)
    with pytest.raises(OSError, match="disk full"):
        spinecls.make_synthetic_rsna(
            tmp_path / "out", n_studies=2, image_size=(48, 48), split=split
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_studies": 0}, "n_studies"),
        ({"image_size": (16, 64)}, "image_size"),
        ({"image_size": (64, 48)}, "image_size"),
        ({"split": "val"}, "split"),
        ({"variation": "real"}, "variation must be one of"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spinecls.make_synthetic_rsna(tmp_path / "x", **kwargs)


# -- variation="clinical": the quirks of real scans ------------------------------------


def test_clinical_quirks_come_at_their_rates():
    """Drawn without a pixel: transitional vertebrae in a few per cent, a faint or oblique
    L5/S1 in a third, sacral remnants, fields of view over 200-400 mm, the contrasts."""
    quirks = synthetic_quirks(3000, random_state=0)
    rates = _variation.CLINICAL
    share = quirks["transitional"].value_counts(normalize=True)
    assert share["sacralised L5"] == pytest.approx(rates["sacralised_l5"], abs=0.01)
    assert share["lumbarised S1"] == pytest.approx(rates["lumbarised_s1"], abs=0.01)
    assert 0.03 < 1 - share["none"] < 0.07
    hard = quirks["faint_l5s1"] | quirks["oblique_l5s1"]
    assert hard.mean() == pytest.approx(1 / 3, abs=0.04)
    assert quirks.loc[quirks["transitional"] == "sacralised L5", "faint_l5s1"].all()
    faint = quirks[quirks["faint_l5s1"]]
    assert (faint["l5s1_signal"] <= 0.35).all() and (faint["l5s1_height"] <= 0.7).all()
    assert (quirks.loc[~quirks["faint_l5s1"], "l5s1_signal"] >= 0.7).all()
    oblique = quirks[quirks["oblique_l5s1"]]
    assert oblique["l5s1_tilt"].between(12, 25).all()
    remnants = quirks["sacral_discs"] - (quirks["transitional"] == "lumbarised S1")
    assert (remnants > 0).mean() == pytest.approx(0.8, abs=0.03)
    assert quirks["fov_mm"].between(200, 400).all()
    assert quirks["fov_mm"].min() < 205 and quirks["fov_mm"].max() > 395
    assert quirks["fov_mm"].std() == pytest.approx(200 / 12**0.5, rel=0.1)  # uniform
    assert quirks["low_coverage"].mean() == pytest.approx(0.15, abs=0.03)
    t2 = quirks["t2_contrast"].value_counts(normalize=True)
    for contrast, rate in rates["t2_contrast"].items():
        assert t2[contrast] == pytest.approx(rate, abs=0.03)
    assert set(quirks["t1_contrast"]) == {"T1", "T1 water"}
    # Study i's quirks do not depend on how many studies follow, nor on the image size.
    pd.testing.assert_frame_equal(synthetic_quirks(5, random_state=0), quirks.head(5))
    with pytest.raises(ValueError, match="n_studies must be a positive integer"):
        synthetic_quirks(0)


@pytest.fixture(scope="module")
def clinical_root(tmp_path_factory):
    """Four clinical studies with small images (T1, T1 water, T2, T2 water and STIR)."""
    return spinecls.make_synthetic_rsna(
        tmp_path_factory.mktemp("clinical") / "rsna",
        n_studies=4,
        random_state=2,
        image_size=(48, 64),
        variation="clinical",
    )


def test_clinical_studies_keep_the_layout_and_report_their_quirks(clinical_root, tmp_path):
    frame = spinecls.load_rsna(clinical_root)
    quirks = pd.read_csv(clinical_root / "synthetic_quirks.csv")
    pd.testing.assert_frame_equal(quirks, synthetic_quirks(4, random_state=2), check_dtype=False)
    assert (
        quirks["study_id"].tolist() == pd.read_csv(clinical_root / "train.csv")["study_id"].tolist()
    )
    assert frame["study_id"].nunique() == 4 and len(frame) >= 4 * 15
    by_study = quirks.set_index("study_id")
    descriptions = pd.read_csv(clinical_root / "train_series_descriptions.csv")
    assert set(descriptions["series_description"]) == {"Sagittal T1", "Sagittal T2/STIR", AXIAL}
    for study, series_id, kind in descriptions.to_numpy():
        folder = clinical_root / "train_images" / str(study) / str(series_id)
        ds = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        q = by_study.loc[study]
        if kind == AXIAL:
            assert ds.EchoTime == 100.0 and "ImageType" not in ds
            continue
        # The field of view in the header is the study's, within 5 %.
        fov = ds.Rows * float(ds.PixelSpacing[0])
        assert fov == pytest.approx(q["fov_mm"], rel=0.051)
        contrast = q["t1_contrast"] if kind == "Sagittal T1" else q["t2_contrast"]
        assert (ds.EchoTime < 20) == (contrast.startswith("T1"))
        assert ("InversionTime" in ds) == (contrast == "STIR")
        image_type = list(ds.ImageType) if "ImageType" in ds else []
        assert ("WATER" in image_type) == contrast.endswith("water")
        assert ("FAT" in image_type) == contrast.endswith("fat")
    # The labelled points lie inside their images; the canal's five run down the spine.
    for study, rows in frame.groupby("study_id"):
        for row in rows.itertuples():
            ds = pydicom.dcmread(row.image_path, stop_before_pixels=True)
            assert 0 <= row.x < ds.Columns and 0 <= row.y < ds.Rows
        canal = rows[rows["condition"] == SPINAL].sort_values("level")
        heights = [
            _patient(pydicom.dcmread(r.image_path, stop_before_pixels=True), r.x, r.y)[2]
            for r in canal.itertuples()
        ]
        assert (np.diff(heights) < -15).all(), study
    # The same studies again, in the test layout: the same files.
    test = spinecls.make_synthetic_rsna(
        tmp_path / "test",
        n_studies=4,
        random_state=2,
        image_size=(48, 64),
        variation="clinical",
        split="test",
    )
    truth = tmp_path / "test_truth"
    for name in ("train.csv", "train_label_coordinates.csv", "synthetic_quirks.csv"):
        assert (truth / name).read_bytes() == (clinical_root / name).read_bytes()
    assert _digest(test / "test_images") == _digest(clinical_root / "train_images")
    assert not (test / "synthetic_quirks.csv").exists()


def test_clinical_fields_of_view_and_coverage():
    """Sagittal fields of view over 200-400 mm, the spine off their centre, and a field that
    ends just below L5/S1 where the study says so."""
    quirks = synthetic_quirks(40, random_state=4)
    low = quirks.index[quirks["low_coverage"]].tolist()
    fovs, offsets, gaps = [], [], []
    for i, d in zip(range(40), _designs(4, 40, (64, 64), "clinical")):
        assert d.quirks.as_dict() == quirks.drop(columns="study_id").iloc[i].to_dict()
        for series in d.series:
            if not series.description.startswith("Sagittal"):
                continue
            plane = series.planes[0]
            height = plane.shape[0] * plane.spacing[0]
            fovs.append(height)
            canal = [d.pose.to_patient(d.spine.canal_point(k)) for k in range(5)]
            rows = [plane.to_pixel(p)[1] for p in canal]
            offsets.append((np.mean(rows) / plane.shape[0] - 0.5) * height)
            if series.description == "Sagittal T2/STIR":
                gaps.append((i, (plane.shape[0] - max(rows)) * plane.spacing[0] / height))
    assert 199.9 < min(fovs) < 230 and 370 < max(fovs) < 400.1
    assert np.ptp(offsets) > 80  # the lumbar spine anywhere from high to low in the field
    near_edge = [gap for i, gap in gaps if i in low]
    assert len(near_edge) >= 3 and max(near_edge) < 0.12  # L5/S1 within 12 % of the edge
    assert np.median([gap for i, gap in gaps if i not in low]) > 0.15


def _probe(design, point, contrast):
    """Noise-free intensity of a 1.2 mm square of a sagittal plane centred on an anatomy
    point (at 0.4 mm a pixel, the partial volume of the renderer's blur only)."""
    centre = design.pose.to_patient(point)
    plane = centred_planes(
        [centre], np.array([0.0, 1, 0]), np.array([0.0, 0, -1]), (15, 15), (0.4, 0.4)
    )[0]
    return float(_phantom.render(design.spine, design.pose, plane, contrast)[6:9, 6:9].mean())


def _disc_contrast(design, index, contrast="T2"):
    """A disc's nucleus against the vertebral bodies above it and, if a disc follows, below
    it (mid-body, half-way between the nuclei)."""
    spine = design.spine

    def nucleus(k):
        return spine._at_disc(k, 0.0, -spine.body_depth / 2, 0.0)

    neighbours = [k for k in (index - 1, index + 1) if k < len(spine.disc_z)]
    bodies = [_probe(design, (nucleus(index) + nucleus(k)) / 2, contrast) for k in neighbours]
    return _probe(design, nucleus(index), contrast) - float(np.mean(bodies))


def test_clinical_l5s1_and_sacral_discs_on_the_pixels():
    """On T2 pixels: a faint L5/S1 has under 60 % of the contrast of the study's other
    lumbar discs (else at least 60 %); a sacral remnant shows below L5/S1, weaker than a
    lumbar disc; a sacralised L5's L5/S1 nearly vanishes; a lumbarised S1's S1/S2 looks
    like a lumbar disc, and the labels stay on the anatomical L1/L2 to L5/S1."""
    quirks = synthetic_quirks(400, random_state=6)
    kinds = quirks["transitional"]
    chosen = sorted(
        {*quirks.index[quirks["faint_l5s1"] & (kinds == "none")][:4]}
        | {*quirks.index[~quirks["faint_l5s1"]][:4]}
        | {*quirks.index[kinds == "sacralised L5"][:2]}
        | {*quirks.index[kinds == "lumbarised S1"][:2]}
    )
    seen = Counter()
    for i, d in zip(chosen, _designs(6, 400, (64, 64), "clinical", only=chosen)):
        q, spine = d.quirks, d.spine
        l5s1 = spine.index(4)
        lumbar = [_disc_contrast(d, spine.index(k)) for k in range(4)]
        last = _disc_contrast(d, l5s1)
        assert min(lumbar) > 0.15, (i, lumbar)
        if q.transitional == "sacralised L5":
            assert last < 0.2 * min(lumbar), (i, last, lumbar)
            assert spine.endplate[l5s1] == 0  # the bodies fused
        elif q.faint_l5s1:
            assert last < 0.6 * min(lumbar), (i, last, lumbar)
        else:
            assert last > 0.6 * min(lumbar), (i, last, lumbar)
        below = len(spine.disc_z) - spine.index(5)
        assert below == q.sacral_discs
        if q.transitional == "lumbarised S1":
            s1s2 = _disc_contrast(d, l5s1 + 1)
            assert s1s2 > 0.6 * min(lumbar), (i, s1s2, lumbar)
        remnant = l5s1 + 1 + (q.transitional == "lumbarised S1")
        if remnant < len(spine.disc_z):
            contrast = _disc_contrast(d, remnant)
            assert 0.02 < contrast < 0.75 * np.median(lumbar), (i, contrast, lumbar)
            seen["remnant"] += 1
        # The labelled canal points are the anatomical discs' (L5/S1: index top + 4).
        canal = [p for p in d.points if p.condition == SPINAL]
        series = d.series[canal[0].series]
        for p in canal:
            x, y = series.planes[p.slice].to_pixel(d.pose.to_patient(spine.canal_point(p.level)))
            assert (
                np.hypot(
                    (x - p.col) * series.planes[0].spacing[1],
                    (y - p.row) * series.planes[0].spacing[0],
                )
                < 4
            )
        seen[q.transitional, q.faint_l5s1] += 1
    assert seen["remnant"] >= 4 and seen["lumbarised S1", True] + seen["lumbarised S1", False] == 2


def test_clinical_contrasts_on_the_pixels():
    """Disc and CSF bright against bone on T2, STIR and the T2 water image, dark on T1 and
    the fat image; fat suppressed on STIR and the water images."""
    (d,) = _designs(6, 1, (64, 64), "clinical")
    spine = d.spine
    k = spine.index(2)  # L3/L4
    nucleus = spine._at_disc(k, 0.0, -spine.body_depth / 2, 0.0)
    body = (nucleus + spine._at_disc(k - 1, 0.0, -spine.body_depth / 2, 0.0)) / 2
    # CSF beside the cauda equina, half-way between L2/L3 and L3/L4 (no disc bulge there).
    csf = (
        spine._at_disc(k, 4.0, spine.canal_depth / 2, 0.0)
        + spine._at_disc(k - 1, 4.0, spine.canal_depth / 2, 0.0)
    ) / 2
    z = float(nucleus[2])
    fat = np.array([spine.centre_x(z), spine.wall(z) - 119.5, z])  # anterior subcutaneous fat
    muscle = np.array([spine.centre_x(z) + 10.0, spine.wall(z) + 40.0, z])  # paraspinal
    # +1: brighter than the vertebral body (fat: than muscle), -1: darker.
    expected = {  # disc, CSF, fat
        "T1": (-1, -1, 1),
        "T2": (1, 1, 1),
        "STIR": (1, 1, -1),
        "T1 water": (1, -1, -1),  # the marrow's fat suppressed: darker than the disc
        "T2 water": (1, 1, -1),
        "T2 fat": (-1, -1, 1),
    }
    assert set(_phantom.CONTRASTS) == set(expected)
    for contrast, signs in expected.items():
        bone = _probe(d, body, contrast)
        seen = (
            _probe(d, nucleus, contrast) - bone,
            _probe(d, csf, contrast) - bone,
            _probe(d, fat, contrast) - _probe(d, muscle, contrast),
        )
        assert all(sign * value > 0.05 for sign, value in zip(signs, seen)), (contrast, seen)
