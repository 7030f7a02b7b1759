"""Report: what `parity.check` returns. The verdict, typed findings, the tables as DataFrames, the
plots as Figures, and `save(path)` for the same report folder the CLI writes."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from pathlib import Path

from parity.report.pictures import PICTURE_NAMES

__all__ = ["Report"]

REPR_LIMIT = 240  # pytest shows this much of an assertion's message object (its repr) unless run with -vv


class Report:
    """The outcome of one check.

    verdict: "pass" or "fail" (fail when any finding has severity "error"); passed: the same as a bool;
    findings: every Finding; errors, warnings: those of that severity; samples, steps, gradients: the
    tables of the report folder as pandas DataFrames (their columns: reports/README.md); summary: the
    dict written as summary.json; figure(name): a matplotlib Figure (drawn once, kept, shown as a picture in a
    notebook); sample(i): sample i on both sides, as the seed notebook printed it; save(path): the report folder.
    """

    def __init__(self, result, data, fmt: str = "csv", files: list[str] | None = None, folder: Path | None = None):
        self.result = result  # parity.compare.outcome.ParityResult: the arrays behind everything here
        self._data, self.fmt = data, fmt  # fmt: the tables' format save() writes
        self.files = list(files or [])
        self.folder = folder  # where the report folder was written; None when it was not
        self._figures: dict = {}  # name -> Figure or None, each drawn once
        self._html: str | None = None  # _repr_html_'s page, rendered once (a notebook shows a report more than once)

    # -- the verdict -------------------------------------------------------------------------------
    @property
    def verdict(self) -> str:
        return self.result.verdict

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def findings(self) -> list:
        return list(self.result.findings)

    @property
    def errors(self) -> list:
        return [f for f in self.result.findings if f.severity == "error"]

    @property
    def warnings(self) -> list:
        return [f for f in self.result.findings if f.severity == "warning"]

    # -- the data ----------------------------------------------------------------------------------
    @cached_property
    def summary(self) -> dict:
        """The summary.json content (for a report not written: its `files` list is empty)."""
        from parity.report.summary_json import summary

        return summary(self.result, self.files)

    def _whole_probe(self):
        if self.result.probe is None:
            raise ValueError("this run's probe was computed in chunks and not kept in memory; pass out= to "
                             "parity.check to have its tables written as it runs")
        return self.result.probe

    @cached_property
    def samples(self):
        from parity.report.tables import samples_table

        part, data = self._whole_probe(), self._data
        return samples_table(part, data.x[part.rows], data.y[part.rows], data.split(part.rows),
                             classes=self.result.classifies)

    @cached_property
    def steps(self):
        from parity.report.tables import steps_table

        train = self.result.config.train
        return steps_table(self.result.stepping, self._data.x[:train], self._data.y[:train], self.result.fitted)

    @cached_property
    def gradients(self):
        """Every gradient entry of every phase, long form, as --all-gradients writes gradients.csv: the
        default file keeps only the rows that matter, to stay small on disk; in memory there is no such cost."""
        import pandas as pd

        from parity.report.tables import gradients_table

        phases = [p for p in (self._whole_probe(), self.result.batch, self.result.stepping) if p is not None]
        return pd.concat([gradients_table(p) for p in phases], ignore_index=True)

    def figure(self, name: str):
        """One plot as a matplotlib Figure: lesson, gradient_diffs, dead_relu_map, stepping, fit, pool_routing or
        regularization; None where it does not apply (a model without ReLU has no lesson, one without pooling no
        pool_routing, one without Dropout or BatchNormalization no regularization). Drawn once and kept: each call
        returns the same Figure, which a
        notebook shows as a picture (parity.report.plot_style.ReportFigure)."""
        stem = name.removesuffix(".png") if isinstance(name, str) else name
        if stem not in PICTURE_NAMES:
            from parity.errors import ParityInputError

            raise ParityInputError(f"figure name must be one of {', '.join(PICTURE_NAMES)} (received: {name!r})")
        if stem not in self._figures:
            from parity.report.plots import figure

            self._figures[stem] = figure(stem, self.result, self._curves)
        return self._figures[stem]

    def sample(self, i: int):
        """Sample `i` on both sides, as the seed notebook printed it: x, each layer's W, z and mask, the prediction and
        loss, dW1, db1, ..., dx, and whether the sides agree. Its str (and its display in a notebook) is that text."""
        from parity.errors import ParityInputError
        from parity.report.sample_view import check_sample, sample_view

        try:
            check_sample(i, len(self._data), whole=self.result.probe is not None)
        except ParityInputError as exc:
            raise exc.for_door("python")  # sample=, as the Python door spells it
        return sample_view(self.result, self._data, int(i))

    @cached_property
    def _curves(self):
        from parity.report.probe_curves import ProbeCurves

        curves = ProbeCurves(self._data, self.result.spec)
        curves.add(self._whole_probe())
        return curves

    # -- rendering ---------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the report folder, whole or not at all, as `parity run --out PATH` does."""
        from parity.report.folder import check_out
        from parity.report.folder import atomic_folder
        from parity.report.writer import ReportWriter

        path = Path(path)
        check_out(path)
        result = replace(self.result, config=replace(self.result.config, out=path))
        with atomic_folder(path) as folder:
            writer = ReportWriter(folder, self._data, result.config, result.spec, self.fmt, result.config.plots)
            writer.add_probe_chunk(self._whole_probe())
            files = writer.finish(result)
        self.files, self.folder = files, path
        self.__dict__.pop("summary", None)
        self._html = None  # its summary now names the files
        return path

    def __str__(self) -> str:
        from parity.report.writer import terminal_summary

        return terminal_summary(self.result, self.folder, self.files)

    def __repr__(self) -> str:
        """The verdict and every root cause, short enough that pytest shows it whole for `assert report.passed, report`
        (it cuts a longer repr to 240 characters); str(report) is the whole summary."""
        c = self.result.config
        head = f"<parity Report {self.verdict.upper()} (scenario {c.scenario}, {c.dtype})"
        groups = _root_causes(self.result)
        if not groups:
            return head + ": no errors, no warnings>"
        def where(root, followers, detail: int) -> str:
            """Where a root cause was found, told with less detail while the whole is too long."""
            parts = [(root.phase, root.layer, root.param, root.location), (root.phase, root.layer, root.param),
                     (root.layer or root.phase,), ()][detail]
            text = ", ".join(str(v) for v in parts if v)
            return (f" ({text})" if text else "") + (f" +{len(followers)} that follow" if followers and detail == 0
                                                      else "")

        for detail in range(4):
            text = head + ": " + "; ".join(f"[{root.severity}] {root.code}{where(root, followers, detail)}"
                                           for root, followers in groups) + ">"
            if len(text) <= REPR_LIMIT:
                break
        return text

    def _repr_html_(self) -> str:
        """The report as a notebook shows it: verdict first, the pictures at display resolution (about a fifth of the
        report folder's bytes). Rendered once; showing the report again costs nothing."""
        if self._html is None:
            from parity.report.html import render_html

            images = {}
            if self.result.probe is not None and self.result.config.plots:
                from parity.report.plot_style import display_png

                images = {f"{name}.png": display_png(fig) for name in PICTURE_NAMES
                          if (fig := self.figure(name)) is not None}
            self._html = render_html(self.summary, images)
        return self._html


def _root_causes(result) -> list:
    """(root finding, the findings that follow from it) for every error and warning, grouped by the one function the
    terminal, report.html and assert_parity use."""
    from parity.compare.root_causes import root_causes

    return [(root, followers) for root, followers in root_causes(result.findings) if root.severity != "info"]
