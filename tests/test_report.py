"""The HTML report (``spinecls.report``, ``spinecls report``, ``predict --report``).

One report of three synthetic test-layout studies, written once: study A has rows on the
prior, flags and a weak point; study B lost its axial series' folder, has an unreadable
slice and a row missing from the submission; study C is clean. The pages are parsed
(every study, row, link and image there, nothing absolute), their pixels compared with
the DICOM's, and a real browser (Debian's ``chromium``) renders two of them.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

import spinecls
from spinecls.cli import _commands, main
from spinecls.dicom import read_slice
from spinecls.inference import submission_row_ids
from spinecls.labels import CONDITIONS, LEVELS, SEVERITIES, SEVERITY_PRIORS, TARGETS, slug
from spinecls.report import _images, write_report
from spinecls.report._images import (
    AXIAL_MAX_SIDE,
    CONFIDENCE_BINS,
    MAX_GREY_LEVELS,
    MIN_GREY_LEVELS,
    grey_levels,
    noise_sigma,
    slice_png,
)
from spinecls.report._inputs import read_points
from spinecls.report._summary import prior_rows

KEYS = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
FLAGS = ["qc_outside_coverage", "qc_outside_image", "qc_order", "qc_level_shift", "qc_new_check"]
CROP = 16


def _one(points, study, condition, level):
    mask = (
        (points["study_id"] == study)
        & (points["condition"] == condition)
        & (points["level"] == level)
    )
    assert mask.sum() == 1
    return mask


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    data = spinecls.make_synthetic_rsna(
        base / "data", n_studies=3, random_state=1, image_size=(64, 96), split="test"
    )
    points = spinecls.load_rsna(base / "data_truth")[KEYS].copy()
    a, b, c = sorted(points["study_id"].unique())
    points["confidence"], points["level_confidence"] = 0.9, 0.95
    for flag in FLAGS:
        points[flag] = False
    # A: one row without a point, one whose only point lies outside its image, a weak point,
    # the coordinator's new flag and one no version of spinecls knows.
    points = points[~_one(points, a, "Left Subarticular Stenosis", "L5/S1")]
    points.loc[_one(points, a, "Spinal Canal Stenosis", "L1/L2"), "qc_outside_image"] = True
    points.loc[_one(points, a, "Right Neural Foraminal Narrowing", "L3/L4"), "confidence"] = 0.3
    points.loc[_one(points, a, "Left Neural Foraminal Narrowing", "L2/L3"), "qc_level_shift"] = True
    points.loc[_one(points, a, "Spinal Canal Stenosis", "L4/L5"), "qc_new_check"] = True
    # B: its axial series' folder is gone, its canal slice unreadable.
    axial = points.loc[(points["study_id"] == b) & points["condition"].str.contains("Subart")]
    shutil.rmtree(data / "test_images" / str(b) / str(axial["series_id"].iloc[0]))
    canal = points.loc[_one(points, b, "Spinal Canal Stenosis", "L3/L4")].iloc[0]
    broken = data / "test_images" / str(b) / str(canal["series_id"])
    (broken / f"{canal['instance_number']}.dcm").write_bytes(b"not a DICOM file")
    points.to_csv(base / "points.csv", index=False)

    rows = submission_row_ids([a, b, c])
    rng = np.random.default_rng(0)
    submission = pd.DataFrame(rng.dirichlet([4, 2, 1], len(rows)), columns=TARGETS)
    submission.insert(0, "row_id", rows)
    submission = submission[submission["row_id"] != f"{b}_spinal_canal_stenosis_l5_s1"]
    submission.to_csv(base / "submission.csv", index=False)

    transformer = spinecls.LumbarPatchTransformer(patch_size=32, output_size=CROP)
    out = write_report(
        data, base / "points.csv", base / "submission.csv", base / "out", model=transformer
    )
    return {
        "base": base,
        "data": data,
        "out": out,
        "points": points,
        "submission": submission,
        "studies": (a, b, c),
        "transformer": transformer,
        "broken": (b, int(canal["series_id"]), int(canal["instance_number"])),
    }


class _Page(HTMLParser):
    """What the tests read from a page: links, images, element ids, cells, text."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.links, self.images, self.ids = path, [], [], []
        self.scripts, self.text, self.rows, self._row = 0, [], [], None
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("a", "link"):
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts += 1
        elif tag == "tr":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._row.append("")
        if "id" in attrs:
            self.ids.append(attrs["id"])

    def handle_endtag(self, tag):
        if tag == "tr" and self._row:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row:
            self._row[-1] += data

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def _pages(out: Path) -> list[_Page]:
    return [_Page(p) for p in [out / "index.html", *sorted((out / "studies").glob("*.html"))]]


