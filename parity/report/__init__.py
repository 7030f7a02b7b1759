"""Rendering a result: the report folder, tables, summary.json, plots, report.html and the terminal text."""
