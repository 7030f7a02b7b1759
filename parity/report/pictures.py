"""The report's pictures by name, in the order they are drawn and listed (no matplotlib here: the Report checks a
name without importing it). Each name is also its drawing function's in parity.report.plots and its file's stem."""

__all__ = ["BY_COST", "PICTURE_NAMES"]

PICTURE_NAMES = ("lesson", "gradient_diffs", "dead_relu_map", "stepping", "fit", "pool_routing", "regularization")

# Most costly to draw first: the order a plot worker draws in (parity.report.plot_worker), the run taking the cheapest
# back. CPU seconds on cnn, warm, best of 3: stepping 0.66-0.78, lesson 0.48-0.51, pool_routing 0.32-0.40, gradient
# differences 0.25-0.30, the map 0.23-0.30, fit 0.08; the chapter-6 picture 1.1 on the regularized scenario.
BY_COST = ("regularization", "stepping", "lesson", "pool_routing", "gradient_diffs", "dead_relu_map", "fit")
