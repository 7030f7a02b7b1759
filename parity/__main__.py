"""`python -m parity` is the `parity` command."""

import os
import sys

# `python -m` puts the current folder first on sys.path, where a learner's numpy.py or keras.py would be imported
# in the library's place; the `parity` console script does not, and neither does this (as `python -P` would).
# A dotted --layers module is still found from here: the importer adds the current folder itself, after checking it.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from parity.cli import command  # noqa: E402  (after the current folder left the path)

sys.exit(command())