def test_every_study_row_link_and_image_is_there_and_relative(made):
    out, studies = made["out"], made["studies"]
    pages = _pages(out)
    index = pages[0]
    assert [int(r[0]) for r in index.rows] == [studies[0], studies[1], studies[2]]
    assert {p.path.name for p in pages[1:]} == {f"{s}.html" for s in studies}
    for page in pages:
        assert page.scripts == 0
        raw = page.path.read_text(encoding="utf-8")
        assert str(made["base"]) not in raw and "file:" not in raw and "http" not in raw
        for target in [*page.links, *(i["src"] for i in page.images)]:
            assert not target.startswith("/") and ":" not in target, target
            assert (page.path.parent / target.split("#")[0]).resolve().is_file(), target
        for image in page.images:
            assert len(image["alt"]) > 20, image
            with Image.open(page.path.parent / image["src"]) as png:
                assert png.size == (int(image["width"]), int(image["height"]))
    for page in pages[1:]:
        wanted = {f"{slug(c)}_{slug(lv)}" for c in CONDITIONS for lv in LEVELS}
        assert wanted <= set(page.ids)
        assert len([r for r in page.rows if len(r) == 5]) == 25


def test_the_index_says_why_each_study_is_to_be_checked(made):
    a, b, c = made["studies"]
    rows = {int(r[0]): r for r in _Page(made["out"] / "index.html").rows}
    _, reasons, worst, confidence, flags, prior, missing = rows[a]
    # Two rows on the prior, three kinds of flag, a point of confidence 0.3.
    assert (int(reasons), int(prior)) == (5, 2)
    assert confidence.startswith("0.30") and "level naming 0.95" in confidence
    assert flags == "outside the image ×1, level shift ×1, qc_new_check ×1"
    assert missing == "—"
    assert "Axial T2 series" in rows[b][6] and "1 row(s) not in the submission" in rows[b][6]
    assert rows[c][1:2] == ["0"] and rows[c][4:6] == ["none", "0"]
    # The worst grade is the most severe most probable class, the surest of its rows.
    submission = made["submission"]
    mine = submission[submission["row_id"].str.startswith(f"{c}_")]
    proba = mine[TARGETS].to_numpy()
    top = proba.argmax(axis=1).max()
    best = proba[proba.argmax(axis=1) == top, top].max()
    assert rows[c][2].endswith(f"({best:.2f})")


def test_prior_rows_are_those_without_a_usable_point():
    points = pd.DataFrame(
        {
            "study_id": [1, 1, 2],
            "condition": ["Spinal Canal Stenosis"] * 3,
            "level": ["L1/L2", "L2/L3", "L1/L2"],
            "qc_outside_image": [False, True, False],
        }
    )
    on_prior = prior_rows(points, [1, 2, 3])
    assert len(on_prior) == 3 * 25 - 2
    assert (1, "Spinal Canal Stenosis", "L2/L3") in on_prior
    assert (1, "Spinal Canal Stenosis", "L1/L2") not in on_prior
    assert len(prior_rows(points.drop(columns="qc_outside_image"), [1])) == 23


