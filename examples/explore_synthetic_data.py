"""
Explore a synthetic dataset
===========================

Generate a synthetic RSNA dataset, load it, and look at what the study's model would see.

Run: ``python examples/explore_synthetic_data.py [OUTDIR]``. With ``SPINECLS_EXAMPLE_SMALL=1``
it uses two small studies (as in CI).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pydicom

import spinecls

small = os.environ.get("SPINECLS_EXAMPLE_SMALL") == "1"
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "rsna"
root = spinecls.make_synthetic_rsna(
    out,
    n_studies=2 if small else 20,
    random_state=0,
    image_size=(64, 96) if small else (160, 256),
    overwrite=True,
)
frame = spinecls.load_rsna(root)
print(f"{len(frame)} labelled coordinates in {frame['study_id'].nunique()} studies at {root}")

# The study's label codes: condition 0-4, severity 0-2.
codes = frame.assign(
    condition_code=frame["condition"].map({c: i for i, c in enumerate(spinecls.CONDITIONS)}),
    severity_code=frame["severity"].map({s: i for i, s in enumerate(spinecls.SEVERITIES)}),
)
print(codes.groupby(["condition_code", "series_description"]).size().rename("rows"))
print(codes["severity"].value_counts(normalize=True).round(3))

# Where does one label point? Read its DICOM slice.
row = frame.iloc[0]
ds = pydicom.dcmread(row["image_path"])
print(
    f"{row['condition']} {row['level']} ({row['severity']}): {ds.SeriesDescription} "
    f"instance {ds.InstanceNumber}, {ds.Rows}x{ds.Columns} px "
    f"at {float(ds.PixelSpacing[0]):.2f} mm, "
    f"labelled at column {row['x']:.1f}, row {row['y']:.1f}"
)
