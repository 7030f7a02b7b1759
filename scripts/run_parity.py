"""The parity script: `python scripts/run_parity.py [run options]` is `parity run [run options]`."""

import sys

from parity.cli import command

if __name__ == "__main__":
    sys.exit(command(["run", *sys.argv[1:]]))
