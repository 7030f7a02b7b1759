"""The one error type for bad input: the CLI prints it as one `error:` line and exits 2."""

__all__ = ["ParityInputError"]


class ParityInputError(ValueError):
    """Bad input from the user: what was received, what is expected, and the fix when obvious.

    The message names the argument as the caller gave it: a flag (`--seed`) from the command line,
    a keyword (`seed=`) from Python.
    """
