"""The study's three-model comparison, end to end (what ``spinecls demo`` runs).

:func:`run_demo` and its steps are in ``_run``; the table's rows, baselines and figures
in ``_report``; the localizer stage in ``_end_to_end``.
"""

from ._report import METRICS as METRICS  # the table's columns
from ._report import SEVERITY_EXTRAS as SEVERITY_EXTRAS
from ._run import CALIBRATIONS, MODELS, DemoConfig, run_demo, split_by_study

__all__ = ["CALIBRATIONS", "DemoConfig", "MODELS", "run_demo", "split_by_study"]
