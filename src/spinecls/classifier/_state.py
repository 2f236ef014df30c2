"""What a fitted :class:`~spinecls.DualHeadClassifier` keeps in its model file.

:class:`ClassifierFileMixin` is the classifier's side of :mod:`spinecls.persistence`:
``save`` and ``load`` (from :class:`~spinecls.persistence.PersistenceMixin`), the fitted
attributes the file holds (``classes_``, ``input_shape_``, ``history_``,
``temperatures_``) and how they come back, through the classifier's own parameter checks,
as a fitted skorch net.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._utils.dual_head import HeadClasses
from ..persistence._base import PersistenceMixin
from . import _net
from ._calibration import check_temperatures

__all__ = ["ClassifierFileMixin"]


class ClassifierFileMixin(PersistenceMixin):
    """``save``, ``load`` and the persisted state of a DualHeadClassifier."""

    _persisted_fields = ("classes", "input_shape", "history", "temperatures", "class_prior")
    # files written before calibration, and before the class shares were kept
    _persisted_defaults = {"temperatures": None, "class_prior": None}
    _unsaved_params = ("accelerator",)

    def _get_persisted(self) -> tuple[dict, dict]:
        check_is_fitted(self, "net_")
        fitted = {
            "classes": [c.tolist() for c in self.classes_],
            "input_shape": list(self.input_shape_),
            "history": self.history_.to_list(),
            "temperatures": None if self.temperatures_ is None else self.temperatures_.tolist(),
            "class_prior": [p.tolist() for p in self.class_prior_],
        }
        return fitted, self.net_.module_.state_dict()

    def _set_persisted(self, fitted: dict, state_dict: dict) -> None:
        classes, shape = fitted["classes"], fitted["input_shape"]  # types checked on reading
        if len(classes) != 2 or len(shape) != 3:
            raise ValueError("a DualHeadClassifier has two 'classes' lists and a 3-D 'input_shape'")
        self._check_params()
        self.net_ = _net.restore_net(
            self.get_params(deep=False),
            classes=classes,
            input_shape=shape,
            state_dict=state_dict,
            history=fitted["history"],
        )
        self.classes_ = HeadClasses(np.asarray(c) for c in classes)
        self.input_shape_, self.n_features_in_ = tuple(shape), shape[0]
        self.history_ = self.net_.history
        self.temperatures_ = check_temperatures(fitted["temperatures"])
        self.class_prior_ = _check_class_prior(fitted["class_prior"], classes)


def _check_class_prior(value, classes) -> list[np.ndarray] | None:
    """Class shares read from a model file: None, or one share per class of each head."""
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == len(classes)
    ok = ok and all(
        isinstance(shares, list)
        and len(shares) == len(head)
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in shares
        )
        for shares, head in zip(value, classes)
    )
    if not ok:
        raise ValueError(
            f"'class_prior' must be null or one share in [0, 1] per class of each head; "
            f"got {value!r}"
        )
    return [np.asarray(shares, dtype=np.float64) for shares in value]
