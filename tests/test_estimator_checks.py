"""scikit-learn's estimator checks on the three estimators.

Their tags say what they take (no 2-D numeric array), so scikit-learn skips them, and a
downstream ``parametrize_with_checks`` passes. To run the API checks (``legacy=False``)
all the same, each is tagged ``two_d_array=True`` in a subclass here: the checks listed by
:func:`spinecls.estimator_checks.expected_failed_checks` are strict expected failures (a
listed check that starts to pass fails the suite, so the list stays true), and every
other check must pass. The contracts of the listed checks run on each estimator's own
input in test_classifier_contract.py, test_preprocessing.py and test_localization.py.
"""

from __future__ import annotations

import warnings

import pytest
from sklearn.exceptions import SkipTestWarning
from sklearn.utils.estimator_checks import estimator_checks_generator

from spinecls import DualHeadClassifier, LevelLocalizer, LumbarPatchTransformer
from spinecls.ensemble import DualHeadEnsemble
from spinecls.estimator_checks import expected_failed_checks
from spinecls.routing import ConditionGroupClassifier

ESTIMATORS = [
    DualHeadClassifier(max_epochs=1, batch_size=8, valid_size=None, random_state=0),
    LumbarPatchTransformer(patch_size=8),
    LevelLocalizer(max_epochs=1, random_state=0),
]


def _as_table_estimator(estimator):
    """``estimator`` in a subclass tagged as taking 2-D arrays, so that the checks run."""

    class Checked(type(estimator)):
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.two_d_array = True
            return tags

    Checked.__name__ = Checked.__qualname__ = type(estimator).__name__
    return Checked(**estimator.get_params(deep=False))


def _cases():
    for estimator in ESTIMATORS:
        checked = _as_table_estimator(estimator)
        for case in estimator_checks_generator(
            checked,
            legacy=False,
            expected_failed_checks=expected_failed_checks(checked),
            mark="xfail",
            xfail_strict=True,
        ):
            # a pytest.param marked xfail (strict) where a failure is expected, else a pair
            values, marks = (case.values, case.marks) if hasattr(case, "marks") else (case, ())
            name = getattr(values[1], "func", values[1]).__name__
            yield pytest.param(*values, marks=marks, id=f"{type(estimator).__name__}-{name}")


@pytest.mark.parametrize(("estimator", "check"), list(_cases()))
def test_sklearn_api_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_honest_tags_make_scikit_learn_skip_the_array_checks(estimator):
    """A downstream parametrize_with_checks on the estimators as they are passes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checks = list(estimator_checks_generator(estimator, legacy=False))
    assert [getattr(c, "func", c).__name__ for _, c in checks] == ["check_estimator_cloneable"]
    assert any(issubclass(w.category, SkipTestWarning) for w in caught)
    for instance, check in checks:
        check(instance)


def test_every_listed_check_is_one_that_runs():
    for estimator in ESTIMATORS:
        checked = _as_table_estimator(estimator)
        names = {
            getattr(c, "func", c).__name__
            for _, c in estimator_checks_generator(checked, legacy=False)
        }
        assert set(expected_failed_checks(checked)) <= names
    assert expected_failed_checks(LumbarPatchTransformer) == {}  # a class, not an instance


def test_the_tags_say_what_each_estimator_takes():
    classifier = DualHeadClassifier().__sklearn_tags__()
    assert not classifier.input_tags.two_d_array and classifier.input_tags.three_d_array
    assert classifier.target_tags.required and classifier.target_tags.multi_output
    assert not classifier.target_tags.single_output
    assert classifier.estimator_type == "classifier"
    assert classifier.non_deterministic
    assert not DualHeadClassifier(random_state=0).__sklearn_tags__().non_deterministic

    transformer = LumbarPatchTransformer().__sklearn_tags__()
    assert not transformer.input_tags.two_d_array and not transformer.requires_fit
    assert not transformer.target_tags.required

    localizer = LevelLocalizer().__sklearn_tags__()
    assert not localizer.input_tags.two_d_array and localizer.target_tags.required
    assert localizer.non_deterministic
    assert not LevelLocalizer(random_state=0).__sklearn_tags__().non_deterministic

    for meta in (ConditionGroupClassifier([]), DualHeadEnsemble([])):
        tags = meta.__sklearn_tags__()
        assert tags.target_tags.multi_output and not tags.target_tags.single_output
    assert not ConditionGroupClassifier([]).__sklearn_tags__().input_tags.two_d_array
    # an ensemble takes what its members take
    images = DualHeadEnsemble([("a", "drop"), ("b", DualHeadClassifier())]).__sklearn_tags__()
    assert images.input_tags.three_d_array and not images.input_tags.two_d_array
