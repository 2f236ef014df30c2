"""`import spinecls` is light: torch, albumentations and OpenCV load when an estimator is used."""

from __future__ import annotations

import json
import subprocess
import sys

import spinecls

HEAVY = ("torch", "albumentations", "cv2", "skorch", "sklearn")


def _loaded(code: str) -> list[str]:
    """The HEAVY modules in sys.modules after running ``code`` in a fresh interpreter."""
    script = (
        f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_import_spinecls_loads_no_heavy_library():
    assert _loaded("import spinecls") == []
    assert _loaded("import spinecls; spinecls.SEVERITIES; spinecls.load_rsna") == []
    assert _loaded("from spinecls.datasets import load_rsna") == []
    # The probe sees a heavy library a lazy name loads (sklearn: a second torch import in a
    # subprocess would cost seconds; test_every_public_name_is_listed_and_resolves shows that
    # spinecls.DualHeadClassifier resolves to the estimator).
    assert _loaded("import spinecls; spinecls.model_selection") == ["sklearn"]


def test_every_public_name_is_listed_and_resolves():
    assert "DualHeadClassifier" in dir(spinecls) and "metrics" in dir(spinecls)
    for name in spinecls.__all__:
        assert name in dir(spinecls)
        assert getattr(spinecls, name) is not None
    from spinecls.classifier import DualHeadClassifier

    assert spinecls.DualHeadClassifier is DualHeadClassifier
    assert spinecls.metrics.dual_head_report.__module__ == "spinecls.metrics"
    try:
        spinecls.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no attribute 'no_such_name'" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_the_old_classifier_names_still_import():
    from spinecls._net import DualHeadLoss as Loss
    from spinecls.classifier import DualHeadLoss, DualHeadNet, HeadAccuracy

    assert (
        DualHeadLoss is Loss
        and DualHeadNet.__module__ == HeadAccuracy.__module__ == "spinecls._net"
    )
