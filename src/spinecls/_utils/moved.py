"""Where each module moved when the package became sub-packages (0.2), for old pickles.

A joblib or pickle file of a fitted estimator names the classes and functions it holds
by their module: files written before the move name ``spinecls._net.DualHeadNet``,
``spinecls._loss.DualHeadLoss``, ``spinecls._meta.HeadClasses``,
``spinecls._accelerate.PrecisionNet``, ``spinecls._volumes.collate_stacks``. The finder
below answers each old name with the module that now holds the code (the same module
object under both names), so those files load unchanged. Model files written by
:func:`spinecls.persistence.save` hold no class paths and need none of this.

The table lists every module that moved, not only those pickles name, so that old
private import paths quoted in notes and notebooks keep importing too.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "spinecls._accelerate": "spinecls._utils.accelerate",
    "spinecls._atomic": "spinecls._utils.atomic",
    "spinecls._cache": "spinecls.preprocessing._cache",
    "spinecls._classifier_checks": "spinecls.classifier._checks",
    "spinecls._classifier_state": "spinecls.classifier._state",
    "spinecls._commands": "spinecls.cli._commands",
    "spinecls._competition": "spinecls.metrics._competition",
    "spinecls._demo_end_to_end": "spinecls.demo._end_to_end",
    "spinecls._demo_report": "spinecls.demo._report",
    "spinecls._extract": "spinecls.preprocessing._extract",
    "spinecls._levels": "spinecls.localization._levels",
    "spinecls._localize": "spinecls.localization._localize",
    "spinecls._localizer_nets": "spinecls.localization._nets",
    "spinecls._loss": "spinecls.classifier._loss",
    "spinecls._meta": "spinecls._utils.dual_head",
    "spinecls._model_file": "spinecls.persistence._model_file",
    "spinecls._net": "spinecls.classifier._net",
    "spinecls._param_codec": "spinecls.persistence._param_codec",
    "spinecls._patch_params": "spinecls.preprocessing._params",
    "spinecls._patch_rows": "spinecls.preprocessing._rows",
    "spinecls._pipeline_file": "spinecls.persistence._pipeline_file",
    "spinecls._point_frames": "spinecls.localization._point_frames",
    "spinecls._reliability": "spinecls.metrics._reliability",
    "spinecls._scheduler": "spinecls.cli._scheduler",
    "spinecls._score": "spinecls.metrics._score",
    "spinecls._scorers": "spinecls.metrics._scorers",
    "spinecls._series_planes": "spinecls.localization._series_planes",
    "spinecls._validation": "spinecls._utils.validation",
    "spinecls._volumes": "spinecls.localization._volumes",
}
"""Old module name -> the module that holds its code now."""


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module name (:data:`MOVED`) as the module that replaced it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        # The module itself, not a copy: its classes keep one identity under both names.
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module) -> None:
        """Nothing to run; give back the module's own spec, which the import system just
        replaced with the old name's (relative imports inside the module read it)."""
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put one :class:`MovedModules` after the regular finders (real modules win)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
