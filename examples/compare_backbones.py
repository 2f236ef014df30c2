"""Compare the backbones on the same patches: per-head metrics and the competition score.

Run: ``python examples/compare_backbones.py [OUTDIR]``. With ``SPINECLS_EXAMPLE_SMALL=1``
everything is tiny (as in CI).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

import spinecls
from spinecls.metrics import dual_head_report, rsna_score, solution_from_frame, to_submission
from spinecls.model_selection import split_by_study

small = os.environ.get("SPINECLS_EXAMPLE_SMALL") == "1"
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
root = spinecls.make_synthetic_rsna(
    out / "rsna", n_studies=7 if small else 30, image_size=(96, 128), overwrite=True
)
frame = spinecls.load_rsna(root)
develop, test = (frame.iloc[i] for i in split_by_study(frame, random_state=0))
transformer = spinecls.LumbarPatchTransformer(patch_size=48, output_size=32)
X_develop, X_test = transformer.fit_transform(develop), transformer.transform(test)
y_develop = develop[["condition", "severity"]]

rows = []
for backbone in (
    ["simple", "inception", "resnet18"] if small else ["simple", "inception", "vgg16", "resnet18"]
):
    clf = spinecls.DualHeadClassifier(
        backbone=backbone,
        lr=1e-4 if backbone == "vgg16" else 1e-3,
        max_epochs=1 if small else 12,
        random_state=0,
    ).fit(X_develop, y_develop, groups=develop["study_id"])
    report = dual_head_report(test[["condition", "severity"]], clf.predict(X_test))
    submission = to_submission(
        test, clf.predict_proba(X_test)[1], classes=clf.classes_[1], complete=False
    )
    rows.append(
        {
            "backbone": backbone,
            **{f"{h} f1": report.summary.loc[h, "f1"] for h in ("condition", "severity")},
            "competition score": rsna_score(solution_from_frame(test), submission),
        }
    )
print(pd.DataFrame(rows).set_index("backbone").round(4).to_string())
