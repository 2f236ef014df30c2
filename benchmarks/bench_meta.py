"""The competition score of one pipeline, one pipeline per condition group, and both averaged.

Run: ``python benchmarks/bench_meta.py [--studies 20] [--epochs 8] [--seeds 0 1]``.
On a synthetic set (:func:`spinecls.make_synthetic_rsna`), with the studies split into a
development and a test set (:func:`spinecls.model_selection.split_by_study`), fits

- ``one``: a Pipeline of LumbarPatchTransformer and DualHeadClassifier on all rows;
- ``per_group``: a ConditionGroupClassifier of three such pipelines (spinal, foraminal,
  subarticular), each on its group's rows;
- ``ensemble``: a DualHeadEnsemble of the two above, frozen (nothing is refitted), by
  the arithmetic and the geometric mean,

and prints each one's fit time and competition score (weighted log loss, lower is better)
on the test studies, with the score of the training set's severity prior for reference.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

import spinecls
from spinecls import DualHeadClassifier, LumbarPatchTransformer
from spinecls.ensemble import DualHeadEnsemble
from spinecls.metrics import rsna_scorer
from spinecls.model_selection import split_by_study
from spinecls.routing import CONDITION_GROUPS, ConditionGroupClassifier


def pipeline(epochs: int, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("patches", LumbarPatchTransformer(patch_size=48, output_size=32)),
            ("clf", DualHeadClassifier(max_epochs=epochs, random_state=seed)),
        ]
    )


class Prior:
    """The training rows' severity frequencies for every row: the score to beat."""

    def fit(self, X, y):
        severity = np.asarray(y)[:, 1]
        self.classes_ = [np.unique(np.asarray(y)[:, 0]), np.unique(severity)]
        self.prior_ = (severity[:, None] == self.classes_[1]).mean(axis=0)
        return self

    def predict_proba(self, X):
        n = len(X)
        condition = np.full((n, len(self.classes_[0])), 1 / len(self.classes_[0]))
        return [condition, np.tile(self.prior_, (n, 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = spinecls.make_synthetic_rsna(f"{tmp}/rsna", n_studies=args.studies, random_state=0)
        frame = spinecls.load_rsna(root)
        develop, test = split_by_study(frame, test_size=args.test_size, random_state=0)
        train, held_out = frame.iloc[develop], frame.iloc[test]
        y_train = train[["condition", "severity"]]
        y_test = held_out[["condition", "severity"]]
        print(
            f"{args.studies} synthetic studies: {len(train)} training rows, {len(held_out)} "
            f"test rows ({held_out.study_id.nunique()} studies), {args.epochs} epochs, 32 px"
        )
        prior = Prior().fit(train, y_train)
        print(f"{'severity prior':>16}: score {-rsna_scorer(prior, held_out, y_test):.4f}")
        for seed in args.seeds:
            models = {
                "one": pipeline(args.epochs, seed),
                "per_group": ConditionGroupClassifier(
                    [(group, pipeline(args.epochs, seed)) for group in CONDITION_GROUPS]
                ),
            }
            for name, model in models.items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    model.fit(train, y_train, clf__groups=train["study_id"])
                elapsed = time.perf_counter() - start
                score = -rsna_scorer(model, held_out, y_test)
                print(f"{name:>10} seed {seed}: score {score:.4f}   fit {elapsed:6.1f} s")
            frozen = [(name, FrozenEstimator(model)) for name, model in models.items()]
            for mean in ("arithmetic", "geometric"):
                ensemble = DualHeadEnsemble(frozen, mean=mean).fit(train, y_train)
                score = -rsna_scorer(ensemble, held_out, y_test)
                print(f"{'ensemble':>10} seed {seed}: score {score:.4f}   ({mean} mean of the two)")


if __name__ == "__main__":
    main()
