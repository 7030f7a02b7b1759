"""The one error type for bad input; the CLI prints it as one `error:` line and exits 2."""

__all__ = ["UsageError"]


class UsageError(ValueError):
    """Bad input from the user: what was received, what is expected, and the fix when obvious."""
