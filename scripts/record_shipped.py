"""Record the built-in scenarios' Keras side into the package: `python scripts/record_shipped.py [SCENARIO ...]`
(every shipped scenario when none is named; naming some leaves the others' files as they are).

One `parity record` per scenario and dtype, written to parity/keras_side/recordings/<scenario>-<dtype>.npz,
the recordings `--reference seed-float32` (and the others) name. Run it again whenever the Keras side of a
built-in scenario changes (a new Keras, a change to the model, the fit or the probes):
`parity record --verify seed-float32` says when that is needed.
"""

import sys

from parity.cli import command
from parity.keras_side.recording_file import NOT_SHIPPED, SHIPPED
from parity.settings.config import DTYPES
from parity.settings.scenarios import SCENARIOS

if __name__ == "__main__":
    SHIPPED.mkdir(exist_ok=True)
    shipped = [s for s in SCENARIOS if s not in NOT_SHIPPED]
    named = sys.argv[1:] or shipped
    if set(named) - set(shipped):
        sys.exit(f"not a shipped scenario: {', '.join(sorted(set(named) - set(shipped)))} (shipped: {', '.join(shipped)})")
    for scenario in named:
        for dtype in DTYPES:
            out = SHIPPED / f"{scenario}-{dtype}.npz"
            if command(["record", "--scenario", scenario, "--dtype", dtype, "--out", str(out)]) != 0:
                sys.exit(f"recording {out.name} failed")
