"""scikit-learn's estimator checks on spinecls's estimators: what they test, and why not the rest.

The estimators' tags say what they take: :class:`~spinecls.DualHeadClassifier` 4-D image
batches ``(n, channels, height, width)``, :class:`~spinecls.LumbarPatchTransformer` and
:class:`~spinecls.LevelLocalizer` DataFrames of rows read by column name. None takes a
2-D numeric array, so scikit-learn's checks, which feed them, skip all three with a
``SkipTestWarning``, and a downstream project's ``parametrize_with_checks`` passes::

    from sklearn.utils.estimator_checks import parametrize_with_checks
    from spinecls import DualHeadClassifier, LevelLocalizer, LumbarPatchTransformer
    from spinecls.estimator_checks import expected_failed_checks

    @parametrize_with_checks(
        [DualHeadClassifier(max_epochs=1), LumbarPatchTransformer(), LevelLocalizer()],
        legacy=False,
        expected_failed_checks=expected_failed_checks,
    )
    def test_sklearn_compatible_estimator(estimator, check):
        check(estimator)

To run scikit-learn's API checks (``legacy=False``) on them all the same, as spinecls's
own suite does, tag a subclass ``two_d_array=True``: :func:`expected_failed_checks` lists
the checks that then fail, with the reason. Seven feed numeric tables; spinecls's suite
runs each of their contracts on the estimator's own input (tests/test_classifier_contract.py,
tests/test_preprocessing.py, tests/test_localization.py). One is a design choice.
"""

from __future__ import annotations

__all__ = ["EXPECTED_FAILED_CHECKS", "expected_failed_checks"]

_TABLE_CHECKS = (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
)

_INPUTS = {
    "DualHeadClassifier": "4-D image batches (n, channels, height, width)",
    "LumbarPatchTransformer": (
        "a DataFrame of rows (study_id, series_id, instance_number, x, y) whose DICOM "
        "files it opens"
    ),
    "LevelLocalizer": "a DataFrame of series (load_series) and one of points (load_rsna)",
}

EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    name: {check: f"feeds a 2-D numeric table; it takes {takes}" for check in _TABLE_CHECKS}
    for name, takes in _INPUTS.items()
}
"""Per estimator class name, the API checks (``legacy=False``) that fail when run, and why."""

EXPECTED_FAILED_CHECKS["DualHeadClassifier"]["check_do_not_raise_errors_in_init_or_set_params"] = (
    "design choice: the check passes the **module_params catch-all by its own name "
    "(module_params=...); an unknown keyword raises TypeError at construction, as in Python "
    "and skorch, so that a typo cannot vanish on clone"
)


def expected_failed_checks(estimator) -> dict[str, str]:
    """The scikit-learn checks that fail on ``estimator``, with the reason for each.

    For ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``
    and ``check_estimator``. An estimator of another class, or a subclass of none of
    spinecls's three, gets an empty dict.

    Parameters
    ----------
    estimator : estimator instance

    Returns
    -------
    dict of str to str
        ``{check name: reason}``.

    Examples
    --------
    >>> from spinecls import LevelLocalizer
    >>> reasons = expected_failed_checks(LevelLocalizer())
    >>> len(reasons), reasons["check_fit_score_takes_y"][:30]
    (7, 'feeds a 2-D numeric table; it ')
    """
    for cls in type(estimator).__mro__:
        if cls.__module__.startswith("spinecls") and cls.__name__ in EXPECTED_FAILED_CHECKS:
            return dict(EXPECTED_FAILED_CHECKS[cls.__name__])
    return {}