def test_points_read_from_a_csv_keep_ids_exact_and_flags_as_booleans(made, tmp_path):
    frame = pd.read_csv(made["base"] / "points.csv").head(3)
    frame["study_id"] = frame["study_id"].astype(object)
    frame.loc[0, "study_id"] = "9007199254740993"  # 2**53 + 1: a float would round it
    frame["qc_order"] = ["True", None, "0"]
    frame.to_csv(tmp_path / "points.csv", index=False)
    points = read_points(tmp_path / "points.csv", made["data"], "test")
    assert points["study_id"].iloc[0] == 2**53 + 1
    assert points["qc_order"].tolist() == [True, False, False]
    series, instance = frame["series_id"].iloc[0], frame["instance_number"].iloc[0]
    wanted = made["data"] / "test_images" / str(2**53 + 1) / str(series) / f"{instance}.dcm"
    assert points["image_path"].iloc[0] == str(wanted)


def test_a_study_page_shows_grades_beside_the_prior_and_flags_in_words(made):
    a = made["studies"][0]
    page = _Page(made["out"] / "studies" / f"{a}.html")
    text = page.words
    assert text.count("fell back to the class prior") == 2
    assert "the chain of levels may be one disc off" in text
    assert "qc_new_check" in text and "outside its image: not graded" in text
    rows = {f"{r[0]} {r[1]}": r for r in page.rows if len(r) == 5}
    canal = rows["spinal canal L1/L2"]
    assert "no usable point" in canal[4]
    row = made["submission"].set_index("row_id").loc[f"{a}_spinal_canal_stenosis_l1_l2"]
    prior = SEVERITY_PRIORS["Spinal Canal Stenosis"]
    for k in range(3):
        assert f"{row[TARGETS[k]]:.2f} prior {prior[k]:.2f}" in canal[3]
    # The point outside its image is not graded: no crop for its row; every other row of
    # A but the one without a point has one.
    crops = [i for i in page.images if "/crop_" in i["src"]]
    assert len(crops) == 23
    assert not any("spinal_canal_stenosis_l1_l2" in i["src"] for i in crops)


def test_pixels_are_the_models_and_never_enlarged(made):
    a = made["studies"][0]
    points, out = made["points"], made["out"]
    page = _Page(out / "studies" / f"{a}.html")
    slices = [i for i in page.images if "/s" in i["src"] and "/crop_" not in i["src"]]
    assert slices
    for image in slices:
        series, instance = Path(image["src"]).stem[1:].split("_")
        path = made["data"] / "test_images" / str(a) / series / f"{instance}.dcm"
        expected = read_slice(path).image()
        with Image.open(out / "studies" / image["src"]) as png:
            shown = np.asarray(png.convert("L"), dtype=float)
            entries = np.asarray(png)
            levels = len(png.getpalette()) // 3 - 2 - len(CONFIDENCE_BINS)
        assert shown.shape == expected.shape  # 64-96 pixels: never shrunk, never enlarged
        assert max(shown.shape) <= AXIAL_MAX_SIDE
        # Off the marks and labels (drawn in the entries past the greys, and white), the
        # grey of the DICOM's windowed pixels, in as many steps as its noise allows.
        assert levels == grey_levels(np.clip(expected, 0, 1))
        grey = np.rint(np.clip(expected, 0, 1) * (levels - 1))
        plain = entries < levels - 1
        assert plain.mean() > 0.6
        np.testing.assert_array_equal(entries[plain], grey[plain])
        np.testing.assert_array_equal(shown[plain], np.rint(grey * 255 / (levels - 1))[plain])
        assert entries.max() > levels  # the marks are in colour
    crop = next(
        i for i in page.images if i["src"].endswith("crop_spinal_canal_stenosis_l2_l3_0.png")
    )
    assert (int(crop["width"]), int(crop["height"])) == (CROP, CROP)
    row = points.loc[_one(points, a, "Spinal Canal Stenosis", "L2/L3")]
    patch = made["transformer"].transform(
        row.assign(
            image_path=[
                str(
                    made["data"]
                    / "test_images"
                    / str(a)
                    / str(row["series_id"].iloc[0])
                    / f"{row['instance_number'].iloc[0]}.dcm"
                )
            ]
        )
    )[0, 0]
    with Image.open(out / "studies" / crop["src"]) as png:
        np.testing.assert_array_equal(np.asarray(png), np.rint(np.clip(patch, 0, 1) * 255))


