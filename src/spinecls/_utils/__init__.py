"""Private helpers shared by the sub-packages (nothing here is public API).

- ``validation``: checks and message formats used in several places;
- ``atomic``: write-then-rename for files and directories, and the rules for what may be
  replaced;
- ``accelerate``: mixed precision, channels-last, data-loader workers and
  ``accelerate`` support for the skorch nets;
- ``dual_head``: what the dual-head estimators share (``HeadClasses``,
  ``HeadProbabilities``, predict and score, member routing).

Importing this package imports none of them: ``validation`` and ``atomic`` load no torch.
"""
