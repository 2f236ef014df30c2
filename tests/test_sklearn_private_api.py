"""The private scikit-learn names spinecls relies on, pinned.

scikit-learn has no public form of these. ``scikit-learn`` has no upper bound in
pyproject.toml (an upper bound in a library blocks every project that installs it beside a
newer release), so CI installs the newest release and these tests fail there, with the
name at fault, the day a release changes one of them (docs/installation.md).
"""

from __future__ import annotations

import ast
from numbers import Integral
from pathlib import Path

import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import HasMethods, Interval, InvalidParameterError, StrOptions
from sklearn.utils.metaestimators import _BaseComposition

from spinecls import DualHeadClassifier, LevelLocalizer, LumbarPatchTransformer
from spinecls.ensemble import DualHeadEnsemble
from spinecls.routing import ConditionGroupClassifier


class _Constrained(BaseEstimator):
    _parameter_constraints: dict = {
        "size": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"a", "b"})],
        "memory": [HasMethods(["cache"]), None],
    }

    def __init__(self, size=1, mode="a", memory=None):
        self.size = size
        self.mode = mode
        self.memory = memory


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"size": 0},
            r"^The 'size' parameter of _Constrained must be an int in the range \[1, inf\)",
        ),
        ({"mode": "c"}, r"^The 'mode' parameter of _Constrained must be a str among"),
        ({"memory": 3}, r"^The 'memory' parameter .* an object implementing 'cache' or None"),
    ],
)
def test_validate_params_reads_parameter_constraints_and_names_the_parameter(params, message):
    """BaseEstimator._validate_params and utils._param_validation (the three estimators)."""
    assert issubclass(InvalidParameterError, ValueError)
    _Constrained().set_params(size=3, mode="b")._validate_params()
    with pytest.raises(InvalidParameterError, match=message):
        _Constrained(**params)._validate_params()


@pytest.mark.parametrize("estimator", [DualHeadClassifier, LumbarPatchTransformer, LevelLocalizer])
def test_every_parameter_of_the_three_estimators_has_a_constraint(estimator):
    assert set(estimator._parameter_constraints) == set(estimator._get_param_names())


def test_get_param_names_lists_the_constructor_parameters():
    """BaseEstimator._get_param_names (the "did you mean" of unknown parameters)."""
    assert _Constrained._get_param_names() == ["memory", "mode", "size"]


class _Members(_BaseComposition):
    def __init__(self, estimators):
        self.estimators = estimators

    def get_params(self, deep=True):
        return self._get_params("estimators", deep=deep)

    def set_params(self, **params):
        self._set_params("estimators", **params)
        return self


def test_base_composition_gets_sets_and_validates_named_members():
    """metaestimators._BaseComposition (ConditionGroupClassifier, DualHeadEnsemble)."""
    assert issubclass(ConditionGroupClassifier, _BaseComposition)
    assert issubclass(DualHeadEnsemble, _BaseComposition)
    members = _Members([("a", LogisticRegression()), ("b", LogisticRegression())])
    assert members.get_params()["a__C"] == 1.0
    members.set_params(a__C=2.0, b=LogisticRegression(C=3.0))
    assert members.estimators[0][1].C == 2.0 and members.estimators[1][1].C == 3.0
    members._validate_names(["a", "b"])
    with pytest.raises(ValueError, match="Names provided are not unique"):
        members._validate_names(["a", "a"])
    with pytest.raises(ValueError, match="must not contain __"):
        members._validate_names(["a__b"])
    members._check_estimators_are_instances([LogisticRegression(), "drop"])
    with pytest.raises(TypeError, match="Expected an estimator instance"):
        members._check_estimators_are_instances([LogisticRegression])


def test_spinecls_imports_no_other_private_scikit_learn_name():
    """Every other scikit-learn name spinecls imports is public."""
    validation = "sklearn.utils._param_validation"
    allowed = {(validation, n) for n in ("HasMethods", "Interval", "StrOptions")}
    allowed.add(("sklearn.utils.metaestimators", "_BaseComposition"))
    found = set()
    for path in Path(__file__).resolve().parents[1].joinpath("src", "spinecls").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sklearn"):
                for alias in node.names:
                    if "._" in node.module or alias.name.startswith("_"):
                        found.add((node.module, alias.name))
    assert found <= allowed, sorted(found - allowed)
