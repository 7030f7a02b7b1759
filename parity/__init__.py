"""keras-parity: prove, sample by sample, that hand-written NumPy layers compute what Keras computes.

    import parity
    report = parity.check(Affine=Affine, Relu=Relu)   # or parity.check("my_layers.py"), parity.check(globals())
    report.verdict, report.findings, report.samples, report.figure("dead_relu_map"), report.save("out/")

`parity.testing` holds what a test suite imports (assert_parity, the keras_parity fixture).
Everything not listed in __all__ may change without notice.
"""

from parity.api import check, run
from parity.errors import ParityInputError
from parity.compare.findings import Finding
from parity.result import Report
from parity.version import __version__

__all__ = ["check", "run", "Report", "Finding", "ParityInputError", "__version__"]
