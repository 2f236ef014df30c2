"""The two-head loss of DualHeadClassifier and the weights it takes.

:class:`DualHeadLoss` adds the condition head's and the severity head's
cross-entropies, the severity one optionally class-weighted
(:func:`severity_class_weights`, e.g. the competition's 1 / 2 / 4), and optionally an
any-severe spinal term (:func:`any_severe_params`) that approximates the competition
score's fourth term at the level of one crop.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..labels import CONDITIONS, SEVERITIES, SEVERITY_WEIGHTS

__all__ = ["DualHeadLoss", "any_severe_params", "severity_class_weights", "severity_order"]


class DualHeadLoss(nn.Module):
    """Sum of the two heads' cross-entropies, plus an optional any-severe spinal term.

    The competition score averages four terms; the fourth, ``any_severe_spinal``, is a
    binary log loss per study on the largest P(severe) of its spinal levels. A crop
    model sees one level at a time, so the auxiliary term here approximates it per row:
    on the rows of the spinal canal condition, the binary cross-entropy of
    ``P(severe)`` (the severity head's softmax) against "this level is severe",
    averaged over those rows of the batch with the competition's row weights (1 / 2 /
    4 by the true severity), times ``any_severe_weight``. A batch without spinal rows
    adds nothing.

    Parameters
    ----------
    severity_weight : sequence of float, optional
        One weight per severity class, for the severity cross-entropy.
    any_severe_weight : float, default=0
        Factor of the any-severe term; 0 leaves it out.
    spinal_class : int, optional
        Condition code of the spinal canal rows (needed when ``any_severe_weight > 0``).
    severe_class : int, optional
        Severity code of ``severe``.
    metric_weight : sequence of float, optional
        The competition's row weight of each severity code.

    Notes
    -----
    ``y_true`` is ``(n, 2)``: condition and severity codes; or ``(n, 3)`` with each
    row's sample weight last (``DualHeadClassifier.fit(..., sample_weight=...)``). A
    head's cross-entropy is then the weighted mean over the batch, each row weighing
    its sample weight times its severity class weight (the severity head), as torch
    averages with class weights alone; the any-severe term's row weights multiply too.
    """

    def __init__(
        self,
        severity_weight=None,
        any_severe_weight=0.0,
        spinal_class=None,
        severe_class=None,
        metric_weight=None,
    ):
        super().__init__()
        weight = None if severity_weight is None else torch.as_tensor(severity_weight).float()
        self.register_buffer("severity_weight", weight)
        self.any_severe_weight = float(any_severe_weight)
        self.spinal_class = spinal_class
        self.severe_class = severe_class
        metric = None if metric_weight is None else torch.as_tensor(metric_weight).float()
        self.register_buffer("metric_weight", metric)

    def forward(self, y_pred, y_true):
        condition, severity = y_pred
        # (n, 2) class codes, or (n, 3): the codes and each row's sample weight.
        rows = y_true[:, 2].float() if y_true.shape[1] > 2 else None
        y_true = y_true[:, :2].long()
        loss = _cross_entropy(condition, y_true[:, 0], rows) + _cross_entropy(
            severity, y_true[:, 1], rows, self.severity_weight
        )
        if not self.any_severe_weight:
            return loss
        return loss + self.any_severe_weight * self.any_severe(severity, y_true, rows)

    def any_severe(self, severity, y_true, rows=None):
        """The weighted binary cross-entropy of P(severe) on the spinal rows (0 if none).

        ``rows``: each row's sample weight, multiplying the competition's row weight.
        """
        log_p = torch.log_softmax(severity, dim=1)
        s = self.severe_class
        log_severe = log_p[:, s]
        log_other = torch.cat([log_p[:, :s], log_p[:, s + 1 :]], dim=1).logsumexp(dim=1)
        is_severe = (y_true[:, 1] == s).float()
        bce = -(is_severe * log_severe + (1 - is_severe) * log_other)
        # A mask rather than indexing: no host-device synchronisation per batch.
        weight = self.metric_weight[y_true[:, 1]] * (y_true[:, 0] == self.spinal_class).float()
        if rows is not None:
            weight = weight * rows
        return (weight * bce).sum() / weight.sum().clamp_min(1e-12)


def _cross_entropy(logits, target, rows=None, class_weight=None):
    """Cross-entropy averaged with row weights (sample times class weight), as torch's
    ``weight=`` averages with class weights; without ``rows``, torch's own."""
    if rows is None:
        return nn.functional.cross_entropy(logits, target, weight=class_weight)
    weight = rows if class_weight is None else rows * class_weight[target]
    losses = nn.functional.cross_entropy(logits, target, reduction="none")
    return (weight * losses).sum() / weight.sum().clamp_min(1e-12)


