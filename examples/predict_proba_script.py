"""
Score new rows with a saved model
=================================

Load a saved model and score new patches from a script.

Run: ``python examples/predict_proba_script.py [OUTDIR]``. It first trains and saves a small
model (as ``spinecls train`` would), then loads it the way a script on another machine would.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

import spinecls
from spinecls import DualHeadClassifier, LumbarPatchTransformer
from spinecls.persistence import load_pipeline, save_pipeline

small = os.environ.get("SPINECLS_EXAMPLE_SMALL") == "1"
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
root = spinecls.make_synthetic_rsna(
    out / "rsna", n_studies=4 if small else 20, image_size=(96, 128), overwrite=True
)
frame = spinecls.load_rsna(root)
pipe = Pipeline(
    [
        ("patches", LumbarPatchTransformer(patch_size=48, output_size=32)),
        ("clf", DualHeadClassifier(max_epochs=1 if small else 10, random_state=0)),
    ]
)

# -- once: train and save (the file holds weights and JSON, no pickle) -----------------
pipe.fit(frame, frame[["condition", "severity"]], clf__groups=frame["study_id"])
save_pipeline(pipe, out / "model.pt")

# -- later, in another script: load and score new rows ---------------------------------
loaded = load_pipeline(out / "model.pt")
new_rows = frame.sample(5, random_state=1)
p_condition, p_severity = loaded.predict_proba(new_rows)
for (_, row), pc, ps in zip(new_rows.iterrows(), p_condition, p_severity):
    condition = loaded.classes_[0][np.argmax(pc)]
    print(
        f"study {row.study_id} {row.level} {row.condition}: predicted {condition} "
        f"({pc.max():.2f}); severity "
        + ", ".join(f"{c} {p:.2f}" for c, p in zip(loaded.classes_[1], ps))
    )
