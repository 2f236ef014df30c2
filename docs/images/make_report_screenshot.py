"""How ``report_study.png`` was made (minutes of CPU: not run by the tests).

A localizer and a crop model trained on 30 synthetic studies grade 4 held-out ones in the
test layout; their report's page of the study with the lowest confidence is rendered by
Debian's headless chromium, and the image keeps the top of the page and three of its rows,
in a palette of the report's colours and 32 greys.

Run from an empty folder: ``python make_report_screenshot.py OUT.png``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from PIL import Image, ImageDraw
from sklearn.pipeline import Pipeline

import spinecls
from spinecls.report import write_report

CHROMIUM = [
    "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--hide-scrollbars", "--user-data-dir=chromium-profile",
]  # fmt: skip
COLOURS = [
    "#56B4E9", "#F0E442", "#D55E00", "#CC79A7", "#0072B2", "#777777", "#eeeeee", "#f3f3f3",
    "#dddddd", "#0050a0", "#8a2e00", "#1c5e20", "#000000", "#333333", "#444444", "#111111",
]  # fmt: skip
GREY = (160, 160, 160)
WIDTH = 984  # the page's 1000 pixels but the scroll bar's
TOP = 1115  # down to the captions of the first row of Sagittal T1 slices
FIRST_ROW = 7  # the left foramen's L3/L4 to L5/S1: its worst grade, moderate at L5/S1


def grade() -> Path:
    """Train on 30 studies, grade 4 held-out ones, write their report; return its folder."""
    torch.set_num_threads(1)
    train = spinecls.make_synthetic_rsna("train", n_studies=30, random_state=0, n_jobs=2)
    test = spinecls.make_synthetic_rsna("test", n_studies=4, random_state=7, split="test")
    frame = spinecls.load_rsna(train)
    localizer = spinecls.LevelLocalizer(max_epochs=10, random_state=0)
    localizer.fit(spinecls.load_series(train), frame)
    classifier = spinecls.DualHeadClassifier(
        max_epochs=8, augment="light", severity_weights="rsna", random_state=0
    )
    crops = spinecls.LumbarPatchTransformer(patch_size=48, output_size=32)
    pipe = Pipeline([("patches", crops), ("clf", classifier)])
    pipe.fit(frame, frame[["condition", "severity"]], clf__groups=frame["study_id"].to_numpy())
    submission, points = spinecls.predict_studies(test, pipe, localizer, return_points=True)
    points.to_csv("points.csv", index=False)
    return write_report(test, points, submission, "report", model=pipe)


def screenshot(report: Path, out: Path) -> None:
    """The page of the study with the lowest confidence: its top (summary, legend, sagittal
    series) and the grades' header and three rows (found by the header's shade and the
    rows' rules), in a palette of the report's colours and 32 greys."""
    points = pd.read_csv("points.csv")
    study = points.groupby("study_id")["confidence"].min().idxmin()
    page = (report / "studies" / f"{study}.html").resolve()
    subprocess.run(
        [*CHROMIUM, "--screenshot=page.png", "--window-size=1000,5200", page.as_uri()],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shot = Image.open("page.png").convert("RGB")
    pixels = shot.load()
    shaded = [y for y in range(shot.height) if pixels[16, y] == (243, 243, 243)]
    # The grades' table is the page's last: its header is the last band of table-header shade.
    header = [y for y in shaded if not set(range(y, shaded[-1] + 1)) - set(shaded)]
    rules = [y for y in range(header[-1], shot.height) if pixels[500, y] == (221, 221, 221)]
    top, gap = TOP, 24
    parts = [
        shot.crop((0, 0, WIDTH, top)),
        shot.crop((0, header[0], WIDTH, header[-1] + 2)),
        shot.crop((0, rules[FIRST_ROW] + 1, WIDTH, rules[FIRST_ROW + 3] + 1)),
    ]
    image = Image.new("RGB", (WIDTH, sum(p.height for p in parts) + gap), "white")
    image.paste(parts[0], (0, 0))
    ImageDraw.Draw(image).line([(14, top + gap // 2), (WIDTH - 14, top + gap // 2)], fill=GREY)
    image.paste(parts[1], (0, top + gap))
    image.paste(parts[2], (0, top + gap + parts[1].height))
    colours = [tuple(int(c[k : k + 2], 16) for k in (1, 3, 5)) for c in COLOURS]
    palette = colours + [(g, g, g) for g in range(0, 256, 8)] + [(255, 255, 255)]
    flat = [v for c in palette for v in c]
    reference = Image.new("P", (1, 1))
    reference.putpalette(flat + [0] * (768 - len(flat)))
    image.quantize(palette=reference, dither=Image.Dither.NONE).save(out, optimize=True)


if __name__ == "__main__":
    screenshot(grade(), Path(sys.argv[1]))