def test_the_noise_of_an_image_is_measured_past_its_edges_and_clipped_parts():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:200] / 200
    image = 0.1 + 0.5 * x + 0.3 * y
    image[:, 100:] -= 0.3  # an edge
    image[150:] = 0.0  # a clipped, flat part
    assert noise_sigma(image) == 0 and grey_levels(image) == MAX_GREY_LEVELS
    for sigma in (0.005, 0.02, 0.05, 0.1):
        noisy = np.clip(image + rng.normal(0, sigma, image.shape), 0, 1)
        noisy[150:] = 0.0
        assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)
        levels = grey_levels(noisy)
        assert MIN_GREY_LEVELS <= levels <= MAX_GREY_LEVELS
        # A step no larger than the noise, as few steps as that allows (or the bounds).
        step = 1 / (levels - 1)
        assert step <= noise_sigma(noisy) or levels == MAX_GREY_LEVELS
        assert 1 / (levels - 2) > noise_sigma(noisy) or levels == MIN_GREY_LEVELS
    assert grey_levels(np.clip(image + rng.normal(0, 0.005, image.shape), 0, 1)) == 64
    assert grey_levels(np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1)) in (21, 22, 23)
    assert grey_levels(np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1)) == 16


def test_a_noisy_slice_is_drawn_in_fewer_grey_steps_and_fewer_bytes(made, tmp_path, monkeypatch):
    out = made["out"]
    slices = [
        image
        for s in made["studies"]
        for image in _Page(out / "studies" / f"{s}.html").images
        if "/crop_" not in image["src"]
    ]
    assert len(slices) > 10
    counts = []
    for image in slices:
        with Image.open(out / "studies" / image["src"]) as png:
            assert png.mode == "P" and png.info.get("transparency") is None
            palette = np.asarray(png.getpalette()).reshape(-1, 3)
            entries = np.asarray(png)
        # The greys, evenly spaced from black to white, then black and one colour per
        # confidence class; every pixel one of them.
        levels = len(palette) - 2 - len(CONFIDENCE_BINS)
        greys = np.rint(np.arange(levels) * 255 / (levels - 1))
        np.testing.assert_array_equal(palette[:levels], np.stack([greys] * 3, axis=1))
        np.testing.assert_array_equal(palette[levels], [0, 0, 0])
        assert not (palette[levels + 1 :] == palette[levels + 1 :, :1]).all(axis=1).any()
        assert entries.max() < len(palette)
        counts.append(levels)
    # The generator's slices are noisy (about 5 % of their grey range): 16 to 40 steps.
    assert min(counts) >= MIN_GREY_LEVELS and max(counts) <= 40
    # Their files are a fifth or more smaller than in the most steps.
    a = made["studies"][0]
    path = next(made["data"].glob(f"test_images/{a}/*/*.dcm"))
    marks = [(20.0, 30.0, "L1/L2", 0.9), (25.0, 50.0, "L2/L3", 0.3)]
    size = slice_png(path, marks, tmp_path / "few.png", "percentile")
    monkeypatch.setattr(_images, "grey_levels", lambda grey: MAX_GREY_LEVELS)
    assert slice_png(path, marks, tmp_path / "most.png", "percentile") == size
    few, most = (tmp_path / f"{n}.png" for n in ("few", "most"))
    assert few.stat().st_size < 0.8 * most.stat().st_size
    with Image.open(most) as png:
        assert len(png.getpalette()) // 3 == MAX_GREY_LEVELS + 2 + len(CONFIDENCE_BINS)
    # A shrunk slice's steps are those of what is shown: averaging lessens the noise.
    monkeypatch.undo()
    width, height, scale = slice_png(path, marks, tmp_path / "small.png", "percentile", 40)
    assert max(width, height) == 40 and scale < 1
    with Image.open(few) as png, Image.open(tmp_path / "small.png") as small:
        assert small.size == (width, height)
        assert len(small.getpalette()) > len(png.getpalette())


