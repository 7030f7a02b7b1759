"""Many submissions or seeds on Dask workers: grade, sweep, and the worker plumbing."""
