"""What wrote a report: this tool's name, its version and the layout of what it writes.

Low in the package so that any module may stamp its output without importing the package face.
"""

from importlib.metadata import PackageNotFoundError, version as _version

__all__ = ["TOOL", "SCHEMA_VERSION", "RECORDING_SCHEMA", "__version__"]

TOOL = "keras-parity"
# summary.json's layout (and gradebook.json's, sweep.json's, bench.json's); 2 added tool, version, schema_version and
# typed findings; 3 added keras_side (where the Keras side came from), "kind" (what wrote the folder) and the
# tool's stamp to bench.json
SCHEMA_VERSION = 3
RECORDING_SCHEMA = 1  # the layout of a recorded Keras side (`parity record`); a reader refuses a newer one

try:
    __version__ = _version("keras-parity")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
