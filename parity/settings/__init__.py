"""What a run is: its configuration, scenarios, data, architecture, tolerances and optimizer registry."""
