"""scikit-learn's estimator checks on both estimators.

Every check that can apply to image estimators must pass. The ones that cannot (they
feed 2-D numeric tables, 1-D targets or sparse matrices) are listed with a one-line
reason, as imbalanced-learn's and Keras's own suites do, and marked strict expected
failures: a listed check that starts to pass fails the suite, so the list stays true.
The valuable checks these lists skip run on image batches in
test_classifier_contract.py.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from spinecls import DualHeadClassifier, LumbarPatchTransformer

TABLE = "feeds 2-D numeric tables; the classifier takes 4-D image batches (n, C, H, W)"
ROWS = (
    "feeds numeric arrays; the transformer reads DataFrame rows with study_id, series_id, "
    "instance_number, x, y and opens DICOM files"
)
SPARSE = "feeds sparse matrices; inputs are dense"

CLASSIFIER_CANNOT = {
    "check_fit_score_takes_y": TABLE,
    "check_estimators_overwrite_params": TABLE,
    "check_dont_overwrite_parameters": TABLE,
    "check_estimators_fit_returns_self": TABLE,
    "check_readonly_memmap_input": TABLE,
    "check_n_features_in_after_fitting": TABLE,
    "check_positive_only_tag_during_fit": TABLE,
    "check_estimators_dtypes": TABLE,
    "check_complex_data": TABLE,
    "check_dtype_object": TABLE,
    "check_estimators_empty_data_messages": TABLE,
    "check_pipeline_consistency": TABLE,
    "check_estimators_nan_inf": TABLE + " (NaN images are rejected: test_classifier)",
    "check_estimator_sparse_tag": SPARSE,
    "check_estimator_sparse_array": SPARSE,
    "check_estimator_sparse_matrix": SPARSE,
    "check_estimators_pickle": TABLE + " (pickling is tested on images: test_classifier)",
    "check_f_contiguous_array_estimator": TABLE,
    "check_classifier_data_not_an_array": TABLE,
    "check_classifiers_one_label": TABLE + " and a 1-D y; y has two columns",
    "check_classifiers_classes": TABLE + " and a 1-D y; y has two columns",
    "check_classifier_multioutput": TABLE,
    "check_classifiers_train": TABLE + " and a 1-D y; y has two columns",
    "check_classifiers_regression_target": TABLE + " and a continuous 1-D y",
    "check_methods_sample_order_invariance": TABLE,
    "check_methods_subset_invariance": TABLE,
    "check_fit2d_1sample": TABLE,
    "check_fit2d_1feature": TABLE,
    "check_dict_unchanged": TABLE,
    "check_fit_idempotent": TABLE,
    "check_fit_check_is_fitted": TABLE,
    "check_n_features_in": TABLE,
    "check_fit2d_predict1d": TABLE,
    "check_requires_y_none": TABLE,
    "check_do_not_raise_errors_in_init_or_set_params": (
        "passes the **module_params catch-all by its own name, module_params=...; an "
        "unknown keyword raises TypeError at construction, as in Python and skorch"
    ),
}

TRANSFORMER_CANNOT = {
    name: ROWS
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_complex_data",
        "check_dtype_object",
        "check_estimators_empty_data_messages",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformers_unfitted_stateless",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    )
} | {
    "check_estimator_sparse_tag": SPARSE,
    "check_estimator_sparse_array": SPARSE,
    "check_estimator_sparse_matrix": SPARSE,
}


class ImageChecked(DualHeadClassifier):
    """DualHeadClassifier tagged as taking 2-D arrays for the checks' sake only.

    Its honest tags (no 2-D input) make scikit-learn skip every check but one; with
    this tag the checks run, and those that feed tables fail as listed above.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


def _cases():
    estimators = [
        (
            ImageChecked(max_epochs=1, batch_size=8, valid_size=None, random_state=0),
            CLASSIFIER_CANNOT,
        ),
        (LumbarPatchTransformer(patch_size=8), TRANSFORMER_CANNOT),
    ]
    for estimator, cannot in estimators:
        for instance, check in estimator_checks_generator(estimator, legacy=True):
            name = getattr(check, "func", check).__name__
            marks = [pytest.mark.xfail(strict=True, reason=cannot[name])] if name in cannot else []
            yield pytest.param(
                instance, check, marks=marks, id=f"{type(estimator).__name__}-{name}"
            )


@pytest.mark.parametrize(("estimator", "check"), list(_cases()))
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_every_listed_check_exists():
    names = {
        getattr(check, "func", check).__name__
        for estimator in (ImageChecked(), LumbarPatchTransformer())
        for _, check in estimator_checks_generator(estimator, legacy=True)
    }
    assert set(CLASSIFIER_CANNOT) <= names and set(TRANSFORMER_CANNOT) <= names


def test_the_classifier_tags_say_what_it_takes():
    tags = DualHeadClassifier().__sklearn_tags__()
    assert not tags.input_tags.two_d_array and tags.input_tags.three_d_array
    assert tags.target_tags.required and tags.target_tags.multi_output
    assert not tags.target_tags.single_output
    assert tags.estimator_type == "classifier"
    assert tags.non_deterministic
    assert not DualHeadClassifier(random_state=0).__sklearn_tags__().non_deterministic
