"""
Grid-search a patch pipeline
============================

Grid-search the backbone and learning rate of a patch Pipeline, grouped by study.

Run: ``python examples/pipeline_gridsearch.py [OUTDIR]``. With ``SPINECLS_EXAMPLE_SMALL=1``
everything is tiny (as in CI).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

import spinecls
from spinecls.metrics import head_scorer, rsna_scorer

small = os.environ.get("SPINECLS_EXAMPLE_SMALL") == "1"
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
root = spinecls.make_synthetic_rsna(
    out / "rsna", n_studies=6 if small else 30, image_size=(96, 128), overwrite=True
)
frame = spinecls.load_rsna(root)
y, studies = frame[["condition", "severity"]], frame["study_id"]

pipe = Pipeline(
    [
        # memory: every candidate of the grid reuses the decoded slices and patches
        (
            "patches",
            spinecls.LumbarPatchTransformer(patch_size=48, output_size=32, memory=out / "cache"),
        ),
        ("clf", spinecls.DualHeadClassifier(max_epochs=1 if small else 10, random_state=0)),
    ]
)
search = GridSearchCV(
    pipe,
    {"clf__backbone": ["simple", "inception"], "clf__lr": [1e-3, 3e-3]},
    scoring={
        "severity_f1": head_scorer("severity", "f1_weighted"),
        "condition_accuracy": head_scorer("condition", "accuracy"),
        "rsna": rsna_scorer,
    },
    refit="rsna",
    cv=GroupKFold(n_splits=2 if small else 3),
)
search.fit(frame, y, groups=studies, clf__groups=studies)

for params, f1, acc, rsna in zip(
    search.cv_results_["params"],
    search.cv_results_["mean_test_severity_f1"],
    search.cv_results_["mean_test_condition_accuracy"],
    search.cv_results_["mean_test_rsna"],
):
    print(f"{params}: severity F1 {f1:.3f}, condition accuracy {acc:.3f}, score {-rsna:.3f}")
print("best:", search.best_params_)
