"""The report's pictures by name, in the order they are drawn and listed (no matplotlib here: the Report checks a
name without importing it). Each name is also its drawing function's in parity.report.plots and its file's stem."""

__all__ = ["PICTURE_NAMES"]

PICTURE_NAMES = ("lesson", "gradient_diffs", "dead_relu_map", "stepping", "fit", "pool_routing", "regularization")
