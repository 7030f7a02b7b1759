"""keras-parity: prove, sample by sample, that hand-written NumPy layers compute what Keras computes.

    import parity
    report = parity.check(Affine=Affine, Relu=Relu)   # or parity.check("my_layers.py"), parity.check(globals())
    report.verdict, report.findings, report.samples, report.figure("dead_relu_map"), report.save("out/")

`parity.testing` holds what a test suite imports (assert_parity, the keras_parity fixture).
Everything not listed in __all__ may change without notice.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from parity.api import check, run
from parity.errors import ParityInputError
from parity.findings import Finding
from parity.result import Report

try:
    __version__ = _version("keras-parity")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["check", "run", "Report", "Finding", "ParityInputError", "__version__"]