def test_a_study_whose_series_cannot_be_read_says_what_is_missing(made):
    b, series, instance = made["broken"]
    page = _Page(made["out"] / "studies" / f"{b}.html")
    assert "missing" in page.ids
    text = page.words
    assert "What could not be read" in text
    assert f"Sagittal T2/STIR series {series}, instance {instance} could not be read" in text
    assert "its folder test_images/" in text and "is missing" in text
    rows = {f"{r[0]} {r[1]}": r for r in page.rows if len(r) == 5}
    assert "not in the submission" in rows["spinal canal L5/S1"][3]
    assert "no crop" in rows["left subarticular L1/L2"][2]


def test_the_report_replaces_only_its_own_folder(made, tmp_path, monkeypatch):
    base, data = made["base"], made["data"]
    args = (data, base / "points.csv", base / "submission.csv")
    with pytest.raises(FileExistsError, match="not empty"):
        write_report(*args, made["out"])
    with pytest.raises(ValueError, match="lies inside the input data directory"):
        write_report(*args, data / "report")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not written by spinecls"):
        write_report(*args, tmp_path / "mine", overwrite=True)

    import spinecls.report._write as writer

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_study", fail)
    with pytest.raises(KeyboardInterrupt):
        write_report(*args, tmp_path / "stopped")
    assert list(tmp_path.iterdir()) == [tmp_path / "mine"]


def test_bad_inputs_are_named(made, tmp_path):
    base, data = made["base"], made["data"]
    points = pd.read_csv(base / "points.csv")
    points.drop(columns="level").to_csv(tmp_path / "p1.csv", index=False)
    with pytest.raises(ValueError, match=r"p1.csv is missing column\(s\) \['level'\]"):
        write_report(data, tmp_path / "p1.csv", base / "submission.csv", tmp_path / "r")
    points.assign(qc_order=["maybe"] + [False] * (len(points) - 1)).to_csv(
        tmp_path / "p2.csv", index=False
    )
    with pytest.raises(ValueError, match=r"'qc_order' must hold True or False.*line\(s\) 2"):
        write_report(data, tmp_path / "p2.csv", base / "submission.csv", tmp_path / "r")
    bad = made["submission"].assign(row_id=lambda f: f["row_id"].str.replace("l1_l2", "l0"))
    with pytest.raises(ValueError, match=r"row_id must read"):
        write_report(data, base / "points.csv", bad, tmp_path / "r")
    with pytest.raises(TypeError, match="LumbarPatchTransformer"):
        write_report(data, base / "points.csv", made["submission"], tmp_path / "r", model=object())
    assert not (tmp_path / "r").exists()


def test_report_on_the_command_line(made, tmp_path, capsys):
    base, data = made["base"], made["data"]
    out = tmp_path / "cli"
    argv = ["report", "--data", str(data), "--points", str(base / "points.csv")]
    argv += ["--submission", str(base / "submission.csv"), "--out", str(out)]
    assert main(argv) == 0
    assert f"open {out / 'index.html'}" in capsys.readouterr().out
    assert (out / "index.html").read_text() == (made["out"] / "index.html").read_text()
    assert main(argv) == 2 and "not empty" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


class _Constant(BaseEstimator):
    """A fitted dual-head stand-in, without torch: the same probabilities for every crop."""

    def fit(self, X=None, y=None):
        self.classes_ = [np.array(CONDITIONS), np.array(SEVERITIES)]
        return self

    def predict_proba(self, X):
        return [np.full((len(X), 5), 0.2), np.tile([0.6, 0.3, 0.1], (len(X), 1))]


