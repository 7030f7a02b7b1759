"""The tool checking itself: planted bugs (selftest) and the speed floors (bench)."""
