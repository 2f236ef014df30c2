"""The command line: ``spinecls synth``, ``demo``, ``train``, ``localize``, ``predict``, ...

The parser and :func:`main` are in ``_main``; the work of each command in ``_commands``;
the ``--scheduler`` option (a dask client, joblib's dask backend) in ``_scheduler``.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
