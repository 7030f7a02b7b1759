"""Numbers in, typed records out: differences, findings, dead units, the layer probes, the comparison of a run."""
