"""What every report picture shares: the two sides' styles, log axes with a labelled floor for exact zeros,
panel titles, and PNG bytes (matplotlib Figures, never pyplot)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure  # object-oriented: no pyplot state, no backend switched under a notebook

from parity.compare.outcome import ParityResult
from parity.report.probe_curves import BINS, ProbeCurves

__all__ = ["NUMPY_STYLE", "KERAS_STYLE", "DISPLAY_DPI", "ReportFigure", "zero_floor", "log_axis", "new", "panel_title", "png",
           "display_png", "along", "floor_and_atol"]


NUMPY_STYLE = {"color": "tab:blue", "label": "numpy"}


KERAS_STYLE = {"color": "tab:orange", "label": "keras", "linestyle": "--"}


def zero_floor(tol) -> float:
    """Where exact zeros are drawn on a log axis: well under anything rounding produces."""
    return tol.atol * 1e-6


def log_axis(ax, zero: float | None = None, top: float | None = None) -> None:
    """A log y axis labelled 1e-12, 1e-09, ...: plain text, as mathtext tick labels cost most of a plot's time.
    With `zero`, a power of ten where exact zeros are drawn, the axis runs from under it to `top`, ticked
    on powers of ten from it up, and its tick reads 0."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    if zero is None:
        ax.yaxis.set_major_locator(LogLocator(numticks=8))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}"))
    else:
        ax.set_ylim(zero / 3, top)
        decades = int(np.ceil(np.log10(top / zero)))
        ax.yaxis.set_major_locator(FixedLocator(zero * 10.0 ** np.arange(0, decades + 1, -(-decades // 7))))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "0" if np.isclose(v, zero, rtol=1e-6, atol=0)
                                                   else f"{v:.0e}"))
    ax.yaxis.set_minor_locator(NullLocator())  # unlabelled minor ticks cost a third of the plots' time


class ReportFigure(Figure):
    """A matplotlib Figure that a notebook shows as a picture without `%matplotlib inline`: Jupyter asks any
    object for `_repr_png_`, and a Figure made without pyplot has none of its own."""

    def _repr_png_(self) -> bytes:
        return display_png(self)


def new(*grid, figsize, **kw):
    """A Figure and its axes, made without pyplot: drawing here never touches the caller's pyplot state."""
    fig = ReportFigure(figsize=figsize)
    return fig, fig.subplots(*grid, **kw)


def panel_title(ax, text: str, **kw) -> None:
    """A panel title at a fixed height: left to itself, matplotlib measures every tick label of the
    panel to place it, a sixth of a plot's time, and no panel here has labels above it."""
    ax.set_title(text, y=1.0, **kw)


PNG_DPI = 100
PNG_COMPRESSION = 3  # zlib's level: Pillow's default 6 takes half as long again for 2% smaller files here


def png(fig: Figure) -> bytes:
    """The picture as PNG bytes, the pixels matplotlib's own PNG holds (`fig.savefig(format="png")`, tested). Where
    every pixel is opaque (a report picture's background is), they are written as RGB: the alpha channel says nothing,
    and without it a cnn run's six pictures take 855 KB against 935 KB, encoded in 0.13 CPU s against 0.20. No
    timestamps in the metadata, so the same run gives the same bytes. Margins are set by hand: a layout engine
    (constrained, tight) costs more than drawing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas, dpi = fig.canvas, fig.dpi
    try:
        fig.set_dpi(PNG_DPI)  # as savefig draws it
        rgba, (width, height) = FigureCanvasAgg(fig).print_to_buffer()  # Agg's drawing, as savefig's PNG has it
    finally:
        fig.set_canvas(canvas)
        fig.set_dpi(dpi)
    pixels = np.frombuffer(rgba, dtype=np.uint8).reshape(height, width, 4)
    opaque = bool((pixels[..., 3] == 255).all())
    picture = Image.fromarray(pixels[..., :3] if opaque else pixels)  # RGB or RGBA
    out = io.BytesIO()
    picture.save(out, format="png", compress_level=PNG_COMPRESSION, dpi=(PNG_DPI, PNG_DPI))
    return out.getvalue()


DISPLAY_DPI = 72  # a notebook shows a picture about 860-1,000 pixels wide: the 12-inch lesson at 72 dpi is 864


def display_png(fig: Figure) -> bytes:
    """The picture as a notebook shows it: at DISPLAY_DPI, its colours in a palette of 256. The seed run's five
    pictures take 95 KB so, against 484 KB as png() writes them (100 dpi, full colour), and look the same on a screen."""
    from PIL import Image

    drawn = io.BytesIO()
    fig.savefig(drawn, format="png", dpi=DISPLAY_DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    drawn.seek(0)
    out = io.BytesIO()
    Image.open(drawn).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, format="png")
    return out.getvalue()


def along(curves: ProbeCurves, result: ParityResult) -> str:
    what = "x" if curves.one_d else "sample"
    return what + ("" if curves.exact else f" ({BINS} bins of {len(result.data):,} samples; per bin: max)")


def floor_and_atol(ax, result: ParityResult, floor: float) -> None:
    """The two reference lines every difference panel needs, labelled where they are drawn."""
    atol = result.tolerance.atol
    ax.axhline(atol, color="red", linestyle=":")
    ax.axhline(floor, color="gray", linewidth=0.6)
    ax.text(0.01, atol, f" atol {atol:g}", color="red", fontsize=7, va="bottom", transform=ax.get_yaxis_transform())
    ax.text(0.01, floor, " exactly equal", color="gray", fontsize=7, va="bottom", transform=ax.get_yaxis_transform())
