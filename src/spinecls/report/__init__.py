"""An HTML report of a run: where the levels were found, what the model graded, what to check.

:func:`write_report` turns the outputs of ``spinecls localize`` (the located points) and
``spinecls predict`` (the submission) into a folder of static pages, one per study, that
opens in any browser from the file system: ``spinecls report`` and ``spinecls predict
--report DIR`` on the command line. See the "Study reports" page of the documentation.
"""

from ._write import write_report

__all__ = ["write_report"]
