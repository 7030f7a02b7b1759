"""The error types a door reports to a person: bad input, and a report that could not be written.

The CLI prints a ParityInputError as one `error:` line and exits 2; the Python API raises it. Its
message names each argument by its canonical name (a RunConfig field) through `arg("batch_size")`,
and the door that shows it spells that name its own way: a flag (`--batch-size`) on the command
line, a keyword (`batch_size=`) from Python. No module below a door knows which door called it.
A ReportWriteError (a full disk, a permission taken away, any OSError while the report folder is
written) is one `error:` line and exit 3 on the command line; the previous report is left as it was.
A ToolError (keras-parity itself could not finish: a grading cluster left with no worker) is also one
`error:` line and exit 3; what was finished is kept, and the message says where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ParityInputError", "ReportWriteError", "ToolError", "CheckTimedOut", "Setting", "SETTINGS", "arg",
           "arg_given", "spelled", "first_line"]

DOORS = ("cli", "python")
_MARK = "\x1f"  # wraps a canonical name inside a message until a door spells it; never typed by a person
_VALUE = "\x1e"  # after a name: its value follows (`--layers x.py` on the command line, `layers=x.py` in Python)
_NAMED = re.compile(_MARK + r"([a-z_]+)" + _MARK + f"({_VALUE})?")



@dataclass(frozen=True)
class Setting:
    """How the doors spell one run setting (a RunConfig field) and what it takes."""

    flag: str  # on the command line
    keyword: str  # from Python; "" where Python has none
    kind: str  # int | number | text | path | optimizer | classes | switch (its flag turns it on) | off (turns it off)

    @property
    def dest(self) -> str:
        """argparse's name for the flag's value."""
        return "classes" if self.kind == "classes" else self.flag.lstrip("-").replace("-", "_")


# The one table of the run settings' names (parity.api, parity.cli_commands and the messages below derive theirs
# from it), in the order the Python door checks them. Any other argument named in a message (layers, format,
# reference) is spelled from its name: --format, format=.
SETTINGS = {
    "scenario": Setting("--scenario", "scenario", "text"),
    "dtype": Setting("--dtype", "dtype", "text"),
    "seed": Setting("--seed", "seed", "int"),
    "data_seed": Setting("--data-seed", "data_seed", "int"),
    "samples": Setting("--samples", "samples", "int"),
    "train": Setting("--train", "train", "int"),
    "epochs": Setting("--epochs", "epochs", "int"),
    "lr": Setting("--lr", "lr", "number"),
    "optimizer": Setting("--optimizer", "optimizer", "optimizer"),
    "batch_size": Setting("--batch-size", "batch_size", "int"),
    "model_path": Setting("--model", "model", "path"),
    "data_path": Setting("--data", "data", "path"),
    "config_path": Setting("--config", "config", "path"),
    "out": Setting("--out", "out", "path"),
    "plots": Setting("--no-plots", "plots", "off"),
    "all_gradients": Setting("--all-gradients", "all_gradients", "switch"),
    # A class mapping is a keyword of its own in Python (`Affine=Dense`): `classes` has no keyword to spell.
    "classes": Setting("--class", "", "classes"),
    "quiet": Setting("--quiet", "", "switch"),  # Python prints nothing anyway
}


def arg(name: str) -> str:
    """The argument `name` (a RunConfig field, or `layers`, `out`, `format`) in a message, spelled later by the door."""
    return f"{_MARK}{name}{_MARK}"


def arg_given(name: str, value) -> str:
    """The argument `name` with the value it was given, as the door spells the pair: `--layers x.py`, `layers=x.py`."""
    return f"{arg(name)}{_VALUE}{value}"


def spelled(name: str, door: str = "cli") -> str:
    """How `door` spells the argument `name`: `--batch-size` on the command line, `batch_size=` from Python."""
    setting = SETTINGS.get(name)
    if door == "python":
        keyword = name if setting is None else setting.keyword
        return f"{keyword}=" if keyword else ""
    return "--" + name.replace("_", "-") if setting is None else setting.flag


class ParityInputError(ValueError):
    """Bad input from the user: what was received, what is expected, and the fix when obvious.

    `argument` is the canonical name of the first argument the message names (None when it names none);
    `door` says how names are spelled when the error is shown ("cli" until a door says otherwise).
    """

    door = "cli"

    @property
    def argument(self) -> str | None:
        found = _NAMED.search(str(self.args[0]) if self.args else "")
        return found.group(1) if found else None

    def for_door(self, door: str) -> "ParityInputError":
        """This error, spelled for `door`; returns itself, so a door can `raise exc.for_door("python")`."""
        self.door = door
        return self

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        def spell(m: re.Match) -> str:
            name = spelled(m.group(1), self.door)
            return name + (" " if m.group(2) and self.door == "cli" else "")

        return _NAMED.sub(spell, text)


class ReportWriteError(OSError):
    """The report folder could not be written: what failed and where; the previous report is intact."""


class ToolError(RuntimeError):
    """keras-parity itself could not finish (not the user's input, not their layers): what failed, and
    what was kept of the work done so far."""


class CheckTimedOut(Exception):
    """A check ran past its --timeout: what it was running then; nothing of the report was written."""


def first_line(exc: BaseException, limit: int | None = None, empty: str = "") -> str:
    """An exception's message as one line for a person: its first line, cut at `limit` characters; `empty`
    (for example the exception's class name) when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else empty