def _rsna_table(classes: np.ndarray, what: str) -> dict:
    """The competition's row weight of each severity class (names or codes 0-2)."""
    table = {**SEVERITY_WEIGHTS, **dict(enumerate(SEVERITY_WEIGHTS[s] for s in SEVERITIES))}
    unknown = [c for c in classes.tolist() if c not in table]
    if unknown:
        raise ValueError(
            f"{what} needs severity labels {list(SEVERITIES)} or codes 0-2; got {unknown}"
        )
    return {c: float(table[c]) for c in classes.tolist()}


def severity_class_weights(weights, classes: np.ndarray) -> list[float] | None:
    """The severity loss's class weights, in the order of ``classes``.

    Parameters
    ----------
    weights : None, "rsna", sequence or dict
        As ``DualHeadClassifier(severity_weights=...)`` takes them.
    classes : ndarray
        The severity classes, sorted (``classes_[1]``).

    Raises
    ------
    ValueError
        A weight missing, one too many, negative or not finite, or ``"rsna"`` for
        labels other than the three severities (names or codes 0-2).
    """
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights != "rsna":
            raise ValueError(
                f"severity_weights must be None, 'rsna', a sequence or a dict; got {weights!r}"
            )
        return list(_rsna_table(classes, "severity_weights='rsna'").values())
    if isinstance(weights, dict):
        missing = [c for c in classes.tolist() if c not in weights]
        if missing:
            raise ValueError(f"severity_weights has no weight for class(es) {missing}")
        weights = [weights[c] for c in classes.tolist()]
    weights = [float(w) for w in weights]
    if len(weights) != len(classes):
        raise ValueError(
            f"severity_weights needs one weight per severity class {classes.tolist()}; "
            f"got {len(weights)}"
        )
    if not all(np.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"severity_weights must be non-negative numbers; got {weights}")
    return weights


def any_severe_params(weight: float, classes: list[np.ndarray]) -> dict | None:
    """:class:`DualHeadLoss`'s any-severe arguments for a classifier's classes.

    Returns
    -------
    dict or None
        Empty when ``weight`` is 0; None when the condition classes have no spinal
        canal class (``"Spinal Canal Stenosis"`` or code 0), so the term cannot apply.
    """
    if not weight:
        return {}
    metric = _rsna_table(classes[1], "any_severe_weight")
    conditions = classes[0].tolist()
    spinal = [i for i, c in enumerate(conditions) if c in (CONDITIONS[0], 0)]
    if not spinal:
        return None
    severe = [i for i, c in enumerate(metric) if c in (SEVERITIES[2], 2)]
    if not severe:
        raise ValueError(
            f"any_severe_weight needs a severe class; the severity classes are {list(metric)}"
        )
    return {
        "any_severe_weight": float(weight),
        "spinal_class": spinal[0],
        "severe_class": severe[0],
        "metric_weight": list(metric.values()),
    }


def severity_order(classes: np.ndarray) -> list[int]:
    """The severity classes' positions from the lowest grade to the highest.

    Parameters
    ----------
    classes : ndarray
        The severity classes, sorted (``classes_[1]``): the names of
        :data:`spinecls.SEVERITIES` (ordered normal_mild, moderate, severe, not
        alphabetically) or numbers (ordered by value, e.g. Pfirrmann grades 1-5).

    Returns
    -------
    list of int
        ``order[k]``: the position in ``classes`` of the ``k``-th lowest class.

    Raises
    ------
    ValueError
        For other labels, whose order cannot be known: encode them as numbers.

    Examples
    --------
    >>> severity_order(np.array(["moderate", "normal_mild", "severe"]))
    [1, 0, 2]
    """
    values = np.asarray(classes).tolist()
    if all(isinstance(v, str) for v in values) and set(values) <= set(SEVERITIES):
        return sorted(range(len(values)), key=lambda i: SEVERITIES.index(values[i]))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sorted(range(len(values)), key=lambda i: values[i])
    raise ValueError(
        f"ordinal=True needs severity labels that have an order: the names {list(SEVERITIES)} "
        f"or numbers (e.g. grades 1-5); got {values[:10]}: encode them as numbers, lowest "
        "grade first"
    )