def test_predict_writes_the_report_of_what_it_graded(tmp_path, monkeypatch, capsys):
    # predict's coordinates path (a training-layout directory): labelled points, graded by a
    # pipeline whose transformer cuts 16-pixel crops (the model file's loading is predict's).
    train = spinecls.make_synthetic_rsna(tmp_path / "train", n_studies=1, image_size=(64, 64))
    transformer = spinecls.LumbarPatchTransformer(patch_size=32, output_size=CROP)
    pipeline = Pipeline([("patches", transformer), ("clf", _Constant().fit())])
    monkeypatch.setattr(_commands, "_load_pipeline", lambda *args: pipeline)
    argv = ["predict", "--data", str(train), "--model", str(tmp_path / "m.pt"), "--split"]
    argv += ["train", "--out", str(tmp_path / "submission.csv"), "--report"]
    assert main([*argv, str(tmp_path / "seen")]) == 0
    assert "open" in capsys.readouterr().out
    pages = _pages(tmp_path / "seen")
    assert len(pages[0].rows) == 1 and len(pages) == 2
    assert "no confidence given" in pages[1].words  # labelled coordinates: no confidence
    crops = [i for i in pages[1].images if "/crop_" in i["src"]]
    labelled = spinecls.load_rsna(train)
    assert len(crops) == len(labelled) and {i["width"] for i in crops} == {str(CROP)}
    rows = [r for r in pages[1].rows if len(r) == 5]
    assert sum("fell back" in r[4] for r in rows) == 25 - len(labelled)
    # A report folder that may not be written stops predict before any work; a report that
    # fails leaves no submission either.
    assert main([*argv[:-3], "--out", str(tmp_path / "s2.csv"), "--report", str(train)]) == 2
    import spinecls.report as report

    monkeypatch.setattr(report, "write_report", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main([*argv[:-3], "--out", str(tmp_path / "s3.csv"), "--report", str(tmp_path / "r3")])
    assert not (tmp_path / "s2.csv").exists() and not (tmp_path / "s3.csv").exists()


CHROMIUM = shutil.which("chromium")
FLAGS_CHROMIUM = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _screenshot(page: Path, png: Path, size: str) -> np.ndarray:
    profile = png.with_suffix(".profile")
    profile.mkdir()
    subprocess.run(
        [CHROMIUM, *FLAGS_CHROMIUM, f"--user-data-dir={profile}", f"--screenshot={png}",
         f"--window-size={size}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    with Image.open(png) as shot:
        return np.asarray(shot.convert("RGB"), dtype=int)


def _rows_with(shot: np.ndarray, colour: str, tolerance: int = 6) -> np.ndarray:
    """The screenshot rows holding at least 3 pixels of ``colour`` ("#rrggbb")."""
    rgb = np.array([int(colour[k : k + 2], 16) for k in (1, 3, 5)])
    near = (np.abs(shot - rgb) <= tolerance).all(axis=2)
    return np.flatnonzero(near.sum(axis=1) >= 3)


def test_a_real_browser_shows_the_index_and_a_study_page(made, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    out, a = made["out"], made["studies"][0]
    index = _screenshot(out / "index.html", tmp_path / "index.png", "1100,500")
    study = _screenshot(out / "studies" / f"{a}.html", tmp_path / "study.png", "1100,4200")
    for shot in (index, study):
        packed = (shot[..., 0] << 16) | (shot[..., 1] << 8) | shot[..., 2]
        assert shot.std() > 20 and len(np.unique(packed)) > 50
    # The index: its table's header band, then the study links below it.
    header, links = _rows_with(index, "#f3f3f3"), _rows_with(index, "#0050a0", 60)
    assert header.size and links.size and links.max() > header.min()
    # The study page: the slices with their coloured points (each confidence class A has),
    # then the grades' probability bars further down.
    marks = [_rows_with(study, colour) for _, _, colour, _ in CONFIDENCE_BINS[::2]]
    bars = _rows_with(study, "#0072b2")
    assert all(m.size for m in marks) and bars.size > 25
    assert max(m.min() for m in marks) < bars.min()
    assert math.isfinite(float(bars.max()))
